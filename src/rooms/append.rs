//! Persisting an authorized event: the PDU, its metadata, timeline and topological order,
//! forward extremities, state groups, the current-state and membership indexes, relations,
//! transaction IDs and redactions — all in one batch under one stream position.

use ruma::canonical_json::redact;
use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use ruma::{CanonicalJsonObject, DeviceId, OwnedDeviceId, OwnedEventId, OwnedTransactionId, RoomId, UserId};
use serde_json::{Value, json};

use super::build::{NewEvent, RoomCtx, StateBefore, authorize, build};
use super::pdu::Pdu;
use super::state::{self, ShortState};
use super::{load, short};
use crate::error::{Error, Result};
use crate::services::Services;
use crate::storage::catalog::{
    CURRENT_STATE, EVENT_META, PDUS, RELATIONS, ROOM_MEMBERSHIPS, ROOM_TIMELINE, ROOM_TOPOLOGY, ROOMS, THREAD_ROOTS,
    TXN_IDS, USER_MEMBERSHIPS,
};
use crate::storage::codec::Counter;
use crate::storage::records::{EventMeta, MembershipRecord, RoomRecord};
use crate::storage::{Batch, Storage};

/// A client transaction (spec: "Transaction identifiers"). Idempotency is per device and per
/// request path (`scope`), as in Synapse: the same `txn_id` in two rooms is two events.
#[derive(Debug, Clone)]
pub struct Txn {
    pub device_id: OwnedDeviceId,
    pub txn_id: OwnedTransactionId,
    /// The endpoint and its path arguments, e.g. `send/!room/m.room.message`.
    pub scope: String,
}

impl Txn {
    fn key<'a>(&'a self, sender: &'a UserId) -> (&'a UserId, &'a DeviceId, String) {
        (sender, &self.device_id, format!("{}/{}", self.scope, self.txn_id))
    }
}

/// Send a local event: under the room's lock (so a local room never forks), build on the
/// forward extremities, authorize, persist. Idempotent per `(user, device, txn_id)`.
pub fn send(s: &Services, room_id: &RoomId, sender: &UserId, new: NewEvent, txn: Option<Txn>) -> Result<OwnedEventId> {
    let _guard = s.room_lock(room_id);
    if let Some(t) = &txn
        && let Some(existing) = s.db.get(TXN_IDS, &t.key(sender))?
    {
        return Ok(existing);
    }
    let ctx = RoomCtx::current(s, room_id).map_err(|e| super::hide_unknown_room(e, room_id))?;
    let (pdu, obj) = build(s, &ctx, sender, &new)?;
    authorize(s, &ctx, &pdu)?;
    append(s, &ctx, &pdu, obj, txn.as_ref())?;
    Ok(pdu.event_id)
}

/// Persist an authorized event built on `ctx`. The caller holds the room lock.
pub fn append(s: &Services, ctx: &RoomCtx, pdu: &Pdu, obj: CanonicalJsonObject, txn: Option<&Txn>) -> Result<()> {
    let db = &s.db;
    let room_id = pdu.room()?;
    let shortroomid = short::room(db, &room_id)?;
    let pos = db.stream().allocate();
    let mut batch = db.batch();
    let sid = short::event_in(&mut batch, &pdu.event_id)?;

    let (state_before, state_after, this_key) = state_groups(s, &mut batch, ctx, pdu, sid, true)?;

    batch.put(PDUS, &sid, &serde_json::to_value(&obj).map_err(Error::internal)?)?;
    let meta = EventMeta {
        event_id: pdu.event_id.clone(),
        shortroomid,
        stream_pos: pos.pos(),
        depth: pdu.depth,
        state_before,
        state_after,
        outlier: false,
        rejected: false,
        soft_failed: false,
        redacted_by: None,
        txn: txn.map(|t| (t.device_id.clone(), t.txn_id.clone())),
    };
    batch.put(EVENT_META, &sid, &meta)?;
    batch.put(ROOM_TIMELINE, &(shortroomid, pos.pos()), &Counter(sid))?;
    batch.put(ROOM_TOPOLOGY, &(shortroomid, pdu.depth, pos.pos()), &Counter(sid))?;
    let old_record = s.db.get(ROOMS, &room_id)?;
    let old_extremities: Vec<(u64, OwnedEventId)> =
        old_record.as_ref().map(|r| r.forward_extremities.clone()).unwrap_or_default();
    let mut prev_shorts = Vec::new();
    for prev in &pdu.prev_events {
        if let Some(p) = short::event_get(db, prev)? {
            prev_shorts.push(p);
        }
    }
    let mut forward_extremities: Vec<(u64, OwnedEventId)> =
        old_extremities.iter().filter(|(e, _)| !prev_shorts.contains(e)).cloned().collect();
    forward_extremities.push((sid, pdu.event_id.clone()));

    let old_current = old_record.as_ref().map(|r| r.current_state_group);
    let max_depth = old_record.as_ref().map_or(0, |r| r.max_depth).max(pdu.depth);
    // The current state moves in `refresh_current_state`, after the event is written.
    let record = RoomRecord {
        room_version: ctx.version.clone(),
        shortroomid,
        current_state_group: old_current.unwrap_or(state_before),
        max_depth,
        forward_extremities,
        // A new room has no members yet.
        membership_pos: old_record.as_ref().map_or(Some(0), |r| r.membership_pos),
    };
    batch.put(ROOMS, &room_id, &record)?;

    if let Some(t) = txn {
        batch.put(TXN_IDS, &t.key(&pdu.sender), &pdu.event_id)?;
    }
    let content = pdu.content_value();
    if let Some(rel) = content.get("m.relates_to") {
        let parent = rel.get("event_id").and_then(Value::as_str).and_then(|p| ruma::EventId::parse(p).ok());
        let rel_type = rel.get("rel_type").and_then(Value::as_str);
        if let (Some(parent), Some(rel_type)) = (parent, rel_type)
            && let Some(p) = short::event_get(db, &parent)?
        {
            batch.put(RELATIONS, &(p, sid), &json!([rel_type, pdu.kind.to_string()]))?;
            if rel_type == "m.thread" {
                batch.put(THREAD_ROOTS, &(shortroomid, p), &Counter(pos.pos()))?;
            }
        }
    }
    let mut redacted = None;
    if pdu.kind == ruma::events::TimelineEventType::RoomRedaction
        && let Some(target) = &pdu.redacts
    {
        apply_redaction(s, &mut batch, ctx, &room_id, target, &pdu.event_id)?;
        redacted = short::event_get(db, target)?;
    }
    batch.stream_position(&pos)?;
    batch.commit()?;
    if let Some(target) = redacted {
        s.event_cache.invalidate(target);
    }

    // Fast path: the event extends the room's only head, so exactly its own key changes.
    let on_head =
        old_extremities.len() == prev_shorts.len() && old_extremities.iter().all(|(e, _)| prev_shorts.contains(e));
    let hint = match ctx.state_before {
        StateBefore::Group(g) if on_head && old_current == Some(g) => Some((state_after, this_key.map(|k| (k, sid)))),
        _ => None,
    };
    // A message on the head leaves the current state as the batch above wrote it.
    if !matches!(hint, Some((group, None)) if Some(group) == old_current) {
        refresh_current_state(s, &room_id, hint, pos.pos())?;
    }
    crate::federation::sender::fanout::event_appended(s, pdu, pos.pos());
    Ok(())
}

/// The groups of the state before and after `pdu` (built on `ctx`, short id `sid`), new ones
/// written to `batch`, and its short state key. `changes_state: false` (a rejected event) keeps
/// the state after equal to the state before.
pub fn state_groups(
    s: &Services,
    batch: &mut Batch<'_>,
    ctx: &RoomCtx,
    pdu: &Pdu,
    sid: u64,
    changes_state: bool,
) -> Result<(u64, u64, Option<u64>)> {
    let db = &s.db;
    let state_before = match &ctx.state_before {
        StateBefore::Group(g) => *g,
        StateBefore::Empty => state::new_empty(db, batch)?,
        StateBefore::Resolved => state::new_full(db, batch, &ctx.state)?,
    };
    let this_key = match &pdu.state_key {
        Some(key) if changes_state => Some(short::statekey(db, &pdu.state_type(), key)?),
        _ => None,
    };
    let state_after = match (this_key, &ctx.state_before) {
        (None, _) => state_before,
        (Some(sk), StateBefore::Group(g)) => state::new_delta(db, &s.state_cache, batch, *g, &[(sk, sid)], &[])?,
        (Some(sk), _) => {
            let mut after: ShortState = (*ctx.state).clone();
            after.insert(sk, sid);
            state::new_full(db, batch, &after)?
        }
    };
    Ok((state_before, state_after, this_key))
}

/// Make the room's current state the state after its forward extremities (resolved when there
/// are several), and bring the current-state and membership indexes in line. `hint` is the
/// fast path's `(new group, the one changed key)`.
pub fn refresh_current_state(
    s: &Services,
    room_id: &RoomId,
    hint: Option<(u64, Option<(u64, u64)>)>,
    pos: u64,
) -> Result<()> {
    let db = &s.db;
    let Some(mut record) = db.get(ROOMS, room_id)? else { return Ok(()) };
    let mut batch = db.batch();
    let (group, changed, removed) = match hint {
        Some((group, changed)) => (group, changed.into_iter().collect::<Vec<_>>(), Vec::new()),
        None => {
            let mut groups = Vec::new();
            for (e, _) in &record.forward_extremities {
                let meta = db.get(EVENT_META, e)?.ok_or_else(|| Error::internal("extremity without meta"))?;
                if !groups.contains(&meta.state_after) {
                    groups.push(meta.state_after);
                }
            }
            let (group, new_state) = match groups.as_slice() {
                [one] => (*one, state::load(db, &s.state_cache, *one)?),
                _ => {
                    let maps =
                        groups.iter().map(|g| state::load(db, &s.state_cache, *g)).collect::<Result<Vec<_>>>()?;
                    let resolved = super::resolve::resolve(s, &super::rules_for(&record.room_version)?, &maps)?;
                    (state::new_full(db, &mut batch, &resolved)?, std::sync::Arc::new(resolved))
                }
            };
            let old = state::load(db, &s.state_cache, record.current_state_group)?;
            let changed: Vec<(u64, u64)> =
                new_state.iter().filter(|(k, v)| old.get(k) != Some(v)).map(|(k, v)| (*k, *v)).collect();
            let removed: Vec<u64> = old.keys().filter(|k| !new_state.contains_key(k)).copied().collect();
            (group, changed, removed)
        }
    };
    if update_current_state(s, &mut batch, room_id, record.shortroomid, (&changed, &removed), pos)? {
        record.membership_pos = Some(pos);
    }
    record.current_state_group = group;
    batch.put(ROOMS, room_id, &record)?;
    batch.commit()
}

/// Apply changed and removed keys to the current-state and membership indexes; whether a
/// membership changed.
fn update_current_state(
    s: &Services,
    batch: &mut Batch<'_>,
    room_id: &RoomId,
    shortroomid: u64,
    (changed, removed): (&[(u64, u64)], &[u64]),
    pos: u64,
) -> Result<bool> {
    let mut members_changed = false;
    let db: &Storage = &s.db;
    for (key, event) in changed {
        batch.put(CURRENT_STATE, &(shortroomid, *key), &Counter(*event))?;
        let (kind, state_key) = short::statekey_parts(db, *key)?;
        if kind == StateEventType::RoomMember
            && let Ok(user_id) = UserId::parse(&state_key)
        {
            let event_id = short::event_id(db, *event)?;
            let content = super::load_by_short(s, *event)?.map(|e| e.pdu.content_value()).unwrap_or_default();
            let membership =
                content.get("membership").and_then(Value::as_str).map_or(MembershipState::Leave, MembershipState::from);
            let record = MembershipRecord { membership, event_id, stream_pos: pos };
            batch.put(ROOM_MEMBERSHIPS, &(room_id, &*user_id), &record)?;
            batch.put(USER_MEMBERSHIPS, &(&*user_id, room_id), &record)?;
            members_changed = true;
        }
    }
    for key in removed {
        batch.delete(CURRENT_STATE, &(shortroomid, *key))?;
    }
    Ok(members_changed)
}

/// Replace the target's stored JSON with its redacted form (room version's redaction
/// algorithm) and mark it redacted. Events of other rooms are left alone.
fn apply_redaction(
    s: &Services,
    batch: &mut Batch<'_>,
    ctx: &RoomCtx,
    room_id: &RoomId,
    target: &ruma::EventId,
    by: &ruma::EventId,
) -> Result<()> {
    let Some(event) = load(s, target)? else { return Ok(()) };
    if event.pdu.room()? != *room_id || event.meta.redacted_by.is_some() {
        return Ok(());
    }
    let obj: CanonicalJsonObject = serde_json::from_value(Value::clone(&event.json)).map_err(Error::internal)?;
    let redacted = redact(obj, &ctx.rules.redaction, None).map_err(|e| Error::internal(format!("redacting: {e}")))?;
    let short = short::event(&s.db, target)?;
    batch.put(PDUS, &short, &serde_json::to_value(&redacted).map_err(Error::internal)?)?;
    let mut meta = event.meta;
    meta.redacted_by = Some(by.to_owned());
    batch.put(EVENT_META, &short, &meta)?;
    // Dropped now and again after the commit below (a reader may re-cache the old form meanwhile).
    s.event_cache.invalidate(short);
    Ok(())
}

/// The `Txn` of a client request from `device_id` to the endpoint `scope`.
pub fn txn(device_id: &DeviceId, txn_id: &str, scope: String) -> Txn {
    Txn { device_id: device_id.to_owned(), txn_id: txn_id.into(), scope }
}
