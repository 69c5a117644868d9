//! Room tags (spec: Client-Server API "Room Tagging"), kept as the room account data `m.tag`
//! (`{"tags": {tag: {order?}}}`) so that `/sync` reports them like any account data.

use std::sync::{Mutex, PoisonError};

use ruma::{RoomId, UserId};
use serde_json::{Map, Value, json};

use crate::error::{ErrorKind, Result};
use crate::storage::Storage;
use crate::users::account_data;

pub const TAG_TYPE: &str = "m.tag";

/// Serialises the read-modify-write of a user's `m.tag` content.
static TAG_LOCK: Mutex<()> = Mutex::new(());

/// The user's tags on the room: `{tag: {order?}}` (empty if none were ever set).
pub fn get(db: &Storage, user_id: &UserId, room_id: &RoomId) -> Result<Map<String, Value>> {
    let content = match account_data::get(db, user_id, Some(room_id), TAG_TYPE) {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(e),
    };
    // The content may have been written directly through the account data API: keep what is
    // well-formed, an object of objects.
    let tags = match content.get("tags") {
        Some(Value::Object(tags)) => tags.iter().filter(|(_, v)| v.is_object()).map(|(k, v)| (k.clone(), v.clone())),
        _ => return Ok(Map::new()),
    };
    Ok(tags.collect())
}

/// Add or replace one tag.
pub fn set(db: &Storage, user_id: &UserId, room_id: &RoomId, tag: &str, order: Option<f64>) -> Result<()> {
    let _guard = TAG_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let mut tags = get(db, user_id, room_id)?;
    let mut info = Map::new();
    if let Some(order) = order {
        info.insert("order".into(), json!(order));
    }
    tags.insert(tag.to_owned(), Value::Object(info));
    account_data::set(db, user_id, Some(room_id), TAG_TYPE, json!({ "tags": tags }))
}

/// Remove one tag; removing a tag the room does not have is not an error.
pub fn delete(db: &Storage, user_id: &UserId, room_id: &RoomId, tag: &str) -> Result<()> {
    let _guard = TAG_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let mut tags = get(db, user_id, room_id)?;
    if tags.remove(tag).is_none() {
        return Ok(());
    }
    account_data::set(db, user_id, Some(room_id), TAG_TYPE, json!({ "tags": tags }))
}
