//! Invites of local users to rooms on other servers (spec: Server-Server API "Inviting to a
//! room"; Client-Server API "Rejecting an invite"). The invite arrives as a signed PDU of a room
//! whose DAG we do not have: it is kept, with the stripped state the inviting server sent, in
//! `remote_invites`, and the user's `user_memberships` row says `invite` so `/sync` lists it.
//! A rejection is the leave sent to the room with `make_leave`/`send_leave`
//! (`federation::join::leave`, [`record_rejection`]), or, when no server takes it, a local
//! out-of-band leave ([`reject`], as Synapse does when the inviting server cannot be reached).

use ruma::events::TimelineEventType;
use ruma::events::room::member::MembershipState;
use ruma::{CanonicalJsonObject, EventId, OwnedEventId, RoomId, RoomVersionId, UserId};
use serde_json::{Value, json};

use super::build::seal;
use super::rules_for;
use crate::error::{Error, Result};
use crate::services::Services;
use crate::storage::catalog::{REMOTE_INVITES, USER_MEMBERSHIPS};
use crate::storage::records::{MembershipRecord, RemoteInviteRecord};
use crate::users::now_ms;

/// Store a verified, countersigned invite for `user`; `/sync` shows it from now on.
pub fn store(
    s: &Services,
    user: &UserId,
    room_id: &RoomId,
    event_id: &EventId,
    room_version: &RoomVersionId,
    event: Value,
    invite_room_state: Vec<Value>,
) -> Result<()> {
    put(s, user, room_id, event_id, room_version, event, invite_room_state, false)
}

/// Store the user's knock `event_id` accepted by a resident server (spec: Server-Server API
/// "Knocking upon a room"), with the `knock_room_state` it answered; `/sync` lists the room
/// under `knock` until the user is invited, joins or rescinds.
pub fn store_knock(
    s: &Services,
    user: &UserId,
    room_id: &RoomId,
    event_id: &EventId,
    room_version: &RoomVersionId,
    event: Value,
    knock_room_state: Vec<Value>,
) -> Result<()> {
    put(s, user, room_id, event_id, room_version, event, knock_room_state, true)
}

#[allow(clippy::too_many_arguments)]
fn put(
    s: &Services,
    user: &UserId,
    room_id: &RoomId,
    event_id: &EventId,
    room_version: &RoomVersionId,
    event: Value,
    invite_room_state: Vec<Value>,
    knock: bool,
) -> Result<()> {
    let pos = s.db.stream().allocate().waking([crate::storage::notifier::Interest::user(user)]);
    let key = (user, room_id);
    let record = RemoteInviteRecord {
        event_id: event_id.to_owned(),
        room_version: room_version.clone(),
        event,
        invite_room_state,
        stream_pos: pos.pos(),
        rejection: None,
        knock,
    };
    let membership = if knock { MembershipState::Knock } else { MembershipState::Invite };
    let membership = MembershipRecord { membership, event_id: event_id.to_owned(), stream_pos: pos.pos() };
    let mut batch = s.db.batch();
    batch.put(REMOTE_INVITES, &key, &record)?;
    batch.put(USER_MEMBERSHIPS, &key, &membership)?;
    batch.stream_position(&pos)?;
    batch.commit()
}

/// The remote invite (or its local rejection) behind the user's membership row `m`, if `m`
/// is one.
pub fn behind(
    s: &Services,
    user: &UserId,
    room_id: &RoomId,
    m: &MembershipRecord,
) -> Result<Option<RemoteInviteRecord>> {
    let Some(record) = s.db.get(REMOTE_INVITES, &(user, room_id))? else { return Ok(None) };
    let matches = match &record.rejection {
        _ if matches!(m.membership, MembershipState::Invite | MembershipState::Knock) => record.event_id == m.event_id,
        Some((leave_id, _)) => m.membership == MembershipState::Leave && *leave_id == m.event_id,
        None => false,
    };
    Ok(matches.then_some(record))
}

/// The user's pending remote invite (or knock) to the room, if their membership is still that.
pub fn pending(s: &Services, user: &UserId, room_id: &RoomId) -> Result<Option<RemoteInviteRecord>> {
    let Some(m) = s.db.get(USER_MEMBERSHIPS, &(user, room_id))? else { return Ok(None) };
    Ok(behind(s, user, room_id, &m)?.filter(|r| r.rejection.is_none()))
}

/// Reject a pending remote invite locally: an out-of-band leave event (our signature, after the
/// invite in `prev_events` and `auth_events`) becomes the user's membership.
pub fn reject(s: &Services, user: &UserId, room_id: &RoomId, reason: Option<&str>) -> Result<OwnedEventId> {
    let record =
        pending(s, user, room_id)?.ok_or_else(|| Error::forbidden(format!("You are not in room {room_id}")))?;
    let rules = rules_for(&record.room_version)?;
    let depth = record.event.get("depth").and_then(Value::as_u64).unwrap_or(0) + 1;
    let mut content = json!({ "membership": MembershipState::Leave });
    if let Some(r) = reason {
        content["reason"] = json!(r);
    }
    let leave = json!({
        "type": TimelineEventType::RoomMember,
        "room_id": room_id,
        "sender": user,
        "state_key": user,
        "content": content,
        "origin_server_ts": now_ms(),
        "depth": depth,
        "prev_events": [record.event_id],
        "auth_events": [record.event_id],
    });
    let obj: CanonicalJsonObject = serde_json::from_value(leave).map_err(Error::internal)?;
    let (pdu, obj) = seal(s, &rules, obj)?;
    record_rejection(s, user, room_id, &pdu.event_id, &obj)?;
    Ok(pdu.event_id)
}

/// Make the leave `leave_id` (the local out-of-band one, or the one sent to the room with
/// `send_leave`) the rejection of the user's pending remote invite and their membership.
pub fn record_rejection(
    s: &Services,
    user: &UserId,
    room_id: &RoomId,
    leave_id: &EventId,
    leave: &CanonicalJsonObject,
) -> Result<()> {
    let mut record =
        pending(s, user, room_id)?.ok_or_else(|| Error::forbidden(format!("You are not in room {room_id}")))?;
    let pos = s.db.stream().allocate().waking([crate::storage::notifier::Interest::user(user)]);
    let key = (user, room_id);
    record.rejection = Some((leave_id.to_owned(), serde_json::to_value(leave).map_err(Error::internal)?));
    let membership =
        MembershipRecord { membership: MembershipState::Leave, event_id: leave_id.to_owned(), stream_pos: pos.pos() };
    let mut batch = s.db.batch();
    batch.put(REMOTE_INVITES, &key, &record)?;
    batch.put(USER_MEMBERSHIPS, &key, &membership)?;
    batch.stream_position(&pos)?;
    batch.commit()
}

/// Forget a remote invite (the user joined the room through federation, or forgot it).
pub fn delete(s: &Services, user: &UserId, room_id: &RoomId) -> Result<()> {
    let mut batch = s.db.batch();
    batch.delete(REMOTE_INVITES, &(user, room_id))?;
    batch.commit()
}

/// `invite_state` for `/sync`: the stripped state the inviting server sent, then the invite.
pub fn invite_state(record: &RemoteInviteRecord) -> Value {
    let mut events: Vec<Value> = record.invite_room_state.clone();
    let e = &record.event;
    events.push(json!({
        "type": TimelineEventType::RoomMember,
        "state_key": e.get("state_key"),
        "sender": e.get("sender"),
        "content": e.get("content").cloned().unwrap_or_else(|| json!({})),
    }));
    json!({ "events": events })
}

/// `knock_state` for `/sync`: the stripped state the resident server answered, then the knock.
pub fn knock_state(record: &RemoteInviteRecord) -> Value {
    invite_state(record)
}

/// The inviting user.
pub fn inviter(record: &RemoteInviteRecord) -> Option<String> {
    record.event.get("sender").and_then(Value::as_str).map(str::to_owned)
}

/// The `/sync` `leave` section of a rejected remote invite: the leave event as its timeline.
pub fn leave_section(room_id: &RoomId, record: &RemoteInviteRecord) -> Option<Value> {
    let (leave_id, leave) = record.rejection.as_ref()?;
    let event = json!({
        "event_id": leave_id,
        "room_id": room_id,
        "type": TimelineEventType::RoomMember,
        "sender": leave.get("sender"),
        "state_key": leave.get("state_key"),
        "content": leave.get("content"),
        "origin_server_ts": leave.get("origin_server_ts"),
        "unsigned": { "membership": MembershipState::Leave },
    });
    Some(json!({
        "timeline": { "events": [event], "limited": false, "prev_batch": format!("s{}", record.stream_pos) },
        "state": { "events": [] },
        "account_data": { "events": [] },
    }))
}
