//! A parsed PDU (spec: Server-Server API, "PDUs"; "Room Versions" for the per-version format)
//! and its [`ruma::state_res::Event`] implementation, so ruma can authorize and resolve it.

use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::{EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UInt, UserId};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// The largest PDU, in bytes of canonical JSON (spec: "Size limits").
pub const MAX_PDU_BYTES: usize = 65_536;

#[derive(Clone, Debug)]
pub struct Pdu {
    pub event_id: OwnedEventId,
    /// `None` only for a v12 `m.room.create` (its room ID is derived from its event ID).
    pub room_id: Option<OwnedRoomId>,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    pub kind: TimelineEventType,
    pub content: Box<RawValue>,
    pub state_key: Option<String>,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    pub redacts: Option<OwnedEventId>,
    pub depth: u64,
    pub rejected: bool,
}

#[derive(Deserialize)]
struct Fields {
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    kind: TimelineEventType,
    content: Box<RawValue>,
    state_key: Option<String>,
    #[serde(default)]
    prev_events: Vec<Value>,
    #[serde(default)]
    auth_events: Vec<Value>,
    redacts: Option<OwnedEventId>,
    depth: UInt,
}

/// v1/v2 reference events as `[event_id, hashes]`, later versions as plain IDs.
fn reference(v: &Value) -> Option<OwnedEventId> {
    let id = match v {
        Value::String(s) => s.as_str(),
        Value::Array(a) => a.first()?.as_str()?,
        _ => return None,
    };
    EventId::parse(id).ok()
}

impl Pdu {
    /// Parse a PDU's JSON (as stored or received) given its event ID.
    pub fn from_json(event_id: OwnedEventId, json: &Value, rules: &RoomVersionRules) -> Result<Pdu> {
        let f: Fields =
            serde_json::from_value(json.clone()).map_err(|e| Error::bad_json(format!("invalid PDU: {e}")))?;
        let refs = |list: &[Value]| list.iter().map(reference).collect::<Option<Vec<_>>>();
        let prev_events = refs(&f.prev_events).ok_or_else(|| Error::bad_json("invalid prev_events"))?;
        let auth_events = refs(&f.auth_events).ok_or_else(|| Error::bad_json("invalid auth_events"))?;
        // Since room version 11, `redacts` lives in the content.
        let redacts = if rules.redaction.content_field_redacts {
            serde_json::from_str::<Value>(f.content.get())
                .ok()
                .and_then(|c| c.get("redacts").and_then(Value::as_str).and_then(|r| EventId::parse(r).ok()))
                .or(f.redacts)
        } else {
            f.redacts
        };
        Ok(Pdu {
            event_id,
            room_id: f.room_id,
            sender: f.sender,
            origin_server_ts: f.origin_server_ts,
            kind: f.kind,
            content: f.content,
            state_key: f.state_key,
            prev_events,
            auth_events,
            redacts,
            depth: f.depth.into(),
            rejected: false,
        })
    }

    /// The room, also for a v12 create event (`!` + the hash of its event ID).
    pub fn room(&self) -> Result<OwnedRoomId> {
        match &self.room_id {
            Some(r) => Ok(r.clone()),
            None => RoomId::parse(format!("!{}", self.event_id.as_str().trim_start_matches('$')))
                .map_err(|_| Error::internal("create event without a derivable room ID")),
        }
    }

    pub fn content_value(&self) -> Value {
        serde_json::from_str(self.content.get()).unwrap_or(Value::Null)
    }

    /// The event's type as a state event type (for state keys and state lookups).
    pub fn state_type(&self) -> StateEventType {
        self.kind.to_string().into()
    }

    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }
}

impl ruma::state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }
    fn room_id(&self) -> Option<&RoomId> {
        self.room_id.as_deref()
    }
    fn sender(&self) -> &UserId {
        &self.sender
    }
    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }
    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }
    fn content(&self) -> &RawValue {
        &self.content
    }
    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }
    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }
    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }
    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }
    fn rejected(&self) -> bool {
        self.rejected
    }
}
