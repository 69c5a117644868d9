//! Presence and device-list changes of local users, for other servers (spec: Server-Server API
//! "Presence", "Device Management"). These changes are written from storage-level code (timers,
//! device deletion), so instead of hooks a task follows their change indexes
//! (`presence_changes`, `device_list_changes`) as the stream moves, woken by the stream
//! counter's notifications, and queues `m.presence` / `m.device_list_update` for the servers
//! sharing a room with the user. The position it reached is kept in `counters`
//! (`federation_outbox`), so changes made just before a crash are still sent.

use std::collections::BTreeMap;
use std::sync::Weak;

use ruma::api::federation::transactions::edu::{DeviceListUpdateContent, Edu, PresenceContent, PresenceUpdate};
use ruma::serde::Raw;
use ruma::{OwnedServerName, UInt, UserId};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::fanout::servers_sharing;
use crate::error::{Error, Result};
use crate::services::Services;
use crate::storage::catalog::{
    COUNTERS, DEVICE_KEYS, DEVICE_LIST_CHANGES, FEDERATION_DEVICE_STREAMS, PRESENCE, PRESENCE_CHANGES,
};
use crate::storage::codec::Counter;
use crate::storage::records::DeviceStreamRecord;
use crate::users::devices;

/// The `counters` key of the position followed so far.
const OUTBOX: &str = "federation_outbox";

/// On the very first start, changes older than now are not sent: the followed position starts at
/// the committed one. Called before the task starts, so nothing after the call is missed.
pub fn init(db: &crate::storage::Storage) -> Result<()> {
    if db.get(COUNTERS, OUTBOX)?.is_none() {
        let mut batch = db.batch();
        batch.put(COUNTERS, OUTBOX, &Counter(db.stream().committed()))?;
        batch.commit()?;
    }
    Ok(())
}

/// Follow the stream until the services are dropped.
pub async fn run(services: Weak<Services>, mut stream: watch::Receiver<u64>) {
    let mut reached = None;
    loop {
        let Some(s) = services.upgrade() else { return };
        match follow(&s, reached) {
            Ok(pos) => reached = Some(pos),
            Err(e) => tracing::error!("federation outbox: {e}"),
        }
        drop(s);
        if stream.changed().await.is_err() {
            return;
        }
    }
}

/// Queue what changed after `reached` (at first the stored position). Returns the new position.
fn follow(s: &Services, reached: Option<u64>) -> Result<u64> {
    let upto = s.db.stream().committed();
    let from = match reached {
        Some(pos) => pos,
        None => match s.db.get(COUNTERS, OUTBOX)? {
            Some(Counter(pos)) => pos,
            None => upto,
        },
    };
    if upto <= from {
        return Ok(from);
    }
    let mut found = false;
    for (((), pos), user) in s.db.scan_from(PRESENCE_CHANGES, &(), &((), from + 1), false, usize::MAX)? {
        if pos > upto {
            break;
        }
        found = true;
        if s.is_local(&user) && s.config.presence.enabled {
            presence(s, &user)?;
        }
    }
    for (((), pos), user) in s.db.scan_from(DEVICE_LIST_CHANGES, &(), &((), from + 1), false, usize::MAX)? {
        if pos > upto {
            break;
        }
        found = true;
        if s.is_local(&user) {
            device_list(s, &user)?;
        }
    }
    if found { save(s, upto) } else { Ok(upto) }
}

fn save(s: &Services, pos: u64) -> Result<u64> {
    let mut batch = s.db.batch();
    batch.put(COUNTERS, OUTBOX, &Counter(pos))?;
    batch.commit()?;
    Ok(pos)
}

/// `m.presence` with the user's current presence.
fn presence(s: &Services, user: &UserId) -> Result<()> {
    let Some(record) = s.db.get(PRESENCE, user)? else { return Ok(()) };
    let servers: Vec<OwnedServerName> = servers_sharing(s, user)?.into_iter().collect();
    if servers.is_empty() {
        return Ok(());
    }
    let mut update = crate::ephemeral::presence::content(s, user, &record);
    update["user_id"] = json!(user);
    let update: PresenceUpdate = serde_json::from_value(update).map_err(Error::internal)?;
    let edu = serde_json::to_value(Edu::Presence(PresenceContent::new(vec![update]))).map_err(Error::internal)?;
    s.sender.enqueue_edu(&servers, edu)
}

/// One `m.device_list_update` per device added, changed or deleted since the last EDUs for the
/// user, chained by `stream_id` / `prev_id` (spec: "Device Management").
fn device_list(s: &Services, user: &UserId) -> Result<()> {
    let old = s.db.get(FEDERATION_DEVICE_STREAMS, user)?.unwrap_or_default();
    let mut now = DeviceStreamRecord { stream_id: old.stream_id, devices: BTreeMap::new() };
    let mut updates = Vec::new();
    for (device_id, record) in devices::list(&s.db, user)? {
        let keys = s.db.get(DEVICE_KEYS, &(user, &device_id))?;
        let digest = hex::encode(Sha256::digest(json!([record.display_name, keys]).to_string()));
        if old.devices.get(&device_id) != Some(&digest) {
            updates.push((device_id.clone(), record.display_name, keys, false));
        }
        now.devices.insert(device_id, digest);
    }
    for gone in old.devices.keys().filter(|d| !now.devices.contains_key(*d)) {
        updates.push((gone.clone(), None, None, true));
    }
    let mut edus = Vec::with_capacity(updates.len());
    for (device_id, display_name, keys, deleted) in updates {
        let prev = now.stream_id;
        now.stream_id += 1;
        let stream_id = UInt::try_from(now.stream_id).map_err(Error::internal)?;
        let mut content = DeviceListUpdateContent::new(user.to_owned(), device_id, stream_id);
        content.prev_id = UInt::try_from(prev).ok().filter(|p| *p > UInt::MIN).into_iter().collect();
        content.device_display_name = display_name.filter(|_| s.config.federation.allow_device_name_lookup);
        content.deleted = deleted.then_some(true);
        content.keys = match keys {
            Some(k) => Some(Raw::from_json(serde_json::value::to_raw_value(&k).map_err(Error::internal)?)),
            None => None,
        };
        edus.push(serde_json::to_value(Edu::DeviceListUpdate(content)).map_err(Error::internal)?);
    }
    if edus.is_empty() {
        return Ok(());
    }
    let servers: Vec<OwnedServerName> = servers_sharing(s, user)?.into_iter().collect();
    s.sender.enqueue_edus_with(&servers, &edus, |batch| batch.put(FEDERATION_DEVICE_STREAMS, user, &now))
}
