//! The upload API over real HTTP: multipart uploads of each format, metadata stripping, every error
//! status, content-hash ids, delete tokens, one-time local URLs and S3 presigned PUTs.

use crate::util::servers::*;
use crate::util::*;
use std::path::Path;

fn read(path: &str) -> Vec<u8> {
    std::fs::read(corpus().join(path)).unwrap()
}

async fn upload_server(origin: &Path, tweak: impl FnOnce(&mut imgedge::Config)) -> Server {
    start_with(origin, |c| {
        c.upload.enabled = true;
        tweak(c);
    })
    .await
}

async fn post_file(
    s: &Server,
    name: &str,
    bytes: Vec<u8>,
    title: Option<&str>,
    key: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()));
    if let Some(t) = title {
        form = form.text("title", t.to_string());
    }
    let mut req = client().post(format!("{}/api/upload", s.base)).multipart(form);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// `POST /api/get-upload-url` for `filename` / `content_type`.
async fn upload_url(s: &Server, filename: &str, content_type: &str) -> serde_json::Value {
    let body = serde_json::json!({"filename": filename, "contentType": content_type});
    client().post(format!("{}/api/get-upload-url", s.base)).json(&body).send().await.unwrap().json().await.unwrap()
}

fn gps_fields(bytes: &[u8]) -> usize {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(bytes)) else { return 0 };
    exif.fields().filter(|f| f.ifd_num == exif::In::PRIMARY && f.tag.context() == exif::Context::Gps).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_allowed_format_uploads_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let s = upload_server(dir.path(), |_| {}).await;
    for (path, fmt, w, h) in [
        ("photos/nikon-p6000_640x480_gps.jpg", "jpeg", 640, 480),
        ("png/paletted-transparent.png", "png", 300, 225),
        ("gif/trans-x.gif", "gif", 100, 100),
        ("webp/flower_480x360_lossy.webp", "webp", 480, 360),
        ("avif/fox_1204x800_8bit444.avif", "avif", 1204, 800),
    ] {
        let (status, body) = post_file(&s, path, read(path), Some("holiday"), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["success"], true);
        assert_eq!(
            (body["format"].as_str(), body["width"].as_u64(), body["height"].as_u64()),
            (Some(fmt), Some(w), Some(h)),
            "{path}"
        );
        assert_eq!(body["title"], "holiday");
        let direct = body["directUrl"].as_str().unwrap();
        assert!(direct.starts_with(&s.base), "{direct}");
        // transform parameters work on the stored original
        let img = fetch_image(&s, &format!("{}?w=50&fm=png", &direct[s.base.len()..])).await;
        assert_eq!(img.width(), 50, "{path}");
        assert!(dir.path().join(body["key"].as_str().unwrap()).is_file());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gps_is_stripped_orientation_kept_and_ids_are_content_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let s = upload_server(dir.path(), |_| {}).await;
    let src = read("photos/iphone6_3264x2448_gps.jpg");
    assert!(gps_fields(&src) > 0, "the input carries GPS");
    let (status, a) = post_file(&s, "gps.jpg", src.clone(), None, None).await;
    assert_eq!(status, 200, "{a}");
    let stored = std::fs::read(dir.path().join(a["key"].as_str().unwrap())).unwrap();
    assert_eq!(gps_fields(&stored), 0, "GPS removed");
    assert!(!stored.windows(5).any(|w| w == b"Apple"), "camera make removed");
    assert!((a["bytes"].as_u64().unwrap() as usize) < src.len());
    let (_, b) = post_file(&s, "again.jpg", src, None, None).await;
    assert_eq!(a["id"], b["id"], "same file, same id");

    // orientation 6 survives as the only tag: the upright image is portrait
    let (_, o) = post_file(&s, "o.jpg", read("photos/canon-sx60_2048x1536_orient6.jpg"), None, None).await;
    assert_eq!((o["width"].as_u64(), o["height"].as_u64()), (Some(1536), Some(2048)));
    let direct = o["directUrl"].as_str().unwrap();
    assert_eq!(fetch_image(&s, &format!("{}?w=300&fm=png", &direct[s.base.len()..])).await.dimensions(), (300, 400));

    // bytes appended after the JPEG's end (a polyglot) are dropped
    let mut poly = read("photos/nikon-p6000_640x480_gps.jpg");
    poly.extend_from_slice(b"<?php echo 'owned'; ?>");
    let (_, p) = post_file(&s, "poly.jpg", poly, None, None).await;
    let stored = std::fs::read(dir.path().join(p["key"].as_str().unwrap())).unwrap();
    assert!(!stored.windows(5).any(|w| w == b"<?php"));
    assert!(stored.ends_with(&[0xFF, 0xD9]));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_has_its_status_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    // the 2.9 MB photo is over the 2 MiB cap but within the route's drain allowance (cap + 1 MiB)
    let s = upload_server(dir.path(), |c| {
        c.upload.max_bytes = 2 << 20;
        c.upload.max_pixels = 4_000_000;
    })
    .await;
    let err = |(status, body): (u16, serde_json::Value)| {
        assert_eq!(body["success"], false, "{body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
        status
    };
    // 400: no file, malformed multipart
    let r = client()
        .post(format!("{}/api/upload", s.base))
        .multipart(reqwest::multipart::Form::new().text("title", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(err((r.status().as_u16(), r.json().await.unwrap())), 400);
    let r = client()
        .post(format!("{}/api/upload", s.base))
        .header("content-type", "multipart/form-data; boundary=x")
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(err((r.status().as_u16(), r.json().await.unwrap())), 400);
    // 413, 415, 422 (undecodable, over the pixel limit)
    assert_eq!(err(post_file(&s, "big.jpg", read("photos/olympus-ep3_4032x3024.jpg"), None, None).await), 413);
    assert_eq!(err(post_file(&s, "doc.jpg", read("bad/wrong-content/ole-document.jpg"), None, None).await), 415);
    assert_eq!(err(post_file(&s, "svg.png", read("bad/wrong-content/svg-document.png"), None, None).await), 415);
    assert_eq!(err(post_file(&s, "t.jpg", read("bad/truncated_vips.jpg"), None, None).await), 422);
    assert_eq!(err(post_file(&s, "huge.png", read("bad/bombs/16384x16384.png"), None, None).await), 422);
    let stored: Vec<_> = files_under(dir.path());
    assert!(stored.is_empty(), "nothing stored on failure: {stored:?}");

    // 401 with API keys configured
    let keyed = upload_server(dir.path(), |c| c.upload.api_keys = vec!["k-123".into()]).await;
    let small = read("png/pngsuite/basn2c08.png");
    assert_eq!(err(post_file(&keyed, "a.png", small.clone(), None, None).await), 401);
    assert_eq!(err(post_file(&keyed, "a.png", small.clone(), None, Some("wrong")).await), 401);
    assert_eq!(post_file(&keyed, "a.png", small.clone(), None, Some("k-123")).await.0, 200);

    // 429 with Retry-After
    let limited = upload_server(dir.path(), |c| c.upload.per_minute = 2).await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(post_file(&limited, "a.png", small.clone(), None, None).await.0);
    }
    assert_eq!(codes, vec![200, 200, 429]);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_tokens_remove_the_original_and_its_variants() {
    let dir = tempfile::tempdir().unwrap();
    let s = upload_server(dir.path(), |c| c.fetch.folder_recheck_ms = 0).await;
    let (_, body) = post_file(&s, "a.jpg", read("photos/nikon-p6000_640x480_gps.jpg"), None, None).await;
    let direct = body["directUrl"].as_str().unwrap()[s.base.len()..].to_string();
    assert_eq!(get(&s, &format!("{direct}?w=40")).await.status(), 200);
    let delete_url = body["deleteUrl"].as_str().unwrap().to_string();
    let forged = delete_url.replace("token=", "token=x");
    assert_eq!(client().delete(&forged).send().await.unwrap().status(), 403);
    let r = client().delete(&delete_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get(&s, &format!("{direct}?w=40")).await.status(), 404, "the cached variant is gone too");
    assert_eq!(client().delete(&delete_url).send().await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_time_local_upload_urls() {
    let dir = tempfile::tempdir().unwrap();
    let s = upload_server(dir.path(), |_| {}).await;
    let r = upload_url(&s, "cat.png", "image/png").await;
    let put_url = r["uploadUrl"].as_str().unwrap();
    assert_eq!(r["expiresIn"], 300);
    let png = read("png/paletted-transparent.png");
    let first = client().put(put_url).body(png.clone()).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let second = client().put(put_url).body(png).send().await.unwrap();
    assert_eq!(second.status(), 403, "a one-time URL works once");
    let image = r["imageUrl"].as_str().unwrap();
    assert_eq!(fetch_image(&s, &format!("{}?w=30&fm=png", &image[s.base.len()..])).await.width(), 30);
    // the same validation applies
    let r = upload_url(&s, "x.png", "image/png").await;
    let bad = client().put(r["uploadUrl"].as_str().unwrap()).body(read("bad/broken.png")).send().await.unwrap();
    assert_eq!(bad.status(), 422);
    let r = client()
        .post(format!("{}/api/get-upload-url", s.base))
        .json(&serde_json::json!({"filename": "x.pdf", "contentType": "application/pdf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_presigned_put_then_transform() {
    let s3 = start_s3().await;
    let c = s3_client(&s3.endpoint).await;
    c.create_bucket().bucket("uploads").send().await.unwrap();
    let endpoint = s3.endpoint.clone();
    let s = upload_server(&corpus(), move |cfg| {
        cfg.origin = format!("s3://uploads?endpoint={endpoint}&region=us-east-1&path_style=true");
        cfg.origin_options.access_key_id = Some(AK.into());
        cfg.origin_options.secret_access_key = Some(SK.into());
    })
    .await;
    let r = upload_url(&s, "cat.jpg", "image/jpeg").await;
    let put_url = r["uploadUrl"].as_str().unwrap();
    assert!(put_url.starts_with(&s3.endpoint) && put_url.contains("X-Amz-Signature"), "{put_url}");
    let ok = client()
        .put(put_url)
        .header("content-type", "image/jpeg")
        .body(read("photos/nikon-p6000_640x480_gps.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());
    let image = r["imageUrl"].as_str().unwrap();
    assert_eq!(fetch_image(&s, &format!("{}?w=64&fm=png", &image[s.base.len()..])).await.dimensions(), (64, 48));
    // and a multipart upload lands in the bucket
    let (status, body) = post_file(&s, "b.png", read("png/paletted-transparent.png"), None, None).await;
    assert_eq!(status, 200, "{body}");
    c.head_object().bucket("uploads").key(body["key"].as_str().unwrap()).send().await.unwrap();
}

/// Run `imgedge upload` (the real binary) and return (exit ok, stdout lines, stderr).
async fn cli_upload(args: &[&str]) -> (bool, Vec<String>, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_imgedge"))
            .arg("upload")
            .args(args)
            .env_remove("IMGEDGE_API_KEY")
            .env_remove("IMGEDGE_SERVER")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), stdout.lines().map(str::to_owned).collect(), stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_uploads_a_folder_retrying_429_and_reports_each_file() {
    let stored = tempfile::tempdir().unwrap();
    // one upload at once, then one every 100 ms: four parallel uploads must meet 429s and retry
    let s = upload_server(stored.path(), |c| {
        c.upload.per_minute = 600;
        c.upload.burst = Some(1);
        c.upload.api_keys = vec!["k-cli".into()];
    })
    .await;
    let batch = tempfile::tempdir().unwrap();
    std::fs::create_dir(batch.path().join("sub")).unwrap();
    let good = [
        ("a.jpg", "photos/nikon-p6000_640x480_gps.jpg"),
        ("b.png", "png/paletted-transparent.png"),
        ("sub/c.webp", "webp/flower_480x360_lossy.webp"),
        ("sub/d.gif", "gif/trans-x.gif"),
    ];
    for (name, src) in good {
        std::fs::copy(corpus().join(src), batch.path().join(name)).unwrap();
    }
    std::fs::write(batch.path().join("notes.txt"), "not an image, not picked from a folder").unwrap();
    let dir = batch.path().to_str().unwrap();
    let (ok, lines, summary) =
        cli_upload(&[dir, "--server", &s.base, "--api-key", "k-cli", "-j", "4", "--backoff-ms", "50"]).await;
    assert!(ok, "{lines:?}");
    let retries: u32 = summary.rsplit(", ").next().and_then(|t| t.split(' ').next()?.parse().ok()).unwrap();
    assert!(summary.contains("4 uploaded, 0 failed") && retries >= 1, "{summary}");
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (name, src) in good {
        let file = name.rsplit('/').next().unwrap();
        let line = lines.iter().find(|l| l.starts_with(&format!("✓ {file} → "))).unwrap_or_else(|| panic!("{lines:?}"));
        let url = line.rsplit(' ').next().unwrap();
        let served = client().get(url).send().await.unwrap();
        assert_eq!(served.status(), 200, "{url}");
        let want = decode(&std::fs::read(corpus().join(src)).unwrap());
        assert_eq!(decode(&served.bytes().await.unwrap()).dimensions(), want.dimensions(), "{url}");
    }
    assert_eq!(files_under(stored.path()).iter().filter(|p| !p.ends_with("upload.secret")).count(), 4);

    // a bad file is a final ✗ (no retry for a 4xx), the rest still land, and the exit code says so
    let truncated = batch.path().join("truncated.jpg");
    std::fs::copy(corpus().join("bad/truncated_vips.jpg"), &truncated).unwrap();
    let named = batch.path().join("a.jpg");
    let (ok, lines, _) =
        cli_upload(&[truncated.to_str().unwrap(), named.to_str().unwrap(), "--server", &s.base, "--api-key", "k-cli"])
            .await;
    assert!(!ok);
    assert!(lines.iter().any(|l| l.starts_with("✗ truncated.jpg: 422 ")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("✓ a.jpg → ")), "{lines:?}");

    // a wrong key is refused without retries; a dead server is retried, then reported
    let (ok, lines, _) = cli_upload(&[named.to_str().unwrap(), "--server", &s.base, "--api-key", "nope"]).await;
    assert!(!ok && lines.len() == 1 && lines[0].starts_with("✗ a.jpg: 401 "), "{lines:?}");
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let (ok, lines, _) = cli_upload(&[
        named.to_str().unwrap(),
        "--server",
        &format!("http://{dead}"),
        "--retries",
        "2",
        "--backoff-ms",
        "10",
    ])
    .await;
    assert!(!ok && lines.len() == 1 && lines[0].contains("(after 3 attempts)"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_allows_listed_browser_origins_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = upload_server(dir.path(), |c| c.upload.cors_origins = vec!["https://app.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, format!("{}/api/upload", s.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert!(ok.status().is_success());
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example.com");
    let methods = ok.headers()["access-control-allow-methods"].to_str().unwrap().to_ascii_uppercase();
    assert!(methods.contains("POST"), "{methods}");
    assert!(ok.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // the real request carries the header too, and the upload works from the browser's origin
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(read("png/pngsuite/basn2c08.png")).file_name("a.png"));
    let r = client()
        .post(format!("{}/api/upload", s.base))
        .header("origin", "https://app.example.com")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example.com");
}
