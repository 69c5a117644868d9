//! Rooms: each an event-sourced DAG of signed PDUs (spec: "Rooms", "Room Versions",
//! Server-Server API "PDUs", "Authorization rules", "State resolution").
//!
//! - [`build`] turns a client's intent into a signed, authorized PDU on top of the room's
//!   forward extremities; [`append`] persists it (one batch) and updates every index.
//! - [`state`] stores state snapshots as shared deltas; [`resolve`] feeds ruma's state resolution.
//! - [`create`], [`membership`] and [`read`] implement the client-facing operations.
//!
//! The functions here are synchronous (RocksDB reads and one-batch writes), called directly from
//! async code, except the entry points that take the room's lock ([`append::send`] and those
//! built on it), which are `async` so that waiting for the lock parks the task, not a worker.

pub mod alias;
pub mod append;
pub mod build;
pub mod create;
pub mod directory;
pub mod format;
pub mod info;
pub mod ingest;
pub mod membership;
pub mod pdu;
pub mod peek;
pub mod power;
pub mod read;
pub mod relations;
pub mod remote_invites;
pub mod resolve;
pub mod short;
pub mod state;
pub mod upgrade;
pub mod verify;

#[cfg(test)]
mod fork_tests;

use std::sync::Arc;

use ruma::events::StateEventType;
use ruma::room_version_rules::RoomVersionRules;
use ruma::{EventId, RoomId, RoomVersionId};
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::services::Services;
use crate::storage::catalog::{CURRENT_STATE, EVENT_META, PDUS, ROOMS};
use crate::storage::codec::Counter;
use crate::storage::records::{EventMeta, RoomRecord};
use pdu::Pdu;
use state::ShortState;

/// A persisted event: parsed PDU, its stored JSON and its metadata.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub pdu: Pdu,
    /// Shared: every reader of a cached event gets the same JSON.
    pub json: Arc<Value>,
    pub meta: EventMeta,
}

/// The rules of a room version we support; `M_UNSUPPORTED_ROOM_VERSION` otherwise.
pub fn rules_for(version: &RoomVersionId) -> Result<RoomVersionRules> {
    version
        .rules()
        .ok_or_else(|| Error::new(ErrorKind::UnsupportedRoomVersion, format!("Unsupported room version {version}")))
}

/// The room's record, or `M_NOT_FOUND`.
pub fn room(s: &Services, room_id: &RoomId) -> Result<RoomRecord> {
    s.db.get(ROOMS, room_id)?.ok_or_else(|| Error::not_found(format!("Unknown room {room_id}")))
}

/// Whether the room is known here (created here, or joined over federation).
pub fn exists(s: &Services, room_id: &RoomId) -> Result<bool> {
    Ok(s.db.get(ROOMS, room_id)?.is_some())
}

/// The room's record for a user's request about it: an unknown room is `M_FORBIDDEN`, the
/// answer for a room the user is not in, so that no answer tells whether a room exists.
pub fn room_as_member(s: &Services, room_id: &RoomId) -> Result<RoomRecord> {
    room(s, room_id).map_err(|e| hide_unknown_room(e, room_id))
}

/// `M_NOT_FOUND` (an unknown room) as `M_FORBIDDEN` "You are not in room ...".
pub fn hide_unknown_room(e: Error, room_id: &RoomId) -> Error {
    if e.kind() == ErrorKind::NotFound { Error::forbidden(format!("You are not in room {room_id}")) } else { e }
}

/// Parsed events kept in memory (every receiver of a message reads the same few events).
pub struct EventCache {
    events: crate::cache::BoundedCache<u64, StoredEvent>,
}

impl EventCache {
    pub fn new(caches: &crate::cache::Caches) -> Self {
        EventCache { events: caches.cache("events") }
    }

    fn get(&self, short: u64) -> Option<StoredEvent> {
        self.events.get(&short)
    }

    fn put(&self, short: u64, ev: &StoredEvent) {
        self.events.insert(short, ev.clone());
    }

    /// Forget an event whose stored form changed (a redaction).
    pub fn invalidate(&self, short: u64) {
        self.events.remove(&short);
    }
}

pub fn load_by_short(s: &Services, short: u64) -> Result<Option<StoredEvent>> {
    if let Some(ev) = s.event_cache.get(short) {
        return Ok(Some(ev));
    }
    let loaded = load_from_storage(s, short)?;
    if let Some(ev) = &loaded {
        s.event_cache.put(short, ev);
    }
    Ok(loaded)
}

fn load_from_storage(s: &Services, short: u64) -> Result<Option<StoredEvent>> {
    let (Some(json), Some(meta)) = (s.db.get(PDUS, &short)?, s.db.get(EVENT_META, &short)?) else { return Ok(None) };
    let rules = match &meta.room_version {
        Some(version) => rules_for(version)?,
        None => {
            let room_id = match json.get("room_id").and_then(Value::as_str) {
                Some(r) => RoomId::parse(r),
                None => RoomId::parse(format!("!{}", meta.event_id.as_str().trim_start_matches('$'))),
            }
            .map_err(|e| Error::internal(format!("stored event {} without a valid room ID: {e}", meta.event_id)))?;
            let record =
                s.db.get(ROOMS, &room_id)?
                    .ok_or_else(|| Error::internal(format!("event in unknown room {room_id}")))?;
            rules_for(&record.room_version)?
        }
    };
    let mut pdu = Pdu::from_json(meta.event_id.clone(), &json, &rules)?;
    pdu.rejected = meta.rejected;
    Ok(Some(StoredEvent { pdu, json: Arc::new(json), meta }))
}

pub fn load(s: &Services, event_id: &EventId) -> Result<Option<StoredEvent>> {
    match short::event_get(&s.db, event_id)? {
        Some(short) => load_by_short(s, short),
        None => Ok(None),
    }
}

/// The room's current state (`shortstatekey → shorteventid`).
pub fn current_state(s: &Services, room_id: &RoomId) -> Result<Arc<ShortState>> {
    let record = room(s, room_id)?;
    state::load(&s.db, &s.state_cache, record.current_state_group)
}

/// One event of a state map.
pub fn state_event(
    s: &Services,
    state: &ShortState,
    kind: &StateEventType,
    state_key: &str,
) -> Result<Option<StoredEvent>> {
    let Some(key) = short::statekey_get(&s.db, kind, state_key)? else { return Ok(None) };
    match state.get(&key) {
        Some(&event) => load_by_short(s, event),
        None => Ok(None),
    }
}

/// One event of the room's current state, via the current-state index.
pub fn current_state_event(
    s: &Services,
    room_id: &RoomId,
    kind: &StateEventType,
    state_key: &str,
) -> Result<Option<StoredEvent>> {
    let record = room(s, room_id)?;
    let Some(key) = short::statekey_get(&s.db, kind, state_key)? else { return Ok(None) };
    match s.db.get(CURRENT_STATE, &(record.shortroomid, key))? {
        Some(Counter(event)) => load_by_short(s, event),
        None => Ok(None),
    }
}

/// The content of a current state event, if set.
pub fn current_state_content(
    s: &Services,
    room_id: &RoomId,
    kind: &StateEventType,
    state_key: &str,
) -> Result<Option<Value>> {
    Ok(current_state_event(s, room_id, kind, state_key)?.map(|e| e.pdu.content_value()))
}
