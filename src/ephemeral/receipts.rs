//! Receipts (spec: Client-Server API "Receipts", "Threaded read receipts", "Private read
//! receipts"): each user's latest `m.read` / `m.read.private` receipt per thread, stored in
//! `receipts` with a `receipt_changes` row at its stream position. `m.fully_read` is the read
//! marker ([`crate::rooms::info::markers`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use ruma::api::client::receipt::create_receipt::v3::ReceiptType as PostedType;
use ruma::events::receipt::ReceiptType;
use ruma::{EventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value, json};

use super::lock;
use crate::cache::BoundedCache;
use crate::error::{Error, Result};
use crate::rooms::info::{markers, visible_event};
use crate::rooms::{StoredEvent, membership, read};
use crate::services::Services;
use crate::storage::catalog::{RECEIPT_CHANGES, RECEIPTS};
use crate::storage::records::{ReceiptChange, ReceiptRecord};
use crate::users::now_ms;

pub const READ: ReceiptType = ReceiptType::Read;
pub const READ_PRIVATE: ReceiptType = ReceiptType::ReadPrivate;
/// The `thread` of an unthreaded receipt (no `thread_id`).
pub const UNTHREADED: &str = "";
pub const MAIN: &str = "main";

/// Where a receipt applies: the whole room, the main timeline, or one thread.
pub enum Thread {
    Unthreaded,
    Main,
    Root(ruma::OwnedEventId),
}

impl Thread {
    /// The stored form: `""`, `main` or the root's event ID.
    pub fn key(&self) -> &str {
        match self {
            Thread::Unthreaded => UNTHREADED,
            Thread::Main => MAIN,
            Thread::Root(root) => root.as_str(),
        }
    }
}

/// `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`: the user must be joined
/// (`M_FORBIDDEN`) and see the event (`M_NOT_FOUND`); `m.fully_read` moves the read marker and
/// takes no thread; a threaded receipt's event must belong to its thread (`M_INVALID_PARAM`).
pub fn post(
    s: &Services,
    room_id: &RoomId,
    user_id: &UserId,
    receipt_type: PostedType,
    event_id: &EventId,
    thread: Thread,
) -> Result<()> {
    // `None`: the read marker.
    let stored = match receipt_type {
        PostedType::Read => Some(ReceiptType::Read),
        PostedType::ReadPrivate => Some(ReceiptType::ReadPrivate),
        PostedType::FullyRead => None,
        _ => {
            return Err(Error::invalid_param(format!(
                "Receipt type must be {READ}, {READ_PRIVATE} or {}",
                PostedType::FullyRead
            )));
        }
    };
    membership::ensure_joined(s, room_id, user_id)?;
    let Some(receipt_type) = stored else {
        if !matches!(thread, Thread::Unthreaded) {
            return Err(Error::invalid_param("thread_id is not compatible with m.fully_read"));
        }
        return markers::set(s, room_id, user_id, Some(event_id), None, None);
    };
    let event = visible_event(s, room_id, event_id, user_id)?;
    check_thread(&event, &thread)?;
    let public = receipt_type == ReceiptType::Read;
    store(s, room_id, user_id, receipt_type, &event, thread.key())?;
    if public {
        crate::federation::sender::fanout::receipt(s, room_id, user_id, event_id, thread.key());
    }
    Ok(())
}

/// The thread root an event replies to (`m.relates_to.rel_type == m.thread`), if any.
pub fn thread_of(event: &StoredEvent) -> Option<String> {
    let rel = event.json.get("content")?.get("m.relates_to")?;
    if rel.get("rel_type")?.as_str()? != "m.thread" {
        return None;
    }
    rel.get("event_id")?.as_str().map(str::to_owned)
}

/// Spec: the event of a threaded receipt must be related to its `thread_id`.
fn check_thread(event: &StoredEvent, thread: &Thread) -> Result<()> {
    let in_thread = thread_of(event);
    let ok = match thread {
        Thread::Unthreaded => true,
        Thread::Main => in_thread.is_none(),
        Thread::Root(root) => *root == event.pdu.event_id || in_thread.as_deref() == Some(root.as_str()),
    };
    if ok { Ok(()) } else { Err(Error::invalid_param("The event is not in the thread named by thread_id")) }
}

/// Record the user's `receipt_type` receipt at `event` (already checked: joined, visible).
/// Receipts only move forward: one for an event at or before the current receipt's is ignored.
pub fn store(
    s: &Services,
    room_id: &RoomId,
    user_id: &UserId,
    receipt_type: ReceiptType,
    event: &StoredEvent,
    thread: &str,
) -> Result<()> {
    let _serial = lock(&s.ephemeral.receipt_lock);
    let key = ((room_id, &receipt_type), (user_id, thread));
    let old = s.db.get(RECEIPTS, &key)?;
    if old.as_ref().is_some_and(|o| o.event_pos >= event.meta.stream_pos) {
        return Ok(());
    }
    let pos = s.db.stream().allocate().waking([crate::storage::notifier::Interest::room(room_id)]);
    let mut batch = s.db.batch();
    if let Some(old) = old {
        batch.delete(RECEIPT_CHANGES, &(room_id, old.stream_pos))?;
    }
    let record = ReceiptRecord {
        event_id: event.pdu.event_id.clone(),
        ts: now_ms(),
        stream_pos: pos.pos(),
        event_pos: event.meta.stream_pos,
    };
    batch.put(RECEIPTS, &key, &record)?;
    let change = ReceiptChange { receipt_type, user_id: user_id.to_owned(), thread: thread.to_owned() };
    batch.put(RECEIPT_CHANGES, &(room_id, pos.pos()), &change)?;
    batch.stream_position(&pos)?;
    batch.commit()
}

/// [`own_receipts`] per (room, user), with the `receipts` write generation it was read at.
pub type OwnReceipts = BoundedCache<(OwnedRoomId, OwnedUserId), (u64, Arc<[(String, u64)]>)>;

/// The user's `m.read` and `m.read.private` receipts in the room: `(thread, event_pos)`.
pub fn own_receipts(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<Arc<[(String, u64)]>> {
    let generation = s.db.generation(RECEIPTS);
    let key = (room_id.to_owned(), user_id.to_owned());
    if let Some((_, found)) = s.ephemeral.own_receipts.get(&key).filter(|(g, _)| *g == generation) {
        return Ok(found);
    }
    let mut out = Vec::new();
    for kind in [READ, READ_PRIVATE] {
        let prefix = ((room_id, kind), user_id);
        for ((_, (_, thread)), r) in s.db.scan_prefix(RECEIPTS, &prefix)? {
            out.push((thread, r.event_pos));
        }
    }
    let out: Arc<[(String, u64)]> = out.into();
    s.ephemeral.own_receipts.insert(key, (generation, out.clone()));
    Ok(out)
}

/// The room's `m.receipt` event with the receipts that changed in `(since, upto]` (every current
/// one for `since == 0`), as `viewer` may see them: others' `m.read.private` receipts and those
/// of users the viewer ignores are left out. `None` when there is nothing to send.
pub fn receipts_since(s: &Services, room_id: &RoomId, viewer: &UserId, since: u64, upto: u64) -> Result<Option<Value>> {
    let mut rows: BTreeMap<(ReceiptType, OwnedUserId, String), ReceiptRecord> = BTreeMap::new();
    if since == 0 {
        for (((_, kind), (user, thread)), r) in s.db.scan_prefix(RECEIPTS, room_id)? {
            rows.insert((kind, user, thread), r);
        }
    } else {
        if s.db.latest_position(RECEIPT_CHANGES, room_id)? <= since {
            return Ok(None);
        }
        for ((_, pos), c) in s.db.scan_from(RECEIPT_CHANGES, room_id, &(room_id, since + 1), false, usize::MAX)? {
            if pos > upto {
                break;
            }
            let key = ((room_id, &c.receipt_type), (&c.user_id, &c.thread));
            if let Some(r) = s.db.get(RECEIPTS, &key)? {
                rows.insert((c.receipt_type, c.user_id, c.thread), r);
            }
        }
    }
    let ignored = read::ignored_users(s, viewer)?;
    let mut content = Map::new();
    for ((kind, user, thread), r) in rows {
        let hidden = kind == ReceiptType::ReadPrivate && user != viewer;
        if hidden || r.stream_pos <= since || r.stream_pos > upto || ignored.iter().any(|i| *i == user.as_str()) {
            continue;
        }
        let mut receipt = json!({ "ts": r.ts });
        if !thread.is_empty() {
            receipt["thread_id"] = json!(thread);
        }
        let by_type = content.entry(String::from(r.event_id)).or_insert_with(|| json!({}));
        by_type[kind.as_str()][user.as_str()] = receipt;
    }
    Ok((!content.is_empty()).then(|| json!({ "type": "m.receipt", "content": content })))
}
