//! Back-filling history from other servers (spec: Server-Server API, "Backfilling and
//! retrieving missing events"; Client-Server API, "Room history"): when `/messages` runs out of
//! local history in a room whose earliest events have prev events we do not have, ask the
//! room's servers for them with `GET /backfill`, one server after the other, and store what they
//! send as history ([`super::history`]). Every step is bounded. See `docs/federation.md`,
//! "Backfill".

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ruma::events::StateEventType;
use ruma::events::room::member::MembershipState;
use ruma::{EventId, OwnedEventId, OwnedRoomId, OwnedServerName, RoomId};

use super::check::{self, Checked};
use super::persist::{Outcome, meta_of};
use super::remote::{Peer, Remote};
use super::settle;
use crate::error::Result;
use crate::rooms::{current_state_event, load_by_short, room, rules_for};
use crate::services::Services;
use crate::storage::catalog::{ROOM_MEMBERSHIPS, ROOM_TOPOLOGY};
use crate::storage::codec::Counter;

/// Most events asked for in one `/backfill` request.
pub const MAX_LIMIT: u32 = 100;
/// Fewest events asked for (a small page still fetches a useful chunk).
const MIN_LIMIT: u32 = 20;
/// Earliest events looked at for missing prev events.
const EDGE_SCAN: usize = 50;
/// Prev events looked at, through rejected and soft-failed events.
const EDGE_WALK: usize = 500;
/// Most event IDs sent in `v`.
const MAX_V: usize = 20;
/// Servers tried in one back-fill.
const MAX_SERVERS: usize = 5;
/// After a back-fill that gained nothing, the room is not tried again for this long.
const COOLDOWN: Duration = Duration::from_secs(30);

/// Per room: one back-fill at a time, and when the last one gained nothing.
#[derive(Default)]
pub struct Backfills {
    rooms: Mutex<HashMap<OwnedRoomId, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

impl Backfills {
    fn room(&self, room_id: &RoomId) -> Arc<tokio::sync::Mutex<Option<Instant>>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if rooms.len() >= 10_000 {
            rooms.retain(|_, m| Arc::strong_count(m) > 1);
        }
        rooms.entry(room_id.to_owned()).or_default().clone()
    }
}

/// The prev events of the room's earliest events (by depth) that are not in the DAG (unknown,
/// or outliers): where its known history stops. Rejected and soft-failed events have no place
/// in the topological order, so the walk goes on through their prev events. At most `MAX_V`;
/// empty when the history reaches the room's creation.
pub fn backward_extremities(s: &Services, room_id: &RoomId) -> Result<Vec<OwnedEventId>> {
    let short = room(s, room_id)?.shortroomid;
    let rows = s.db.scan_from(ROOM_TOPOLOGY, &short, &(short, 0u64, 0u64), false, EDGE_SCAN)?;
    let mut todo: Vec<OwnedEventId> = Vec::new();
    for (_, Counter(sid)) in rows {
        if let Some(ev) = load_by_short(s, sid)? {
            todo.extend(ev.pdu.prev_events.iter().cloned());
        }
    }
    let mut seen: HashSet<OwnedEventId> = HashSet::new();
    let mut out: Vec<OwnedEventId> = Vec::new();
    let mut steps = 0;
    while let Some(id) = todo.pop() {
        steps += 1;
        if out.len() >= MAX_V || steps > EDGE_WALK {
            break;
        }
        if !seen.insert(id.clone()) {
            continue;
        }
        match meta_of(s, &id)? {
            None => out.push(id),
            Some(m) if m.outlier => out.push(id),
            Some(m) if m.rejected || m.soft_failed => {
                if let Some(ev) = crate::rooms::load(s, &id)? {
                    todo.extend(ev.pdu.prev_events.iter().cloned());
                }
            }
            Some(_) => {}
        }
    }
    Ok(out)
}

/// The servers to ask, most likely to have the history first: the creator's, then by number of
/// joined members; never ourselves. At most `MAX_SERVERS`.
pub fn servers_to_ask(s: &Services, room_id: &RoomId) -> Result<Vec<OwnedServerName>> {
    let mut counts: BTreeMap<OwnedServerName, usize> = BTreeMap::new();
    for ((_, user), m) in s.db.scan_prefix(ROOM_MEMBERSHIPS, room_id)? {
        if m.membership == MembershipState::Join && !s.is_local(&user) {
            *counts.entry(user.server_name().to_owned()).or_default() += 1;
        }
    }
    let creator = current_state_event(s, room_id, &StateEventType::RoomCreate, "")?
        .map(|e| e.pdu.sender.server_name().to_owned());
    let mut servers: Vec<(OwnedServerName, usize)> = counts.into_iter().collect();
    servers.sort_by_key(|(server, count)| std::cmp::Reverse((Some(server) == creator.as_ref(), *count)));
    Ok(servers.into_iter().map(|(server, _)| server).take(MAX_SERVERS).collect())
}

/// Fill in history before the room's earliest known events from the servers in the room, about
/// `want` events (bounded to `MIN_LIMIT..=MAX_LIMIT`); the first server that gives us
/// new events ends it. Returns how many events were stored as history. Failures are logged,
/// never returned: history that cannot be had just ends the page.
pub async fn backfill_room(s: &Services, room_id: &RoomId, want: usize) -> Result<usize> {
    if !s.config.federation.enabled {
        return Ok(0);
    }
    let slot = s.backfills.room(room_id);
    let mut last_futile = slot.lock().await;
    if last_futile.is_some_and(|t| t.elapsed() < COOLDOWN) {
        return Ok(0);
    }
    let v = backward_extremities(s, room_id)?;
    if v.is_empty() {
        return Ok(0);
    }
    let limit = u32::try_from(want).unwrap_or(MAX_LIMIT).clamp(MIN_LIMIT, MAX_LIMIT);
    for server in servers_to_ask(s, room_id)? {
        match backfill_from(s, &Remote { s, server: &server }, room_id, v.clone(), limit).await {
            Ok(0) => tracing::info!(%room_id, %server, "backfill gave no new events"),
            Ok(n) => {
                *last_futile = None;
                return Ok(n);
            }
            Err(e) => tracing::info!(%room_id, %server, error = %e, "backfill failed"),
        }
    }
    *last_futile = Some(Instant::now());
    Ok(0)
}

/// Ask `peer` for `v` and their ancestors (at most `limit`), check them (format, signatures,
/// hashes; auth events fetched from `peer` as for any received event) and store them oldest
/// first as history. The chunk's oldest events, whose prev events are still missing, get the
/// state at those from `peer`'s `/state_ids`. Returns how many were stored as history.
pub async fn backfill_from<P: Peer>(
    s: &Services,
    peer: &P,
    room_id: &RoomId,
    v: Vec<OwnedEventId>,
    limit: u32,
) -> Result<usize> {
    let rules = rules_for(&room(s, room_id)?.room_version)?;
    let fetched = peer.backfill(room_id, v, limit).await?;
    let mut seen = HashSet::new();
    let mut events: Vec<Checked> = Vec::new();
    for obj in fetched.into_iter().take(limit as usize) {
        match check::format(obj, &rules, room_id) {
            Ok(ev) if seen.insert(ev.event_id.clone()) && !in_dag(s, &ev.event_id)? => events.push(ev),
            Ok(_) => {}
            Err(e) => tracing::info!(%room_id, error = %e, "invalid back-filled event"),
        }
    }
    events.sort_by_key(|e| e.pdu.depth);
    let mut stored = 0;
    for checked in check::verify(s, events, &rules).await {
        let result = match checked {
            Ok(ev) => settle(s, peer, room_id, &rules, ev, true).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((_, Outcome::Accepted)) => stored += 1,
            Ok(_) => {}
            Err(e) => tracing::info!(%room_id, error = %e, "a back-filled event could not be stored"),
        }
    }
    Ok(stored)
}

fn in_dag(s: &Services, event_id: &EventId) -> Result<bool> {
    Ok(meta_of(s, event_id)?.is_some_and(|m| !m.outlier))
}
