//! Device-list changes (spec: "End-to-End Encryption", "Tracking the device list for a user";
//! `GET /keys/changes`; `/sync` `device_lists`).
//!
//! A change to a user's devices (a device created or deleted, device keys uploaded or changed)
//! is recorded under a fresh stream position in the same batch as the change itself
//! ([`record_in`]). Readers then ask which users sharing a room with them changed in
//! `(since, upto]`, and who stopped sharing every room with them.

use std::collections::BTreeSet;

use ruma::events::room::member::MembershipState;
use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};

use crate::error::{Error, Result};
use crate::rooms::membership::shared_users;
use crate::services::Services;
use crate::storage::catalog::{
    DEVICE_LIST_CHANGES, DEVICE_LIST_POSITIONS, ROOM_MEMBERSHIPS, ROOM_TIMELINE, ROOMS, USER_MEMBERSHIPS,
};
use crate::storage::codec::Counter;
use crate::storage::records::MembershipRecord;
use crate::storage::{Batch, Storage};

/// Record, in `batch`, that `user`'s device list changed; returns the stream position (held
/// pending by the batch until it commits). The user's previous change row is replaced, so
/// `device_list_changes` has one row per user.
pub fn record_in(db: &Storage, batch: &mut Batch<'_>, user: &UserId) -> Result<u64> {
    let pos = batch.allocate_position()?;
    crate::sync::wake::co_members(db, user)?.into_iter().for_each(|k| batch.wake(k));
    if let Some(Counter(old)) = db.get(DEVICE_LIST_POSITIONS, user)? {
        batch.delete(DEVICE_LIST_CHANGES, &((), old))?;
    }
    batch.put(DEVICE_LIST_CHANGES, &((), pos), &user.to_owned())?;
    batch.put(DEVICE_LIST_POSITIONS, user, &Counter(pos))?;
    Ok(pos)
}

/// A sync token as `/keys/changes` receives it: `s<pos>` (anything after a `_` is ignored, for
/// tokens that grow more parts) or a bare number. `M_INVALID_PARAM` otherwise.
pub fn parse_token(token: &str) -> Result<u64> {
    let body = token.strip_prefix('s').unwrap_or(token);
    let pos = body.split('_').next().unwrap_or_default();
    pos.parse().map_err(|_| Error::invalid_param(format!("Invalid stream token {token:?}")))
}

/// Users whose device lists changed in `(since, upto]` (only those who now share a room with
/// `user`, plus `user` themself), and users who stopped sharing every room with `user` in that
/// window: `(changed, left)`, each sorted.
///
/// `changed` also holds users who started sharing a room with `user` in the window (spec:
/// `device_lists.changed`, "or who now share an encrypted room"). Membership moves are read
/// from the membership records' stream positions; a membership event that does not change
/// whether two users share a room (a profile update) may report a user as changed once more,
/// which only makes the client query their keys again.
pub fn device_list_changes(
    s: &Services,
    user: &UserId,
    since: u64,
    upto: u64,
) -> Result<(Vec<OwnedUserId>, Vec<OwnedUserId>)> {
    if upto <= since {
        return Ok((Vec::new(), Vec::new()));
    }
    let memberships = s.db.scan_prefix(USER_MEMBERSHIPS, user)?;
    device_list_changes_in(s, user, since, upto, &memberships)
}

/// [`device_list_changes`] given the user's `user_memberships` rows (which `/sync` has read).
pub fn device_list_changes_in(
    s: &Services,
    user: &UserId,
    since: u64,
    upto: u64,
    memberships: &[((OwnedUserId, OwnedRoomId), MembershipRecord)],
) -> Result<(Vec<OwnedUserId>, Vec<OwnedUserId>)> {
    if upto <= since {
        return Ok((Vec::new(), Vec::new()));
    }
    let in_window = |pos: u64| pos > since && pos <= upto;
    let mut device_changes = BTreeSet::new();
    if s.db.latest_position(DEVICE_LIST_CHANGES, &())? > since {
        for (((), pos), changed) in s.db.scan_from(DEVICE_LIST_CHANGES, &(), &((), since + 1), false, usize::MAX)? {
            if pos > upto {
                break;
            }
            device_changes.insert(changed);
        }
    }
    let (mut joined, mut departed) = (BTreeSet::new(), BTreeSet::new());
    for ((_, room_id), mine) in memberships {
        let i_moved = in_window(mine.stream_pos);
        let i_am_in = mine.membership == MembershipState::Join;
        let i_left = i_moved && matches!(mine.membership, MembershipState::Leave | MembershipState::Ban);
        if !(i_am_in || i_left) || (!i_moved && !room_moved(s, room_id, since, upto)?) {
            continue;
        }
        for ((_, member), m) in s.db.scan_prefix(ROOM_MEMBERSHIPS, room_id)? {
            if member == user {
                continue;
            }
            let (they_are_in, they_moved) = (m.membership == MembershipState::Join, in_window(m.stream_pos));
            match (i_am_in, they_are_in) {
                (true, true) if i_moved || they_moved => joined.insert(member),
                (true, false) if they_moved => departed.insert(member),
                (false, true) => departed.insert(member),
                (false, false) if they_moved => departed.insert(member),
                _ => false,
            };
        }
    }
    if device_changes.is_empty() && departed.is_empty() && joined.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let shared = shared_users(s, user)?;
    let changed: BTreeSet<OwnedUserId> =
        device_changes.into_iter().filter(|u| shared.contains(u)).chain(joined).collect();
    let left: BTreeSet<OwnedUserId> = departed.into_iter().filter(|u| !shared.contains(u)).collect();
    Ok((changed.difference(&left).cloned().collect(), left.into_iter().collect()))
}

/// Whether the room's membership may have moved in `(since, upto]`: skips scanning the members
/// of rooms where nobody joined or left. Uses the room record's `membership_pos`; older records
/// fall back to "any event in the window".
fn room_moved(s: &Services, room_id: &RoomId, since: u64, upto: u64) -> Result<bool> {
    let Some(room) = s.db.get(ROOMS, room_id)? else { return Ok(false) };
    if let Some(pos) = room.membership_pos {
        // Only membership moves change who shares the room.
        return Ok(pos > since);
    }
    let short = room.shortroomid;
    let next = s.db.scan_from(ROOM_TIMELINE, &short, &(short, since + 1), false, 1)?;
    Ok(next.first().is_some_and(|((_, pos), _)| *pos <= upto))
}

#[cfg(test)]
mod tests {
    use super::parse_token;

    #[test]
    fn tokens() {
        assert_eq!(parse_token("s42").unwrap(), 42);
        assert_eq!(parse_token("42").unwrap(), 42);
        assert_eq!(parse_token("s42_7").unwrap(), 42);
        for bad in ["", "s", "sx", "t1_2", "-1", "s-1"] {
            assert!(parse_token(bad).is_err(), "{bad:?}");
        }
    }
}
