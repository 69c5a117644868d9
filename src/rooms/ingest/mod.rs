//! Events from other servers (spec: Server-Server API, "Checks performed on receipt of a PDU").
//! In order: (1) a valid event for the room version, (2) the required signatures, (3) the content
//! hash (else stored redacted), (4) authorized by its `auth_events` (missing ones fetched and
//! stored as outliers), (5) authorized by the state before it (missing `prev_events` fetched with
//! `get_missing_events`, else the state at them with `/state_ids`), (6) authorized by the current
//! state (else soft-failed). See `docs/federation.md`, "Receiving".
//!
//! Network fetches are async; storage runs in place ([`persist`]), one batch per event under the
//! (awaited) room lock; signature checks of many events go to the blocking pool ([`check::verify`]).

pub mod backfill;
#[cfg(test)]
mod backfill_tests;
pub mod check;
pub mod history;
pub mod join;
pub mod persist;
pub mod remote;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::{StreamExt, stream};
use ruma::room_version_rules::RoomVersionRules;
use ruma::{CanonicalJsonObject, EventId, OwnedEventId, RoomId, ServerName};

use super::state::ShortState;
use super::{room, rules_for};
use crate::error::{Error, Result};
use crate::services::Services;
use check::Checked;
pub use persist::Outcome;
use remote::{Peer, Remote};

/// Events asked for with one `get_missing_events` (spec default: 10).
pub const MISSING_EVENTS_LIMIT: u32 = 20;
/// Events fetched one by one to learn the state at a missing prev event.
const MAX_STATE_FETCH: usize = 1000;
/// Most event IDs (state and auth chain) taken from one `/state_ids` answer.
const MAX_STATE_IDS: usize = 100_000;
/// Concurrent `/event` requests.
const FETCH_CONCURRENCY: usize = 8;

/// Run an event received from `origin` through every check and store it. Returns its event ID;
/// an event that was dropped or rejected is an error (a rejected one is stored as rejected).
pub async fn handle_incoming_pdu(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    pdu: CanonicalJsonObject,
) -> Result<OwnedEventId> {
    let (event_id, outcome) = ingest(s, &Remote { s, server: origin }, room_id, pdu).await?;
    match outcome {
        Outcome::Rejected(why) => Err(Error::forbidden(why)),
        _ => Ok(event_id),
    }
}

/// [`handle_incoming_pdu`] with what became of the event, asking `peer` for missing events.
pub async fn ingest<P: Peer>(
    s: &Services,
    peer: &P,
    room_id: &RoomId,
    pdu: CanonicalJsonObject,
) -> Result<(OwnedEventId, Outcome)> {
    let rules = rules_for(&room(s, room_id)?.room_version)?;
    let ev = check::format(pdu, &rules, room_id)?;
    if persist::meta_of(s, &ev.event_id)?.is_some_and(|m| !m.outlier) {
        return Ok((ev.event_id, Outcome::Known));
    }
    let ev = check::verify(s, vec![ev], &rules).await.pop().unwrap_or_else(|| Err(Error::internal("no result")))?;
    ingest_checked(s, peer, room_id, &rules, ev).await
}

/// Steps 4–6 for an event that passed steps 1–3: fill a gap before it, then settle it.
pub async fn ingest_checked<P: Peer>(
    s: &Services,
    peer: &P,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    ev: Checked,
) -> Result<(OwnedEventId, Outcome)> {
    if !missing_prevs(s, &ev)?.is_empty() {
        fill_gap(s, peer, room_id, rules, &ev).await;
    }
    settle(s, peer, room_id, rules, ev, false).await
}

/// Prev events not in the DAG (unknown, or known only as outliers).
fn missing_prevs(s: &Services, ev: &Checked) -> Result<Vec<OwnedEventId>> {
    let mut out = Vec::new();
    for prev in &ev.pdu.prev_events {
        if persist::meta_of(s, prev)?.is_none_or(|m| m.outlier) {
            out.push(prev.clone());
        }
    }
    Ok(out)
}

/// Ask `peer` for the events between our forward extremities and `ev` (one bounded request),
/// and store them oldest first; each that still misses prev events gets the state at them.
async fn fill_gap<P: Peer>(s: &Services, peer: &P, room_id: &RoomId, rules: &RoomVersionRules, ev: &Checked) {
    let earliest: Vec<OwnedEventId> = match room(s, room_id) {
        Ok(r) => r.forward_extremities.into_iter().map(|(_, id)| id).collect(),
        Err(_) => return,
    };
    let fetched = match peer.missing_events(room_id, earliest, vec![ev.event_id.clone()], MISSING_EVENTS_LIMIT).await {
        Ok(events) => events,
        Err(e) => {
            tracing::info!(event_id = %ev.event_id, error = %e, "get_missing_events failed");
            return;
        }
    };
    let mut seen = HashSet::new();
    let mut events: Vec<Checked> = fetched
        .into_iter()
        .take(MISSING_EVENTS_LIMIT as usize)
        .filter_map(|obj| check::format(obj, rules, room_id).inspect_err(|e| tracing::info!(error = %e)).ok())
        .filter(|e| e.event_id != ev.event_id && seen.insert(e.event_id.clone()))
        .collect();
    events.sort_by_key(|e| e.pdu.depth);
    for checked in check::verify(s, events, rules).await {
        let result = match checked {
            Ok(missing) => settle(s, peer, room_id, rules, missing, false).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::info!(event_id = %ev.event_id, error = %e, "a missing event could not be stored");
        }
    }
}

/// Fetch missing auth events, learn the state at prev events still missing, then run steps 4–6
/// and store the event (`backfilled`: as history, [`history::persist_backfilled`]).
async fn settle<P: Peer>(
    s: &Services,
    peer: &P,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    ev: Checked,
    backfilled: bool,
) -> Result<(OwnedEventId, Outcome)> {
    fetch_auth_events(s, peer, room_id, rules, &ev).await?;
    let mut fetched: HashMap<OwnedEventId, Arc<ShortState>> = HashMap::new();
    for prev in missing_prevs(s, &ev)? {
        let state = state_after_missing(s, peer, room_id, rules, &prev).await.map_err(|e| {
            Error::not_found(format!("Cannot get the state at missing prev event {prev}: {}", persist::reason(&e)))
        })?;
        fetched.insert(prev, Arc::new(state));
    }
    let outcome = if backfilled {
        history::persist_backfilled(s, room_id, &ev, &fetched).await?
    } else {
        persist::persist(s, room_id, &ev, &fetched).await?
    };
    Ok((ev.event_id, outcome))
}

/// Largest `/event_auth` answer checked and stored (each event costs a signature check).
const MAX_AUTH_CHAIN: usize = 10_000;

/// Step 4's prerequisite: every auth event stored (outliers are fine); missing ones come from
/// the peer's `event_auth` and are checked and stored as outliers.
async fn fetch_auth_events<P: Peer>(
    s: &Services,
    peer: &P,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    ev: &Checked,
) -> Result<()> {
    let unknown = |s: &Services| -> Result<Vec<OwnedEventId>> {
        let mut out = Vec::new();
        for id in &ev.pdu.auth_events {
            if persist::meta_of(s, id)?.is_none() {
                out.push(id.clone());
            }
        }
        Ok(out)
    };
    if unknown(s)?.is_empty() {
        return Ok(());
    }
    match peer.event_auth(room_id, &ev.event_id).await {
        Ok(chain) if chain.len() > MAX_AUTH_CHAIN => {
            tracing::info!(event_id = %ev.event_id, events = chain.len(), "event_auth answer too large; ignored");
        }
        Ok(chain) => store_fetched(s, room_id, rules, chain).await?,
        Err(e) => tracing::info!(event_id = %ev.event_id, error = %e, "event_auth failed"),
    }
    let still = unknown(s)?;
    if !still.is_empty() {
        let list = still.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ");
        return Err(Error::not_found(format!("Missing auth events: {list}")));
    }
    Ok(())
}

/// Check fetched events (format, signatures, hashes) and store the good ones as outliers.
async fn store_fetched(
    s: &Services,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    objs: Vec<CanonicalJsonObject>,
) -> Result<()> {
    let mut todo = Vec::new();
    for obj in objs {
        match check::format(obj, rules, room_id) {
            Ok(ev) if persist::meta_of(s, &ev.event_id)?.is_none() => todo.push(ev),
            Ok(_) => {}
            Err(e) => tracing::info!(error = %e, "invalid fetched event"),
        }
    }
    let good: Vec<Checked> = check::verify(s, todo, rules)
        .await
        .into_iter()
        .filter_map(|r| r.inspect_err(|e| tracing::info!(error = %e, "fetched event failed its checks")).ok())
        .collect();
    persist::store_outliers(s, room_id, good).await
}

/// The state after a prev event we cannot place in the DAG: the peer's `/state_ids` at it (the
/// state before it), every unknown event of that state and its auth chain fetched with `/event`
/// and stored as outliers, plus the prev event itself if it is a state event.
async fn state_after_missing<P: Peer>(
    s: &Services,
    peer: &P,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    prev: &EventId,
) -> Result<ShortState> {
    let (pdu_ids, auth_ids) = peer.state_ids(room_id, prev).await?;
    // The answer's size is the peer's choice: refuse a large one before looking at it.
    if pdu_ids.len() + auth_ids.len() > MAX_STATE_IDS {
        return Err(Error::forbidden(format!("/state_ids names more than {MAX_STATE_IDS} events")));
    }
    let mut seen: HashSet<&EventId> = HashSet::new();
    let mut wanted: Vec<OwnedEventId> = Vec::new();
    for id in pdu_ids.iter().chain(&auth_ids).map(|i| i.as_ref()).chain([prev]) {
        if seen.insert(id) && persist::meta_of(s, id)?.is_none() {
            wanted.push(id.to_owned());
            if wanted.len() > MAX_STATE_FETCH {
                return Err(Error::forbidden(format!("More than {MAX_STATE_FETCH} unknown state events")));
            }
        }
    }
    let fetched: Vec<CanonicalJsonObject> = stream::iter(wanted)
        .map(|id: OwnedEventId| async move {
            peer.event(&id).await.inspect_err(|e| tracing::info!(event_id = %id, error = %e)).ok()
        })
        .buffer_unordered(FETCH_CONCURRENCY)
        .filter_map(|o| async move { o })
        .collect()
        .await;
    store_fetched(s, room_id, rules, fetched).await?;
    persist::state_of(s, room_id, &pdu_ids, Some(prev))
}
