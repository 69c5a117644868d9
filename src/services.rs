//! The shared state every handler receives: configuration, storage and the services built on it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ruma::{OwnedDeviceId, OwnedServerName, OwnedUserId, UserId};

use crate::cache::{BoundedCache, Caches};
use crate::config::{Config, ConfigError};
use crate::error::{Error, Result};
use crate::locks::{AsyncKeyedGuard, AsyncKeyedLock};
use crate::ratelimit::RateLimiter;
use crate::server_keys::{self, SigningKey};
use crate::storage::Storage;
use crate::uiaa::Uiaa;
use crate::users::jwt::JwtVerifier;
use crate::users::tokens::Lifetimes;
use crate::users::{devices, now_ms};

pub type State = Arc<Services>;

pub struct Services {
    pub config: Config,
    pub server_name: OwnedServerName,
    pub db: Storage,
    pub uiaa: Uiaa,
    pub rate_limiter: RateLimiter,
    pub jwt: Option<JwtVerifier>,
    pub signing_key: Arc<SigningKey>,
    /// The federation transport: outbound client, server discovery, remote keys, notary.
    pub federation: crate::federation::Federation,
    /// Sending to other servers: the per-destination queue (`federation/sender`).
    pub sender: crate::federation::sender::Sender,
    /// The federation listener's bound port, once bound (for `/.well-known/matrix/server`).
    pub federation_port: std::sync::OnceLock<u16>,
    /// Nonces handed out by `GET /_synapse/admin/v1/register`, with when they were issued.
    pub registration_nonces: Mutex<HashMap<String, Instant>>,
    /// `http://host:port` of the client listener once bound (for `/.well-known/matrix/client`).
    pub client_base_url: std::sync::OnceLock<String>,
    /// Typing, presence activity and other live in-memory state.
    pub ephemeral: crate::ephemeral::Ephemeral,
    /// Back-fills in progress and recently futile, per room (`rooms/ingest/backfill.rs`).
    pub backfills: crate::rooms::ingest::backfill::Backfills,
    /// Recently loaded events.
    pub event_cache: crate::rooms::EventCache,
    /// Recently loaded room states.
    pub state_cache: crate::rooms::state::StateCache,
    /// Stored `/sync` filters, parsed (`sync/filter.rs`).
    pub sync_filters: crate::sync::filter::FilterCache,
    /// Access tokens recently resolved (`users/tokens.rs`).
    pub auth_cache: crate::users::tokens::AuthCache,
    /// History visibility and membership per (state group, viewer).
    pub visibility_cache: crate::rooms::read::VisibilityCache,
    /// One lock per room: appends to a room are serialised, so a local room never forks. An
    /// async lock: a request waiting for a busy room parks its task, not a runtime worker.
    room_locks: AsyncKeyedLock<ruma::OwnedRoomId>,
    /// When each device's last-seen record was last written (throttles those writes).
    /// When each device's last-seen fields were last written (forgotten past 100,000 devices:
    /// they are then written once more).
    last_seen_written: BoundedCache<(OwnedUserId, OwnedDeviceId), LastSeen>,
    /// Every cache above and in the services, for `/metrics`.
    pub caches: Caches,
}

/// A device's last-seen IP as last written, and when.
type LastSeen = (Option<IpAddr>, Instant);

/// Why start-up failed.
#[derive(Debug)]
pub enum StartError {
    Config(ConfigError),
    Storage(Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "invalid configuration: {e}"),
            StartError::Storage(e) => write!(f, "{e}"),
        }
    }
}

/// Rewrite a device's last-seen record at most this often (or when its IP changes).
const LAST_SEEN_EVERY: Duration = Duration::from_secs(10);

impl Services {
    pub fn new(config: Config) -> Result<State, StartError> {
        let server_name = OwnedServerName::try_from(config.server_name.as_str())
            .map_err(|_| StartError::Config(ConfigError("invalid value for key \"server_name\"".into())))?;
        let jwt = JwtVerifier::from_config(&config.jwt).map_err(StartError::Config)?;
        let caches = Caches::new(&config.cache.entries);
        let db = Storage::open_with(&config.database.path, config.database.cache_mb, &caches)
            .map_err(StartError::Storage)?;
        let signing_key = Arc::new(server_keys::load_or_generate(&db).map_err(StartError::Storage)?);
        let old_keys = server_keys::old_keys(&db).map_err(StartError::Storage)?;
        let federation = crate::federation::Federation::new(
            &config.federation,
            server_name.clone(),
            signing_key.clone(),
            old_keys,
            db.clone(),
            &caches,
        )
        .map_err(StartError::Config)?;
        let sender_db = db.clone();
        let room_servers = caches.cache("room_servers");
        let state_cache = caches.cache("states");
        let visibility_cache = caches.cache("visibility");
        let auth_cache = caches.cache("access_tokens");
        let sync_filters = caches.cache("sync_filters");
        let event_cache = crate::rooms::EventCache::new(&caches);
        let ephemeral = crate::ephemeral::Ephemeral::new(&caches);
        let last_seen_written = caches.cache("device_last_seen");
        Ok(Arc::new_cyclic(|weak| Services {
            sender: crate::federation::sender::Sender::new(
                sender_db,
                server_name.clone(),
                config.federation.enabled,
                weak.clone(),
                room_servers,
            ),
            rate_limiter: RateLimiter::new(&config.rate_limits),
            server_name,
            db,
            uiaa: Uiaa::default(),
            jwt,
            signing_key,
            federation,
            federation_port: std::sync::OnceLock::new(),
            registration_nonces: Mutex::new(HashMap::new()),
            client_base_url: std::sync::OnceLock::new(),
            state_cache,
            visibility_cache,
            auth_cache,
            sync_filters,
            event_cache,
            backfills: Default::default(),
            ephemeral,
            room_locks: AsyncKeyedLock::default(),
            last_seen_written,
            caches,
            config,
        }))
    }

    /// Wait for and hold the append lock of a room (until the guard is dropped). Async code
    /// takes it, then runs the synchronous build/authorize/append under the guard; the guard
    /// is `Send`, so the task holding it may move between workers.
    pub async fn room_lock(&self, room_id: &ruma::RoomId) -> AsyncKeyedGuard<'_, ruma::OwnedRoomId> {
        self.room_locks.lock(room_id).await
    }

    /// A local user ID from a localpart or a full `@local:server` ID.
    pub fn resolve_user(&self, user: &str) -> Result<OwnedUserId> {
        let parsed = if user.starts_with('@') {
            UserId::parse(user)
        } else {
            UserId::parse_with_server_name(user.to_lowercase(), &self.server_name)
        };
        parsed.map_err(|_| Error::invalid_param(format!("Invalid user ID: {user}")))
    }

    pub fn is_local(&self, user_id: &UserId) -> bool {
        user_id.server_name() == self.server_name
    }

    pub fn token_lifetimes(&self) -> Lifetimes {
        Lifetimes {
            refreshable_ms: self.config.login.refreshable_access_token_lifetime_ms,
            plain_ms: self.config.login.access_token_lifetime_ms,
        }
    }

    /// Note that a device made a request (spec: devices' `last_seen_ip`, `last_seen_ts`).
    pub async fn device_seen(&self, user_id: &UserId, device_id: &OwnedDeviceId, ip: Option<IpAddr>) -> Result<()> {
        let key = (user_id.to_owned(), device_id.clone());
        if let Some((last_ip, at)) = self.last_seen_written.get(&key)
            && last_ip == ip
            && at.elapsed() < LAST_SEEN_EVERY
        {
            return Ok(());
        }
        self.last_seen_written.insert(key, (ip, Instant::now()));
        devices::touch(&self.db, user_id, device_id, ip.map(|i| i.to_string()), now_ms())
    }
}
