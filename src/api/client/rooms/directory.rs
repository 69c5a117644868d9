//! `GET/PUT/DELETE /directory/room/{roomAlias}`, `GET /rooms/{roomId}/aliases`,
//! `GET/PUT /directory/list/room/{roomId}`, `GET/POST /publicRooms`
//! (spec: "Room aliases", "Listing rooms").

use axum::http::StatusCode;
use ruma::api::client::alias::{create_alias, delete_alias, get_alias};
use ruma::api::client::directory::{
    get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility,
};
use ruma::api::client::room::{Visibility, aliases};
use serde_json::json;

use crate::api::ruma::{RawJson, Ruma};
use crate::error::{Error, ErrorKind, Result};
use crate::federation;
use crate::rooms::{alias, directory, membership, power, read, room};
use crate::services::{Services, State};

/// Moderators (state_default power) manage aliases and publication.
fn is_moderator(s: &Services, room_id: &ruma::RoomId, user: &ruma::UserId) -> Result<bool> {
    Ok(power::user_power(s, room_id, user)? >= power::required(s, room_id, "state_default")?)
}

/// `GET /_matrix/client/v3/directory/room/{roomAlias}`: ours from the alias table, another
/// server's by asking it (`GET /_matrix/federation/v1/query/directory`).
pub async fn get(s: State, r: Ruma<get_alias::v3::Request>) -> Result<get_alias::v3::Response> {
    let (room_id, servers) = federation::join::resolve_alias(&s, &r.body.room_alias).await?;
    Ok(get_alias::v3::Response::new(room_id, servers))
}

/// `PUT /_matrix/client/v3/directory/room/{roomAlias}`
pub async fn put(s: State, r: Ruma<create_alias::v3::Request>) -> Result<create_alias::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    room(&s, &b.room_id)?;
    membership::ensure_joined(&s, &b.room_id, &user)?;
    // Taken: 409 `M_UNKNOWN` here (spec), where `createRoom` says `M_ROOM_IN_USE`.
    let alias_id = alias::check_new(&s, b.room_alias.as_str()).map_err(|e| match e.kind() {
        ErrorKind::RoomInUse => Error::new(ErrorKind::Unknown, format!("Room alias {} already exists", b.room_alias))
            .with_status(StatusCode::CONFLICT),
        _ => e,
    })?;
    alias::add(&s, &alias_id, &b.room_id, &user)?;
    Ok(create_alias::v3::Response::new())
}

/// `DELETE /_matrix/client/v3/directory/room/{roomAlias}`: by its creator or a moderator.
pub async fn delete(s: State, r: Ruma<delete_alias::v3::Request>) -> Result<delete_alias::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let alias_id = r.body.room_alias;
    let room_id = alias::resolve(&s, &alias_id)?.ok_or_else(|| Error::not_found("Room alias not found"))?;
    let creator = alias::creator(&s, &room_id, &alias_id)?;
    if creator.as_deref() != Some(&*user) && !is_moderator(&s, &room_id, &user)? {
        return Err(Error::forbidden("You may not delete this alias"));
    }
    alias::remove(&s, &alias_id)?;
    Ok(delete_alias::v3::Response::new())
}

/// `GET /_matrix/client/v3/rooms/{roomId}/aliases`
pub async fn list(s: State, r: Ruma<aliases::v3::Request>) -> Result<RawJson> {
    let user = r.auth()?.user_id.clone();
    let room_id = r.body.room_id;
    read::state_for(&s, &room_id, &user)?;
    let list = alias::list(&s, &room_id)?;
    Ok(RawJson(json!({ "aliases": list })))
}

/// `GET /_matrix/client/v3/directory/list/room/{roomId}`
pub async fn get_visibility(
    s: State,
    r: Ruma<get_room_visibility::v3::Request>,
) -> Result<get_room_visibility::v3::Response> {
    let room_id = r.body.room_id;
    room(&s, &room_id)?;
    let public = directory::is_published(&s, &room_id)?;
    Ok(get_room_visibility::v3::Response::new(if public { Visibility::Public } else { Visibility::Private }))
}

/// `PUT /_matrix/client/v3/directory/list/room/{roomId}`
pub async fn set_visibility(
    s: State,
    r: Ruma<set_room_visibility::v3::Request>,
) -> Result<set_room_visibility::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    let public = match b.visibility {
        Visibility::Public => true,
        Visibility::Private => false,
        other => return Err(Error::invalid_param(format!("Unknown visibility {}", other.as_str()))),
    };
    room(&s, &b.room_id)?;
    if !is_moderator(&s, &b.room_id, &user)? {
        return Err(Error::forbidden("You may not change this room's directory visibility"));
    }
    directory::set_published(&s, &b.room_id, public)?;
    Ok(set_room_visibility::v3::Response::new())
}

fn page_json(page: (Vec<serde_json::Value>, Option<String>, Option<String>, usize)) -> RawJson {
    let (chunk, next, prev, total) = page;
    let mut out = json!({ "chunk": chunk, "total_room_count_estimate": total });
    if let Some(n) = next {
        out["next_batch"] = json!(n);
    }
    if let Some(p) = prev {
        out["prev_batch"] = json!(p);
    }
    RawJson(out)
}

/// The directory of another server (`?server=`), when it is not us.
fn remote<'a>(s: &Services, server: Option<&'a ruma::ServerName>) -> Option<&'a ruma::ServerName> {
    server.filter(|x| *x != s.server_name)
}

/// `GET /_matrix/client/v3/publicRooms?server=`: ours, or another server's
/// (`GET /_matrix/federation/v1/publicRooms`).
pub async fn public_rooms(s: State, r: Ruma<get_public_rooms::v3::Request>) -> Result<RawJson> {
    let b = r.body;
    if let Some(server) = remote(&s, b.server.as_deref()) {
        return Ok(RawJson(federation::lookups::public_rooms(&s, server, b.limit, b.since, None).await?));
    }
    let limit = b.limit.map(|l| usize::try_from(u64::from(l)).unwrap_or(usize::MAX));
    let page = directory::list(&s, None, b.since.as_deref(), limit)?;
    Ok(page_json(page))
}

/// `POST /_matrix/client/v3/publicRooms?server=`: ours, or another server's
/// (`POST /_matrix/federation/v1/publicRooms`, with the filter).
pub async fn public_rooms_filtered(s: State, r: Ruma<get_public_rooms_filtered::v3::Request>) -> Result<RawJson> {
    let b = r.body;
    if let Some(server) = remote(&s, b.server.as_deref()) {
        let page = federation::lookups::public_rooms(&s, server, b.limit, b.since, Some(b.filter)).await?;
        return Ok(RawJson(page));
    }
    let limit = b.limit.map(|l| usize::try_from(u64::from(l)).unwrap_or(usize::MAX));
    let term = b.filter.generic_search_term;
    let page = directory::list(&s, term.as_deref(), b.since.as_deref(), limit)?;
    Ok(page_json(page))
}
