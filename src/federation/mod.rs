//! The federation transport (spec: Server-Server API): how this server reaches others and how
//! it proves who it is. See `docs/federation.md`.
//!
//! - [`client`]: [`Federation::send`] (ruma requests) and [`Federation::send_raw`], signed with
//!   `X-Matrix`, to the address [`discovery`] finds, through the [`ip_filter`];
//! - [`auth`]: checking the `X-Matrix` signature of an incoming request;
//! - [`own_keys`]: our `/_matrix/key/v2/server` response;
//! - [`key_store`]: other servers' verified keys ([`Federation::verify_keys`]), and
//!   [`notary`]: answering key queries for other servers;
//! - [`listener`]: the TLS listener;
//! - [`sender`]: the persistent per-destination sending queue, and [`edu`]: incoming EDUs.

pub mod access;
pub mod auth;
pub mod client;
pub mod discovery;
pub mod edu;
pub mod events;
pub mod invite;
pub mod ip_filter;
pub mod join;
pub mod key_store;
pub mod knock;
pub mod listener;
pub mod lookups;
pub mod membership;
pub mod notary;
pub mod own_keys;
pub mod queries;
mod resolver;
pub mod sender;
pub mod templates;
#[cfg(test)]
mod tests;
pub mod txn;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use ruma::OwnedServerName;

use crate::cache::{BoundedCache, Caches};
use crate::config::{ConfigError, FederationSection};
use crate::locks::AsyncKeyedLock;
use crate::server_keys::{OldKey, SigningKey};
use crate::storage::Storage;
use discovery::Discovery;
use ip_filter::IpFilter;
use key_store::KeySet;
use resolver::{FilteringResolver, Overrides};

/// The federation service, `Services::federation`.
pub struct Federation {
    pub server_name: OwnedServerName,
    pub config: FederationSection,
    signing_key: Arc<SigningKey>,
    /// Our retired keys (they change only with `trellis rotate-key`, while stopped).
    old_keys: Vec<OldKey>,
    /// Requests to other servers: no redirects, DNS through the IP filter and SRV overrides.
    client: reqwest::Client,
    pub discovery: Discovery,
    pub filter: Arc<IpFilter>,
    db: Storage,
    /// Verified remote keys by server (the `remote_server_keys` table, cached).
    keys: BoundedCache<OwnedServerName, KeySet>,
    /// When each server's keys were last fetched, so a missing key does not cause a fetch per
    /// request.
    fetched: BoundedCache<OwnedServerName, Instant>,
    /// One key fetch per server at a time: concurrent callers wait for it and read its result.
    fetching: AsyncKeyedLock<OwnedServerName>,
    /// One incoming transaction per origin at a time (`txn.rs`).
    pub(crate) txn_origins: AsyncKeyedLock<OwnedServerName>,
}

/// Outbound timeouts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

impl Federation {
    pub fn new(
        config: &FederationSection,
        server_name: OwnedServerName,
        signing_key: Arc<SigningKey>,
        old_keys: Vec<OldKey>,
        db: Storage,
        caches: &Caches,
    ) -> Result<Federation, ConfigError> {
        let filter = Arc::new(IpFilter::new(config.deny_ip_ranges.clone(), config.allow_ip_ranges.clone()));
        let dns = dns_resolver()?;
        let overrides = Overrides::default();
        let resolver = FilteringResolver { dns, filter: filter.clone(), overrides: Some(overrides.clone()) };
        let client = http_client(config, resolver.clone(), reqwest::redirect::Policy::none())?;
        let plain = FilteringResolver { overrides: None, ..resolver.clone() };
        let well_known = http_client(config, plain, redirects(filter.clone()))?;
        Ok(Federation {
            server_name,
            config: config.clone(),
            signing_key,
            old_keys,
            client,
            discovery: Discovery::new(resolver, well_known, overrides, caches.cache("server_discovery")),
            filter,
            db,
            keys: caches.cache("server_keys"),
            fetched: caches.cache("server_key_fetches"),
            fetching: AsyncKeyedLock::default(),
            txn_origins: AsyncKeyedLock::default(),
        })
    }
}

/// The system's DNS configuration (`/etc/resolv.conf`), or hickory's defaults without one.
fn dns_resolver() -> Result<TokioResolver, ConfigError> {
    match TokioResolver::builder_tokio().and_then(|b| b.build()) {
        Ok(r) => Ok(r),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the system DNS configuration; using public resolvers");
            let config = hickory_resolver::config::ResolverConfig::udp_and_tcp(&hickory_resolver::config::GOOGLE);
            let provider = hickory_resolver::net::runtime::TokioRuntimeProvider::default();
            TokioResolver::builder_with_config(config, provider)
                .build()
                .map_err(|e| ConfigError(format!("cannot set up DNS resolution: {e}")))
        }
    }
}

/// Up to 5 redirects, never to a denied IP literal (host names go through the resolver).
fn redirects(filter: Arc<IpFilter>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.stop();
        }
        let denied = attempt.url().host_str().and_then(discovery::ip_literal).is_some_and(|ip| !filter.allows(ip));
        if denied { attempt.stop() } else { attempt.follow() }
    })
}

/// A client trusting the system roots plus `federation.extra_ca_file`.
fn http_client(
    config: &FederationSection,
    resolver: FilteringResolver,
    redirect: reqwest::redirect::Policy,
) -> Result<reqwest::Client, ConfigError> {
    let bad = |why: String| ConfigError(format!("invalid value for key \"federation.extra_ca_file\": {why}"));
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(resolver))
        .redirect(redirect)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("Trellis/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &config.extra_ca_file {
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad(format!("no certificate in {}", path.display())));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| ConfigError(format!("cannot build the federation HTTP client: {e}")))
}
