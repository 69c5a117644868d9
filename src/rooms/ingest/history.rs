//! Storing back-filled events (spec: Server-Server API, "Backfilling and retrieving missing
//! events"): history older than what we had. Such an event is checked like any received event
//! (steps 4–5; no soft failure, as Synapse) and placed in the topological order only: no
//! stream position, no `room_timeline` row (so `/sync` never shows it), never a forward
//! extremity, no current-state change. See `docs/federation.md`, "Backfill".

use std::collections::HashMap;
use std::sync::Arc;

use ruma::events::TimelineEventType;
use ruma::{OwnedEventId, RoomId};
use serde_json::{Value, json};

use super::check::Checked;
use super::persist::{Outcome, auth_by_auth_events, context, meta_of, reason, store_excluded};
use crate::error::{Error, Result};
use crate::rooms::append::state_groups;
use crate::rooms::build::{RoomCtx, authorize};
use crate::rooms::short;
use crate::rooms::state::ShortState;
use crate::services::Services;
use crate::storage::catalog::{COUNTERS, EVENT_META, PDUS, RELATIONS, ROOM_TOPOLOGY};
use crate::storage::codec::Counter;
use crate::storage::records::EventMeta;

/// The `counters` entry of a room: how many of its events were back-filled (written under the
/// room lock, so never raced).
fn counter_name(room_id: &RoomId) -> String {
    format!("backfill:{room_id}")
}

/// The stream part of the `room_topology` key of the `n`th back-filled event. Live events use
/// their stream position (small numbers); back-filled ones count down from `u64::MAX`, so they
/// never collide with a live event at the same depth and, like Synapse's negative stream
/// orderings, later back-fills sort first among them.
pub fn topo_stream(n: u64) -> u64 {
    u64::MAX - n
}

/// Steps 4–5 for a back-filled event whose prev events are in the DAG or have their state in
/// `fetched`; stored as history when authorized, as rejected otherwise.
pub async fn persist_backfilled(
    s: &Services,
    room_id: &RoomId,
    ev: &Checked,
    fetched: &HashMap<OwnedEventId, Arc<ShortState>>,
) -> Result<Outcome> {
    let _guard = s.room_lock(room_id).await;
    if meta_of(s, &ev.event_id)?.is_some_and(|m| !m.outlier) {
        return Ok(Outcome::Known);
    }
    // The creation has no prev events: its state before is empty.
    let ctx = if ev.pdu.prev_events.is_empty() && ev.pdu.kind == TimelineEventType::RoomCreate {
        RoomCtx::new_room(Some(room_id.to_owned()), &crate::rooms::room(s, room_id)?.room_version)?
    } else {
        context(s, room_id, &ev.pdu, fetched)?
    };
    let sid = short::event(&s.db, &ev.event_id)?;
    let outcome = if let Err(why) = auth_by_auth_events(s, &ctx.rules, &ev.pdu) {
        Outcome::Rejected(format!("Event not authorized by its auth events: {why}"))
    } else if let Err(e) = authorize(s, &ctx, &ev.pdu) {
        Outcome::Rejected(format!("Event not authorized by the state before it: {}", reason(&e)))
    } else {
        Outcome::Accepted
    };
    match &outcome {
        Outcome::Accepted => store_backfilled(s, &ctx, ev, sid)?,
        Outcome::Rejected(why) => {
            tracing::info!(event_id = %ev.event_id, %why, "back-filled event rejected");
            store_excluded(s, &ctx, ev, sid, true)?;
        }
        _ => {}
    }
    s.event_cache.invalidate(sid);
    Ok(outcome)
}

/// One batch: the PDU, its metadata (`stream_pos` 0), state groups, a `room_topology` row at its
/// depth, and its `relations` row when the parent is known. The caller holds the room lock.
fn store_backfilled(s: &Services, ctx: &RoomCtx, ev: &Checked, sid: u64) -> Result<()> {
    let db = &s.db;
    let room_id = ev.pdu.room()?;
    let shortroomid = short::room(db, &room_id)?;
    let n = db.get(COUNTERS, &counter_name(&room_id))?.map_or(0, |c| c.0) + 1;
    let mut batch = db.batch();
    let (state_before, state_after, _) = state_groups(s, &mut batch, ctx, &ev.pdu, sid, true)?;
    let meta = EventMeta {
        event_id: ev.event_id.clone(),
        shortroomid,
        stream_pos: 0,
        depth: ev.pdu.depth,
        state_before,
        state_after,
        outlier: false,
        rejected: false,
        soft_failed: false,
        redacted_by: None,
        txn: None,
        room_version: Some(ctx.version.clone()),
    };
    batch.put(PDUS, &sid, &serde_json::to_value(&ev.obj).map_err(Error::internal)?)?;
    batch.put(EVENT_META, &sid, &meta)?;
    batch.put(ROOM_TOPOLOGY, &(shortroomid, ev.pdu.depth, topo_stream(n)), &Counter(sid))?;
    batch.put(COUNTERS, &counter_name(&room_id), &Counter(n))?;
    let content = ev.pdu.content_value();
    if let Some(rel) = content.get("m.relates_to") {
        let parent = rel.get("event_id").and_then(Value::as_str).and_then(|p| ruma::EventId::parse(p).ok());
        if let (Some(parent), Some(rel_type)) = (parent, rel.get("rel_type").and_then(Value::as_str))
            && let Some(p) = short::event_get(db, &parent)?
        {
            batch.put(RELATIONS, &(p, sid), &json!([rel_type, ev.pdu.kind.to_string()]))?;
        }
    }
    batch.commit()
}
