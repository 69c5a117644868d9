//! Sending to other servers (spec: Server-Server API "Transactions"): a persistent queue per
//! destination ([`queue`]), drained by one tokio task per destination, one transaction in
//! flight at a time (≤ 50 PDUs, ≤ 100 EDUs), `PUT /_matrix/federation/v1/send/{txnId}`.
//!
//! - A failed transaction stays in flight and is re-sent with the same `txnId` (the receiver
//!   deduplicates) after an exponential backoff (5 s doubling, at most 1 h) kept in the
//!   database; new work does not cut the backoff short, [`Sender::wake`] does.
//! - Tasks sleep until notified (new work, an early wake) or until their backoff ends; nothing
//!   polls. [`Sender::start`] resumes every destination with queued work at start-up.
//! - [`fanout`] decides who gets what: local events, typing, receipts, to-device; [`outbox`]
//!   follows the presence and device-list change indexes for local users.

pub mod fanout;
#[cfg(test)]
mod fanout_tests;
pub mod outbox;
pub mod queue;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use axum::http::Method;
use ruma::{EventId, OwnedRoomId, OwnedServerName, ServerName};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::error::{Error, Result};
use crate::rooms::short;
use crate::services::Services;
use crate::storage::Storage;
use crate::storage::catalog::EVENT_META;
use crate::storage::records::OutgoingTxnRecord;

/// The sending service, `Services::sender`.
pub struct Sender {
    db: Storage,
    server_name: OwnedServerName,
    /// `federation.enabled`: when off nothing is queued.
    enabled: bool,
    services: Weak<Services>,
    /// Set by [`Sender::start`]: before it, work is only persisted (no tasks).
    started: AtomicBool,
    /// The wake-up of each destination's task.
    destinations: Mutex<HashMap<OwnedServerName, Arc<Notify>>>,
    /// Every task this service spawned, aborted when it is dropped.
    tasks: Mutex<Vec<AbortHandle>>,
    /// Serialises queue writes with transaction formation (EDU sequence numbers).
    queue_lock: Mutex<()>,
    /// Servers with joined members per room, valid for the room's current state group.
    pub(crate) room_servers: crate::cache::BoundedCache<OwnedRoomId, GroupServers>,
}

/// A room's servers with joined members, with the state group they were computed for.
pub(crate) type GroupServers = (u64, Arc<BTreeSet<OwnedServerName>>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Sender {
    fn drop(&mut self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

/// What a destination's task does next.
enum Next {
    /// A transaction went out: look for more at once.
    Again,
    /// Nothing queued: sleep until notified.
    Idle,
    /// Backing off: sleep this long (or until notified, then look again).
    Wait(Duration),
}

impl Sender {
    pub fn new(
        db: Storage,
        server_name: OwnedServerName,
        enabled: bool,
        services: Weak<Services>,
        room_servers: crate::cache::BoundedCache<OwnedRoomId, GroupServers>,
    ) -> Sender {
        Sender {
            db,
            server_name,
            enabled,
            services,
            started: AtomicBool::new(false),
            destinations: Mutex::default(),
            tasks: Mutex::default(),
            queue_lock: Mutex::new(()),
            room_servers,
        }
    }

    /// Queue a stored local event for each destination (our own name is skipped).
    pub fn enqueue_pdu(&self, destinations: &[OwnedServerName], event_id: &EventId) -> Result<()> {
        let short = short::event_get(&self.db, event_id)?.ok_or_else(|| Error::not_found("Unknown event"))?;
        let meta = self.db.get(EVENT_META, &short)?.ok_or_else(|| Error::internal("event without metadata"))?;
        self.enqueue_pdu_at(destinations, event_id, meta.stream_pos)
    }

    pub(crate) fn enqueue_pdu_at(&self, destinations: &[OwnedServerName], event_id: &EventId, pos: u64) -> Result<()> {
        let targets = self.targets(destinations);
        if targets.is_empty() {
            return Ok(());
        }
        {
            let _serial = lock(&self.queue_lock);
            let mut batch = self.db.batch();
            for dest in &targets {
                queue::push_pdu(&mut batch, dest, pos, event_id)?;
            }
            batch.commit()?;
        }
        targets.iter().for_each(|d| self.notify(d));
        Ok(())
    }

    /// Queue an EDU (`{"edu_type", "content"}`) for each destination.
    pub fn enqueue_edu(&self, destinations: &[OwnedServerName], edu: Value) -> Result<()> {
        self.enqueue_edus_with(destinations, &[edu], |_| Ok(()))
    }

    /// Queue a local event for each destination in `batch`, the event's own batch (so no crash
    /// can leave a stored event that is never sent); returns the destinations to wake with
    /// [`Sender::wake_queued`] once the batch is committed. No `queue_lock`: a PDU row's key
    /// is the event's own stream position, and [`queue::take`] deletes only the rows it read,
    /// so a row committed while a transaction forms is taken by the next one.
    pub(crate) fn queue_pdu(
        &self,
        batch: &mut crate::storage::Batch<'_>,
        destinations: &[OwnedServerName],
        event_id: &EventId,
        pos: u64,
    ) -> Result<Vec<OwnedServerName>> {
        let targets = self.targets(destinations);
        for dest in &targets {
            queue::push_pdu(batch, dest, pos, event_id)?;
        }
        Ok(targets)
    }

    /// Wake the destinations of a committed [`Sender::queue_pdu`].
    pub(crate) fn wake_queued(&self, destinations: &[OwnedServerName]) {
        destinations.iter().for_each(|d| self.notify(d));
    }

    /// Queue EDUs for each destination, with `extra` writes in the same batch.
    pub(crate) fn enqueue_edus_with(
        &self,
        destinations: &[OwnedServerName],
        edus: &[Value],
        extra: impl FnOnce(&mut crate::storage::Batch<'_>) -> Result<()>,
    ) -> Result<()> {
        let targets = self.targets(destinations);
        {
            let _serial = lock(&self.queue_lock);
            let mut batch = self.db.batch();
            for dest in &targets {
                queue::push_edus(&self.db, &mut batch, dest, edus)?;
            }
            extra(&mut batch)?;
            batch.commit()?;
        }
        targets.iter().for_each(|d| self.notify(d));
        Ok(())
    }

    /// Destinations to queue for: none when federation is off, never ourselves.
    fn targets(&self, destinations: &[OwnedServerName]) -> Vec<OwnedServerName> {
        if !self.enabled {
            return Vec::new();
        }
        let set: BTreeSet<&OwnedServerName> = destinations.iter().filter(|d| **d != self.server_name).collect();
        set.into_iter().cloned().collect()
    }

    /// Whether a destination is backing off (its ephemeral EDUs, like typing, are dropped).
    pub fn is_backing_off(&self, destination: &ServerName) -> bool {
        queue::backoff(&self.db, destination).ok().flatten().is_some_and(|b| b.failures > 0)
    }

    /// Retry `destination` now, forgetting its backoff: it showed signs of life (it sent us a
    /// transaction).
    pub fn wake(&self, destination: &ServerName) {
        if let Err(e) = queue::clear_backoff(&self.db, destination) {
            tracing::error!(%destination, "federation sender: clearing backoff: {e}");
        }
        self.notify(destination);
    }

    /// Start sending: a task for every destination with queued work, and the [`outbox`]
    /// follower. Called once the server runs (needs a tokio runtime); later calls do nothing.
    pub fn start(&self) -> Result<()> {
        if !self.enabled || self.started.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        for dest in queue::destinations_with_work(&self.db)? {
            self.notify(&dest);
        }
        outbox::init(&self.db)?;
        let task = tokio::spawn(outbox::run(self.services.clone(), self.db.stream().subscribe()));
        lock(&self.tasks).push(task.abort_handle());
        Ok(())
    }

    /// Wake the destination's task, spawning it on first use (once started).
    fn notify(&self, destination: &ServerName) {
        if !self.started.load(Ordering::SeqCst) {
            return;
        }
        let mut destinations = lock(&self.destinations);
        if let Some(n) = destinations.get(destination) {
            n.notify_one();
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let notify = Arc::new(Notify::new());
        destinations.insert(destination.to_owned(), notify.clone());
        let task = runtime.spawn(run(self.services.clone(), destination.to_owned(), notify));
        lock(&self.tasks).push(task.abort_handle());
    }
}

/// One destination's task: send what is in flight or queued, back off on failure, sleep when
/// there is nothing to do. It holds the services only while it works, so dropping them ends it.
async fn run(services: Weak<Services>, destination: OwnedServerName, notify: Arc<Notify>) {
    loop {
        let Some(s) = services.upgrade() else { return };
        let next = match step(&s, &destination).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(%destination, "federation sender: {e}");
                Next::Wait(queue::FIRST_BACKOFF)
            }
        };
        drop(s);
        match next {
            Next::Again => {}
            Next::Idle => notify.notified().await,
            Next::Wait(wait) => {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = notify.notified() => {}
                }
            }
        }
    }
}

async fn step(s: &Arc<Services>, destination: &ServerName) -> Result<Next> {
    let sender = &s.sender;
    if let Some(b) = queue::backoff(&s.db, destination)? {
        let now = crate::users::now_ms();
        if b.retry_at > now {
            return Ok(Next::Wait(Duration::from_millis(b.retry_at - now)));
        }
    }
    let txn = match queue::in_flight(&s.db, destination)? {
        Some(txn) => txn,
        None => {
            let _serial = lock(&sender.queue_lock);
            match queue::take(&s.db, destination)? {
                Some(txn) => txn,
                None => return Ok(Next::Idle),
            }
        }
    };
    match transmit(s, destination, &txn).await {
        Ok(response) => {
            for (event_id, result) in response.get("pdus").and_then(Value::as_object).into_iter().flatten() {
                if let Some(error) = result.get("error") {
                    tracing::info!(%destination, %event_id, %error, "destination refused a PDU");
                }
            }
            queue::complete(&s.db, destination)?;
            tracing::debug!(%destination, txn_id = %txn.txn_id, pdus = txn.pdus.len(), edus = txn.edus.len(), "sent");
            Ok(Next::Again)
        }
        Err(e) => {
            let wait = queue::failed(&s.db, destination)?;
            tracing::info!(%destination, txn_id = %txn.txn_id, error = %e, retry_in = ?wait, "transaction failed");
            Ok(Next::Wait(wait))
        }
    }
}

/// `PUT /_matrix/federation/v1/send/{txnId}` with the stored transaction, unchanged. Any 2xx
/// with a JSON body means the destination has it: its `pdus` map (required by the spec) is only
/// read for logging, so an answer without one does not get the transaction sent again forever
/// (Synapse reads it as `response.get("pdus", {})`).
async fn transmit(s: &Services, destination: &ServerName, txn: &OutgoingTxnRecord) -> Result<Value> {
    let mut body = serde_json::json!({
        "origin": s.server_name,
        "origin_server_ts": txn.origin_server_ts,
        "pdus": txn.pdus,
    });
    if !txn.edus.is_empty() {
        body["edus"] = Value::from(txn.edus.clone());
    }
    let txn_id: String = form_urlencoded::byte_serialize(txn.txn_id.as_bytes()).collect();
    let path = format!("/_matrix/federation/v1/send/{txn_id}");
    s.federation.send_raw(destination, Method::PUT, &path, Some(&body)).await
}
