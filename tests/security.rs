//! Signed URLs, unsigned widths, limits just under and over, the bounded queue, the rate limiter and
//! trusted proxies.

use crate::util::*;
use imgedge::url::sign::sign_url;

const NEW: &str = "new-signing-key-0123456789";
const OLD: &str = "old-signing-key-0123456789";
const IMG: &str = "/photos/nikon-p6000_640x480_gps.jpg";

async fn signed_server(widths: &[u32]) -> Server {
    let widths = widths.to_vec();
    start_with(&corpus(), move |c| {
        c.signing.keys = vec![NEW.into(), OLD.into()];
        c.signing.allow_unsigned_widths = widths;
    })
    .await
}

async fn status(s: &Server, url: &str) -> (u16, String) {
    let r = get(s, url).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn signature_table() {
    let s = signed_server(&[]).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let valid = sign_url(NEW, &format!("{IMG}?w=100&fm=webp"));
    let (base, sig) = valid.rsplit_once("&s=").unwrap();
    let cases: Vec<(String, &str, u16)> = vec![
        (valid.clone(), "valid", 200),
        (sign_url(OLD, &format!("{IMG}?w=100&fm=webp")), "rotated-out key still verifies", 200),
        (sign_url(NEW, IMG), "no other parameters: P is the path", 200),
        (valid.replace("nikon", "canon"), "tampered path", 403),
        (valid.replace("w=100", "w=101"), "tampered query", 403),
        (format!("{IMG}?fm=webp&w=100&s={sig}"), "reordered query", 403),
        (base.to_string(), "missing signature", 403),
        (format!("{IMG}?s={sig}&w=100&fm=webp"), "s not last", 403),
        (format!("{base}&s=%%%"), "garbage signature", 403),
        (sign_url("some-other-key-0123456789", &format!("{IMG}?w=100&fm=webp")), "unknown key", 403),
        (sign_url(NEW, &format!("{IMG}?w=100&exp={}", now - 10)), "expired", 403),
        (sign_url(NEW, &format!("{IMG}?w=100&exp={}", now + 600)), "not yet expired", 200),
        (
            sign_url(NEW, &format!("{IMG}?w=100&exp={}", now - 10))
                .replace(&format!("exp={}", now - 10), &format!("exp={}", now + 600)),
            "exp tampered",
            403,
        ),
    ];
    for (url, what, want) in cases {
        let (got, body) = status(&s, &url).await;
        assert_eq!(got, want, "{what}: {url} → {body}");
        if want == 403 {
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(json["code"], "forbidden", "{what}");
        }
    }
    let (_, body) = status(&s, &sign_url(NEW, &format!("{IMG}?w=100&exp={}", now - 10))).await;
    assert!(body.contains("expired"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_listed_widths_are_served_unsigned() {
    let s = signed_server(&[64, 640, 1080]).await;
    assert_eq!(status(&s, &format!("{IMG}?w=64&fm=png")).await.0, 200);
    assert_eq!(status(&s, &format!("{IMG}?w=320&dpr=2")).await.0, 200, "device width 640 is listed");
    assert_eq!(status(&s, &format!("{IMG}?w=65")).await.0, 403);
    assert_eq!(status(&s, &format!("{IMG}?w=64&h=64&fit=cover")).await.0, 403, "other parameters need a signature");
    assert_eq!(status(&s, IMG).await.0, 403);
    assert_eq!(status(&s, &sign_url(NEW, &format!("{IMG}?w=65"))).await.0, 200, "any width when signed");
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_just_under_and_just_over() {
    let size = std::fs::metadata(corpus().join(&IMG[1..])).unwrap().len();
    for (pixels, bytes, want) in [(640 * 480, size, 200), (640 * 480 - 1, size, 422), (640 * 480, size - 1, 422)] {
        let s = start_with(&corpus(), move |c| {
            c.limits.max_source_pixels = pixels;
            c.limits.max_source_bytes = bytes;
        })
        .await;
        let r = get(&s, &format!("{IMG}?w=50")).await;
        assert_eq!(r.status(), want, "pixels {pixels}, bytes {bytes}");
        if want == 422 {
            let body: serde_json::Value = r.json().await.unwrap();
            let code = body["code"].as_str().unwrap().to_string();
            assert!(code == "too_many_pixels" || code == "source_too_large", "{code}");
        }
    }
    // output caps hold even with enlarge=1
    let s = start_with(&corpus(), |c| {
        c.limits.max_output_pixels = 40_000;
        c.limits.max_output_side = 300;
    })
    .await;
    let img = fetch_image(&s, &format!("{IMG}?w=2000&enlarge=1&fm=png")).await;
    assert!(img.width() <= 300 && (img.width() * img.height()) as u64 <= 40_000, "{:?}", img.dimensions());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_answers_503_at_once() {
    let s = start_with(&corpus(), |c| {
        c.limits.workers = 1;
        c.limits.max_queue = 0;
    })
    .await;
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let u = format!("{}/photos/olympus-ep3_4032x3024.jpg?w={}&fm=webp", s.base, 700 + i);
            tokio::spawn(async move {
                let r = client().get(u).send().await.unwrap();
                (r.status().as_u16(), r.headers().get("retry-after").cloned())
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert!(results.iter().any(|(s, _)| *s == 200), "{results:?}");
    let busy: Vec<_> = results.iter().filter(|(s, _)| *s == 503).collect();
    assert!(!busy.is_empty(), "{results:?}");
    assert!(busy.iter().all(|(_, ra)| ra.as_ref().map(|v| v == "1").unwrap_or(false)));
}

#[tokio::test(flavor = "multi_thread")]
async fn misses_are_rate_limited_per_client_and_hits_are_not() {
    let s = start_with(&corpus(), |c| {
        c.rate_limit.misses_per_second = 1;
        c.rate_limit.burst = 2;
    })
    .await;
    let mut codes = Vec::new();
    for w in [10, 11, 12, 13] {
        let r = get(&s, &format!("{IMG}?w={w}&fm=png")).await;
        codes.push(r.status().as_u16());
        if r.status() == 429 {
            let ra: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(ra >= 1);
            assert_eq!(r.headers()["cache-control"], "no-store");
        }
    }
    assert_eq!(&codes[..2], &[200, 200]);
    assert!(codes[2..].contains(&429), "{codes:?}");
    for _ in 0..5 {
        assert_eq!(get(&s, &format!("{IMG}?w=10&fm=png")).await.headers()["x-cache"], "HIT-MEMORY", "hits are free");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_addresses_come_from_trusted_proxies_only() {
    let limited = |trusted: Vec<String>| {
        move |c: &mut imgedge::Config| {
            c.rate_limit.misses_per_second = 1;
            c.rate_limit.burst = 1;
            c.rate_limit.trusted_proxies = trusted;
        }
    };
    let miss = |s: &Server, w: u32, ip: &'static str| {
        let url = format!("{}{IMG}?w={w}&fm=png", s.base);
        async move { client().get(url).header("cf-connecting-ip", ip).send().await.unwrap().status().as_u16() }
    };
    // behind a trusted proxy (the test client is 127.0.0.1), each claimed client has its own bucket
    let s = start_with(&corpus(), limited(vec!["127.0.0.0/8".into()])).await;
    assert_eq!(miss(&s, 20, "192.0.2.1").await, 200);
    assert_eq!(miss(&s, 21, "192.0.2.1").await, 429);
    assert_eq!(miss(&s, 22, "192.0.2.2").await, 200);
    // from an untrusted peer the header is ignored: one bucket for the socket address
    let s = start_with(&corpus(), limited(vec![])).await;
    assert_eq!(miss(&s, 20, "192.0.2.1").await, 200);
    assert_eq!(miss(&s, 21, "192.0.2.2").await, 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sign_command_prints_a_url_the_server_accepts() {
    let out = tokio::task::spawn_blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_imgedge"))
            .args(["sign", &format!("{IMG}?w=120&fm=webp"), "--signing-key", NEW])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(url, sign_url(NEW, &format!("{IMG}?w=120&fm=webp")));
    let s = signed_server(&[]).await;
    assert_eq!(status(&s, &url).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn presets_expand_and_listed_ones_are_open_unsigned() {
    let s = start_with(&corpus(), |c| {
        c.signing.keys = vec![NEW.into()];
        c.presets.insert("thumb".into(), "w=200&h=200&fit=cover".into());
        c.presets.insert("card".into(), "w=400&h=225&fit=cover&q=60".into());
        c.signing.allow_unsigned_presets = vec!["thumb".into()];
    })
    .await;
    let thumb = get(&s, &format!("{IMG}?preset=thumb&fm=webp")).await;
    assert_eq!(thumb.status(), 200);
    assert_eq!(thumb.headers()["x-cache"], "MISS");
    assert_eq!(decode(&thumb.bytes().await.unwrap()).dimensions(), (200, 200));
    // the same parameters spelled out (signed) are the same variant: one cache entry
    let spelled = get(&s, &sign_url(NEW, &format!("{IMG}?w=200&h=200&fit=cover&fm=webp"))).await;
    assert_eq!(spelled.headers()["x-cache"], "HIT-MEMORY");
    assert_eq!(status(&s, &format!("{IMG}?preset=thumb&fm=png")).await.0, 200);
    for (url, what) in [
        (format!("{IMG}?preset=thumb&w=300"), "a preset with other parameters needs a signature"),
        (format!("{IMG}?preset=card"), "a preset that is not listed needs a signature"),
        (format!("{IMG}?preset=nope"), "unknown presets are not open either"),
    ] {
        assert_eq!(status(&s, &url).await.0, 403, "{what}");
    }
    let wider = get(&s, &sign_url(NEW, &format!("{IMG}?preset=thumb&w=300&fm=png"))).await;
    assert_eq!(decode(&wider.bytes().await.unwrap()).dimensions(), (300, 200), "URL parameters override");
    assert_eq!(
        decode(&get(&s, &sign_url(NEW, &format!("{IMG}?preset=card"))).await.bytes().await.unwrap()).width(),
        400
    );
    let (code, body) = status(&s, &sign_url(NEW, &format!("{IMG}?preset=nope"))).await;
    assert!(code == 400 && body.contains("nope"), "{code} {body}");

    // a table naming a preset that does not exist is refused at start-up
    let mut c = imgedge::Config::default();
    c.signing.allow_unsigned_presets = vec!["thumb".into()];
    assert!(c.validate().unwrap_err().contains("thumb"));
    c.presets.insert("thumb".into(), "w=99999".into());
    assert!(c.validate().is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn svg_is_refused_unless_passed_through_untouched_with_a_sandbox() {
    let svg_path = "/bad/wrong-content/svg-document.png";
    let original = std::fs::read(corpus().join(&svg_path[1..])).unwrap();
    let off = start().await;
    assert_eq!(status(&off, svg_path).await.0, 415);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("logo.svg"), &original).unwrap();
    std::fs::write(
        dir.path().join("page.svg"),
        b"<!DOCTYPE html><html><body><svg onload=alert(1)></svg></body></html>",
    )
    .unwrap();
    std::fs::copy(corpus().join("bad/wrong-content/looks-like-svg.webp"), dir.path().join("real.webp")).unwrap();
    let on = start_with(dir.path(), |c| c.limits.svg_passthrough = true).await;
    for q in ["", "?w=100", "?w=100&fm=png"] {
        let r = get(&on, &format!("/logo.svg{q}")).await;
        assert_eq!(r.status(), 200, "{q}");
        assert_eq!(r.headers()["content-type"], "image/svg+xml");
        assert_eq!(r.headers()["content-security-policy"], "default-src 'none'; sandbox");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.bytes().await.unwrap().as_ref(), original.as_slice(), "never rasterised or rewritten: {q}");
    }
    // served again from the cache, still as it is
    let again = get(&on, "/logo.svg?w=100").await;
    assert_eq!(again.headers()["x-cache"], "HIT-MEMORY");
    assert_eq!(again.headers()["content-type"], "image/svg+xml");
    assert_eq!(status(&on, "/page.svg").await.0, 415, "HTML with an inline <svg> is not an SVG document");
    let webp = get(&on, "/real.webp?w=64&fm=png").await;
    assert_eq!(decode(&webp.bytes().await.unwrap()).width(), 64, "magic bytes still decide");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_handler_is_a_500_and_the_server_keeps_serving() {
    use axum::routing::get as route_get;
    let boom = axum::Router::new().route(
        "/boom",
        route_get(|| async {
            if std::hint::black_box(true) {
                panic!("deliberate test panic");
            }
            "unreachable"
        }),
    );
    let s = start_with_routes(&corpus(), |_| {}, boom).await;
    for _ in 0..3 {
        let r = get(&s, "/boom").await;
        assert_eq!(r.status(), 500);
        assert!(r.headers().contains_key("x-request-id"), "the access log and ids still wrap the answer");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "internal");
        assert!(!body["error"].as_str().unwrap().contains("deliberate"), "panic messages stay internal");
        assert_eq!(get(&s, &format!("{IMG}?w=32&fm=png")).await.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expiring_url_stops_working_even_while_its_variant_is_hot() {
    let s = signed_server(&[]).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let url = sign_url(NEW, &format!("{IMG}?w=90&exp={}", now + 2));
    assert_eq!(get(&s, &url).await.headers()["x-cache"], "MISS");
    let hit = get(&s, &url).await;
    assert_eq!(hit.headers()["x-cache"], "HIT-MEMORY");
    let etag = hit.headers()["etag"].clone();
    let revalidate = client().get(format!("{}{url}", s.base)).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(revalidate.status(), 304);
    tokio::time::sleep(std::time::Duration::from_millis(((now + 3) * 1000 + 50).saturating_sub(now_ms()))).await;
    let (code, body) = status(&s, &url).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("expired"), "{body}");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}
