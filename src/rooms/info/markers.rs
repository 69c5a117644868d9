//! Read markers (spec: Client-Server API "Fully read markers"): `m.fully_read` room account data.

use ruma::{EventId, RoomId, UserId};
use serde_json::json;

use super::visible_event;
use crate::error::Result;
use crate::rooms::membership;
use crate::services::Services;
use crate::users::account_data;

pub const FULLY_READ: &str = "m.fully_read";

/// Move the user's fully-read marker to `fully_read`, after checking the receipts' events too.
///
/// The user must be joined (`M_FORBIDDEN`); every event named must be one of the room's that
/// the user can see (`M_NOT_FOUND`). Read receipts (`m.read`, `m.read.private`) are validated
/// but not stored yet: receipts arrive with `/sync`, which will record them here.
pub fn set(
    s: &Services,
    room_id: &RoomId,
    user_id: &UserId,
    fully_read: Option<&EventId>,
    receipts: &[&EventId],
) -> Result<()> {
    membership::ensure_joined(s, room_id, user_id)?;
    for event_id in fully_read.iter().chain(receipts) {
        visible_event(s, room_id, event_id, user_id)?;
    }
    if let Some(event_id) = fully_read {
        account_data::set(&s.db, user_id, Some(room_id), FULLY_READ, json!({ "event_id": event_id }))?;
    }
    Ok(())
}
