//! Device identity keys: upload (`POST /keys/upload`'s `device_keys`), download
//! (`POST /keys/query`), and cleanup when a device is deleted (spec: "End-to-End Encryption",
//! "Uploading keys", "Downloading keys").

use std::collections::BTreeMap;

use ruma::encryption::DeviceKeys;
use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde_json::{Map, Value, json};

use super::one_time_keys::{self, NewKeys};
use super::{KEYS_LOCK, changes};
use crate::error::{Error, Result};
use crate::services::Services;
use crate::storage::catalog::{
    DEVICE_KEYS, DEVICES, FALLBACK_KEYS, ONE_TIME_KEYS, TO_DEVICE_INBOX, TO_DEVICE_TXNS, USERS,
};
use crate::storage::{Batch, Storage};

/// What one `POST /keys/upload` publishes for the requesting device.
#[derive(Debug, Default)]
pub struct Upload {
    /// The `device_keys` object, as sent.
    pub device_keys: Option<Value>,
    /// `<algorithm>:<key_id>` → key, for `one_time_keys` and `fallback_keys`.
    pub one_time_keys: Vec<(String, Value)>,
    pub fallback_keys: Vec<(String, Value)>,
}

/// Check a `device_keys` object: the spec's shape (`M_BAD_JSON`), and it must describe the
/// requesting device (`M_INVALID_PARAM`).
fn check_device_keys(keys: &Value, user: &UserId, device: &DeviceId) -> Result<()> {
    if !keys.is_object() {
        return Err(Error::bad_json("device_keys must be an object"));
    }
    let parsed: DeviceKeys =
        serde_json::from_value(keys.clone()).map_err(|e| Error::bad_json(format!("Invalid device_keys: {e}")))?;
    if parsed.user_id != user {
        return Err(Error::invalid_param(format!("device_keys.user_id must be {user}")));
    }
    if parsed.device_id != device {
        return Err(Error::invalid_param(format!("device_keys.device_id must be {device}")));
    }
    Ok(())
}

/// Publish the device's keys; returns its one-time key counts afterwards. Everything lands in
/// one batch; a change of device keys is recorded as a device-list change.
pub fn upload(s: &Services, user: &UserId, device: &DeviceId, up: Upload) -> Result<BTreeMap<String, u64>> {
    if let Some(keys) = &up.device_keys {
        check_device_keys(keys, user, device)?;
    }
    let one_time = NewKeys::parse(up.one_time_keys, false)?;
    let fallback = NewKeys::parse(up.fallback_keys, true)?;
    let db = &s.db;
    let key = (user, device);
    {
        let _guard = KEYS_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut batch = db.batch();
        let mut dirty = false;
        if let Some(keys) = up.device_keys
            && db.get(DEVICE_KEYS, &key)?.as_ref() != Some(&keys)
        {
            batch.put(DEVICE_KEYS, &key, &keys)?;
            changes::record_in(db, &mut batch, user)?;
            dirty = true;
        }
        dirty |= one_time_keys::store_in(db, &mut batch, user, device, &one_time, &fallback)?;
        if dirty {
            batch.commit()?;
        }
    }
    one_time_keys::one_time_key_counts(s, user, device)
}

/// `device_keys` of `POST /keys/query`: for each requested local user, the keys of the listed
/// devices (all devices when the list is empty), with `unsigned.device_display_name` when
/// `with_names` (for other servers only with `federation.allow_device_name_lookup`). Users of
/// other servers are left out here: `keys::remote::query` asks their servers; unknown users map
/// to `{}`.
pub fn query(s: &Services, requested: &BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>, with_names: bool) -> Result<Value> {
    let mut out = Map::new();
    for (user, wanted) in requested {
        if !s.is_local(user) {
            continue;
        }
        let mut devices = Map::new();
        if s.db.get(USERS, user)?.is_some() {
            for ((_, device_id), mut keys) in s.db.scan_prefix(DEVICE_KEYS, user)? {
                if !wanted.is_empty() && !wanted.contains(&device_id) {
                    continue;
                }
                let Some(record) = s.db.get(DEVICES, &(user, &device_id))? else { continue };
                let mut unsigned = Map::new();
                if let Some(name) = record.display_name.filter(|_| with_names) {
                    unsigned.insert("device_display_name".into(), json!(name));
                }
                if let Some(obj) = keys.as_object_mut() {
                    obj.insert("unsigned".into(), Value::Object(unsigned));
                }
                devices.insert(device_id.into(), keys);
            }
        }
        out.insert(user.to_string(), Value::Object(devices));
    }
    Ok(Value::Object(out))
}

/// Add to `batch` the removal of everything end-to-end encryption keeps for a device that is
/// being deleted: its keys, one-time and fallback keys, to-device inbox and transaction IDs.
/// (The caller records the device-list change, once per user.)
pub fn forget_device_in(db: &Storage, batch: &mut Batch<'_>, user: &UserId, device: &DeviceId) -> Result<()> {
    let prefix = (user, device);
    batch.delete(DEVICE_KEYS, &prefix)?;
    for (k, _) in db.scan_prefix(ONE_TIME_KEYS, &prefix)? {
        batch.delete(ONE_TIME_KEYS, &k)?;
    }
    for (k, _) in db.scan_prefix(FALLBACK_KEYS, &prefix)? {
        batch.delete(FALLBACK_KEYS, &k)?;
    }
    for (k, _) in db.scan_prefix(TO_DEVICE_INBOX, &prefix)? {
        batch.delete(TO_DEVICE_INBOX, &k)?;
    }
    for (k, _) in db.scan_prefix(TO_DEVICE_TXNS, &prefix)? {
        batch.delete(TO_DEVICE_TXNS, &k)?;
    }
    Ok(())
}
