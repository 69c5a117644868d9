//! `GET /rooms/{roomId}/messages`, `/context/{eventId}`, `/members`, `/joined_members`
//! (spec: "Getting events for a room", "Room membership").

use std::collections::BTreeSet;

use ruma::api::Direction;
use ruma::api::client::context::get_context;
use ruma::api::client::membership::{get_member_events, joined_members};
use ruma::api::client::message::get_message_events;
use ruma::events::StateEventType;
use ruma::events::TimelineEventType;
use ruma::events::room::member::MembershipState;
use ruma::{RoomId, UserId};
use serde_json::{Map, Value, json};

use crate::api::ruma::{RawJson, Ruma};
use crate::error::{Error, Result};
use crate::rooms::format::{Viewer, client_event};
use crate::rooms::ingest::backfill;
use crate::rooms::read::{self, EventFilter};
use crate::rooms::{self as rooms_svc, StoredEvent, membership, state};
use crate::services::{Services, State};

/// Most events one page returns.
const MAX_LIMIT: usize = 1000;

fn filter_of<T: serde::Serialize>(filter: &T) -> EventFilter {
    serde_json::to_value(filter).map(|v| EventFilter::from_json(&v)).unwrap_or_default()
}

fn format_all(s: &Services, events: &[StoredEvent], viewer: Viewer<'_>) -> Result<Vec<Value>> {
    events.iter().map(|e| client_event(s, e, Some(viewer))).collect()
}

/// Member events of the senders of `events` (lazy-loading members, spec: "Lazy-loading room members").
fn lazy_members(s: &Services, room_id: &RoomId, events: &[StoredEvent]) -> Result<Vec<Value>> {
    let senders: BTreeSet<&UserId> = events.iter().map(|e| e.pdu.sender.as_ref()).collect();
    let mut out = Vec::new();
    for sender in senders {
        if let Some(ev) = rooms_svc::current_state_event(s, room_id, &StateEventType::RoomMember, sender.as_str())? {
            out.push(client_event(s, &ev, None)?);
        }
    }
    Ok(out)
}

/// Back-fill rounds one `/messages` request may do when local history runs out.
const BACKFILL_ROUNDS: usize = 3;

/// What a `/messages` page is computed from.
#[derive(Clone)]
struct PageArgs {
    room_id: ruma::OwnedRoomId,
    user_id: ruma::OwnedUserId,
    from: Option<String>,
    to: Option<String>,
    backwards: bool,
    limit: usize,
    filter: EventFilter,
}

fn page(s: &Services, a: &PageArgs) -> Result<read::Page> {
    read::state_for(s, &a.room_id, &a.user_id)?;
    read::messages(s, &a.room_id, &a.user_id, a.from.as_deref(), a.to.as_deref(), a.backwards, a.limit, &a.filter)
}

/// `GET /_matrix/client/v3/rooms/{roomId}/messages`. A backwards page that runs out of local
/// history first back-fills from the room's other servers (spec: "Room history").
pub async fn messages(s: State, r: Ruma<get_message_events::v3::Request>) -> Result<RawJson> {
    let auth = r.auth()?.clone();
    let b = r.body;
    let args = PageArgs {
        room_id: b.room_id,
        user_id: auth.user_id.clone(),
        from: b.from,
        to: b.to,
        backwards: b.dir == Direction::Backward,
        limit: usize::try_from(u64::from(b.limit)).unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT),
        filter: filter_of(&b.filter),
    };
    let mut current = page(&s, &args)?;
    for _ in 0..BACKFILL_ROUNDS {
        if !args.backwards || current.end.is_some() {
            break;
        }
        if backfill::backfill_room(&s, &args.room_id, args.limit).await? == 0 {
            break;
        }
        current = page(&s, &args)?;
    }
    let viewer = Viewer { user_id: &auth.user_id, device_id: Some(auth.device_id.as_str()) };
    let mut out = json!({ "chunk": format_all(&s, &current.chunk, viewer)?, "start": current.start });
    if let Some(end) = current.end {
        out["end"] = json!(end);
    }
    if args.filter.lazy_load_members {
        out["state"] = json!(lazy_members(&s, &args.room_id, &current.chunk)?);
    }
    Ok(RawJson(out))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`
pub async fn context(s: State, r: Ruma<get_context::v3::Request>) -> Result<RawJson> {
    let auth = r.auth()?.clone();
    let b = r.body;
    let filter = filter_of(&b.filter);
    let limit = usize::try_from(u64::from(b.limit)).unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    read::state_for(&s, &b.room_id, &auth.user_id)?;
    let not_found = || Error::not_found("Event not found");
    let ev = rooms_svc::load(&s, &b.event_id)?.ok_or_else(not_found)?;
    let current = membership::membership_of(&s, &b.room_id, &auth.user_id)?;
    if ev.pdu.room()? != b.room_id
        || ev.meta.rejected
        || ev.meta.soft_failed
        || ev.meta.outlier
        || !read::can_see(&s, &auth.user_id, &ev, current.as_ref())?
    {
        return Err(not_found());
    }
    let at = read::position(&s, &ev)?;
    let before_token = read::before(at).encode();
    let half = limit / 2;
    let (before, after) = if limit == 0 {
        (
            read::Page { chunk: vec![], start: before_token.clone(), end: Some(before_token.clone()) },
            read::Page { chunk: vec![], start: at.encode(), end: Some(at.encode()) },
        )
    } else {
        (
            read::messages(&s, &b.room_id, &auth.user_id, Some(&before_token), None, true, half.max(1), &filter)?,
            read::messages(
                &s,
                &b.room_id,
                &auth.user_id,
                Some(&at.encode()),
                None,
                false,
                (limit - half).max(1),
                &filter,
            )?,
        )
    };
    let viewer = Viewer { user_id: &auth.user_id, device_id: Some(auth.device_id.as_str()) };
    let state_map = state::load(&s.db, &s.state_cache, ev.meta.state_after)?;
    let state_events = if filter.lazy_load_members {
        let mut all = before.chunk.clone();
        all.extend(after.chunk.iter().cloned());
        all.push(ev.clone());
        let mut st: Vec<Value> = read::state_events(&s, &state_map)?
            .iter()
            .filter(|e| e.pdu.kind != TimelineEventType::RoomMember)
            .map(|e| client_event(&s, e, None))
            .collect::<Result<_>>()?;
        st.extend(lazy_members(&s, &b.room_id, &all)?);
        st
    } else {
        read::state_events(&s, &state_map)?.iter().map(|e| client_event(&s, e, None)).collect::<Result<_>>()?
    };
    let value = json!({
        "event": client_event(&s, &ev, Some(viewer))?,
        "events_before": format_all(&s, &before.chunk, viewer)?,
        "events_after": format_all(&s, &after.chunk, viewer)?,
        "start": before.end.unwrap_or(before.start),
        "end": after.end.unwrap_or(after.start),
        "state": state_events,
    });
    Ok(RawJson(value))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/members`
pub async fn members(s: State, r: Ruma<get_member_events::v3::Request>) -> Result<RawJson> {
    let user = r.auth()?.user_id.clone();
    let b = r.body;
    // ruma keeps unknown values; the spec's enum is the five memberships (Synapse: 400).
    for m in [&b.membership, &b.not_membership].into_iter().flatten() {
        if !matches!(
            m,
            MembershipState::Join
                | MembershipState::Invite
                | MembershipState::Knock
                | MembershipState::Leave
                | MembershipState::Ban
        ) {
            return Err(Error::invalid_param(format!("Unknown membership {}", m.as_str())));
        }
    }
    let mut st = read::state_for(&s, &b.room_id, &user)?;
    if let Some(at) = &b.at
        && let Some(then) = read::state_at_token(&s, &b.room_id, at)?
    {
        st = then;
    }
    let (want, not) = (b.membership, b.not_membership);
    let mut chunk = Vec::new();
    for ev in read::member_events(&s, &st)? {
        let m = ev.pdu.content_value().get("membership").and_then(Value::as_str).map(MembershipState::from);
        if want.as_ref().is_some_and(|w| Some(w) != m.as_ref()) || not.as_ref().is_some_and(|n| Some(n) == m.as_ref()) {
            continue;
        }
        chunk.push(client_event(&s, &ev, None)?);
    }
    let value = json!({ "chunk": chunk });
    Ok(RawJson(value))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/joined_members`
pub async fn joined(s: State, r: Ruma<joined_members::v3::Request>) -> Result<RawJson> {
    let user = r.auth()?.user_id.clone();
    let room_id = r.body.room_id;
    membership::ensure_joined(&s, &room_id, &user)?;
    let current = rooms_svc::current_state(&s, &room_id)?;
    let mut joined = Map::new();
    for ev in read::member_events(&s, &current)? {
        let c = ev.pdu.content_value();
        if c.get("membership").and_then(Value::as_str).map(MembershipState::from) == Some(MembershipState::Join)
            && let Some(key) = &ev.pdu.state_key
        {
            joined.insert(
                key.clone(),
                json!({ "display_name": c.get("displayname"), "avatar_url": c.get("avatar_url") }),
            );
        }
    }
    let value = json!({ "joined": joined });
    Ok(RawJson(value))
}
