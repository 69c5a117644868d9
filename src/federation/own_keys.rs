//! Our key response (spec: Server-Server API, "Publishing Keys", `GET /_matrix/key/v2/server`):
//! the current verify key, the retired ones in `old_verify_keys`, `valid_until_ts` =
//! now + `federation.key_valid_for_ms`, signed by the current key.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ruma::CanonicalJsonObject;
use ruma::serde::Base64;
use serde_json::json;

use super::Federation;
use crate::error::{Error, Result};
use crate::users::now_ms;

impl Federation {
    /// Our `/_matrix/key/v2/server` body, freshly signed.
    pub fn own_key_response(&self) -> Result<CanonicalJsonObject> {
        let key = &self.signing_key;
        let old: serde_json::Map<String, serde_json::Value> = self
            .old_keys
            .iter()
            .map(|k| (k.key_id.clone(), json!({ "key": k.public_key, "expired_ts": k.expired_ts })))
            .collect();
        let body = json!({
            "server_name": self.server_name,
            "valid_until_ts": now_ms() + self.config.key_valid_for_ms,
            "verify_keys": { key.key_id(): { "key": key.public_key_base64() } },
            "old_verify_keys": old,
        });
        let mut object: CanonicalJsonObject = serde_json::from_value(body).map_err(Error::internal)?;
        self.sign(&mut object)?;
        Ok(object)
    }

    /// Add our signature to a JSON object (spec: Appendices, "Signing JSON").
    pub fn sign(&self, object: &mut CanonicalJsonObject) -> Result<()> {
        ruma::signatures::sign_json(self.server_name.as_str(), &self.signing_key.key_pair, object)
            .map_err(|e| Error::internal(format!("signing JSON: {e}")))
    }

    /// Our keys usable at `min_valid_until_ts` (the current one, and retired ones that expired
    /// after it), for verifying our own signatures.
    pub(super) fn own_verify_keys(&self, min_valid_until_ts: u64) -> BTreeMap<String, Base64> {
        let mut keys =
            BTreeMap::from([(self.signing_key.key_id(), Base64::new(self.signing_key.key_pair.public_key().to_vec()))]);
        for old in self.old_keys.iter().filter(|k| k.expired_ts >= min_valid_until_ts) {
            if let Ok(bytes) = STANDARD_NO_PAD.decode(&old.public_key) {
                keys.insert(old.key_id.clone(), Base64::new(bytes));
            }
        }
        keys
    }
}
