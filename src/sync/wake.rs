//! What wakes a long-poll (see [`crate::storage::notifier`]): the keys a `/sync` or WebSocket
//! waiter registers, and the keys each kind of stream write names.
//!
//! | change | wakes |
//! | --- | --- |
//! | room event, receipt, typing | the room |
//! | membership event | the room and its target user (invites, joins from another device) |
//! | presence or device list of user X | X, and every room X is joined to (who shares a room with X) |
//! | account data, remote invite or knock | the user |
//! | to-device, one-time key claim | the `(user, device)`; the user for `*` |

use ruma::UserId;
use ruma::events::TimelineEventType;
use ruma::events::room::member::MembershipState;

use crate::error::Result;
use crate::rooms::pdu::Pdu;
use crate::storage::Storage;
use crate::storage::notifier::Interest;

/// What the waiter of `(user, device)` would see change: its user, its device, its joined rooms.
pub fn waiter_keys(db: &Storage, user: &UserId, device: &str) -> Result<Vec<Interest>> {
    let mut keys = vec![Interest::user(user), Interest::device(user, device)];
    keys.extend(joined(db, user)?);
    Ok(keys)
}

/// A change to user X that co-members see (presence, device lists): X and X's joined rooms.
pub fn co_members(db: &Storage, user: &UserId) -> Result<Vec<Interest>> {
    let mut keys = vec![Interest::user(user)];
    keys.extend(joined(db, user)?);
    Ok(keys)
}

/// An event appended to `room`: the room, and the target of a membership event.
pub fn event(room: &(impl AsRef<str> + ?Sized), pdu: &Pdu) -> Vec<Interest> {
    let mut keys = vec![Interest::room(room)];
    if pdu.kind == TimelineEventType::RoomMember {
        keys.extend(pdu.state_key.as_deref().map(Interest::user));
    }
    keys
}

fn joined(db: &Storage, user: &UserId) -> Result<Vec<Interest>> {
    let rows = super::rooms_of(db, user)?;
    Ok(rows
        .iter()
        .filter(|(_, m)| m.membership == MembershipState::Join)
        .map(|((_, room), _)| Interest::room(room))
        .collect())
}
