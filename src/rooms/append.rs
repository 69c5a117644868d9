//! Persisting an authorized event: the PDU, its metadata, timeline and topological order,
//! forward extremities, state groups, the current-state and membership indexes, relations,
//! transaction IDs and redactions — all in one batch under one stream position.

use ruma::canonical_json::redact;
use std::sync::Arc;

use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use ruma::{
    CanonicalJsonObject, DeviceId, OwnedDeviceId, OwnedEventId, OwnedTransactionId, OwnedUserId, RoomId, UserId,
};
use serde_json::{Value, json};

use super::build::{NewEvent, RoomCtx, StateBefore, authorize, build};
use super::pdu::Pdu;
use super::state::{self, ShortState};
use super::{load, short};
use crate::error::{Error, Result};
use crate::federation::sender::fanout;
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
///
/// Only the wait for the lock is async; the work under it is the synchronous `send_locked`.
pub async fn send(
    s: &Services,
    room_id: &RoomId,
    sender: &UserId,
    new: NewEvent,
    txn: Option<Txn>,
) -> Result<OwnedEventId> {
    let _guard = s.room_lock(room_id).await;
    send_locked(s, room_id, sender, new, txn)
}

/// [`send`] for a caller that holds the room's lock.
fn send_locked(
    s: &Services,
    room_id: &RoomId,
    sender: &UserId,
    new: NewEvent,
    txn: Option<Txn>,
) -> Result<OwnedEventId> {
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
///
/// One batch holds everything the event changes: the PDU and its metadata, the timeline, the
/// room record, the current-state and membership indexes, and the federation queue entries of
/// a local event. A crash leaves either all of it or none of it; the sender is woken only once
/// the batch is committed.
pub fn append(s: &Services, ctx: &RoomCtx, pdu: &Pdu, obj: CanonicalJsonObject, txn: Option<&Txn>) -> Result<()> {
    let db = &s.db;
    let room_id = pdu.room()?;
    // The record `ctx` was built from (read once per send); a new room has none.
    let loaded;
    let old_record: Option<&RoomRecord> = match &ctx.record {
        Some(r) => Some(r),
        None => {
            loaded = db.get(ROOMS, &room_id)?;
            loaded.as_ref()
        }
    };
    let shortroomid = match old_record {
        Some(r) => r.shortroomid,
        None => short::room(db, &room_id)?,
    };
    let pos = db.stream().allocate().waking(crate::sync::wake::event(&room_id, pdu));
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
        room_version: Some(ctx.version.clone()),
    };
    batch.put(EVENT_META, &sid, &meta)?;
    batch.put(ROOM_TIMELINE, &(shortroomid, pos.pos()), &Counter(sid))?;
    batch.put(ROOM_TOPOLOGY, &(shortroomid, pdu.depth, pos.pos()), &Counter(sid))?;
    let old_extremities: Vec<(u64, OwnedEventId)> =
        old_record.map(|r| r.forward_extremities.clone()).unwrap_or_default();
    let mut prev_shorts = Vec::new();
    for prev in &pdu.prev_events {
        if let Some(p) = short::event_get(db, prev)? {
            prev_shorts.push(p);
        }
    }
    let mut forward_extremities: Vec<(u64, OwnedEventId)> =
        old_extremities.iter().filter(|(e, _)| !prev_shorts.contains(e)).cloned().collect();
    forward_extremities.push((sid, pdu.event_id.clone()));

    let old_current = old_record.map(|r| r.current_state_group);
    let max_depth = old_record.map_or(0, |r| r.max_depth).max(pdu.depth);
    let mut record = RoomRecord {
        room_version: ctx.version.clone(),
        shortroomid,
        current_state_group: old_current.unwrap_or(state_before),
        max_depth,
        forward_extremities,
        // A new room has no members yet.
        membership_pos: old_record.map_or(Some(0), |r| r.membership_pos),
    };

    // Fast path: the event extends the room's only head, so exactly its own key changes.
    let on_head =
        old_extremities.len() == prev_shorts.len() && old_extremities.iter().all(|(e, _)| prev_shorts.contains(e));
    let fast = matches!(ctx.state_before, StateBefore::Group(g) if on_head && old_current == Some(g));
    let new = NewInBatch { sid, pdu, state_after, this_key, ctx };
    let joined = if fast {
        record.current_state_group = state_after;
        let changed: Vec<(u64, u64)> = this_key.map(|k| (k, sid)).into_iter().collect();
        apply_current_state(s, &mut batch, &room_id, &mut record, (&changed, &[]), &new, pos.pos())?
    } else {
        let (group, changed, removed) = current_state_change(s, &mut batch, &record, old_current, &new)?;
        record.current_state_group = group;
        apply_current_state(s, &mut batch, &room_id, &mut record, (&changed, &removed), &new, pos.pos())?
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
    // Who gets a local event over federation: the servers with joined members before it, and
    // those it makes members (a join through another server brings the whole room's state).
    let destinations = fanout::pdu_destinations(s, &room_id, old_current, pdu, &joined)?;
    let wake = s.sender.queue_pdu(&mut batch, &destinations, &pdu.event_id, pos.pos())?;
    batch.stream_position(&pos)?;
    batch.commit()?;
    failpoint("after_event_commit");
    if let Some(target) = redacted {
        s.event_cache.invalidate(target);
    }
    s.sender.wake_queued(&wake);
    Ok(())
}

/// Crash injection for the tests (`tests/it/federation/crash.rs`): in a debug build, with
/// `TRELLIS_FAILPOINT=<name>` in the environment, the process aborts at the failpoint `name`
/// as a `kill -9` would stop it. Release builds compile it to nothing and never read the
/// variable. Failpoints: `after_event_commit` (an appended event's batch is committed, nothing
/// after it has run).
fn failpoint(name: &str) {
    #[cfg(debug_assertions)]
    {
        static SET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        if SET.get_or_init(|| std::env::var("TRELLIS_FAILPOINT").ok()).as_deref() == Some(name) {
            eprintln!("trellis: failpoint {name}: aborting");
            std::process::abort();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// The event being appended, whose rows are still in the uncommitted batch (its short id,
/// state groups and PDU cannot be read back from storage yet).
struct NewInBatch<'a> {
    sid: u64,
    pdu: &'a Pdu,
    state_after: u64,
    this_key: Option<u64>,
    ctx: &'a RoomCtx,
}

impl NewInBatch<'_> {
    /// The full state after the event (the state before it plus its own key).
    fn state_after_map(&self) -> Arc<ShortState> {
        match self.this_key {
            None => self.ctx.state.clone(),
            Some(k) => {
                let mut after: ShortState = (*self.ctx.state).clone();
                after.insert(k, self.sid);
                Arc::new(after)
            }
        }
    }
}

/// A current-state change: the new state group, the `(shortstatekey, shorteventid)` pairs
/// changed and the shortstatekeys removed.
type CurrentStateChange = (u64, Vec<(u64, u64)>, Vec<u64>);

/// The room's new current state: the state after its forward extremities (in `record`),
/// resolved when there are several (the resolved group written to `batch`); returned as the
/// group and the keys changed and removed since `old_current`.
fn current_state_change(
    s: &Services,
    batch: &mut Batch<'_>,
    record: &RoomRecord,
    old_current: Option<u64>,
    new: &NewInBatch<'_>,
) -> Result<CurrentStateChange> {
    let db = &s.db;
    let mut groups: Vec<(u64, Arc<ShortState>)> = Vec::new();
    for (e, _) in &record.forward_extremities {
        let group = if *e == new.sid {
            new.state_after
        } else {
            db.get(EVENT_META, e)?.ok_or_else(|| Error::internal("extremity without meta"))?.state_after
        };
        if groups.iter().any(|(g, _)| *g == group) {
            continue;
        }
        let state =
            if group == new.state_after { new.state_after_map() } else { state::load(db, &s.state_cache, group)? };
        groups.push((group, state));
    }
    let (group, new_state) = match groups.as_slice() {
        [(one, state)] => (*one, state.clone()),
        _ => {
            let maps: Vec<Arc<ShortState>> = groups.iter().map(|(_, st)| st.clone()).collect();
            let pending = super::resolve::Pending { short: new.sid, pdu: new.pdu };
            let rules = super::rules_for(&record.room_version)?;
            let resolved = super::resolve::resolve_with(s, &rules, &maps, Some(pending))?;
            (state::new_full(db, batch, &resolved)?, Arc::new(resolved))
        }
    };
    let old = match old_current {
        Some(g) => state::load(db, &s.state_cache, g)?,
        None => Arc::default(),
    };
    let changed: Vec<(u64, u64)> =
        new_state.iter().filter(|(k, v)| old.get(k) != Some(v)).map(|(k, v)| (*k, *v)).collect();
    let removed: Vec<u64> = old.keys().filter(|k| !new_state.contains_key(k)).copied().collect();
    Ok((group, changed, removed))
}

/// Apply changed and removed keys to the current-state and membership indexes (and the
/// record's `membership_pos` when a membership changed); the users who are now joined by
/// these changes.
fn apply_current_state(
    s: &Services,
    batch: &mut Batch<'_>,
    room_id: &RoomId,
    record: &mut RoomRecord,
    (changed, removed): (&[(u64, u64)], &[u64]),
    new: &NewInBatch<'_>,
    pos: u64,
) -> Result<Vec<OwnedUserId>> {
    let db: &Storage = &s.db;
    let shortroomid = record.shortroomid;
    let mut joined = Vec::new();
    for (key, event) in changed {
        batch.put(CURRENT_STATE, &(shortroomid, *key), &Counter(*event))?;
        let (kind, state_key) = short::statekey_parts(db, *key)?;
        if kind == StateEventType::RoomMember
            && let Ok(user) = UserId::parse(&state_key)
        {
            let (event_id, content) = if *event == new.sid {
                (new.pdu.event_id.clone(), new.pdu.content_value())
            } else {
                let content = super::load_by_short(s, *event)?.map(|e| e.pdu.content_value()).unwrap_or_default();
                (short::event_id(db, *event)?, content)
            };
            let membership =
                content.get("membership").and_then(Value::as_str).map_or(MembershipState::Leave, MembershipState::from);
            let m = MembershipRecord { membership, event_id, stream_pos: pos };
            batch.put(ROOM_MEMBERSHIPS, &(room_id, &*user), &m)?;
            batch.put(USER_MEMBERSHIPS, &(&*user, room_id), &m)?;
            if m.membership == MembershipState::Join {
                joined.push(user);
            }
            record.membership_pos = Some(pos);
        }
    }
    for key in removed {
        batch.delete(CURRENT_STATE, &(shortroomid, *key))?;
    }
    Ok(joined)
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
