//! Client lookups that name another server, answered by asking it (spec: Client-Server API
//! "Listing rooms" `GET`/`POST /publicRooms?server=`, `GET /room_summary/{roomIdOrAlias}`,
//! other servers' aliases in `m.room.canonical_alias`;
//! Server-Server API "Public Room Directory", "Spaces"). Remote aliases are resolved by
//! [`super::join::resolve_alias`], remote profiles by `users::profile`'s caller, remote keys
//! by `keys::remote`.

use axum::http::Method;
use ruma::directory::Filter;
use ruma::events::room::member::MembershipState;
use ruma::{OwnedRoomAliasId, OwnedServerName, RoomAliasId, RoomId, ServerName, UInt};
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::rooms::alias::canonical_aliases;
use crate::services::{Services, State};

/// One page of another server's public room directory, passed on as it answered (ruma's
/// typed chunk would drop fields at their defaults, e.g. `join_rule: public`). With `filter`,
/// `POST /publicRooms` (the search term travels along), else `GET`.
pub async fn public_rooms(
    s: &State,
    server: &ServerName,
    limit: Option<UInt>,
    since: Option<String>,
    filter: Option<Filter>,
) -> Result<Value> {
    if !s.config.federation.enabled {
        return Err(Error::not_found(format!("Cannot reach {server}: federation is disabled")));
    }
    let path = "/_matrix/federation/v1/publicRooms";
    let page = match filter {
        Some(filter) => {
            let mut body = json!({ "filter": filter });
            if let Some(l) = limit {
                body["limit"] = json!(l);
            }
            if let Some(since) = since {
                body["since"] = json!(since);
            }
            s.federation.send_raw(server, Method::POST, path, Some(&body)).await?
        }
        None => {
            let query = {
                let mut query = form_urlencoded::Serializer::new(String::new());
                if let Some(l) = limit {
                    query.append_pair("limit", &l.to_string());
                }
                if let Some(since) = &since {
                    query.append_pair("since", since);
                }
                query.finish()
            };
            let uri = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
            s.federation.send_raw(server, Method::GET, &uri, None).await?
        }
    };
    if !page.get("chunk").is_some_and(Value::is_array) {
        return Err(Error::new(ErrorKind::Unknown, format!("{server} answered publicRooms without a chunk"))
            .with_status(axum::http::StatusCode::BAD_GATEWAY));
    }
    Ok(page)
}

/// The summary of a room this server does not hold, from the first of `servers` whose
/// `GET /hierarchy/{roomId}` shows it (MSC3266 as Synapse: the room's hierarchy entry, without
/// `children_state`); `M_NOT_FOUND` when none does. The caller adds the requester's membership.
pub async fn remote_summary(s: &State, room_id: &RoomId, servers: &[OwnedServerName]) -> Result<Value> {
    let not_found = || Error::not_found("Room not found.");
    if !s.config.federation.enabled {
        return Err(not_found());
    }
    for server in servers.iter().filter(|x| **x != s.server_name) {
        if let Some(mut room) = remote_hierarchy_entry(s, server, room_id, false).await {
            if let Some(o) = room.as_object_mut() {
                o.remove("children_state");
            }
            return Ok(room);
        }
    }
    Err(not_found())
}

/// The `room` entry of `server`'s `GET /_matrix/federation/v1/hierarchy/{roomId}`, when it
/// answers with that room; a failure is logged and is `None` (the caller asks the next server).
async fn remote_hierarchy_entry(
    s: &State,
    server: &ServerName,
    room_id: &RoomId,
    suggested_only: bool,
) -> Option<Value> {
    let encoded: String = form_urlencoded::byte_serialize(room_id.as_bytes()).collect();
    let path = format!("/_matrix/federation/v1/hierarchy/{encoded}?suggested_only={suggested_only}");
    match s.federation.send_raw(server, Method::GET, &path, None).await {
        Ok(mut r) => {
            let room = r["room"].take();
            if room["room_id"] == room_id.as_str() {
                return Some(room);
            }
            tracing::info!(%server, %room_id, "hierarchy answered for another room");
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => tracing::info!(%server, %room_id, error = %e, "remote hierarchy failed"),
    }
    None
}

/// The aliases of other servers that `m.room.canonical_alias` content names and that their
/// servers say point to `room_id` (`GET /query/directory`). An alias its server does not know
/// is left out (the event is then 400 `M_BAD_ALIAS`); an unreachable server is an error, as in
/// Synapse.
pub async fn remote_aliases_to(s: &State, room_id: &RoomId, content: &Value) -> Result<Vec<OwnedRoomAliasId>> {
    let mut out = Vec::new();
    let remote = canonical_aliases(content)
        .into_iter()
        .filter_map(|a| RoomAliasId::parse(a).ok())
        .filter(|a| a.server_name() != s.server_name);
    for alias in remote {
        match super::join::resolve_alias(s, &alias).await {
            Ok((rid, _)) if rid == room_id => out.push(alias),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Rooms one `GET /rooms/{roomId}/hierarchy` walk visits at most (every page walks again
/// from the root, so this also bounds the work per request).
const MAX_HIERARCHY_ROOMS: usize = 500;
/// Rooms per page: the client's `limit`, at most this (and this by default).
const MAX_HIERARCHY_PAGE: usize = 50;

/// A room the hierarchy walk reached: its chunk (summary + `children_state`) and children.
struct Visited {
    chunk: Value,
    children: Vec<super::queries::SpaceChild>,
}

/// May `user` see a room by its summary: anyone may for public, knock and world-readable rooms;
/// otherwise only by their own membership (`join`, `invite`).
fn may_see(summary: &Value, membership: Option<&MembershipState>) -> bool {
    matches!(summary["join_rule"].as_str(), Some("public" | "knock" | "knock_restricted"))
        || summary["world_readable"] == json!(true)
        || matches!(membership, Some(MembershipState::Join | MembershipState::Invite))
}

/// [`visit`] for a room a local user is joined to: `None` when we are not resident (ask `via`),
/// `Some(None)` when the user may not see it.
fn local_visit(
    s: &Services,
    user: &ruma::UserId,
    room_id: &RoomId,
    suggested_only: bool,
) -> Result<Option<Option<Visited>>> {
    if !crate::rooms::exists(s, room_id)? || !super::access::is_resident(s, room_id)? {
        return Ok(None);
    }
    let mut chunk = match crate::rooms::info::summary::summary(s, room_id, Some(user)) {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Some(None)),
        Err(e) => return Err(e),
    };
    if let Some(o) = chunk.as_object_mut() {
        o.remove("membership");
    }
    let (children_state, children) = super::queries::space_children(s, room_id, suggested_only)?;
    chunk["children_state"] = json!(children_state);
    Ok(Some(Some(Visited { chunk, children })))
}

/// One room of the walk: ours when a local user is joined (its summary, by the user's view, and
/// its children by our current state), else the first of `via` whose `/hierarchy` shows it.
/// `None` when the user may not see it or nobody answers.
async fn visit(
    s: &State,
    user: &ruma::UserId,
    room_id: &RoomId,
    via: &[OwnedServerName],
    suggested_only: bool,
) -> Result<Option<Visited>> {
    if let Some(found) = local_visit(s, user, room_id, suggested_only)? {
        return Ok(found);
    }
    if !s.config.federation.enabled {
        return Ok(None);
    }
    for server in via.iter().filter(|x| **x != s.server_name) {
        let Some(chunk) = remote_hierarchy_entry(s, server, room_id, suggested_only).await else { continue };
        let membership = crate::rooms::membership::membership_of(s, room_id, user)?;
        if !may_see(&chunk, membership.as_ref()) {
            return Ok(None);
        }
        let children = chunk["children_state"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let child = RoomId::parse(c["state_key"].as_str()?).ok()?;
                let via: Vec<OwnedServerName> = c["content"]["via"]
                    .as_array()?
                    .iter()
                    .filter_map(|v| v.as_str().and_then(|v| ServerName::parse(v).ok()))
                    .collect();
                let suggested = c["content"]["suggested"].as_bool().unwrap_or(false);
                (!via.is_empty() && (suggested || !suggested_only)).then_some((child, via))
            })
            .collect();
        return Ok(Some(Visited { chunk, children }));
    }
    Ok(None)
}

/// `GET /_matrix/client/v1/rooms/{roomId}/hierarchy` (spec: Client-Server API "Spaces"): the
/// space and the rooms below it, breadth first, each once, those `user` may see (403
/// `M_FORBIDDEN` for the space itself), no deeper than `max_depth`; rooms we hold come from
/// our state, others from their servers' `/hierarchy`. Pages of `limit` (at most 50); the
/// token `h<offset>` resumes the same walk.
pub async fn hierarchy(
    s: &State,
    user: &ruma::UserId,
    room_id: &RoomId,
    (from, limit, max_depth, suggested_only): (Option<&str>, Option<usize>, Option<usize>, bool),
) -> Result<Value> {
    let offset: usize = match from {
        Some(t) => t
            .strip_prefix('h')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::invalid_param("Invalid pagination token"))?,
        None => 0,
    };
    let limit = limit.unwrap_or(MAX_HIERARCHY_PAGE).clamp(1, MAX_HIERARCHY_PAGE);
    let via: Vec<OwnedServerName> = room_id.server_name().map(ToOwned::to_owned).into_iter().collect();
    let mut queue = std::collections::VecDeque::from([(room_id.to_owned(), via, 0usize)]);
    let mut seen = std::collections::HashSet::from([room_id.to_owned()]);
    let mut rooms = Vec::new();
    let mut more = false;
    while let Some((room, via, depth)) = queue.pop_front() {
        if rooms.len() >= offset + limit {
            more = true;
            break;
        }
        let Some(visited) = visit(s, user, &room, &via, suggested_only).await? else {
            if room == room_id {
                return Err(Error::forbidden(format!("You may not see the hierarchy of {room_id}")));
            }
            continue;
        };
        rooms.push(visited.chunk);
        if max_depth.is_none_or(|m| depth < m) {
            for (child, via) in visited.children {
                if seen.len() < MAX_HIERARCHY_ROOMS && seen.insert(child.clone()) {
                    queue.push_back((child, via, depth + 1));
                }
            }
        }
    }
    let page: Vec<Value> = rooms.into_iter().skip(offset).collect();
    let mut out = json!({ "rooms": page });
    if more {
        out["next_batch"] = json!(format!("h{}", offset + limit));
    }
    Ok(out)
}
