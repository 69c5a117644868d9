//! Serving room events to other servers (spec: Server-Server API "Retrieving events",
//! "Backfilling and retrieving missing events", `GET /event_auth`): one event, the state before
//! an event with its auth chain, an event's auth chain, backfill and missing events. Every one
//! goes through [`access`](super::access): 404 for unknown rooms and events, 403 for a server the ACL denies or
//! that is not in the room, and events it may not see come redacted.

use std::collections::{BinaryHeap, HashSet};

use ruma::{EventId, OwnedEventId, RoomId, ServerName};
use serde_json::Value;

use super::access::{ServerView, ensure_may_read, room_event};
use crate::error::{Error, Result};
use crate::rooms::resolve::auth_chain;
use crate::rooms::{StoredEvent, load, state};
use crate::services::Services;

/// Most events one `/backfill` or `/get_missing_events` returns.
pub const MAX_EVENTS: usize = 100;

/// `GET /event/{eventId}`: the PDU, redacted if `origin` may not see it.
pub fn event(s: &Services, origin: &ServerName, event_id: &EventId) -> Result<Value> {
    let ev = load(s, event_id)?
        .filter(|e| !e.meta.rejected)
        .ok_or_else(|| Error::not_found(format!("Unknown event {event_id}")))?;
    let record = ensure_may_read(s, &ev.pdu.room()?, origin)?;
    ServerView::new(s, &record, origin)?.pdu(&ev)
}

/// The state before `event_id` and the auth chain of those state events, as event IDs
/// (`GET /state_ids`). 403 if `origin` may not see the event itself.
pub fn state_ids(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<(Vec<OwnedEventId>, Vec<OwnedEventId>)> {
    let (state, chain) = state_at(s, origin, room_id, event_id)?;
    Ok((state.iter().map(|e| e.pdu.event_id.clone()).collect(), chain.iter().map(|e| e.pdu.event_id.clone()).collect()))
}

/// `GET /state`: the same as [`state_ids`], as PDUs: `(pdus, auth_chain)`.
pub fn state(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let (state, chain) = state_at(s, origin, room_id, event_id)?;
    Ok((
        state.into_iter().map(|e| Value::clone(&e.json)).collect(),
        chain.into_iter().map(|e| Value::clone(&e.json)).collect(),
    ))
}

fn state_at(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<(Vec<StoredEvent>, Vec<StoredEvent>)> {
    let record = ensure_may_read(s, room_id, origin)?;
    let ev = room_event(s, room_id, event_id)?;
    if ev.meta.outlier {
        // We hold the event but not the state at it (it came with a join's state or auth chain).
        return Err(Error::not_found(format!("State at {event_id} is not known here")));
    }
    if !ServerView::new(s, &record, origin)?.may_see(&ev)? {
        return Err(Error::forbidden(format!("Server {origin} may not see {event_id}")));
    }
    let before = state::load(&s.db, &s.state_cache, ev.meta.state_before)?;
    let events = crate::rooms::read::state_events(s, &before)?;
    let ids: Vec<OwnedEventId> = events.iter().map(|e| e.pdu.event_id.clone()).collect();
    let chain = load_sorted(s, auth_chain(s, &ids)?)?;
    Ok((events, chain))
}

/// `GET /event_auth/{roomId}/{eventId}`: the event's auth chain, oldest first.
pub fn event_auth(s: &Services, origin: &ServerName, room_id: &RoomId, event_id: &EventId) -> Result<Vec<Value>> {
    ensure_may_read(s, room_id, origin)?;
    let ev = room_event(s, room_id, event_id)?;
    let chain = auth_chain(s, [&ev.pdu.event_id])?;
    Ok(load_sorted(s, chain)?.into_iter().map(|e| Value::clone(&e.json)).collect())
}

/// Events by `(depth, event ID)`, so answers are stable.
fn load_sorted(s: &Services, ids: impl IntoIterator<Item = OwnedEventId>) -> Result<Vec<StoredEvent>> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(e) = load(s, &id)? {
            out.push(e);
        }
    }
    out.sort_by(|a, b| (a.pdu.depth, &a.pdu.event_id).cmp(&(b.pdu.depth, &b.pdu.event_id)));
    Ok(out)
}

/// Walks `prev_events` from some events, deepest first (ties: later stream position first).
struct Walk<'a> {
    s: &'a Services,
    room_id: &'a RoomId,
    queue: BinaryHeap<(u64, u64, OwnedEventId)>,
    seen: HashSet<OwnedEventId>,
}

impl<'a> Walk<'a> {
    fn new(s: &'a Services, room_id: &'a RoomId) -> Self {
        Walk { s, room_id, queue: BinaryHeap::new(), seen: HashSet::new() }
    }

    fn push(&mut self, id: &EventId) -> Result<()> {
        if !self.seen.insert(id.to_owned()) {
            return Ok(());
        }
        if let Some(e) = load(self.s, id)?
            && e.pdu.room()? == *self.room_id
        {
            self.queue.push((e.meta.depth, e.meta.stream_pos, id.to_owned()));
        }
        Ok(())
    }

    fn pop(&mut self) -> Result<Option<StoredEvent>> {
        while let Some((_, _, id)) = self.queue.pop() {
            if let Some(e) = load(self.s, &id)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }
}

/// `GET /backfill/{roomId}?v=&limit=`: the events in `v` and those before them (following
/// `prev_events`), newest first, at most `limit` (capped at [`MAX_EVENTS`]).
pub fn backfill(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    v: &[OwnedEventId],
    limit: usize,
) -> Result<Vec<Value>> {
    let record = ensure_may_read(s, room_id, origin)?;
    let mut view = ServerView::new(s, &record, origin)?;
    let limit = limit.min(MAX_EVENTS);
    let mut walk = Walk::new(s, room_id);
    for id in v {
        walk.push(id)?;
    }
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(ev) = walk.pop()? else { break };
        for prev in &ev.pdu.prev_events {
            walk.push(prev)?;
        }
        if !ev.meta.rejected {
            out.push(view.pdu(&ev)?);
        }
    }
    Ok(out)
}

/// `POST /get_missing_events/{roomId}`: the events before `latest` (not those themselves), down
/// to but excluding `earliest`, no shallower than `min_depth`; at most `limit` (capped at
/// [`MAX_EVENTS`]), the newest ones, returned oldest first.
pub fn missing_events(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    (earliest, latest): (&[OwnedEventId], &[OwnedEventId]),
    limit: usize,
    min_depth: u64,
) -> Result<Vec<Value>> {
    let record = ensure_may_read(s, room_id, origin)?;
    let mut view = ServerView::new(s, &record, origin)?;
    let limit = limit.min(MAX_EVENTS);
    let mut walk = Walk::new(s, room_id);
    walk.seen.extend(earliest.iter().chain(latest).cloned());
    for id in latest {
        // Latest events we do not have cannot be walked from: skipped, as Synapse does.
        let Ok(ev) = room_event(s, room_id, id) else { continue };
        for prev in &ev.pdu.prev_events {
            walk.push(prev)?;
        }
    }
    let mut found = Vec::new();
    while found.len() < limit {
        let Some(ev) = walk.pop()? else { break };
        if ev.meta.depth < min_depth {
            continue;
        }
        for prev in &ev.pdu.prev_events {
            walk.push(prev)?;
        }
        if !ev.meta.rejected {
            found.push(ev);
        }
    }
    found.reverse();
    found.iter().map(|e| view.pdu(e)).collect()
}
