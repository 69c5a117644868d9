//! Unread counts (spec: Client-Server API "Receiving notifications", "Unread notification
//! counts", "Threaded read receipts"): how many events since the user's last read receipt the
//! user's push rules ([`crate::push`]) say notify, and how many of those highlight.
//!
//! Main-timeline events count after the latest of the user's join, unthreaded receipts and
//! `main` receipts; a thread's replies after the latest of the join, unthreaded receipts and that
//! thread's receipts. `m.read` and `m.read.private` count alike. Rejected, soft-failed, redacted
//! events, the user's own and those of users they ignore never count.
//!
//! The main-timeline count is cached per (room, user) with the position it was counted up to, so
//! each call only evaluates the events since; a moved receipt starts the count afresh. Threads
//! are counted from their replies (`relations`), skipping those with no reply after the floor.

use std::sync::Arc;

use ruma::events::room::member::MembershipState;
use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value, json};

use super::receipts::{self, MAIN, UNTHREADED, thread_of};
use crate::cache::BoundedCache;
use crate::error::Result;
use crate::push::eval::{Evaluator, Outcome, flatten};
use crate::rooms::{StoredEvent, load_by_short, read, room, short};
use crate::services::Services;
use crate::storage::catalog::{ACCOUNT_DATA, EVENT_META, RELATIONS, ROOM_MEMBERSHIPS, ROOM_TIMELINE, THREAD_ROOTS};
use crate::storage::codec::Counter;
use crate::storage::records::RoomRecord;
use ruma::push::FlattenedJson;

/// Main-timeline counts per (room, user).
pub struct Cache {
    main: BoundedCache<(OwnedRoomId, OwnedUserId), Counted>,
    /// Push-rule evaluators per (room, user), with the current-state group and the user's
    /// account-data mark they were built on: building one reads the room's members and power
    /// levels, so it is reused until the room's state or the user's push rules move.
    evaluators: BoundedCache<(OwnedRoomId, OwnedUserId), GroupEvaluator>,
    /// Events flattened for the push rules, by short event ID (each is counted for every member).
    flattened: BoundedCache<u64, Arc<FlattenedJson>>,
}

impl Cache {
    pub fn new(caches: &crate::cache::Caches) -> Self {
        Cache {
            main: caches.cache("unread_counts"),
            evaluators: caches.cache("push_evaluators"),
            flattened: caches.cache("push_flattened"),
        }
    }
}

/// A push-rule evaluator with the (current-state group, account-data mark) it was built on.
type GroupEvaluator = ((u64, u64), Arc<Evaluator>);

#[derive(Debug, Clone, Copy, Default)]
struct Counted {
    /// Events at or before this position are read.
    base: u64,
    /// Timeline position counted up to.
    upto: u64,
    notify: u64,
    highlight: u64,
}

impl Counted {
    fn add(&mut self, o: Outcome) {
        if o.notify {
            self.notify += 1;
            self.highlight += u64::from(o.highlight);
        }
    }

    fn json(&self) -> Value {
        json!({ "notification_count": self.notify, "highlight_count": self.highlight })
    }
}

/// `(unread_notifications, unread_thread_notifications)` of a joined room for `/sync`: the
/// main-timeline counts, and per thread root the counts of threads with a notifying reply.
/// Zeros for a room the user is not joined to.
pub fn unread_counts(s: &Services, room_id: &RoomId, user_id: &UserId) -> Result<(Value, Value)> {
    let membership = s.db.get(ROOM_MEMBERSHIPS, &(room_id, user_id))?;
    let Some(joined_at) = membership.filter(|m| m.membership == MembershipState::Join).map(|m| m.stream_pos) else {
        return Ok((Counted::default().json(), json!({})));
    };
    let joined = Joined { record: &room(s, room_id)?, joined_at, ignored: read::ignored_users(s, user_id)? };
    unread_counts_joined(s, room_id, user_id, joined)
}

/// What the caller of [`unread_counts_joined`] already knows of a room the user is joined to.
pub struct Joined<'a> {
    pub record: &'a RoomRecord,
    /// The stream position of the user's join.
    pub joined_at: u64,
    /// Users the user ignores.
    pub ignored: Vec<String>,
}

/// [`unread_counts`] for a room `/sync` already found the user joined to.
pub fn unread_counts_joined(
    s: &Services,
    room_id: &RoomId,
    user_id: &UserId,
    joined: Joined<'_>,
) -> Result<(Value, Value)> {
    let Joined { record, joined_at, ignored } = joined;
    let shortroomid = record.shortroomid;
    let own = receipts::own_receipts(s, room_id, user_id)?;
    let latest = |thread: &str| own.iter().filter(|(t, _)| t == thread).map(|(_, p)| *p).max().unwrap_or(0);
    let floor = joined_at.max(latest(UNTHREADED));
    let mut counting = Counting { s, room_id, user_id, state_group: record.current_state_group, ignored, eval: None };

    let key = (room_id.to_owned(), user_id.to_owned());
    let base = floor.max(latest(MAIN));
    let cached = s.ephemeral.unread.main.get(&key).filter(|c| c.base == base);
    let mut main = cached.unwrap_or(Counted { base, upto: base, notify: 0, highlight: 0 });
    let start = (shortroomid, main.upto + 1);
    let grew = s.db.latest_position(ROOM_TIMELINE, &shortroomid)? > main.upto;
    let rows = if grew { s.db.scan_from(ROOM_TIMELINE, &shortroomid, &start, false, usize::MAX)? } else { Vec::new() };
    for ((_, pos), Counter(event)) in rows {
        main.upto = pos;
        if let Some(ev) = load_by_short(s, event)?
            && thread_of(&ev).is_none()
        {
            main.add(counting.outcome(event, &ev)?);
        }
    }
    s.ephemeral.unread.main.insert(key, main);

    let mut threads = Map::new();
    let roots = s
        .db
        .derived(THREAD_ROOTS, &shortroomid, "roots", || Ok(Arc::new(s.db.scan_prefix(THREAD_ROOTS, &shortroomid)?)))?;
    for &((_, root), Counter(last_reply)) in roots.iter() {
        if last_reply <= floor {
            continue;
        }
        let root_id = short::event_id(&s.db, root)?;
        let base = floor.max(latest(root_id.as_str()));
        if last_reply <= base {
            continue;
        }
        let mut thread = Counted { base, ..Counted::default() };
        for ((_, reply), rel) in s.db.scan_prefix(RELATIONS, &root)? {
            if rel.get(0).and_then(Value::as_str) != Some("m.thread") {
                continue;
            }
            if s.db.get(EVENT_META, &reply)?.is_none_or(|m| m.stream_pos <= base) {
                continue;
            }
            if let Some(ev) = load_by_short(s, reply)? {
                thread.add(counting.outcome(reply, &ev)?);
            }
        }
        if thread.notify > 0 {
            threads.insert(root_id.to_string(), thread.json());
        }
    }
    Ok((main.json(), Value::Object(threads)))
}

/// Evaluates events for one user, building the push-rule context on first need.
struct Counting<'a> {
    s: &'a Services,
    room_id: &'a RoomId,
    user_id: &'a UserId,
    /// The room's current-state group, which the cached evaluator must match.
    state_group: u64,
    ignored: Vec<String>,
    eval: Option<Arc<Evaluator>>,
}

impl Counting<'_> {
    fn outcome(&mut self, short: u64, ev: &StoredEvent) -> Result<Outcome> {
        let m = &ev.meta;
        let sender = ev.pdu.sender.as_str();
        if m.rejected || m.soft_failed || m.outlier || m.redacted_by.is_some() {
            return Ok(Outcome::default());
        }
        if sender == self.user_id.as_str() || self.ignored.iter().any(|u| u == sender) {
            return Ok(Outcome::default());
        }
        if self.eval.is_none() {
            self.eval = Some(self.evaluator()?);
        }
        let Some(flat) = self.flattened(short, ev) else { return Ok(Outcome::default()) };
        Ok(self.eval.as_ref().map(|e| e.evaluate(&flat)).unwrap_or_default())
    }

    /// The event flattened for the push rules, shared by every user it is counted for.
    fn flattened(&self, short: u64, ev: &StoredEvent) -> Option<Arc<FlattenedJson>> {
        if let Some(flat) = self.s.ephemeral.unread.flattened.get(&short) {
            return Some(flat);
        }
        let flat = Arc::new(flatten(ev)?);
        self.s.ephemeral.unread.flattened.insert(short, flat.clone());
        Some(flat)
    }

    fn evaluator(&self) -> Result<Arc<Evaluator>> {
        let key = (self.room_id.to_owned(), self.user_id.to_owned());
        // Read before the rules, so a change after this read is not taken for this version.
        let version = (self.state_group, self.s.db.mark(ACCOUNT_DATA, self.user_id));
        let cached = self.s.ephemeral.unread.evaluators.get(&key);
        if let Some((built_on, eval)) = cached
            && built_on == version
        {
            return Ok(eval);
        }
        let eval = Arc::new(Evaluator::new(self.s, self.room_id, self.user_id)?);
        self.s.ephemeral.unread.evaluators.insert(key, (version, eval.clone()));
        Ok(eval)
    }
}
