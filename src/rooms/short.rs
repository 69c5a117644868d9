//! Short numeric ids for rooms, events and state keys (the generic `shortids` table, with one
//! prefix letter per kind so the namespaces never collide).

use ruma::events::StateEventType;
use ruma::{EventId, OwnedEventId, RoomId};

use crate::error::{Error, Result};
use crate::storage::{Batch, Storage};

fn statekey_string(kind: &StateEventType, state_key: &str) -> String {
    // JSON makes the pair unambiguous whatever characters either part holds.
    format!("k{}", serde_json::json!([kind, state_key]))
}

pub fn room(db: &Storage, room_id: &RoomId) -> Result<u64> {
    db.get_or_create_shortid(&format!("r{room_id}"))
}

pub fn event(db: &Storage, event_id: &EventId) -> Result<u64> {
    db.get_or_create_shortid(&format!("e{event_id}"))
}

/// [`event`] allocated in `batch` (for the event being appended: see [`Batch::shortid`]).
pub fn event_in(batch: &mut Batch<'_>, event_id: &EventId) -> Result<u64> {
    batch.shortid(&format!("e{event_id}"))
}

/// The short id of a known event, without allocating.
pub fn event_get(db: &Storage, event_id: &EventId) -> Result<Option<u64>> {
    db.shortid(&format!("e{event_id}"))
}

pub fn event_id(db: &Storage, short: u64) -> Result<OwnedEventId> {
    let s = db.shortid_string(short)?.ok_or_else(|| Error::internal(format!("unknown short event id {short}")))?;
    EventId::parse(s.trim_start_matches('e')).map_err(|e| Error::internal(format!("bad stored event id: {e}")))
}

pub fn statekey(db: &Storage, kind: &StateEventType, state_key: &str) -> Result<u64> {
    db.get_or_create_shortid(&statekey_string(kind, state_key))
}

/// The short id of a state key already seen, without allocating.
pub fn statekey_get(db: &Storage, kind: &StateEventType, state_key: &str) -> Result<Option<u64>> {
    db.shortid(&statekey_string(kind, state_key))
}

/// `(type, state_key)` of a short state key.
pub fn statekey_parts(db: &Storage, short: u64) -> Result<(StateEventType, String)> {
    let s = db.shortid_string(short)?.ok_or_else(|| Error::internal(format!("unknown short state key {short}")))?;
    let parts: (String, String) =
        serde_json::from_str(s.trim_start_matches('k')).map_err(|e| Error::internal(format!("bad state key: {e}")))?;
    Ok((parts.0.into(), parts.1))
}
