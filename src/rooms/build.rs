//! Building local events (spec: Server-Server API "PDUs", "Auth events selection", "Signing
//! events", room versions' "Event IDs"): `prev_events` are the forward extremities, `auth_events`
//! are selected from the state before the event, then hashes, signature and event ID; then the
//! event is authorized before anything is written.

use std::sync::Arc;

use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::{EventIdFormatVersion, EventsReferenceFormatVersion, RoomVersionRules};
use ruma::signatures::{JsonError, hash_and_sign_event, reference_hash};
use ruma::state_res::{auth_types_for_event, check_state_dependent_auth_rules, check_state_independent_auth_rules};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, OwnedEventId, OwnedRoomId, RoomId, RoomVersionId, UserId,
};
use serde_json::{Value, json};

use super::ingest::check;
use super::pdu::{MAX_PDU_BYTES, Pdu};
use super::state::{self, ShortState};
use super::{StoredEvent, load, resolve, room, rules_for, short, state_event};
use crate::error::{Error, ErrorKind, Result};
use crate::services::Services;
use crate::storage::catalog::EVENT_META;
use crate::storage::records::RoomRecord;
use crate::users::{now_ms, random_string};

/// What a client wants to add to a room.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: TimelineEventType,
    pub content: Value,
    pub state_key: Option<String>,
    pub redacts: Option<OwnedEventId>,
}

impl NewEvent {
    pub fn message(kind: impl Into<TimelineEventType>, content: Value) -> Self {
        NewEvent { kind: kind.into(), content, state_key: None, redacts: None }
    }
    pub fn state(kind: impl Into<TimelineEventType>, state_key: &str, content: Value) -> Self {
        NewEvent { kind: kind.into(), content, state_key: Some(state_key.to_owned()), redacts: None }
    }
}

/// The group that holds the state before a new event.
#[derive(Debug, Clone)]
pub enum StateBefore {
    /// Nothing yet: the event is a room's `m.room.create`.
    Empty,
    /// An existing group.
    Group(u64),
    /// State resolved from several forward extremities; `append` stores it as a new group.
    Resolved,
}

/// Where a new event goes and what it builds on.
pub struct RoomCtx {
    /// `None` only while creating a v12 room (its ID comes from the create event).
    pub room_id: Option<OwnedRoomId>,
    pub version: RoomVersionId,
    pub rules: RoomVersionRules,
    pub state_before: StateBefore,
    pub state: Arc<ShortState>,
    /// `(event_id, depth)` of the events this one follows.
    pub prev_events: Vec<(OwnedEventId, u64)>,
    /// The room's record as read for this context (under the room lock when the event is to be
    /// appended: `append` builds the new record from it); `None` for a new room.
    pub record: Option<RoomRecord>,
}

impl RoomCtx {
    /// A brand-new room: empty state, no predecessors.
    pub fn new_room(room_id: Option<OwnedRoomId>, version: &RoomVersionId) -> Result<RoomCtx> {
        Ok(RoomCtx {
            room_id,
            version: version.clone(),
            rules: rules_for(version)?,
            state_before: StateBefore::Empty,
            state: Arc::default(),
            prev_events: Vec::new(),
            record: None,
        })
    }

    /// The room as it stands: on its forward extremities.
    pub fn current(s: &Services, room_id: &RoomId) -> Result<RoomCtx> {
        let record = room(s, room_id)?;
        let extremities: Vec<OwnedEventId> = record.forward_extremities.iter().map(|(_, id)| id.clone()).collect();
        Self::on(s, room_id, record, &extremities)
    }

    /// A new event following `prev`: the state after them, resolved with the room version's
    /// algorithm when they disagree.
    pub fn at(s: &Services, room_id: &RoomId, prev: &[OwnedEventId]) -> Result<RoomCtx> {
        Self::on(s, room_id, room(s, room_id)?, prev)
    }

    /// [`RoomCtx::at`] with the room's record already read.
    fn on(s: &Services, room_id: &RoomId, record: RoomRecord, prev: &[OwnedEventId]) -> Result<RoomCtx> {
        let rules = rules_for(&record.room_version)?;
        let mut prev_events = Vec::new();
        let mut states = Vec::new();
        for event_id in prev {
            let short = short::event_get(&s.db, event_id)?
                .ok_or_else(|| Error::not_found(format!("Unknown event {event_id}")))?;
            let meta =
                s.db.get(EVENT_META, &short)?.ok_or_else(|| Error::internal(format!("no meta for {event_id}")))?;
            prev_events.push((event_id.clone(), meta.depth));
            if !states.contains(&meta.state_after) {
                states.push(meta.state_after);
            }
        }
        let (state_before, state) = if states.len() <= 1 {
            let group = states.first().copied().unwrap_or(record.current_state_group);
            (StateBefore::Group(group), state::load(&s.db, &s.state_cache, group)?)
        } else {
            let maps = states.iter().map(|g| state::load(&s.db, &s.state_cache, *g)).collect::<Result<Vec<_>>>()?;
            (StateBefore::Resolved, Arc::new(resolve::resolve(s, &rules, &maps)?))
        };
        Ok(RoomCtx {
            room_id: Some(room_id.to_owned()),
            version: record.room_version.clone(),
            rules,
            state_before,
            state,
            prev_events,
            record: Some(record),
        })
    }
}

/// Build and sign a PDU for `new` on top of `ctx`. Nothing is written.
pub fn build(s: &Services, ctx: &RoomCtx, sender: &UserId, new: &NewEvent) -> Result<(Pdu, CanonicalJsonObject)> {
    seal(s, &ctx.rules, template(s, ctx, sender, new)?)
}

/// Complete an unsigned event (from [`template`], or another server's `make_*` template):
/// content hash, our signature, the size limit, and the event ID (the reference hash; in room
/// versions 1 and 2 a new `$random:our.server` in the event's `event_id` field).
pub fn seal(
    s: &Services,
    rules: &RoomVersionRules,
    mut canonical: CanonicalJsonObject,
) -> Result<(Pdu, CanonicalJsonObject)> {
    if rules.event_id_format == EventIdFormatVersion::V1 {
        // Room versions 1 and 2: `$random:server`, chosen by the sending server.
        let id = format!("${}:{}", random_string(18), s.server_name);
        canonical.insert("event_id".into(), CanonicalJsonValue::String(id));
    }
    hash_and_sign_event(s.server_name.as_str(), &s.signing_key.key_pair, &mut canonical, &rules.redaction).map_err(
        |e| match e {
            JsonError::PduTooLarge => Error::new(ErrorKind::TooLarge, "Event too large"),
            other => Error::internal(format!("signing event: {other}")),
        },
    )?;
    let json = serde_json::to_value(&canonical).map_err(Error::internal)?;
    if serde_json::to_vec(&json).map_or(usize::MAX, |v| v.len()) > MAX_PDU_BYTES {
        return Err(Error::new(ErrorKind::TooLarge, "Event exceeds 65536 bytes"));
    }
    let event_id = if rules.event_id_format == EventIdFormatVersion::V1 {
        check::event_id(&canonical, rules)?
    } else {
        let hash = reference_hash(&canonical, rules).map_err(|e| Error::internal(format!("hashing event: {e}")))?;
        EventId::parse(format!("${hash}")).map_err(Error::internal)?
    };
    let pdu = Pdu::from_json(event_id, &json, rules)?;
    Ok((pdu, canonical))
}

/// The event [`build`] signs: every field but `hashes`, `signatures` (and the event ID, which
/// is their hash). It is also the template of `make_join`, `make_leave` and `make_knock`
/// (spec: Server-Server API, "Joining Rooms"), which the joining server completes.
pub fn template(s: &Services, ctx: &RoomCtx, sender: &UserId, new: &NewEvent) -> Result<CanonicalJsonObject> {
    let mut content = new.content.clone();
    if !content.is_object() {
        return Err(Error::bad_json("Event content must be a JSON object"));
    }
    let kind = &new.kind;
    let content_raw = serde_json::value::to_raw_value(&content).map_err(|e| Error::bad_json(e.to_string()))?;
    let auth_types =
        auth_types_for_event(kind, sender, new.state_key.as_deref(), &content_raw, &ctx.rules.authorization)
            .map_err(|e| Error::bad_json(format!("Invalid content for {kind}: {e}")))?;
    let mut auth_events: Vec<StoredEvent> = Vec::new();
    for (ty, key) in auth_types {
        if let Some(e) = state_event(s, &ctx.state, &ty, &key)?
            && !auth_events.iter().any(|a| a.meta.event_id == e.meta.event_id)
        {
            auth_events.push(e);
        }
    }
    let mut prev_events = Vec::new();
    for (id, _) in &ctx.prev_events {
        prev_events.push(load(s, id)?.ok_or_else(|| Error::internal(format!("prev event {id} not stored")))?);
    }
    let depth = ctx.prev_events.iter().map(|(_, d)| *d).max().map_or(1, |d| d + 1);
    let mut obj = json!({
        "type": new.kind,
        "sender": sender,
        "origin_server_ts": now_ms(),
        "depth": depth,
        "prev_events": references(&ctx.rules, &prev_events),
        "auth_events": references(&ctx.rules, &auth_events),
    });
    if let Some(room_id) = &ctx.room_id {
        obj["room_id"] = json!(room_id);
    }
    if let Some(key) = &new.state_key {
        obj["state_key"] = json!(key);
    }
    if let Some(redacts) = &new.redacts {
        if ctx.rules.redaction.content_field_redacts {
            content["redacts"] = json!(redacts);
        } else {
            obj["redacts"] = json!(redacts);
        }
    }
    obj["content"] = content;
    serde_json::from_value(obj).map_err(|e| Error::bad_json(format!("Event is not canonical JSON: {e}")))
}

/// How a PDU names other events: by event ID, or in room versions 1 and 2 as
/// `[event_id, {"sha256": content hash}]` (spec: room version 1, "Event format"), with the
/// referenced event's content hash as Synapse sends it.
fn references(rules: &RoomVersionRules, events: &[StoredEvent]) -> Value {
    let old_format = rules.events_reference_format == EventsReferenceFormatVersion::V1;
    let list = events.iter().map(|e| {
        if old_format {
            let sha256 = e.json.get("hashes").and_then(|h| h.get("sha256")).cloned().unwrap_or_else(|| json!(""));
            json!([e.meta.event_id, { "sha256": sha256 }])
        } else {
            json!(e.meta.event_id)
        }
    });
    Value::Array(list.collect())
}

/// The authorization rules of the room version, against the event's `auth_events` and against
/// the state before it. Failure is `M_FORBIDDEN` with ruma's reason.
pub fn authorize(s: &Services, ctx: &RoomCtx, pdu: &Pdu) -> Result<()> {
    let fetch_event = |id: &EventId| load(s, id).ok().flatten().map(|e| e.pdu);
    check_state_independent_auth_rules(&ctx.rules.authorization, pdu, fetch_event)
        .map_err(|e| Error::forbidden(format!("Event not authorized: {e}")))?;
    let fetch_state =
        |ty: &StateEventType, key: &str| state_event(s, &ctx.state, ty, key).ok().flatten().map(|e| e.pdu);
    check_state_dependent_auth_rules(&ctx.rules.authorization, pdu, fetch_state)
        .map_err(|e| Error::forbidden(format!("Event not authorized: {e}")))
}
