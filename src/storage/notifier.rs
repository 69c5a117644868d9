//! Wake-ups by interest: a long-poll (`/sync`, a WebSocket) registers the keys of what it would
//! see — its rooms, its user, its device — and a stream write names the keys it changes. The
//! [`StreamCounter`](super::stream::StreamCounter) fires a write's keys only once the committed
//! position covers it, so a woken waiter always computes up to a position that holds the change.
//!
//! A waiter registers *before* computing its first response: a change committed after that
//! stores a permit in its [`Notify`], so the next wait returns at once (no lost wake-up). Entries
//! leave the registry when their [`Waiter`] is dropped or re-keyed, so memory follows the number
//! of waiters, not the history of keys.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// What a change touches, and what a waiter would see change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Events, receipts, typing of a room; presence and device lists of its members.
    Room(Box<str>),
    /// A user's account data, memberships (invites, joins from another device), own presence
    /// and devices, to-device messages for all their devices.
    User(Box<str>),
    /// To-device messages and key counts of one device: `(user, device)`.
    Device(Box<str>, Box<str>),
}

impl Interest {
    pub fn room(room_id: &(impl AsRef<str> + ?Sized)) -> Self {
        Interest::Room(room_id.as_ref().into())
    }

    pub fn user(user_id: &(impl AsRef<str> + ?Sized)) -> Self {
        Interest::User(user_id.as_ref().into())
    }

    pub fn device(user_id: &(impl AsRef<str> + ?Sized), device_id: &(impl AsRef<str> + ?Sized)) -> Self {
        Interest::Device(user_id.as_ref().into(), device_id.as_ref().into())
    }
}

/// Waiters by key.
#[derive(Default)]
pub struct Registry {
    waiters: Mutex<HashMap<Interest, HashMap<u64, Arc<Notify>>>>,
    next_id: AtomicU64,
}

impl Registry {
    /// A waiter with no keys yet (it wakes for nothing until [`Waiter::watch`]).
    pub fn waiter(self: &Arc<Self>) -> Waiter {
        Waiter {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            notify: Arc::new(Notify::new()),
            keys: HashSet::new(),
            registry: Arc::clone(self),
        }
    }

    /// Wake every waiter registered under any of `keys`.
    pub fn fire(&self, keys: &[Interest]) {
        if keys.is_empty() {
            return;
        }
        let waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            for notify in waiters.get(key).into_iter().flat_map(HashMap::values) {
                notify.notify_one();
            }
        }
    }

    /// Keys with at least one waiter (for tests and metrics).
    pub fn len(&self) -> usize {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One long-poll's registration; dropping it removes its entries.
pub struct Waiter {
    id: u64,
    notify: Arc<Notify>,
    keys: HashSet<Interest>,
    registry: Arc<Registry>,
}

impl Waiter {
    /// Wake for exactly `keys` from now on (keys no longer named are dropped).
    pub fn watch(&mut self, keys: impl IntoIterator<Item = Interest>) {
        let new: HashSet<Interest> = keys.into_iter().collect();
        if new == self.keys {
            return;
        }
        let mut waiters = self.registry.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        for gone in self.keys.difference(&new) {
            remove(&mut waiters, gone, self.id);
        }
        for added in new.difference(&self.keys) {
            waiters.entry(added.clone()).or_default().insert(self.id, Arc::clone(&self.notify));
        }
        drop(waiters);
        self.keys = new;
    }

    /// Returns once a key fired since the last return (at once if one fired meanwhile).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut waiters = self.registry.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        for key in &self.keys {
            remove(&mut waiters, key, self.id);
        }
    }
}

fn remove(waiters: &mut HashMap<Interest, HashMap<u64, Arc<Notify>>>, key: &Interest, id: u64) {
    if let Some(ids) = waiters.get_mut(key) {
        ids.remove(&id);
        if ids.is_empty() {
            waiters.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn woken(w: &Waiter) -> bool {
        tokio::time::timeout(Duration::from_millis(50), w.notified()).await.is_ok()
    }

    #[tokio::test]
    async fn only_matching_keys_wake_and_a_fire_before_the_wait_is_kept() {
        let r = Arc::new(Registry::default());
        let mut a = r.waiter();
        a.watch([Interest::room("!a:x"), Interest::user("@a:x")]);
        let mut b = r.waiter();
        b.watch([Interest::room("!b:x")]);
        r.fire(&[Interest::room("!a:x")]);
        assert!(woken(&a).await, "fired before the wait: the permit is kept");
        assert!(!woken(&b).await);
        r.fire(&[Interest::device("@a:x", "D")]);
        assert!(!woken(&a).await, "a device key is not the user key");
    }

    #[tokio::test]
    async fn entries_leave_with_their_waiters() {
        let r = Arc::new(Registry::default());
        let mut a = r.waiter();
        a.watch([Interest::room("!a:x"), Interest::user("@a:x")]);
        let mut b = r.waiter();
        b.watch([Interest::room("!a:x")]);
        assert_eq!(r.len(), 2);
        a.watch([Interest::room("!a:x")]);
        assert_eq!(r.len(), 1, "re-keying drops the user key");
        drop(a);
        assert_eq!(r.len(), 1, "b still waits on the room");
        drop(b);
        assert!(r.is_empty());
    }
}
