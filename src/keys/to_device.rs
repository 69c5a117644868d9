//! Send-to-device messaging (spec: "Send-to-Device messaging"; `PUT /sendToDevice/{eventType}/
//! {txnId}`, `/sync` `to_device`).
//!
//! A message waits in the receiving device's inbox under the stream position of its send until
//! the device's `/sync` acknowledges it (by syncing from a token at or after that position).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use ruma::to_device::DeviceIdOrAllDevices;
use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, TransactionId, UserId};
use serde_json::{Value, json};

use crate::error::Result;
use crate::services::Services;
use crate::storage::catalog::{TO_DEVICE_INBOX, TO_DEVICE_TXNS};
use crate::storage::codec::Counter;
use crate::users::devices;

/// At most this many messages per device go into one `/sync` response.
pub const PAGE: usize = 100;

/// Serialises the transaction-ID check and the write, so a retried request is stored once.
static SEND_LOCK: Mutex<()> = Mutex::new(());

/// `messages` of a `PUT /sendToDevice` request: user → device (or `*`) → content.
pub type Messages = BTreeMap<OwnedUserId, BTreeMap<DeviceIdOrAllDevices, Value>>;

/// Queue `event_type` messages from `sender`'s device. Idempotent per (sender, sender device,
/// `txn_id`): a repeated transaction stores nothing. `*` reaches every device the user has now;
/// unknown devices are skipped, users of other servers get `m.direct_to_device`. One stream
/// position covers the request (a device addressed twice, by ID and by `*`, gets another).
pub fn send(
    s: &Services,
    (sender, sender_device): (&UserId, &DeviceId),
    event_type: &str,
    txn_id: &TransactionId,
    messages: &Messages,
) -> Result<()> {
    let db = &s.db;
    let txn = (sender, sender_device, txn_id);
    let _guard = SEND_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if db.get(TO_DEVICE_TXNS, &txn)?.is_some() {
        return Ok(());
    }
    let mut batch = db.batch();
    let pos = batch.allocate_position()?;
    let mut addressed = BTreeSet::new();
    for (user, targets) in messages {
        if !s.is_local(user) {
            continue;
        }
        let known: Vec<OwnedDeviceId> = devices::list(db, user)?.into_iter().map(|(d, _)| d).collect();
        for (target, content) in targets {
            let ids: Vec<&OwnedDeviceId> = match target {
                DeviceIdOrAllDevices::AllDevices => known.iter().collect(),
                DeviceIdOrAllDevices::DeviceId(d) => known.iter().filter(|k| *k == d).collect(),
            };
            for device in ids {
                let p = if addressed.insert((user, device.clone())) { pos } else { batch.allocate_position()? };
                batch.wake(crate::storage::notifier::Interest::device(user, device));
                let message = json!({ "type": event_type, "sender": sender, "content": content });
                batch.put(TO_DEVICE_INBOX, &((user, device), p), &message)?;
            }
        }
    }
    batch.put(TO_DEVICE_TXNS, &txn, &Counter(pos))?;
    batch.commit()?;
    crate::federation::sender::fanout::to_device(s, sender, event_type, messages);
    Ok(())
}

/// Messages for the device with stream position in `(since, upto]`, oldest first, at most
/// [`PAGE`]; and the position the device has now received everything up to (`upto`, or the
/// last message's position when the page is full). A `/sync` that pages should hand out that
/// position as the to-device part of its next token.
pub fn to_device_page(
    s: &Services,
    user: &UserId,
    device: &DeviceId,
    since: u64,
    upto: u64,
) -> Result<(Vec<Value>, u64)> {
    if upto <= since {
        return Ok((Vec::new(), upto.max(since)));
    }
    let prefix = (user, device);
    // Most syncs find the inbox unchanged: its last key, kept in memory, says so without a scan.
    if s.db.latest_position(TO_DEVICE_INBOX, &prefix)? <= since {
        return Ok((Vec::new(), upto));
    }
    let start = (prefix, since + 1);
    let rows = s.db.scan_from(TO_DEVICE_INBOX, &prefix, &start, false, PAGE)?;
    let mut out = Vec::with_capacity(rows.len());
    let mut last = since;
    for ((_, pos), message) in rows {
        if pos > upto {
            break;
        }
        last = pos;
        out.push(message);
    }
    let reached = if out.len() == PAGE { last } else { upto };
    Ok((out, reached))
}

/// Messages for the device with stream position in `(since, upto]`, each
/// `{"type", "sender", "content"}`, oldest first, at most [`PAGE`] (spec: `/sync` `to_device`).
pub fn to_device_since(s: &Services, user: &UserId, device: &DeviceId, since: u64, upto: u64) -> Result<Vec<Value>> {
    Ok(to_device_page(s, user, device, since, upto)?.0)
}

/// Delete the device's messages with position ≤ `upto`: the device has acknowledged them by
/// syncing from a token at `upto` (spec: "the server should delete messages once delivered").
pub fn ack_to_device(s: &Services, user: &UserId, device: &DeviceId, upto: u64) -> Result<()> {
    let prefix = (user, device);
    if s.db.latest_position(TO_DEVICE_INBOX, &prefix)? == 0 {
        return Ok(());
    }
    let mut from = 0;
    loop {
        let start = (prefix, from);
        let rows = s.db.scan_from(TO_DEVICE_INBOX, &prefix, &start, false, 1000)?;
        let full = rows.len() == 1000;
        let mut batch = s.db.batch();
        let (mut done, mut deleted) = (!full, false);
        for (key, _) in rows {
            if key.1 > upto {
                done = true;
                break;
            }
            from = key.1 + 1;
            batch.delete(TO_DEVICE_INBOX, &key)?;
            deleted = true;
        }
        // Most syncs acknowledge nothing: no write then.
        if deleted {
            batch.commit()?;
        }
        if done {
            return Ok(());
        }
    }
}
