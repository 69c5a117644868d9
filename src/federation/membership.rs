//! Membership events another server built on a `make_*` template and now hands to us, the
//! resident server (spec: Server-Server API, "Joining Rooms" `send_join` v2, "Leaving Rooms"
//! `send_leave` v2, "Knocking upon a room" `send_knock`): checked, signed by us, and run
//! through the ingest pipeline.

use std::collections::BTreeSet;

use ruma::events::TimelineEventType;
use ruma::events::room::member::MembershipState;
use ruma::signatures::hash_and_sign_event;
use ruma::{EventId, OwnedEventId, OwnedServerName, RoomId, ServerName};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::sender::fanout;
use super::txn::ensure_room_open_to;
use crate::error::{Error, Result};
use crate::rooms::ingest::remote::Remote;
use crate::rooms::ingest::{Outcome, check, ingest_checked};
use crate::rooms::{StoredEvent, format, load, load_by_short, resolve, room, rules_for, state};
use crate::services::Services;

/// Check a `send_*` event (type, membership, sender on `origin`, `state_key` = sender, event ID
/// = the path's), sign it, and ingest it; it must be accepted. Returns the stored event.
async fn receive(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
    raw: &RawValue,
    membership: MembershipState,
) -> Result<StoredEvent> {
    ensure_room_open_to(s, room_id, origin)?;
    let rules = rules_for(&room(s, room_id)?.room_version)?;
    let mut ev = check::format(check::canonical(raw.get())?, &rules, room_id)?;
    if ev.event_id != event_id {
        return Err(Error::bad_json(format!("The event's ID is {}, not {event_id}", ev.event_id)));
    }
    let content = ev.pdu.content_value();
    let sender = &ev.pdu.sender;
    if ev.pdu.kind != TimelineEventType::RoomMember
        || content.get("membership").and_then(Value::as_str).map(MembershipState::from) != Some(membership.clone())
    {
        return Err(Error::bad_json(format!("Not an m.room.member event with membership {membership}")));
    }
    if ev.pdu.state_key.as_deref() != Some(sender.as_str()) {
        return Err(Error::bad_json("The state_key must be the sender"));
    }
    if sender.server_name() != origin {
        return Err(Error::forbidden(format!("The sender {sender} is not a user of {origin}")));
    }
    // Our signature (also what a restricted join's authorising server must add), over the
    // hashes as received: a wrong content hash changes the event ID.
    hash_and_sign_event(s.server_name.as_str(), &s.signing_key.key_pair, &mut ev.obj, &rules.redaction)
        .map_err(|e| Error::bad_json(format!("Cannot sign the event: {e}")))?;
    if check::event_id(&ev.obj, &rules)? != event_id {
        return Err(Error::bad_json("The event's content hash does not match its content"));
    }
    let ev = check::verify(s, vec![ev], &rules).await.pop().unwrap_or_else(|| Err(Error::internal("no result")))?;
    let (event_id, outcome) = ingest_checked(s, &Remote { s, server: origin }, room_id, &rules, ev).await?;
    match outcome {
        Outcome::Accepted | Outcome::Known => {}
        Outcome::Rejected(why) => return Err(Error::forbidden(why)),
        Outcome::SoftFailed => return Err(Error::forbidden("Event not authorized by the room's current state")),
    }
    let stored = load(s, &event_id)?.ok_or_else(|| Error::internal(format!("{event_id} not stored")))?;
    // `Known` also covers an event refused earlier: sending it again must not get the room's state.
    if stored.meta.rejected || stored.meta.soft_failed {
        return Err(Error::forbidden(format!("Event {event_id} was refused")));
    }
    Ok(stored)
}

/// `PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}`: the join as stored (signed by us),
/// the state before it and its auth chain. With `omit_members` (MSC3706), `m.room.member`
/// events are left out except the joining user's and those of the senders of the remaining
/// state, and `servers_in_room` lists the servers with joined members.
pub async fn send_join(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
    raw: &RawValue,
    omit_members: bool,
) -> Result<Value> {
    let join = receive(s, origin, room_id, event_id, raw, MembershipState::Join).await?;
    let before = state::load(&s.db, &s.state_cache, join.meta.state_before)?;
    let mut events: Vec<StoredEvent> = Vec::new();
    for short in before.values() {
        events.extend(load_by_short(s, *short)?);
    }
    if omit_members {
        let is_member = |e: &StoredEvent| e.pdu.kind == TimelineEventType::RoomMember;
        let mut keep: BTreeSet<String> =
            events.iter().filter(|e| !is_member(e)).map(|e| e.pdu.sender.to_string()).collect();
        keep.insert(join.pdu.sender.to_string());
        events.retain(|e| !is_member(e) || e.pdu.state_key.as_ref().is_some_and(|k| keep.contains(k)));
    }
    let ids: Vec<OwnedEventId> = events.iter().map(|e| e.pdu.event_id.clone()).collect();
    let mut auth_chain = Vec::new();
    for id in resolve::auth_chain(s, ids.iter())?.into_iter() {
        if let Some(e) = load(s, &id)? {
            auth_chain.push(e.json);
        }
    }
    let mut body = json!({
        "origin": s.server_name,
        "event": join.json,
        "state": events.into_iter().map(|e| e.json).collect::<Vec<_>>(),
        "auth_chain": auth_chain,
        "members_omitted": omit_members,
    });
    if omit_members {
        body["servers_in_room"] = json!(servers_in_room(s, room_id)?);
    }
    Ok(body)
}

/// Servers with at least one joined member, by the current state: the others and us.
fn servers_in_room(s: &Services, room_id: &RoomId) -> Result<BTreeSet<OwnedServerName>> {
    let mut servers: BTreeSet<OwnedServerName> = fanout::servers_in_room(s, room_id)?.iter().cloned().collect();
    servers.insert(s.server_name.clone());
    Ok(servers)
}

/// `PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}`: `{}` once stored.
pub async fn send_leave(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
    raw: &RawValue,
) -> Result<Value> {
    receive(s, origin, room_id, event_id, raw, MembershipState::Leave).await?;
    Ok(json!({}))
}

/// `PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}`: the room's stripped state.
pub async fn send_knock(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
    raw: &RawValue,
) -> Result<Value> {
    receive(s, origin, room_id, event_id, raw, MembershipState::Knock).await?;
    let mut stripped = Vec::new();
    for kind in format::STRIPPED_STATE_TYPES {
        if let Some(ev) = crate::rooms::current_state_event(s, room_id, &kind, "")? {
            stripped.push(format::stripped(&ev));
        }
    }
    Ok(json!({ "knock_room_state": stripped }))
}
