//! Membership templates for remote users (spec: Server-Server API "Joining Rooms" `make_join`,
//! "Leaving Rooms" `make_leave`, "Knocking on rooms" `make_knock`): the `m.room.member` event
//! the remote server will complete (hashes, signatures, event ID) and send back. It is exactly
//! what [`build::template`](crate::rooms::build::template) makes for a local event on the room's forward extremities, and it
//! must already pass the room version's authorization rules (403 otherwise). Nothing is
//! signed or stored. Joins and knocks are templated only while a local user is joined.

use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use ruma::signatures::reference_hash;
use ruma::{CanonicalJsonObject, EventId, RoomId, RoomVersionId, ServerName, UserId};
use serde_json::{Value, json};

use super::access::{check_acl, is_resident};
use crate::error::{Error, Result};
use crate::rooms::build::{NewEvent, RoomCtx, authorize, template};
use crate::rooms::pdu::Pdu;
use crate::rooms::{membership, room};
use crate::services::Services;

/// A template and the room's version.
pub struct Template {
    pub room_version: RoomVersionId,
    pub event: CanonicalJsonObject,
}

/// `GET /make_join/{roomId}/{userId}?ver=`. For a `restricted` room the template names a
/// local user who may invite in `join_authorised_via_users_server`, when the user is joined to
/// one of the allowed rooms as far as we know (400 `M_UNABLE_TO_AUTHORISE_JOIN` if we are in
/// none of them, 400 `M_UNABLE_TO_GRANT_JOIN` if no local user may invite).
pub fn make_join(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    user: &UserId,
    ver: &[RoomVersionId],
) -> Result<Template> {
    let version = prepare(s, origin, room_id, user, Some(ver))?;
    ensure_resident(s, room_id, "make_join")?;
    let mut content = json!({ "membership": MembershipState::Join });
    let ctx = RoomCtx::current(s, room_id)?;
    if let Some(via) = membership::restricted_authoriser(s, room_id, user)? {
        content["join_authorised_via_users_server"] = json!(via);
    }
    finish(s, &ctx, version, user, content)
}

/// `GET /make_leave/{roomId}/{userId}`.
pub fn make_leave(s: &Services, origin: &ServerName, room_id: &RoomId, user: &UserId) -> Result<Template> {
    let version = prepare(s, origin, room_id, user, None)?;
    finish(s, &RoomCtx::current(s, room_id)?, version, user, json!({ "membership": MembershipState::Leave }))
}

/// `GET /make_knock/{roomId}/{userId}?ver=`: the room version must allow knocking
/// (`M_INCOMPATIBLE_ROOM_VERSION` otherwise) and its join rule be `knock` or
/// `knock_restricted` (403).
pub fn make_knock(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    user: &UserId,
    ver: &[RoomVersionId],
) -> Result<Template> {
    let version = prepare(s, origin, room_id, user, Some(ver))?;
    ensure_resident(s, room_id, "make_knock")?;
    let ctx = RoomCtx::current(s, room_id)?;
    if !ctx.rules.authorization.knocking {
        return Err(Error::incompatible_room_version(&version));
    }
    let rule = membership::join_rule(s, room_id)?;
    if !matches!(rule.as_str(), "knock" | "knock_restricted") {
        return Err(Error::forbidden(format!("Room {room_id} does not accept knocks")));
    }
    finish(s, &ctx, version, user, json!({ "membership": MembershipState::Knock }))
}

/// Common checks: the user belongs to the requesting server (403), the room exists (404), the
/// ACL allows the server (403), and the room version is one the server supports.
fn prepare(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    user: &UserId,
    ver: Option<&[RoomVersionId]>,
) -> Result<RoomVersionId> {
    if user.server_name() != origin {
        return Err(Error::forbidden(format!("{user} is not a user of {origin}")));
    }
    let record = room(s, room_id)?;
    check_acl(s, room_id, origin)?;
    if let Some(ver) = ver
        && !ver.contains(&record.room_version)
    {
        return Err(Error::incompatible_room_version(&record.room_version));
    }
    Ok(record.room_version)
}

/// A join or knock is only templated by a server with a joined user: one that left the room
/// (all its users did) no longer follows it and cannot vouch for its state. 404, as Synapse
/// ("Not an active room on this server"), so the joining server tries the next one. A leave
/// template needs no such check (Synapse makes one regardless): rejecting an invite asks the
/// inviting server, and the leave is authorized against the state we know.
fn ensure_resident(s: &Services, room_id: &RoomId, what: &str) -> Result<()> {
    if is_resident(s, room_id)? {
        return Ok(());
    }
    tracing::info!(%room_id, "{what} for a room this server has no joined user in");
    Err(Error::not_found(format!("Room {room_id} is not an active room on this server")))
}

/// The template on `ctx`, authorized (403 with the failed rule otherwise).
fn finish(s: &Services, ctx: &RoomCtx, room_version: RoomVersionId, user: &UserId, content: Value) -> Result<Template> {
    let new = NewEvent::state(StateEventType::RoomMember, user.as_str(), content);
    let event = template(s, ctx, user, &new)?;
    // The auth rules do not look at hashes or signatures: check the template as it stands,
    // under its own reference hash as a stand-in event ID.
    let hash = reference_hash(&event, &ctx.rules).map_err(|e| Error::internal(format!("hashing template: {e}")))?;
    let event_id = EventId::parse(format!("${hash}")).map_err(Error::internal)?;
    let json = serde_json::to_value(&event).map_err(Error::internal)?;
    let pdu = Pdu::from_json(event_id, &json, &ctx.rules)?;
    authorize(s, ctx, &pdu)?;
    Ok(Template { room_version, event })
}
