//! What `/sync` takes from the E2EE (`crate::keys`) and live-data (`crate::ephemeral`) services.
//! One place, so the sync assembly reads as a list of sections.

use std::collections::BTreeMap;

use ruma::{DeviceId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::Value;

use crate::error::Result;
use crate::services::Services;
use crate::storage::records::MembershipRecord;

/// To-device messages after `since` (a page) and the position delivered up to.
pub fn to_device(s: &Services, user: &UserId, device: &DeviceId, since: u64, upto: u64) -> Result<(Vec<Value>, u64)> {
    crate::keys::to_device_page(s, user, device, since, upto)
}

pub fn ack_to_device(s: &Services, user: &UserId, device: &DeviceId, upto: u64) -> Result<()> {
    crate::keys::ack_to_device(s, user, device, upto)
}

pub fn device_lists(
    s: &Services,
    user: &UserId,
    since: u64,
    upto: u64,
    memberships: &[((OwnedUserId, OwnedRoomId), MembershipRecord)],
) -> Result<(Vec<OwnedUserId>, Vec<OwnedUserId>)> {
    crate::keys::changes::device_list_changes_in(s, user, since, upto, memberships)
}

pub fn one_time_key_counts(s: &Services, user: &UserId, device: &DeviceId) -> Result<BTreeMap<String, u64>> {
    crate::keys::one_time_key_counts(s, user, device)
}

pub fn unused_fallback_key_types(s: &Services, user: &UserId, device: &DeviceId) -> Result<Vec<String>> {
    crate::keys::unused_fallback_key_types(s, user, device)
}

/// `m.typing` for the room, without users the viewer ignores.
pub fn typing(s: &Services, room: &RoomId, since: u64, ignored: &[String]) -> Option<Value> {
    let mut ev = crate::ephemeral::typing_since(s, room, since)?;
    if let Some(ids) = ev.pointer_mut("/content/user_ids").and_then(Value::as_array_mut) {
        ids.retain(|u| !u.as_str().is_some_and(|u| ignored.iter().any(|i| i == u)));
    }
    Some(ev)
}

pub fn receipts(s: &Services, room: &RoomId, viewer: &UserId, since: u64, upto: u64) -> Result<Option<Value>> {
    crate::ephemeral::receipts_since(s, room, viewer, since, upto)
}

pub fn presence(s: &Services, viewer: &UserId, since: u64, upto: u64) -> Result<Vec<Value>> {
    crate::ephemeral::presence_since(s, viewer, since, upto)
}

/// Unread counts of a room the user is joined to (since `joined_at`).
pub fn unread_counts(
    s: &Services,
    room: &RoomId,
    user: &UserId,
    joined: crate::ephemeral::unread::Joined<'_>,
) -> Result<(Value, Value)> {
    crate::ephemeral::unread::unread_counts_joined(s, room, user, joined)
}

/// Mark the user active for presence while a sync request or socket is open.
pub async fn activity(
    s: &std::sync::Arc<Services>,
    user: &UserId,
    set_presence: Option<String>,
) -> Result<crate::ephemeral::PresenceGuard> {
    Ok(crate::ephemeral::sync_activity(s, user, set_presence.as_deref()))
}
