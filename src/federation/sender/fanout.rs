//! Who gets what (spec: Server-Server API "Transactions", "Typing Notifications", "Receipts",
//! "Send-to-device messaging"): the hooks local operations call once their change is stored.
//! A hook never fails the operation that called it: problems are logged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ruma::api::federation::transactions::edu::{
    DirectDeviceContent, DirectDeviceMessages, Edu, ReceiptContent, ReceiptData, ReceiptMap, TypingContent,
};
use ruma::events::receipt::{Receipt, ReceiptThread};
use ruma::events::room::member::MembershipState;
use ruma::serde::Raw;
use ruma::{EventId, MilliSecondsSinceUnixEpoch, OwnedServerName, OwnedUserId, RoomId, TransactionId, UserId};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::keys::to_device::Messages;
use crate::rooms::membership::joined_rooms;
use crate::rooms::pdu::Pdu;
use crate::services::Services;
use crate::storage::catalog::ROOM_MEMBERSHIPS;

/// Other servers with a joined member in the room (cached per current state group).
pub fn servers_in_room(s: &Services, room_id: &RoomId) -> Result<Arc<BTreeSet<OwnedServerName>>> {
    servers_in_room_at(s, room_id, crate::rooms::room(s, room_id)?.current_state_group)
}

/// [`servers_in_room`] when the caller has the room's current state group: the membership
/// index as it stands, cached for `group`.
fn servers_in_room_at(s: &Services, room_id: &RoomId, group: u64) -> Result<Arc<BTreeSet<OwnedServerName>>> {
    if let Some((g, servers)) = s.sender.room_servers.get(room_id)
        && g == group
    {
        return Ok(servers);
    }
    let mut servers = BTreeSet::new();
    for ((_, user), m) in s.db.scan_prefix(ROOM_MEMBERSHIPS, room_id)? {
        if m.membership == MembershipState::Join && !s.is_local(&user) {
            servers.insert(user.server_name().to_owned());
        }
    }
    let servers = Arc::new(servers);
    s.sender.room_servers.insert(room_id.to_owned(), (group, servers.clone()));
    Ok(servers)
}

/// Other servers sharing a joined room with `user`.
pub fn servers_sharing(s: &Services, user: &UserId) -> Result<BTreeSet<OwnedServerName>> {
    let mut out = BTreeSet::new();
    for room in joined_rooms(s, user)? {
        out.extend(servers_in_room(s, &room)?.iter().cloned());
    }
    Ok(out)
}

fn log(what: &str, result: Result<()>) {
    if let Err(e) = result {
        tracing::error!("federation sender: queueing {what}: {e}");
    }
}

fn edu(edu: Edu) -> Result<Value> {
    serde_json::to_value(edu).map_err(Error::internal)
}

/// The servers a local event goes to (none for another server's event, or with federation
/// off), computed by `rooms::append` before it commits, so that the queue entries are written
/// in the event's batch: every other server with a joined member in the state before it
/// (`current_group`, the room's current state group, `None` for a new room), those of the
/// users the event makes joined (`joined`: a join through another server brings the room's
/// whole state), and for a membership event its target's server (an invite, a kick or a ban
/// of a remote user). A server whose members all left still gets the event that removed them.
pub fn pdu_destinations(
    s: &Services,
    room_id: &RoomId,
    current_group: Option<u64>,
    pdu: &Pdu,
    joined: &[OwnedUserId],
) -> Result<Vec<OwnedServerName>> {
    if !s.config.federation.enabled || !s.is_local(&pdu.sender) {
        return Ok(Vec::new());
    }
    let mut servers: BTreeSet<OwnedServerName> = match current_group {
        Some(group) => servers_in_room_at(s, room_id, group)?.iter().cloned().collect(),
        None => BTreeSet::new(),
    };
    servers.extend(joined.iter().filter(|u| !s.is_local(u)).map(|u| u.server_name().to_owned()));
    if pdu.kind == ruma::events::TimelineEventType::RoomMember
        && let Some(target) = pdu.state_key.as_deref().and_then(|k| UserId::parse(k).ok())
    {
        servers.insert(target.server_name().to_owned());
    }
    Ok(servers.into_iter().collect())
}

/// A local user started or stopped typing: `m.typing` to the room's other servers, except those
/// backing off (typing is stale by the time they come back).
pub fn typing(s: &Services, room_id: &RoomId, user: &UserId, typing: bool) {
    if !s.config.federation.enabled || !s.is_local(user) {
        return;
    }
    log(
        "m.typing",
        (|| {
            let servers: Vec<OwnedServerName> =
                servers_in_room(s, room_id)?.iter().filter(|d| !s.sender.is_backing_off(d)).cloned().collect();
            if servers.is_empty() {
                return Ok(());
            }
            let content = TypingContent::new(room_id.to_owned(), user.to_owned(), typing);
            s.sender.enqueue_edu(&servers, edu(Edu::Typing(content))?)
        })(),
    );
}

/// A local user's public `m.read` receipt (`thread`: `""`, `main` or a root event ID):
/// `m.receipt` to the room's other servers.
pub fn receipt(s: &Services, room_id: &RoomId, user: &UserId, event_id: &EventId, thread: &str) {
    if !s.config.federation.enabled || !s.is_local(user) {
        return;
    }
    log(
        "m.receipt",
        (|| {
            let servers: Vec<OwnedServerName> = servers_in_room(s, room_id)?.iter().cloned().collect();
            if servers.is_empty() {
                return Ok(());
            }
            let mut data = Receipt::new(MilliSecondsSinceUnixEpoch::now());
            data.thread = match thread {
                "" => ReceiptThread::Unthreaded,
                "main" => ReceiptThread::Main,
                root => ReceiptThread::Thread(EventId::parse(root).map_err(Error::internal)?),
            };
            let read = BTreeMap::from([(user.to_owned(), ReceiptData::new(data, vec![event_id.to_owned()]))]);
            let content = ReceiptContent::new(BTreeMap::from([(room_id.to_owned(), ReceiptMap::new(read))]));
            s.sender.enqueue_edu(&servers, edu(Edu::Receipt(content))?)
        })(),
    );
}

/// A local user's `PUT /sendToDevice`: one `m.direct_to_device` per server of the remote
/// recipients, each with its own `message_id`.
pub fn to_device(s: &Services, sender: &UserId, event_type: &str, messages: &Messages) {
    if !s.config.federation.enabled || !s.is_local(sender) {
        return;
    }
    log(
        "m.direct_to_device",
        (|| {
            let mut by_server: BTreeMap<OwnedServerName, DirectDeviceMessages> = BTreeMap::new();
            for (user, targets) in messages.iter().filter(|(u, _)| !s.is_local(u)) {
                let mut devices = BTreeMap::new();
                for (device, content) in targets {
                    let raw = serde_json::value::to_raw_value(content).map_err(Error::internal)?;
                    devices.insert(device.clone(), Raw::from_json(raw));
                }
                by_server.entry(user.server_name().to_owned()).or_default().insert(user.clone(), devices);
            }
            for (server, messages) in by_server {
                let mut content = DirectDeviceContent::new(sender.to_owned(), event_type.into(), TransactionId::new());
                content.messages = messages;
                s.sender.enqueue_edu(&[server], edu(Edu::DirectToDevice(content))?)?;
            }
            Ok(())
        })(),
    );
}
