//! The event closest to a point in time (spec: `GET /rooms/{roomId}/timestamp_to_event`, v1.6).

use ruma::{OwnedEventId, RoomId, UserId};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::rooms::{StoredEvent, load_by_short, membership, read, room};
use crate::services::Services;
use crate::storage::catalog::{PDUS, ROOM_TIMELINE};
use crate::storage::codec::Counter;

/// Most events examined past the boundary (they may all be hidden from the viewer) before
/// answering `M_NOT_FOUND`.
const MAX_SCAN: usize = 2000;
const BATCH: usize = 200;

/// The first event at or after `ts` (`forward`), or the last one at or before it, that `viewer`
/// may see: its ID and `origin_server_ts`. `M_FORBIDDEN` if the viewer was never in the room.
pub fn closest(s: &Services, room_id: &RoomId, viewer: &UserId, ts: u64, forward: bool) -> Result<(OwnedEventId, u64)> {
    read::state_for(s, room_id, viewer)?;
    let current = membership::membership_of(s, room_id, viewer)?;
    closest_visible(s, room_id, ts, forward, |ev| read::can_see(s, viewer, ev, current.as_ref()))
}

/// [`closest`] for any notion of visibility (a user's, or another server's for federation).
pub fn closest_visible(
    s: &Services,
    room_id: &RoomId,
    ts: u64,
    forward: bool,
    mut visible: impl FnMut(&StoredEvent) -> Result<bool>,
) -> Result<(OwnedEventId, u64)> {
    let short = room(s, room_id)?.shortroomid;
    let not_found = || {
        let dir = if forward { "forward" } else { "backward" };
        Error::not_found(format!("Unable to find event from {ts} in {dir} direction"))
    };
    // Forward: from the first event at or after `ts`; backward: from the last one at or before it.
    let boundary = first_from(s, short, if forward { ts } else { ts.saturating_add(1) })?;
    let mut cursor = if forward { boundary } else { boundary.checked_sub(1).ok_or_else(not_found)? };
    let mut scanned = 0;
    while scanned < MAX_SCAN {
        let rows = s.db.scan_from(ROOM_TIMELINE, &short, &(short, cursor), !forward, BATCH)?;
        let full = rows.len() == BATCH;
        for ((_, pos), Counter(sid)) in rows {
            scanned += 1;
            cursor = pos;
            let Some(ev) = load_by_short(s, sid)? else { continue };
            if ev.meta.rejected || ev.meta.soft_failed {
                continue;
            }
            let at = u64::from(ev.pdu.origin_server_ts.0);
            let fits = if forward { at >= ts } else { at <= ts };
            if fits && visible(&ev)? {
                return Ok((ev.pdu.event_id.clone(), at));
            }
        }
        let next = if forward { cursor.checked_add(1) } else { cursor.checked_sub(1) };
        match next {
            Some(n) if full => cursor = n,
            _ => break,
        }
    }
    Err(not_found())
}

/// The stream position of the room's first event whose timestamp is at least `ts`, or past the
/// last event. A binary search over stream positions, exact while timestamps grow along the
/// stream (as they do for local events); [`closest`] checks each candidate's timestamp anyway.
fn first_from(s: &Services, short: u64, ts: u64) -> Result<u64> {
    let (mut lo, mut hi) = (0u64, u64::MAX);
    // Invariant: the room's events before `lo` are older than `ts`; those from `hi` on are not.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let next = s.db.scan_from(ROOM_TIMELINE, &short, &(short, mid), false, 1)?;
        match next.first() {
            Some(&((_, pos), Counter(sid))) if pos < hi => {
                if event_ts(s, sid)? < ts {
                    lo = pos + 1;
                } else {
                    hi = mid;
                }
            }
            _ => hi = mid,
        }
    }
    Ok(lo)
}

fn event_ts(s: &Services, sid: u64) -> Result<u64> {
    let pdu = s.db.get(PDUS, &sid)?.ok_or_else(|| Error::internal(format!("timeline event {sid} without PDU")))?;
    Ok(pdu.get("origin_server_ts").and_then(Value::as_u64).unwrap_or(0))
}
