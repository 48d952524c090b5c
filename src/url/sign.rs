//! Signed URLs: `s = base64url_nopad(HMAC-SHA256(key, P))`, where `P` is the request path, plus `?` and
//! the query string exactly as sent up to (not including) the `&s=` that must end it; without other
//! parameters `P` is the path alone. Several keys verify (rotation); the first signs. Checked before
//! anything else is parsed.

use crate::error::{Error, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The signed part of a request and the signature, split off a raw path and query.
#[derive(Debug, PartialEq)]
pub struct Signed<'a> {
    /// `P`: what the signature covers.
    pub payload: String,
    /// The query without `s` (what the parameter parser sees).
    pub query: &'a str,
    pub signature: Option<&'a str>,
}

/// Split `s` off the end of the query. An `s` anywhere but last is refused.
pub fn split<'a>(path: &str, query: Option<&'a str>) -> Result<Signed<'a>> {
    let q = query.unwrap_or("");
    let (rest, sig) = if let Some(sig) = q.strip_prefix("s=") {
        ("", Some(sig))
    } else if let Some(i) = q.rfind("&s=") {
        (&q[..i], Some(&q[i + 3..]))
    } else {
        (q, None)
    };
    if sig.is_some_and(|s| s.contains('&')) || rest.split('&').any(|p| p == "s" || p.starts_with("s=")) {
        return Err(Error::Forbidden("the signature parameter `s` must come last".into()));
    }
    let payload = if rest.is_empty() { path.to_string() } else { format!("{path}?{rest}") };
    Ok(Signed { payload, query: rest, signature: sig })
}

/// Signature of `payload` with `key`.
pub fn sign(key: &[u8], payload: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is valid for `payload` under any of `keys` (constant-time comparison).
pub fn verify(keys: &[String], payload: &str, signature: &str) -> bool {
    let Ok(given) = URL_SAFE_NO_PAD.decode(signature) else { return false };
    keys.iter().any(|k| {
        let mut mac = HmacSha256::new_from_slice(k.as_bytes()).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        mac.verify_slice(&given).is_ok()
    })
}

/// Append a signature to `path_and_query` (for `imgedge sign`).
pub fn sign_url(key: &str, path_and_query: &str) -> String {
    let payload = path_and_query.trim_end_matches('?');
    let sig = sign(key.as_bytes(), payload);
    let sep = if payload.contains('?') { '&' } else { '?' };
    format!("{payload}{sep}s={sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_from_the_readme() {
        // key "secret", P "/photos/cat.jpg?w=800&fm=webp"; expected value computed with Python's hmac module
        let url = sign_url("secret", "/photos/cat.jpg?w=800&fm=webp");
        assert_eq!(url, "/photos/cat.jpg?w=800&fm=webp&s=zQHnCtJBYF8BtolLl0JtOQ027ywAxNAbeQYOgBLpId4");
        assert_eq!(
            sign_url("secret", "/photos/cat.jpg"),
            format!("/photos/cat.jpg?s={}", sign(b"secret", "/photos/cat.jpg"))
        );
    }

    #[test]
    fn split_and_verify() {
        let keys = vec!["new".to_string(), "old".to_string()];
        let s = split("/a.jpg", Some("w=1&fm=png&s=xyz")).unwrap();
        assert_eq!((s.payload.as_str(), s.query, s.signature), ("/a.jpg?w=1&fm=png", "w=1&fm=png", Some("xyz")));
        let s = split("/a.jpg", Some("s=xyz")).unwrap();
        assert_eq!((s.payload.as_str(), s.query), ("/a.jpg", ""));
        assert_eq!(split("/a.jpg", Some("w=1")).unwrap().signature, None);
        assert!(split("/a.jpg", Some("s=x&w=1")).is_err(), "s must be last");
        let old = sign(b"old", "/a.jpg?w=1");
        assert!(verify(&keys, "/a.jpg?w=1", &old), "rotated-out keys still verify");
        assert!(!verify(&keys, "/a.jpg?w=2", &old), "tampered query");
        assert!(!verify(&keys, "/b.jpg?w=1", &old), "tampered path");
        assert!(!verify(&keys, "/a.jpg?w=1", "not base64!"));
        assert!(!verify(&[], "/a.jpg?w=1", &old));
    }
}
