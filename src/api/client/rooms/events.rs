//! `PUT /rooms/{roomId}/send/{eventType}/{txnId}`, `GET/PUT /rooms/{roomId}/state/{eventType}/{stateKey}`,
//! `GET /rooms/{roomId}/state`, `GET /rooms/{roomId}/event/{eventId}`,
//! `PUT /rooms/{roomId}/redact/{eventId}/{txnId}` (spec: "Room events", "Redactions").

use ruma::api::client::message::send_message_event;
use ruma::api::client::redact::redact_event;
use ruma::api::client::room::get_room_event;
use ruma::api::client::state::{get_state_event_for_key, get_state_events, send_state_event};
use ruma::events::{RawExt, StateEventType, TimelineEventType};
use serde_json::{Value, json};

use crate::api::ruma::{RawJson, Ruma};
use crate::error::{Error, Result};
use crate::federation::lookups::remote_aliases_to;
use crate::rooms::append::{self, send};
use crate::rooms::build::NewEvent;
use crate::rooms::format::{Viewer, client_event};
use crate::rooms::{self as rooms_svc, membership, power, read, state_event};
use crate::services::State;

fn content_of(raw: &str) -> Result<Value> {
    let v: Value = serde_json::from_str(raw).map_err(|e| Error::bad_json(e.to_string()))?;
    if !v.is_object() {
        return Err(Error::bad_json("Event content must be a JSON object"));
    }
    Ok(v)
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`
pub async fn send_message(
    s: State,
    r: Ruma<send_message_event::v3::Request>,
) -> Result<send_message_event::v3::Response> {
    let auth = r.auth()?.clone();
    auth.ensure_not_suspended()?;
    let b = r.body;
    let content = content_of(b.body.json().get())?;
    let new = NewEvent::message(b.event_type.clone(), content);
    let txn = append::txn(&auth.device_id, b.txn_id.as_str(), format!("send/{}/{}", b.room_id, b.event_type));
    let room_id = b.room_id;
    membership::ensure_joined(&s, &room_id, &auth.user_id)?;
    let event_id = send(&s, &room_id, &auth.user_id, new, Some(txn)).await?;
    Ok(send_message_event::v3::Response::new(event_id))
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
pub async fn put_state(s: State, r: Ruma<send_state_event::v3::Request>) -> Result<send_state_event::v3::Response> {
    r.auth()?.ensure_not_suspended()?;
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    let content = content_of(b.body.json().get())?;
    if b.event_type == StateEventType::RoomCanonicalAlias {
        crate::rooms::alias::check_canonical_syntax(&content)?;
    }
    // Known state types must have their spec shape (`M_BAD_JSON` otherwise).
    b.body
        .deserialize_with_type(&b.event_type.to_string())
        .map_err(|e| Error::bad_json(format!("Invalid content for {}: {e}", b.event_type)))?;
    let canonical = b.event_type == StateEventType::RoomCanonicalAlias;
    let new = NewEvent::state(b.event_type, &b.state_key, content);
    let room_id = b.room_id;
    // Other servers' aliases are checked by asking them.
    let remote = if canonical { remote_aliases_to(&s, &room_id, &new.content).await? } else { Vec::new() };
    if canonical {
        crate::rooms::alias::validate_canonical(&s, &room_id, &new.content, &remote)?;
    }
    let event_id = send(&s, &room_id, &user, new, None).await?;
    Ok(send_state_event::v3::Response::new(event_id))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
pub async fn get_state(s: State, r: Ruma<get_state_event_for_key::v3::Request>) -> Result<RawJson> {
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    // ruma keeps unknown values; the spec's enum is `content` or `event` (Synapse: 400).
    if !matches!(b.format.as_str(), "content" | "event") {
        return Err(Error::invalid_param(format!("Unknown format {}", b.format.as_str())));
    }
    let full = matches!(b.format, get_state_event_for_key::v3::StateEventFormat::Event);
    let state = read::state_for(&s, &b.room_id, &user)?;
    let ev = state_event(&s, &state, &b.event_type, &b.state_key)?
        .ok_or_else(|| Error::not_found(format!("No {} state with key {:?}", b.event_type, b.state_key)))?;
    let value =
        if full { client_event(&s, &ev, None)? } else { ev.json.get("content").cloned().unwrap_or_else(|| json!({})) };
    Ok(RawJson(value))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/state`
pub async fn get_all_state(s: State, r: Ruma<get_state_events::v3::Request>) -> Result<RawJson> {
    let user = r.auth()?.user_id.clone();
    let room_id = r.body.room_id;
    let state = read::state_for(&s, &room_id, &user)?;
    let events =
        read::state_events(&s, &state)?.iter().map(|e| client_event(&s, e, None)).collect::<Result<Vec<_>>>()?;
    Ok(RawJson(Value::Array(events)))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`: `M_NOT_FOUND` also for events the
/// user may not see.
pub async fn get_event(s: State, r: Ruma<get_room_event::v3::Request>) -> Result<RawJson> {
    let auth = r.auth()?.clone();
    let b = r.body;
    let not_found = || Error::not_found("Event not found");
    let ev = rooms_svc::load(&s, &b.event_id)?.ok_or_else(not_found)?;
    // Outliers (state and auth events learnt with a remote join) are served to joined
    // members, as Synapse does; `can_see` decides.
    if ev.pdu.room()? != b.room_id || ev.meta.rejected || ev.meta.soft_failed {
        return Err(not_found());
    }
    membership::ensure_not_forgotten(&s, &b.room_id, &auth.user_id)?;
    let current = membership::membership_of(&s, &b.room_id, &auth.user_id)?;
    if !read::can_see(&s, &auth.user_id, &ev, current.as_ref())? {
        return Err(not_found());
    }
    let value =
        client_event(&s, &ev, Some(Viewer { user_id: &auth.user_id, device_id: Some(auth.device_id.as_str()) }))?;
    Ok(RawJson(value))
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`
pub async fn redact(s: State, r: Ruma<redact_event::v3::Request>) -> Result<redact_event::v3::Response> {
    let auth = r.auth()?.clone();
    let b = r.body;
    let txn = append::txn(&auth.device_id, b.txn_id.as_str(), format!("redact/{}/{}", b.room_id, b.event_id));
    membership::ensure_joined(&s, &b.room_id, &auth.user_id)?;
    let target = rooms_svc::load(&s, &b.event_id)?
        .filter(|e| e.pdu.room().is_ok_and(|r| r == b.room_id))
        .ok_or_else(|| Error::not_found("Event not found"))?;
    if target.pdu.sender != auth.user_id
        && power::user_power(&s, &b.room_id, &auth.user_id)? < power::required(&s, &b.room_id, "redact")?
    {
        return Err(Error::forbidden("You may not redact other users' events"));
    }
    let mut content = json!({});
    if let Some(reason) = b.reason {
        content["reason"] = json!(reason);
    }
    let new = NewEvent { kind: TimelineEventType::RoomRedaction, content, state_key: None, redacts: Some(b.event_id) };
    let event_id = send(&s, &b.room_id, &auth.user_id, new, Some(txn)).await?;
    Ok(redact_event::v3::Response::new(event_id))
}
