//! Reading rooms: history visibility, `/messages` pagination, `/context`, state and members
//! (spec: Client-Server API "Getting events for a room", "Room history visibility").

use std::sync::Arc;

use ruma::events::StateEventType;
use ruma::events::TimelineEventType;
use ruma::events::room::member::MembershipState;
use ruma::{RoomId, UserId};
use serde_json::Value;

use super::state::{self, ShortState};
use super::{StoredEvent, load_by_short, room, short, state_event};
use crate::cache::BoundedCache;
use crate::error::{Error, Result};
use crate::services::Services;
use crate::storage::catalog::{ACCOUNT_DATA, EVENT_META, ROOM_MEMBERSHIPS, ROOM_TIMELINE, ROOM_TOPOLOGY};
use crate::storage::codec::Counter;

/// A position between two events in topological order: just after event `(depth, stream)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TopoToken {
    pub depth: u64,
    pub stream: u64,
}

impl TopoToken {
    pub fn encode(self) -> String {
        format!("t{}_{}", self.depth, self.stream)
    }

    /// Parse `t<depth>_<stream>` or a sync token `s<stream>` (placed after the room's last event
    /// at or before that stream position).
    pub fn parse(s: &Services, shortroomid: u64, token: &str) -> Result<TopoToken> {
        let bad = || Error::invalid_param(format!("Invalid pagination token {token}"));
        if let Some(rest) = token.strip_prefix('t') {
            let (d, st) = rest.split_once('_').ok_or_else(bad)?;
            return Ok(TopoToken { depth: d.parse().map_err(|_| bad())?, stream: st.parse().map_err(|_| bad())? });
        }
        let pos: u64 =
            token.strip_prefix('s').unwrap_or(token).split('_').next().unwrap_or("").parse().map_err(|_| bad())?;
        let last = s.db.scan_from(ROOM_TIMELINE, &shortroomid, &(shortroomid, pos), true, 1)?;
        match last.first() {
            Some(((_, stream), Counter(sid))) => {
                let meta = s.db.get(EVENT_META, sid)?.ok_or_else(|| Error::internal("event without meta"))?;
                Ok(TopoToken { depth: meta.depth, stream: *stream })
            }
            None => Ok(TopoToken { depth: 0, stream: 0 }),
        }
    }
}

/// The position of an event in topological order (the token just after it). A back-filled
/// event has no stream position: its place is found among the `room_topology` rows at its depth.
pub fn position(s: &Services, ev: &StoredEvent) -> Result<TopoToken> {
    let depth = ev.meta.depth;
    if ev.meta.stream_pos > 0 {
        return Ok(TopoToken { depth, stream: ev.meta.stream_pos });
    }
    let short = short::event_get(&s.db, &ev.pdu.event_id)?;
    for ((_, _, stream), Counter(sid)) in s.db.scan_prefix(ROOM_TOPOLOGY, &(ev.meta.shortroomid, depth))? {
        if Some(sid) == short {
            return Ok(TopoToken { depth, stream });
        }
    }
    Ok(TopoToken { depth, stream: 0 })
}

/// The `filter` of `/messages` and `/context` (spec: "RoomEventFilter"), the parts we apply.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub types: Option<Vec<String>>,
    pub not_types: Vec<String>,
    pub senders: Option<Vec<String>>,
    pub not_senders: Vec<String>,
    pub lazy_load_members: bool,
    pub contains_url: Option<bool>,
}

fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

impl EventFilter {
    pub fn from_json(v: &Value) -> EventFilter {
        let list = |k: &str| {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect::<Vec<_>>())
        };
        EventFilter {
            types: list("types"),
            not_types: list("not_types").unwrap_or_default(),
            senders: list("senders"),
            not_senders: list("not_senders").unwrap_or_default(),
            lazy_load_members: v.get("lazy_load_members").and_then(Value::as_bool).unwrap_or(false),
            contains_url: v.get("contains_url").and_then(Value::as_bool),
        }
    }

    pub fn allows(&self, ev: &StoredEvent) -> bool {
        let kind = ev.pdu.kind.to_string();
        let sender = ev.pdu.sender.as_str();
        if self.not_types.iter().any(|p| type_matches(p, &kind)) || self.not_senders.iter().any(|s| s == sender) {
            return false;
        }
        if let Some(types) = &self.types
            && !types.iter().any(|p| type_matches(p, &kind))
        {
            return false;
        }
        if let Some(senders) = &self.senders
            && !senders.iter().any(|s| s == sender)
        {
            return false;
        }
        if let Some(want) = self.contains_url {
            let has = ev.json.get("content").and_then(|c| c.get("url")).is_some();
            if has != want {
                return false;
            }
        }
        true
    }
}

/// Users the viewer ignores (`m.ignored_user_list` account data).
pub fn ignored_users(s: &Services, viewer: &UserId) -> Result<Vec<String>> {
    s.db.derived(ACCOUNT_DATA, viewer, "ignored_users", || {
        let key = (viewer, None::<&RoomId>, "m.ignored_user_list");
        Ok(s.db
            .get(ACCOUNT_DATA, &key)?
            .and_then(|r| {
                r.content.get("ignored_users").and_then(Value::as_object).map(|m| m.keys().cloned().collect())
            })
            .unwrap_or_default())
    })
}

/// What history visibility depends on at one state group: the room's `history_visibility` and
/// the viewer's membership. State groups never change, so it is cached per (group, viewer): the
/// events of a quiet stretch of a room share one group.
pub type VisibilityCache = BoundedCache<(u64, ruma::OwnedUserId), VisibilityAt>;

#[derive(Clone)]
pub struct VisibilityAt {
    visibility: Arc<str>,
    membership: Option<MembershipState>,
}

fn visibility_at(s: &Services, viewer: &UserId, group: u64) -> Result<VisibilityAt> {
    let key = (group, viewer.to_owned());
    if let Some(found) = s.visibility_cache.get(&key) {
        return Ok(found);
    }
    let at = state::load(&s.db, &s.state_cache, group)?;
    let content = |e: StoredEvent, field: &str| e.pdu.content_value().get(field).and_then(Value::as_str).map(Arc::from);
    let visibility = state_event(s, &at, &StateEventType::RoomHistoryVisibility, "")?
        .and_then(|e| content(e, "history_visibility"))
        .unwrap_or_else(|| Arc::from("shared"));
    let membership = state_event(s, &at, &StateEventType::RoomMember, viewer.as_str())?
        .and_then(|e| content(e, "membership"))
        .map(|m| MembershipState::from(&*m));
    let found = VisibilityAt { visibility, membership };
    s.visibility_cache.insert(key, found.clone());
    Ok(found)
}

/// The viewer's membership at state group `group` (`None`: never in the room then).
pub fn membership_at(s: &Services, viewer: &UserId, group: u64) -> Result<Option<MembershipState>> {
    Ok(visibility_at(s, viewer, group)?.membership)
}

/// May `viewer` see `ev`? (spec: "History visibility"; evaluated at the event).
pub fn can_see(s: &Services, viewer: &UserId, ev: &StoredEvent, current: Option<&MembershipState>) -> Result<bool> {
    if ev.pdu.kind == TimelineEventType::RoomMember && ev.pdu.state_key.as_deref() == Some(viewer.as_str()) {
        return Ok(true);
    }
    let joined = current == Some(&MembershipState::Join);
    if ev.meta.outlier {
        // State learnt when joining through another server: part of the room's state.
        return Ok(joined);
    }
    let VisibilityAt { visibility, membership } = visibility_at(s, viewer, ev.meta.state_after)?;
    if &*visibility == "world_readable" {
        return Ok(true);
    }
    Ok(match (membership, &*visibility) {
        (Some(MembershipState::Join), _) => true,
        (Some(MembershipState::Invite), "invited" | "shared") => true,
        (_, "shared") => joined,
        _ => false,
    })
}

/// What a page of `/messages` returns.
pub struct Page {
    pub chunk: Vec<StoredEvent>,
    pub start: String,
    pub end: Option<String>,
}

/// Paginate the room in topological order (spec: `GET /rooms/{roomId}/messages`).
#[allow(clippy::too_many_arguments)]
pub fn messages(
    s: &Services,
    room_id: &RoomId,
    viewer: &UserId,
    from: Option<&str>,
    to: Option<&str>,
    backwards: bool,
    limit: usize,
    filter: &EventFilter,
) -> Result<Page> {
    let record = room(s, room_id)?;
    let short = record.shortroomid;
    let current = super::membership::membership_of(s, room_id, viewer)?;
    let ignored = ignored_users(s, viewer)?;
    let start = match from {
        Some(t) => TopoToken::parse(s, short, t)?,
        None if backwards => TopoToken { depth: u64::MAX, stream: u64::MAX },
        None => TopoToken { depth: 0, stream: 0 },
    };
    let stop = to.map(|t| TopoToken::parse(s, short, t)).transpose()?;
    let mut cursor = start;
    let mut chunk = Vec::new();
    let mut exhausted = false;
    let batch = (limit * 2).clamp(20, 500);
    while chunk.len() < limit && !exhausted {
        let rows = if backwards {
            s.db.scan_from(ROOM_TOPOLOGY, &short, &(short, cursor.depth, cursor.stream), true, batch)?
        } else {
            s.db.scan_from(
                ROOM_TOPOLOGY,
                &short,
                &(short, cursor.depth, cursor.stream.saturating_add(1)),
                false,
                batch,
            )?
        };
        exhausted = rows.len() < batch;
        for ((_, depth, stream), Counter(sid)) in rows {
            let here = TopoToken { depth, stream };
            if let Some(stop) = stop
                && ((backwards && here <= stop) || (!backwards && here > stop))
            {
                exhausted = true;
                break;
            }
            cursor = if backwards { before(here) } else { here };
            let Some(ev) = load_by_short(s, sid)? else { continue };
            if ev.meta.rejected || ev.meta.soft_failed || ignored.iter().any(|u| u == ev.pdu.sender.as_str()) {
                continue;
            }
            if filter.allows(&ev) && can_see(s, viewer, &ev, current.as_ref())? {
                chunk.push(ev);
                if chunk.len() >= limit {
                    break;
                }
            }
        }
    }
    let start_token = if from.is_none() && backwards {
        chunk.first().map(|e| position(s, e)).transpose()?.unwrap_or(start).encode()
    } else {
        start.encode()
    };
    let end = if exhausted && chunk.len() < limit { None } else { Some(cursor.encode()) };
    Ok(Page { chunk, start: start_token, end })
}

/// The position just before event `(depth, stream)`.
pub fn before(t: TopoToken) -> TopoToken {
    if t.stream > 0 {
        TopoToken { depth: t.depth, stream: t.stream - 1 }
    } else {
        TopoToken { depth: t.depth.saturating_sub(1), stream: u64::MAX }
    }
}

/// The state a user may read: the current state while joined (or the room is world-readable),
/// else the state when they left. `M_FORBIDDEN` if they were never in the room or forgot it,
/// and for rooms this server does not know: the answer never tells whether a room exists.
/// Every room read (`/messages`, `/state`, `/context`, members, relations, threads...) starts
/// here.
pub fn state_for(s: &Services, room_id: &RoomId, viewer: &UserId) -> Result<Arc<ShortState>> {
    let record = super::room_as_member(s, room_id)?;
    let current = state::load(&s.db, &s.state_cache, record.current_state_group)?;
    let member = s.db.get(ROOM_MEMBERSHIPS, &(room_id, viewer))?;
    match member {
        Some(m) if m.membership == MembershipState::Join => Ok(current),
        _ if world_readable(s, &current)? => Ok(current),
        Some(m)
            if matches!(m.membership, MembershipState::Leave | MembershipState::Ban)
                && !super::membership::forgotten(s, room_id, viewer, &m)? =>
        {
            let short =
                short::event_get(&s.db, &m.event_id)?.ok_or_else(|| Error::internal("membership event unknown"))?;
            let meta = s.db.get(EVENT_META, &short)?.ok_or_else(|| Error::internal("membership event without meta"))?;
            state::load(&s.db, &s.state_cache, meta.state_after)
        }
        _ => Err(Error::forbidden(format!("You are not allowed to see room {room_id}"))),
    }
}

fn world_readable(s: &Services, state: &ShortState) -> Result<bool> {
    Ok(state_event(s, state, &StateEventType::RoomHistoryVisibility, "")?.is_some_and(|e| {
        e.pdu.content_value().get("history_visibility").and_then(Value::as_str) == Some("world_readable")
    }))
}

/// The state after the last event at or before the pagination token `at` (`/members?at=`), or
/// `None` when the room has no event that early. Says nothing of who may read it: callers
/// start from [`state_for`].
pub fn state_at_token(s: &Services, room_id: &RoomId, at: &str) -> Result<Option<Arc<ShortState>>> {
    let short = room(s, room_id)?.shortroomid;
    let t = TopoToken::parse(s, short, at)?;
    let Some((_, Counter(sid))) =
        s.db.scan_from(ROOM_TOPOLOGY, &short, &(short, t.depth, t.stream), true, 1)?.into_iter().next()
    else {
        return Ok(None);
    };
    let meta = s.db.get(EVENT_META, &sid)?.ok_or_else(|| Error::internal("event without meta"))?;
    Ok(Some(state::load(&s.db, &s.state_cache, meta.state_after)?))
}

/// Every event of a state map.
pub fn state_events(s: &Services, state: &ShortState) -> Result<Vec<StoredEvent>> {
    let mut out = Vec::with_capacity(state.len());
    for sid in state.values() {
        if let Some(e) = load_by_short(s, *sid)? {
            out.push(e);
        }
    }
    Ok(out)
}

/// The member events of a state map.
pub fn member_events(s: &Services, state: &ShortState) -> Result<Vec<StoredEvent>> {
    Ok(state_events(s, state)?.into_iter().filter(|e| e.pdu.kind == TimelineEventType::RoomMember).collect())
}
