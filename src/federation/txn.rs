//! Incoming transactions, `PUT /_matrix/federation/v1/send/{txnId}` (spec: Server-Server API,
//! "Transactions", "PDUs", "EDUs"): at most 50 PDUs and 100 EDUs; each PDU goes through the
//! ingest pipeline (`rooms::ingest`), grouped by room and in depth order; the answer is stored
//! per `(origin, txnId)` so a retried transaction gets the same answer and changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use ruma::{CanonicalJsonObject, CanonicalJsonValue, OwnedRoomId, RoomId, ServerName, TransactionId};
use serde_json::value::RawValue;
use serde_json::{Value, json};

pub use super::access::{is_resident, server_allowed};
use crate::error::{Error, Result};
use crate::rooms::ingest::remote::Remote;
use crate::rooms::ingest::{Outcome, check, ingest, persist};
use crate::rooms::{room, rules_for};
use crate::services::{Services, State};
use crate::storage::catalog::FEDERATION_RECEIVED_TXNS;
use crate::users::now_ms;

/// Limits of one transaction (spec: "Transactions"; Synapse answers 400 beyond them).
pub const MAX_PDUS: usize = 50;
pub const MAX_EDUS: usize = 100;

/// The answers to received transactions are kept this long: a sender retries a transaction
/// within minutes (ours back off up to an hour), so a day is plenty.
pub const RECEIVED_TXN_KEEP: Duration = Duration::from_secs(24 * 3600);
/// How often old answers are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Rows read per step of a prune.
const PRUNE_CHUNK: usize = 500;

/// `M_FORBIDDEN` unless this server is in the room and the room's ACL lets `origin` in.
pub fn ensure_room_open_to(s: &Services, room_id: &RoomId, origin: &ServerName) -> Result<()> {
    room(s, room_id)?;
    if !is_resident(s, room_id)? {
        return Err(Error::forbidden(format!("This server is not in room {room_id}")));
    }
    if !server_allowed(s, room_id, origin)? {
        return Err(Error::forbidden(format!("Server {origin} is denied by the server ACL of {room_id}")));
    }
    Ok(())
}

/// Process a transaction from `origin`; returns the `{"pdus": …}` answer.
pub async fn receive(
    s: &State,
    origin: &ServerName,
    txn_id: &TransactionId,
    pdus: Vec<Box<RawValue>>,
    edus: Vec<Value>,
) -> Result<Value> {
    if pdus.len() > MAX_PDUS || edus.len() > MAX_EDUS {
        return Err(Error::bad_json(format!(
            "A transaction carries at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs ({} and {} given)",
            pdus.len(),
            edus.len()
        )));
    }
    // One transaction per origin at a time (as Synapse), so a retry waits for the first attempt
    // and then gets its stored answer.
    let _guard = s.federation.txn_origins.lock(origin).await;
    let key = (origin, txn_id);
    if let Some(stored) = s.db.get(FEDERATION_RECEIVED_TXNS, &key)? {
        tracing::debug!(%origin, %txn_id, "transaction already processed");
        return Ok(stored.get("response").cloned().unwrap_or_else(|| json!({ "pdus": {} })));
    }

    let mut results: BTreeMap<String, Value> = BTreeMap::new();
    let by_room = group(s, pdus);
    let rooms = join_all(by_room.into_iter().map(|(room_id, events)| room_pdus(s, origin, room_id, events))).await;
    for outcome in rooms {
        results.extend(outcome);
    }
    for edu in edus {
        let kind = edu.get("edu_type").and_then(Value::as_str).unwrap_or("").to_owned();
        if let Err(e) = super::edu::handle(s, origin, edu).await {
            tracing::info!(%origin, edu_type = kind, error = %e, "EDU not handled");
        }
    }

    let response = json!({ "pdus": results });
    let mut batch = s.db.batch();
    batch.put(FEDERATION_RECEIVED_TXNS, &key, &json!({ "response": response, "received_ts": now_ms() }))?;
    batch.commit()?;
    Ok(response)
}

/// PDUs by room, each with its event ID. PDUs that are not JSON objects, name no known room or
/// have no computable event ID are left out of the answer (as Synapse does).
fn group(s: &Services, pdus: Vec<Box<RawValue>>) -> BTreeMap<OwnedRoomId, Vec<(String, CanonicalJsonObject)>> {
    let mut by_room: BTreeMap<OwnedRoomId, Vec<(String, CanonicalJsonObject)>> = BTreeMap::new();
    for raw in pdus {
        let Ok(obj) = check::canonical(raw.get()) else {
            tracing::info!("ignoring a PDU that is not canonical JSON");
            continue;
        };
        let Some(room_id) = obj.get("room_id").and_then(|r| match r {
            CanonicalJsonValue::String(r) => RoomId::parse(r).ok(),
            _ => None,
        }) else {
            tracing::info!("ignoring a PDU without a valid room_id");
            continue;
        };
        let Ok(rules) = room(s, &room_id).and_then(|r| rules_for(&r.room_version)) else {
            tracing::info!(%room_id, "ignoring a PDU for an unknown room");
            continue;
        };
        match check::event_id(&obj, &rules) {
            Ok(id) => by_room.entry(room_id).or_default().push((id.to_string(), obj)),
            Err(e) => tracing::info!(%room_id, error = %e, "ignoring a PDU without an event ID"),
        }
    }
    by_room
}

/// A room's PDUs from one transaction, in depth order (so prev events in the same transaction
/// come first): each event ID → `{}` or `{"error": …}`.
async fn room_pdus(
    s: &Services,
    origin: &ServerName,
    room_id: OwnedRoomId,
    mut events: Vec<(String, CanonicalJsonObject)>,
) -> Vec<(String, Value)> {
    if let Err(e) = ensure_room_open_to(s, &room_id, origin) {
        let why = persist::reason(&e);
        return events.into_iter().map(|(id, _)| (id, json!({ "error": why }))).collect();
    }
    let depth = |o: &CanonicalJsonObject| match o.get("depth") {
        Some(CanonicalJsonValue::Integer(d)) => i64::from(*d),
        _ => 0,
    };
    events.sort_by_key(|(_, o)| depth(o));
    let peer = Remote { s, server: origin };
    let mut out = Vec::with_capacity(events.len());
    for (event_id, obj) in events {
        let result = match ingest(s, &peer, &room_id, obj).await {
            Ok((_, Outcome::Rejected(why))) => json!({ "error": why }),
            Ok(_) => json!({}),
            Err(e) => {
                tracing::info!(%origin, %event_id, error = %e, "PDU dropped");
                json!({ "error": persist::reason(&e) })
            }
        };
        out.push((event_id, result));
    }
    out
}

/// Delete the stored answers to transactions received before `cutoff_ms` (or without a
/// `received_ts`), in chunks of `PRUNE_CHUNK` rows; returns how many were deleted.
pub fn prune_received(s: &Services, cutoff_ms: u64) -> Result<usize> {
    let mut deleted = 0;
    let mut cursor = None;
    loop {
        let rows = s.db.scan_after(FEDERATION_RECEIVED_TXNS, &(), cursor.as_ref(), PRUNE_CHUNK)?;
        let done = rows.len() < PRUNE_CHUNK;
        let mut batch = s.db.batch();
        for (key, value) in &rows {
            if value.get("received_ts").and_then(Value::as_u64).unwrap_or(0) < cutoff_ms {
                batch.delete(FEDERATION_RECEIVED_TXNS, key)?;
                deleted += 1;
            }
        }
        batch.commit()?;
        match rows.into_iter().last() {
            // The next chunk starts just after the last key.
            Some((last, _)) if !done => cursor = Some(last),
            _ => return Ok(deleted),
        }
    }
}

/// Prune answers older than [`RECEIVED_TXN_KEEP`] now and then every `PRUNE_EVERY`, while the
/// services live (the task holds them only while it prunes). Called by `serve`.
pub fn start_pruning(s: &State) {
    let weak = Arc::downgrade(s);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PRUNE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(s) = weak.upgrade() else { return };
            let cutoff = now_ms().saturating_sub(RECEIVED_TXN_KEEP.as_millis() as u64);
            match prune_received(&s, cutoff) {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "pruned old federation transaction answers"),
                Err(e) => tracing::warn!(error = %e, "cannot prune federation transaction answers"),
            }
        }
    });
}

#[cfg(test)]
#[path = "txn_tests.rs"]
mod tests;
