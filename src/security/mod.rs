//! Request admission: URL signatures (with unsigned access limited to listed widths), expiry, the client
//! address (socket, or a trusted proxy's header), and the per-client rate limit on misses.

use crate::error::{Error, Result};
use crate::url::sign;
use governor::{DefaultKeyedRateLimiter, Quota};
use http::HeaderMap;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

/// Config section `[signing]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningConfig {
    /// HMAC keys; any verifies, the first signs. Empty: signing is off. Env: `IMGEDGE_SIGNING_KEYS`
    /// (comma-separated); flag: `--signing-key` (repeatable).
    pub keys: Vec<String>,
    /// Device-pixel widths that may be asked for without a signature (`w`, `dpr` and `fm` only).
    pub allow_unsigned_widths: Vec<u32>,
    /// Presets that may be asked for without a signature (`preset` and `fm` only).
    pub allow_unsigned_presets: Vec<String>,
}

/// Config section `[rate_limit]`: a token bucket per client address, charged only for misses (requests
/// that would fetch and transform); cache hits are never limited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained misses per second per client (0: no limit).
    pub misses_per_second: u32,
    /// Burst size.
    pub burst: u32,
    /// Peers whose `CF-Connecting-IP` / `X-Forwarded-For` is believed (CIDRs, e.g. your CDN's ranges).
    pub trusted_proxies: Vec<String>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig { misses_per_second: 20, burst: 40, trusted_proxies: Vec::new() }
    }
}

pub struct Admission {
    signing: SigningConfig,
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted: Vec<IpNet>,
}

impl Admission {
    pub fn new(signing: &SigningConfig, rl: &RateLimitConfig) -> Result<Self, String> {
        let trusted = rl
            .trusted_proxies
            .iter()
            .map(|s| s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("rate_limit.trusted_proxies: {e}"))?;
        let limiter = NonZeroU32::new(rl.misses_per_second).map(|rate| {
            let burst = NonZeroU32::new(rl.burst.max(1)).expect("nonzero");
            DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        if signing.keys.iter().any(|k| k.len() < 16) {
            return Err("signing.keys: each key needs at least 16 characters".into());
        }
        Ok(Admission { signing: signing.clone(), limiter, trusted })
    }

    pub fn signing_enabled(&self) -> bool {
        !self.signing.keys.is_empty()
    }

    /// Check the signature of a raw path + query and return the query to parse (without `s`).
    /// `remote`: remote sources are never allowed unsigned.
    pub fn verify<'a>(&self, path: &str, query: Option<&'a str>, remote: bool) -> Result<&'a str> {
        let signed = sign::split(path, query)?;
        if !self.signing_enabled() {
            return Ok(signed.query);
        }
        match signed.signature {
            Some(sig) if sign::verify(&self.signing.keys, &signed.payload, sig) => Ok(signed.query),
            Some(_) => Err(Error::Forbidden("invalid signature".into())),
            None if !remote && self.unsigned_allowed(signed.query) => Ok(signed.query),
            None => Err(Error::Forbidden("this URL must be signed".into())),
        }
    }

    /// Unsigned access: `w` (with optional `dpr` and `fm`) at a listed device width, or a listed
    /// `preset` (with optional `fm`). Either way the set of variants anyone can create is finite.
    fn unsigned_allowed(&self, query: &str) -> bool {
        let pairs = || form_urlencoded::parse(query.as_bytes());
        let preset = pairs().find(|(k, _)| k == "preset");
        if let Some((_, name)) = preset {
            return self.signing.allow_unsigned_presets.iter().any(|p| *p == name)
                && pairs().all(|(k, _)| matches!(k.as_ref(), "preset" | "fm" | "format"));
        }
        if self.signing.allow_unsigned_widths.is_empty() {
            return false;
        }
        let (mut w, mut dpr) = (None, 1.0f64);
        for (k, v) in pairs() {
            match k.as_ref() {
                "w" | "width" => w = v.parse::<u32>().ok(),
                "dpr" => match v.parse::<f64>() {
                    Ok(d) if d.is_finite() => dpr = d,
                    _ => return false,
                },
                "fm" | "format" => {}
                _ => return false,
            }
        }
        w.is_some_and(|w| self.signing.allow_unsigned_widths.contains(&((w as f64 * dpr).round() as u32)))
    }

    /// The client's address: the socket peer, or what a trusted proxy says (`CF-Connecting-IP`, else
    /// the right-most untrusted `X-Forwarded-For` hop).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let is_trusted = |ip: &IpAddr| self.trusted.iter().any(|n| n.contains(ip));
        if !is_trusted(&peer) {
            return peer;
        }
        if let Some(ip) =
            headers.get("cf-connecting-ip").and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse().ok())
        {
            return ip;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        hops.iter().rev().find(|ip| !is_trusted(ip)).or(hops.first()).copied().unwrap_or(peer)
    }

    /// Charge one miss to `client`; `Err(RateLimited)` with the wait when its bucket is empty.
    pub fn charge(&self, client: IpAddr) -> Result<()> {
        match &self.limiter {
            Some(limiter) => take_token(limiter, client),
            None => Ok(()),
        }
    }
}

/// Take one token from `client`'s bucket, or say how long to wait (a 429 with `Retry-After`).
pub fn take_token(limiter: &DefaultKeyedRateLimiter<IpAddr>, client: IpAddr) -> Result<()> {
    limiter.check_key(&client).map_err(|not_until| {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
        Error::RateLimited(wait.as_secs().max(1))
    })
}

/// Check `Authorization: Bearer <token>` against `accepted` in constant time.
pub fn check_bearer(headers: &HeaderMap, accepted: &[String]) -> Result<()> {
    use subtle::ConstantTimeEq;
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Error::Unauthorized("missing bearer token (Authorization: Bearer …)".into()))?;
    if accepted.iter().any(|k| !k.is_empty() && bool::from(k.as_bytes().ct_eq(given.as_bytes()))) {
        Ok(())
    } else {
        Err(Error::Unauthorized("wrong token".into()))
    }
}

/// `exp` check: past it, the URL is refused.
pub fn check_expiry(expires: Option<u64>) -> Result<()> {
    let Some(exp) = expires else { return Ok(()) };
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    if now > exp {
        return Err(Error::Forbidden("the URL has expired".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn adm(keys: &[&str], widths: &[u32], trusted: &[&str]) -> Admission {
        Admission::new(
            &SigningConfig {
                keys: keys.iter().map(|s| s.to_string()).collect(),
                allow_unsigned_widths: widths.to_vec(),
                allow_unsigned_presets: Vec::new(),
            },
            &RateLimitConfig {
                misses_per_second: 1,
                burst: 2,
                trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
            },
        )
        .unwrap()
    }

    #[test]
    fn unsigned_widths_only_with_plain_width_requests() {
        let a = adm(&["0123456789abcdef"], &[640, 1080], &[]);
        assert!(a.verify("/a.jpg", Some("w=640&fm=webp"), false).is_ok());
        assert!(a.verify("/a.jpg", Some("w=540&dpr=2"), false).is_ok());
        assert!(a.verify("/a.jpg", Some("w=641"), false).is_err());
        assert!(a.verify("/a.jpg", Some("w=640&h=10"), false).is_err());
        assert!(a.verify("/a.jpg", Some("w=640&blur=5"), false).is_err());
        assert!(a.verify("/a.jpg", None, false).is_err());
        assert!(a.verify("/remote/x", Some("w=640"), true).is_err(), "remote sources are always signed");
    }

    #[test]
    fn client_address_from_trusted_proxies_only() {
        let a = adm(&[], &[], &["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 10.1.1.1"));
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let direct: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(a.client_ip(proxy, &h), "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(a.client_ip(direct, &h), direct, "an untrusted peer cannot claim another address");
        h.insert("cf-connecting-ip", HeaderValue::from_static("192.0.2.44"));
        assert_eq!(a.client_ip(proxy, &h), "192.0.2.44".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn rate_limit_per_client() {
        let a = adm(&[], &[], &[]);
        let (x, y): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(a.charge(x).is_ok() && a.charge(x).is_ok());
        assert!(matches!(a.charge(x), Err(Error::RateLimited(s)) if s >= 1));
        assert!(a.charge(y).is_ok(), "other clients have their own bucket");
        assert!(check_expiry(Some(1)).is_err());
        assert!(check_expiry(Some(u32::MAX as u64 * 2)).is_ok());
    }
}
