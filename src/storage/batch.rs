//! [`Batch`]: the writes of one operation, committed as one atomic RocksDB `WriteBatch`, with
//! the stream positions it allocated, the notifier keys it wakes and the table generations and
//! marks it moves.

use std::sync::atomic::Ordering;

use rocksdb::WriteBatch;

use super::catalog::{self, Table};
use super::codec::{Counter, KeyCodec, KeyEncode, ValueCodec};
use super::{PendingPosition, SHORTID, STATE_GROUP, STREAM_POSITION, Storage, generation_slot, notifier, tagged};
use crate::error::Result;

/// Writes that land together or not at all.
pub struct Batch<'a> {
    storage: &'a Storage,
    inner: WriteBatch,
    /// Positions from [`Batch::allocate_position`]: finished when the batch is dropped.
    held: Vec<PendingPosition>,
    /// Keys to wake after the write, for a batch that holds no position.
    wakes: Vec<notifier::Interest>,
    /// Generation slots of the tables written, one bit each.
    touched: u64,
    /// Entities of `.marked()` tables written (table id, then the encoded head).
    marks: Vec<Vec<u8>>,
}

impl<'a> Batch<'a> {
    pub(super) fn new(storage: &'a Storage) -> Batch<'a> {
        Batch {
            storage,
            inner: WriteBatch::default(),
            held: Vec::new(),
            wakes: Vec::new(),
            touched: 0,
            marks: Vec::new(),
        }
    }

    pub fn put<K: KeyCodec, V: ValueCodec, Q: KeyEncode<Key = K> + ?Sized>(
        &mut self,
        table: Table<K, V>,
        key: &Q,
        value: &V,
    ) -> Result<()> {
        self.touch(table, key);
        self.inner.put(tagged(table, &key.encode_key()), value.encode_value());
        Ok(())
    }

    pub fn delete<K: KeyCodec, V: ValueCodec, Q: KeyEncode<Key = K> + ?Sized>(
        &mut self,
        table: Table<K, V>,
        key: &Q,
    ) -> Result<()> {
        self.touch(table, key);
        self.inner.delete(tagged(table, &key.encode_key()));
        Ok(())
    }

    fn touch<K: KeyCodec, V, Q: KeyEncode<Key = K> + ?Sized>(&mut self, table: Table<K, V>, key: &Q) {
        self.touched |= 1 << generation_slot(table.id);
        if table.marked {
            let mut entity = table.id.to_be_bytes().to_vec();
            key.encode_key_head_into(&mut entity);
            self.marks.push(entity);
        }
    }

    pub(super) fn merge_counter(&mut self, name: &str, value: u64) -> Result<()> {
        self.touched |= 1 << generation_slot(catalog::COUNTERS.id);
        self.inner
            .merge(tagged(catalog::COUNTERS, &KeyCodec::encode(&name.to_string())), Counter(value).encode_value());
        Ok(())
    }

    /// The short id of `long`, allocated in this batch when it has none: it exists once the batch
    /// commits, saving a write of its own. Only for identifiers nothing else can be allocating
    /// meanwhile, such as the ID of an event being appended under its room's lock.
    pub fn shortid(&mut self, long: &str) -> Result<u64> {
        if let Some(id) = self.storage.shortid(long)? {
            return Ok(id);
        }
        let id = self.storage.inner.shortid_next.fetch_add(1, Ordering::SeqCst);
        self.put(catalog::SHORTIDS, long, &Counter(id))?;
        self.put(catalog::SHORTID_STRINGS, &id, &long.to_owned())?;
        self.merge_counter(SHORTID, id)?;
        Ok(id)
    }

    /// Record that this batch writes state group `id` (persists the counter's high mark).
    pub fn state_group(&mut self, id: u64) -> Result<()> {
        self.merge_counter(STATE_GROUP, id)
    }

    /// Record that this batch uses stream position `pos` (persists the counter's high mark).
    pub fn stream_position(&mut self, pos: &PendingPosition) -> Result<()> {
        self.merge_counter(STREAM_POSITION, pos.pos())
    }

    /// Allocate a stream position for this batch's writes and persist its high mark. The batch
    /// holds it pending until it is committed or dropped, so readers (who stop at the committed
    /// position) never see the position before the data it orders. For writers that get a
    /// `Batch` but not the `PendingPosition` lifetime, e.g. device deletion hooks.
    pub fn allocate_position(&mut self) -> Result<u64> {
        let pos = self.storage.stream().allocate().waking(std::mem::take(&mut self.wakes));
        self.stream_position(&pos)?;
        let p = pos.pos();
        self.held.push(pos);
        Ok(p)
    }

    /// Wake the waiters on `key` once this batch's positions (from [`Self::allocate_position`])
    /// are committed (or, for a batch that holds none, once it is written).
    pub fn wake(&mut self, key: notifier::Interest) {
        match self.held.last_mut() {
            Some(pos) => pos.wake(key),
            None => self.wakes.push(key),
        }
    }

    pub fn commit(self) -> Result<()> {
        // `held` drops after the write: the positions finish once the data is in. An empty batch
        // writes nothing (a RocksDB write would still queue behind other writers).
        if !self.inner.is_empty() {
            let written = self.storage.inner.db.write(self.inner);
            for (slot, generation) in self.storage.inner.generations.iter().enumerate() {
                if self.touched & (1 << slot) != 0 {
                    generation.fetch_add(1, Ordering::SeqCst);
                }
            }
            if !self.marks.is_empty() {
                self.storage.inner.marks.record(self.marks);
            }
            written?;
        }
        self.storage.stream().wake(&self.wakes);
        Ok(())
    }
}
