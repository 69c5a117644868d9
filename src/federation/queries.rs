//! Queries other servers make about our rooms and users (spec: Server-Server API "Room
//! Directory" `GET /query/directory`, "Device Management" `GET /user/devices/{userId}`,
//! "Spaces" `GET /hierarchy/{roomId}`).

use ruma::events::room::member::MembershipState;
use ruma::events::{StateEventType, TimelineEventType};
use ruma::{RoomAliasId, RoomId, ServerName, UserId};
use serde_json::{Value, json};

use super::access::{check_acl, server_has_member};
use super::sender::fanout::servers_in_room;
use crate::error::{Error, Result};
use crate::rooms::format::stripped;
use crate::rooms::read::state_events;
use crate::rooms::{alias, current_state, current_state_content, directory, room};
use crate::services::Services;
use crate::storage::catalog::{DEVICE_KEYS, DEVICES, FEDERATION_DEVICE_STREAMS, USERS};

/// `GET /query/directory?room_alias=`: the room of a local alias and the servers in it (ours
/// first). 404 for an unknown or non-local alias.
pub fn room_alias(s: &Services, alias: &RoomAliasId) -> Result<Value> {
    let not_found = || Error::not_found(format!("Room alias {alias} not found"));
    if alias.server_name() != s.server_name {
        return Err(not_found());
    }
    let room_id = alias::resolve(s, alias)?.ok_or_else(not_found)?;
    let mut servers = vec![s.server_name.clone()];
    servers.extend(servers_in_room(s, &room_id)?.iter().cloned());
    Ok(json!({ "room_id": room_id, "servers": servers }))
}

/// `GET /user/devices/{userId}`: a local user's devices with their keys (when uploaded) and
/// display names, and `stream_id`, the position of the user's last device-list change.
/// Cross-signing keys are not stored, so `master_key`/`self_signing_key` are never present.
pub fn user_devices(s: &Services, user: &UserId) -> Result<Value> {
    if !s.is_local(user) {
        return Err(Error::invalid_param(format!("{user} is not a user of this server")));
    }
    if s.db.get(USERS, user)?.is_none() {
        return Err(Error::not_found(format!("Unknown user {user}")));
    }
    let mut devices = Vec::new();
    for ((_, device_id), record) in s.db.scan_prefix(DEVICES, user)? {
        let mut d = json!({ "device_id": device_id });
        if let Some(keys) = s.db.get(DEVICE_KEYS, &(user, &device_id))? {
            d["keys"] = keys;
        }
        if let Some(name) = record.display_name.filter(|_| s.config.federation.allow_device_name_lookup) {
            d["device_display_name"] = json!(name);
        }
        devices.push(d);
    }
    // The ID of the last `m.device_list_update` we sent for the user, so that the next one's
    // `prev_id` names it (a receiver that cannot chain the two resyncs, and Synapse then tells its
    // users of a change only if the list it fetches differs from what it holds).
    let stream_id = s.db.get(FEDERATION_DEVICE_STREAMS, user)?.map_or(0, |r| r.stream_id);
    Ok(json!({ "user_id": user, "stream_id": stream_id, "devices": devices }))
}

/// Can `server` peek into or join the room (spec "Spaces": what the hierarchy may show)? Yes
/// for public, knock and world-readable rooms, rooms where one of its users is joined or
/// invited, and restricted rooms whose allowed rooms it is in.
fn accessible(s: &Services, room_id: &RoomId, server: &ServerName) -> Result<bool> {
    if check_acl(s, room_id, server).is_err() {
        return Ok(false);
    }
    let summary = directory::summary(s, room_id)?;
    let rule = summary["join_rule"].as_str().unwrap_or("invite");
    if matches!(rule, "public" | "knock" | "knock_restricted") || summary["world_readable"] == json!(true) {
        return Ok(true);
    }
    let present = |r: &RoomId, states: &[MembershipState]| server_has_member(s, r, server, states);
    if present(room_id, &[MembershipState::Join, MembershipState::Invite])? {
        return Ok(true);
    }
    for allowed in allowed_rooms(s, room_id)? {
        if room(s, &allowed).is_ok() && present(&allowed, &[MembershipState::Join])? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn allowed_rooms(s: &Services, room_id: &RoomId) -> Result<Vec<ruma::OwnedRoomId>> {
    let content = current_state_content(s, room_id, &StateEventType::RoomJoinRules, "")?.unwrap_or_default();
    if !matches!(content.get("join_rule").and_then(Value::as_str), Some("restricted" | "knock_restricted")) {
        return Ok(Vec::new());
    }
    Ok(crate::rooms::membership::allowed_rooms(&content))
}

/// A room's hierarchy entry: its directory summary plus version, encryption, allowed rooms.
fn room_summary(s: &Services, room_id: &RoomId) -> Result<Value> {
    let mut out = directory::summary(s, room_id)?;
    out["room_version"] = json!(room(s, room_id)?.room_version);
    if let Some(alg) = current_state_content(s, room_id, &StateEventType::RoomEncryption, "")?
        .and_then(|c| c.get("algorithm").cloned())
    {
        out["encryption"] = alg;
    }
    let allowed = allowed_rooms(s, room_id)?;
    if !allowed.is_empty() {
        out["allowed_room_ids"] = json!(allowed);
    }
    Ok(out)
}

/// A space's child and the servers to reach it through (its `m.space.child` event's `via`).
pub type SpaceChild = (ruma::OwnedRoomId, Vec<ruma::OwnedServerName>);

/// A space's children by its current state: the stripped `m.space.child` events (with
/// `origin_server_ts`) that have a non-empty `via` (and `suggested`, with `suggested_only`),
/// and each child with its `via` servers.
pub fn space_children(s: &Services, room_id: &RoomId, suggested_only: bool) -> Result<(Vec<Value>, Vec<SpaceChild>)> {
    let mut children_state = Vec::new();
    let mut children = Vec::new();
    for ev in state_events(s, &*current_state(s, room_id)?)? {
        if ev.pdu.kind != TimelineEventType::SpaceChild {
            continue;
        }
        let content = ev.pdu.content_value();
        let via: Vec<ruma::OwnedServerName> = content
            .get("via")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().and_then(|v| ServerName::parse(v).ok()))
            .collect();
        let suggested = content.get("suggested").and_then(Value::as_bool).unwrap_or(false);
        let Some(child) = ev.pdu.state_key.as_deref().and_then(|k| RoomId::parse(k).ok()) else { continue };
        if via.is_empty() || (suggested_only && !suggested) {
            continue;
        }
        let mut entry = stripped(&ev);
        entry["origin_server_ts"] = json!(ev.pdu.origin_server_ts);
        children_state.push(entry);
        children.push((child, via));
    }
    Ok((children_state, children))
}

/// `GET /hierarchy/{roomId}`: the room (404 if unknown or not accessible to `origin`), its
/// `m.space.child` events, and each child we know: its summary when `origin` may see it, else
/// its ID in `inaccessible_children`. Children we do not know are left out.
pub fn hierarchy(s: &Services, origin: &ServerName, room_id: &RoomId, suggested_only: bool) -> Result<Value> {
    let not_found = || Error::not_found(format!("Room {room_id} not found"));
    room(s, room_id).map_err(|_| not_found())?;
    if !accessible(s, room_id, origin)? {
        return Err(not_found());
    }
    let (children_state, child_ids) = space_children(s, room_id, suggested_only)?;
    let child_ids = child_ids.into_iter().map(|(c, _)| c);
    let (mut children, mut inaccessible) = (Vec::new(), Vec::new());
    for child in child_ids {
        if !crate::rooms::exists(s, &child)? {
            continue;
        }
        if accessible(s, &child, origin)? {
            children.push(room_summary(s, &child)?);
        } else {
            inaccessible.push(child);
        }
    }
    let mut summary = room_summary(s, room_id)?;
    summary["children_state"] = json!(children_state);
    Ok(json!({ "room": summary, "children": children, "inaccessible_children": inaccessible }))
}
