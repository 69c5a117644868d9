//! Devices: one per login session, each with its tokens (spec: "Device management").
//! Synchronous RocksDB work on `&Storage`; async code calls them directly (see [`crate::storage`]).

use ruma::{DeviceId, OwnedDeviceId, UserId};

use crate::error::{Error, Result};
use crate::storage::catalog::{ACCESS_TOKENS, DEVICE_LAST_SEEN, DEVICES, REFRESH_TOKENS};
use crate::storage::records::{DeviceRecord, LastSeenRecord};
use crate::storage::{Batch, Storage};

pub fn list(db: &Storage, user_id: &UserId) -> Result<Vec<(OwnedDeviceId, DeviceRecord)>> {
    Ok(db.scan_prefix(DEVICES, user_id)?.into_iter().map(|((_, d), r)| (d, r)).collect())
}

/// A device as clients see it (spec: the `Device` object).
#[derive(Debug, Clone)]
pub struct DeviceView {
    pub device_id: OwnedDeviceId,
    pub display_name: Option<String>,
    pub last_seen_ip: Option<String>,
    pub last_seen_ts: Option<u64>,
}

fn view(db: &Storage, user_id: &UserId, device_id: OwnedDeviceId, record: DeviceRecord) -> Result<DeviceView> {
    let seen = db.get(DEVICE_LAST_SEEN, &(user_id, &device_id))?;
    Ok(DeviceView {
        display_name: record.display_name,
        last_seen_ip: seen.as_ref().and_then(|s| s.ip.clone()),
        last_seen_ts: seen.map(|s| s.ts),
        device_id,
    })
}

/// Every device of the user with its last-seen data.
pub fn list_views(db: &Storage, user_id: &UserId) -> Result<Vec<DeviceView>> {
    list(db, user_id)?.into_iter().map(|(id, r)| view(db, user_id, id, r)).collect()
}

pub fn get_view(db: &Storage, user_id: &UserId, device_id: &DeviceId) -> Result<Option<DeviceView>> {
    get(db, user_id, device_id)?.map(|r| view(db, user_id, device_id.to_owned(), r)).transpose()
}

pub fn get(db: &Storage, user_id: &UserId, device_id: &DeviceId) -> Result<Option<DeviceRecord>> {
    db.get(DEVICES, &(user_id, device_id))
}

fn not_found() -> Error {
    Error::not_found("Unknown device")
}

/// Rename a device. The name is part of what `/keys/query` returns
/// (`unsigned.device_display_name`), so a change is a device-list change.
pub fn set_display_name(db: &Storage, user_id: &UserId, device_id: &DeviceId, name: Option<String>) -> Result<()> {
    let mut record = get(db, user_id, device_id)?.ok_or_else(not_found)?;
    if record.display_name == name {
        return Ok(());
    }
    record.display_name = name;
    let mut batch = db.batch();
    batch.put(DEVICES, &(user_id, device_id), &record)?;
    crate::keys::changes::record_in(db, &mut batch, user_id)?;
    batch.commit()
}

/// Record where and when the device was last seen (called as it makes requests).
pub fn touch(db: &Storage, user_id: &UserId, device_id: &DeviceId, ip: Option<String>, now: u64) -> Result<()> {
    let mut batch = db.batch();
    touch_in(&mut batch, user_id, device_id, ip, now)?;
    batch.commit()
}

pub fn touch_in(
    batch: &mut Batch<'_>,
    user_id: &UserId,
    device_id: &DeviceId,
    ip: Option<String>,
    now: u64,
) -> Result<()> {
    batch.put(DEVICE_LAST_SEEN, &(user_id, device_id), &LastSeenRecord { ip, ts: now })
}

/// Add the deletion of one device, its tokens and its end-to-end encryption data to `batch`.
pub fn delete_in(
    db: &Storage,
    batch: &mut Batch<'_>,
    user_id: &UserId,
    device_id: &DeviceId,
    record: &DeviceRecord,
) -> Result<()> {
    crate::keys::device_keys::forget_device_in(db, batch, user_id, device_id)?;
    if let Some(h) = &record.access_token_hash {
        batch.delete(ACCESS_TOKENS, h)?;
    }
    if let Some(h) = &record.refresh_token_hash {
        batch.delete(REFRESH_TOKENS, h)?;
    }
    batch.delete(DEVICE_LAST_SEEN, &(user_id, device_id))?;
    batch.delete(DEVICES, &(user_id, device_id))
}

/// Add the deletion of every device of the user (but `except`) to `batch`, and the device-list
/// change if any goes (its stream position is held by `batch`).
pub fn delete_all_in(db: &Storage, batch: &mut Batch<'_>, user_id: &UserId, except: Option<&DeviceId>) -> Result<()> {
    let mut deleted = false;
    for (device_id, record) in list(db, user_id)? {
        if except.is_some_and(|e| *e == device_id) {
            continue;
        }
        delete_in(db, batch, user_id, &device_id, &record)?;
        deleted = true;
    }
    if deleted {
        crate::keys::changes::record_in(db, batch, user_id)?;
    }
    Ok(())
}

/// Delete devices (and so log them out). Unknown device IDs are skipped, as the spec allows.
pub fn delete(db: &Storage, user_id: &UserId, device_ids: &[&DeviceId]) -> Result<()> {
    let mut batch = db.batch();
    let mut deleted = false;
    for device_id in device_ids {
        if let Some(record) = get(db, user_id, device_id)? {
            delete_in(db, &mut batch, user_id, device_id, &record)?;
            deleted = true;
        }
    }
    if deleted {
        crate::keys::changes::record_in(db, &mut batch, user_id)?;
    }
    batch.commit()
}

/// Delete every device of the user except `except` (`/logout/all`, password change).
pub fn delete_all(db: &Storage, user_id: &UserId, except: Option<&DeviceId>) -> Result<()> {
    let mut batch = db.batch();
    delete_all_in(db, &mut batch, user_id, except)?;
    batch.commit()
}
