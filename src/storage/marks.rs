//! Per-entity write marks: for the tables declared `.marked()` in the catalog, a number that
//! moves whenever a committed batch writes under an entity (a key's first part: a user, a room,
//! a device). A value derived from an entity's rows, stored with the mark read *before* the
//! rows, is current while the mark is unchanged — Synapse's "stream change cache" idea, which
//! lets `/sync` skip the sections of a user and the rooms where nothing happened.
//!
//! Marks come from one sequence, bumped once per committed batch. They are recorded after the
//! batch is in RocksDB and before its stream positions finish, so a reader that sees a stream
//! position also sees the marks of the writes up to it. Entities not in memory (never written
//! since start, or forgotten when the map reached its bound) have the mark `floor`, the sequence
//! when the map last started over: a value stored before that no longer matches.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Entities remembered before the map starts over.
const MAX_ENTITIES: usize = 200_000;

#[derive(Default)]
pub struct Marks {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The last mark handed out.
    seq: u64,
    /// The mark of every entity not in `entities`.
    floor: u64,
    /// `table id (2 bytes) | encoded head` → mark of the last committed write under it.
    entities: HashMap<Box<[u8]>, u64>,
}

impl Marks {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The mark of one entity (`tagged`: the table id, then the encoded head).
    pub fn get(&self, tagged: &[u8]) -> u64 {
        let state = self.lock();
        state.entities.get(tagged).copied().unwrap_or(state.floor)
    }

    /// Give every entity a committed batch wrote under a new mark.
    pub fn record(&self, written: Vec<Vec<u8>>) {
        let mut state = self.lock();
        state.seq += 1;
        let seq = state.seq;
        if state.entities.len() + written.len() > MAX_ENTITIES {
            state.entities.clear();
            state.floor = seq;
        }
        for entity in written {
            state.entities.insert(entity.into_boxed_slice(), seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_moves_only_its_entities_mark() {
        let marks = Marks::default();
        let (a, b) = (marks.get(b"a"), marks.get(b"b"));
        marks.record(vec![b"a".to_vec()]);
        assert_ne!(marks.get(b"a"), a);
        assert_eq!(marks.get(b"b"), b);
        let a2 = marks.get(b"a");
        marks.record(vec![b"b".to_vec()]);
        assert_eq!(marks.get(b"a"), a2);
    }

    #[test]
    fn starting_over_invalidates_everything_seen_before() {
        let marks = Marks::default();
        marks.record(vec![b"x".to_vec()]);
        let (x, y) = (marks.get(b"x"), marks.get(b"y"));
        let many: Vec<Vec<u8>> = (0..MAX_ENTITIES as u32).map(|i| i.to_be_bytes().to_vec()).collect();
        marks.record(many);
        assert_ne!(marks.get(b"x"), x, "forgotten entities get the new floor");
        assert_ne!(marks.get(b"y"), y);
    }
}
