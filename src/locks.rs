//! One keyed lock: mutual exclusion per key (a room's appends, a fetch from a server, ...), with
//! an entry only while the key is held or waited for, so the map is as large as the current
//! contention and no larger.
//!
//! [`AsyncKeyedLock`]: waiting yields to the runtime (the task parks, the worker thread runs
//! other tasks), and the guard may be held across `.await`. The map itself sits behind a
//! `std::sync::Mutex` held only for the few instructions that look up or drop an entry, never
//! across an `.await`.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Async locks keyed by `K`: at most one holder per key; a waiter parks its task, not its thread.
pub struct AsyncKeyedLock<K> {
    entries: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for AsyncKeyedLock<K> {
    fn default() -> Self {
        AsyncKeyedLock { entries: Mutex::new(HashMap::new()) }
    }
}

/// Holds the key's async lock until dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct AsyncKeyedGuard<'a, K: Hash + Eq + Clone> {
    // Fields drop in order: the mutex is released before the ticket removes an unused entry.
    _held: tokio::sync::OwnedMutexGuard<()>,
    _ticket: Ticket<'a, K>,
}

/// A holder's or waiter's share of a key's entry; the last one to go removes the entry. A waiter
/// whose future is dropped (a cancelled request) gives its share back the same way.
struct Ticket<'a, K: Hash + Eq + Clone> {
    lock: &'a AsyncKeyedLock<K>,
    key: K,
    mutex: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl<K: Hash + Eq + Clone> Drop for Ticket<'_, K> {
    fn drop(&mut self) {
        let mut entries = self.lock.entries();
        drop(self.mutex.take());
        // Shares are taken under the map's lock, so a count of 1 (the map's own) is final.
        if entries.get(&self.key).is_some_and(|m| Arc::strong_count(m) == 1) {
            entries.remove(&self.key);
        }
    }
}

impl<K: Hash + Eq + Clone> AsyncKeyedLock<K> {
    fn entries(&self) -> MutexGuard<'_, HashMap<K, Arc<tokio::sync::Mutex<()>>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wait (asynchronously) until no one else holds `key` (or a borrowed form of it: a
    /// `&ServerName` for an `OwnedServerName` key), then hold it.
    pub async fn lock<Q>(&self, key: &Q) -> AsyncKeyedGuard<'_, K>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let key = key.to_owned();
        let mutex = Arc::clone(self.entries().entry(key.clone()).or_default());
        let ticket = Ticket { lock: self, key, mutex: Some(Arc::clone(&mutex)) };
        let held = mutex.lock_owned().await;
        AsyncKeyedGuard { _held: held, _ticket: ticket }
    }

    /// Keys held or waited for now.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_lock_one_holder_per_key_across_awaits() {
        let locks = Arc::new(super::AsyncKeyedLock::<u32>::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (locks, inside) = (locks.clone(), inside.clone());
                tokio::spawn(async move {
                    for _ in 0..50 {
                        let _guard = locks.lock(&7).await;
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders of one key");
                        tokio::task::yield_now().await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(locks.is_empty(), "entries only while held or awaited");
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_no_entry() {
        let locks = super::AsyncKeyedLock::<u32>::default();
        let held = locks.lock(&1).await;
        let waited = tokio::time::timeout(Duration::from_millis(20), locks.lock(&1)).await;
        assert!(waited.is_err(), "the key is held");
        let _other = locks.lock(&2).await;
        assert_eq!(locks.len(), 2);
        drop(held);
        assert_eq!(locks.len(), 1, "the cancelled waiter gave its share back");
    }
}
