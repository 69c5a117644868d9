//! The global stream position: one monotonically increasing counter that orders every change a
//! client can be told about (events, account data, receipts, ...); `/sync` tokens are built from it.
//!
//! Two phases: a writer *allocates* a position, writes, then *finishes* it (by dropping the
//! [`PendingPosition`]). The *committed* position is the highest p such that every position ≤ p is
//! finished, so a reader who reads up to `committed()` never skips a write still in flight.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

pub struct StreamCounter {
    state: Mutex<State>,
    committed: watch::Sender<u64>,
}

struct State {
    last_allocated: u64,
    in_flight: BTreeSet<u64>,
}

impl StreamCounter {
    pub fn new(start: u64) -> Arc<Self> {
        Arc::new(StreamCounter {
            state: Mutex::new(State { last_allocated: start, in_flight: BTreeSet::new() }),
            committed: watch::channel(start).0,
        })
    }

    /// Reserve the next position. Write it in the same batch as the data it orders.
    pub fn allocate(self: &Arc<Self>) -> PendingPosition {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.last_allocated += 1;
        let pos = state.last_allocated;
        state.in_flight.insert(pos);
        PendingPosition { pos, counter: Arc::clone(self) }
    }

    /// Highest position below which nothing is in flight.
    pub fn committed(&self) -> u64 {
        *self.committed.borrow()
    }

    /// Wakes when the committed position moves (long-polls wait on this).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    fn finish(&self, pos: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.in_flight.remove(&pos);
        let committed = match state.in_flight.first() {
            Some(&lowest) => lowest - 1,
            None => state.last_allocated,
        };
        self.committed.send_if_modified(|c| {
            let moved = committed > *c;
            if moved {
                *c = committed;
            }
            moved
        });
    }
}

/// An allocated position; dropping it (after the batch is written, or on failure) finishes it.
pub struct PendingPosition {
    pos: u64,
    counter: Arc<StreamCounter>,
}

impl PendingPosition {
    pub fn pos(&self) -> u64 {
        self.pos
    }
}

impl Drop for PendingPosition {
    fn drop(&mut self) {
        self.counter.finish(self.pos);
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

    #[test]
    fn subscribers_see_progress() {
        let c = StreamCounter::new(0);
        let mut rx = c.subscribe();
        drop(c.allocate());
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 1);
    }
}
