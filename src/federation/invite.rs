//! Invites from other servers (spec: Server-Server API "Inviting to a room",
//! `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`): check the invite event, add our
//! signature, keep it for the invited local user ([`crate::rooms::remote_invites`]), and return
//! it.

use std::collections::BTreeMap;

use ruma::api::federation::membership::RawStrippedState;
use ruma::signatures::{Verified, reference_hash, sign_event, verify_event};
use ruma::{CanonicalJsonObject, EventId, OwnedServerName, RoomId, ServerName, UserId};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::rooms::pdu::{MAX_PDU_BYTES, Pdu};
use crate::rooms::{remote_invites, room};
use crate::services::State;
use crate::storage::catalog::USERS;

/// What `PUT /invite` carries.
pub struct IncomingInvite<'a> {
    pub room_id: &'a RoomId,
    pub event_id: &'a EventId,
    pub room_version: &'a str,
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
    if invite.event.get().len() > MAX_PDU_BYTES {
        return Err(Error::bad_json("Invite event too large"));
    }
    let mut obj: CanonicalJsonObject =
        serde_json::from_str(invite.event.get()).map_err(|e| Error::bad_json(format!("Invalid invite event: {e}")))?;
    let hash = reference_hash(&obj, &rules).map_err(|e| Error::bad_json(format!("Invalid invite event: {e}")))?;
    if format!("${hash}") != invite.event_id.as_str() {
        return Err(Error::invalid_param(format!("Event ID {} is not the event's reference hash", invite.event_id)));
    }
    let json = serde_json::to_value(&obj).map_err(Error::internal)?;
    let pdu = Pdu::from_json(invite.event_id.to_owned(), &json, &rules)?;
    let content = pdu.content_value();
    if pdu.kind.to_string() != "m.room.member" || content.get("membership").and_then(Value::as_str) != Some("invite") {
        return Err(Error::bad_json("Not an m.room.member invite event"));
    }
    if pdu.room_id.as_deref() != Some(invite.room_id) {
        return Err(Error::invalid_param("The invite event is for another room"));
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
    let (room_id, user) = (invite.room_id.to_owned(), target.clone());
    s.blocking(move |s| {
        if s.db.get(USERS, &user.to_string())?.is_none() {
            return Err(Error::not_found(format!("Unknown user {user}")));
        }
        if room(s, &room_id).is_ok() {
            super::access::check_acl(s, &room_id, pdu.sender.server_name())?;
        }
        Ok(())
    })
    .await?;

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
    let (room_id, event_id, version, event) =
        (invite.room_id.to_owned(), invite.event_id.to_owned(), invite.room_version.to_owned(), signed.clone());
    s.blocking(move |s| remote_invites::store(s, &target, &room_id, &event_id, &version, event, stripped)).await?;
    Ok(signed)
}

/// One entry of `invite_room_state` in stripped form (a full PDU since Matrix 1.16, or the
/// older stripped event): `type`, `state_key`, `sender`, `content`.
fn stripped(entry: &RawStrippedState) -> Option<Value> {
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
