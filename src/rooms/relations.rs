//! Event relationships (spec: Client-Server API "Forming relationships between events",
//! "Event replacements", "Threading", "Reference relations"): children of an event, bundled
//! aggregations in `unsigned.m.relations`, `/relations` pagination and `/threads`.

use ruma::events::TimelineEventType;
use ruma::{EventId, RoomId, UserId};
use serde_json::{Map, Value, json};

use super::format::{Viewer, client_event_plain};
use super::{StoredEvent, load_by_short, membership, read, room, short};
use crate::error::{Error, Result};
use crate::services::Services;
use crate::storage::catalog::{RELATIONS, THREAD_ROOTS};
use crate::storage::codec::Counter;

/// A child relation: `(child short id, rel_type, child event type)`.
type Child = (u64, String, String);

fn children(s: &Services, parent_short: u64) -> Result<Vec<Child>> {
    Ok(s.db
        .scan_prefix(RELATIONS, &parent_short)?
        .into_iter()
        .map(|((_, child), v)| {
            let rel = v.get(0).and_then(Value::as_str).unwrap_or_default().to_owned();
            let kind = v.get(1).and_then(Value::as_str).unwrap_or_default().to_owned();
            (child, rel, kind)
        })
        .collect())
}

/// Children the viewer may see (not rejected, not from ignored users).
fn visible_children(
    s: &Services,
    parent: &StoredEvent,
    viewer: &UserId,
    rel: Option<&str>,
) -> Result<Vec<StoredEvent>> {
    let Some(parent_short) = short::event_get(&s.db, &parent.pdu.event_id)? else { return Ok(Vec::new()) };
    // Most events have no children: the relations table's last key under the parent, kept in
    // memory, says so; and look before reading the viewer's membership and ignore list.
    if s.db.last_key(RELATIONS, &parent_short)?.is_none() {
        return Ok(Vec::new());
    }
    let found = children(s, parent_short)?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let room_id = parent.pdu.room()?;
    let current = membership::membership_of(s, &room_id, viewer)?;
    let ignored = read::ignored_users(s, viewer)?;
    let mut out = Vec::new();
    for (child, rel_type, _) in found {
        if rel.is_some_and(|r| r != rel_type) {
            continue;
        }
        let Some(ev) = load_by_short(s, child)? else { continue };
        if ev.meta.rejected || ev.meta.soft_failed || ignored.iter().any(|u| u == ev.pdu.sender.as_str()) {
            continue;
        }
        if read::can_see(s, viewer, &ev, current.as_ref())? {
            out.push(ev);
        }
    }
    Ok(out)
}

/// A valid replacement: same sender, same type, not a state event, and itself not an edit's edit.
fn is_valid_edit(original: &StoredEvent, edit: &StoredEvent) -> bool {
    edit.pdu.sender == original.pdu.sender
        && edit.pdu.kind == original.pdu.kind
        && edit.pdu.state_key.is_none()
        && original.pdu.state_key.is_none()
        && edit.json.get("content").and_then(|c| c.get("m.new_content")).is_some()
}

/// `unsigned.m.relations` for an event (spec: "Server-side aggregation of relations"):
/// the latest `m.replace`, the `m.thread` summary, `m.reference` IDs.
pub fn bundle(s: &Services, ev: &StoredEvent, viewer: Option<Viewer<'_>>) -> Result<Option<Value>> {
    let Some(v) = viewer else { return Ok(None) };
    if ev.meta.redacted_by.is_some() {
        return Ok(None);
    }
    let children = visible_children(s, ev, v.user_id, None)?;
    if children.is_empty() {
        return Ok(None);
    }
    let rel_of = |c: &StoredEvent| {
        c.json
            .get("content")
            .and_then(|x| x.get("m.relates_to"))
            .and_then(|r| r.get("rel_type"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut out = Map::new();
    let edits: Vec<&StoredEvent> =
        children.iter().filter(|c| rel_of(c).as_deref() == Some("m.replace") && is_valid_edit(ev, c)).collect();
    if let Some(latest) = edits.iter().max_by_key(|c| (c.pdu.origin_server_ts, c.meta.event_id.clone())) {
        out.insert("m.replace".into(), client_event_plain(s, latest, Some(v))?);
    }
    let replies: Vec<&StoredEvent> = children.iter().filter(|c| rel_of(c).as_deref() == Some("m.thread")).collect();
    if let Some(latest) = replies.iter().max_by_key(|c| c.meta.stream_pos) {
        let participated = ev.pdu.sender == v.user_id || replies.iter().any(|r| r.pdu.sender == v.user_id);
        out.insert(
            "m.thread".into(),
            json!({ "latest_event": client_event_plain(s, latest, Some(v))?, "count": replies.len(), "current_user_participated": participated }),
        );
    }
    let refs: Vec<Value> = children
        .iter()
        .filter(|c| rel_of(c).as_deref() == Some("m.reference"))
        .map(|c| json!({ "event_id": c.meta.event_id }))
        .collect();
    if !refs.is_empty() {
        out.insert("m.reference".into(), json!({ "chunk": refs }));
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// What `/relations` asks for.
pub struct RelationsQuery<'a> {
    pub rel_type: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub limit: usize,
    pub backwards: bool,
    pub recurse: bool,
}

/// Maximum depth `recurse` follows (spec allows the server to choose; Synapse uses 3).
const MAX_RECURSION: usize = 3;

/// `(chunk, next_batch, recursion_depth)` for `GET /rooms/{roomId}/relations/{eventId}`.
pub fn page(
    s: &Services,
    room_id: &RoomId,
    parent_id: &EventId,
    viewer: &UserId,
    q: &RelationsQuery<'_>,
) -> Result<(Vec<StoredEvent>, Option<String>, Option<usize>)> {
    read::state_for(s, room_id, viewer)?;
    let not_found = || Error::not_found("Event not found");
    let parent = super::load(s, parent_id)?.ok_or_else(not_found)?;
    let current = membership::membership_of(s, room_id, viewer)?;
    if parent.pdu.room()? != *room_id || !read::can_see(s, viewer, &parent, current.as_ref())? {
        return Err(not_found());
    }
    let mut all = visible_children(s, &parent, viewer, q.rel_type)?;
    let mut depth = 1;
    if q.recurse {
        let mut frontier = all.clone();
        while depth < MAX_RECURSION && !frontier.is_empty() {
            let mut next = Vec::new();
            for child in &frontier {
                next.extend(visible_children(s, child, viewer, q.rel_type)?);
            }
            if next.is_empty() {
                break;
            }
            depth += 1;
            all.extend(next.iter().cloned());
            frontier = next;
        }
    }
    all.retain(|c| q.event_type.is_none_or(|t| c.pdu.kind == TimelineEventType::from(t)));
    all.sort_by_key(|c| c.meta.stream_pos);
    if q.backwards {
        all.reverse();
    }
    let parse = |t: &str| {
        t.strip_prefix('r').and_then(|n| n.parse::<u64>().ok()).ok_or_else(|| Error::invalid_param("Invalid token"))
    };
    let from = q.from.map(parse).transpose()?;
    let to = q.to.map(parse).transpose()?;
    let in_range = |pos: u64| {
        let after_from = from.is_none_or(|f| if q.backwards { pos < f } else { pos > f });
        let before_to = to.is_none_or(|t| if q.backwards { pos > t } else { pos < t });
        after_from && before_to
    };
    let candidates: Vec<StoredEvent> = all.into_iter().filter(|c| in_range(c.meta.stream_pos)).collect();
    let more = candidates.len() > q.limit;
    let chunk: Vec<StoredEvent> = candidates.into_iter().take(q.limit).collect();
    let next = if more { chunk.last().map(|c| format!("r{}", c.meta.stream_pos)) } else { None };
    Ok((chunk, next, q.recurse.then_some(depth)))
}

/// `(roots, next_batch)` for `GET /rooms/{roomId}/threads`: thread roots by latest activity.
pub fn threads(
    s: &Services,
    room_id: &RoomId,
    viewer: &UserId,
    participated_only: bool,
    from: Option<&str>,
    limit: usize,
) -> Result<(Vec<StoredEvent>, Option<String>)> {
    read::state_for(s, room_id, viewer)?;
    let record = room(s, room_id)?;
    let current = membership::membership_of(s, room_id, viewer)?;
    let before: u64 = match from {
        Some(t) => {
            t.strip_prefix('h').and_then(|n| n.parse().ok()).ok_or_else(|| Error::invalid_param("Invalid token"))?
        }
        None => u64::MAX,
    };
    let mut roots: Vec<(u64, u64)> =
        s.db.scan_prefix(THREAD_ROOTS, &record.shortroomid)?
            .into_iter()
            .map(|((_, root), Counter(latest))| (latest, root))
            .filter(|(latest, _)| *latest < before)
            .collect();
    roots.sort_by(|a, b| b.cmp(a));
    let mut chunk = Vec::new();
    let mut next = None;
    for (latest, root) in roots {
        let Some(ev) = load_by_short(s, root)? else { continue };
        if !read::can_see(s, viewer, &ev, current.as_ref())? {
            continue;
        }
        if participated_only {
            let replies = visible_children(s, &ev, viewer, Some("m.thread"))?;
            if ev.pdu.sender != viewer && !replies.iter().any(|r| r.pdu.sender == viewer) {
                continue;
            }
        }
        if chunk.len() == limit {
            next = Some(format!("h{}", latest + 1));
            break;
        }
        chunk.push(ev);
    }
    Ok((chunk, next))
}
