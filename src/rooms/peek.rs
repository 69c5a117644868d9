//! Peeking into rooms one may read without being joined (spec: "Room Previews"):
//! `GET /rooms/{roomId}/initialSync` and `GET /events?room_id=`. Who may read what is
//! [`read::state_for`]'s answer (joined, a `world_readable` room, or the state when one left);
//! every event is filtered by its history visibility like `/messages`.

use std::time::Duration;

use ruma::events::room::member::MembershipState;
use ruma::{RoomId, UserId};

use super::read::{self, EventFilter, Page};
use super::{StoredEvent, load_by_short, room};
use crate::error::{Error, Result};
use crate::services::Services;
use crate::storage::catalog::ROOM_TIMELINE;
use crate::storage::codec::Counter;
use crate::storage::notifier::Interest;

/// What `initialSync` shows of a room.
pub struct Snapshot {
    pub membership: Option<MembershipState>,
    /// The latest events, oldest first.
    pub messages: Vec<StoredEvent>,
    /// Token before the first message (for `/messages?dir=b`).
    pub start: String,
    /// Token of the latest message.
    pub end: String,
    pub state: Vec<StoredEvent>,
    pub published: bool,
}

/// The current (or, after leaving, last seen) state and the latest `limit` events.
pub fn snapshot(s: &Services, room_id: &RoomId, viewer: &UserId, limit: usize) -> Result<Snapshot> {
    let state = read::state_for(s, room_id, viewer)?;
    let Page { mut chunk, start, end } =
        read::messages(s, room_id, viewer, None, None, true, limit, &EventFilter::default())?;
    chunk.reverse();
    // Where `/messages?dir=b` goes on from: the page's end, or (all of it fitted) just before
    // its first event.
    let before_first = match (end, chunk.first()) {
        (Some(end), _) => end,
        (None, Some(first)) => read::before(read::position(s, first)?).encode(),
        (None, None) => start.clone(),
    };
    Ok(Snapshot {
        membership: super::membership::membership_of(s, room_id, viewer)?,
        messages: chunk,
        start: before_first,
        end: start,
        state: read::state_events(s, &state)?,
        published: super::directory::is_published(s, room_id)?,
    })
}

/// A `/events` token: the stream position events were returned up to.
fn token(pos: u64) -> String {
    format!("p{pos}")
}

fn parse_token(t: &str) -> Result<u64> {
    t.strip_prefix('p')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::invalid_param(format!("Invalid from token {t:?}")))
}

/// Most events one `/events` answer carries.
const MAX_EVENTS: usize = 100;

/// The room's events after `from` (default: now) that `viewer` may see, waiting up to
/// `timeout` for one; returns them with the `(start, end)` tokens.
pub async fn events(
    s: &Services,
    room_id: &RoomId,
    viewer: &UserId,
    from: Option<&str>,
    timeout: Duration,
) -> Result<(Vec<StoredEvent>, String, String)> {
    read::state_for(s, room_id, viewer)?;
    let short = room(s, room_id)?.shortroomid;
    let stream = s.db.stream();
    let start = match from {
        Some(t) => parse_token(t)?.min(stream.committed()),
        None => stream.committed(),
    };
    let mut waiter = stream.waiter();
    waiter.watch([Interest::room(room_id)]);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut after = start;
    // Each round either returns or waits for the room to change; the deadline bounds the rounds.
    loop {
        let upto = stream.committed();
        let (found, reached) = visible_after(s, short, room_id, viewer, after, upto)?;
        after = reached;
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok((found, token(start), token(after.max(start))));
        }
        if tokio::time::timeout_at(deadline, waiter.notified()).await.is_err() {
            return Ok((Vec::new(), token(start), token(after.max(start))));
        }
    }
}

/// Events of the room in `(after, upto]` the viewer may see (at most [`MAX_EVENTS`]), and the
/// position read up to.
fn visible_after(
    s: &Services,
    short: u64,
    room_id: &RoomId,
    viewer: &UserId,
    after: u64,
    upto: u64,
) -> Result<(Vec<StoredEvent>, u64)> {
    let current = super::membership::membership_of(s, room_id, viewer)?;
    let rows = s.db.scan_from(ROOM_TIMELINE, &short, &(short, after.saturating_add(1)), false, MAX_EVENTS)?;
    // A full page stops at its last row; a shorter one read everything up to `upto`.
    let full = rows.len() == MAX_EVENTS;
    let mut out = Vec::new();
    let mut last = after;
    for ((_, pos), Counter(sid)) in rows {
        if pos > upto {
            break;
        }
        last = pos;
        let Some(ev) = load_by_short(s, sid)? else { continue };
        if !ev.meta.rejected && !ev.meta.soft_failed && read::can_see(s, viewer, &ev, current.as_ref())? {
            out.push(ev);
        }
    }
    Ok((out, if full { last } else { upto.max(after) }))
}
