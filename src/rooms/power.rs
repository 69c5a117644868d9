//! Power levels as clients meet them outside the auth rules (spec: `m.room.power_levels`;
//! room version 12: creators have unlimited power).

use ruma::events::StateEventType;
use ruma::{RoomId, UserId};
use serde_json::Value;

use super::{current_state_event, room, rules_for};
use crate::error::Result;
use crate::services::Services;

/// A user's power in the room's current state; `i64::MAX` for v12 creators.
pub fn user_power(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<i64> {
    let rules = rules_for(&room(s, room_id)?.room_version)?;
    let create = current_state_event(s, room_id, &StateEventType::RoomCreate, "")?;
    if rules.authorization.explicitly_privilege_room_creators
        && let Some(create) = &create
    {
        let extra = create.pdu.content_value();
        let additional = extra.get("additional_creators").and_then(Value::as_array);
        if create.pdu.sender == user_id
            || additional.is_some_and(|a| a.iter().any(|u| u.as_str() == Some(user_id.as_str())))
        {
            return Ok(i64::MAX);
        }
    }
    match current_state_event(s, room_id, &StateEventType::RoomPowerLevels, "")? {
        Some(pl) => {
            let c = pl.pdu.content_value();
            Ok(c.get("users")
                .and_then(|u| u.get(user_id.as_str()))
                .and_then(as_int)
                .or_else(|| c.get("users_default").and_then(as_int))
                .unwrap_or(0))
        }
        // Without power levels the creator has 100 and everyone else 0.
        None => Ok(if create.is_some_and(|c| c.pdu.sender == user_id) { 100 } else { 0 }),
    }
}

/// The level an action needs (`redact`, `kick`, `ban`, `invite`, ...), with the spec's defaults.
pub fn required(s: &Services, room_id: &RoomId, action: &str) -> Result<i64> {
    let default = if action == "invite" { 0 } else { 50 };
    Ok(current_state_event(s, room_id, &StateEventType::RoomPowerLevels, "")?
        .and_then(|pl| pl.pdu.content_value().get(action).and_then(as_int))
        .unwrap_or(default))
}

/// Power levels may be integers or (before room version 10) numeric strings.
fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}
