//! Storing received events (spec: Server-Server API, "Checks performed on receipt of a PDU",
//! steps 4–6; "Rejection", "Soft failure"): outliers, and events placed in the DAG as accepted,
//! rejected or soft-failed. Each entry point awaits the room lock, then checks and writes the
//! event synchronously in one batch under it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ruma::events::StateEventType;
use ruma::room_version_rules::RoomVersionRules;
use ruma::state_res::{check_state_dependent_auth_rules, check_state_independent_auth_rules};
use ruma::{EventId, OwnedEventId, RoomId};

use super::check::Checked;
use crate::error::{Error, Result};
use crate::rooms::append::{append, state_groups};
use crate::rooms::build::{RoomCtx, StateBefore, authorize};
use crate::rooms::pdu::Pdu;
use crate::rooms::state::{self, ShortState};
use crate::rooms::{load, resolve, room, rules_for, short};
use crate::services::Services;
use crate::storage::catalog::{EVENT_META, PDUS};
use crate::storage::records::EventMeta;

/// What became of a received event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed every check: in the timeline, state and forward extremities.
    Accepted,
    /// Authorized by the state before it but not by the current state: stored, never shown,
    /// never a forward extremity.
    SoftFailed,
    /// Failed authorization: stored as rejected (for the DAG), never state or timeline.
    Rejected(String),
    /// Already in the DAG (not as an outlier).
    Known,
}

/// The metadata of a stored event (outlier or not).
pub fn meta_of(s: &Services, event_id: &EventId) -> Result<Option<EventMeta>> {
    match short::event_get(&s.db, event_id)? {
        Some(sid) => s.db.get(EVENT_META, &sid),
        None => Ok(None),
    }
}

/// Step 4: the authorization rules against the event's own `auth_events` (which are stored).
pub fn auth_by_auth_events(s: &Services, rules: &RoomVersionRules, pdu: &Pdu) -> std::result::Result<(), String> {
    let fetch_event = |id: &EventId| load(s, id).ok().flatten().map(|e| e.pdu);
    check_state_independent_auth_rules(&rules.authorization, pdu, fetch_event)?;
    // Since room version 12 the create event is implied by the room ID, not listed.
    let create = match (&pdu.room_id, rules.authorization.room_create_event_id_as_room_id) {
        (Some(room_id), true) => EventId::parse(format!("${}", room_id.strip_sigil())).ok(),
        _ => None,
    };
    let auth: Vec<Pdu> = pdu
        .auth_events
        .iter()
        .chain(create.as_ref())
        .filter_map(|id| load(s, id).ok().flatten().map(|e| e.pdu))
        .collect();
    let fetch_state = |ty: &StateEventType, key: &str| {
        auth.iter().find(|e| e.state_type() == *ty && e.state_key.as_deref() == Some(key)).cloned()
    };
    check_state_dependent_auth_rules(&rules.authorization, pdu, fetch_state)
}

/// Order events so that each comes after those of its `auth_events` that are in the set.
fn auth_order(events: Vec<Checked>) -> Vec<Checked> {
    let ids: HashSet<OwnedEventId> = events.iter().map(|e| e.event_id.clone()).collect();
    let mut done: HashSet<OwnedEventId> = HashSet::new();
    let mut pending = events;
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let (ready, rest): (Vec<Checked>, Vec<Checked>) =
            pending.into_iter().partition(|e| e.pdu.auth_events.iter().all(|a| !ids.contains(a) || done.contains(a)));
        if ready.is_empty() {
            // A cycle: keep the rest as they are (their auth checks will fail).
            out.extend(rest);
            break;
        }
        done.extend(ready.iter().map(|e| e.event_id.clone()));
        out.extend(ready);
        pending = rest;
    }
    out
}

/// Store events as outliers (no place in the DAG: auth chains, state fetched from another
/// server), each checked against its own auth events first and marked rejected if it fails.
pub async fn store_outliers(s: &Services, room_id: &RoomId, events: Vec<Checked>) -> Result<()> {
    let _guard = s.room_lock(room_id).await;
    let record = room(s, room_id)?;
    let rules = rules_for(&record.room_version)?;
    for ev in auth_order(events) {
        if meta_of(s, &ev.event_id)?.is_some() {
            continue;
        }
        let rejected = match auth_by_auth_events(s, &rules, &ev.pdu) {
            Ok(()) => false,
            Err(why) => {
                tracing::info!(event_id = %ev.event_id, %why, "outlier rejected");
                true
            }
        };
        let sid = short::event(&s.db, &ev.event_id)?;
        let meta = EventMeta {
            event_id: ev.event_id.clone(),
            shortroomid: record.shortroomid,
            stream_pos: 0,
            depth: ev.pdu.depth,
            state_before: 0,
            state_after: 0,
            outlier: true,
            rejected,
            soft_failed: false,
            redacted_by: None,
            txn: None,
            room_version: Some(record.room_version.clone()),
        };
        let mut batch = s.db.batch();
        batch.put(PDUS, &sid, &serde_json::to_value(&ev.obj).map_err(Error::internal)?)?;
        batch.put(EVENT_META, &sid, &meta)?;
        batch.commit()?;
        s.event_cache.invalidate(sid);
    }
    Ok(())
}

/// The state made of stored events (e.g. the `pdu_ids` of `/state_ids`, or the `state` of a
/// `send_join` answer), plus `extra` when it is a state event (the state after it rather than
/// before). Rejected events and events of other rooms are left out: another server's word
/// cannot put them in this room's state (spec: Server-Server API, "Rejection"). An event that
/// is not stored is an error.
pub fn state_of(s: &Services, room_id: &RoomId, ids: &[OwnedEventId], extra: Option<&EventId>) -> Result<ShortState> {
    let mut out = ShortState::new();
    for id in ids.iter().map(|i| i.as_ref()).chain(extra) {
        let ev = load(s, id)?.ok_or_else(|| Error::not_found(format!("State event {id} was not fetched")))?;
        let Some(key) = &ev.pdu.state_key else { continue };
        if ev.meta.rejected || ev.pdu.room()? != room_id {
            tracing::info!(event_id = %id, %room_id, "left out of a received state: rejected or of another room");
            continue;
        }
        let sk = short::statekey(&s.db, &ev.pdu.state_type(), key)?;
        out.insert(sk, short::event(&s.db, id)?);
    }
    Ok(out)
}

/// The context of an event on its `prev_events`: the state after each (stored, or fetched from
/// another server for `fetched` ones), resolved when they differ.
pub(super) fn context(
    s: &Services,
    room_id: &RoomId,
    pdu: &Pdu,
    fetched: &HashMap<OwnedEventId, Arc<ShortState>>,
) -> Result<RoomCtx> {
    let record = room(s, room_id)?;
    let rules = rules_for(&record.room_version)?;
    let mut prev_events = Vec::new();
    let mut sources: Vec<(Option<u64>, Arc<ShortState>)> = Vec::new();
    for prev in &pdu.prev_events {
        match meta_of(s, prev)? {
            Some(m) if !m.outlier => {
                prev_events.push((prev.clone(), m.depth));
                if !sources.iter().any(|(g, _)| *g == Some(m.state_after)) {
                    sources.push((Some(m.state_after), state::load(&s.db, &s.state_cache, m.state_after)?));
                }
            }
            other => {
                let st = fetched.get(prev).ok_or_else(|| Error::not_found(format!("Missing prev event {prev}")))?;
                prev_events.push((prev.clone(), other.map_or(0, |m| m.depth)));
                sources.push((None, st.clone()));
            }
        }
    }
    let (state_before, state) = match sources.as_slice() {
        [] => return Err(Error::bad_json(format!("{} has no prev_events", pdu.event_id))),
        [(Some(g), st)] => (StateBefore::Group(*g), st.clone()),
        [(None, st)] => (StateBefore::Resolved, st.clone()),
        _ => {
            let maps: Vec<Arc<ShortState>> = sources.iter().map(|(_, st)| st.clone()).collect();
            (StateBefore::Resolved, Arc::new(resolve::resolve(s, &rules, &maps)?))
        }
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

/// Steps 4–6 and the write: authorize by the auth events, by the state before the event, and by
/// the room's current state; then append it (accepted) or store it rejected / soft-failed.
/// Every prev event must be stored in the DAG or have its state in `fetched`.
pub async fn persist(
    s: &Services,
    room_id: &RoomId,
    ev: &Checked,
    fetched: &HashMap<OwnedEventId, Arc<ShortState>>,
) -> Result<Outcome> {
    let _guard = s.room_lock(room_id).await;
    let existing = meta_of(s, &ev.event_id)?;
    if existing.as_ref().is_some_and(|m| !m.outlier) {
        return Ok(Outcome::Known);
    }
    let ctx = context(s, room_id, &ev.pdu, fetched)?;
    let outcome = if let Err(why) = auth_by_auth_events(s, &ctx.rules, &ev.pdu) {
        Outcome::Rejected(format!("Event not authorized by its auth events: {why}"))
    } else if let Err(e) = authorize(s, &ctx, &ev.pdu) {
        Outcome::Rejected(format!("Event not authorized by the state before it: {}", reason(&e)))
    } else {
        let current = match &ctx.record {
            Some(r) => r.current_state_group,
            None => room(s, room_id)?.current_state_group,
        };
        let at_current = matches!(ctx.state_before, StateBefore::Group(g) if g == current);
        let now = RoomCtx { state: state::load(&s.db, &s.state_cache, current)?, ..ctx_shell(&ctx) };
        if at_current || authorize(s, &now, &ev.pdu).is_ok() { Outcome::Accepted } else { Outcome::SoftFailed }
    };
    let sid = short::event(&s.db, &ev.event_id)?;
    match &outcome {
        Outcome::Accepted => append(s, &ctx, &ev.pdu, ev.obj.clone(), None)?,
        Outcome::SoftFailed => store_excluded(s, &ctx, ev, sid, false)?,
        Outcome::Rejected(why) => {
            tracing::info!(event_id = %ev.event_id, %why, "event rejected");
            store_excluded(s, &ctx, ev, sid, true)?;
        }
        Outcome::Known => {}
    }
    // An outlier's cached form is stale now.
    s.event_cache.invalidate(sid);
    Ok(outcome)
}

/// A copy of `ctx` for a second authorization (its `state` is replaced).
fn ctx_shell(ctx: &RoomCtx) -> RoomCtx {
    RoomCtx {
        room_id: ctx.room_id.clone(),
        version: ctx.version.clone(),
        rules: ctx.rules.clone(),
        state_before: ctx.state_before.clone(),
        state: ctx.state.clone(),
        prev_events: ctx.prev_events.clone(),
        record: ctx.record.clone(),
    }
}

/// The message of an error, without its errcode.
pub fn reason(e: &Error) -> String {
    match e {
        Error::Matrix { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Store a rejected or soft-failed event: its PDU, metadata and state groups, but no timeline
/// entry, no forward extremity and no current-state change. A rejected event's state after is
/// the state before it.
pub(super) fn store_excluded(s: &Services, ctx: &RoomCtx, ev: &Checked, sid: u64, rejected: bool) -> Result<()> {
    let db = &s.db;
    let shortroomid = short::room(db, &ev.pdu.room()?)?;
    let mut batch = db.batch();
    let (state_before, state_after, _) = state_groups(s, &mut batch, ctx, &ev.pdu, sid, !rejected)?;
    let meta = EventMeta {
        event_id: ev.event_id.clone(),
        shortroomid,
        stream_pos: 0,
        depth: ev.pdu.depth,
        state_before,
        state_after,
        outlier: false,
        rejected,
        soft_failed: !rejected,
        redacted_by: None,
        txn: None,
        room_version: Some(ctx.version.clone()),
    };
    batch.put(PDUS, &sid, &serde_json::to_value(&ev.obj).map_err(Error::internal)?)?;
    batch.put(EVENT_META, &sid, &meta)?;
    batch.commit()
}
