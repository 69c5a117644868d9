//! Read markers (spec: Client-Server API "Fully read markers"): `m.fully_read` room account data,
//! with the `m.read` / `m.read.private` receipts `/read_markers` may carry (stored as unthreaded
//! receipts by [`crate::ephemeral::receipts`]).

use ruma::{EventId, RoomId, UserId};
use serde_json::json;

use super::visible_event;
use crate::ephemeral::receipts;
use crate::error::Result;
use crate::rooms::membership;
use crate::services::Services;
use crate::users::account_data;

pub const FULLY_READ: &str = "m.fully_read";

/// Move the user's fully-read marker to `fully_read` and their `m.read` / `m.read.private`
/// receipts to `read` / `private`.
///
/// The user must be joined (`M_FORBIDDEN`); every event named must be one of the room's that
/// the user can see (`M_NOT_FOUND`). All are checked before anything is written.
pub fn set(
    s: &Services,
    room_id: &RoomId,
    user_id: &UserId,
    fully_read: Option<&EventId>,
    read: Option<&EventId>,
    private: Option<&EventId>,
) -> Result<()> {
    membership::ensure_joined(s, room_id, user_id)?;
    let visible = |e: Option<&EventId>| e.map(|e| visible_event(s, room_id, e, user_id)).transpose();
    let (fully_read_event, read, private) = (visible(fully_read)?, visible(read)?, visible(private)?);
    if let Some(event) = fully_read_event {
        account_data::set(&s.db, user_id, Some(room_id), FULLY_READ, json!({ "event_id": event.pdu.event_id }))?;
    }
    for (kind, event) in [(receipts::READ, read), (receipts::READ_PRIVATE, private)] {
        if let Some(event) = event {
            receipts::store(s, room_id, user_id, kind, &event, receipts::UNTHREADED)?;
        }
    }
    Ok(())
}
