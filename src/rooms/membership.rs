//! Membership changes (spec: Client-Server API "Room membership"): join, invite, leave, kick,
//! ban, unban, knock, forget. Each is an `m.room.member` event that the room version's
//! authorization rules must accept; a refusal is `M_FORBIDDEN` with the rule that failed.

use ruma::{OwnedEventId, RoomId, UserId};
use serde_json::{Value, json};

use super::append::send;
use super::build::NewEvent;
use super::{room, room_as_member};
use crate::error::{Error, Result};
use crate::services::Services;
use crate::storage::catalog::{FORGOTTEN_ROOMS, PROFILES, ROOM_MEMBERSHIPS, USERS};

/// The user's current membership in the room (`None` if never a member).
pub fn membership_of(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<Option<String>> {
    Ok(s.db.get(ROOM_MEMBERSHIPS, &(room_id.to_string(), user_id.to_string()))?.map(|m| m.membership))
}

pub fn is_joined(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<bool> {
    Ok(membership_of(s, room_id, user_id)?.as_deref() == Some("join"))
}

/// `M_FORBIDDEN` unless the user is joined; an unknown room is one the user is not in (the
/// answer never tells whether a room exists).
pub fn ensure_joined(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<()> {
    if is_joined(s, room_id, user_id)? {
        room(s, room_id).map(drop)
    } else {
        Err(Error::forbidden(format!("You are not in room {room_id}")))
    }
}

/// Rooms the user is joined to.
pub fn joined_rooms(s: &Services, user_id: &UserId) -> Result<Vec<ruma::OwnedRoomId>> {
    let rows = s.db.scan_prefix(crate::storage::catalog::USER_MEMBERSHIPS, &user_id.to_string())?;
    rows.into_iter()
        .filter(|(_, m)| m.membership == "join")
        .map(|((_, room), _)| RoomId::parse(room).map_err(Error::internal))
        .collect()
}

/// Users who share at least one joined room with `user_id` (themselves included): who sees
/// their presence, device-list changes and so on.
pub fn shared_users(s: &Services, user_id: &UserId) -> Result<std::collections::BTreeSet<ruma::OwnedUserId>> {
    let mut out = std::collections::BTreeSet::new();
    out.insert(user_id.to_owned());
    for room_id in joined_rooms(s, user_id)? {
        for ((_, member), m) in s.db.scan_prefix(ROOM_MEMBERSHIPS, &room_id.to_string())? {
            if m.membership == "join" {
                if let Ok(u) = UserId::parse(member) {
                    out.insert(u);
                }
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
    if s.db.get(USERS, &user_id.to_string())?.is_none() {
        return Err(Error::not_found(format!("Unknown user {user_id}")));
    }
    Ok(())
}

/// An `m.room.member` event for `target`, with their display name and avatar for joins.
pub fn member_event(
    s: &Services,
    target: &UserId,
    membership: &str,
    reason: Option<&str>,
    is_direct: bool,
) -> Result<NewEvent> {
    let mut content = json!({ "membership": membership });
    if matches!(membership, "join" | "invite" | "knock") && s.is_local(target) {
        for field in ["displayname", "avatar_url"] {
            if let Some(Value::String(v)) = s.db.get(PROFILES, &(target.to_string(), field.to_owned()))? {
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
    Ok(NewEvent::state("m.room.member", target.as_str(), content))
}

pub fn join(s: &Services, room_id: &RoomId, user_id: &UserId, reason: Option<&str>) -> Result<OwnedEventId> {
    room(s, room_id)?;
    match membership_of(s, room_id, user_id)?.as_deref() {
        Some("ban") => return Err(Error::forbidden("You are banned from this room")),
        Some("join") => {
            if let Some(m) = s.db.get(ROOM_MEMBERSHIPS, &(room_id.to_string(), user_id.to_string()))? {
                return ruma::EventId::parse(m.event_id).map_err(Error::internal);
            }
        }
        _ => {}
    }
    let event = send(s, room_id, user_id, member_event(s, user_id, "join", reason, false)?, None)?;
    forget_undo(s, room_id, user_id)?;
    Ok(event)
}

pub fn invite(
    s: &Services,
    room_id: &RoomId,
    sender: &UserId,
    target: &UserId,
    reason: Option<&str>,
    is_direct: bool,
) -> Result<OwnedEventId> {
    room_as_member(s, room_id)?;
    ensure_local_user(s, target)?;
    match membership_of(s, room_id, target)?.as_deref() {
        Some("join") => return Err(Error::forbidden(format!("{target} is already in the room"))),
        Some("ban") => return Err(Error::forbidden(format!("{target} is banned from the room"))),
        _ => {}
    }
    send(s, room_id, sender, member_event(s, target, "invite", reason, is_direct)?, None)
}

/// Move `target` to `to` on behalf of `sender`, if their membership is one of `from`
/// (the room version's auth rules then decide whether `sender` may).
fn transition(
    s: &Services,
    room_id: &RoomId,
    (sender, target): (&UserId, &UserId),
    from: &[&str],
    to: &str,
    reason: Option<&str>,
) -> Result<OwnedEventId> {
    room_as_member(s, room_id)?;
    let current = membership_of(s, room_id, target)?;
    if !current.as_deref().is_some_and(|m| from.contains(&m)) {
        let why = if sender == target {
            format!("You are not in room {room_id}")
        } else {
            format!("{target} is not {}", from.join(" or "))
        };
        return Err(Error::forbidden(why));
    }
    send(s, room_id, sender, member_event(s, target, to, reason, false)?, None)
}

const IN_ROOM: &[&str] = &["join", "invite", "knock"];

/// Leave the room, or reject an invite. An invite from another server to a room we are not in
/// is rejected locally only ([`super::remote_invites::reject`]).
pub fn leave(s: &Services, room_id: &RoomId, user_id: &UserId, reason: Option<&str>) -> Result<OwnedEventId> {
    if s.db.get(crate::storage::catalog::ROOMS, &room_id.to_string())?.is_none()
        && super::remote_invites::pending(s, user_id, room_id)?.is_some()
    {
        return super::remote_invites::reject(s, user_id, room_id, reason);
    }
    // Nothing to leave or reject in a room this server does not know: 404 (Synapse: "Not a
    // known room"), where kick, ban and invite answer 403 as for a room one is not in.
    room(s, room_id)?;
    transition(s, room_id, (user_id, user_id), IN_ROOM, "leave", reason)
}

pub fn kick(
    s: &Services,
    room_id: &RoomId,
    sender: &UserId,
    target: &UserId,
    reason: Option<&str>,
) -> Result<OwnedEventId> {
    transition(s, room_id, (sender, target), IN_ROOM, "leave", reason)
}

pub fn ban(
    s: &Services,
    room_id: &RoomId,
    sender: &UserId,
    target: &UserId,
    reason: Option<&str>,
) -> Result<OwnedEventId> {
    room_as_member(s, room_id)?;
    send(s, room_id, sender, member_event(s, target, "ban", reason, false)?, None)
}

pub fn unban(
    s: &Services,
    room_id: &RoomId,
    sender: &UserId,
    target: &UserId,
    reason: Option<&str>,
) -> Result<OwnedEventId> {
    transition(s, room_id, (sender, target), &["ban"], "leave", reason)
}

pub fn knock(s: &Services, room_id: &RoomId, user_id: &UserId, reason: Option<&str>) -> Result<OwnedEventId> {
    room(s, room_id)?;
    match membership_of(s, room_id, user_id)?.as_deref() {
        Some("join") => return Err(Error::forbidden("You are already in the room")),
        Some("ban") => return Err(Error::forbidden("You are banned from this room")),
        _ => {}
    }
    send(s, room_id, user_id, member_event(s, user_id, "knock", reason, false)?, None)
}

/// Forget a room the user has left (spec: `POST /rooms/{roomId}/forget`).
pub fn forget(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<()> {
    match membership_of(s, room_id, user_id)?.as_deref() {
        Some("join" | "invite" | "knock") => {
            Err(Error::new(crate::error::ErrorKind::Unknown, "The user is still in the room")
                .with_status(axum::http::StatusCode::BAD_REQUEST))
        }
        Some(_) => {
            let mut batch = s.db.batch();
            batch.put(FORGOTTEN_ROOMS, &(user_id.to_string(), room_id.to_string()), &json!(true))?;
            batch.commit()
        }
        None => Err(Error::not_found("You were never in this room")),
    }
}

/// A room the user joins again is no longer forgotten.
pub fn forget_undo(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<()> {
    let key = (user_id.to_string(), room_id.to_string());
    if s.db.get(FORGOTTEN_ROOMS, &key)?.is_none() {
        return Ok(());
    }
    let mut batch = s.db.batch();
    batch.delete(FORGOTTEN_ROOMS, &key)?;
    batch.commit()
}
