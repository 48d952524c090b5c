//! Fuzz target: URL path + query through signature checking and the parameter parser.
//!
//! Properties: nothing panics; a URL signed with a configured key always verifies (when its query has
//! no `s` of its own); a verified query parses to the same spec twice; parsed sizes respect the caps.
#![no_main]

use imgedge::security::{Admission, RateLimitConfig, SigningConfig};
use imgedge::url::params::{Presets, MAX_DIMENSION};
use imgedge::url::{sign, FormatParam, ImageRequest};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const KEY: &str = "fuzz-signing-key-0123456789";

struct World {
    signed: Admission,
    open: Admission,
    presets: Presets,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rl = RateLimitConfig { misses_per_second: 0, ..RateLimitConfig::default() };
        let signing = SigningConfig {
            keys: vec![KEY.into(), "second-fuzz-key-0123456789".into()],
            allow_unsigned_widths: vec![16, 64, 640, 1080],
            allow_unsigned_presets: vec!["thumb".into()],
        };
        let presets: Presets = [
            ("thumb".to_string(), "w=200&h=200&fit=cover".to_string()),
            ("card".to_string(), "w=800&h=450&fit=cover&q=70&fm=webp".to_string()),
        ]
        .into();
        World {
            signed: Admission::new(&signing, &rl).expect("valid signing config"),
            open: Admission::new(&SigningConfig::default(), &rl).expect("valid config"),
            presets,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else { return };
    let w = world();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url, None),
    };
    for remote in [false, true] {
        let _ = w.signed.verify(path, query, remote);
    }

    // signing then verifying gives back the signed query, for any URL without an `s` parameter of its
    // own (those are refused by design: `s` must be last and only once)
    let payload = url.trim_end_matches('?');
    let payload_query = payload.split_once('?').map_or("", |(_, q)| q);
    if !payload_query.split('&').any(|kv| kv == "s" || kv.starts_with("s=")) {
        let signed = sign::sign_url(KEY, url);
        let (sp, sq) = signed.split_once('?').expect("a signed URL has a query");
        let q = w.signed.verify(sp, Some(sq), false).expect("own signature verifies");
        assert_eq!(q, payload_query, "verify returns the query the signer saw");
    }

    if let Ok(q) = w.open.verify(path, query, false) {
        let a = ImageRequest::parse(path, Some(q), FormatParam::Auto, &w.presets);
        let b = ImageRequest::parse(path, Some(q), FormatParam::Auto, &w.presets);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "parsing is deterministic");
                assert!(!a.key.is_empty() || path.trim_start_matches('/').is_empty());
                assert!(!a.key.split('/').any(|seg| seg == ".." || seg == "."), "no dot segments: {:?}", a.key);
                for d in [a.spec.width, a.spec.height].into_iter().flatten() {
                    assert!((1..=MAX_DIMENSION).contains(&d), "{d}");
                }
                let canonical = a.spec.canonical();
                assert_eq!(canonical, b.spec.canonical());
            }
            (Err(a), Err(b)) => {
                assert_eq!(a.status(), b.status());
                assert!(a.status().is_client_error(), "bad URLs are 4xx: {a}");
            }
            _ => panic!("parsing is deterministic"),
        }
    }
});
