//! Storing a room this server joins through another server (spec: Server-Server API "Joining
//! Rooms", what follows `send_join`): the room's record, the returned state and auth chain as
//! outliers, then the join as the room's first timeline event, with that state before it.
//! Blocking; the events were checked (format, signatures, hashes) by the caller.

use std::sync::Arc;

use ruma::events::StateEventType;
use ruma::{OwnedEventId, RoomId, RoomVersionId, UserId};
use serde_json::Value;

use super::check::Checked;
use super::persist::{auth_by_auth_events, meta_of, state_of, store_outliers};
use crate::error::{Error, Result};
use crate::rooms::append::append;
use crate::rooms::build::{RoomCtx, StateBefore, authorize};
use crate::rooms::state;
use crate::rooms::{membership, remote_invites, rules_for, short, state_event};
use crate::services::Services;
use crate::storage::catalog::ROOMS;
use crate::storage::records::RoomRecord;

/// Make sure the room has a record of version `version` (created empty: no events, an empty
/// state group), so its events can be stored. A record of another version is an error.
pub async fn prepare_room(s: &Services, room_id: &RoomId, version: &RoomVersionId) -> Result<()> {
    rules_for(version)?;
    let _guard = s.room_lock(room_id).await;
    match s.db.get(ROOMS, room_id)? {
        Some(r) if r.room_version == *version => Ok(()),
        Some(r) => Err(Error::forbidden(format!(
            "Room {room_id} is version {} here, but the resident server says {version}",
            r.room_version
        ))),
        None => {
            let mut batch = s.db.batch();
            let record = RoomRecord {
                room_version: version.clone(),
                shortroomid: short::room(&s.db, room_id)?,
                current_state_group: state::new_empty(&s.db, &mut batch)?,
                max_depth: 0,
                forward_extremities: Vec::new(),
                membership_pos: Some(0),
            };
            batch.put(ROOMS, room_id, &record)?;
            batch.commit()
        }
    }
}

/// Store the `send_join` answer: `events` (state and auth chain, checked) as outliers, each
/// authorized by its own auth events; then the join, authorized by its auth events and by the
/// state made of `state_ids` (rejected ones left out), appended as the room's only forward
/// extremity. `user` gets their membership rows (through the current state) and loses any
/// pending remote invite.
pub async fn store_join(
    s: &Services,
    room_id: &RoomId,
    user: &UserId,
    join: &Checked,
    events: Vec<Checked>,
    state_ids: &[OwnedEventId],
) -> Result<()> {
    store_outliers(s, room_id, events).await?;
    {
        let _guard = s.room_lock(room_id).await;
        let mut record = crate::rooms::room(s, room_id)?;
        let rules = rules_for(&record.room_version)?;
        // Events that failed their checks were not stored: the state is made of the others.
        let mut known = Vec::with_capacity(state_ids.len());
        for id in state_ids {
            if meta_of(s, id)?.is_some() {
                known.push(id.clone());
            }
        }
        let state = state_of(s, room_id, &known, None)?;
        let create = state_event(s, &state, &StateEventType::RoomCreate, "")?
            .ok_or_else(|| Error::forbidden("The room state from the resident server has no m.room.create"))?;
        let content = create.pdu.content_value();
        let version = content.get("room_version").and_then(Value::as_str).unwrap_or("1");
        if version != record.room_version {
            return Err(Error::forbidden(format!(
                "The room's m.room.create says version {version}, the resident server said {}",
                record.room_version
            )));
        }
        let mut prev_events = Vec::new();
        for prev in &join.pdu.prev_events {
            let depth = meta_of(s, prev)?.map_or(join.pdu.depth.saturating_sub(1), |m| m.depth);
            prev_events.push((prev.clone(), depth));
        }
        let mut ctx = RoomCtx {
            room_id: Some(room_id.to_owned()),
            version: record.room_version.clone(),
            rules: rules.clone(),
            state_before: StateBefore::Resolved,
            state: Arc::new(state),
            prev_events,
            record: None,
        };
        auth_by_auth_events(s, &rules, &join.pdu)
            .map_err(|why| Error::forbidden(format!("The join is not authorized by its auth events: {why}")))?;
        authorize(s, &ctx, &join.pdu)?;
        // Forward extremities from an earlier stay in the room are stale: the join is the head.
        // (Unless another local user joined meanwhile: then both heads stay and are resolved.)
        if !record.forward_extremities.is_empty() && !crate::federation::txn::is_resident(s, room_id)? {
            record.forward_extremities.clear();
            let mut batch = s.db.batch();
            batch.put(ROOMS, room_id, &record)?;
            batch.commit()?;
        }
        ctx.record = Some(record);
        append(s, &ctx, &join.pdu, join.obj.clone(), None)?;
    }
    remote_invites::delete(s, user, room_id)?;
    membership::forget_undo(s, room_id, user)
}
