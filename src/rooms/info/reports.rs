//! Content reports (spec: Client-Server API "Reporting content"): reports of an event or a whole
//! room, kept in the `reports` table for the server's operators.

use ruma::{EventId, RoomId, UserId};
use serde_json::{Value, json};

use super::visible_event;
use crate::error::{Error, ErrorKind, Result};
use crate::rooms::{membership, room};
use crate::services::Services;
use crate::storage::catalog::REPORTS;
use crate::users::now_ms;

/// Report an event. The reporter must be joined to the room and able to see the event; the
/// spec answers `M_NOT_FOUND` for an unknown room or event and for a reporter not joined alike.
pub fn report_event(
    s: &Services,
    room_id: &RoomId,
    event_id: &EventId,
    reporter: &UserId,
    reason: Option<&str>,
) -> Result<()> {
    let hidden = "The event was not found or you are not joined to the room";
    renamed(room(s, room_id), hidden)?;
    if !membership::is_joined(s, room_id, reporter)? {
        return Err(Error::not_found(hidden));
    }
    renamed(visible_event(s, room_id, event_id, reporter), hidden)?;
    store(s, room_id, Some(event_id), reporter, reason)
}

/// Report a room (spec v1.13). The reporter need not be in it; an unknown room is `M_NOT_FOUND`.
pub fn report_room(s: &Services, room_id: &RoomId, reporter: &UserId, reason: &str) -> Result<()> {
    renamed(room(s, room_id), "The room was not found")?;
    store(s, room_id, None, reporter, Some(reason))
}

/// `M_NOT_FOUND` with the spec's message; other errors unchanged.
fn renamed<T>(r: Result<T>, message: &str) -> Result<T> {
    r.map_err(|e| if e.kind() == ErrorKind::NotFound { Error::not_found(message) } else { e })
}

fn store(
    s: &Services,
    room_id: &RoomId,
    event_id: Option<&EventId>,
    reporter: &UserId,
    reason: Option<&str>,
) -> Result<()> {
    let pos = s.db.stream().allocate();
    let mut record = json!({
        "reporter": reporter,
        "room_id": room_id,
        "reason": reason,
        "ts": now_ms(),
    });
    if let Some(event_id) = event_id {
        record["event_id"] = json!(event_id);
    }
    let mut batch = s.db.batch();
    batch.put(REPORTS, &(room_id, pos.pos()), &record)?;
    batch.stream_position(&pos)?;
    batch.commit()
}

/// The reports about a room, oldest first.
pub fn list(s: &Services, room_id: &RoomId) -> Result<Vec<Value>> {
    Ok(s.db.scan_prefix(REPORTS, room_id)?.into_iter().map(|(_, v)| v).collect())
}
