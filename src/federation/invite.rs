//! Invites across servers (spec: Server-Server API "Inviting to a room",
//! `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`). Incoming ([`receive`]): check the
//! invite event, add our signature, keep it for the invited local user
//! ([`crate::rooms::remote_invites`]), and return it. Outgoing ([`invite_remote`]): have the
//! invitee's server countersign our invite, then append it.

use std::collections::BTreeMap;

use ruma::api::federation::membership::{RawStrippedState, create_invite::v2 as create_invite};
use ruma::canonical_json::redact;
use ruma::events::room::member::MembershipState;
use ruma::events::{StateEventType, TimelineEventType};
use ruma::signatures::{Verified, sign_event, verify_event, verify_json};
use ruma::{CanonicalJsonObject, EventId, OwnedServerName, RoomId, RoomVersionId, ServerName, UserId};
use serde_json::value::{RawValue, to_raw_value};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::rooms::append::append;
use crate::rooms::build::{RoomCtx, authorize, build};
use crate::rooms::format::STRIPPED_STATE_TYPES;
use crate::rooms::ingest::check;
use crate::rooms::pdu::Pdu;
use crate::rooms::{current_state_event, membership, remote_invites, room};
use crate::services::State;
use crate::storage::catalog::USERS;

/// What `PUT /invite` carries.
pub struct IncomingInvite<'a> {
    pub room_id: &'a RoomId,
    pub event_id: &'a EventId,
    pub room_version: &'a RoomVersionId,
    pub event: &'a RawValue,
    pub invite_room_state: &'a [RawStrippedState],
}

/// Check and countersign an invite from `origin` for one of our users; returns the event with
/// our signature added. Refusals: 400 `M_INCOMPATIBLE_ROOM_VERSION` (version unknown here),
/// 400 `M_BAD_JSON` / `M_INVALID_PARAM` (not an invite of a local user in this room, event ID
/// not its reference hash), 404 (no such user), 403 (sender not on `origin`, bad signature or
/// content hash, the room's ACL denies `origin`).
pub async fn receive(s: &State, origin: &ServerName, invite: IncomingInvite<'_>) -> Result<Value> {
    let rules = crate::rooms::rules_for(invite.room_version)
        .map_err(|_| Error::incompatible_room_version(invite.room_version))?;
    // Step 1 of the checks on receipt of a PDU, as for any received event: size, fields for the
    // room version (`check_pdu_format`), room, event ID.
    let checked = check::format(check::canonical(invite.event.get())?, &rules, invite.room_id)?;
    if checked.event_id != invite.event_id {
        return Err(Error::invalid_param(format!("Event ID {} is not the event's ID", invite.event_id)));
    }
    let (mut obj, pdu) = (checked.obj, checked.pdu);
    let content = pdu.content_value();
    if pdu.kind != TimelineEventType::RoomMember
        || content.get("membership").and_then(Value::as_str).map(MembershipState::from) != Some(MembershipState::Invite)
    {
        return Err(Error::bad_json("Not an m.room.member invite event"));
    }
    let target = pdu
        .state_key
        .as_deref()
        .and_then(|k| UserId::parse(k).ok())
        .ok_or_else(|| Error::bad_json("Invalid state_key"))?;
    if !s.is_local(&target) {
        return Err(Error::invalid_param(format!("{target} is not a user of this server")));
    }
    if pdu.sender.server_name() != origin {
        return Err(Error::forbidden(format!("The invite's sender {} is not on {origin}", pdu.sender)));
    }
    if s.db.get(USERS, &target)?.is_none() {
        return Err(Error::not_found(format!("Unknown user {target}")));
    }
    if room(s, invite.room_id).is_ok() {
        super::access::check_acl(s, invite.room_id, pdu.sender.server_name())?;
    }

    let wanted = BTreeMap::from([(OwnedServerName::from(origin), u64::from(pdu.origin_server_ts.0))]);
    let keys = s.federation.public_key_map(&wanted).await?;
    match verify_event(&keys, &obj, &rules) {
        Ok(Verified::All) => {}
        Ok(Verified::Signatures) => return Err(Error::forbidden("The invite event's content hash does not match")),
        Err(e) => return Err(Error::forbidden(format!("The invite event's signature does not verify: {e}"))),
    }
    sign_event(s.server_name.as_str(), &s.signing_key.key_pair, &mut obj, &rules.redaction)
        .map_err(|e| Error::internal(format!("signing invite: {e}")))?;
    let signed = serde_json::to_value(&obj).map_err(Error::internal)?;

    let stripped: Vec<Value> = invite.invite_room_state.iter().filter_map(stripped).collect();
    remote_invites::store(s, &target, invite.room_id, invite.event_id, invite.room_version, signed.clone(), stripped)?;
    Ok(signed)
}

/// One entry of `invite_room_state` in stripped form (a full PDU since Matrix 1.16, or the
/// older stripped event): `type`, `state_key`, `sender`, `content`.
pub(crate) fn stripped(entry: &RawStrippedState) -> Option<Value> {
    let raw = match entry {
        RawStrippedState::Pdu(raw) => raw.get(),
        #[allow(deprecated)]
        RawStrippedState::Stripped(raw) => raw.json().get(),
        _ => return None,
    };
    let v: Value = serde_json::from_str(raw).ok()?;
    Some(json!({
        "type": v.get("type")?.as_str()?,
        "state_key": v.get("state_key")?.as_str()?,
        "sender": v.get("sender")?.as_str()?,
        "content": v.get("content").filter(|c| c.is_object())?,
    }))
}

/// A local user invites a user of another server (spec: Server-Server API "Inviting to a
/// room"): the invite is built and authorized on the room's forward extremities, sent with
/// `PUT /v2/invite` (room version, the stripped state as full PDUs) to the invitee's server,
/// which must return the same event with its own signature added; that event is then appended
/// like any local one (so it fans out to the room's servers). A refusal is relayed.
pub async fn invite_remote(
    s: &State,
    room_id: &RoomId,
    sender: &UserId,
    target: &UserId,
    reason: Option<String>,
    is_direct: bool,
) -> Result<ruma::OwnedEventId> {
    room(s, room_id)?;
    match membership::membership_of(s, room_id, target)? {
        Some(MembershipState::Join) => return Err(Error::forbidden(format!("{target} is already in the room"))),
        Some(MembershipState::Ban) => return Err(Error::forbidden(format!("{target} is banned from the room"))),
        _ => {}
    }
    let new = membership::member_event(s, target, MembershipState::Invite, reason.as_deref(), is_direct)?;
    let ctx = RoomCtx::current(s, room_id)?;
    let (pdu, obj) = build(s, &ctx, sender, &new)?;
    authorize(s, &ctx, &pdu)?;
    let mut stripped = Vec::new();
    let own = (StateEventType::RoomMember, sender.as_str());
    for (kind, key) in STRIPPED_STATE_TYPES.into_iter().map(|k| (k, "")).chain([own]) {
        if let Some(ev) = current_state_event(s, room_id, &kind, key)? {
            stripped.push(RawStrippedState::Pdu(to_raw_value(&ev.json).map_err(Error::internal)?));
        }
    }
    let version = ctx.version;
    let rules = crate::rooms::rules_for(&version)?;
    let event = to_raw_value(&obj).map_err(Error::internal)?;
    let req = create_invite::Request::new(room_id.to_owned(), pdu.event_id.clone(), version, event, stripped);
    let returned = s.federation.send(target.server_name(), req).await.map_err(Error::relayed)?.event;
    let returned: CanonicalJsonObject = serde_json::from_str(returned.get())
        .map_err(|e| Error::forbidden(format!("{} returned an invalid invite: {e}", target.server_name())))?;
    check_countersigned(s, &returned, &pdu, target.server_name(), &rules).await?;
    let _guard = s.room_lock(room_id).await;
    let ctx = RoomCtx::at(s, room_id, &pdu.prev_events)?;
    authorize(s, &ctx, &pdu)?;
    append(s, &ctx, &pdu, returned, None)?;
    Ok(pdu.event_id)
}

/// The invite `returned` by `server` must be our event (same reference hash and content hash,
/// our signature) with a valid signature of `server` added.
async fn check_countersigned(
    s: &State,
    returned: &CanonicalJsonObject,
    ours: &Pdu,
    server: &ServerName,
    rules: &ruma::room_version_rules::RoomVersionRules,
) -> Result<()> {
    let changed = || Error::forbidden(format!("{server} returned another event than the invite"));
    if check::event_id(returned, rules).map_err(|_| changed())? != ours.event_id {
        return Err(changed());
    }
    let ts = u64::from(ours.origin_server_ts.0);
    let wanted = BTreeMap::from([(s.server_name.clone(), ts), (server.to_owned(), ts)]);
    let keys = s.federation.public_key_map(&wanted).await?;
    if !matches!(verify_event(&keys, returned, rules), Ok(Verified::All)) {
        return Err(changed());
    }
    let signed = |o: &CanonicalJsonObject| match o.get("signatures") {
        Some(ruma::CanonicalJsonValue::Object(sigs)) => sigs.contains_key(server.as_str()),
        _ => false,
    };
    if !signed(returned) {
        return Err(Error::forbidden(format!("{server} did not sign the invite")));
    }
    // Every signature, theirs included (verify_json checks each signing server it has keys for).
    let redacted = redact(returned.clone(), &rules.redaction, None).map_err(|_| changed())?;
    verify_json(&keys, &redacted)
        .map_err(|e| Error::forbidden(format!("{server} did not sign the invite validly: {e}")))
}
