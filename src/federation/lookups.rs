//! Client lookups that name another server, answered by asking it (spec: Client-Server API
//! "Listing rooms" `GET`/`POST /publicRooms?server=`, `GET /room_summary/{roomIdOrAlias}`,
//! other servers' aliases in `m.room.canonical_alias`;
//! Server-Server API "Public Room Directory", "Spaces"). Remote aliases are resolved by
//! [`super::join::resolve_alias`], remote profiles by `users::profile`'s caller, remote keys
//! by `keys::remote`.

use axum::http::Method;
use ruma::directory::Filter;
use ruma::{OwnedRoomAliasId, OwnedServerName, RoomAliasId, RoomId, ServerName, UInt};
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::rooms::alias::canonical_aliases;
use crate::services::State;

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
        let encoded: String = form_urlencoded::byte_serialize(room_id.as_bytes()).collect();
        let path = format!("/_matrix/federation/v1/hierarchy/{encoded}?suggested_only=false");
        match s.federation.send_raw(server, Method::GET, &path, None).await {
            Ok(mut r) => {
                let mut room = r["room"].take();
                if room["room_id"] != room_id.as_str() {
                    tracing::info!(%server, %room_id, "hierarchy answered for another room");
                    continue;
                }
                if let Some(o) = room.as_object_mut() {
                    o.remove("children_state");
                }
                return Ok(room);
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => tracing::info!(%server, %room_id, error = %e, "remote room summary failed"),
        }
    }
    Err(not_found())
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
