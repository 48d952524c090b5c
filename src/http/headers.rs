//! Header logic: `Accept` negotiation, ETags and conditional requests, `Content-Disposition`, and the
//! security headers every response carries.

use crate::transform::OutputChoice;
use crate::url::{FormatParam, OutputFormat};
use base64::Engine;
use http::{header, HeaderMap, HeaderValue};
use std::time::SystemTime;

/// Resolve `fm` against `Accept`. Returns the choice and whether it depended on `Accept` (→ `Vary`).
///
/// Only explicitly listed types count (`image/avif`, `image/webp` with q > 0): wildcards such as
/// `*/*` or `image/*` do not, or every `curl` would get AVIF.
pub fn negotiate(format: FormatParam, accept: Option<&HeaderValue>) -> (OutputChoice, bool) {
    if let Some(f) = format.fixed() {
        return (OutputChoice::Fixed(f), false);
    }
    let accept = accept.and_then(|v| v.to_str().ok()).unwrap_or("");
    let choice = if accepts(accept, "image/avif") {
        OutputChoice::Fixed(OutputFormat::Avif)
    } else if accepts(accept, "image/webp") {
        OutputChoice::Fixed(OutputFormat::Webp)
    } else {
        OutputChoice::JpegOrPng
    };
    (choice, true)
}

fn accepts(accept: &str, mime: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let ty = parts.next().unwrap_or("").trim();
        if !ty.eq_ignore_ascii_case(mime) {
            return false;
        }
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        q > 0.0
    })
}

/// Strong ETag of one variant: a hash of the origin, key, origin version and canonical variant.
/// Known before the original is downloaded, so `If-None-Match` is answered without any work.
pub fn etag(origin: &str, key: &str, version: &str, variant: &str) -> String {
    let mut h = blake3::Hasher::new();
    for part in [origin, key, version, variant] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    let digest = h.finalize();
    format!("\"{}\"", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_bytes()[..16]))
}

/// RFC 9110 §13.1.2 and §13.1.3: `If-None-Match` (weak comparison) wins over `If-Modified-Since`.
pub fn not_modified(req: &HeaderMap, etag: &str, last_modified: Option<SystemTime>) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else { return false };
        let bare = etag.trim_start_matches("W/");
        return inm.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == bare);
    }
    if let (Some(ims), Some(lm)) = (req.get(header::IF_MODIFIED_SINCE), last_modified) {
        if let Some(ims) = ims.to_str().ok().and_then(|s| httpdate::parse_http_date(s).ok()) {
            // HTTP dates have 1 s resolution: compare at that resolution
            let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            return secs(lm) <= secs(ims);
        }
    }
    false
}

/// `Content-Disposition` for an object `key` served as `format`.
pub fn content_disposition(key: &str, format: OutputFormat, download: Option<&crate::url::Download>) -> HeaderValue {
    let kind = if download.is_some() { "attachment" } else { "inline" };
    let name = match download.and_then(|d| d.filename.clone()) {
        Some(n) if n.contains('.') => n,
        Some(n) => format!("{n}.{}", format.extension()),
        None => {
            let file = key.rsplit('/').next().unwrap_or(key);
            let stem = file.rsplit_once('.').map(|(s, _)| s).filter(|s| !s.is_empty()).unwrap_or(file);
            format!("{stem}.{}", format.extension())
        }
    };
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let value = if ascii == name {
        format!("{kind}; filename=\"{name}\"")
    } else {
        let encoded = percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC);
        format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("inline"))
}

/// Headers on every response: no MIME sniffing, and no active content even if a browser renders it.
pub fn security_headers(h: &mut HeaderMap) {
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
}

/// An HTTP date.
pub fn http_date(t: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(t)).expect("HTTP dates are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn negotiation_uses_explicit_types_only() {
        let chrome = hv("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8");
        assert_eq!(negotiate(FormatParam::Auto, Some(&chrome)), (OutputChoice::Fixed(OutputFormat::Avif), true));
        let old = hv("image/webp,*/*");
        assert_eq!(negotiate(FormatParam::Auto, Some(&old)).0, OutputChoice::Fixed(OutputFormat::Webp));
        assert_eq!(negotiate(FormatParam::Auto, Some(&hv("*/*"))).0, OutputChoice::JpegOrPng);
        assert_eq!(negotiate(FormatParam::Auto, None).0, OutputChoice::JpegOrPng);
        assert_eq!(
            negotiate(FormatParam::Auto, Some(&hv("image/avif;q=0, image/webp"))).0,
            OutputChoice::Fixed(OutputFormat::Webp)
        );
        assert_eq!(negotiate(FormatParam::Png, Some(&chrome)), (OutputChoice::Fixed(OutputFormat::Png), false));
    }

    #[test]
    fn etag_depends_on_every_part() {
        let base = etag("fs", "a.jpg", "v1", "w=10,fm=webp,q=80");
        assert!(base.starts_with('"') && base.ends_with('"'));
        assert_eq!(base, etag("fs", "a.jpg", "v1", "w=10,fm=webp,q=80"));
        assert_ne!(base, etag("fs", "a.jpg", "v2", "w=10,fm=webp,q=80"));
        assert_ne!(base, etag("fs", "b.jpg", "v1", "w=10,fm=webp,q=80"));
        assert_ne!(base, etag("fs", "a.jpg", "v1", "w=11,fm=webp,q=80"));
    }

    #[test]
    fn conditional_requests() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, hv("\"x\", \"abc\""));
        assert!(not_modified(&h, "\"abc\"", Some(t)));
        h.insert(header::IF_NONE_MATCH, hv("W/\"abc\""));
        assert!(not_modified(&h, "\"abc\"", Some(t)));
        h.insert(header::IF_NONE_MATCH, hv("\"nope\""));
        h.insert(header::IF_MODIFIED_SINCE, http_date(t));
        assert!(!not_modified(&h, "\"abc\"", Some(t)), "If-None-Match wins");
        h.remove(header::IF_NONE_MATCH);
        assert!(not_modified(&h, "\"abc\"", Some(t)));
        assert!(!not_modified(&h, "\"abc\"", Some(t + std::time::Duration::from_secs(5))));
    }

    #[test]
    fn disposition_names_the_output() {
        let cd = |k, d: Option<crate::url::Download>| {
            content_disposition(k, OutputFormat::Webp, d.as_ref()).to_str().unwrap().to_string()
        };
        assert_eq!(cd("photos/cat.jpg", None), "inline; filename=\"cat.webp\"");
        assert_eq!(cd("noext", None), "inline; filename=\"noext.webp\"");
        assert_eq!(cd("a.b.png", Some(crate::url::Download { filename: None })), "attachment; filename=\"a.b.webp\"");
        assert_eq!(
            cd("x.jpg", Some(crate::url::Download { filename: Some("mine".into()) })),
            "attachment; filename=\"mine.webp\""
        );
        assert_eq!(cd("café.jpg", None), "inline; filename=\"caf_.webp\"; filename*=UTF-8''caf%C3%A9%2Ewebp");
    }
}
