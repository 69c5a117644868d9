//! Membership changes (spec: Client-Server API "Room membership"): join, invite, leave, kick,
//! ban, unban, knock, forget. Each is an `m.room.member` event that the room version's
//! authorization rules must accept; a refusal is `M_FORBIDDEN` with the rule that failed.

use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};

use super::append::send;
use super::build::NewEvent;
use super::{power, room, room_as_member};
use crate::error::{Error, ErrorKind, Result};
use crate::services::Services;
use crate::storage::catalog::{FORGOTTEN_ROOMS, PROFILES, ROOM_MEMBERSHIPS, USER_MEMBERSHIPS, USERS};
use crate::storage::records::MembershipRecord;

/// The user's current membership in the room (`None` if never a member).
pub fn membership_of(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<Option<MembershipState>> {
    Ok(s.db.get(ROOM_MEMBERSHIPS, &(room_id, user_id))?.map(|m| m.membership))
}

pub fn is_joined(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<bool> {
    Ok(membership_of(s, room_id, user_id)? == Some(MembershipState::Join))
}

/// `M_FORBIDDEN` unless the user is joined; an unknown room is one the user is not in (the
/// answer never tells whether a room exists).
pub fn ensure_joined(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<()> {
    // A membership row is written in the batch that writes the room's record: no need to read it.
    if is_joined(s, room_id, user_id)? {
        Ok(())
    } else {
        Err(Error::forbidden(format!("You are not in room {room_id}")))
    }
}

/// Rooms the user is joined to.
pub fn joined_rooms(s: &Services, user_id: &UserId) -> Result<Vec<OwnedRoomId>> {
    let rows = s.db.scan_prefix(USER_MEMBERSHIPS, user_id)?;
    Ok(rows.into_iter().filter(|(_, m)| m.membership == MembershipState::Join).map(|((_, room), _)| room).collect())
}

/// Rooms both users are joined to, in room ID order (`GET /mutual_rooms`).
pub fn mutual_rooms(s: &Services, user_id: &UserId, other: &UserId) -> Result<Vec<OwnedRoomId>> {
    let mut rooms = Vec::new();
    for room_id in joined_rooms(s, user_id)? {
        if is_joined(s, &room_id, other)? {
            rooms.push(room_id);
        }
    }
    rooms.sort();
    Ok(rooms)
}

/// Users who share at least one joined room with `user_id` (themselves included): who sees
/// their presence, device-list changes and so on.
pub fn shared_users(s: &Services, user_id: &UserId) -> Result<std::collections::BTreeSet<OwnedUserId>> {
    let mut out = std::collections::BTreeSet::new();
    out.insert(user_id.to_owned());
    for room_id in joined_rooms(s, user_id)? {
        for ((_, member), m) in s.db.scan_prefix(ROOM_MEMBERSHIPS, &room_id)? {
            if m.membership == MembershipState::Join {
                out.insert(member);
            }
        }
    }
    Ok(out)
}

/// A local user who exists (users of other servers are invited by `federation::invite::invite_remote`).
pub fn ensure_local_user(s: &Services, user_id: &UserId) -> Result<()> {
    if !s.is_local(user_id) {
        return Err(Error::forbidden("Users on other servers cannot be invited: federation is disabled"));
    }
    if s.db.get(USERS, user_id)?.is_none() {
        return Err(Error::not_found(format!("Unknown user {user_id}")));
    }
    Ok(())
}

/// An `m.room.member` event for `target`, with their display name and avatar for joins.
pub fn member_event(
    s: &Services,
    target: &UserId,
    membership: MembershipState,
    reason: Option<&str>,
    is_direct: bool,
) -> Result<NewEvent> {
    let mut content = json!({ "membership": membership });
    if matches!(membership, MembershipState::Join | MembershipState::Invite | MembershipState::Knock)
        && s.is_local(target)
    {
        for field in ["displayname", "avatar_url"] {
            if let Some(Value::String(v)) = s.db.get(PROFILES, &(target, field))? {
                content[field] = json!(v);
            }
        }
    }
    if let Some(r) = reason {
        content["reason"] = json!(r);
    }
    if is_direct {
        content["is_direct"] = json!(true);
    }
    Ok(NewEvent::state(StateEventType::RoomMember, target.as_str(), content))
}

/// The room's join rule (`invite` when it has none).
pub fn join_rule(s: &Services, room_id: &RoomId) -> Result<String> {
    let content = super::current_state_content(s, room_id, &StateEventType::RoomJoinRules, "")?.unwrap_or_default();
    Ok(rule_of(&content).to_owned())
}

/// The `join_rule` of `m.room.join_rules` content (`invite` when it has none).
fn rule_of(join_rules: &Value) -> &str {
    join_rules.get("join_rule").and_then(Value::as_str).unwrap_or("invite")
}

/// The rooms whose members a `restricted`/`knock_restricted` join rule admits: its `allow`
/// entries of type `m.room_membership` (other types and malformed room IDs are ignored).
pub fn allowed_rooms(join_rules: &Value) -> Vec<OwnedRoomId> {
    join_rules
        .get("allow")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("m.room_membership"))
        .filter_map(|a| a.get("room_id").and_then(Value::as_str).and_then(|r| RoomId::parse(r).ok()))
        .collect()
}

/// For a restricted join (join rule `restricted` in room versions 8+, `knock_restricted` in
/// 10+) of a user not already invited or joined: the local joined user who may invite to put
/// in `join_authorised_via_users_server`, once `user` is known to be joined to one of the
/// rooms of the rule's `allow` list. `None` when no authoriser is needed.
///
/// Errors (as the Server-Server API's `make_join`): 400 `M_UNABLE_TO_AUTHORISE_JOIN` if this
/// server is in none of the allowed rooms, 403 if `user` is in none of them, 400
/// `M_UNABLE_TO_GRANT_JOIN` if no local user may invite.
pub fn restricted_authoriser(s: &Services, room_id: &RoomId, user: &UserId) -> Result<Option<OwnedUserId>> {
    let rules = super::rules_for(&room(s, room_id)?.room_version)?;
    let content = super::current_state_content(s, room_id, &StateEventType::RoomJoinRules, "")?.unwrap_or_default();
    let restricted = match rule_of(&content) {
        "restricted" => rules.authorization.restricted_join_rule,
        "knock_restricted" => rules.authorization.knock_restricted_join_rule,
        _ => false,
    };
    if !restricted || matches!(membership_of(s, room_id, user)?, Some(MembershipState::Join | MembershipState::Invite))
    {
        return Ok(None);
    }
    let mut known = Vec::new();
    for r in allowed_rooms(&content) {
        if super::exists(s, &r)? {
            known.push(r);
        }
    }
    if known.is_empty() {
        return Err(Error::new(
            ErrorKind::UnableToAuthoriseJoin,
            "This server is in none of the rooms that grant access to this room",
        ));
    }
    let mut satisfied = false;
    for r in &known {
        satisfied |= is_joined(s, r, user)?;
    }
    if !satisfied {
        return Err(Error::forbidden(format!("{user} is not in a room that grants access to {room_id}")));
    }
    let needed = power::required(s, room_id, "invite")?;
    for ((_, member), m) in s.db.scan_prefix(ROOM_MEMBERSHIPS, room_id)? {
        if m.membership == MembershipState::Join
            && s.is_local(&member)
            && power::user_power(s, room_id, &member)? >= needed
        {
            return Ok(Some(member));
        }
    }
    Err(Error::new(ErrorKind::UnableToGrantJoin, "No user of this server may invite to this room"))
}

/// Join a room this server is in. For a restricted room the join names a local user who may
/// invite ([`restricted_authoriser`]); a user in none of the allowed rooms gets 403.
pub async fn join(s: &Services, room_id: &RoomId, user_id: &UserId, reason: Option<&str>) -> Result<OwnedEventId> {
    room(s, room_id)?;
    match membership_of(s, room_id, user_id)? {
        Some(MembershipState::Ban) => return Err(Error::forbidden("You are banned from this room")),
        Some(MembershipState::Join) => {
            if let Some(m) = s.db.get(ROOM_MEMBERSHIPS, &(room_id, user_id))? {
                return Ok(m.event_id);
            }
        }
        _ => {}
    }
    // A local user cannot be in an allowed room this server is not in: that is a plain 403.
    let authoriser = restricted_authoriser(s, room_id, user_id).map_err(|e| match e.kind() {
        ErrorKind::UnableToAuthoriseJoin => {
            Error::forbidden(format!("You are not in a room that grants access to {room_id}"))
        }
        _ => e,
    })?;
    let mut event = member_event(s, user_id, MembershipState::Join, reason, false)?;
    if let Some(via) = authoriser {
        event.content["join_authorised_via_users_server"] = json!(via);
    }
    let event = send(s, room_id, user_id, event, None).await?;
    forget_undo(s, room_id, user_id)?;
    Ok(event)
}

/// After a display name or avatar change: a new `m.room.member` join event with the current
/// profile in every room the user is joined to (as Synapse does), so members see the new name.
/// The rest of the member content is kept, but not `join_authorised_via_users_server` (it
/// authorised the original join; another server's authoriser would not have signed this one)
/// nor `reason` (which explained the original join). A room that refuses the event (no power
/// to send it, a broken room) is skipped and logged: the profile itself has already changed.
pub async fn propagate_profile(s: &Services, user_id: &UserId) -> Result<()> {
    for room_id in joined_rooms(s, user_id)? {
        let sent = match profile_event(s, &room_id, user_id) {
            Ok(Some(event)) => send(s, &room_id, user_id, event, None).await.map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::warn!(%room_id, %user_id, error = %e, "profile change not sent to the room");
        }
    }
    Ok(())
}

/// The member event carrying the user's current profile into `room_id`; `None` if their
/// membership there already shows it.
fn profile_event(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<Option<NewEvent>> {
    let mut content = match super::current_state_content(s, room_id, &StateEventType::RoomMember, user_id.as_str())? {
        Some(Value::Object(c)) => c,
        _ => serde_json::Map::new(),
    };
    let before = content.clone();
    for field in ["join_authorised_via_users_server", "reason"] {
        content.remove(field);
    }
    content.insert("membership".into(), json!(MembershipState::Join));
    for field in ["displayname", "avatar_url"] {
        match s.db.get(PROFILES, &(user_id, field))? {
            Some(Value::String(v)) => content.insert(field.into(), json!(v)),
            _ => content.remove(field),
        };
    }
    if ["displayname", "avatar_url"].iter().all(|f| before.get(*f) == content.get(*f)) {
        return Ok(None);
    }
    Ok(Some(NewEvent::state(StateEventType::RoomMember, user_id.as_str(), Value::Object(content))))
}

pub async fn invite(
    s: &Services,
    room_id: &RoomId,
    sender: &UserId,
    target: &UserId,
    reason: Option<&str>,
    is_direct: bool,
) -> Result<OwnedEventId> {
    room_as_member(s, room_id)?;
    ensure_local_user(s, target)?;
    match membership_of(s, room_id, target)? {
        Some(MembershipState::Join) => return Err(Error::forbidden(format!("{target} is already in the room"))),
        Some(MembershipState::Ban) => return Err(Error::forbidden(format!("{target} is banned from the room"))),
        _ => {}
    }
    send(s, room_id, sender, member_event(s, target, MembershipState::Invite, reason, is_direct)?, None).await
}

/// Move `target` to `to` on behalf of `sender`, if their membership is one of `from`
/// (the room version's auth rules then decide whether `sender` may).
async fn transition(
    s: &Services,
    room_id: &RoomId,
    (sender, target): (&UserId, &UserId),
    from: &[MembershipState],
    to: MembershipState,
    reason: Option<&str>,
) -> Result<OwnedEventId> {
    room_as_member(s, room_id)?;
    let current = membership_of(s, room_id, target)?;
    if !current.is_some_and(|m| from.contains(&m)) {
        let why = if sender == target {
            format!("You are not in room {room_id}")
        } else {
            format!("{target} is not {}", from.iter().map(MembershipState::as_str).collect::<Vec<_>>().join(" or "))
        };
        return Err(Error::forbidden(why));
    }
    send(s, room_id, sender, member_event(s, target, to, reason, false)?, None).await
}

const IN_ROOM: &[MembershipState] = &[MembershipState::Join, MembershipState::Invite, MembershipState::Knock];

/// Whether the membership is one in the room (joined, or invited or knocking).
fn in_room(m: &MembershipState) -> bool {
    IN_ROOM.contains(m)
}

/// Leave the room, or reject an invite. An invite from another server to a room we are not in
/// is rejected locally only ([`super::remote_invites::reject`]).
pub async fn leave(s: &Services, room_id: &RoomId, user_id: &UserId, reason: Option<&str>) -> Result<OwnedEventId> {
    if s.db.get(crate::storage::catalog::ROOMS, room_id)?.is_none()
        && super::remote_invites::pending(s, user_id, room_id)?.is_some()
    {
        return super::remote_invites::reject(s, user_id, room_id, reason);
    }
    // Nothing to leave or reject in a room this server does not know: 404 (Synapse: "Not a
    // known room"), where kick, ban and invite answer 403 as for a room one is not in.
    room(s, room_id)?;
    transition(s, room_id, (user_id, user_id), IN_ROOM, MembershipState::Leave, reason).await
}

pub async fn kick(
    s: &Services,
    room_id: &RoomId,
    sender: &UserId,
    target: &UserId,
    reason: Option<&str>,
) -> Result<OwnedEventId> {
    transition(s, room_id, (sender, target), IN_ROOM, MembershipState::Leave, reason).await
}

pub async fn ban(
    s: &Services,
    room_id: &RoomId,
    sender: &UserId,
    target: &UserId,
    reason: Option<&str>,
) -> Result<OwnedEventId> {
    room_as_member(s, room_id)?;
    send(s, room_id, sender, member_event(s, target, MembershipState::Ban, reason, false)?, None).await
}

pub async fn unban(
    s: &Services,
    room_id: &RoomId,
    sender: &UserId,
    target: &UserId,
    reason: Option<&str>,
) -> Result<OwnedEventId> {
    transition(s, room_id, (sender, target), &[MembershipState::Ban], MembershipState::Leave, reason).await
}

pub async fn knock(s: &Services, room_id: &RoomId, user_id: &UserId, reason: Option<&str>) -> Result<OwnedEventId> {
    room(s, room_id)?;
    match membership_of(s, room_id, user_id)? {
        Some(MembershipState::Join) => return Err(Error::forbidden("You are already in the room")),
        Some(MembershipState::Ban) => return Err(Error::forbidden("You are banned from this room")),
        _ => {}
    }
    send(s, room_id, user_id, member_event(s, user_id, MembershipState::Knock, reason, false)?, None).await
}

/// Forget a room the user has left (spec: `POST /rooms/{roomId}/forget`): from now on its
/// history and state are hidden from them ([`ensure_not_forgotten`]) and it leaves their
/// `/sync`, until their membership changes again (a new invite or join un-forgets, as in
/// Synapse, where the flag belongs to the membership event).
pub fn forget(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<()> {
    // The user's side of the memberships: it also holds rejected invites to other servers' rooms.
    let record = s.db.get(USER_MEMBERSHIPS, &(user_id, room_id))?;
    match record {
        Some(m) if in_room(&m.membership) => Err(Error::new(ErrorKind::Unknown, "The user is still in the room")
            .with_status(axum::http::StatusCode::BAD_REQUEST)),
        Some(m) => {
            let mut batch = s.db.batch();
            batch.put(FORGOTTEN_ROOMS, &(user_id, room_id), &json!({ "event_id": m.event_id }))?;
            batch.commit()
        }
        None => Err(Error::not_found("You were never in this room")),
    }
}

/// Has the user forgotten the room? Only while their membership is still the one they forgot
/// (rows written before the event ID was kept count while the user is not in the room).
pub fn is_forgotten(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<bool> {
    match s.db.get(USER_MEMBERSHIPS, &(user_id, room_id))? {
        Some(m) => forgotten(s, room_id, user_id, &m),
        None => Ok(false),
    }
}

/// [`is_forgotten`] for the user's membership `m` in the room, already read by the caller.
pub fn forgotten(s: &Services, room_id: &RoomId, user_id: &UserId, m: &MembershipRecord) -> Result<bool> {
    let Some(row) = s.db.get(FORGOTTEN_ROOMS, &(user_id, room_id))? else {
        return Ok(false);
    };
    Ok(match row.get("event_id").and_then(Value::as_str) {
        Some(forgotten) => forgotten == m.event_id.as_str(),
        None => !in_room(&m.membership),
    })
}

/// `M_FORBIDDEN` if the user forgot the room, unless it is world-readable (as Synapse: a
/// forgotten room reads like one never joined).
pub fn ensure_not_forgotten(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<()> {
    if !is_forgotten(s, room_id, user_id)? {
        return Ok(());
    }
    let visibility = super::current_state_content(s, room_id, &StateEventType::RoomHistoryVisibility, "")?;
    if visibility.as_ref().and_then(|c| c.get("history_visibility")).and_then(Value::as_str) == Some("world_readable") {
        return Ok(());
    }
    Err(Error::forbidden(format!("You are not allowed to see room {room_id}")))
}

/// A room the user joins again is no longer forgotten.
pub fn forget_undo(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<()> {
    let key = (user_id, room_id);
    if s.db.get(FORGOTTEN_ROOMS, &key)?.is_none() {
        return Ok(());
    }
    let mut batch = s.db.batch();
    batch.delete(FORGOTTEN_ROOMS, &key)?;
    batch.commit()
}
