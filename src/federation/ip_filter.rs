//! Which addresses outbound federation may connect to: `federation.deny_ip_ranges` minus
//! `federation.allow_ip_ranges` (SSRF protection). Every connection passes here, whether the
//! address came from DNS or from an IP-literal server name.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, ErrorKind, Result};

/// The deny and allow lists of `[federation]`.
#[derive(Debug, Clone, Default)]
pub struct IpFilter {
    deny: Vec<IpNet>,
    allow: Vec<IpNet>,
}

impl IpFilter {
    pub fn new(deny: Vec<IpNet>, allow: Vec<IpNet>) -> Self {
        IpFilter { deny, allow }
    }

    /// Whether we may connect to `ip`. An IPv4-mapped IPv6 address is judged as its IPv4 address.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow.iter().any(|n| n.contains(&ip)) || !self.deny.iter().any(|n| n.contains(&ip))
    }

    /// [`Self::allows`] as an error naming the destination.
    pub fn check(&self, destination: &str, ip: IpAddr) -> Result<()> {
        if self.allows(ip) {
            return Ok(());
        }
        Err(denied(destination, &ip.to_string()))
    }
}

/// The error for a destination whose every address is denied.
pub fn denied(destination: &str, addresses: &str) -> Error {
    Error::new(
        ErrorKind::Forbidden,
        format!("Not connecting to {destination}: {addresses} is in federation.deny_ip_ranges"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FederationSection;

    fn default_filter(allow: &[&str]) -> IpFilter {
        let deny = FederationSection::default().deny_ip_ranges;
        IpFilter::new(deny, allow.iter().map(|a| a.parse().unwrap()).collect())
    }

    #[test]
    fn the_default_denies_internal_ranges_and_allows_public_ones() {
        let f = default_filter(&[]);
        for denied in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!f.allows(denied.parse().unwrap()), "{denied} should be denied");
        }
        for allowed in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"] {
            assert!(f.allows(allowed.parse().unwrap()), "{allowed} should be allowed");
        }
    }

    #[test]
    fn allow_ranges_are_exceptions_to_deny_ranges() {
        let f = default_filter(&["127.0.0.0/8", "10.1.0.0/16"]);
        assert!(f.allows("127.0.0.1".parse().unwrap()));
        assert!(f.allows("10.1.9.9".parse().unwrap()));
        assert!(!f.allows("10.2.0.1".parse().unwrap()));
        assert!(!f.allows("::1".parse().unwrap()));
        let e = default_filter(&[]).check("127.0.0.1:8448", "127.0.0.1".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("deny_ip_ranges"), "{e}");
    }
}
