//! Per-user room data and room information for the client API: tags, read markers, content
//! reports, timestamp lookup, room summaries and the user directory (the service side of
//! `api/client/room_info/`).
//!
//! All functions here are synchronous storage reads and writes, called directly from async code.

pub mod directory;
pub mod markers;
pub mod reports;
pub mod summary;
pub mod tags;
pub mod timestamp;

use ruma::{EventId, RoomId, UserId};

use super::{StoredEvent, load, membership, read};
use crate::error::{Error, Result};
use crate::services::Services;

/// An event of `room_id` that `viewer` may see (spec: "History visibility"); `M_NOT_FOUND` if it
/// does not exist, belongs to another room, was rejected or is hidden from the viewer.
pub fn visible_event(s: &Services, room_id: &RoomId, event_id: &EventId, viewer: &UserId) -> Result<StoredEvent> {
    let not_found = || Error::not_found(format!("Event {event_id} not found in room {room_id}"));
    let ev = load(s, event_id)?.ok_or_else(not_found)?;
    if ev.pdu.room()? != room_id || ev.meta.rejected || ev.meta.soft_failed || ev.meta.outlier {
        return Err(not_found());
    }
    membership::ensure_not_forgotten(s, room_id, viewer)?;
    let current = membership::membership_of(s, room_id, viewer)?;
    if !read::can_see(s, viewer, &ev, current.as_ref())? {
        return Err(not_found());
    }
    Ok(ev)
}
