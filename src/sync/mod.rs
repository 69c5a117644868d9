//! `/sync` (spec: "Syncing"): everything a user may see that changed between two positions of
//! the global stream, and long-polling on the stream counter.
//!
//! Tokens are `s<position>`. A response covers `(since, upto]` where `upto` is the stream's
//! *committed* position when it was computed, so a write still in flight at that moment (an
//! allocated, lower position) is never skipped: it lands in the next response.

pub mod filter;
pub mod hooks;
pub mod rooms;
pub mod wake;

use std::sync::Arc;
use std::time::Duration;

use ruma::events::GlobalAccountDataEventType;
use ruma::events::room::member::MembershipState;
use ruma::{OwnedRoomId, OwnedUserId, UserId};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::rooms::read::ignored_users;
use crate::rooms::remote_invites;
use crate::services::{Services, State};
use crate::storage::Storage;
use crate::storage::catalog::{ACCOUNT_DATA, ACCOUNT_DATA_CHANGES, USER_MEMBERSHIPS};
use crate::storage::records::MembershipRecord;
use filter::{SyncFilter, allows_type};
use rooms::Ctx;

/// Counter of long-poll wake-ups (`/sync` and WebSocket), on `/metrics`.
pub const WAKEUPS: &str = "trellis_sync_wakeups_total";

/// Longest a long-poll waits, whatever the client asks.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// A sync token: `s<pos>`, or `s<pos>_t<to-device pos>` when the device's to-device inbox was
/// paged and has undelivered messages at or below `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncToken {
    pub pos: u64,
    pub to_device: u64,
}

impl SyncToken {
    pub fn encode(self) -> String {
        if self.to_device >= self.pos { format!("s{}", self.pos) } else { format!("s{}_t{}", self.pos, self.to_device) }
    }

    fn parse(token: &str) -> Option<SyncToken> {
        let rest = token.strip_prefix('s').unwrap_or(token);
        let (pos, td) = match rest.split_once("_t") {
            Some((p, t)) => (p.parse().ok()?, Some(t.parse().ok()?)),
            None => (rest.parse().ok()?, None),
        };
        Some(SyncToken { pos, to_device: td.unwrap_or(pos).min(pos) })
    }
}

/// A parsed `/sync` request.
pub struct SyncRequest {
    pub since: Option<SyncToken>,
    pub full_state: bool,
    pub filter: SyncFilter,
    pub timeout: Duration,
    pub set_presence: Option<String>,
}

/// Parse a sync token; `M_INVALID_PARAM` for garbage or tokens from the future.
pub fn parse_token(s: &Services, token: &str) -> Result<SyncToken> {
    let t = SyncToken::parse(token).ok_or_else(|| Error::invalid_param(format!("Invalid sync token {token:?}")))?;
    if t.pos > s.db.stream().committed() {
        return Err(Error::invalid_param(format!("Sync token {token:?} is from the future")));
    }
    Ok(t)
}

/// Account data changes: (global events, `(room_id, event)` pairs).
type AccountDataChanges = (Vec<Value>, Vec<(String, Value)>);

/// Account data changed in `(since, upto]`.
fn account_data(s: &Services, user: &UserId, since: u64, upto: u64) -> Result<AccountDataChanges> {
    if since > 0 && s.db.latest_position(ACCOUNT_DATA_CHANGES, user)? <= since {
        return Ok((Vec::new(), Vec::new()));
    }
    let rows = s.db.scan_from(ACCOUNT_DATA_CHANGES, user, &(user, since.saturating_add(1)), false, usize::MAX)?;
    let (mut global, mut per_room) = (Vec::new(), Vec::new());
    for ((_, pos), change) in rows {
        if pos > upto {
            break;
        }
        let Some(record) = s.db.get(ACCOUNT_DATA, &(user, change.room_id.as_deref(), &change.data_type))? else {
            continue;
        };
        let event = json!({ "type": change.data_type, "content": record.content });
        match change.room_id {
            None => global.push(event),
            Some(room_id) => per_room.push((room_id.into(), event)),
        }
    }
    // The push rules as they are served (server defaults refreshed), and in every initial sync
    // even if the user never changed one, as Synapse sends them.
    let push_rules = GlobalAccountDataEventType::PushRules.to_string();
    let stored = global.iter().position(|e| e["type"] == push_rules.as_str());
    if stored.is_some() || since == 0 {
        let event = json!({ "type": push_rules, "content": { "global": *crate::push::rules::ruleset(&s.db, user)? } });
        match stored {
            Some(i) => global[i] = event,
            None => global.push(event),
        }
    }
    Ok((global, per_room))
}

/// A row of `user_memberships`: `((user, room), record)`.
type MembershipRow = ((OwnedUserId, OwnedRoomId), MembershipRecord);

/// The user's rows of `user_memberships` (every room they are or were in), kept in memory while
/// they do not change.
fn rooms_of(db: &Storage, user: &UserId) -> Result<Arc<Vec<MembershipRow>>> {
    db.derived(USER_MEMBERSHIPS, user, "rooms", || Ok(Arc::new(db.scan_prefix(USER_MEMBERSHIPS, user)?)))
}

/// A JSON object of `fields`, moved in (`json!` copies every value it is given, which for the
/// sections of a sync response is most of the work of building it).
pub(crate) fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// One sync response for `(since, upto]` and whether it holds anything new.
pub fn compute(s: &Services, user: &UserId, device: &str, req: &SyncRequest, upto: u64) -> Result<(Value, bool)> {
    let since = req.since.map_or(0, |t| t.pos);
    let to_device_since = req.since.map_or(0, |t| t.to_device);
    let c = Ctx {
        s,
        user,
        device,
        since,
        upto,
        full_state: req.full_state,
        filter: &req.filter,
        ignored: ignored_users(s, user)?,
    };
    let (global_data, room_data) = account_data(s, user, since, upto)?;
    let global_data: Vec<Value> = global_data
        .into_iter()
        .filter(|e| allows_type(&req.filter.account_data, e["type"].as_str().unwrap_or("")))
        .collect();
    let mut room_data = rooms::group_by_room(
        room_data
            .into_iter()
            .filter(|(_, e)| allows_type(&req.filter.room_account_data, e["type"].as_str().unwrap_or("")))
            .collect(),
    );

    let (mut join, mut invite, mut leave, mut knock) = (Map::new(), Map::new(), Map::new(), Map::new());
    let memberships = rooms_of(&s.db, user)?;
    for ((_, room_id), m) in memberships.iter() {
        let (room, room_id) = (room_id.to_string(), room_id.clone());
        if !req.filter.wants_room(&room) {
            continue;
        }
        let changed = since == 0 || m.stream_pos > since;
        let mut data = || match room_data.remove(&room) {
            Some(Value::Array(events)) => events,
            _ => Vec::new(),
        };
        match m.membership {
            MembershipState::Join => {
                if let Some(section) = rooms::room(&c, &room_id, m, data(), false)? {
                    join.insert(room, section);
                }
            }
            MembershipState::Invite if changed && m.stream_pos <= upto => {
                let remote = remote_invites::behind(s, user, &room_id, m)?;
                let inviter = match &remote {
                    Some(r) => remote_invites::inviter(r),
                    None => rooms::inviter(&c, &room_id)?,
                };
                if inviter.is_some_and(|sender| c.ignored.contains(&sender)) {
                    continue;
                }
                let state = match &remote {
                    Some(r) => remote_invites::invite_state(r),
                    None => rooms::stripped_room(&c, &room_id)?,
                };
                invite.insert(room.clone(), json!({ "invite_state": state }));
            }
            MembershipState::Knock if changed && m.stream_pos <= upto => {
                let state = match remote_invites::behind(s, user, &room_id, m)? {
                    Some(r) => remote_invites::knock_state(&r),
                    None => rooms::stripped_room(&c, &room_id)?,
                };
                knock.insert(room.clone(), json!({ "knock_state": state }));
            }
            MembershipState::Leave | MembershipState::Ban
                if (since > 0 && m.stream_pos > since) || (since == 0 && req.filter.include_leave) =>
            {
                if crate::rooms::membership::forgotten(s, &room_id, user, m)? {
                    continue;
                }
                if let Some(r) = remote_invites::behind(s, user, &room_id, m)? {
                    leave.extend(remote_invites::leave_section(&room_id, &r).map(|v| (room, v)));
                    continue;
                }
                if let Some(section) = rooms::room(&c, &room_id, m, data(), true)? {
                    leave.insert(room, section);
                }
            }
            _ => {}
        }
    }

    let presence: Vec<Value> = hooks::presence(s, user, since, upto)?
        .into_iter()
        .filter(|e| {
            allows_type(&req.filter.presence, "m.presence")
                && !c.ignored.iter().any(|u| Some(u.as_str()) == e["sender"].as_str())
        })
        .collect();
    let device_id: &ruma::DeviceId = device.into();
    let (to_device, to_device_reached) = hooks::to_device(s, user, device_id, to_device_since, upto)?;
    let (changed, left) =
        if since > 0 { hooks::device_lists(s, user, since, upto, &memberships)? } else { (Vec::new(), Vec::new()) };
    let has_data = !(join.is_empty()
        && invite.is_empty()
        && leave.is_empty()
        && knock.is_empty()
        && global_data.is_empty()
        && presence.is_empty()
        && to_device.is_empty()
        && to_device_reached >= upto
        && changed.is_empty()
        && left.is_empty());
    let events = |events: Vec<Value>| object([("events", Value::Array(events))]);
    let rooms = [("join", join), ("invite", invite), ("leave", leave), ("knock", knock)];
    let response = object([
        ("next_batch", json!(SyncToken { pos: upto, to_device: to_device_reached }.encode())),
        ("rooms", object(rooms.map(|(k, v)| (k, Value::Object(v))))),
        ("account_data", events(global_data)),
        ("presence", events(presence)),
        ("to_device", events(to_device)),
        ("device_lists", json!({ "changed": changed, "left": left })),
        ("device_one_time_keys_count", json!(hooks::one_time_key_counts(s, user, device_id)?)),
        ("device_unused_fallback_key_types", json!(hooks::unused_fallback_key_types(s, user, device_id)?)),
    ]);
    Ok((response, has_data))
}

/// `/sync` with long-polling: compute now; if nothing is new, wait for a change this user would
/// see (or the timeout) and compute again. Wake-ups come from the stream's notifier
/// ([`wake`] lists the keys), never from writes the user cannot see.
pub async fn sync(s: &State, user: &UserId, device: &str, req: SyncRequest) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + req.timeout.min(MAX_TIMEOUT);
    let _active = crate::ephemeral::sync_activity(s, user, req.set_presence.as_deref());
    if let Some(since) = req.since {
        hooks::ack_to_device(s, user, device.into(), since.to_device)?;
    }
    let mut waiter = s.db.stream().waiter();
    loop {
        // Keys first, then the position: a change committed after this wakes the wait below.
        // Re-read each round, as the user's rooms may have changed.
        waiter.watch(wake::waiter_keys(&s.db, user, device)?);
        let upto = s.db.stream().committed();
        let timed_out = tokio::time::Instant::now() >= deadline;
        // A token at the stream's head (and no to-device page pending) has nothing to catch up
        // on: wait straight away instead of computing an empty response first.
        let at_head = req.since.is_some_and(|t| t.pos >= upto && t.to_device >= t.pos) && !req.full_state;
        if timed_out || !at_head {
            let (response, has_data) = compute(s, user, device, &req, upto)?;
            if has_data || req.since.is_none() || req.full_state || timed_out {
                return Ok(response);
            }
        }
        tokio::select! {
            () = waiter.notified() => metrics::counter!(WAKEUPS).increment(1),
            _ = tokio::time::sleep_until(deadline) => {}
        }
        // Let the tasks that are ready run first (under load, writes that finish meanwhile then
        // go into this response instead of each waking this waiter again).
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::SyncToken;

    #[test]
    fn tokens_round_trip() {
        let plain = SyncToken { pos: 42, to_device: 42 };
        assert_eq!(plain.encode(), "s42");
        assert_eq!(SyncToken::parse("s42"), Some(plain));
        assert_eq!(SyncToken::parse("42"), Some(plain));
        let paged = SyncToken { pos: 42, to_device: 7 };
        assert_eq!(paged.encode(), "s42_t7");
        assert_eq!(SyncToken::parse("s42_t7"), Some(paged));
        assert_eq!(SyncToken::parse("s42_t99"), Some(plain), "to-device never ahead of the stream");
        assert_eq!(SyncToken::parse("garbage"), None);
        assert_eq!(SyncToken::parse("s1_tx"), None);
    }
}
