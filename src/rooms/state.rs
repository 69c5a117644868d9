//! Room state snapshots ("state groups"), shared and delta-encoded (spec: "Room State";
//! `docs/storage.md`, "State groups").
//!
//! Every event points at the group of the state before it and after it. A non-state event
//! shares its group with its predecessor; a state event adds a one-entry delta. Every
//! [`SNAPSHOT_EVERY`] deltas a full snapshot is written so loading never walks a long chain.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::catalog::STATE_GROUPS;
use crate::storage::records::StateGroupRecord;
use crate::storage::{Batch, Storage};

/// `shortstatekey → shorteventid`.
pub type ShortState = BTreeMap<u64, u64>;

/// Length of a delta chain before a full snapshot is written.
pub const SNAPSHOT_EVERY: u32 = 64;
/// Recently loaded full states, by group (groups never change; cache `states`).
pub type StateCache = crate::cache::BoundedCache<u64, Arc<ShortState>>;

/// The full state of a group.
pub fn load(db: &Storage, cache: &StateCache, group: u64) -> Result<Arc<ShortState>> {
    if let Some(state) = cache.get(&group) {
        return Ok(state);
    }
    // Walk up to a snapshot (or a cached ancestor), then apply the deltas downwards.
    let mut chain = Vec::new();
    let mut base: Option<Arc<ShortState>> = None;
    let mut next = Some(group);
    while let Some(id) = next {
        if let Some(cached) = cache.get(&id) {
            base = Some(cached);
            break;
        }
        let record = db.get(STATE_GROUPS, &id)?.ok_or_else(|| Error::internal(format!("missing state group {id}")))?;
        next = record.parent;
        chain.push(record);
        if chain.len() > SNAPSHOT_EVERY as usize + 1 {
            return Err(Error::internal(format!("state group {group}: delta chain too long")));
        }
    }
    let mut state: ShortState = base.map(|b| (*b).clone()).unwrap_or_default();
    for record in chain.iter().rev() {
        for k in &record.removed {
            state.remove(k);
        }
        state.extend(record.added.iter().copied());
    }
    let state = Arc::new(state);
    cache.insert(group, state.clone());
    Ok(state)
}

/// A group for the empty state (before a room's create event).
pub fn new_empty(db: &Storage, batch: &mut Batch<'_>) -> Result<u64> {
    let id = db.allocate_state_group();
    batch.put(STATE_GROUPS, &id, &StateGroupRecord::default())?;
    batch.state_group(id)?;
    Ok(id)
}

/// A group that is `parent` with `added` set and `removed` dropped.
pub fn new_delta(
    db: &Storage,
    cache: &StateCache,
    batch: &mut Batch<'_>,
    parent: u64,
    added: &[(u64, u64)],
    removed: &[u64],
) -> Result<u64> {
    let parent_record =
        db.get(STATE_GROUPS, &parent)?.ok_or_else(|| Error::internal(format!("missing state group {parent}")))?;
    let chain_len = parent_record.chain_len + 1;
    let record = if chain_len >= SNAPSHOT_EVERY {
        let mut full = (*load(db, cache, parent)?).clone();
        for k in removed {
            full.remove(k);
        }
        full.extend(added.iter().copied());
        StateGroupRecord { parent: None, added: full.into_iter().collect(), removed: Vec::new(), chain_len: 0 }
    } else {
        StateGroupRecord { parent: Some(parent), added: added.to_vec(), removed: removed.to_vec(), chain_len }
    };
    let id = db.allocate_state_group();
    batch.put(STATE_GROUPS, &id, &record)?;
    batch.state_group(id)?;
    Ok(id)
}

/// A group holding exactly `state` (resolved state after a fork), as a snapshot.
pub fn new_full(db: &Storage, batch: &mut Batch<'_>, state: &ShortState) -> Result<u64> {
    let id = db.allocate_state_group();
    let record = StateGroupRecord {
        parent: None,
        added: state.iter().map(|(k, v)| (*k, *v)).collect(),
        removed: Vec::new(),
        chain_len: 0,
    };
    batch.put(STATE_GROUPS, &id, &record)?;
    batch.state_group(id)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_and_snapshots_rebuild_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::open(dir.path(), 8).unwrap();
        let cache = StateCache::with_capacity("states", 512);
        let mut batch = db.batch();
        let mut group = new_empty(&db, &mut batch).unwrap();
        batch.commit().unwrap();
        let mut expected = ShortState::new();
        for i in 0..200u64 {
            let mut batch = db.batch();
            let key = i % 50;
            let removed = if i % 7 == 0 { vec![(i + 3) % 50] } else { vec![] };
            for k in &removed {
                expected.remove(k);
            }
            expected.insert(key, 1000 + i);
            group = new_delta(&db, &cache, &mut batch, group, &[(key, 1000 + i)], &removed).unwrap();
            batch.commit().unwrap();
        }
        let fresh = StateCache::with_capacity("states", 512);
        assert_eq!(*load(&db, &fresh, group).unwrap(), expected);
        let record = db.get(STATE_GROUPS, &group).unwrap().unwrap();
        assert!(record.chain_len < SNAPSHOT_EVERY, "chains stay bounded");
    }
}
