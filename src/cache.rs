//! The in-memory caches' one shape: a map behind a mutex that starts over when it reaches its
//! bound (what is cached is cheap to read again; no eviction bookkeeping on the hot path).
//!
//! A value derived from tables that change is stored with the write marks of the entities it was
//! read from ([`crate::storage::Storage::mark`]) or the tables' write generations
//! ([`crate::storage::Storage::generation`]), read *before* the rows, and used only while they
//! are unchanged.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A map of at most `MAX` cloneable values (usually `Arc`s).
pub struct BoundedCache<K, V, const MAX: usize> {
    entries: Mutex<HashMap<K, V>>,
}

impl<K, V, const MAX: usize> Default for BoundedCache<K, V, MAX> {
    fn default() -> Self {
        BoundedCache { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq, V: Clone, const MAX: usize> BoundedCache<K, V, MAX> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, V>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.lock().get(key).cloned()
    }

    /// Store `value`; a full cache is emptied first.
    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= MAX {
            entries.clear();
        }
        entries.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::BoundedCache;

    #[test]
    fn starts_over_when_full() {
        let cache = BoundedCache::<_, _, 2>::default();
        cache.insert(1, "a");
        cache.insert(2, "b");
        assert_eq!((cache.get(&1), cache.get(&2)), (Some("a"), Some("b")));
        cache.insert(3, "c");
        assert_eq!((cache.get(&1), cache.get(&2), cache.get(&3)), (None, None, Some("c")));
    }
}
