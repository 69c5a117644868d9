//! Server discovery (spec: Server-Server API, "Resolving server names"): where to connect for
//! a server name, and which name the `Host` header and the TLS certificate must carry.
//! Results are cached: by the `.well-known` response's `Cache-Control` (24 h by default, at
//! most 48 h), for an hour when `.well-known` failed.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_resolver::proto::rr::RData;
use ruma::{OwnedServerName, ServerName};

use super::resolver::{FilteringResolver, Overrides};
use crate::cache::BoundedCache;
use crate::error::Result;

/// The default federation port.
pub const DEFAULT_PORT: u16 = 8448;
const WELL_KNOWN_DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
const WELL_KNOWN_MAX_TTL: Duration = Duration::from_secs(48 * 3600);
const WELL_KNOWN_MIN_TTL: Duration = Duration::from_secs(300);
const WELL_KNOWN_FAILURE_TTL: Duration = Duration::from_secs(3600);
const WELL_KNOWN_MAX_BYTES: usize = 64 * 1024;

/// Where requests for one server name go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The URL host: the name the certificate must be valid for (and the TLS SNI), or an IP
    /// literal (IPv6 in brackets).
    pub tls_name: String,
    /// The port to connect to.
    pub port: u16,
    /// The `Host` header to send.
    pub host_header: String,
    /// The host whose addresses to connect to when it is not `tls_name` (an SRV target).
    pub connect_host: Option<String>,
}

impl Destination {
    /// `https://tls_name:port`, the base of every request URL.
    pub fn base_url(&self) -> String {
        format!("https://{}:{}", self.tls_name, self.port)
    }

    /// The IP to connect to, when the destination is an IP literal.
    pub fn ip_literal(&self) -> Option<IpAddr> {
        if self.connect_host.is_some() {
            return None;
        }
        ip_literal(&self.tls_name)
    }

    fn named(host: &str, port: u16, host_header: String) -> Self {
        Destination { tls_name: host.to_owned(), port, host_header, connect_host: None }
    }
}

/// An IP literal host (`1.2.3.4` or `[::1]`).
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).parse().ok()
}

/// Steps 1 and 2: an IP literal, or a host name with an explicit port, needs no lookup.
pub fn without_lookup(name: &ServerName) -> Option<Destination> {
    let (host, port) = (name.host(), name.port());
    if ip_literal(host).is_some() || port.is_some() {
        return Some(Destination::named(host, port.unwrap_or(DEFAULT_PORT), name.as_str().to_owned()));
    }
    None
}

/// The delegated server name of a `/.well-known/matrix/server` body (`m.server`).
pub fn parse_well_known(body: &[u8]) -> Option<OwnedServerName> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let server = value.get("m.server")?.as_str()?;
    ServerName::parse(server).ok()
}

/// How long to keep a `.well-known` answer, from its `Cache-Control` header.
pub fn well_known_ttl(cache_control: Option<&str>) -> Duration {
    let Some(header) = cache_control else { return WELL_KNOWN_DEFAULT_TTL };
    let directives = header.split(',').map(str::trim);
    let mut ttl = WELL_KNOWN_DEFAULT_TTL;
    for d in directives {
        if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
            ttl = WELL_KNOWN_MIN_TTL;
        } else if let Some(secs) = d.strip_prefix("max-age=").and_then(|s| s.parse::<u64>().ok()) {
            ttl = Duration::from_secs(secs);
        }
    }
    ttl.clamp(WELL_KNOWN_MIN_TTL, WELL_KNOWN_MAX_TTL)
}

/// Resolves server names; holds the cache.
pub struct Discovery {
    /// DNS with the IP filter (and the overrides this module sets for SRV targets).
    resolver: FilteringResolver,
    /// The client for `.well-known` (same IP filter, no overrides, a few redirects).
    well_known: reqwest::Client,
    overrides: Overrides,
    /// Results by name, with when they expire.
    cache: BoundedCache<OwnedServerName, (Destination, Instant)>,
}

impl Discovery {
    pub fn new(
        resolver: FilteringResolver,
        well_known: reqwest::Client,
        overrides: Overrides,
        cache: BoundedCache<OwnedServerName, (Destination, Instant)>,
    ) -> Self {
        Discovery { resolver, well_known, overrides, cache }
    }

    /// Where to send requests for `name`, from the cache or the spec's steps.
    pub async fn resolve(&self, name: &ServerName) -> Result<Destination> {
        if let Some(d) = without_lookup(name) {
            return Ok(d);
        }
        if let Some((d, until)) = self.cache.get(name)
            && until > Instant::now()
        {
            return Ok(d);
        }
        let (destination, ttl) = self.discover(name.host()).await;
        match &destination.connect_host {
            Some(target) => self.overrides.set(&destination.tls_name, target),
            None => self.overrides.remove(&destination.tls_name),
        }
        self.cache.insert(name.to_owned(), (destination.clone(), Instant::now() + ttl));
        Ok(destination)
    }

    /// Forget a cached result (e.g. after the destination could not be reached).
    pub fn forget(&self, name: &ServerName) {
        self.cache.remove(name);
    }

    /// Steps 3 to 6 for a host name without a port.
    async fn discover(&self, host: &str) -> (Destination, Duration) {
        match self.fetch_well_known(host).await {
            Some((delegated, ttl)) => {
                if let Some(d) = without_lookup(&delegated) {
                    return (d, ttl);
                }
                (self.srv_or_default(delegated.host()).await, ttl)
            }
            None => (self.srv_or_default(host).await, WELL_KNOWN_FAILURE_TTL),
        }
    }

    /// Steps 3.3–3.5 and 4–6: `_matrix-fed._tcp`, then `_matrix._tcp`, then port 8448.
    async fn srv_or_default(&self, host: &str) -> Destination {
        for service in ["_matrix-fed._tcp", "_matrix._tcp"] {
            if let Some((target, port)) = self.srv(&format!("{service}.{host}.")).await {
                let mut d = Destination::named(host, port, host.to_owned());
                d.connect_host = (target != host).then_some(target);
                return d;
            }
        }
        Destination::named(host, DEFAULT_PORT, host.to_owned())
    }

    /// The preferred SRV target (lowest priority, then highest weight).
    async fn srv(&self, query: &str) -> Option<(String, u16)> {
        let lookup = self.resolver.dns.srv_lookup(query).await.ok()?;
        let best = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some(srv),
                _ => None,
            })
            .min_by_key(|srv| (srv.priority, std::cmp::Reverse(srv.weight)))?;
        let target = best.target.to_utf8().trim_end_matches('.').to_owned();
        // A target of "." means the service is decidedly not available (RFC 2782).
        (!target.is_empty()).then_some((target, best.port))
    }

    /// Step 3: `GET https://<host>/.well-known/matrix/server`.
    async fn fetch_well_known(&self, host: &str) -> Option<(OwnedServerName, Duration)> {
        let url = format!("https://{host}/.well-known/matrix/server");
        let mut response = self.well_known.get(&url).send().await.ok()?;
        if response.status() != reqwest::StatusCode::OK {
            return None;
        }
        let cache_control =
            response.headers().get(reqwest::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.ok()? {
            body.extend_from_slice(&chunk);
            if body.len() > WELL_KNOWN_MAX_BYTES {
                return None;
            }
        }
        let delegated = parse_well_known(&body)?;
        Some((delegated, well_known_ttl(cache_control.as_deref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> OwnedServerName {
        ServerName::parse(s).unwrap()
    }

    #[test]
    fn ip_literals_and_explicit_ports_need_no_lookup() {
        let d = without_lookup(&name("1.2.3.4")).unwrap();
        assert_eq!((d.base_url(), d.host_header.as_str()), ("https://1.2.3.4:8448".into(), "1.2.3.4"));
        assert_eq!(d.ip_literal(), Some("1.2.3.4".parse().unwrap()));

        let d = without_lookup(&name("1.2.3.4:9000")).unwrap();
        assert_eq!((d.base_url(), d.host_header.as_str()), ("https://1.2.3.4:9000".into(), "1.2.3.4:9000"));

        let d = without_lookup(&name("[2001:db8::1]")).unwrap();
        assert_eq!(d.base_url(), "https://[2001:db8::1]:8448");
        assert_eq!(d.ip_literal(), Some("2001:db8::1".parse().unwrap()));

        let d = without_lookup(&name("[::1]:443")).unwrap();
        assert_eq!((d.base_url(), d.host_header.as_str()), ("https://[::1]:443".into(), "[::1]:443"));

        let d = without_lookup(&name("example.org:8449")).unwrap();
        assert_eq!((d.base_url(), d.host_header.as_str()), ("https://example.org:8449".into(), "example.org:8449"));
        assert_eq!(d.ip_literal(), None);

        assert_eq!(without_lookup(&name("example.org")), None);
    }

    #[test]
    fn well_known_bodies() {
        assert_eq!(
            parse_well_known(br#"{"m.server": "matrix.example.org:443"}"#),
            Some(name("matrix.example.org:443"))
        );
        assert_eq!(parse_well_known(br#"{"m.server": "matrix.example.org"}"#), Some(name("matrix.example.org")));
        assert_eq!(parse_well_known(br#"{"m.server": "not a name"}"#), None);
        assert_eq!(parse_well_known(br#"{"m.server": 5}"#), None);
        assert_eq!(parse_well_known(b"<html>"), None);
        assert_eq!(parse_well_known(b"{}"), None);
    }

    #[test]
    fn well_known_cache_lifetimes() {
        assert_eq!(well_known_ttl(None), Duration::from_secs(86_400));
        assert_eq!(well_known_ttl(Some("public, max-age=3600")), Duration::from_secs(3600));
        assert_eq!(well_known_ttl(Some("max-age=999999999")), Duration::from_secs(48 * 3600));
        assert_eq!(well_known_ttl(Some("max-age=1")), Duration::from_secs(300));
        assert_eq!(well_known_ttl(Some("no-store")), Duration::from_secs(300));
    }
}
