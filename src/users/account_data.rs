//! Account data (spec: "Client Config") and filters (spec: "Filtering").
//! Synchronous RocksDB work on `&Storage`; async code calls them directly (see [`crate::storage`]).

use std::sync::{Mutex, PoisonError};

use ruma::events::{GlobalAccountDataEventType, RoomAccountDataEventType};
use ruma::{RoomId, UserId};
use serde_json::Value;

use super::random_string;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::storage::catalog::{ACCOUNT_DATA, ACCOUNT_DATA_CHANGES, FILTERS};
use crate::storage::records::{AccountDataChange, AccountDataRecord};

/// Types the server manages itself and clients may not set through this API (global or per
/// room alike).
pub fn is_server_managed(data_type: &str) -> bool {
    GlobalAccountDataEventType::from(data_type) == GlobalAccountDataEventType::PushRules
        || RoomAccountDataEventType::from(data_type) == RoomAccountDataEventType::FullyRead
}

pub fn get(db: &Storage, user_id: &UserId, room_id: Option<&RoomId>, data_type: &str) -> Result<Value> {
    db.get(ACCOUNT_DATA, &(user_id, room_id, data_type))?
        .map(|r| r.content)
        .ok_or_else(|| Error::not_found("Account data not found"))
}

/// Serialises read-modify-write of the change index (one change row per entry).
static SET_LOCK: Mutex<()> = Mutex::new(());

/// Store account data under a new stream position, indexed for `/sync`.
pub fn set(db: &Storage, user_id: &UserId, room_id: Option<&RoomId>, data_type: &str, content: Value) -> Result<()> {
    let k = (user_id, room_id, data_type);
    let _guard = SET_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let old = db.get(ACCOUNT_DATA, &k)?;
    let pos = db.stream().allocate().waking([crate::storage::notifier::Interest::user(user_id)]);
    let mut batch = db.batch();
    if let Some(old) = old {
        batch.delete(ACCOUNT_DATA_CHANGES, &(user_id, old.stream_pos))?;
    }
    let change = AccountDataChange { room_id: room_id.map(ToOwned::to_owned), data_type: data_type.to_owned() };
    batch.put(ACCOUNT_DATA_CHANGES, &(user_id, pos.pos()), &change)?;
    batch.put(ACCOUNT_DATA, &k, &AccountDataRecord { content, stream_pos: pos.pos() })?;
    batch.stream_position(&pos)?;
    batch.commit()
}

/// Store a filter; returns its new ID.
pub fn create_filter(db: &Storage, user_id: &UserId, filter: Value) -> Result<String> {
    let filter_id = random_string(12);
    let mut batch = db.batch();
    batch.put(FILTERS, &(user_id, &filter_id), &filter)?;
    batch.commit()?;
    Ok(filter_id)
}

pub fn get_filter(db: &Storage, user_id: &UserId, filter_id: &str) -> Result<Value> {
    db.get(FILTERS, &(user_id, filter_id))?.ok_or_else(|| Error::not_found("No such filter"))
}
