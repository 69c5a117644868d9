//! Typing notifications (spec: Client-Server API "Typing Notifications"): who is typing in each
//! room, in memory only. Every change of a room's list takes a stream position; each typing user
//! has a timer for their own deadline that removes them (and moves the stream again).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};
use tokio::task::AbortHandle;

use super::{after, bump_stream, lock};
use crate::error::Result;
use crate::rooms::membership;
use crate::services::Services;
use crate::storage::Storage;
use crate::storage::notifier::Interest;

/// The longest a client may say it keeps typing; longer timeouts are cut to this.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);

type Rooms = Arc<Mutex<HashMap<OwnedRoomId, RoomTyping>>>;

/// Typing users per room (shared with their expiry timers).
#[derive(Default)]
pub struct Typing {
    rooms: Rooms,
    generations: AtomicU64,
}

#[derive(Default)]
struct RoomTyping {
    users: BTreeMap<OwnedUserId, Entry>,
    /// Stream position of the last change to `users`.
    changed: u64,
}

struct Entry {
    /// Which `set` this entry comes from: an older timer finding a newer entry leaves it alone.
    generation: u64,
    timer: Option<AbortHandle>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            t.abort();
        }
    }
}

/// `PUT /rooms/{roomId}/typing/{userId}`: `timeout` `Some` starts (or renews) typing for that
/// long (at most [`MAX_TIMEOUT`]), `None` stops. The user must be joined (`M_FORBIDDEN`).
/// Renewing does not move the stream: the list of typing users is unchanged.
pub fn set(s: &Services, room_id: &RoomId, user_id: &UserId, timeout: Option<Duration>) -> Result<()> {
    membership::ensure_joined(s, room_id, user_id)?;
    let typing = &s.ephemeral.typing;
    let mut rooms = lock(&typing.rooms);
    let room = rooms.entry(room_id.to_owned()).or_default();
    match timeout {
        Some(timeout) => {
            let generation = typing.generations.fetch_add(1, Ordering::Relaxed);
            let (shared, db, r, u) = (typing.rooms.clone(), s.db.clone(), room_id.to_owned(), user_id.to_owned());
            let timer = after(timeout.min(MAX_TIMEOUT), move || expire(&shared, &db, &r, &u, generation));
            let entry = Entry { generation, timer };
            if room.users.contains_key(user_id) {
                room.users.insert(user_id.to_owned(), entry);
            } else {
                bump_stream(&s.db, &[Interest::room(room_id)], |pos| {
                    room.users.insert(user_id.to_owned(), entry);
                    room.changed = pos;
                })?;
            }
        }
        None if room.users.contains_key(user_id) => bump_stream(&s.db, &[Interest::room(room_id)], |pos| {
            room.users.remove(user_id);
            room.changed = pos;
        })?,
        None => {}
    }
    drop(rooms);
    crate::federation::sender::fanout::typing(s, room_id, user_id, timeout.is_some());
    Ok(())
}

/// The timer of one `set`: the user stops typing unless a later `set` replaced the entry.
fn expire(rooms: &Rooms, db: &Storage, room_id: &RoomId, user_id: &UserId, generation: u64) {
    let mut rooms = lock(rooms);
    let Some(room) = rooms.get_mut(room_id) else { return };
    if room.users.get(user_id).is_none_or(|e| e.generation != generation) {
        return;
    }
    let result = bump_stream(db, &[Interest::room(room_id)], |pos| {
        // The entry's timer is this very task, which is finishing: nothing to abort.
        if let Some(mut entry) = room.users.remove(user_id) {
            entry.timer = None;
        }
        room.changed = pos;
    });
    if let Err(e) = result {
        tracing::error!(%room_id, %user_id, "typing expiry: {e}");
    }
}

/// The room's `m.typing` event if its typing users changed after `since` (for `since == 0`:
/// whenever someone is typing). `user_ids` may be empty: everyone stopped.
pub fn typing_since(s: &Services, room_id: &RoomId, since: u64) -> Option<Value> {
    let rooms = lock(&s.ephemeral.typing.rooms);
    let room = rooms.get(room_id)?;
    let changed = if since == 0 { !room.users.is_empty() } else { room.changed > since };
    changed.then(|| json!({ "type": "m.typing", "content": { "user_ids": room.users.keys().collect::<Vec<_>>() } }))
}

/// Users typing in the room now.
pub fn typing_users(s: &Services, room_id: &RoomId) -> Vec<OwnedUserId> {
    lock(&s.ephemeral.typing.rooms).get(room_id).map(|r| r.users.keys().cloned().collect()).unwrap_or_default()
}
