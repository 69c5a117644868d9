//! Joining, leaving and knocking on rooms through another server (spec: Server-Server API
//! "Joining Rooms", "Leaving Rooms (Rejecting Invites)", "Knocking upon a room"; Client-Server
//! API `POST /join/{roomIdOrAlias}`): when no local user is joined to the room, ask a resident
//! server for a `make_*` template, complete and sign it, hand it back with `send_*`, and (for a
//! join) store the room from the answer. See `docs/federation.md`, "Joining a remote room".

use axum::http;
use ruma::api::federation::membership::{
    create_join_event::v2 as send_join, create_leave_event::v2 as send_leave, prepare_join_event::v1 as make_join,
    prepare_leave_event::v1 as make_leave,
};
use ruma::api::federation::query::get_room_information::v1 as directory;
use ruma::events::TimelineEventType;
use ruma::events::room::member::MembershipState;
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedRoomId, OwnedServerName, RoomAliasId, RoomId, RoomOrAliasId,
    RoomVersionId, ServerName, UserId,
};
use serde_json::value::{RawValue, to_raw_value};

use super::sender::fanout::servers_in_room;
use super::txn::is_resident;
use crate::error::{Error, ErrorKind, Result};
use crate::rooms::build::seal;
use crate::rooms::ingest::check::{self, Checked, canonical};
use crate::rooms::ingest::join::{prepare_room, store_join};
use crate::rooms::pdu::Pdu;
use crate::rooms::{alias, membership, remote_invites, rules_for};
use crate::services::State;
use crate::users::now_ms;

/// Room versions we can join over federation (the `ver` of `make_join`): all we support.
pub const JOINABLE_VERSIONS: [RoomVersionId; 12] = {
    use RoomVersionId::*;
    [V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12]
};

/// `POST /join/{roomIdOrAlias}` and `/rooms/{roomId}/join`: a local join when a local user is
/// in the room (or no other server can be asked), else a join through the first of `via`, the
/// alias's servers, the inviting server and the room ID's server that succeeds.
pub async fn join(
    s: &State,
    user: &UserId,
    target: &RoomOrAliasId,
    via: Vec<OwnedServerName>,
    reason: Option<String>,
) -> Result<OwnedRoomId> {
    let (room_id, servers) = match route(s, user, target, via).await? {
        Route::Local(room_id) => {
            membership::join(s, &room_id, user, reason.as_deref()).await?;
            return Ok(room_id);
        }
        Route::Remote(room_id, servers) => (room_id, servers),
    };
    let mut errors = Vec::new();
    for server in &servers {
        match join_via(s, server, user, &room_id, reason.as_deref()).await {
            Ok(()) => return Ok(room_id),
            Err(e) => {
                tracing::info!(%server, %room_id, error = %e, "remote join failed");
                errors.push(e);
            }
        }
    }
    Err(relay(errors, "join"))
}

/// Where a membership change for `target` happens (joins and knocks alike).
pub(crate) enum Route {
    /// A local user is in the room, or no other server can be asked.
    Local(OwnedRoomId),
    /// Through the first of these servers that takes it: `via`, the alias's servers, the
    /// inviting server, the room ID's server.
    Remote(OwnedRoomId, Vec<OwnedServerName>),
}

/// Resolve `target` (a remote alias through `/query/directory`) and pick the [`Route`].
pub(crate) async fn route(
    s: &State,
    user: &UserId,
    target: &RoomOrAliasId,
    via: Vec<OwnedServerName>,
) -> Result<Route> {
    let (room_id, servers) = match <&RoomId>::try_from(target) {
        Ok(room_id) => (room_id.to_owned(), via),
        Err(alias) => {
            let (room_id, alias_servers) = resolve_alias(s, alias).await?;
            (room_id, via.into_iter().chain(alias_servers).collect())
        }
    };
    let servers = candidates(s, user, &room_id, servers).await?;
    if servers.is_empty() || is_resident(s, &room_id)? {
        return Ok(Route::Local(room_id));
    }
    Ok(Route::Remote(room_id, servers))
}

/// The error for a membership change no server would make (as Synapse): the first 4xx Matrix
/// error a remote server answered (other than 404), as it gave it; else the first refusal of
/// ours (a bad template, a room version we cannot join); else 404 "No known servers".
pub(crate) fn relay(errors: Vec<Error>, what: &str) -> Error {
    let count = errors.len();
    let remote = |e: &Error| {
        e.remote().is_some_and(|r| {
            r.status.is_client_error() && r.status != http::StatusCode::NOT_FOUND && r.body.contains_key("errcode")
        })
    };
    let ours = |e: &Error| {
        e.remote().is_none() && matches!(e.kind(), ErrorKind::Forbidden | ErrorKind::IncompatibleRoomVersion)
    };
    let mut errors = errors;
    if let Some(i) = errors.iter().position(remote) {
        return errors.swap_remove(i).relayed();
    }
    errors.into_iter().find(ours).unwrap_or_else(|| {
        Error::not_found(format!("No known servers: none of the {count} servers tried would {what} the room"))
    })
}

/// A room alias's room ID and the servers in the room: ours from the `aliases` table (we come
/// first, then the other servers with joined members), another server's with
/// `GET /query/directory` (its own name first when it is in the room). 404 `M_NOT_FOUND` when
/// the alias is unknown, or another server's while federation is off.
pub async fn resolve_alias(s: &State, alias: &RoomAliasId) -> Result<(OwnedRoomId, Vec<OwnedServerName>)> {
    let not_found = || Error::not_found(format!("Room alias {alias} not found"));
    if alias.server_name() == s.server_name || !s.config.federation.enabled {
        let room_id = alias::resolve(s, alias)?.ok_or_else(not_found)?;
        let mut servers = vec![s.server_name.clone()];
        servers.extend(servers_in_room(s, &room_id)?.iter().filter(|x| **x != s.server_name).cloned());
        return Ok((room_id, servers));
    }
    let resp = s
        .federation
        .send(alias.server_name(), directory::Request::new(alias.to_owned()))
        .await
        .map_err(|e| if e.kind() == ErrorKind::NotFound { not_found() } else { e })?;
    let mut servers = resp.servers;
    if let Some(i) = servers.iter().position(|x| x == alias.server_name()) {
        let first = servers.remove(i);
        servers.insert(0, first);
    }
    Ok((resp.room_id, servers))
}

/// Servers to ask, in order, without duplicates or ourselves: `given`, the server of a pending
/// remote invite's sender, the room ID's server (room versions before 12).
pub(crate) async fn candidates(
    s: &State,
    user: &UserId,
    room_id: &RoomId,
    given: Vec<OwnedServerName>,
) -> Result<Vec<OwnedServerName>> {
    if !s.config.federation.enabled {
        return Ok(Vec::new());
    }
    let invite = remote_invites::pending(s, user, room_id)?;
    let inviter = invite
        .as_ref()
        .and_then(remote_invites::inviter)
        .and_then(|i| UserId::parse(i).ok())
        .map(|i| i.server_name().to_owned());
    let mut out: Vec<OwnedServerName> = Vec::new();
    for server in given.into_iter().chain(inviter).chain(room_id.server_name().map(ToOwned::to_owned)) {
        if server != s.server_name && !out.contains(&server) {
            out.push(server);
        }
    }
    Ok(out)
}

/// `make_join` on `server`, our signed join, `send_join`, then every returned event checked
/// and the room stored.
async fn join_via(s: &State, server: &ServerName, user: &UserId, room_id: &RoomId, reason: Option<&str>) -> Result<()> {
    let mut req = make_join::Request::new(room_id.to_owned(), user.to_owned());
    req.ver = JOINABLE_VERSIONS.to_vec();
    let template = s.federation.send(server, req).await?;
    let version = joinable(template.room_version.as_ref())?;
    let rules = rules_for(&version)?;
    let (pdu, obj) = complete(s, &rules, &template.event, room_id, user, MembershipState::Join, reason).await?;
    let req = send_join::Request::new(room_id.to_owned(), pdu.event_id.clone(), raw(&obj)?);
    let answer = s.federation.send(server, req).await?.room_state;

    // The join as the resident server returns it (re-signed for a restricted join), if it is
    // the same event; else ours.
    let returned = answer
        .event
        .as_deref()
        .and_then(|e| canonical(e.get()).ok())
        .and_then(|o| check::format(o, &rules, room_id).ok())
        .filter(|c| c.event_id == pdu.event_id);
    let ours = Checked { event_id: pdu.event_id.clone(), obj, pdu, redacted: false };
    let mut events = Vec::new();
    let mut state_ids = Vec::new();
    for (list, is_state) in [(&answer.state, true), (&answer.auth_chain, false)] {
        for raw in list {
            let Ok(ev) = canonical(raw.get()).and_then(|o| check::format(o, &rules, room_id)) else {
                tracing::info!(%server, "send_join returned an invalid event");
                continue;
            };
            if is_state {
                state_ids.push(ev.event_id.clone());
            }
            if ev.event_id != ours.event_id && !events.iter().any(|e: &Checked| e.event_id == ev.event_id) {
                events.push(ev);
            }
        }
    }
    let join = match returned {
        Some(r) => check::verify(s, vec![r], &rules).await.pop().and_then(Result::ok).unwrap_or(ours),
        None => ours,
    };
    let count = events.len();
    let events: Vec<Checked> = check::verify(s, events, &rules)
        .await
        .into_iter()
        .filter_map(|r| {
            r.inspect_err(|e| tracing::info!(%server, error = %e, "send_join event failed its checks")).ok()
        })
        .collect();
    tracing::info!(%server, %room_id, count, verified = events.len(), "joining: send_join answered");
    prepare_room(s, room_id, &version).await?;
    store_join(s, room_id, user, &join, events, &state_ids).await
}

/// The room version of a template (`"1"` when absent), if we can join it.
fn joinable(version: Option<&RoomVersionId>) -> Result<RoomVersionId> {
    let version = version.cloned().unwrap_or(RoomVersionId::V1);
    if JOINABLE_VERSIONS.contains(&version) { Ok(version) } else { Err(Error::incompatible_room_version(&version)) }
}

/// A PDU as raw JSON for a request body.
pub(crate) fn raw(obj: &CanonicalJsonObject) -> Result<Box<RawValue>> {
    to_raw_value(obj).map_err(Error::internal)
}

/// Complete a `make_*` template into our signed event: it must be the `m.room.member` event
/// of `user` in `room_id` with `membership`; its content keeps what the resident server put
/// there (e.g. `join_authorised_via_users_server`) plus our display name, avatar and reason;
/// `origin_server_ts` is now; the template's hashes, signatures, `unsigned` and `origin` go.
pub(crate) async fn complete(
    s: &State,
    rules: &ruma::room_version_rules::RoomVersionRules,
    template: &RawValue,
    room_id: &RoomId,
    user: &UserId,
    membership: MembershipState,
    reason: Option<&str>,
) -> Result<(Pdu, CanonicalJsonObject)> {
    let bad = |why: &str| Error::forbidden(format!("The resident server sent an invalid {membership} template: {why}"));
    let mut obj = canonical(template.get()).map_err(|_| bad("not canonical JSON"))?;
    let text = |k: &str| match obj.get(k) {
        Some(CanonicalJsonValue::String(v)) => Some(v.clone()),
        _ => None,
    };
    if text("type").map(TimelineEventType::from) != Some(TimelineEventType::RoomMember) {
        return Err(bad("not an m.room.member event"));
    }
    if text("state_key").as_deref() != Some(user.as_str()) || text("sender").as_deref() != Some(user.as_str()) {
        return Err(bad("sender and state_key must be the joining user"));
    }
    if text("room_id").is_some_and(|r| r != room_id.as_str()) {
        return Err(bad("another room"));
    }
    let Some(CanonicalJsonValue::Object(mut content)) = obj.remove("content") else { return Err(bad("no content")) };
    if content.get("membership") != Some(&CanonicalJsonValue::String(membership.to_string())) {
        return Err(bad("wrong membership"));
    }
    let ours = membership::member_event(s, user, membership, reason, false)?;
    let ours: CanonicalJsonObject = serde_json::from_value(ours.content).map_err(Error::internal)?;
    for (k, v) in ours {
        content.entry(k).or_insert(v);
    }
    obj.insert("content".into(), CanonicalJsonValue::Object(content));
    for k in ["signatures", "hashes", "unsigned", "event_id", "origin"] {
        obj.remove(k);
    }
    obj.insert("room_id".into(), CanonicalJsonValue::String(room_id.to_string()));
    let ts = ruma::Int::new(i64::try_from(now_ms()).unwrap_or(i64::MAX)).unwrap_or(ruma::Int::MAX);
    obj.insert("origin_server_ts".into(), CanonicalJsonValue::Integer(ts));
    seal(s, rules, obj)
}

/// `POST /rooms/{roomId}/leave`: for a pending invite to a room no local user is in, reject it
/// through the inviting server (`make_leave`, `send_leave`), or locally only when no server
/// takes the leave; otherwise the local leave.
pub async fn leave(s: &State, user: &UserId, room_id: &RoomId, reason: Option<String>) -> Result<()> {
    let (resident, invite) = (is_resident(s, room_id)?, remote_invites::pending(s, user, room_id)?);
    if resident || invite.is_none() {
        membership::leave(s, room_id, user, reason.as_deref()).await?;
        return Ok(());
    }
    for server in candidates(s, user, room_id, Vec::new()).await? {
        match leave_via(s, &server, user, room_id, reason.as_deref()).await {
            Ok((pdu, obj)) => return remote_invites::record_rejection(s, user, room_id, &pdu.event_id, &obj),
            Err(e) => tracing::info!(%server, %room_id, error = %e, "remote leave failed; trying the next server"),
        }
    }
    remote_invites::reject(s, user, room_id, reason.as_deref())?;
    Ok(())
}

/// `make_leave` and `send_leave` on `server`; returns the leave event sent.
async fn leave_via(
    s: &State,
    server: &ServerName,
    user: &UserId,
    room_id: &RoomId,
    reason: Option<&str>,
) -> Result<(Pdu, CanonicalJsonObject)> {
    let template = s.federation.send(server, make_leave::Request::new(room_id.to_owned(), user.to_owned())).await?;
    let rules = rules_for(&joinable(template.room_version.as_ref())?)?;
    let (pdu, obj) = complete(s, &rules, &template.event, room_id, user, MembershipState::Leave, reason).await?;
    let req = send_leave::Request::new(room_id.to_owned(), pdu.event_id.clone(), raw(&obj)?);
    s.federation.send(server, req).await?;
    Ok((pdu, obj))
}
