//! Sync filters (spec: "Filtering"): inline JSON or a stored filter ID, reduced to what
//! `/sync` applies.

use serde_json::Value;

use crate::rooms::read::EventFilter;

/// A room-event filter with its `limit` (timeline) or none (state, ephemeral, account data).
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub events: EventFilter,
    pub limit: Option<usize>,
}

/// Everything `/sync` takes from a filter.
#[derive(Debug, Clone, Default)]
pub struct SyncFilter {
    pub rooms: Option<Vec<String>>,
    pub not_rooms: Vec<String>,
    pub include_leave: bool,
    pub timeline: Section,
    pub state: Section,
    pub ephemeral: Section,
    pub room_account_data: Section,
    pub account_data: Section,
    pub presence: Section,
    /// `event_fields`: only these (dotted) fields of each event.
    pub event_fields: Option<Vec<String>>,
    /// `event_format: federation` returns PDUs as stored.
    pub federation_format: bool,
    /// `room.timeline.unread_thread_notifications`: per-thread counts instead of folding them in.
    pub unread_thread_notifications: bool,
}

/// Default timeline limit when the filter sets none (as Synapse).
pub const DEFAULT_TIMELINE_LIMIT: usize = 10;

fn section(v: Option<&Value>) -> Section {
    match v {
        Some(v) => Section {
            events: EventFilter::from_json(v),
            limit: v.get("limit").and_then(Value::as_u64).map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
        },
        None => Section::default(),
    }
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
}

impl SyncFilter {
    pub fn from_json(v: &Value) -> SyncFilter {
        let room = v.get("room");
        let get = |k: &str| room.and_then(|r| r.get(k));
        SyncFilter {
            rooms: strings(get("rooms")),
            not_rooms: strings(get("not_rooms")).unwrap_or_default(),
            include_leave: get("include_leave").and_then(Value::as_bool).unwrap_or(false),
            timeline: section(get("timeline")),
            state: section(get("state")),
            ephemeral: section(get("ephemeral")),
            room_account_data: section(get("account_data")),
            account_data: section(v.get("account_data")),
            presence: section(v.get("presence")),
            event_fields: strings(v.get("event_fields")),
            federation_format: v.get("event_format").and_then(Value::as_str) == Some("federation"),
            unread_thread_notifications: get("timeline")
                .and_then(|t| t.get("unread_thread_notifications"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }

    pub fn wants_room(&self, room_id: &str) -> bool {
        !self.not_rooms.iter().any(|r| r == room_id)
            && self.rooms.as_ref().is_none_or(|rs| rs.iter().any(|r| r == room_id))
    }

    pub fn timeline_limit(&self) -> usize {
        self.timeline.limit.unwrap_or(DEFAULT_TIMELINE_LIMIT).clamp(1, 1000)
    }

    /// Apply `event_fields` to a client event.
    pub fn project(&self, event: Value) -> Value {
        let Some(fields) = &self.event_fields else { return event };
        let mut out = serde_json::Map::new();
        for field in fields {
            let path: Vec<&str> = field.split('.').collect();
            if let Some(v) = path.iter().try_fold(&event, |cur, key| cur.get(*key)) {
                insert_path(&mut out, &path, v.clone());
            }
        }
        Value::Object(out)
    }
}

fn insert_path(out: &mut serde_json::Map<String, Value>, path: &[&str], v: Value) {
    match path {
        [] => {}
        [last] => {
            out.insert((*last).to_owned(), v);
        }
        [first, rest @ ..] => {
            let entry = out.entry((*first).to_owned()).or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(m) = entry {
                insert_path(m, rest, v);
            }
        }
    }
}

/// Whether a section filter lets an event type through (for ephemeral, account data, presence).
pub fn allows_type(section: &Section, kind: &str) -> bool {
    let f = &section.events;
    let matches = |p: &String| p.strip_suffix('*').map_or(p == kind, |prefix| kind.starts_with(prefix));
    !f.not_types.iter().any(matches) && f.types.as_ref().is_none_or(|t| t.iter().any(matches))
}

/// Stored filters parsed once, by (user, filter ID): a stored filter never changes (its ID is
/// random and only ever written when the filter is created).
pub type FilterCache = crate::cache::BoundedCache<(ruma::OwnedUserId, String), std::sync::Arc<SyncFilter>>;

/// The user's stored filter `filter_id` (spec: `GET /user/{userId}/filter/{filterId}`), parsed.
pub fn stored(
    s: &crate::services::Services,
    user: &ruma::UserId,
    filter_id: &str,
) -> crate::error::Result<std::sync::Arc<SyncFilter>> {
    let key = (user.to_owned(), filter_id.to_owned());
    if let Some(found) = s.sync_filters.get(&key) {
        return Ok(found);
    }
    let stored = crate::users::account_data::get_filter(&s.db, user, filter_id)?;
    let parsed = std::sync::Arc::new(SyncFilter::from_json(&stored));
    s.sync_filters.insert(key, parsed.clone());
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_parse_and_apply() {
        let f = SyncFilter::from_json(&json!({
            "room": { "rooms": ["!a:x"], "timeline": { "limit": 5, "types": ["m.room.*"] }, "include_leave": true },
            "presence": { "not_types": ["*"] },
            "event_fields": ["type", "content.body"]
        }));
        assert!(f.wants_room("!a:x") && !f.wants_room("!b:x"));
        assert_eq!(f.timeline_limit(), 5);
        assert!(f.include_leave);
        assert!(!allows_type(&f.presence, "m.presence"));
        let projected = f.project(
            json!({ "type": "m.room.message", "content": { "body": "hi", "msgtype": "m.text" }, "sender": "@a:x" }),
        );
        assert_eq!(projected, json!({ "type": "m.room.message", "content": { "body": "hi" } }));
    }
}
