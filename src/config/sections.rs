//! The `[section]`s of the configuration, each documented where it is declared.
//! Defaults here are the embedded defaults; `conf/trellis.toml` repeats them.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::lenient;

/// `[server]`: behaviour of the HTTP front.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Show internal error details to clients. Never in production.
    pub dev_mode: bool,
    /// Largest request body accepted on JSON endpoints, in bytes (larger → 413 `M_TOO_LARGE`).
    pub max_request_bytes: usize,
    /// A request body (on the client and the federation listener) must arrive whole within this
    /// many milliseconds of the handler starting to read it; a slower one gets 408.
    pub request_body_timeout_ms: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection { dev_mode: false, max_request_bytes: 1024 * 1024, request_body_timeout_ms: 60_000 }
    }
}

/// `[listen]`: where the listeners bind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenSection {
    /// Client-Server API, plain HTTP (put a TLS proxy in front for the internet). Port 0 picks one.
    pub client: SocketAddr,
    /// Server-Server API over TLS (needs `[tls]`; see `[federation]`). Port 0 picks one.
    pub federation: SocketAddr,
}

impl Default for ListenSection {
    fn default() -> Self {
        ListenSection {
            client: SocketAddr::from(([127, 0, 0, 1], 8008)),
            federation: SocketAddr::from(([127, 0, 0, 1], 8448)),
        }
    }
}

/// `[tls]`: certificate for the federation listener (PEM files). Without both, the federation
/// listener does not start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// Certificate chain, leaf first, valid for the server name (or its delegated name).
    pub certificate: Option<PathBuf>,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: Option<PathBuf>,
}

/// `[federation]`: the Server-Server API (spec: Server-Server API).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationSection {
    /// Serve `listen.federation` (when `[tls]` is set) and talk to other servers.
    pub enabled: bool,
    /// A PEM file of extra CA certificates trusted for outbound TLS, besides the system roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_ca_file: Option<PathBuf>,
    /// Outbound connections to these IP ranges are refused (SSRF protection).
    pub deny_ip_ranges: Vec<ipnet::IpNet>,
    /// Exceptions to `deny_ip_ranges`.
    pub allow_ip_ranges: Vec<ipnet::IpNet>,
    /// Notary servers asked for a server's keys when its own key endpoint fails.
    pub trusted_key_servers: Vec<String>,
    /// How long our key responses stay valid (`valid_until_ts` = now + this), in ms.
    pub key_valid_for_ms: u64,
    /// Largest request body accepted on the federation listener, in bytes (larger → 413
    /// `M_TOO_LARGE`): a `/send` transaction may hold 50 PDUs of 64 KiB plus 100 EDUs.
    pub max_request_bytes: usize,
    /// Show device display names to other servers (in `/user/devices`, `/user/keys/query` and
    /// `m.device_list_update`). Off, as in Synapse: a name like "Alice's work laptop" tells
    /// every server in a shared room more than the keys need.
    pub allow_device_name_lookup: bool,
}

/// Private, loopback, link-local, shared (CGNAT), documentation, benchmarking, multicast and
/// reserved ranges, IPv4 and IPv6 (IANA special-purpose registries). IPv4-mapped IPv6
/// addresses are checked as the IPv4 address they carry.
pub const DEFAULT_DENY_IP_RANGES: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

impl Default for FederationSection {
    fn default() -> Self {
        FederationSection {
            enabled: true,
            extra_ca_file: None,
            deny_ip_ranges: DEFAULT_DENY_IP_RANGES.iter().filter_map(|r| r.parse().ok()).collect(),
            allow_ip_ranges: Vec::new(),
            trusted_key_servers: Vec::new(),
            key_valid_for_ms: 7 * 24 * 3600 * 1000,
            max_request_bytes: 4 * 1024 * 1024,
            allow_device_name_lookup: false,
        }
    }
}

/// `[database]`: the RocksDB store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// Directory of the RocksDB database (created if missing).
    pub path: PathBuf,
    /// Shared block cache size in MiB.
    pub cache_mb: usize,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection { path: PathBuf::from("./trellis-data"), cache_mb: 64 }
    }
}

/// `[logging]`: structured logs on standard error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSection {
    /// "pretty" for people, "json" for log collectors.
    pub format: String,
    /// A tracing filter, e.g. "info" or "trellis=debug,tower_http=info". `RUST_LOG` wins if set.
    pub level: String,
}

impl Default for LoggingSection {
    fn default() -> Self {
        LoggingSection { format: "pretty".into(), level: "info,ruma_state_res=warn".into() }
    }
}

/// `[registration]`: who may create accounts (spec: "Account registration and management").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationSection {
    /// Open `POST /register` to the public. Off: 403 `M_FORBIDDEN`; shared-secret registration
    /// and `trellis user create` still work.
    pub enabled: bool,
    /// If set, registration needs this token (`m.login.registration_token`).
    #[serde(deserialize_with = "lenient::opt_string", skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// If set, Synapse-style shared-secret registration `/_synapse/admin/v1/register` is on.
    #[serde(deserialize_with = "lenient::opt_string", skip_serializing_if = "Option::is_none")]
    pub shared_secret: Option<String>,
    /// Allow `kind=guest` registration.
    pub allow_guests: bool,
    /// Localpart prefixes reserved for the server and bridges (→ `M_EXCLUSIVE`).
    pub reserved_prefixes: Vec<String>,
}

impl Default for RegistrationSection {
    fn default() -> Self {
        RegistrationSection {
            enabled: true,
            token: None,
            shared_secret: None,
            allow_guests: false,
            reserved_prefixes: Vec::new(),
        }
    }
}

/// `[login]`: login methods and token lifetimes (spec: "Login", "Refreshing access tokens").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSection {
    /// `m.login.password`.
    pub password: bool,
    /// `m.login.token` and `POST /login/get_token`.
    pub token: bool,
    /// Lifetime of a login token from `/login/get_token`, in ms.
    pub login_token_lifetime_ms: u64,
    /// Lifetime of access tokens of clients that asked for a refresh token, in ms.
    pub refreshable_access_token_lifetime_ms: u64,
    /// Lifetime of other access tokens, in ms; 0 means they do not expire.
    pub access_token_lifetime_ms: u64,
}

impl Default for LoginSection {
    fn default() -> Self {
        LoginSection {
            password: true,
            token: true,
            login_token_lifetime_ms: 120_000,
            refreshable_access_token_lifetime_ms: 300_000,
            access_token_lifetime_ms: 0,
        }
    }
}

/// `[jwt]`: `org.matrix.login.jwt` login with a JSON Web Token whose `sub` is the localpart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSection {
    pub enabled: bool,
    /// HMAC secret (HS* algorithms).
    #[serde(deserialize_with = "lenient::opt_string", skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// PEM public key (RS*, PS*, ES*, EdDSA): the key itself or a path to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    pub algorithm: String,
    /// Required `iss`, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Accepted `aud` values; if non-empty the token must carry one of them.
    pub audiences: Vec<String>,
    /// Create the account on first login when it does not exist.
    pub create_users: bool,
}

impl Default for JwtSection {
    fn default() -> Self {
        JwtSection {
            enabled: false,
            secret: None,
            public_key: None,
            algorithm: "HS256".into(),
            issuer: None,
            audiences: Vec::new(),
            create_users: true,
        }
    }
}

/// `[password_policy]`: what a new password must contain (→ `M_WEAK_PASSWORD`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicySection {
    pub minimum_length: usize,
    pub require_digit: bool,
    pub require_symbol: bool,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
}

impl Default for PasswordPolicySection {
    fn default() -> Self {
        PasswordPolicySection {
            minimum_length: 8,
            require_digit: false,
            require_symbol: false,
            require_uppercase: false,
            require_lowercase: false,
        }
    }
}

/// One token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// `[rate_limits]`: over the limit → 429 `M_LIMIT_EXCEEDED` with `retry_after_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsSection {
    /// Off for tests and benchmarks.
    pub enabled: bool,
    /// `POST /login`, per client IP.
    pub login: RateLimit,
    /// `POST /register` and registration checks, per client IP.
    pub register: RateLimit,
    /// Other rate-limited endpoints, per user (per IP when unauthenticated).
    pub client: RateLimit,
}

impl Default for RateLimitsSection {
    fn default() -> Self {
        RateLimitsSection {
            enabled: true,
            login: RateLimit { per_second: 0.17, burst: 3 },
            register: RateLimit { per_second: 0.17, burst: 3 },
            client: RateLimit { per_second: 10.0, burst: 50 },
        }
    }
}

/// `[media]`: uploads (the media repository lands in a later issue).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSection {
    pub max_upload_bytes: u64,
}

impl Default for MediaSection {
    fn default() -> Self {
        MediaSection { max_upload_bytes: 50 * 1024 * 1024 }
    }
}

/// `[voip]`: TURN servers handed to clients (coturn `use-auth-secret` style).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoipSection {
    pub turn_uris: Vec<String>,
    #[serde(deserialize_with = "lenient::opt_string", skip_serializing_if = "Option::is_none")]
    pub turn_shared_secret: Option<String>,
    /// Lifetime of TURN credentials, in seconds.
    pub turn_ttl_secs: u64,
}

impl Default for VoipSection {
    fn default() -> Self {
        VoipSection { turn_uris: Vec::new(), turn_shared_secret: None, turn_ttl_secs: 86_400 }
    }
}

/// `[presence]`: online status (spec: Client-Server API "Presence").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceSection {
    /// Track and deliver presence. Off: `/presence` still answers, but nothing is recorded or
    /// sent to anyone.
    pub enabled: bool,
    /// How long after a user's last `/sync` (or other activity) ends before they go offline, in ms.
    pub idle_timeout_ms: u64,
}

impl Default for PresenceSection {
    fn default() -> Self {
        PresenceSection { enabled: true, idle_timeout_ms: 30_000 }
    }
}

/// `[metrics]`: Prometheus text on its own listener, never on the public one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    pub enabled: bool,
    /// Address of the metrics listener (`GET /metrics`). Keep it private.
    pub listen: SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection { enabled: false, listen: SocketAddr::from(([127, 0, 0, 1], 9090)) }
    }
}

/// `[well_known]`: what `/.well-known/matrix/*` announce.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WellKnownSection {
    /// Public base URL of the client API; default `http://<listen.client>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Delegated federation `host:port`; default `<server_name>:<federation port>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `/.well-known/matrix/support`: a page about getting help.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support_page: Option<String>,
    /// `/.well-known/matrix/support`: whom to contact (none: the endpoint answers 404).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub support_contacts: Vec<SupportContact>,
}

/// One contact of `[[well_known.support_contacts]]` (spec: `GET /.well-known/matrix/support`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportContact {
    /// `m.role.admin`, `m.role.security` or a namespaced role of your own.
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
}

/// `[rooms]`: room defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsSection {
    /// Version of rooms created without `room_version` (Synapse's default today is 12).
    #[serde(deserialize_with = "lenient::room_version")]
    pub default_room_version: ruma::RoomVersionId,
}

impl Default for RoomsSection {
    fn default() -> Self {
        RoomsSection { default_room_version: ruma::RoomVersionId::V12 }
    }
}

/// `[cache]`: the in-memory caches (`src/cache.rs`), each emptied when it reaches its bound.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSection {
    /// Entries per cache, by name (`[cache.entries]`); a name left out keeps its built-in
    /// bound (`crate::cache::DEFAULT_ENTRIES`). `GET /metrics` shows each cache's hits, misses
    /// and size (`trellis_cache_*{cache="<name>"}`).
    pub entries: std::collections::BTreeMap<String, usize>,
}

impl Default for CacheSection {
    fn default() -> Self {
        CacheSection { entries: crate::cache::DEFAULT_ENTRIES.iter().map(|&(n, e)| (n.to_owned(), e)).collect() }
    }
}
