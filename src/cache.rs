//! The in-memory caches' one shape: a named map behind a mutex that starts over when it reaches
//! its bound (what is cached is cheap to read again; no eviction bookkeeping on the hot path).
//! Each cache counts its hits and misses and knows its size; `GET /metrics` exports them
//! (`trellis_cache_*{cache="<name>"}`), and `[cache.entries]` in the configuration sets each
//! one's bound by name ([`DEFAULT_ENTRIES`] lists the names and built-in bounds).
//!
//! A value derived from tables that change is stored with the write marks of the entities it was
//! read from ([`crate::storage::Storage::mark`]) or the tables' write generations
//! ([`crate::storage::Storage::generation`]), read *before* the rows, and used only while they
//! are unchanged.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Every cache by name, with its built-in bound (entries): the defaults of `[cache.entries]`.
pub const DEFAULT_ENTRIES: &[(&str, usize)] = &[
    // Storage (`storage/mod.rs`).
    ("shortids", 100_000),
    ("last_keys", 100_000),
    ("derived", 100_000),
    // Rooms.
    ("events", 20_000),
    ("states", 512),
    ("visibility", 50_000),
    // Users, sync and ephemeral state.
    ("access_tokens", 100_000),
    ("device_last_seen", 100_000),
    ("sync_filters", 10_000),
    ("own_receipts", 100_000),
    ("unread_counts", 100_000),
    ("push_evaluators", 100_000),
    ("push_flattened", 10_000),
    // Federation.
    ("room_servers", 10_000),
    ("server_discovery", 10_000),
    ("server_keys", 10_000),
    ("server_key_fetches", 10_000),
];

/// The bound of a cache missing from [`DEFAULT_ENTRIES`] (a programming slip, logged).
const FALLBACK_ENTRIES: usize = 10_000;

/// One cache's counters, shared between the cache and the [`Caches`] that made it.
#[derive(Debug)]
pub struct CacheStats {
    pub name: &'static str,
    /// The bound, in entries.
    pub capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    entries: AtomicU64,
}

impl CacheStats {
    /// Lookups that found an entry (whether or not the caller then found it current).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that found nothing.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Entries held now.
    pub fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }
}

/// The maker of a server's caches: gives each its configured bound and keeps its counters for
/// `/metrics`.
#[derive(Debug, Default)]
pub struct Caches {
    /// Bounds by name (`[cache.entries]`); names not given keep [`DEFAULT_ENTRIES`].
    entries: BTreeMap<String, usize>,
    made: Mutex<Vec<Arc<CacheStats>>>,
}

impl Caches {
    /// Caches bounded as `[cache.entries]` says.
    pub fn new(entries: &BTreeMap<String, usize>) -> Caches {
        Caches { entries: entries.clone(), made: Mutex::default() }
    }

    /// The bound of the cache `name`: configured, else built in.
    pub fn capacity(&self, name: &str) -> usize {
        if let Some(&n) = self.entries.get(name) {
            return n;
        }
        match DEFAULT_ENTRIES.iter().find(|(n, _)| *n == name) {
            Some(&(_, n)) => n,
            None => {
                tracing::warn!(cache = name, "a cache without a default size; using {FALLBACK_ENTRIES}");
                FALLBACK_ENTRIES
            }
        }
    }

    /// A new, empty cache called `name` (a name of [`DEFAULT_ENTRIES`]).
    pub fn cache<K, V>(&self, name: &'static str) -> BoundedCache<K, V> {
        let cache = BoundedCache::with_capacity(name, self.capacity(name));
        self.made.lock().unwrap_or_else(PoisonError::into_inner).push(cache.stats.clone());
        cache
    }

    /// The counters of every cache made so far, in the order they were made.
    pub fn stats(&self) -> Vec<Arc<CacheStats>> {
        self.made.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// A map of at most `capacity` cloneable values (usually `Arc`s), emptied when it is full.
pub struct BoundedCache<K, V> {
    entries: Mutex<HashMap<K, V>>,
    stats: Arc<CacheStats>,
}

impl<K, V> BoundedCache<K, V> {
    /// A cache of its own, not listed by any [`Caches`] (tests, tools).
    pub fn with_capacity(name: &'static str, capacity: usize) -> Self {
        let stats = CacheStats {
            name,
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            entries: AtomicU64::new(0),
        };
        BoundedCache { entries: Mutex::new(HashMap::new()), stats: Arc::new(stats) }
    }

    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }
}

impl<K: Hash + Eq, V: Clone> BoundedCache<K, V> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, V>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let found = self.lock().get(key).cloned();
        let counter = if found.is_some() { &self.stats.hits } else { &self.stats.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Store `value`; a full cache is emptied first.
    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.stats.capacity && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, value);
        self.stats.entries.store(entries.len() as u64, Ordering::Relaxed);
    }

    /// Forget one entry (its source changed).
    pub fn remove<Q: Hash + Eq + ?Sized>(&self, key: &Q)
    where
        K: Borrow<Q>,
    {
        let mut entries = self.lock();
        entries.remove(key);
        self.stats.entries.store(entries.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{BoundedCache, Caches};

    #[test]
    fn starts_over_when_full() {
        let cache = BoundedCache::with_capacity("test", 2);
        cache.insert(1, "a");
        cache.insert(2, "b");
        assert_eq!((cache.get(&1), cache.get(&2)), (Some("a"), Some("b")));
        cache.insert(2, "b2");
        assert_eq!(cache.get(&1), Some("a"), "replacing an entry does not start over");
        cache.insert(3, "c");
        assert_eq!((cache.get(&1), cache.get(&2), cache.get(&3)), (None, None, Some("c")));
        let stats = cache.stats();
        assert_eq!((stats.hits(), stats.misses(), stats.entries()), (4, 2, 1));
        cache.remove(&3);
        assert_eq!(cache.stats().entries(), 0);
    }

    #[test]
    fn the_configured_bound_takes_effect() {
        let configured = BTreeMap::from([("events".to_owned(), 3)]);
        let caches = Caches::new(&configured);
        let events = caches.cache("events");
        let states = caches.cache::<u32, u32>("states");
        assert_eq!((events.stats().capacity, states.stats().capacity), (3, 512), "others keep their default");
        for i in 0..3 {
            events.insert(i, i);
        }
        assert_eq!(events.get(&0), Some(0));
        events.insert(3, 3);
        assert_eq!((events.get(&0), events.get(&3)), (None, Some(3)), "full at 3 entries");
        let names: Vec<_> = caches.stats().iter().map(|s| s.name).collect();
        assert_eq!(names, ["events", "states"]);
    }

    #[test]
    fn every_cache_of_a_server_has_a_default_bound_and_a_distinct_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::default();
        config.database.path = dir.path().join("db");
        let s = crate::services::Services::new(config).map_err(|e| e.to_string()).unwrap();
        let mut made: Vec<_> = s.caches.stats().iter().map(|c| c.name).collect();
        made.sort_unstable();
        let mut listed: Vec<_> = super::DEFAULT_ENTRIES.iter().map(|(n, _)| *n).collect();
        listed.sort_unstable();
        assert_eq!(made, listed, "DEFAULT_ENTRIES lists exactly the caches a server makes, once each");
    }
}
