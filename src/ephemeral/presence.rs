//! Presence (spec: Client-Server API "Presence"): each user's state, status message and last
//! activity, stored in `presence` with a `presence_changes` row at its stream position, and
//! delivered to the users who share a room with them. Activity is in [`super::activity`].

use std::collections::BTreeSet;
use std::time::Duration;

use ruma::presence::PresenceState;
use ruma::{OwnedUserId, UserId};
use serde_json::{Value, json};

use super::activity::{ensure_swept, start_idle};
use super::lock;
use crate::error::{Error, Result};
use crate::rooms::membership::shared_users;
use crate::services::Services;
use crate::storage::Storage;
use crate::storage::catalog::{PRESENCE, PRESENCE_CHANGES, USERS};
use crate::storage::records::PresenceRecord;
use crate::users::now_ms;

/// Whether `state` is one the spec defines (`online`, `unavailable`, `offline`).
pub fn is_known(state: &PresenceState) -> bool {
    matches!(state, PresenceState::Online | PresenceState::Unavailable | PresenceState::Offline)
}

/// Write the user's record at a new stream position (replacing its `presence_changes` row).
pub(crate) fn write(
    db: &Storage,
    user: &UserId,
    mut record: PresenceRecord,
    old: Option<&PresenceRecord>,
) -> Result<()> {
    let pos = db.stream().allocate().waking(crate::sync::wake::co_members(db, user)?);
    let mut batch = db.batch();
    if let Some(old) = old {
        batch.delete(PRESENCE_CHANGES, &((), old.stream_pos))?;
    }
    record.stream_pos = pos.pos();
    batch.put(PRESENCE, user, &record)?;
    batch.put(PRESENCE_CHANGES, &((), pos.pos()), &user.to_owned())?;
    batch.stream_position(&pos)?;
    batch.commit()
}

/// Activity moves the user to `state` (`online` or `unavailable`) unless they are in it already,
/// or chose `unavailable` themselves and this sync did not name a state (`requested`).
pub(crate) fn become_active(
    db: &Storage,
    user: &UserId,
    state: PresenceState,
    requested: bool,
    now: u64,
) -> Result<()> {
    let old = db.get(PRESENCE, user)?;
    if let Some(o) = &old {
        let chosen_away = o.explicit && o.presence == PresenceState::Unavailable && !requested;
        if o.presence == state || chosen_away {
            return Ok(());
        }
    }
    let status_msg = old.as_ref().and_then(|o| o.status_msg.clone());
    let record = PresenceRecord { presence: state, status_msg, last_active_ts: now, stream_pos: 0, explicit: false };
    write(db, user, record, old.as_ref())
}

/// The idle timer expired: offline, keeping the status message.
pub(crate) fn become_offline(db: &Storage, user: &UserId, last_active: u64) -> Result<()> {
    let Some(old) = db.get(PRESENCE, user)? else { return Ok(()) };
    if old.presence == PresenceState::Offline {
        return Ok(());
    }
    let last_active_ts = old.last_active_ts.max(last_active);
    let record = PresenceRecord { presence: PresenceState::Offline, last_active_ts, explicit: false, ..old.clone() };
    write(db, user, record, Some(&old))
}

/// `PUT /presence/{userId}/status` for the user themselves: sets the state and status message
/// and counts as activity (`M_INVALID_PARAM` for a state the spec does not define). With
/// presence disabled it is accepted and ignored. Without a running sync the user goes offline
/// after the idle timeout.
pub fn set(s: &Services, user: &UserId, state: PresenceState, status_msg: Option<String>) -> Result<()> {
    if !is_known(&state) {
        return Err(Error::invalid_param("presence must be online, unavailable or offline"));
    }
    if !s.config.presence.enabled {
        return Ok(());
    }
    ensure_swept(s);
    let users = &s.ephemeral.activity.users;
    let mut map = lock(users);
    let now = now_ms();
    let old = s.db.get(PRESENCE, user)?;
    let record = PresenceRecord { presence: state, status_msg, last_active_ts: now, stream_pos: 0, explicit: true };
    write(&s.db, user, record, old.as_ref())?;
    let live = map.entry(user.to_owned()).or_default();
    live.last_active = now;
    if live.guards == 0 {
        let idle = Duration::from_millis(s.config.presence.idle_timeout_ms);
        start_idle(users, live, &s.db, user, idle);
    }
    Ok(())
}

/// `GET /presence/{userId}/status`: `M_NOT_FOUND` for an unknown user, `M_FORBIDDEN` unless
/// `viewer` is the user or shares a room with them (as Synapse). A user who never set a
/// presence (or with presence disabled) is `offline`.
pub fn get(s: &Services, viewer: &UserId, user: &UserId) -> Result<Value> {
    // A remote user's presence is what federation told us, for users sharing a room.
    let shares = viewer == user || shared_users(s, viewer)?.contains(user);
    let known = if s.is_local(user) { s.db.get(USERS, user)?.is_some() } else { shares };
    if !known {
        return Err(Error::not_found(format!("Unknown user {user}")));
    }
    if !shares {
        return Err(Error::forbidden("You are not allowed to see their presence"));
    }
    if !s.config.presence.enabled {
        return Ok(json!({ "presence": PresenceState::Offline }));
    }
    ensure_swept(s);
    Ok(match s.db.get(PRESENCE, user)? {
        Some(record) => content(s, user, &record),
        None => json!({ "presence": PresenceState::Offline }),
    })
}

/// The `m.presence` content: `last_active_ago` (0 while a sync is running), `currently_active`
/// for online users (syncing, or active within the idle timeout), `status_msg` if set.
pub(crate) fn content(s: &Services, user: &UserId, record: &PresenceRecord) -> Value {
    let now = now_ms();
    let (guards, live_active) =
        lock(&s.ephemeral.activity.users).get(user).map_or((0, 0), |l| (l.guards, l.last_active));
    let last_active_ago = if guards > 0 { 0 } else { now.saturating_sub(record.last_active_ts.max(live_active)) };
    let mut c = json!({ "presence": record.presence, "last_active_ago": last_active_ago });
    if record.presence == PresenceState::Online {
        c["currently_active"] = json!(guards > 0 || last_active_ago < s.config.presence.idle_timeout_ms);
    }
    if let Some(msg) = &record.status_msg {
        c["status_msg"] = json!(msg);
    }
    c
}

/// `m.presence` events of the users who share a room with `viewer` (the viewer included) whose
/// presence changed in `(since, upto]`; for `since == 0` everyone's current presence except
/// offline users without a status message. Empty when presence is disabled.
pub fn presence_since(s: &Services, viewer: &UserId, since: u64, upto: u64) -> Result<Vec<Value>> {
    if !s.config.presence.enabled {
        return Ok(Vec::new());
    }
    ensure_swept(s);
    let mut users: BTreeSet<OwnedUserId> = BTreeSet::new();
    if since == 0 {
        users = shared_users(s, viewer)?;
    } else if s.db.latest_position(PRESENCE_CHANGES, &())? > since {
        let mut changed = Vec::new();
        for (((), pos), user) in s.db.scan_from(PRESENCE_CHANGES, &(), &((), since + 1), false, usize::MAX)? {
            if pos > upto {
                break;
            }
            changed.push(user);
        }
        // Only when someone's presence moved is the (room-member scanning) shared set needed.
        if !changed.is_empty() {
            let shared = shared_users(s, viewer)?;
            users.extend(changed.into_iter().filter(|u| shared.contains(u)));
        }
    }
    let mut events = Vec::new();
    for user in users {
        let Some(record) = s.db.get(PRESENCE, &user)? else { continue };
        let quiet = since == 0 && record.presence == PresenceState::Offline && record.status_msg.is_none();
        if quiet || record.stream_pos <= since || record.stream_pos > upto {
            continue;
        }
        events.push(json!({ "type": "m.presence", "sender": user, "content": content(s, &user, &record) }));
    }
    Ok(events)
}
