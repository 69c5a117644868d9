//! State resolution (spec: room version 2's "State resolution", v2.1 for room version 12): our
//! one module that feeds ruma's algorithm with events, auth chains and the conflicted state
//! subgraph from storage.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ruma::room_version_rules::{RoomVersionRules, StateResolutionV2Rules};
use ruma::state_res::utils::event_id_set::EventIdSet;
use ruma::state_res::{Event, StateMap};
use ruma::{EventId, OwnedEventId};

use super::pdu::Pdu;
use super::state::ShortState;
use super::{load, short};
use crate::error::{Error, Result};
use crate::services::Services;

/// Resolve several states of one room into one.
pub fn resolve(s: &Services, rules: &RoomVersionRules, states: &[Arc<ShortState>]) -> Result<ShortState> {
    resolve_with(s, rules, states, None)
}

/// An event being appended, in the states to resolve but not committed yet (`rooms::append`
/// resolves in the event's own batch): resolution reads it from here, not from storage.
#[derive(Clone, Copy)]
pub struct Pending<'a> {
    pub short: u64,
    pub pdu: &'a Pdu,
}

/// [`resolve`], with the `pending` event known by its short id and event ID.
///
/// A resolution with conflicts (two of the states differ) walks auth chains and sorts events:
/// it runs through `off_the_workers`, so it cannot park a runtime worker.
pub fn resolve_with(
    s: &Services,
    rules: &RoomVersionRules,
    states: &[Arc<ShortState>],
    pending: Option<Pending<'_>>,
) -> Result<ShortState> {
    off_the_workers(conflicting(states), || resolve_now(s, rules, states, pending))
}

/// Resolutions run with [`tokio::task::block_in_place`] since start-up (for tests and
/// diagnostics).
static OFF_WORKERS: AtomicU64 = AtomicU64::new(0);

/// How many state resolutions ran with [`tokio::task::block_in_place`] so far.
pub fn resolutions_off_workers() -> u64 {
    OFF_WORKERS.load(Ordering::Relaxed)
}

/// Whether resolving `states` is real work: two of them differ, so some key is conflicted (mapped
/// to different events, or missing from one). One comparison pass over the maps; equal states
/// (the same group reached twice) resolve to themselves, cheaply.
pub(super) fn conflicting(states: &[Arc<ShortState>]) -> bool {
    states.split_first().is_some_and(|(first, rest)| rest.iter().any(|st| !Arc::ptr_eq(st, first) && st != first))
}

/// Run `f`, a state resolution with conflicts, where it cannot park the runtime's workers.
///
/// Resolving a fork reads auth chains and runs ruma's sort and iterative auth checks, which can
/// take long for a big room; on one of the runtime's (two, on small machines) worker threads it
/// would stall every other task queued there. [`tokio::task::block_in_place`] hands this
/// worker's other tasks to another thread first and keeps `f`'s borrows (the caller's room
/// context and its uncommitted batch), which `spawn_blocking` (`'static`) could not. It panics
/// on a current-thread runtime (`#[tokio::test]`'s default, the bench) and is pointless outside
/// a runtime: there, and for a trivial resolution (`heavy: false`), `f` runs inline.
fn off_the_workers<R>(heavy: bool, f: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if heavy && multi_thread {
        OFF_WORKERS.fetch_add(1, Ordering::Relaxed);
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

fn resolve_now(
    s: &Services,
    rules: &RoomVersionRules,
    states: &[Arc<ShortState>],
    pending: Option<Pending<'_>>,
) -> Result<ShortState> {
    // Room version 1's original algorithm is not in ruma: its forks are resolved with v2, as
    // Conduit does (the outcome can differ from Synapse's only for conflicting forks).
    let v2 = rules.state_res.v2_rules().unwrap_or(&StateResolutionV2Rules::V2_0);
    let mut maps = Vec::with_capacity(states.len());
    for state in states {
        let mut map = StateMap::new();
        for (key, event) in state.iter() {
            let (kind, state_key) = short::statekey_parts(&s.db, *key)?;
            let event_id = match pending {
                Some(p) if p.short == *event => p.pdu.event_id.clone(),
                _ => short::event_id(&s.db, *event)?,
            };
            map.insert((kind, state_key), event_id);
        }
        maps.push(map);
    }
    let auth_chains = maps.iter().map(|m| auth_chain_with(s, pending, m.values())).collect::<Result<Vec<_>>>()?;
    let fetch_event = |id: &EventId| pdu_of(s, pending, id).ok().flatten();
    let fetch_subgraph = |conflicted: &StateMap<Vec<OwnedEventId>>| conflicted_subgraph(s, pending, conflicted).ok();
    let resolved =
        ruma::state_res::resolve(&rules.authorization, v2, maps.iter(), auth_chains, fetch_event, fetch_subgraph)
            .map_err(|e| Error::internal(format!("state resolution: {e}")))?;
    let mut out = ShortState::new();
    for ((kind, state_key), event_id) in resolved {
        let key = short::statekey(&s.db, &kind, &state_key)?;
        let event = match pending {
            Some(p) if p.pdu.event_id == event_id => p.short,
            _ => short::event_get(&s.db, &event_id)?
                .ok_or_else(|| Error::internal(format!("resolved to unknown {event_id}")))?,
        };
        out.insert(key, event);
    }
    Ok(out)
}

/// An event's PDU: the pending one, or loaded.
fn pdu_of(s: &Services, pending: Option<Pending<'_>>, id: &EventId) -> Result<Option<Pdu>> {
    match pending {
        Some(p) if p.pdu.event_id == id => Ok(Some(p.pdu.clone())),
        _ => Ok(load(s, id)?.map(|e| e.pdu)),
    }
}

/// The full recursive set of `auth_events` of some events (spec: "auth chain"). In room
/// version 12 the create event is not listed in `auth_events` but authorizes every event (its
/// ID is the room ID's hash): it is in every chain, as Synapse serves it in `/event_auth`,
/// `/state`, `/state_ids` and `send_join`.
pub fn auth_chain<'a>(
    s: &Services,
    events: impl IntoIterator<Item = &'a OwnedEventId>,
) -> Result<EventIdSet<OwnedEventId>> {
    auth_chain_with(s, None, events)
}

fn auth_chain_with<'a>(
    s: &Services,
    pending: Option<Pending<'_>>,
    events: impl IntoIterator<Item = &'a OwnedEventId>,
) -> Result<EventIdSet<OwnedEventId>> {
    let mut seen: HashSet<OwnedEventId> = HashSet::new();
    let mut todo: Vec<OwnedEventId> = Vec::new();
    let auth_of = |e: &Pdu, todo: &mut Vec<OwnedEventId>| {
        todo.extend(e.auth_events().cloned());
        todo.extend(implied_create(e));
    };
    for id in events {
        if let Some(e) = pdu_of(s, pending, id)? {
            auth_of(&e, &mut todo);
        }
    }
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(e) = pdu_of(s, pending, &id)? {
            auth_of(&e, &mut todo);
        }
    }
    Ok(seen.into_iter().collect())
}

/// The create event a room version 12 event is authorized by without naming it: a room ID
/// with no server name is `!` + the create event's reference hash.
fn implied_create(e: &Pdu) -> Option<OwnedEventId> {
    let room_id = e.room_id.as_ref()?;
    if room_id.server_name().is_some() {
        return None;
    }
    EventId::parse(format!("${}", room_id.as_str().trim_start_matches('!'))).ok()
}

/// Room version 12's conflicted state subgraph: every event that is both an auth-ancestor of a
/// conflicted state event and an auth-descendant of one (the conflicted events included).
fn conflicted_subgraph(
    s: &Services,
    pending: Option<Pending<'_>>,
    conflicted: &StateMap<Vec<OwnedEventId>>,
) -> Result<EventIdSet<OwnedEventId>> {
    let conflicted: HashSet<OwnedEventId> = conflicted.values().flatten().cloned().collect();
    // Ancestors (via auth_events) of every event reachable from the conflicted set.
    let mut ancestors: HashMap<OwnedEventId, HashSet<OwnedEventId>> = HashMap::new();
    fn ancestors_of(
        s: &Services,
        pending: Option<Pending<'_>>,
        id: &OwnedEventId,
        memo: &mut HashMap<OwnedEventId, HashSet<OwnedEventId>>,
    ) -> Result<HashSet<OwnedEventId>> {
        if let Some(a) = memo.get(id) {
            return Ok(a.clone());
        }
        let mut out = HashSet::new();
        if let Some(e) = pdu_of(s, pending, id)? {
            for parent in e.auth_events() {
                out.insert(parent.clone());
                out.extend(ancestors_of(s, pending, parent, memo)?);
            }
        }
        memo.insert(id.clone(), out.clone());
        Ok(out)
    }
    let mut candidates: HashSet<OwnedEventId> = conflicted.clone();
    for id in &conflicted {
        candidates.extend(ancestors_of(s, pending, id, &mut ancestors)?);
    }
    let mut subgraph = EventIdSet::new();
    for x in candidates {
        let up = ancestors_of(s, pending, &x, &mut ancestors)?;
        let descends_from_conflicted = conflicted.contains(&x) || up.iter().any(|a| conflicted.contains(a));
        if descends_from_conflicted {
            subgraph.insert(x);
        }
    }
    Ok(subgraph)
}
