//! Room upgrades (spec: Client-Server API "Room Upgrades"): a new room whose create event names
//! its predecessor, the old room's important state carried over, local aliases moved, a
//! tombstone in the old room and its power levels raised so ordinary users can no longer talk.

use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use ruma::{OwnedRoomId, RoomId, RoomVersionId, UserId};
use serde_json::{Value, json};

use super::append::send;
use super::build::NewEvent;
use super::create::{CreateRoom, creatable, create};
use super::{alias, current_state, current_state_content, current_state_event, membership, power, read, rules_for};
use crate::error::{Error, ErrorKind, Result};
use crate::services::Services;

/// State copied into the replacement room (as Synapse does).
const CARRIED_STATE: [StateEventType; 8] = [
    StateEventType::RoomServerAcl,
    StateEventType::RoomEncryption,
    StateEventType::RoomName,
    StateEventType::RoomAvatar,
    StateEventType::RoomTopic,
    StateEventType::RoomGuestAccess,
    StateEventType::RoomHistoryVisibility,
    StateEventType::RoomJoinRules,
];

pub async fn upgrade(s: &Services, old: &RoomId, user: &UserId, new_version: &RoomVersionId) -> Result<OwnedRoomId> {
    if !creatable(new_version) {
        return Err(Error::new(
            ErrorKind::UnsupportedRoomVersion,
            format!("Cannot upgrade to room version {new_version}"),
        ));
    }
    membership::ensure_joined(s, old, user)?;
    let tombstone_level = current_state_content(s, old, &StateEventType::RoomPowerLevels, "")?
        .and_then(|pl| pl.get("events").and_then(|e| e.get("m.room.tombstone")).and_then(Value::as_i64))
        .map_or_else(|| power::required(s, old, "state_default"), Ok)?;
    if power::user_power(s, old, user)? < tombstone_level {
        return Err(Error::forbidden("You do not have permission to upgrade this room"));
    }

    let last_event = read::messages(s, old, user, None, None, true, 1, &read::EventFilter::default())?
        .chunk
        .first()
        .map(|e| e.meta.event_id.clone());
    let mut creation = json!({ "predecessor": { "room_id": old } });
    if let Some(e) = last_event {
        creation["predecessor"]["event_id"] = json!(e);
    }
    if let Some(kind) =
        current_state_content(s, old, &StateEventType::RoomCreate, "")?.and_then(|c| c.get("type").cloned())
    {
        creation["type"] = kind;
    }
    let mut initial_state = Vec::new();
    for kind in CARRIED_STATE {
        if let Some(content) = current_state_content(s, old, &kind, "")? {
            initial_state.push(NewEvent::state(kind, "", content));
        }
    }
    let mut power_levels = current_state_content(s, old, &StateEventType::RoomPowerLevels, "")?;
    if let Some(pl) = power_levels.as_mut() {
        let new_rules = rules_for(new_version)?;
        if let Some(users) = pl.get_mut("users").and_then(Value::as_object_mut) {
            if new_rules.authorization.explicitly_privilege_room_creators {
                // Room version 12: creators have unlimited power and must not be listed.
                users.remove(user.as_str());
            } else {
                users.insert(user.to_string(), json!(100));
            }
        }
    }
    let req = CreateRoom {
        room_version: Some(new_version.clone()),
        creation_content: Some(creation),
        preset: Some("private_chat".into()),
        initial_state,
        power_level_content_override: power_levels,
        ..Default::default()
    };
    let new_room = create(s, user, req).await?;

    // Bans carry over; local aliases move with the canonical alias.
    let old_state = current_state(s, old)?;
    for ev in read::member_events(s, &old_state)? {
        if ev.pdu.content_value().get("membership").and_then(Value::as_str).map(MembershipState::from)
            == Some(MembershipState::Ban)
            && let Some(target) = ev.pdu.state_key.as_deref().and_then(|k| UserId::parse(k).ok())
        {
            membership::ban(s, &new_room, user, &target, ev.pdu.content_value().get("reason").and_then(Value::as_str))
                .await?;
        }
    }
    for alias_id in alias::list(s, old)? {
        alias::remove(s, &alias_id)?;
        alias::add(s, &alias_id, &new_room, user)?;
    }
    if let Some(canonical) = current_state_event(s, old, &StateEventType::RoomCanonicalAlias, "")? {
        let content = canonical.pdu.content_value();
        send(s, &new_room, user, NewEvent::state(StateEventType::RoomCanonicalAlias, "", content), None).await?;
        send(s, old, user, NewEvent::state(StateEventType::RoomCanonicalAlias, "", json!({})), None).await?;
    }
    if super::directory::is_published(s, old)? {
        super::directory::set_published(s, old, false)?;
        super::directory::set_published(s, &new_room, true)?;
    }

    let tombstone = json!({ "body": "This room has been replaced", "replacement_room": new_room });
    send(s, old, user, NewEvent::state(StateEventType::RoomTombstone, "", tombstone), None).await?;
    if let Some(mut pl) = current_state_content(s, old, &StateEventType::RoomPowerLevels, "")? {
        let users_default = pl.get("users_default").and_then(Value::as_i64).unwrap_or(0);
        let restricted = (users_default + 1).max(50);
        pl["events_default"] = json!(restricted);
        pl["invite"] = json!(restricted);
        // Failing to restrict the old room is not fatal: the tombstone already points onward.
        let _ = send(s, old, user, NewEvent::state(StateEventType::RoomPowerLevels, "", pl), None).await;
    }
    tracing::info!(%old, %new_room, %new_version, "room upgraded");
    Ok(new_room)
}
