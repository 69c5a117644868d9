//! DNS for outbound federation: reqwest resolves every host name here, so every address is
//! checked against the [`IpFilter`] before a connection is made. Server discovery may redirect
//! a TLS name to another host (an SRV target) through [`Overrides`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use hickory_resolver::TokioResolver;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::ip_filter::{IpFilter, denied};
use crate::error::{Context, Result};

/// TLS name → the host whose addresses to connect to (spec: SRV targets keep the original
/// name for `Host` and the certificate).
#[derive(Clone, Default)]
pub struct Overrides(Arc<Mutex<HashMap<String, String>>>);

impl Overrides {
    pub fn set(&self, tls_name: &str, connect_host: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(tls_name.to_owned(), connect_host.to_owned());
    }

    pub fn remove(&self, tls_name: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(tls_name);
    }

    fn get(&self, tls_name: &str) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(tls_name).cloned()
    }
}

/// The reqwest resolver: hickory lookups, overrides, then the IP filter.
#[derive(Clone)]
pub struct FilteringResolver {
    pub dns: TokioResolver,
    pub filter: Arc<IpFilter>,
    /// `None` for the `.well-known` client, which must see the real addresses of a name.
    pub overrides: Option<Overrides>,
}

impl FilteringResolver {
    /// The allowed addresses of `host` (port 0: reqwest uses the URL's port).
    pub async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>> {
        let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => self.dns.lookup_ip(host).await.ctx(&format!("resolving {host}"))?.iter().collect(),
        };
        let allowed: Vec<SocketAddr> =
            ips.iter().filter(|ip| self.filter.allows(**ip)).map(|ip| SocketAddr::new(*ip, 0)).collect();
        if allowed.is_empty() {
            let all: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
            return Err(denied(host, &all.join(", ")));
        }
        Ok(allowed)
    }
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let target = this.overrides.as_ref().and_then(|o| o.get(&host)).unwrap_or(host);
            let addrs =
                this.lookup(&target).await.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
