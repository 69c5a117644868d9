//! The server's ed25519 signing key (spec: Server-Server API, "Retrieving server keys"),
//! generated on first start and kept in the `server_signing_keys` table. [`rotate`] retires it
//! (it stays listed in `old_verify_keys`) and makes a new one, used from the next start.

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

/// A retired key, as `/_matrix/key/v2/server` lists it in `old_verify_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldKey {
    pub key_id: String,
    /// Unpadded base64 public key.
    pub public_key: String,
    pub expired_ts: u64,
}

/// Every retired key.
pub fn old_keys(db: &Storage) -> Result<Vec<OldKey>> {
    let mut out = Vec::new();
    for (key_id, record) in db.scan_all(SERVER_SIGNING_KEYS)? {
        let Some(expired_ts) = record.expired_ts else { continue };
        let key_pair = decode(&key_id, &record.pkcs8)?;
        out.push(OldKey { key_id, public_key: STANDARD_NO_PAD.encode(key_pair.public_key()), expired_ts });
    }
    Ok(out)
}

/// Retire every current key (`expired_ts` = now) and generate a new one; returns the new key.
/// A running server keeps signing with the key it loaded: rotate while it is stopped.
pub fn rotate(db: &Storage) -> Result<SigningKey> {
    let now = now_ms();
    let mut batch = db.batch();
    for (key_id, mut record) in db.scan_all(SERVER_SIGNING_KEYS)? {
        if record.expired_ts.is_none() {
            record.expired_ts = Some(now);
            batch.put(SERVER_SIGNING_KEYS, &key_id, &record)?;
        }
    }
    batch.commit()?;
    load_or_generate(db)
}

fn decode(key_id: &str, pkcs8: &str) -> Result<Ed25519KeyPair> {
    let der = STANDARD_NO_PAD.decode(pkcs8).ctx("decoding signing key")?;
    let version = key_id.trim_start_matches("ed25519:").to_owned();
    Ed25519KeyPair::from_der(&der, version).ctx("parsing signing key")
}

/// Load the newest unexpired key, or generate and persist one.
pub fn load_or_generate(db: &Storage) -> Result<SigningKey> {
    let existing = db
        .scan_all(SERVER_SIGNING_KEYS)?
        .into_iter()
        .filter(|(_, r)| r.expired_ts.is_none())
        .max_by_key(|(_, r)| r.created_ts);
    if let Some((key_id, record)) = existing {
        return Ok(SigningKey { key_pair: decode(&key_id, &record.pkcs8)? });
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
        assert!(old_keys(&db).unwrap().is_empty());
    }

    #[test]
    fn rotation_retires_the_key_and_lists_it_as_old() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::open(dir.path(), 8).unwrap();
        let first = load_or_generate(&db).unwrap();
        let second = rotate(&db).unwrap();
        assert_ne!(first.key_id(), second.key_id());
        assert_eq!(load_or_generate(&db).unwrap().key_id(), second.key_id());
        let old = old_keys(&db).unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(
            (old[0].key_id.as_str(), old[0].public_key.as_str()),
            (first.key_id().as_str(), first.public_key_base64().as_str())
        );
        assert!(old[0].expired_ts > 0);
    }
}
