//! Room aliases (spec: Client-Server API "Room aliases"): local `#alias:server` → room ID.

use ruma::{OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomAliasId, RoomId, UserId};

use crate::error::{Error, ErrorKind, Result};
use crate::services::Services;
use crate::storage::catalog::{ALIASES, ROOM_ALIASES};

/// A well-formed local alias that is still free: `M_INVALID_PARAM` or `M_ROOM_IN_USE` otherwise.
pub fn check_new(s: &Services, alias: &str) -> Result<OwnedRoomAliasId> {
    let alias = RoomAliasId::parse(alias).map_err(|_| Error::invalid_param(format!("Invalid alias {alias}")))?;
    if alias.server_name() != s.server_name {
        return Err(Error::invalid_param("Aliases must be on this server"));
    }
    if alias.alias().contains([' ', ':']) || alias.alias().is_empty() {
        return Err(Error::invalid_param("Invalid characters in alias"));
    }
    if s.db.get(ALIASES, &alias)?.is_some() {
        return Err(Error::new(ErrorKind::RoomInUse, "Room alias already taken"));
    }
    Ok(alias)
}

pub fn add(s: &Services, alias: &RoomAliasId, room_id: &RoomId, creator: &UserId) -> Result<()> {
    let mut batch = s.db.batch();
    batch.put(ALIASES, alias, &room_id.to_owned())?;
    batch.put(ROOM_ALIASES, &(room_id, alias), &creator.to_owned())?;
    batch.commit()
}

pub fn resolve(s: &Services, alias: &RoomAliasId) -> Result<Option<OwnedRoomId>> {
    s.db.get(ALIASES, alias)
}

pub fn remove(s: &Services, alias: &RoomAliasId) -> Result<()> {
    let Some(room_id) = s.db.get(ALIASES, alias)? else {
        return Err(Error::not_found("Room alias not found"));
    };
    let mut batch = s.db.batch();
    batch.delete(ALIASES, alias)?;
    batch.delete(ROOM_ALIASES, &(&*room_id, alias))?;
    batch.commit()
}

/// Who created an alias (they and room moderators may delete it).
pub fn creator(s: &Services, room_id: &RoomId, alias: &RoomAliasId) -> Result<Option<OwnedUserId>> {
    s.db.get(ROOM_ALIASES, &(room_id, alias))
}

pub fn list(s: &Services, room_id: &RoomId) -> Result<Vec<OwnedRoomAliasId>> {
    Ok(s.db.scan_prefix(ROOM_ALIASES, room_id)?.into_iter().map(|((_, a), _)| a).collect())
}

/// Every alias named by `m.room.canonical_alias` content (`alias`, then `alt_aliases`).
pub fn canonical_aliases(content: &serde_json::Value) -> Vec<&str> {
    let mut aliases: Vec<&str> = Vec::new();
    if let Some(a) = content.get("alias").and_then(serde_json::Value::as_str) {
        aliases.push(a);
    }
    if let Some(list) = content.get("alt_aliases").and_then(serde_json::Value::as_array) {
        aliases.extend(list.iter().filter_map(serde_json::Value::as_str));
    }
    aliases
}

/// Every alias named in `m.room.canonical_alias` content is a syntactically valid alias, else
/// 400 `M_INVALID_PARAM` (spec: `PUT /rooms/{roomId}/state/{eventType}/{stateKey}`). Runs before
/// the content is checked against the event schema, which would call it `M_BAD_JSON`.
pub fn check_canonical_syntax(content: &serde_json::Value) -> Result<()> {
    for a in canonical_aliases(content) {
        RoomAliasId::parse(a).map_err(|_| Error::invalid_param(format!("Invalid alias {a}")))?;
    }
    Ok(())
}

/// `m.room.canonical_alias` content must name aliases that exist and point to this room
/// (spec: `m.room.canonical_alias`, 400 `M_BAD_ALIAS`): ours by the alias table, other
/// servers' when listed in `remote` (those their servers said point here).
pub fn validate_canonical(
    s: &Services,
    room_id: &RoomId,
    content: &serde_json::Value,
    remote: &[OwnedRoomAliasId],
) -> Result<()> {
    for a in canonical_aliases(content) {
        let alias = RoomAliasId::parse(a).map_err(|_| Error::invalid_param(format!("Invalid alias {a}")))?;
        let points_here = if alias.server_name() == s.server_name {
            resolve(s, &alias)?.as_deref() == Some(room_id)
        } else {
            remote.contains(&alias)
        };
        if !points_here {
            return Err(Error::new(ErrorKind::BadAlias, format!("{a} does not point to this room")));
        }
    }
    Ok(())
}
