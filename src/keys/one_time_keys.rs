//! One-time and fallback keys: stored on upload, handed out by `POST /keys/claim`, counted for
//! `/sync` (spec: "End-to-End Encryption", "One-time and fallback keys", "Claiming one-time
//! keys"; `POST /keys/upload`, `POST /keys/claim`).

use std::collections::BTreeMap;

use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde_json::{Map, Value};

use super::KEYS_LOCK;
use crate::error::{Error, Result};
use crate::services::Services;
use crate::storage::catalog::{FALLBACK_KEYS, ONE_TIME_KEYS};
use crate::storage::records::FallbackKeyRecord;
use crate::storage::{Batch, Storage};

/// The algorithm clients count on: reported (as 0) even when the device has none left, as
/// Synapse does, so clients that only top up listed algorithms still do.
const SIGNED_CURVE25519: &str = "signed_curve25519";

/// Uploaded keys, checked: `(algorithm, key_id, key)`.
pub struct NewKeys(Vec<(String, String, Value)>);

impl NewKeys {
    /// Split `<algorithm>:<key_id>` names and check each key is a string or a signed key
    /// object (`M_BAD_JSON`). Fallback keys: at most one per algorithm (`M_INVALID_PARAM`).
    pub fn parse(keys: Vec<(String, Value)>, fallback: bool) -> Result<NewKeys> {
        let mut out: Vec<(String, String, Value)> = Vec::with_capacity(keys.len());
        for (name, key) in keys {
            let Some((algorithm, key_id)) = name.split_once(':') else {
                return Err(Error::invalid_param(format!("Key name {name:?} is not <algorithm>:<key_id>")));
            };
            if !well_formed(&key) {
                return Err(Error::bad_json(format!("Key {name} is neither a string nor a signed key object")));
            }
            if fallback && out.iter().any(|(a, _, _)| a == algorithm) {
                return Err(Error::invalid_param(format!("More than one fallback key for {algorithm}")));
            }
            out.push((algorithm.to_owned(), key_id.to_owned(), key));
        }
        Ok(NewKeys(out))
    }
}

/// The spec's key object: a string, or `{key, signatures, fallback?}` (a signed key). Not
/// stricter than that (ruma's type also wants `key` to be valid base64): the server never
/// uses the key, and Synapse accepts whatever clients send.
fn well_formed(key: &Value) -> bool {
    match key {
        Value::String(_) => true,
        Value::Object(o) => {
            o.get("key").is_some_and(Value::is_string) && o.get("signatures").is_some_and(Value::is_object)
        }
        _ => false,
    }
}

/// Add new one-time keys and replace fallback keys in `batch`; returns whether it wrote
/// anything. Re-uploading an identical key is a no-op (a fallback key keeps its `used` flag);
/// a different key under an existing one-time key ID is `M_INVALID_PARAM`. New one-time keys
/// share one stream position, which also orders claims (oldest upload first). The caller holds
/// `KEYS_LOCK`.
pub fn store_in(
    db: &Storage,
    batch: &mut Batch<'_>,
    user: &UserId,
    device: &DeviceId,
    one_time: &NewKeys,
    fallback: &NewKeys,
) -> Result<bool> {
    let prefix = (user, device);
    let existing: BTreeMap<(String, String), Value> = db
        .scan_prefix(ONE_TIME_KEYS, &prefix)?
        .into_iter()
        .map(|((_, (algorithm, _, key_id)), key)| ((algorithm, key_id), key))
        .collect();
    let mut pos = None;
    for (algorithm, key_id, key) in &one_time.0 {
        match existing.get(&(algorithm.clone(), key_id.clone())) {
            Some(old) if old == key => continue,
            Some(_) => {
                return Err(Error::invalid_param(format!("One-time key {algorithm}:{key_id} already exists")));
            }
            None => {}
        }
        let p = match pos {
            Some(p) => p,
            None => *pos.insert(batch.allocate_position()?),
        };
        batch.put(ONE_TIME_KEYS, &(prefix, (algorithm, p, key_id)), key)?;
    }
    for (algorithm, key_id, key) in &fallback.0 {
        let k = (prefix, algorithm);
        if db.get(FALLBACK_KEYS, &k)?.is_some_and(|old| old.key_id == *key_id && old.key == *key) {
            continue;
        }
        if pos.is_none() {
            pos = Some(batch.allocate_position()?);
        }
        batch.put(FALLBACK_KEYS, &k, &FallbackKeyRecord { key_id: key_id.clone(), key: key.clone(), used: false })?;
    }
    Ok(pos.is_some())
}

/// `one_time_keys` of `POST /keys/claim`: for each requested local `(user, device, algorithm)`
/// (other servers' users: `keys::remote::claim`),
/// the device's oldest one-time key of that algorithm, removed so no one gets it again; when
/// there is none, its fallback key for the algorithm, marked used. Devices without either are
/// left out (spec: no failure is recorded for unknown users or devices).
pub fn claim(s: &Services, requested: &BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>) -> Result<Value> {
    let db = &s.db;
    let _guard = KEYS_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut batch = db.batch();
    let mut dirty = false;
    let mut out = Map::new();
    for (user, devices) in requested {
        if !s.is_local(user) {
            continue;
        }
        let mut found = Map::new();
        for (device, algorithm) in devices {
            let pair = (user, device);
            let prefix = (pair, algorithm);
            let start = (pair, (algorithm, 0, ""));
            let claimed = match db.scan_from(ONE_TIME_KEYS, &prefix, &start, false, 1)?.into_iter().next() {
                Some((k, key)) => {
                    batch.delete(ONE_TIME_KEYS, &k)?;
                    dirty = true;
                    Some((k.1.2, key))
                }
                None => {
                    let k = (pair, algorithm);
                    match db.get(FALLBACK_KEYS, &k)? {
                        Some(mut record) => {
                            if !record.used {
                                record.used = true;
                                batch.put(FALLBACK_KEYS, &k, &record)?;
                                dirty = true;
                            }
                            Some((record.key_id, record.key))
                        }
                        None => None,
                    }
                }
            };
            if let Some((key_id, key)) = claimed {
                let mut keys = Map::new();
                keys.insert(format!("{algorithm}:{key_id}"), key);
                found.insert(device.to_string(), Value::Object(keys));
            }
        }
        if !found.is_empty() {
            out.insert(user.to_string(), Value::Object(found));
        }
    }
    if dirty {
        // The owners' `/sync` reports new counts and unused fallback key types.
        batch.allocate_position()?;
        batch.commit()?;
    }
    Ok(Value::Object(out))
}

/// Unclaimed one-time keys of the device per algorithm (`signed_curve25519` always present)
/// (spec: `/sync` `device_one_time_keys_count`, `/keys/upload` `one_time_key_counts`).
/// Kept in memory while the device's keys do not change (every `/sync` reports them).
pub fn one_time_key_counts(s: &Services, user: &UserId, device: &DeviceId) -> Result<BTreeMap<String, u64>> {
    let prefix = (user, device);
    s.db.derived(ONE_TIME_KEYS, &prefix, "counts", || {
        let mut counts = BTreeMap::from([(SIGNED_CURVE25519.to_owned(), 0)]);
        for ((_, (algorithm, _, _)), _) in s.db.scan_prefix(ONE_TIME_KEYS, &prefix)? {
            *counts.entry(algorithm).or_insert(0) += 1;
        }
        Ok(counts)
    })
}

/// Algorithms for which the device has a fallback key that has not been claimed yet (spec:
/// `/sync` `device_unused_fallback_key_types`).
pub fn unused_fallback_key_types(s: &Services, user: &UserId, device: &DeviceId) -> Result<Vec<String>> {
    let prefix = (user, device);
    s.db.derived(FALLBACK_KEYS, &prefix, "unused", || {
        let rows = s.db.scan_prefix(FALLBACK_KEYS, &prefix)?;
        Ok(rows.into_iter().filter(|(_, r)| !r.used).map(|((_, algorithm), _)| algorithm).collect())
    })
}
