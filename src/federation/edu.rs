//! Incoming EDUs (spec: Server-Server API "EDUs", "Typing Notifications", "Receipts",
//! "Presence", "Device Management", "Send-to-device messaging"). The `/send/{txnId}` handler
//! passes each EDU of a transaction to [`handle`].
//!
//! Every EDU speaks for users, and those users must belong to the origin server; an EDU that
//! does not, an unknown type, or a malformed one is ignored (logged), as the spec asks of
//! receivers. Only storage failures are errors.

use std::collections::BTreeMap;
use std::time::Duration;

use ruma::api::federation::transactions::edu::{
    DeviceListUpdateContent, DirectDeviceContent, Edu, PresenceContent, ReceiptContent, SigningKeyUpdateContent,
    TypingContent,
};
use ruma::events::receipt::ReceiptThread;
use ruma::{DeviceId, ServerName, UserId};
use serde_json::{Value, json};

use crate::ephemeral::presence;
use crate::ephemeral::receipts::{self, MAIN, READ, UNTHREADED};
use crate::ephemeral::typing;
use crate::error::{Error, Result};
use crate::keys::to_device::{self, Messages};
use crate::rooms::membership::{is_joined, joined_rooms};
use crate::services::{Services, State};
use crate::storage::catalog::{PRESENCE, REMOTE_DEVICE_LISTS_STALE};
use crate::storage::records::PresenceRecord;
use crate::users::now_ms;

/// How long a remote user counts as typing after an `m.typing` with `typing: true` (the spec
/// names no timeout; Synapse uses 60 s, and senders repeat the EDU while the user types).
pub const REMOTE_TYPING_TIMEOUT: Duration = Duration::from_secs(60);

/// The `sender_device` under which to-device messages from other servers are recorded in
/// `to_device_txns` (no local device has an empty ID): the key is then
/// `sender | "" | message_id`, which deduplicates a message the origin sends twice.
const FEDERATION_DEVICE: &str = "";

/// Apply one EDU `origin` sent us.
pub async fn handle(s: &State, origin: &ServerName, edu: Value) -> Result<()> {
    let edu_type = edu.get("edu_type").and_then(Value::as_str).unwrap_or_default().to_owned();
    let parsed: Edu = match serde_json::from_value(edu) {
        Ok(e) => e,
        Err(e) => {
            tracing::info!(%origin, %edu_type, error = %e, "ignoring a malformed EDU");
            return Ok(());
        }
    };
    apply(s, origin, parsed)
}

fn apply(s: &Services, origin: &ServerName, edu: Edu) -> Result<()> {
    match edu {
        Edu::Typing(c) => typing_edu(s, origin, c),
        Edu::Receipt(c) => receipt_edu(s, origin, c),
        Edu::Presence(c) => presence_edu(s, origin, c),
        Edu::DeviceListUpdate(DeviceListUpdateContent { user_id, .. })
        | Edu::SigningKeyUpdate(SigningKeyUpdateContent { user_id, .. }) => device_list_edu(s, origin, &user_id),
        Edu::DirectToDevice(c) => to_device_edu(s, origin, c),
        _ => Ok(()),
    }
}

/// Whether `user` belongs to `origin`; logs a refusal otherwise.
fn speaks_for(origin: &ServerName, user: &UserId, edu_type: &str) -> bool {
    let ok = user.server_name() == origin;
    if !ok {
        tracing::info!(%origin, %user, %edu_type, "ignoring an EDU for a user of another server");
    }
    ok
}

/// Room-scoped EDUs from a server the room's `m.room.server_acl` denies are ignored (MSC4163).
fn acl_allows(s: &Services, room_id: &ruma::RoomId, origin: &ServerName) -> Result<bool> {
    let ok = super::txn::server_allowed(s, room_id, origin)?;
    if !ok {
        tracing::info!(%origin, %room_id, "ignoring an EDU from a server the room's ACL denies");
    }
    Ok(ok)
}

/// Spec: the user must be in the room and belong to the origin; and the room's ACL must allow
/// the origin (MSC4163, as Synapse).
fn typing_edu(s: &Services, origin: &ServerName, c: TypingContent) -> Result<()> {
    if !speaks_for(origin, &c.user_id, "m.typing")
        || s.is_local(&c.user_id)
        || !is_joined(s, &c.room_id, &c.user_id)?
        || !acl_allows(s, &c.room_id, origin)?
    {
        return Ok(());
    }
    let timeout = c.typing.then_some(REMOTE_TYPING_TIMEOUT);
    typing::set(s, &c.room_id, &c.user_id, timeout)
}

/// `m.read` receipts of joined users of the origin, for events we have in that room (whose ACL
/// allows the origin); stored like local receipts, so `/sync` shows them.
fn receipt_edu(s: &Services, origin: &ServerName, c: ReceiptContent) -> Result<()> {
    for (room_id, map) in c.receipts {
        if !acl_allows(s, &room_id, origin)? {
            continue;
        }
        for (user, data) in map.read {
            if !speaks_for(origin, &user, "m.receipt") || s.is_local(&user) || !is_joined(s, &room_id, &user)? {
                continue;
            }
            let Some(event_id) = data.event_ids.first() else { continue };
            let event = match crate::rooms::load(s, event_id)? {
                Some(e) if e.pdu.room_id.as_deref() == Some(&room_id) => e,
                _ => {
                    tracing::debug!(%origin, %room_id, %event_id, "receipt for an event we do not have");
                    continue;
                }
            };
            let thread = match &data.data.thread {
                ReceiptThread::Unthreaded => UNTHREADED.to_owned(),
                ReceiptThread::Main => MAIN.to_owned(),
                ReceiptThread::Thread(root) => root.to_string(),
                _ => continue,
            };
            receipts::store(s, &room_id, &user, READ, &event, &thread)?;
        }
    }
    Ok(())
}

/// Presence of the origin's users who are in a room with us (ignored with presence disabled).
fn presence_edu(s: &Services, origin: &ServerName, c: PresenceContent) -> Result<()> {
    if !s.config.presence.enabled {
        return Ok(());
    }
    for update in c.push {
        let user = &update.user_id;
        if !speaks_for(origin, user, "m.presence") || s.is_local(user) || joined_rooms(s, user)?.is_empty() {
            continue;
        }
        if !presence::is_known(&update.presence) {
            continue;
        }
        let old = s.db.get(PRESENCE, user)?;
        if old.as_ref().is_some_and(|o| o.presence == update.presence && o.status_msg == update.status_msg) {
            continue;
        }
        let last_active_ts = now_ms().saturating_sub(u64::from(update.last_active_ago));
        let record = PresenceRecord {
            presence: update.presence.clone(),
            status_msg: update.status_msg.clone(),
            last_active_ts,
            stream_pos: 0,
            explicit: false,
        };
        presence::write(&s.db, user, record, old.as_ref())?;
    }
    Ok(())
}

/// A remote user's devices or cross-signing keys changed: local users sharing a room see them
/// in `device_lists.changed`, and our copy of their list is marked stale.
fn device_list_edu(s: &Services, origin: &ServerName, user: &UserId) -> Result<()> {
    if !speaks_for(origin, user, "m.device_list_update") || s.is_local(user) || joined_rooms(s, user)?.is_empty() {
        return Ok(());
    }
    let mut batch = s.db.batch();
    crate::keys::changes::record_in(&s.db, &mut batch, user)?;
    batch.put(REMOTE_DEVICE_LISTS_STALE, user, &json!(true))?;
    batch.commit()
}

/// To-device messages for local users, delivered once per `message_id`; `*` reaches every
/// device of the user.
fn to_device_edu(s: &Services, origin: &ServerName, c: DirectDeviceContent) -> Result<()> {
    if !speaks_for(origin, &c.sender, "m.direct_to_device") {
        return Ok(());
    }
    let mut messages: Messages = BTreeMap::new();
    for (user, devices) in c.messages {
        if !s.is_local(&user) {
            continue;
        }
        let mut targets = BTreeMap::new();
        for (device, content) in devices {
            match serde_json::from_str::<Value>(content.json().get()) {
                Ok(v) => targets.insert(device, v),
                Err(e) => return Err(Error::internal(e)),
            };
        }
        messages.insert(user, targets);
    }
    let sender_device = <&DeviceId>::from(FEDERATION_DEVICE);
    to_device::send(s, (&c.sender, sender_device), &c.ev_type.to_string(), &c.message_id, &messages)
}

#[cfg(test)]
#[path = "edu_tests.rs"]
mod tests;
