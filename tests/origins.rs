//! Origins over the network: a real S3-protocol server (s3s + s3s-fs, SigV4-checked) and an in-process
//! HTTP origin; status mapping, caps, timeouts, redirects, revalidation and the SSRF guard.

use crate::util::servers::*;
use crate::util::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn read(path: &str) -> Vec<u8> {
    std::fs::read(corpus().join(path)).unwrap()
}

async fn s3_imgedge(s3: &S3Server, spec_suffix: &str, tweak: impl FnOnce(&mut imgedge::Config)) -> Server {
    let endpoint = s3.endpoint.clone();
    let spec = format!("s3://photos/originals{spec_suffix}");
    start_with(&corpus(), move |c| {
        c.origin = format!("{spec}?endpoint={endpoint}&region=us-east-1&path_style=true");
        c.origin_options.access_key_id = Some(AK.into());
        c.origin_options.secret_access_key = Some(SK.into());
        tweak(c);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_hit_miss_missing_and_changed_objects() {
    let s3 = start_s3().await;
    let client = s3_client(&s3.endpoint).await;
    client.create_bucket().bucket("photos").send().await.unwrap();
    put(&client, "photos", "originals/cat.jpg", read("photos/jolla_3264x2448.jpg")).await;
    put(&client, "photos", "outside.jpg", read("photos/jolla_3264x2448.jpg")).await;
    let s = s3_imgedge(&s3, "", |_| {}).await;

    let r = get(&s, "/cat.jpg?w=200&fm=png").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "MISS");
    let etag = r.headers()["etag"].clone();
    assert_eq!(decode(&r.bytes().await.unwrap()).dimensions(), (200, 150));
    let r = get(&s, "/cat.jpg?w=200&fm=png").await;
    assert_eq!(r.headers()["x-cache"], "HIT-MEMORY");
    assert_eq!(r.headers()["etag"], etag);

    assert_eq!(get(&s, "/missing.jpg?w=10").await.status(), 404);
    assert_eq!(get(&s, "/outside.jpg?w=10").await.status(), 404, "the prefix confines keys");

    // a changed object gets a new ETag and new pixels
    put(&client, "photos", "originals/cat.jpg", read("orientation/Portrait_1.jpg")).await;
    let mut changed = false;
    for _ in 0..30 {
        let r = get(&s, "/cat.jpg?w=200&fm=png").await;
        if r.headers()["etag"] != etag {
            assert_eq!(decode(&r.bytes().await.unwrap()).dimensions(), (200, 300));
            changed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(changed, "the new object version was picked up");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_wrong_credentials_and_unreachable_endpoints_are_502_fast() {
    let s3 = start_s3().await;
    let client = s3_client(&s3.endpoint).await;
    client.create_bucket().bucket("photos").send().await.unwrap();
    put(&client, "photos", "originals/cat.jpg", read("photos/nikon-p6000_640x480_gps.jpg")).await;
    let s = s3_imgedge(&s3, "", |c| c.origin_options.secret_access_key = Some("wrong".into())).await;
    let t = Instant::now();
    let r = get(&s, "/cat.jpg?w=10").await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(t.elapsed() < Duration::from_secs(10));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "origin_unavailable");

    let dead = start_with(&corpus(), |c| {
        c.origin = "s3://photos?endpoint=http://127.0.0.1:9&region=us-east-1".into();
        c.origin_options.access_key_id = Some(AK.into());
        c.origin_options.secret_access_key = Some(SK.into());
        c.fetch.timeout_secs = 3.0;
    })
    .await;
    let r = get(&dead, "/cat.jpg?w=10").await;
    assert!(r.status() == 502 || r.status() == 504, "{}", r.status());
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[tokio::test(flavor = "multi_thread")]
async fn named_origins_are_mounted_at_their_prefixes() {
    let s3 = start_s3().await;
    let client = s3_client(&s3.endpoint).await;
    for b in ["photos", "avatars"] {
        client.create_bucket().bucket(b).send().await.unwrap();
    }
    put(&client, "photos", "originals/a.jpg", read("photos/nikon-p6000_640x480_gps.jpg")).await;
    put(&client, "avatars", "u/1.png", read("png/paletted-transparent.png")).await;
    let endpoint = s3.endpoint.clone();
    let s = s3_imgedge(&s3, "", move |c| {
        c.origins.push(imgedge::origin::NamedOrigin {
            name: "avatars".into(),
            mount: "avatars".into(),
            spec: format!("s3://avatars?endpoint={endpoint}&path_style=true"),
            options: imgedge::origin::OriginOptions {
                region: Some("us-east-1".into()),
                access_key_id: Some(AK.into()),
                secret_access_key: Some(SK.into()),
                ..Default::default()
            },
        });
    })
    .await;
    assert_eq!(fetch_image(&s, "/a.jpg?w=64&fm=png").await.dimensions(), (64, 48));
    assert_eq!(fetch_image(&s, "/avatars/u/1.png?w=60&fm=png").await.dimensions(), (60, 45));
    assert_eq!(get(&s, "/avatars/a.jpg?w=10").await.status(), 404, "the mount's own bucket only");
}

async fn http_imgedge(origin: &HttpOrigin, path: &str, tweak: impl FnOnce(&mut imgedge::Config)) -> Server {
    let spec = format!("{}{path}", origin.base);
    start_with(&corpus(), move |c| {
        c.origin = spec;
        tweak(c);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn http_origin_serves_revalidates_with_304_and_forwards_no_credentials() {
    let o = start_http_origin().await;
    let s = http_imgedge(&o, "/img", |_| {}).await;
    let r = client()
        .get(format!("{}/photos/jolla_3264x2448.jpg?w=100&fm=webp", s.base))
        .header("cookie", "session=secret")
        .header("authorization", "Bearer user-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(o.seen.get(), 1);
    // the origin said max-age=1: after it, a conditional request gets 304 and the held original is reused
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = get(&s, "/photos/jolla_3264x2448.jpg?w=120&fm=webp").await;
    assert_eq!(r.status(), 200);
    assert_eq!(o.seen.not_modified.load(Ordering::SeqCst), 1, "revalidated with a conditional request");
    assert_eq!(o.seen.get(), 1, "no second download after a 304");
    assert_eq!(o.seen.leaked_credentials.load(Ordering::SeqCst), 0, "no cookies or auth sent to the origin");
    assert_eq!(get(&s, "/nope.jpg?w=10").await.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_origin_failures_map_to_clear_statuses() {
    let o = start_http_origin().await;
    let s = http_imgedge(&o, "/", |c| {
        c.fetch.timeout_secs = 1.0;
        c.limits.max_source_bytes = 1 << 20;
    })
    .await;
    let check = |path: &'static str, status: u16, cache: &'static str| {
        let s = &s;
        async move {
            let r = get(s, path).await;
            assert_eq!(r.status(), status, "{path}");
            assert_eq!(r.headers()["cache-control"], cache, "{path}");
        }
    };
    check("/stall?w=10", 504, "no-store").await;
    check("/error?w=10", 502, "no-store").await;
    check("/big?w=10", 422, "public, max-age=60").await;
    check("/chunked?w=10", 422, "public, max-age=60").await;
    check(
        "/redirect/photos/nikon-p6000_640x480_gps.jpg?w=10&fm=png",
        200,
        "public, max-age=86400, stale-while-revalidate=604800",
    )
    .await;
    check("/to-metadata?w=10", 403, "no-store").await;
    check("/loop?w=10", 502, "no-store").await;

    let t = http_imgedge(&o, "", |c| c.origin = o.truncating.clone()).await;
    let r = get(&t, "/x.jpg?w=10").await;
    assert_eq!(r.status(), 502, "a truncated body is an origin failure");
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_misses_against_a_slow_origin_cost_one_fetch() {
    let o = start_http_origin().await;
    let s = http_imgedge(&o, "/slow", |_| {}).await;
    let url = format!("{}/photos/hato_3082x2048.jpg?w=500&fm=webp", s.base);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let u = url.clone();
            tokio::spawn(async move { client().get(u).send().await.unwrap().bytes().await.unwrap() })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        bodies.push(t.await.unwrap());
    }
    assert!(bodies.iter().all(|b| *b == bodies[0] && !b.is_empty()));
    assert_eq!(o.seen.get(), 1, "one GET of the original");
    assert_eq!(s.state.stats.transforms.get(), 1, "one transform");
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_sources_are_allowlisted_and_ssrf_guarded() {
    let o = start_http_origin().await;
    let port = o.base.rsplit(':').next().unwrap().to_string();
    let s = start_with(&corpus(), |c| {
        c.remote.enabled = true;
        c.remote.allow_hosts = vec!["*".into()];
    })
    .await;
    let enc = |u: &str| percent_encoding::utf8_percent_encode(u, percent_encoding::NON_ALPHANUMERIC).to_string();
    for target in [
        format!("http://127.0.0.1:{port}/img/photos/jolla_3264x2448.jpg"),
        format!("http://2130706433:{port}/img/photos/jolla_3264x2448.jpg"),
        format!("http://0177.0.0.1:{port}/img/photos/jolla_3264x2448.jpg"),
        format!("http://0x7f000001:{port}/img/photos/jolla_3264x2448.jpg"),
        format!("http://[::1]:{port}/img/photos/jolla_3264x2448.jpg"),
        format!("http://[::ffff:127.0.0.1]:{port}/img/photos/jolla_3264x2448.jpg"),
        format!("http://localhost:{port}/img/photos/jolla_3264x2448.jpg"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/x.jpg".to_string(),
        "http://192.168.1.1/x.jpg".to_string(),
        "http://[fe80::1]/x.jpg".to_string(),
        "http://0.0.0.0/x.jpg".to_string(),
    ] {
        let r = get(&s, &format!("/remote/{}?w=10", enc(&target))).await;
        assert_eq!(r.status(), 403, "{target}");
        let body = r.text().await.unwrap();
        assert!(body.contains("not a public address"), "{target}: {body}");
    }
    assert_eq!(o.seen.get() + o.seen.heads.load(Ordering::SeqCst), 0, "no request reached the internal server");
    // a configured origin's redirect to cloud metadata is refused too
    let t = http_imgedge(&o, "/", |_| {}).await;
    assert_eq!(get(&t, "/to-metadata?w=10").await.status(), 403);

    // the allowlist itself
    let strict = start_with(&corpus(), |c| {
        c.remote.enabled = true;
        c.remote.allow_hosts = vec!["*.example.com".into()];
    })
    .await;
    let r = get(&strict, &format!("/remote/{}?w=10", enc("http://evil.test/a.jpg"))).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("not allowed"));
    let r = get(&strict, &format!("/remote/{}?w=10", enc("file:///etc/passwd"))).await;
    assert_eq!(r.status(), 400);

    // with private networks explicitly allowed, the same loopback source is fetched
    let open = start_with(&corpus(), |c| {
        c.remote.enabled = true;
        c.remote.allow_hosts = vec!["127.0.0.1".into()];
        c.fetch.allow_private_networks = true;
    })
    .await;
    let url = format!("http://127.0.0.1:{port}/img/photos/jolla_3264x2448.jpg");
    assert_eq!(fetch_image(&open, &format!("/remote/{}?w=64&fm=png", enc(&url))).await.dimensions(), (64, 48));
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_while_revalidate_serves_the_held_variant_and_refreshes_in_the_background() {
    let o = start_http_origin().await;
    let s = http_imgedge(&o, "/swr", |_| {}).await;
    let url = "/cat.jpg?w=64&fm=png";
    *o.seen.swr_source.lock().unwrap() = Some("photos/nikon-p6000_640x480_gps.jpg".into());
    let first = get(&s, url).await;
    assert_eq!(first.headers()["x-cache"], "MISS");
    let old_etag = first.headers()["etag"].clone();
    assert_eq!(decode(&first.bytes().await.unwrap()).dimensions(), (64, 48));

    // max-age=1 runs out; the object changes at the origin (a portrait now)
    tokio::time::sleep(Duration::from_millis(1300)).await;
    *o.seen.swr_source.lock().unwrap() = Some("photos/canon-ixus40_1704x2272.jpg".into());
    let stale = get(&s, url).await;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.headers()["etag"], old_etag, "inside stale-while-revalidate the held variant is served");
    assert_eq!(stale.headers()["x-cache"], "HIT-MEMORY");
    assert_eq!(decode(&stale.bytes().await.unwrap()).dimensions(), (64, 48));

    // the background revalidation sees the new version; the next request makes its variant
    let mut fresh = None;
    for _ in 0..100 {
        let r = get(&s, url).await;
        if r.headers()["etag"] != old_etag {
            fresh = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fresh = fresh.expect("the background revalidation picked up the new version");
    assert_eq!(fresh.headers()["x-cache"], "MISS");
    assert_eq!(decode(&fresh.bytes().await.unwrap()).dimensions(), (64, 85));
    assert_eq!(s.state.stats.transforms.get(), 2);
}
