//! The storage layer: the only code that touches RocksDB.
//!
//! Tables are declared in [`catalog`]; keys and values are typed through [`codec`]. Related
//! writes go in one [`Batch`] (one atomic RocksDB `WriteBatch`, written to the WAL, so an
//! acknowledged write survives `kill -9`). Services call it directly from async code: reads
//! come from memtables and the block cache, writes append to the WAL without fsync, so a call
//! costs less than a hand-off to the blocking pool (docs/benchmarks.md).

mod batch;
pub mod catalog;
pub mod codec;
#[cfg(test)]
mod fixture_tests;
pub mod marks;
pub mod notifier;
pub mod records;
pub mod stream;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rocksdb::{BlockBasedOptions, Cache, DB, Direction, IteratorMode, MergeOperands, Options, ReadOptions};

use crate::error::{Context, Error, Result};
pub use batch::Batch;
use catalog::Table;
use codec::{Counter, KeyCodec, KeyEncode, ValueCodec};
pub use stream::{PendingPosition, StreamCounter};

#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    db: DB,
    stream: Arc<StreamCounter>,
    shortid_next: AtomicU64,
    shortid_lock: Mutex<()>,
    state_group_next: AtomicU64,
    /// Short ids already looked up (they never change once assigned).
    shortid_cache: crate::cache::BoundedCache<String, u64>,
    /// Write counters per table (slot `id % 64`), bumped after each committed batch that wrote to
    /// the table: caches of values derived from a table compare them (see [`Storage::generation`]).
    generations: [AtomicU64; GENERATION_SLOTS],
    /// Per-entity write marks of the `.marked()` tables.
    marks: marks::Marks,
    /// [`Storage::last_key`] answers: the raw last key under a head, with the head's mark.
    last_keys: crate::cache::BoundedCache<Box<[u8]>, (u64, Option<RawKey>)>,
    /// [`Storage::derived`] values by (tagged head, kind), with the head's mark.
    derived: crate::cache::BoundedCache<(RawKey, &'static str), (u64, Derived)>,
}

/// A raw RocksDB key.
type RawKey = Box<[u8]>;
type Derived = Arc<dyn std::any::Any + Send + Sync>;

const GENERATION_SLOTS: usize = 64;

fn generation_slot(id: u16) -> usize {
    usize::from(id) % GENERATION_SLOTS
}

const STREAM_POSITION: &str = "stream_position";
const SHORTID: &str = "shortid";
const STATE_GROUP: &str = "state_group";

/// The smallest byte string above every key starting with `prefix` (`None` if there is none).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// The full key of `key` in `table`: the table's id, then the encoded key.
fn tagged<K, V>(table: Table<K, V>, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + key.len());
    out.extend_from_slice(&table.id.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Merge operator of the keyspace; only [`catalog::COUNTERS`] entries are ever merged.
fn merge_max(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let decode = |b: &[u8]| <[u8; 8]>::try_from(b).map(u64::from_be_bytes).unwrap_or(0);
    let max = operands.iter().map(decode).chain(existing.map(decode)).max().unwrap_or(0);
    Some(max.to_be_bytes().to_vec())
}

impl Storage {
    /// Open (or create) the database at `path`. Every table of the catalog lives in RocksDB's
    /// default column family (one set of memtables and files: each column family costs RocksDB
    /// ~70 KB of memory whether used or not).
    pub fn open(path: &Path, cache_mb: usize) -> Result<Storage> {
        Storage::open_with(path, cache_mb, &crate::cache::Caches::default())
    }

    /// [`Storage::open`], with its in-memory caches made (and counted) by `caches`.
    pub fn open_with(path: &Path, cache_mb: usize, caches: &crate::cache::Caches) -> Result<Storage> {
        std::fs::create_dir_all(path).ctx(&format!("creating {}", path.display()))?;
        let cache = Cache::new_lru_cache(cache_mb.max(1) * 1024 * 1024);
        let mut table_opts = BlockBasedOptions::default();
        table_opts.set_block_cache(&cache);
        table_opts.set_bloom_filter(10.0, false);

        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_write_buffer_size(16 * 1024 * 1024);
        opts.set_arena_block_size(256 * 1024);
        opts.set_block_based_table_factory(&table_opts);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_merge_operator_associative("max_u64", merge_max);
        opts.set_max_open_files(256);
        opts.set_keep_log_file_num(3);
        opts.set_max_log_file_size(8 * 1024 * 1024);

        // A database from before tables shared one column family cannot be read.
        if let Ok(families) = DB::list_cf(&opts, path)
            && families.iter().any(|f| f != "default")
        {
            return Err(Error::internal(format!(
                "the database at {} has the old layout (a column family per table); move it away to start afresh",
                path.display()
            )));
        }
        let db = DB::open(&opts, path)
            .map_err(|e| Error::internal(format!("opening database at {}: {e}", path.display())))?;

        let read_counter = |name: &str| -> Result<u64> {
            Ok(match db.get(tagged(catalog::COUNTERS, &KeyCodec::encode(&name.to_string())))? {
                Some(v) => Counter::decode_value(&v)?.0,
                None => 0,
            })
        };
        let stream = StreamCounter::new(read_counter(STREAM_POSITION)?);
        let shortid_next = AtomicU64::new(read_counter(SHORTID)? + 1);
        let state_group_next = AtomicU64::new(read_counter(STATE_GROUP)? + 1);
        let inner = Inner {
            db,
            stream,
            shortid_next,
            shortid_lock: Mutex::new(()),
            state_group_next,
            shortid_cache: caches.cache("shortids"),
            generations: std::array::from_fn(|_| AtomicU64::new(0)),
            marks: Default::default(),
            last_keys: caches.cache("last_keys"),
            derived: caches.cache("derived"),
        };
        Ok(Storage { inner: Arc::new(inner) })
    }

    pub fn get<K: KeyCodec, V: ValueCodec, Q: KeyEncode<Key = K> + ?Sized>(
        &self,
        table: Table<K, V>,
        key: &Q,
    ) -> Result<Option<V>> {
        match self.inner.db.get_pinned(tagged(table, &key.encode_key()))? {
            Some(bytes) => Ok(Some(V::decode_value(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Every entry whose key starts with the encoding of `prefix` (e.g. a `user_id` for
    /// `(user_id, device_id)` keys), in key order.
    pub fn scan_prefix<K: KeyCodec, V: ValueCodec, P: KeyEncode + ?Sized>(
        &self,
        table: Table<K, V>,
        prefix: &P,
    ) -> Result<Vec<(K, V)>> {
        self.scan_bytes(table, &prefix.encode_key())
    }

    /// Up to `limit` entries inside `prefix`, starting at `start` (inclusive) and walking forwards
    /// or backwards (`reverse`) in key order. For pagination over `(room, position)` keys.
    pub fn scan_from<K: KeyCodec, V: ValueCodec, P: KeyEncode + ?Sized, S: KeyEncode<Key = K> + ?Sized>(
        &self,
        table: Table<K, V>,
        prefix: &P,
        start: &S,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(K, V)>> {
        let (prefix, start) = (tagged(table, &prefix.encode_key()), tagged(table, &start.encode_key()));
        self.scan_range(&prefix, &start, reverse, limit)
    }

    /// Up to `limit` entries inside `prefix` strictly after the key `after` (from the prefix's
    /// first entry when `None`), forwards in key order: for walking a table in chunks, or for
    /// skipping an entity's rows (after `(entity, u64::MAX)`) without building a key between two.
    pub fn scan_after<K: KeyCodec, V: ValueCodec, P: KeyEncode + ?Sized, S: KeyEncode<Key = K>>(
        &self,
        table: Table<K, V>,
        prefix: &P,
        after: Option<&S>,
        limit: usize,
    ) -> Result<Vec<(K, V)>> {
        let prefix = tagged(table, &prefix.encode_key());
        let start = match after {
            // The least byte string greater than the key: the key followed by `00`.
            Some(after) => {
                let mut start = tagged(table, &after.encode_key());
                start.push(0);
                start
            }
            None => prefix.clone(),
        };
        self.scan_range(&prefix, &start, false, limit)
    }

    fn scan_range<K: KeyCodec, V: ValueCodec>(
        &self,
        prefix: &[u8],
        start: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(K, V)>> {
        let direction = if reverse { Direction::Reverse } else { Direction::Forward };
        let iter = self.inner.db.iterator(IteratorMode::From(start, direction));
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((K::decode(&k[2..])?, V::decode_value(&v)?));
        }
        Ok(out)
    }

    /// A fresh state group id (persist it with [`Batch::state_group`]).
    pub fn allocate_state_group(&self) -> u64 {
        self.inner.state_group_next.fetch_add(1, Ordering::SeqCst)
    }

    /// Every entry of a (small) table, in key order.
    pub fn scan_all<K: KeyCodec, V: ValueCodec>(&self, table: Table<K, V>) -> Result<Vec<(K, V)>> {
        self.scan_bytes(table, &[])
    }

    fn scan_bytes<K: KeyCodec, V: ValueCodec>(&self, table: Table<K, V>, prefix: &[u8]) -> Result<Vec<(K, V)>> {
        let prefix = tagged(table, prefix);
        let iter = self.inner.db.iterator(IteratorMode::From(&prefix, Direction::Forward));
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push((K::decode(&k[2..])?, V::decode_value(&v)?));
        }
        Ok(out)
    }

    pub fn batch(&self) -> Batch<'_> {
        Batch::new(self)
    }

    /// How many committed batches have written to `table` (or a table sharing its slot). A value
    /// derived from the table while this stayed the same is still current; read it *before*
    /// reading the table.
    pub fn generation<K, V>(&self, table: Table<K, V>) -> u64 {
        self.inner.generations[generation_slot(table.id)].load(Ordering::SeqCst)
    }

    /// The write mark of entity `head` in a `.marked()` table ([`marks`]): a value derived from
    /// the entity's rows while this stayed the same is still current. Read it *before* the rows.
    pub fn mark<K: KeyCodec, V, H: KeyEncode<Key = K::Head> + ?Sized>(&self, table: Table<K, V>, head: &H) -> u64 {
        debug_assert!(table.marked, "{} keeps no write marks", table.name);
        self.inner.marks.get(&tagged(table, &head.encode_key()))
    }

    /// The last key under entity `head` of a `.marked()` table, in key order: for a table keyed
    /// `entity | stream_pos`, the entity's latest change. One reverse seek, then answered from
    /// memory while the entity's mark stays the same.
    pub fn last_key<K: KeyCodec, V, H: KeyEncode<Key = K::Head> + ?Sized>(
        &self,
        table: Table<K, V>,
        head: &H,
    ) -> Result<Option<K>> {
        debug_assert!(table.marked, "{} keeps no write marks", table.name);
        let prefix = tagged(table, &head.encode_key());
        let mark = self.inner.marks.get(&prefix);
        let raw = match self.inner.last_keys.get(&prefix[..]).filter(|(m, _)| *m == mark) {
            Some((_, raw)) => raw,
            None => {
                let mut opts = ReadOptions::default();
                opts.set_iterate_lower_bound(prefix.clone());
                if let Some(upper) = successor(&prefix) {
                    opts.set_iterate_upper_bound(upper);
                }
                let mut iter = self.inner.db.raw_iterator_opt(opts);
                iter.seek_to_last();
                let raw = iter.key().map(Box::from);
                iter.status()?;
                self.inner.last_keys.insert(prefix.into_boxed_slice(), (mark, raw.clone()));
                raw
            }
        };
        raw.map(|k| K::decode(&k[2..])).transpose()
    }

    /// A value `compute`d from the rows of entity `head` in a `.marked()` table (`kind` names
    /// what is computed), kept in memory while the entity's mark stays the same. For what
    /// `/sync` reads on every call and rarely changes: a user's rooms, a device's key counts.
    pub fn derived<K: KeyCodec, V, H: KeyEncode<Key = K::Head> + ?Sized, T: Clone + Send + Sync + 'static>(
        &self,
        table: Table<K, V>,
        head: &H,
        kind: &'static str,
        compute: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        debug_assert!(table.marked, "{} keeps no write marks", table.name);
        let key = (tagged(table, &head.encode_key()).into_boxed_slice(), kind);
        let mark = self.inner.marks.get(&key.0);
        if let Some((_, value)) = self.inner.derived.get(&key).filter(|(m, _)| *m == mark)
            && let Some(value) = value.downcast_ref::<T>()
        {
            return Ok(value.clone());
        }
        let value = compute()?;
        self.inner.derived.insert(key, (mark, Arc::new(value.clone())));
        Ok(value)
    }

    /// The latest stream position under entity `head` of a `.marked()` table keyed
    /// `head | stream_pos` (0, below every position, when there is none): whether anything
    /// happened there after a token, without a scan while the entity's mark holds.
    pub fn latest_position<H: KeyCodec, V, Q: KeyEncode<Key = H> + ?Sized>(
        &self,
        table: Table<(H, u64), V>,
        head: &Q,
    ) -> Result<u64> {
        Ok(self.last_key(table, head)?.map_or(0, |(_, pos)| pos))
    }

    /// The global stream counter (see [`stream`]).
    pub fn stream(&self) -> &Arc<StreamCounter> {
        &self.inner.stream
    }

    /// The short id of a long identifier if it has one.
    pub fn shortid(&self, long: &str) -> Result<Option<u64>> {
        if let Some(id) = self.inner.shortid_cache.get(long) {
            return Ok(Some(id));
        }
        let found = self.get(catalog::SHORTIDS, long)?.map(|Counter(id)| id);
        if let Some(id) = found {
            self.remember_shortid(long, id);
        }
        Ok(found)
    }

    fn remember_shortid(&self, long: &str, id: u64) {
        self.inner.shortid_cache.insert(long.to_owned(), id);
    }

    /// The short numeric id of a long identifier, allocating one on first use.
    pub fn get_or_create_shortid(&self, long: &str) -> Result<u64> {
        if let Some(id) = self.shortid(long)? {
            return Ok(id);
        }
        let _guard = self.inner.shortid_lock.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(Counter(id)) = self.get(catalog::SHORTIDS, long)? {
            return Ok(id);
        }
        let id = self.inner.shortid_next.fetch_add(1, Ordering::SeqCst);
        let mut batch = self.batch();
        batch.put(catalog::SHORTIDS, long, &Counter(id))?;
        batch.put(catalog::SHORTID_STRINGS, &id, &long.to_owned())?;
        batch.merge_counter(SHORTID, id)?;
        batch.commit()?;
        self.remember_shortid(long, id);
        Ok(id)
    }

    /// The long identifier behind a short id.
    pub fn shortid_string(&self, id: u64) -> Result<Option<String>> {
        self.get(catalog::SHORTID_STRINGS, &id)
    }

    /// Approximate bytes of SST files per table (RocksDB's estimate for each table's key range;
    /// what is still in memtables is not counted until it is flushed).
    pub fn table_sizes(&self) -> Vec<(&'static str, u64)> {
        let bounds: Vec<([u8; 2], [u8; 2])> =
            catalog::ALL.iter().map(|t| (t.id.to_be_bytes(), (t.id + 1).to_be_bytes())).collect();
        let ranges: Vec<rocksdb::Range<'_>> = bounds.iter().map(|(a, b)| rocksdb::Range::new(a, b)).collect();
        let sizes = self.inner.db.get_approximate_sizes(&ranges);
        catalog::ALL.iter().zip(sizes).map(|(t, bytes)| (t.name, bytes)).collect()
    }

    /// Flush the memtables and compact everything (for size measurements and maintenance).
    pub fn flush_and_compact(&self) -> Result<()> {
        self.inner.db.flush()?;
        self.inner.db.compact_range(None::<&[u8]>, None::<&[u8]>);
        Ok(())
    }

    /// Whether the database answers (for `/health`).
    pub fn is_healthy(&self) -> bool {
        self.inner.db.property_value("rocksdb.num-running-flushes").is_ok()
    }
}

#[cfg(test)]
mod tests {
    use ruma::{room_id, user_id};

    use super::*;

    #[test]
    fn counters_and_shortids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Storage::open(dir.path(), 8).unwrap();
            assert_eq!(s.get_or_create_shortid("!room:x").unwrap(), 1);
            assert_eq!(s.get_or_create_shortid("$event").unwrap(), 2);
            assert_eq!(s.get_or_create_shortid("!room:x").unwrap(), 1);
            let (a, b) = (s.stream().allocate(), s.stream().allocate());
            let mut batch = s.batch();
            batch.stream_position(&b).unwrap();
            batch.stream_position(&a).unwrap();
            batch.commit().unwrap();
        }
        let s = Storage::open(dir.path(), 8).unwrap();
        assert_eq!(s.stream().committed(), 2, "max of merged positions, not the last written");
        assert_eq!(s.get_or_create_shortid("$new").unwrap(), 3);
        assert_eq!(s.shortid_string(1).unwrap().as_deref(), Some("!room:x"));
    }

    #[test]
    fn prefix_scan_stays_inside_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), 8).unwrap();
        let mut b = s.batch();
        for (u, d) in [("@a:x", "D1"), ("@a:x", "D2"), ("@a:xy", "D3"), ("@b:x", "D4")] {
            b.put(catalog::FILTERS, &(ruma::UserId::parse(u).unwrap(), d), &serde_json::json!(d)).unwrap();
        }
        b.commit().unwrap();
        let found = s.scan_prefix(catalog::FILTERS, &"@a:x".to_string()).unwrap();
        let ids: Vec<_> = found.iter().map(|((_, d), _)| d.as_str()).collect();
        assert_eq!(ids, ["D1", "D2"]);
    }

    #[test]
    fn tables_sharing_the_keyspace_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), 8).unwrap();
        // Neighbours by id, with keys that start alike.
        let (before, middle, after) = (catalog::PUBLISHED_ROOMS, catalog::FORGOTTEN_ROOMS, catalog::REPORTS);
        assert_eq!((before.id + 1, middle.id + 1), (middle.id, after.id));
        let (user, room, room_b) = (user_id!("@a:x"), room_id!("!a:x"), room_id!("!b:x"));
        let mut b = s.batch();
        b.put(before, room, &serde_json::json!(0)).unwrap();
        b.put(middle, &(user, room_id!("!r:x")), &serde_json::json!(1)).unwrap();
        b.put(after, &(room, 5), &serde_json::json!(2)).unwrap();
        b.put(after, &(room_b, 6), &serde_json::json!(3)).unwrap();
        b.commit().unwrap();
        assert_eq!(s.scan_all(middle).unwrap().len(), 1);
        assert_eq!(s.scan_prefix(middle, user).unwrap()[0].1, serde_json::json!(1));
        let back = s.scan_from(after, room, &(room, u64::MAX), true, 10).unwrap();
        assert_eq!(
            back,
            [((room.to_owned(), 5), serde_json::json!(2))],
            "a reverse scan stays in its table and prefix"
        );
        let back = s.scan_from(middle, user, &(user, room_id!("!~:x")), true, 10).unwrap();
        assert_eq!(back.len(), 1);
        let forward = s.scan_from(after, room_b, &(room_b, 0), false, 10).unwrap();
        assert_eq!(
            forward,
            [((room_b.to_owned(), 6), serde_json::json!(3))],
            "a forward scan stops at the table's end"
        );
        assert_eq!(s.get(before, room).unwrap(), Some(serde_json::json!(0)));
        assert_eq!(s.get(middle, &(user, room_id!("!other:x"))).unwrap(), None);
    }

    #[test]
    fn scan_after_starts_strictly_after_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), 8).unwrap();
        let table = catalog::FEDERATION_EDU_QUEUE;
        let (a, ab, b) = (ruma::server_name!("a"), ruma::server_name!("a.b"), ruma::server_name!("b"));
        let mut batch = s.batch();
        for (dest, seq) in [(a, 1), (a, 2), (a, u64::MAX), (ab, 0), (b, 3)] {
            batch.put(table, &(dest, seq), &serde_json::json!(seq)).unwrap();
        }
        batch
            .put(
                catalog::FEDERATION_OUTGOING_TXNS,
                a,
                &records::OutgoingTxnRecord {
                    txn_id: "t".into(),
                    origin_server_ts: 0,
                    pdus: Vec::new(),
                    edus: Vec::new(),
                },
            )
            .unwrap();
        batch.commit().unwrap();
        let keys = |rows: Vec<((ruma::OwnedServerName, u64), serde_json::Value)>| -> Vec<(String, u64)> {
            rows.into_iter().map(|((d, n), _)| (d.to_string(), n)).collect()
        };
        let first = s.scan_after(table, &(), None::<&(ruma::OwnedServerName, u64)>, 2).unwrap();
        assert_eq!(keys(first), [("a".to_owned(), 1), ("a".to_owned(), 2)], "from the table's start");
        let next = s.scan_after(table, &(), Some(&(a, 1)), 10).unwrap();
        assert_eq!(keys(next).len(), 4, "the key itself is left out");
        let past_a = s.scan_after(table, &(), Some(&(a, u64::MAX)), 1).unwrap();
        assert_eq!(keys(past_a), [("a.b".to_owned(), 0)], "past every row of `a`, to the next name");
        let in_b = s.scan_after(table, b, Some(&(b, 3)), 10).unwrap();
        assert!(in_b.is_empty(), "the scan stays inside its prefix and its table");
    }

    #[test]
    fn committed_writes_move_their_tables_generation() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), 8).unwrap();
        let (filters, users) = (s.generation(catalog::FILTERS), s.generation(catalog::USERS));
        let mut b = s.batch();
        b.put(catalog::FILTERS, &(ruma::user_id!("@a:x"), "1"), &serde_json::json!({})).unwrap();
        assert_eq!(s.generation(catalog::FILTERS), filters, "not before the commit");
        b.commit().unwrap();
        assert_eq!(s.generation(catalog::FILTERS), filters + 1);
        assert_eq!(s.generation(catalog::USERS), users, "other tables keep theirs");
        s.batch().commit().unwrap();
        assert_eq!(s.generation(catalog::FILTERS), filters + 1, "an empty batch writes nothing");
    }

    #[test]
    fn last_key_follows_the_entitys_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), 8).unwrap();
        let (a, b) = (ruma::owned_user_id!("@a:x"), ruma::owned_user_id!("@b:x"));
        let change = |pos| records::AccountDataChange { room_id: None, data_type: format!("t{pos}") };
        let table = catalog::ACCOUNT_DATA_CHANGES;
        assert_eq!(s.last_key(table, &a).unwrap(), None);
        assert_eq!(s.latest_position(table, &a).unwrap(), 0, "nothing yet: below every position");
        let mark_b = s.mark(table, &b);
        let mut batch = s.batch();
        batch.put(table, &(a.clone(), 5), &change(5)).unwrap();
        batch.put(table, &(a.clone(), 300), &change(300)).unwrap();
        batch.commit().unwrap();
        assert_eq!(s.last_key(table, &a).unwrap(), Some((a.clone(), 300)), "a cached `None` is not reused");
        assert_eq!(s.mark(table, &b), mark_b, "another entity's mark stays");
        assert_eq!(s.last_key(table, &b).unwrap(), None, "keys of the neighbour are not under b");
        let mut batch = s.batch();
        batch.delete(table, &(a.clone(), 300)).unwrap();
        batch.put(table, &(b.clone(), 7), &change(7)).unwrap();
        batch.commit().unwrap();
        assert_eq!(s.last_key(table, &a).unwrap(), Some((a.clone(), 5)));
        assert_eq!(s.latest_position(table, &a).unwrap(), 5);
        assert_eq!(s.last_key(table, &b).unwrap(), Some((b, 7)));
    }

    #[test]
    fn an_old_layout_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        drop(DB::open_cf(&opts, dir.path(), ["users"]).unwrap());
        let err = Storage::open(dir.path(), 8).err().expect("refused");
        assert!(err.to_string().contains("old layout"), "{err}");
    }
}
