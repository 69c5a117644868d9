//! Room summaries (spec v1.15 `GET /room_summary/{roomIdOrAlias}`, MSC3266): the directory
//! entry of a room plus its version, encryption and the requester's membership.

use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use ruma::{RoomId, UserId};
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::rooms::{current_state_content, directory, membership, room};
use crate::services::Services;

/// The summary of a room the requester may preview: a room anyone may join or knock on, a
/// world-readable room, a room the requester is in, invited to or knocking on, or a restricted
/// room whose allowed rooms they are in. Any other room is `M_NOT_FOUND`, as if it did not exist.
pub fn summary(s: &Services, room_id: &RoomId, requester: Option<&UserId>) -> Result<Value> {
    let not_found = || Error::not_found("Room not found.");
    let record = room(s, room_id).map_err(|e| if e.kind() == ErrorKind::NotFound { not_found() } else { e })?;
    let mut out = directory::summary(s, room_id)?;
    let join_rule = out["join_rule"].as_str().unwrap_or("invite").to_owned();
    let mine = match requester {
        Some(user) => membership::membership_of(s, room_id, user)?,
        None => None,
    };
    let allowed = allowed_rooms(s, room_id, &join_rule)?;
    let visible = matches!(join_rule.as_str(), "public" | "knock" | "knock_restricted")
        || out["world_readable"] == json!(true)
        || matches!(mine, Some(MembershipState::Join | MembershipState::Invite | MembershipState::Knock))
        || match requester {
            Some(user) => in_any(s, &allowed, user)?,
            None => false,
        };
    if !visible {
        return Err(not_found());
    }
    out["room_version"] = json!(record.room_version);
    if let Some(alg) = current_state_content(s, room_id, &StateEventType::RoomEncryption, "")?
        .and_then(|c| c.get("algorithm").cloned())
    {
        out["encryption"] = alg;
    }
    if !allowed.is_empty() {
        out["allowed_room_ids"] = json!(allowed);
    }
    if requester.is_some() {
        out["membership"] = json!(mine.unwrap_or(MembershipState::Leave));
    }
    Ok(out)
}

/// The rooms whose members may join a restricted room (`m.room_membership` allow conditions).
fn allowed_rooms(s: &Services, room_id: &RoomId, join_rule: &str) -> Result<Vec<String>> {
    if !matches!(join_rule, "restricted" | "knock_restricted") {
        return Ok(Vec::new());
    }
    let content = current_state_content(s, room_id, &StateEventType::RoomJoinRules, "")?.unwrap_or_default();
    let allow = content.get("allow").and_then(Value::as_array).cloned().unwrap_or_default();
    Ok(allow
        .iter()
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("m.room_membership"))
        .filter_map(|a| a.get("room_id").and_then(Value::as_str).map(str::to_owned))
        .collect())
}

fn in_any(s: &Services, rooms: &[String], user: &UserId) -> Result<bool> {
    for r in rooms.iter().filter_map(|r| RoomId::parse(r).ok()) {
        if membership::is_joined(s, &r, user)? {
            return Ok(true);
        }
    }
    Ok(false)
}
