//! The `rooms` part of `/sync` (spec: "Syncing"): for each room the user is in, was invited to,
//! knocked on or left, what changed between `since` and `upto`.

use std::collections::BTreeSet;

use ruma::events::StateEventType;
use ruma::events::TimelineEventType;
use ruma::events::room::member::MembershipState;
use ruma::{RoomId, UserId};
use serde_json::{Map, Value, json};

use super::filter::{SyncFilter, allows_type};
use super::{hooks, object};
use crate::ephemeral::unread::Joined;
use crate::error::Result;
use crate::rooms::format::{Viewer, client_event, stripped};
use crate::rooms::read::{TopoToken, can_see};
use crate::rooms::{self, StoredEvent, load_by_short, state};
use crate::services::Services;
use crate::storage::catalog::{ROOM_MEMBERSHIPS, ROOM_TIMELINE};
use crate::storage::codec::Counter;
use crate::storage::records::MembershipRecord;

/// One sync computation's parameters.
pub struct Ctx<'a> {
    pub s: &'a Services,
    pub user: &'a UserId,
    pub device: &'a str,
    pub since: u64,
    pub upto: u64,
    pub full_state: bool,
    pub filter: &'a SyncFilter,
    pub ignored: Vec<String>,
}

impl Ctx<'_> {
    fn viewer(&self) -> Viewer<'_> {
        Viewer { user_id: self.user, device_id: Some(self.device) }
    }

    fn format(&self, ev: &StoredEvent) -> Result<Value> {
        if self.filter.federation_format {
            return Ok(Value::clone(&ev.json));
        }
        Ok(self.filter.project(client_event(self.s, ev, Some(self.viewer()))?))
    }
}

/// The newest `limit` visible events in `(after, upto]`, oldest first, and whether more exist.
fn timeline(
    c: &Ctx<'_>,
    shortroomid: u64,
    after: u64,
    upto: u64,
    membership: Option<&MembershipState>,
) -> Result<(Vec<StoredEvent>, bool)> {
    // Most rooms of a user with many saw nothing new: the timeline's last key, kept in memory,
    // says so without a scan.
    if c.s.db.latest_position(ROOM_TIMELINE, &shortroomid)? <= after {
        return Ok((Vec::new(), false));
    }
    if after > 0
        && let Some(found) = timeline_forward(c, shortroomid, after, upto, membership)?
    {
        return Ok(found);
    }
    const CHUNK: usize = 100;
    let limit = c.filter.timeline_limit();
    let mut events = Vec::new();
    let mut cursor = upto;
    'scan: while cursor > after {
        let rows = c.s.db.scan_from(ROOM_TIMELINE, &shortroomid, &(shortroomid, cursor), true, CHUNK)?;
        for ((_, pos), Counter(sid)) in &rows {
            if *pos <= after {
                break 'scan;
            }
            cursor = pos.saturating_sub(1);
            let Some(ev) = visible(c, *sid, membership)? else { continue };
            if events.len() == limit {
                events.reverse();
                return Ok((events, true));
            }
            events.push(ev);
        }
        if rows.len() < CHUNK {
            break;
        }
    }
    events.reverse();
    Ok((events, false))
}

/// An incremental sync usually finds a few new events: read them forwards (RocksDB iterates
/// backwards slowly). `None` when the window holds more than a few hundred rows.
fn timeline_forward(
    c: &Ctx<'_>,
    shortroomid: u64,
    after: u64,
    upto: u64,
    membership: Option<&MembershipState>,
) -> Result<Option<(Vec<StoredEvent>, bool)>> {
    const MAX_ROWS: usize = 256;
    let rows = c.s.db.scan_from(ROOM_TIMELINE, &shortroomid, &(shortroomid, after + 1), false, MAX_ROWS + 1)?;
    let window = rows.iter().take_while(|((_, pos), _)| *pos <= upto).count();
    if window == MAX_ROWS + 1 {
        return Ok(None);
    }
    let limit = c.filter.timeline_limit();
    let (mut events, mut limited) = (std::collections::VecDeque::new(), false);
    for (_, Counter(sid)) in &rows[..window] {
        let Some(ev) = visible(c, *sid, membership)? else { continue };
        events.push_back(ev);
        if events.len() > limit {
            events.pop_front();
            limited = true;
        }
    }
    Ok(Some((events.into(), limited)))
}

/// The event if it belongs in this user's timeline: not rejected or soft-failed, not from an
/// ignored user, allowed by the filter and by history visibility.
fn visible(c: &Ctx<'_>, sid: u64, membership: Option<&MembershipState>) -> Result<Option<StoredEvent>> {
    let Some(ev) = load_by_short(c.s, sid)? else { return Ok(None) };
    if ev.meta.rejected || ev.meta.soft_failed || c.ignored.iter().any(|u| u == ev.pdu.sender.as_str()) {
        return Ok(None);
    }
    if !c.filter.timeline.events.allows(&ev) || !can_see(c.s, c.user, &ev, membership)? {
        return Ok(None);
    }
    Ok(Some(ev))
}

/// The `state` section: the full state before the timeline (initial, newly joined, full_state),
/// or the state that changed in the gap a limited timeline skipped.
fn state_section(
    c: &Ctx<'_>,
    room_id: &RoomId,
    events: &[StoredEvent],
    full: bool,
    limited: bool,
) -> Result<Vec<StoredEvent>> {
    if !full && !limited {
        return Ok(Vec::new());
    }
    let group = match events.first() {
        Some(first) => first.meta.state_before,
        None => rooms::room(c.s, room_id)?.current_state_group,
    };
    let map = state::load(&c.s.db, &c.s.state_cache, group)?;
    let lazy = c.filter.state.events.lazy_load_members;
    let senders: BTreeSet<&str> = events.iter().map(|e| e.pdu.sender.as_str()).chain([c.user.as_str()]).collect();
    let mut out = Vec::new();
    for sid in map.values() {
        let Some(ev) = load_by_short(c.s, *sid)? else { continue };
        if !full && ev.meta.stream_pos <= c.since {
            continue;
        }
        if !c.filter.state.events.allows(&ev) {
            continue;
        }
        let is_member = ev.pdu.kind == TimelineEventType::RoomMember;
        if lazy && is_member && !ev.pdu.state_key.as_deref().is_some_and(|k| senders.contains(k)) {
            continue;
        }
        out.push(ev);
    }
    Ok(out)
}

/// `summary`: heroes and member counts (spec: "Room summary").
fn summary(c: &Ctx<'_>, room_id: &RoomId) -> Result<Value> {
    let (mut joined, mut invited, mut heroes) = (0u64, 0u64, Vec::new());
    for ((_, member), m) in c.s.db.scan_prefix(ROOM_MEMBERSHIPS, room_id)? {
        match m.membership {
            MembershipState::Join => joined += 1,
            MembershipState::Invite => invited += 1,
            _ => continue,
        }
        if member != c.user && heroes.len() < 5 {
            heroes.push(member);
        }
    }
    Ok(json!({ "m.heroes": heroes, "m.joined_member_count": joined, "m.invited_member_count": invited }))
}

/// A joined (or, with `left`, a left) room: `None` when nothing changed.
pub fn room(
    c: &Ctx<'_>,
    room_id: &RoomId,
    m: &MembershipRecord,
    account_data: Vec<Value>,
    left: bool,
) -> Result<Option<Value>> {
    let record = rooms::room(c.s, room_id)?;
    let newly = c.since == 0 || m.stream_pos > c.since;
    let after = if newly && !left { 0 } else { c.since };
    let upto = if left { m.stream_pos.min(c.upto) } else { c.upto };
    let (events, limited) = timeline(c, record.shortroomid, after, upto, Some(&m.membership))?;
    let full = (newly && !left) || c.full_state || (left && c.since == 0);
    let state = state_section(c, room_id, &events, full, limited)?;

    let mut ephemeral = Vec::new();
    if !left {
        if let Some(t) =
            hooks::typing(c.s, room_id, c.since, &c.ignored).filter(|_| allows_type(&c.filter.ephemeral, "m.typing"))
        {
            ephemeral.push(t);
        }
        if let Some(r) = hooks::receipts(c.s, room_id, c.user, c.since, c.upto)?
            .filter(|_| allows_type(&c.filter.ephemeral, "m.receipt"))
        {
            ephemeral.push(r);
        }
    }
    if !newly && events.is_empty() && state.is_empty() && ephemeral.is_empty() && account_data.is_empty() {
        return Ok(None);
    }
    let prev_batch = match events.first() {
        Some(first) => TopoToken { depth: first.meta.depth, stream: first.meta.stream_pos.saturating_sub(1) }.encode(),
        None => format!("s{upto}"),
    };
    let members_changed = events.iter().chain(&state).any(|e| e.pdu.kind == TimelineEventType::RoomMember);
    let formatted = |events: &[StoredEvent]| events.iter().map(|e| c.format(e)).collect::<Result<Vec<_>>>();
    let timeline = object([
        ("events", Value::Array(formatted(&events)?)),
        ("limited", Value::Bool(limited)),
        ("prev_batch", Value::String(prev_batch)),
    ]);
    let mut out = object([
        ("timeline", timeline),
        ("state", object([("events", Value::Array(formatted(&state)?))])),
        ("account_data", object([("events", Value::Array(account_data))])),
    ]);
    if !left {
        out["ephemeral"] = object([("events", Value::Array(ephemeral))]);
        let joined = Joined { record: &record, joined_at: m.stream_pos, ignored: c.ignored.clone() };
        let (mut unread, threads) = hooks::unread_counts(c.s, room_id, c.user, joined)?;
        if c.filter.unread_thread_notifications {
            out["unread_thread_notifications"] = threads;
        } else {
            // Without the filter flag, thread counts are folded into the room's (spec: "Receipts").
            for counts in threads.as_object().into_iter().flat_map(|m| m.values()) {
                for key in ["notification_count", "highlight_count"] {
                    let sum = unread[key].as_u64().unwrap_or(0) + counts[key].as_u64().unwrap_or(0);
                    unread[key] = json!(sum);
                }
            }
        }
        out["unread_notifications"] = unread;
        if newly || members_changed {
            out["summary"] = summary(c, room_id)?;
        }
    }
    Ok(Some(out))
}

/// Stripped state for an invite or a knock: the room's description plus the user's own event.
pub fn stripped_room(c: &Ctx<'_>, room_id: &RoomId) -> Result<Value> {
    let mut events = Vec::new();
    for kind in rooms::format::STRIPPED_STATE_TYPES {
        if let Some(ev) = rooms::current_state_event(c.s, room_id, &kind, "")? {
            events.push(stripped(&ev));
        }
    }
    if let Some(ev) = rooms::current_state_event(c.s, room_id, &StateEventType::RoomMember, c.user.as_str())? {
        events.push(stripped(&ev));
    }
    Ok(json!({ "events": events }))
}

/// The sender of the user's invite (to drop invites from ignored users).
pub fn inviter(c: &Ctx<'_>, room_id: &RoomId) -> Result<Option<String>> {
    Ok(rooms::current_state_event(c.s, room_id, &StateEventType::RoomMember, c.user.as_str())?
        .map(|e| e.pdu.sender.to_string()))
}

/// Group account data by room: `Map<room_id, [events]>`.
pub fn group_by_room(rows: Vec<(String, Value)>) -> Map<String, Value> {
    let mut out = Map::new();
    for (room, ev) in rows {
        if let Value::Array(list) = out.entry(room).or_insert_with(|| Value::Array(Vec::new())) {
            list.push(ev);
        }
    }
    out
}
