//! Events as clients see them (spec: Client-Server API "Room Events" and the `unsigned`
//! object): `event_id`, `room_id`, `age`, `transaction_id` for the sending device,
//! `prev_content` on state events, `redacted_because` on redacted events.

use ruma::UserId;
use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use serde_json::{Map, Value, json};

use super::{StoredEvent, load, state, state_event};
use crate::error::Result;
use crate::services::Services;
use crate::users::now_ms;

/// Who is reading: their user and device (for `transaction_id`).
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub user_id: &'a UserId,
    pub device_id: Option<&'a str>,
}

/// The client-format JSON of a stored event, with bundled aggregations for the viewer.
pub fn client_event(s: &Services, ev: &StoredEvent, viewer: Option<Viewer<'_>>) -> Result<Value> {
    let mut out = client_event_plain(s, ev, viewer)?;
    if let Some(relations) = super::relations::bundle(s, ev, viewer)? {
        out["unsigned"]["m.relations"] = relations;
    }
    Ok(out)
}

/// The client-format JSON without bundled aggregations (for events inside an aggregation).
pub fn client_event_plain(s: &Services, ev: &StoredEvent, viewer: Option<Viewer<'_>>) -> Result<Value> {
    let mut out = bare(ev)?;
    let mut unsigned = Map::new();
    unsigned.insert("age".into(), json!(now_ms().saturating_sub(u64::from(ev.pdu.origin_server_ts.0))));
    if let (Some(v), Some((device, txn_id))) = (viewer, &ev.meta.txn)
        && v.user_id == ev.pdu.sender
        && v.device_id == Some(device.as_str())
    {
        unsigned.insert("transaction_id".into(), json!(txn_id));
    }
    // Outliers (state learnt when joining through another server) have no state groups.
    let placed = !ev.meta.outlier;
    if let (Some(key), true) = (&ev.pdu.state_key, placed) {
        let before = state::load(&s.db, &s.state_cache, ev.meta.state_before)?;
        if let Some(prev) = state_event(s, &before, &ev.pdu.state_type(), key)? {
            unsigned.insert("prev_content".into(), prev.json.get("content").cloned().unwrap_or_else(|| json!({})));
            unsigned.insert("prev_sender".into(), json!(prev.pdu.sender));
            unsigned.insert("replaces_state".into(), json!(prev.meta.event_id));
        }
    }
    if let (Some(v), true) = (viewer, placed) {
        // The requesting user's membership at the event (spec v1.11, MSC4115).
        let membership = super::read::membership_at(s, v.user_id, ev.meta.state_after)?;
        unsigned.insert("membership".into(), json!(membership.unwrap_or(MembershipState::Leave)));
    }
    if let Some(by) = &ev.meta.redacted_by
        && let Some(redaction) = load(s, by).ok().flatten()
    {
        unsigned.insert("redacted_because".into(), bare(&redaction)?);
    }
    out["unsigned"] = Value::Object(unsigned);
    Ok(out)
}

/// The client fields of an event without `unsigned`.
pub fn bare(ev: &StoredEvent) -> Result<Value> {
    let j = &ev.json;
    // Built field by field: `json!` would copy the content a second time.
    let mut out = Map::new();
    out.insert("event_id".into(), Value::String(ev.meta.event_id.to_string()));
    out.insert("room_id".into(), Value::String(ev.pdu.room()?.to_string()));
    out.insert("sender".into(), Value::String(ev.pdu.sender.to_string()));
    out.insert("type".into(), Value::String(ev.pdu.kind.to_string()));
    out.insert("origin_server_ts".into(), j.get("origin_server_ts").cloned().unwrap_or(json!(0)));
    out.insert("content".into(), j.get("content").cloned().unwrap_or_else(|| json!({})));
    let mut out = Value::Object(out);
    if let Some(key) = &ev.pdu.state_key {
        out["state_key"] = json!(key);
    }
    if let Some(redacts) = &ev.pdu.redacts {
        out["redacts"] = json!(redacts);
    }
    Ok(out)
}

/// The state events a user sees of a room they are invited to or knocking on (spec: "Stripped
/// state", the recommended list).
pub const STRIPPED_STATE_TYPES: [StateEventType; 7] = [
    StateEventType::RoomCreate,
    StateEventType::RoomJoinRules,
    StateEventType::RoomName,
    StateEventType::RoomAvatar,
    StateEventType::RoomCanonicalAlias,
    StateEventType::RoomEncryption,
    StateEventType::RoomTopic,
];

/// Stripped state for invites and knocks (spec: "Stripped state").
pub fn stripped(ev: &StoredEvent) -> Value {
    json!({
        "type": ev.pdu.kind.to_string(),
        "state_key": ev.pdu.state_key,
        "sender": ev.pdu.sender,
        "content": ev.json.get("content").cloned().unwrap_or_else(|| json!({})),
    })
}
