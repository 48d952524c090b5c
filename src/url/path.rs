//! Object keys from request paths: percent-decoded, and never able to leave the origin's root.

use crate::error::{Error, Result};
use percent_encoding::percent_decode_str;

/// Longest key accepted (S3's own limit is 1024 bytes).
pub const MAX_KEY_LEN: usize = 1024;

/// Turn the raw request path into an object key.
///
/// The path is percent-decoded once; the result must be valid UTF-8 and made only of normal segments:
/// no empty segment (`//`), no `.` or `..` (also when spelled `%2e%2e`), no backslash, no NUL or other
/// control character. So `..%2F..%2Fetc%2Fpasswd` and `/%2e%2e/x` are refused before any origin sees them.
pub fn object_key(raw_path: &str) -> Result<String> {
    let raw = raw_path.strip_prefix('/').unwrap_or(raw_path);
    if raw.is_empty() {
        return Err(Error::BadPath("empty path"));
    }
    let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| Error::BadPath("path is not valid UTF-8"))?;
    if decoded.len() > MAX_KEY_LEN {
        return Err(Error::BadPath("path is too long"));
    }
    if decoded.chars().any(|c| c.is_control() || c == '\\') {
        return Err(Error::BadPath("path contains a control character or backslash"));
    }
    for segment in decoded.split('/') {
        match segment {
            "" => return Err(Error::BadPath("path has an empty segment")),
            "." | ".." => return Err(Error::BadPath("path has a relative segment")),
            _ => {}
        }
    }
    Ok(decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_pass() {
        assert_eq!(object_key("/photos/cat.jpg").unwrap(), "photos/cat.jpg");
        assert_eq!(object_key("/a%20b.png").unwrap(), "a b.png");
        assert_eq!(object_key("/caf%C3%A9.jpg").unwrap(), "café.jpg");
        assert_eq!(object_key("/..foo.jpg").unwrap(), "..foo.jpg");
    }

    #[test]
    fn traversal_and_junk_refused() {
        for p in [
            "/",
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/x",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/..%2f..%2fetc%2fpasswd",
            "//etc/passwd",
            "/a//b",
            "/a/./b",
            "/a%00.jpg",
            "/a%5c..%5cb",
            "/%ff%fe",
        ] {
            assert!(object_key(p).is_err(), "{p} should be refused");
        }
        let long = format!("/{}", "a".repeat(MAX_KEY_LEN + 1));
        assert!(object_key(&long).is_err());
    }
}
