//! The persistent per-destination queue (tables: `docs/federation.md`, "Sending"): queued PDUs
//! and EDUs, the one transaction in flight, and the backoff state. Blocking storage functions;
//! the caller holds `Sender::queue_lock` around anything that reads and then writes the queues.

use std::collections::BTreeSet;
use std::time::Duration;

use ruma::{EventId, OwnedServerName, ServerName};
use serde_json::Value;

use crate::error::Result;
use crate::storage::catalog::{
    FEDERATION_BACKOFF, FEDERATION_EDU_QUEUE, FEDERATION_OUTGOING_TXNS, FEDERATION_PDU_QUEUE, PDUS,
};
use crate::storage::records::{BackoffRecord, OutgoingTxnRecord};
use crate::storage::{Batch, Storage};
use crate::users::{now_ms, random_string};

/// Spec: a transaction holds at most 50 PDUs and 100 EDUs.
pub const MAX_PDUS: usize = 50;
pub const MAX_EDUS: usize = 100;
/// The first retry waits this long; each further failure doubles it, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Queue a local event (by its stream position, so the queue is in stream order).
pub fn push_pdu(batch: &mut Batch<'_>, destination: &ServerName, pos: u64, event_id: &EventId) -> Result<()> {
    batch.put(FEDERATION_PDU_QUEUE, &(destination, pos), &event_id.to_owned())
}

/// Queue EDUs after the destination's last queued one.
pub fn push_edus(db: &Storage, batch: &mut Batch<'_>, destination: &ServerName, edus: &[Value]) -> Result<()> {
    let last = db.scan_from(FEDERATION_EDU_QUEUE, destination, &(destination, u64::MAX), true, 1)?;
    let mut seq = last.first().map_or(0, |((_, s), _)| *s);
    for edu in edus {
        seq += 1;
        batch.put(FEDERATION_EDU_QUEUE, &(destination, seq), edu)?;
    }
    Ok(())
}

/// The transaction in flight to `destination`, if any.
pub fn in_flight(db: &Storage, destination: &ServerName) -> Result<Option<OutgoingTxnRecord>> {
    db.get(FEDERATION_OUTGOING_TXNS, destination)
}

/// Move the oldest ≤ 50 PDUs and ≤ 100 EDUs of the queue into a new in-flight transaction (one
/// batch). `None` when nothing is queued.
pub fn take(db: &Storage, destination: &ServerName) -> Result<Option<OutgoingTxnRecord>> {
    let pdu_rows = db.scan_from(FEDERATION_PDU_QUEUE, destination, &(destination, 0), false, MAX_PDUS)?;
    let edu_rows = db.scan_from(FEDERATION_EDU_QUEUE, destination, &(destination, 0), false, MAX_EDUS)?;
    if pdu_rows.is_empty() && edu_rows.is_empty() {
        return Ok(None);
    }
    let mut batch = db.batch();
    let mut pdus = Vec::with_capacity(pdu_rows.len());
    for (key, event_id) in pdu_rows {
        batch.delete(FEDERATION_PDU_QUEUE, &key)?;
        match stored_pdu(db, &event_id)? {
            Some(pdu) => pdus.push(pdu),
            None => tracing::warn!(%destination, %event_id, "queued event is gone; not sent"),
        }
    }
    let mut edus = Vec::with_capacity(edu_rows.len());
    for (key, edu) in edu_rows {
        batch.delete(FEDERATION_EDU_QUEUE, &key)?;
        edus.push(edu);
    }
    let txn = OutgoingTxnRecord { txn_id: random_string(20).into(), origin_server_ts: now_ms(), pdus, edus };
    batch.put(FEDERATION_OUTGOING_TXNS, destination, &txn)?;
    batch.commit()?;
    Ok(Some(txn))
}

fn stored_pdu(db: &Storage, event_id: &EventId) -> Result<Option<Value>> {
    match crate::rooms::short::event_get(db, event_id)? {
        Some(short) => db.get(PDUS, &short),
        None => Ok(None),
    }
}

/// The destination accepted the transaction: forget it and the backoff, in one batch.
pub fn complete(db: &Storage, destination: &ServerName) -> Result<()> {
    let mut batch = db.batch();
    batch.delete(FEDERATION_OUTGOING_TXNS, destination)?;
    batch.delete(FEDERATION_BACKOFF, destination)?;
    batch.commit()
}

/// The backoff after `failures` consecutive failures: 5 s doubling, at most an hour.
pub fn delay(failures: u32) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX));
    doubled.min(MAX_BACKOFF)
}

/// Record one more failure; returns how long to wait.
pub fn failed(db: &Storage, destination: &ServerName) -> Result<Duration> {
    let failures = backoff(db, destination)?.map_or(0, |b| b.failures).saturating_add(1);
    let wait = delay(failures);
    let record = BackoffRecord { failures, retry_at: now_ms() + wait.as_millis() as u64 };
    let mut batch = db.batch();
    batch.put(FEDERATION_BACKOFF, destination, &record)?;
    batch.commit()?;
    Ok(wait)
}

pub fn backoff(db: &Storage, destination: &ServerName) -> Result<Option<BackoffRecord>> {
    db.get(FEDERATION_BACKOFF, destination)
}

/// Try `destination` now (it showed signs of life): its backoff is forgotten.
pub fn clear_backoff(db: &Storage, destination: &ServerName) -> Result<()> {
    if backoff(db, destination)?.is_none() {
        return Ok(());
    }
    let mut batch = db.batch();
    batch.delete(FEDERATION_BACKOFF, destination)?;
    batch.commit()
}

/// Every destination with a transaction in flight or anything queued (one seek per destination).
pub fn destinations_with_work(db: &Storage) -> Result<BTreeSet<OwnedServerName>> {
    let mut out: BTreeSet<OwnedServerName> =
        db.scan_all(FEDERATION_OUTGOING_TXNS)?.into_iter().map(|(d, _)| d).collect();
    out.extend(queue_destinations(db, FEDERATION_EDU_QUEUE)?);
    out.extend(queue_destinations(db, FEDERATION_PDU_QUEUE)?);
    Ok(out)
}

/// The distinct destinations of a `destination | seq` table: one seek past each one's rows (every
/// key of `name` sorts at or before `name | u64::MAX`).
fn queue_destinations<V: crate::storage::codec::ValueCodec>(
    db: &Storage,
    table: crate::storage::catalog::Table<(OwnedServerName, u64), V>,
) -> Result<Vec<OwnedServerName>> {
    let mut out: Vec<OwnedServerName> = Vec::new();
    loop {
        let after = out.last().map(|dest| (dest.clone(), u64::MAX));
        let found = db.scan_after(table, &(), after.as_ref(), 1)?;
        let Some(((dest, _), _)) = found.into_iter().next() else { return Ok(out) };
        out.push(dest);
    }
}
