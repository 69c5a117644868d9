//! Configuration: one TOML file, every key overridable by `TRELLIS_<SECTION>__<KEY>`.
//!
//! Each section is declared in `sections.rs` with its documented defaults; `conf/trellis.toml`
//! is the annotated example and must list every key declared there.

mod lenient;
mod sections;

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use sections::*;

/// The whole configuration. Top-level keys first, then one struct per `[section]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The server name in user IDs (`@alice:server_name`). Cannot change once users exist.
    pub server_name: String,
    pub server: ServerSection,
    pub listen: ListenSection,
    pub tls: TlsSection,
    pub federation: FederationSection,
    pub database: DatabaseSection,
    pub logging: LoggingSection,
    pub registration: RegistrationSection,
    pub login: LoginSection,
    pub jwt: JwtSection,
    pub password_policy: PasswordPolicySection,
    pub rate_limits: RateLimitsSection,
    pub media: MediaSection,
    pub voip: VoipSection,
    pub presence: PresenceSection,
    pub metrics: MetricsSection,
    pub well_known: WellKnownSection,
    pub rooms: RoomsSection,
    pub cache: CacheSection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server_name: "localhost".into(),
            server: Default::default(),
            listen: Default::default(),
            tls: Default::default(),
            federation: Default::default(),
            database: Default::default(),
            logging: Default::default(),
            registration: Default::default(),
            login: Default::default(),
            jwt: Default::default(),
            password_policy: Default::default(),
            rate_limits: Default::default(),
            media: Default::default(),
            voip: Default::default(),
            presence: Default::default(),
            metrics: Default::default(),
            well_known: Default::default(),
            rooms: Default::default(),
            cache: Default::default(),
        }
    }
}

/// A configuration that could not be loaded; its message names the offending key.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Config {
    /// Embedded defaults, then the TOML file (if any), then `TRELLIS_*` environment variables.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError(format!("config file {} does not exist", path.display())));
            }
            figment = figment.merge(Toml::file(path));
        }
        // Only variables naming a known key or section are configuration: `TRELLIS_CONFIG`
        // (see `--config`) and tools' own `TRELLIS_*` variables are left alone.
        let known: Vec<String> = match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let env = Env::prefixed("TRELLIS_").filter(move |key| {
            let top = key.as_str().split("__").next().unwrap_or_default();
            known.iter().any(|k| k.eq_ignore_ascii_case(top))
        });
        figment = figment.merge(env.split("__"));
        let config: Config = figment.extract().map_err(|e| {
            // figment reports every problem; the first one, with its key, is the clear line.
            match e.into_iter().next() {
                Some(e) => {
                    let key = e.path.join(".").to_lowercase();
                    let source = e.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default();
                    ConfigError(format!("invalid value for key \"{key}\": {}{source}", e.kind))
                }
                None => ConfigError("invalid configuration".into()),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks that cannot be expressed in the types; each error names its key.
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("invalid value for key \"{key}\": {why}")));
        if ruma::ServerName::parse(&self.server_name).is_err() {
            return bad("server_name", "not a valid Matrix server name");
        }
        if self.server.max_request_bytes < 1024 {
            return bad("server.max_request_bytes", "must be at least 1024");
        }
        if self.server.request_body_timeout_ms == 0 {
            return bad("server.request_body_timeout_ms", "must be at least 1");
        }
        if self.federation.max_request_bytes < 1024 {
            return bad("federation.max_request_bytes", "must be at least 1024");
        }
        if self.jwt.enabled {
            if self.jwt.secret.is_none() && self.jwt.public_key.is_none() {
                return bad("jwt.secret", "jwt.enabled needs jwt.secret or jwt.public_key");
            }
            if crate::users::jwt::algorithm(&self.jwt.algorithm).is_none() {
                return bad("jwt.algorithm", "unknown algorithm (HS256, HS384, HS512, RS256, ES256, EdDSA...)");
            }
        }
        if self.registration.token.as_deref() == Some("") {
            return bad("registration.token", "must not be empty; remove the key to disable it");
        }
        for (key, limit) in [
            ("rate_limits.login", &self.rate_limits.login),
            ("rate_limits.register", &self.rate_limits.register),
            ("rate_limits.client", &self.rate_limits.client),
        ] {
            if limit.per_second <= 0.0 || limit.burst == 0 {
                return bad(key, "per_second and burst must be positive");
            }
        }
        if !crate::rooms::create::creatable(&self.rooms.default_room_version) {
            return bad("rooms.default_room_version", "not a room version this server creates (1 to 12)");
        }
        for contact in &self.well_known.support_contacts {
            let key = "well_known.support_contacts";
            if contact.role.is_empty() || (contact.matrix_id.is_none() && contact.email_address.is_none()) {
                return bad(key, "each contact needs a role and a matrix_id or an email_address");
            }
            if contact.matrix_id.as_deref().is_some_and(|m| ruma::UserId::parse(m).is_err()) {
                return bad(key, "matrix_id must be a user ID");
            }
        }
        if self.presence.idle_timeout_ms == 0 {
            return bad("presence.idle_timeout_ms", "must be positive");
        }
        if !matches!(self.logging.format.as_str(), "pretty" | "json") {
            return bad("logging.format", "must be \"pretty\" or \"json\"");
        }
        if self.tls.certificate.is_some() != self.tls.private_key.is_some() {
            return bad("tls.private_key", "tls.certificate and tls.private_key go together");
        }
        if self.federation.key_valid_for_ms < 3_600_000 {
            return bad("federation.key_valid_for_ms", "must be at least one hour (3600000)");
        }
        if let Some(bad_name) = self.federation.trusted_key_servers.iter().find(|n| ruma::ServerName::parse(n).is_err())
        {
            return bad("federation.trusted_key_servers", &format!("{bad_name:?} is not a server name"));
        }
        for (name, &entries) in &self.cache.entries {
            if !crate::cache::DEFAULT_ENTRIES.iter().any(|(n, _)| n == name) {
                return bad(&format!("cache.entries.{name}"), "no cache has this name (see conf/trellis.toml)");
            }
            if entries == 0 {
                return bad(&format!("cache.entries.{name}"), "must be at least 1");
            }
        }
        Ok(())
    }

    /// The example configuration file, written by `trellis generate-config`.
    pub fn example_toml() -> &'static str {
        include_str!("../../conf/trellis.toml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_to_the_defaults() {
        let example: Config = toml::from_str(Config::example_toml()).expect("example parses");
        let defaults = Config::default();
        assert_eq!(
            serde_json::to_value(&example).unwrap(),
            serde_json::to_value(&defaults).unwrap(),
            "conf/trellis.toml must state exactly the embedded defaults"
        );
    }

    /// The default room version is parsed at load: not a room version ID at all, or one this
    /// server does not create, fails with the key named.
    #[test]
    fn a_bad_default_room_version_fails_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trellis.toml");
        for (value, why) in
            [("\"not a version!\"", "is not a room version ID"), ("\"99\"", "not a room version this server creates")]
        {
            std::fs::write(&path, format!("[rooms]\ndefault_room_version = {value}\n")).unwrap();
            let err = Config::load(Some(&path)).unwrap_err().0;
            assert!(err.contains("\"rooms.default_room_version\"") && err.contains(why), "{value}: {err}");
        }
        std::fs::write(&path, "[rooms]\ndefault_room_version = 10\n").unwrap();
        assert_eq!(Config::load(Some(&path)).unwrap().rooms.default_room_version, ruma::RoomVersionId::V10);
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().expect("defaults valid");
        assert_eq!(Config::default().listen.client.to_string(), "127.0.0.1:8008");
    }
}
