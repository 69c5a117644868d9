//! The global stream position: one monotonically increasing counter that orders every change a
//! client can be told about (events, account data, receipts, ...); `/sync` tokens are built from it.
//!
//! Two phases: a writer *allocates* a position, writes, then *finishes* it (by dropping the
//! [`PendingPosition`]). The *committed* position is the highest p such that every position ≤ p is
//! finished, so a reader who reads up to `committed()` never skips a write still in flight.
//!
//! A write names what it changes ([`PendingPosition::waking`]); those keys fire in the
//! [`Registry`] once the committed position reaches the write (not when it finishes: a waiter
//! woken while a lower position is still in flight would compute up to a position that does not
//! hold the change yet, answer empty and miss it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use super::notifier::{Interest, Registry, Waiter};

pub struct StreamCounter {
    state: Mutex<State>,
    committed: watch::Sender<u64>,
    registry: Arc<Registry>,
}

struct State {
    last_allocated: u64,
    in_flight: BTreeSet<u64>,
    /// Keys of finished writes above the committed position, fired when it reaches them.
    parked: BTreeMap<u64, Vec<Interest>>,
}

impl StreamCounter {
    pub fn new(start: u64) -> Arc<Self> {
        Arc::new(StreamCounter {
            state: Mutex::new(State { last_allocated: start, in_flight: BTreeSet::new(), parked: BTreeMap::new() }),
            committed: watch::channel(start).0,
            registry: Arc::new(Registry::default()),
        })
    }

    /// Reserve the next position. Write it in the same batch as the data it orders.
    pub fn allocate(self: &Arc<Self>) -> PendingPosition {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.last_allocated += 1;
        let pos = state.last_allocated;
        state.in_flight.insert(pos);
        PendingPosition { pos, counter: Arc::clone(self), wakes: Vec::new() }
    }

    /// Highest position below which nothing is in flight.
    pub fn committed(&self) -> u64 {
        *self.committed.borrow()
    }

    /// Wakes on every move of the committed position (for background work that follows the
    /// whole stream, such as the federation outbox; long-polls use [`Self::waiter`]).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// A long-poll's registration: it wakes for committed writes that name one of its keys.
    pub fn waiter(&self) -> Waiter {
        self.registry.waiter()
    }

    /// Keys with a waiter registered.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Fire `keys` now, for changes that take no stream position of their own and are visible
    /// at once.
    pub fn wake(&self, keys: &[Interest]) {
        self.registry.fire(keys);
    }

    fn finish(&self, pos: u64, wakes: Vec<Interest>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.in_flight.remove(&pos);
        let committed = match state.in_flight.first() {
            Some(&lowest) => lowest - 1,
            None => state.last_allocated,
        };
        let mut fire = Vec::new();
        if !wakes.is_empty() {
            if pos <= committed {
                fire = wakes;
            } else {
                state.parked.insert(pos, wakes);
            }
        }
        if state.parked.first_key_value().is_some_and(|(&p, _)| p <= committed) {
            let above = state.parked.split_off(&(committed + 1));
            for (_, keys) in std::mem::replace(&mut state.parked, above) {
                fire.extend(keys);
            }
        }
        self.committed.send_if_modified(|c| {
            let moved = committed > *c;
            if moved {
                *c = committed;
            }
            moved
        });
        drop(state);
        self.registry.fire(&fire);
    }
}

/// An allocated position; dropping it (after the batch is written, or on failure) finishes it.
pub struct PendingPosition {
    pos: u64,
    counter: Arc<StreamCounter>,
    wakes: Vec<Interest>,
}

impl PendingPosition {
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// The waiters to wake once this write is committed: everything it changes.
    pub fn waking(mut self, keys: impl IntoIterator<Item = Interest>) -> Self {
        self.wakes.extend(keys);
        self
    }

    /// Add one key to wake (see [`Self::waking`]).
    pub fn wake(&mut self, key: Interest) {
        self.wakes.push(key);
    }
}

impl Drop for PendingPosition {
    fn drop(&mut self) {
        self.counter.finish(self.pos, std::mem::take(&mut self.wakes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_waits_for_the_lowest_in_flight_write() {
        let c = StreamCounter::new(10);
        let a = c.allocate();
        let b = c.allocate();
        assert_eq!((a.pos(), b.pos()), (11, 12));
        drop(b);
        assert_eq!(c.committed(), 10, "12 is done but 11 is still in flight");
        drop(a);
        assert_eq!(c.committed(), 12);
    }

    async fn woken(w: &Waiter) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(50), w.notified()).await.is_ok()
    }

    #[tokio::test]
    async fn keys_fire_once_the_committed_position_covers_the_write() {
        let c = StreamCounter::new(0);
        let mut w = c.waiter();
        w.watch([Interest::room("!r:x")]);
        let low = c.allocate();
        let high = c.allocate().waking([Interest::room("!r:x")]);
        drop(high);
        assert!(!woken(&w).await, "position 1 is in flight: 2 is not visible yet");
        drop(low);
        assert!(woken(&w).await, "committed reached 2");
        assert_eq!(c.committed(), 2);
        drop(c.allocate().waking([Interest::room("!other:x")]));
        assert!(!woken(&w).await, "another room's write");
    }

    #[test]
    fn subscribers_see_progress() {
        let c = StreamCounter::new(0);
        let mut rx = c.subscribe();
        drop(c.allocate());
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 1);
    }
}
