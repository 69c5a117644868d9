//! The user directory (spec: `POST /user_directory/search`): users who share a room with the
//! searcher, or are joined to a public (`join_rule: public`) or world-readable room.

use std::collections::BTreeSet;

use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::Value;

use crate::error::Result;
use crate::rooms::current_state_content;
use crate::services::Services;
use crate::storage::catalog::{PROFILES, ROOM_MEMBERSHIPS, ROOMS, USER_MEMBERSHIPS, USERS};

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub user_id: OwnedUserId,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// Users matching every word of `term` (case-insensitively, anywhere in their user ID or display
/// name), best first: a word starting the localpart or a display-name word ranks higher, then
/// users with profile information, then by user ID. Returns at most `limit` and whether more
/// matched.
pub fn search(s: &Services, searcher: &UserId, term: &str, limit: usize) -> Result<(Vec<Found>, bool)> {
    let words: Vec<String> = term.split_whitespace().map(str::to_lowercase).collect();
    let mut ranked = Vec::new();
    for user_id in candidates(s, searcher)? {
        if s.is_local(&user_id) && s.db.get(USERS, &user_id)?.is_none_or(|u| u.deactivated) {
            continue;
        }
        let field = |name: &str| -> Result<Option<String>> {
            Ok(s.db.get(PROFILES, &(&user_id, name))?.and_then(|v| match v {
                Value::String(v) if !v.is_empty() => Some(v),
                _ => None,
            }))
        };
        let (display_name, avatar_url) = (field("displayname")?, field("avatar_url")?);
        let id_lower = user_id.as_str().to_lowercase();
        let name_lower = display_name.as_deref().map(str::to_lowercase).unwrap_or_default();
        if !words.iter().all(|w| id_lower.contains(w.as_str()) || name_lower.contains(w.as_str())) {
            continue;
        }
        let localpart = user_id.localpart().to_lowercase();
        let prefix = words.iter().any(|w| {
            localpart.starts_with(w.as_str()) || name_lower.split_whitespace().any(|n| n.starts_with(w.as_str()))
        });
        let no_profile = display_name.is_none() && avatar_url.is_none();
        ranked.push(((!prefix, no_profile), Found { user_id, display_name, avatar_url }));
    }
    ranked.sort_by(|(ra, a), (rb, b)| ra.cmp(rb).then_with(|| a.user_id.cmp(&b.user_id)));
    let limited = ranked.len() > limit;
    Ok((ranked.into_iter().take(limit).map(|(_, f)| f).collect(), limited))
}

/// Everyone joined to a room the searcher is joined to, or to a public or world-readable room.
fn candidates(s: &Services, searcher: &UserId) -> Result<BTreeSet<OwnedUserId>> {
    let mut rooms: BTreeSet<OwnedRoomId> =
        s.db.scan_prefix(USER_MEMBERSHIPS, searcher)?
            .into_iter()
            .filter(|(_, m)| m.membership == MembershipState::Join)
            .map(|((_, room_id), _)| room_id)
            .collect();
    for (room_id, _) in s.db.scan_all(ROOMS)? {
        if !rooms.contains(&room_id) && is_public(s, &room_id)? {
            rooms.insert(room_id);
        }
    }
    let mut users = BTreeSet::new();
    for room_id in rooms {
        for ((_, user), m) in s.db.scan_prefix(ROOM_MEMBERSHIPS, &room_id)? {
            if m.membership == MembershipState::Join {
                users.insert(user);
            }
        }
    }
    Ok(users)
}

fn is_public(s: &Services, room_id: &RoomId) -> Result<bool> {
    let field = |kind: &StateEventType, key: &str| -> Result<Option<String>> {
        Ok(current_state_content(s, room_id, kind, "")?
            .and_then(|c| c.get(key).and_then(Value::as_str).map(str::to_owned)))
    };
    Ok(field(&StateEventType::RoomJoinRules, "join_rule")?.as_deref() == Some("public")
        || field(&StateEventType::RoomHistoryVisibility, "history_visibility")?.as_deref() == Some("world_readable"))
}
