//! Presence from activity (spec: Client-Server API "Presence", "Last active ago"): while any
//! [`PresenceGuard`] of a user is alive (one per `/sync` request or WebSocket), they are online
//! (or `unavailable` if that is what the sync asked for); when the last guard drops, a timer for
//! `presence.idle_timeout_ms` starts, after which they go offline. New activity cancels it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ruma::presence::PresenceState;
use ruma::{OwnedUserId, UserId};
use tokio::task::AbortHandle;

use super::presence;
use super::{after, lock};
use crate::services::Services;
use crate::storage::Storage;
use crate::storage::catalog::PRESENCE;
use crate::users::now_ms;

pub(crate) type Users = Arc<Mutex<HashMap<OwnedUserId, Live>>>;

/// Live activity of the users seen since start-up.
#[derive(Default)]
pub struct Activity {
    pub(crate) users: Users,
    /// Users stored as online when the server (re)started get an idle timer once, on first use.
    swept: OnceLock<()>,
}

/// One user's activity.
#[derive(Default)]
pub(crate) struct Live {
    /// Alive [`PresenceGuard`]s.
    pub(crate) guards: usize,
    /// Bumped by every activity, so an idle timer that lost a race does nothing.
    generation: u64,
    timer: Option<AbortHandle>,
    /// Last activity, ms since the epoch.
    pub(crate) last_active: u64,
}

/// Keeps its user active until dropped. `Send + 'static`: hold it for the whole request.
#[must_use = "the user stays online only while the guard is alive"]
pub struct PresenceGuard {
    inner: Option<GuardInner>,
}

struct GuardInner {
    users: Users,
    db: Storage,
    user: OwnedUserId,
    idle: Duration,
}

impl PresenceGuard {
    /// A guard that keeps nobody online (presence disabled, or `set_presence=offline`).
    pub fn none() -> PresenceGuard {
        PresenceGuard { inner: None }
    }
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        let Some(g) = self.inner.take() else { return };
        let mut users = lock(&g.users);
        let Some(live) = users.get_mut(&g.user) else { return };
        live.guards = live.guards.saturating_sub(1);
        live.last_active = now_ms();
        if live.guards == 0 {
            start_idle(&g.users, live, &g.db, &g.user, g.idle);
        }
    }
}

/// A `/sync` or WebSocket of `user` starts: they are active until the returned guard drops.
///
/// `set_presence` is the sync's parameter: `offline` does not mark the user online (the guard
/// does nothing), `unavailable` marks them unavailable, anything else online, except that an
/// `unavailable` the user chose with `PUT /presence` stays until a sync says otherwise.
/// It may write the presence record (a synchronous storage write).
pub fn sync_activity(s: &Services, user: &UserId, set_presence: Option<&str>) -> PresenceGuard {
    let cfg = &s.config.presence;
    let requested = set_presence.map(PresenceState::from);
    if !cfg.enabled || requested == Some(PresenceState::Offline) {
        return PresenceGuard::none();
    }
    ensure_swept(s);
    let state = match requested {
        Some(PresenceState::Unavailable) => PresenceState::Unavailable,
        _ => PresenceState::Online,
    };
    let users = &s.ephemeral.activity.users;
    let mut map = lock(users);
    let live = map.entry(user.to_owned()).or_default();
    live.guards += 1;
    live.generation += 1;
    if let Some(t) = live.timer.take() {
        t.abort();
    }
    live.last_active = now_ms();
    if let Err(e) = presence::become_active(&s.db, user, state, set_presence.is_some(), live.last_active) {
        tracing::error!(%user, "presence: {e}");
    }
    let idle = Duration::from_millis(cfg.idle_timeout_ms);
    PresenceGuard { inner: Some(GuardInner { users: users.clone(), db: s.db.clone(), user: user.to_owned(), idle }) }
}

/// Start (or restart) the idle timer of a user without guards.
pub(crate) fn start_idle(users: &Users, live: &mut Live, db: &Storage, user: &UserId, idle: Duration) {
    live.generation += 1;
    if let Some(t) = live.timer.take() {
        t.abort();
    }
    let (generation, shared, db, user) = (live.generation, users.clone(), db.clone(), user.to_owned());
    live.timer = after(idle, move || go_offline(&shared, &db, &user, generation));
}

/// The idle timer fired: offline, unless the user came back meanwhile.
fn go_offline(users: &Users, db: &Storage, user: &UserId, generation: u64) {
    let mut map = lock(users);
    let Some(live) = map.get(user) else { return };
    if live.guards > 0 || live.generation != generation {
        return;
    }
    if let Err(e) = presence::become_offline(db, user, live.last_active) {
        tracing::error!(%user, "presence: going offline: {e}");
    }
    map.remove(user);
}

/// Once per process: users whose stored presence is not offline but who have not been seen
/// since start-up get an idle timer for what is left of their idle time.
pub(crate) fn ensure_swept(s: &Services) {
    s.ephemeral.activity.swept.get_or_init(|| {
        let rows = match s.db.scan_all(PRESENCE) {
            Ok(rows) => rows,
            Err(e) => return tracing::error!("presence: reading stored presence: {e}"),
        };
        let idle = s.config.presence.idle_timeout_ms;
        let now = now_ms();
        let users = &s.ephemeral.activity.users;
        let mut map = lock(users);
        for (user, record) in rows {
            if record.presence == PresenceState::Offline || map.contains_key(&user) {
                continue;
            }
            let left = idle.saturating_sub(now.saturating_sub(record.last_active_ts));
            let live = map.entry(user.clone()).or_default();
            live.last_active = record.last_active_ts;
            start_idle(users, live, &s.db, &user, Duration::from_millis(left));
        }
    });
}
