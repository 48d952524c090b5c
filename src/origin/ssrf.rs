//! SSRF guard: which addresses a fetch may connect to, and a DNS resolver that only hands reqwest the
//! addresses it checked (so no second lookup can be rebound to an internal address).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Why an address was refused (carried through reqwest's error chain to the status mapping).
#[derive(Debug, thiserror::Error)]
#[error("refused to connect to {0}: not a public address")]
pub struct Refused(pub String);

/// Loopback, private (RFC 1918, fc00::/7), link-local (169.254/16 incl. cloud metadata, fe80::/10),
/// unspecified, multicast, broadcast, CGNAT, documentation and IPv4-mapped forms of all of these.
pub fn is_refused(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_v4(v4);
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg0 == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d (deprecated)
        }
    }
}

fn refused_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_multicast()
        || v4.is_broadcast()
        || v4.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64/10
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240 // reserved
}

/// A host pattern: `example.com` (exact), `*.example.com` (any subdomain, not the apex) or `*` (any
/// host; the SSRF guard still applies).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    if p == "*" {
        return true;
    }
    match p.strip_prefix("*.") {
        Some(suffix) => h.len() > suffix.len() && h.ends_with(&format!(".{suffix}")),
        None => p == h,
    }
}

/// reqwest resolver that drops refused addresses, except for hosts the operator configured (those are
/// trusted as configured, internal or not).
#[derive(Clone)]
pub struct GuardedResolver {
    pub trusted_hosts: Arc<HashSet<String>>,
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let trusted = self.allow_private || self.trusted_hosts.contains(&host.to_ascii_lowercase());
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs.iter().copied().filter(|a| trusted || !is_refused(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(Refused(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Check a URL's host when it is an IP literal (reqwest does not resolve those). The `url` crate has
/// already normalised decimal, octal and hex IPv4 spellings (`2130706433`, `0177.0.0.1`) to dotted form.
pub fn check_literal(url: &reqwest::Url, trusted: &HashSet<String>, allow_private: bool) -> Result<(), Refused> {
    let Some(host) = url.host() else { return Err(Refused("a URL without a host".into())) };
    let ip = match host {
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => IpAddr::V6(v6),
        url::Host::Domain(_) => return Ok(()),
    };
    if allow_private || trusted.contains(&ip.to_string()) || !is_refused(ip) {
        Ok(())
    } else {
        Err(Refused(ip.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        for refused in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "100.64.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
        ] {
            assert!(is_refused(refused.parse().unwrap()), "{refused}");
        }
        for ok in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "1.1.1.1"] {
            assert!(!is_refused(ok.parse().unwrap()), "{ok}");
        }
    }

    #[test]
    fn odd_spellings_of_loopback_are_refused() {
        let none = HashSet::new();
        for u in [
            "http://127.0.0.1/x",
            "http://2130706433/x",
            "http://0177.0.0.1/x",
            "http://0x7f.0.0.1/x",
            "http://127.1/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[::1]/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://0/x",
        ] {
            let url = reqwest::Url::parse(u).unwrap();
            assert!(check_literal(&url, &none, false).is_err(), "{u} ({url})");
            assert!(check_literal(&url, &none, true).is_ok(), "{u} allowed when private networks are allowed");
        }
        assert!(check_literal(&reqwest::Url::parse("http://8.8.8.8/x").unwrap(), &none, false).is_ok());
    }

    #[test]
    fn host_patterns() {
        assert!(host_matches("*.example.com", "img.example.com"));
        assert!(host_matches("*.example.com", "A.B.EXAMPLE.COM"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "evilexample.com"));
        assert!(host_matches("example.com", "example.com"));
        assert!(!host_matches("example.com", "example.com.evil.net"));
    }
}
