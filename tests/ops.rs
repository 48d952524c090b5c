//! Operations: Prometheus metrics, request ids, health and readiness through a graceful shutdown, and
//! `imgedge config check`.

use crate::util::*;
use std::time::Duration;

async fn scrape(s: &Server) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = imgedge::http::metrics_router(s.state.clone());
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let r = client().get(format!("http://{addr}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let body = r.text().await.unwrap();
    task.abort();
    body
}

/// Sum of every sample of `name` whose labels contain all of `labels`.
fn value(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_exposed_and_move() {
    let s = start().await;
    let before = scrape(&s).await;
    let url = "/photos/nikon-p6000_640x480_gps.jpg?w=77&fm=webp";
    get(&s, url).await;
    get(&s, url).await;
    get(&s, "/nope.jpg").await;
    let after = scrape(&s).await;
    for name in [
        "imgedge_requests_total",
        "imgedge_request_duration_seconds_bucket",
        "imgedge_cache_results_total",
        "imgedge_transform_duration_seconds_bucket",
        "imgedge_origin_fetch_duration_seconds_bucket",
        "imgedge_response_bytes_total",
        "imgedge_origin_bytes_total",
        "imgedge_transform_queue_depth",
        "imgedge_transforms_in_flight",
        "imgedge_disk_cache_bytes",
        "imgedge_disk_cache_entries",
        "imgedge_memory_cache_bytes",
    ] {
        assert!(after.lines().any(|l| l.starts_with(name)), "{name} missing from:\n{after}");
    }
    let moved = |name: &str, labels: &[&str], by: f64| {
        let d = value(&after, name, labels) - value(&before, name, labels);
        assert!(d >= by, "{name}{labels:?} moved by {d}, expected at least {by}");
    };
    moved("imgedge_requests_total", &["route=\"image\"", "status=\"2xx\""], 2.0);
    moved("imgedge_requests_total", &["route=\"image\"", "status=\"4xx\""], 1.0);
    moved("imgedge_cache_results_total", &["result=\"MISS\""], 1.0);
    moved("imgedge_cache_results_total", &["result=\"HIT-MEMORY\""], 1.0);
    moved("imgedge_transform_duration_seconds_count", &["format=\"webp\""], 1.0);
    assert!(!after.contains("nikon"), "no path ever becomes a label");
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_echoed_or_made() {
    let s = start().await;
    let r = client().get(format!("{}/healthz", s.base)).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let a = get(&s, "/healthz").await.headers()["x-request-id"].clone();
    let b = get(&s, "/healthz").await.headers()["x-request-id"].clone();
    assert_ne!(a, b);
    assert_eq!(a.len(), 16);
    // a repeat of an image URL is answered ahead of the router; it gets ids the same way
    let url = format!("{}/photos/jolla_3264x2448.jpg?w=120&fm=webp", s.base);
    for expect in ["MISS", "HIT-MEMORY", "HIT-MEMORY"] {
        let r = client().get(&url).header("x-request-id", "img-7").send().await.unwrap();
        assert_eq!(r.headers()["x-cache"], expect);
        assert_eq!(r.headers()["x-request-id"], "img-7");
    }
    let c = get(&s, "/photos/jolla_3264x2448.jpg?w=120&fm=webp").await;
    let d = get(&s, "/photos/jolla_3264x2448.jpg?w=120&fm=webp").await;
    assert_eq!(d.headers()["x-cache"], "HIT-MEMORY");
    assert_ne!(c.headers()["x-request-id"], d.headers()["x-request-id"]);
    assert_eq!(d.headers()["x-request-id"].len(), 16);
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_fails_readiness_and_finishes_in_flight_requests() {
    use tower::ServiceExt;
    let cache = tempfile::tempdir().unwrap();
    let config = imgedge::Config {
        origin: corpus().to_string_lossy().into_owned(),
        cache_dir: cache.path().to_path_buf(),
        shutdown_grace_secs: 20.0,
        ..Default::default()
    };
    let state = std::sync::Arc::new(imgedge::AppState::new(config).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(imgedge::http::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    let ready = |state: std::sync::Arc<imgedge::AppState>| async move {
        let req = http::Request::get("/readyz").body(axum::body::Body::empty()).unwrap();
        imgedge::http::router(state).oneshot(req).await.unwrap().status().as_u16()
    };
    assert_eq!(client().get(format!("http://{addr}/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(ready(state.clone()).await, 200);

    // a slow request (12 MP → AVIF) is in flight when the signal comes
    let slow = tokio::spawn(async move {
        client()
            .get(format!("http://{addr}/photos/olympus-ep3_4032x3024.jpg?w=900&fm=avif"))
            .send()
            .await
            .map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ready(state.clone()).await, 503, "readiness fails once shutdown begins");
    assert_eq!(slow.await.unwrap().unwrap(), 200, "the in-flight request completes");
    server.await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer accepting");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_check_validates_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "origin = \"/srv/img\"\n[signing]\nkeys = [\"a-very-secret-signing-key\"]\n[admin]\ntoken = \"hunter2hunter2\"\n[limits]\nworkers = 3\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[limits]\nworkerz = 3\n").unwrap();
    let run = |path: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_imgedge"))
                .args(["config", "check", "--config"])
                .arg(path)
                .output()
                .unwrap()
        })
    };
    let ok = run(good).await.unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let out = String::from_utf8(ok.stdout).unwrap();
    assert!(out.contains("workers = 3") && out.contains("/srv/img"), "{out}");
    assert!(!out.contains("a-very-secret-signing-key") && !out.contains("hunter2"), "secrets are masked:\n{out}");
    let no = run(bad).await.unwrap();
    assert!(!no.status.success());
    assert!(String::from_utf8_lossy(&no.stderr).contains("workerz"));
}
