//! `POST /keys/upload` (spec: "End-to-End Encryption", "Uploading keys"): the requesting
//! device's identity keys, one-time keys and fallback keys.

use ruma::api::client::keys::upload_keys;
use ruma::serde::Raw;
use serde_json::{Value, json};

use crate::api::ruma::{RawJson, Ruma};
use crate::error::{Error, Result};
use crate::keys::device_keys::{self, Upload};
use crate::services::State;

/// The JSON a client sent for one `Raw` field (`M_BAD_JSON` if it is not JSON at all).
pub(super) fn raw_value<T>(raw: &Raw<T>) -> Result<Value> {
    serde_json::from_str(raw.json().get()).map_err(|e| Error::bad_json(e.to_string()))
}

/// `POST /_matrix/client/v3/keys/upload`
pub async fn upload(s: State, r: Ruma<upload_keys::v3::Request>) -> Result<RawJson> {
    let auth = r.auth()?.clone();
    let b = r.body;
    let named = |m: &std::collections::BTreeMap<_, Raw<_>>| -> Result<Vec<(String, Value)>> {
        m.iter().map(|(name, raw): (&ruma::OwnedOneTimeKeyId, _)| Ok((name.to_string(), raw_value(raw)?))).collect()
    };
    let up = Upload {
        device_keys: b.device_keys.as_ref().map(raw_value).transpose()?,
        one_time_keys: named(&b.one_time_keys)?,
        fallback_keys: named(&b.fallback_keys)?,
    };
    let counts = device_keys::upload(&s, &auth.user_id, &auth.device_id, up)?;
    Ok(RawJson(json!({ "one_time_key_counts": counts })))
}
