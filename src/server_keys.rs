//! The server's ed25519 signing key (spec: Server-Server API, "Retrieving server keys"),
//! generated on first start and kept in the `server_signing_keys` table.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ruma::signatures::Ed25519KeyPair;

use crate::error::{Context, Result};
use crate::storage::Storage;
use crate::storage::catalog::SERVER_SIGNING_KEYS;
use crate::storage::records::SigningKeyRecord;
use crate::users::{now_ms, random_string};

/// The active signing key; `key_pair.version()` is the part after `ed25519:`.
pub struct SigningKey {
    pub key_pair: Ed25519KeyPair,
}

impl SigningKey {
    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.key_pair.version())
    }

    /// The public key, unpadded base64 as in `/_matrix/key/v2/server`.
    pub fn public_key_base64(&self) -> String {
        STANDARD_NO_PAD.encode(self.key_pair.public_key())
    }
}

/// Load the newest unexpired key, or generate and persist one.
pub fn load_or_generate(db: &Storage) -> Result<SigningKey> {
    let existing = db
        .scan_all(SERVER_SIGNING_KEYS)?
        .into_iter()
        .filter(|(_, r)| r.expired_ts.is_none())
        .max_by_key(|(_, r)| r.created_ts);
    if let Some((key_id, record)) = existing {
        let der = STANDARD_NO_PAD.decode(&record.pkcs8).ctx("decoding signing key")?;
        let version = key_id.trim_start_matches("ed25519:").to_owned();
        let key_pair = Ed25519KeyPair::from_der(&der, version).ctx("parsing signing key")?;
        return Ok(SigningKey { key_pair });
    }
    let der = Ed25519KeyPair::generate();
    let version = random_string(6);
    let key_pair = Ed25519KeyPair::from_der(&der, version.clone()).ctx("parsing new signing key")?;
    let record =
        SigningKeyRecord { pkcs8: STANDARD_NO_PAD.encode(der.as_slice()), created_ts: now_ms(), expired_ts: None };
    let mut batch = db.batch();
    batch.put(SERVER_SIGNING_KEYS, &format!("ed25519:{version}"), &record)?;
    batch.commit()?;
    tracing::info!(key_id = %format!("ed25519:{version}"), "generated a new signing key");
    Ok(SigningKey { key_pair })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(&Storage::open(dir.path(), 8).unwrap()).unwrap();
        let db = Storage::open(dir.path(), 8).unwrap();
        let second = load_or_generate(&db).unwrap();
        assert_eq!(first.key_id(), second.key_id());
        assert_eq!(first.public_key_base64(), second.public_key_base64());
        assert_eq!(db.scan_all(SERVER_SIGNING_KEYS).unwrap().len(), 1);
    }
}
