//! Accept negotiation and Vary, ETag/304, HEAD, Content-Disposition and the security headers.

use crate::util::*;

const CHROME: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";

#[tokio::test(flavor = "multi_thread")]
async fn auto_format_follows_accept_and_varies() {
    let s = start().await;
    let src = "/photos/nikon-p6000_640x480_gps.jpg?w=100&fm=auto";
    for (accept, mime) in [
        (CHROME, "image/avif"),
        ("image/webp,*/*", "image/webp"),
        ("image/avif;q=0,image/webp", "image/webp"),
        ("*/*", "image/jpeg"),
        ("image/*", "image/jpeg"),
    ] {
        let r = get_accept(&s, src, accept).await;
        assert_eq!(r.headers()["content-type"], mime, "Accept: {accept}");
        assert_eq!(r.headers()["vary"], "Accept", "Accept: {accept}");
    }
    // no fm at all: the shipped default is auto
    let r = get_accept(&s, "/photos/nikon-p6000_640x480_gps.jpg?w=100", "image/webp").await;
    assert_eq!(r.headers()["content-type"], "image/webp");
    assert_eq!(r.headers()["vary"], "Accept");
    // an image with transparency falls back to PNG, not JPEG
    let r = get_accept(&s, "/png/paletted-transparent.png?w=100&fm=auto", "*/*").await;
    assert_eq!(r.headers()["content-type"], "image/png");
    // an explicit format does not vary
    let r = get_accept(&s, "/photos/nikon-p6000_640x480_gps.jpg?w=100&fm=webp", CHROME).await;
    assert_eq!(r.headers()["content-type"], "image/webp");
    assert!(r.headers().get("vary").is_none());
    // different negotiated formats have different ETags
    let a = get_accept(&s, src, CHROME).await.headers()["etag"].clone();
    let b = get_accept(&s, src, "image/webp").await.headers()["etag"].clone();
    assert_ne!(a, b);
}

#[tokio::test(flavor = "multi_thread")]
async fn caching_headers_and_conditional_requests() {
    let s = start().await;
    let url = format!("{}/photos/nikon-p6000_640x480_gps.jpg?w=200&fm=webp", s.base);
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["cache-control"], "public, max-age=86400, stale-while-revalidate=604800");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
    assert_eq!(h["content-disposition"], "inline; filename=\"nikon-p6000_640x480_gps.webp\"");
    assert_eq!(h["x-cache"], "MISS");
    assert!(h["server-timing"].to_str().unwrap().contains("transform;dur="));
    assert!(h["server-timing"].to_str().unwrap().contains("origin;dur="));
    let etag = h["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong ETag: {etag}");
    let last_modified = h["last-modified"].to_str().unwrap().to_string();
    httpdate::parse_http_date(&last_modified).expect("Last-Modified is an HTTP date");

    for (name, value) in [
        ("if-none-match", etag.clone()),
        ("if-none-match", format!("\"other\", {etag}")),
        ("if-none-match", format!("W/{etag}")),
        ("if-none-match", "*".to_string()),
        ("if-modified-since", last_modified.clone()),
    ] {
        let r = client().get(&url).header(name, &value).send().await.unwrap();
        assert_eq!(r.status(), 304, "{name}: {value}");
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
        assert!(r.headers().contains_key("cache-control"));
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = client().get(&url).header("if-none-match", "\"stale\"").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client().get(&url).header("if-modified-since", "Thu, 01 Jan 1970 00:00:01 GMT").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_original_gets_a_new_etag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pic.jpg");
    std::fs::copy(corpus().join("orientation/Landscape_1.jpg"), &file).unwrap();
    let s = start_with(dir.path(), |c| c.fetch.folder_recheck_ms = 0).await;
    let first = get(&s, "/pic.jpg?w=50&fm=png").await;
    let etag1 = first.headers()["etag"].clone();
    let img1 = decode(&first.bytes().await.unwrap());
    std::fs::copy(corpus().join("orientation/Portrait_1.jpg"), &file).unwrap();
    let second = get(&s, "/pic.jpg?w=50&fm=png").await;
    assert_ne!(second.headers()["etag"], etag1);
    let r =
        client().get(format!("{}/pic.jpg?w=50&fm=png", s.base)).header("if-none-match", etag1).send().await.unwrap();
    assert_eq!(r.status(), 200, "the old ETag no longer matches");
    assert_ne!(decode(&second.bytes().await.unwrap()).dimensions(), img1.dimensions());
}

#[tokio::test(flavor = "multi_thread")]
async fn head_answers_the_same_headers_without_a_body() {
    let s = start().await;
    let url = format!("{}/webp/gallery4_1024x772_lossy.webp?w=300&fm=jpeg", s.base);
    let g = client().get(&url).send().await.unwrap();
    let gh = g.headers().clone();
    let body = g.bytes().await.unwrap();
    let h = client().head(&url).send().await.unwrap();
    assert_eq!(h.status(), 200);
    for name in ["content-type", "content-length", "etag", "last-modified", "cache-control", "content-disposition"] {
        assert_eq!(h.headers()[name], gh[name], "{name}");
    }
    assert_eq!(gh["content-length"].to_str().unwrap(), body.len().to_string());
    assert!(h.bytes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dl_makes_an_attachment() {
    let s = start().await;
    let cd = |q: &'static str| {
        let s = &s;
        async move {
            get(s, &format!("/photos/jolla_3264x2448.jpg?w=50&{q}")).await.headers()["content-disposition"].clone()
        }
    };
    assert_eq!(cd("fm=webp&dl").await, "attachment; filename=\"jolla_3264x2448.webp\"");
    assert_eq!(cd("fm=png&dl=holiday").await, "attachment; filename=\"holiday.png\"");
    assert_eq!(cd("fm=jpeg&dl=my%20trip.jpg").await, "attachment; filename=\"my trip.jpg\"");
    assert_eq!(cd("fm=jpeg").await, "inline; filename=\"jolla_3264x2448.jpg\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_control_and_default_format_come_from_config() {
    let s = start_with(&corpus(), |c| {
        c.cache_control = "public, max-age=31536000, immutable".into();
        c.default_format = imgedge::url::FormatParam::Png;
    })
    .await;
    let r = get_accept(&s, "/photos/jolla_3264x2448.jpg?w=50", CHROME).await;
    assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(r.headers()["content-type"], "image/png");
    assert!(r.headers().get("vary").is_none());
}
