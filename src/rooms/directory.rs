//! The public room directory (spec: Client-Server API "Listing rooms"): published rooms with
//! their summary, searchable by a generic term, paginated by offset tokens.

use ruma::RoomId;
use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use serde_json::{Value, json};

use super::current_state_content;
use crate::error::{Error, Result};
use crate::services::Services;
use crate::storage::catalog::{PUBLISHED_ROOMS, ROOM_MEMBERSHIPS};

pub fn set_published(s: &Services, room_id: &RoomId, public: bool) -> Result<()> {
    let mut batch = s.db.batch();
    if public {
        batch.put(PUBLISHED_ROOMS, room_id, &json!(true))?;
    } else {
        batch.delete(PUBLISHED_ROOMS, room_id)?;
    }
    batch.commit()
}

pub fn is_published(s: &Services, room_id: &RoomId) -> Result<bool> {
    Ok(s.db.get(PUBLISHED_ROOMS, room_id)?.is_some())
}

/// The directory entry of a room (spec: `PublishedRoomsChunk`).
pub fn summary(s: &Services, room_id: &RoomId) -> Result<Value> {
    let content = |kind: &StateEventType, field: &str| -> Result<Option<Value>> {
        Ok(current_state_content(s, room_id, kind, "")?.and_then(|c| c.get(field).cloned()).filter(|v| !v.is_null()))
    };
    let joined =
        s.db.scan_prefix(ROOM_MEMBERSHIPS, room_id)?
            .iter()
            .filter(|(_, m)| m.membership == MembershipState::Join)
            .count();
    let history = content(&StateEventType::RoomHistoryVisibility, "history_visibility")?;
    let join_rule = content(&StateEventType::RoomJoinRules, "join_rule")?.unwrap_or_else(|| json!("invite"));
    let mut out = json!({
        "room_id": room_id,
        "num_joined_members": joined,
        "world_readable": history.as_ref().and_then(Value::as_str) == Some("world_readable"),
        "guest_can_join": content(&StateEventType::RoomGuestAccess, "guest_access")?.as_ref().and_then(Value::as_str) == Some("can_join"),
        "join_rule": join_rule,
    });
    for (key, kind, field) in [
        ("name", StateEventType::RoomName, "name"),
        ("topic", StateEventType::RoomTopic, "topic"),
        ("canonical_alias", StateEventType::RoomCanonicalAlias, "alias"),
        ("avatar_url", StateEventType::RoomAvatar, "url"),
        ("room_type", StateEventType::RoomCreate, "type"),
    ] {
        if let Some(v) = content(&kind, field)? {
            out[key] = v;
        }
    }
    Ok(out)
}

/// One page of the directory: `(chunk, next_batch, prev_batch, total)`.
pub type Page = (Vec<Value>, Option<String>, Option<String>, usize);

/// One page of the directory (see [`Page`]).
pub fn list(s: &Services, term: Option<&str>, since: Option<&str>, limit: Option<usize>) -> Result<Page> {
    let offset: usize = match since {
        Some(t) => t
            .strip_prefix('p')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::invalid_param("Invalid since token"))?,
        None => 0,
    };
    let term = term.map(str::to_lowercase).filter(|t| !t.is_empty());
    let mut rooms = Vec::new();
    for (room_id, _) in s.db.scan_all(PUBLISHED_ROOMS)? {
        let entry = summary(s, &room_id)?;
        if let Some(term) = &term {
            let hay = ["name", "topic", "canonical_alias"]
                .iter()
                .filter_map(|k| entry[*k].as_str())
                .collect::<Vec<_>>()
                .join(" ");
            if !hay.to_lowercase().contains(term) {
                continue;
            }
        }
        rooms.push(entry);
    }
    rooms.sort_by(|a, b| {
        b["num_joined_members"]
            .as_u64()
            .cmp(&a["num_joined_members"].as_u64())
            .then_with(|| a["room_id"].as_str().cmp(&b["room_id"].as_str()))
    });
    let total = rooms.len();
    let limit = limit.unwrap_or(total.max(1)).max(1);
    let page: Vec<Value> = rooms.into_iter().skip(offset).take(limit).collect();
    let next = (offset + page.len() < total).then(|| format!("p{}", offset + page.len()));
    let prev = (offset > 0).then(|| format!("p{}", offset.saturating_sub(limit)));
    Ok((page, next, prev, total))
}
