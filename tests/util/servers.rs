//! Real servers the tests start on 127.0.0.1:0: an S3-protocol server (s3s + s3s-fs, checking SigV4
//! signatures) and an HTTP origin that counts what it is asked and can be slow, fail, lie or redirect.

use super::corpus;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const AK: &str = "AKIAIMGEDGETEST";
pub const SK: &str = "imgedge-test-secret-key-0123456789";

pub struct S3Server {
    pub endpoint: String,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start_s3() -> S3Server {
    let dir = tempfile::tempdir().unwrap();
    let fs = s3s_fs::FileSystem::new(dir.path()).unwrap();
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(AK, SK));
    let svc = b.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { break };
            let svc = svc.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    S3Server { endpoint, _dir: dir, task }
}

pub async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(AK, SK, None, None, "test"))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

pub async fn put(client: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    client.put_object().bucket(bucket).key(key).body(body.into()).send().await.unwrap();
}

/// What the HTTP origin saw.
#[derive(Default)]
pub struct Seen {
    pub gets: AtomicUsize,
    pub heads: AtomicUsize,
    pub not_modified: AtomicUsize,
    pub leaked_credentials: AtomicUsize,
    /// What `/swr/{path}` serves instead of `path`, when set (the object "changes" at the origin).
    pub swr_source: std::sync::Mutex<Option<String>>,
}

impl Seen {
    pub fn get(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

pub struct HttpOrigin {
    pub base: String,
    /// A second server on another port that promises more bytes than it sends.
    pub truncating: String,
    pub seen: Arc<Seen>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for HttpOrigin {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Routes: `/img/{path}` corpus files with ETag + `Cache-Control: max-age=1` (304 on a matching
/// If-None-Match), `/slow/{path}` the same after 600 ms, `/stall` never answers in time, `/error` 500,
/// `/big` 2 MiB with Content-Length, `/chunked` 2 MiB without, `/redirect/{path}` → `/img/{path}`,
/// `/to-metadata` → 169.254.169.254, `/loop` → itself, `/swr/{path}` like `/img` but with
/// `stale-while-revalidate=60` (and the file in `Seen::swr_source` when that is set).
pub async fn start_http_origin() -> HttpOrigin {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .route("/img/{*path}", get(img))
        .route("/slow/{*path}", get(slow))
        .route("/swr/{*path}", get(swr))
        .route("/stall", get(|| async { tokio::time::sleep(Duration::from_secs(30)).await }))
        .route("/error", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/big", get(|| async { vec![0xFFu8; 2 << 20] }))
        .route(
            "/chunked",
            get(|| async {
                let chunks = (0..32).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0xD8u8; 64 << 10])));
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route("/redirect/{*path}", get(|Path(p): Path<String>| async move { redirect(&format!("/img/{p}")) }))
        .route("/to-metadata", get(|| async { redirect("http://169.254.169.254/latest/meta-data/") }))
        .route("/loop", get(|| async { redirect("/loop") }))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let t1 = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let raw = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let truncating = format!("http://{}", raw.local_addr().unwrap());
    let t2 = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = raw.accept().await else { break };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head =
                    b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\nETag: \"t\"\r\n\r\n";
                let _ = s.write_all(head).await;
                if buf.starts_with(b"GET") {
                    let _ = s.write_all(&[0xFF, 0xD8, 0xFF, 0xE0]).await;
                    let _ = s.write_all(&[0u8; 996]).await;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    HttpOrigin { base, truncating, seen, tasks: vec![t1, t2] }
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_string())]).into_response()
}

async fn img(
    State(seen): State<Arc<Seen>>,
    method: axum::http::Method,
    Path(p): Path<String>,
    h: HeaderMap,
) -> Response {
    serve_file(&seen, method, &p, &h).await
}

async fn slow(
    State(seen): State<Arc<Seen>>,
    method: axum::http::Method,
    Path(p): Path<String>,
    h: HeaderMap,
) -> Response {
    tokio::time::sleep(Duration::from_millis(600)).await;
    serve_file(&seen, method, &p, &h).await
}

async fn swr(
    State(seen): State<Arc<Seen>>,
    method: axum::http::Method,
    Path(p): Path<String>,
    h: HeaderMap,
) -> Response {
    let src = seen.swr_source.lock().unwrap().clone().unwrap_or(p);
    let mut r = serve_file(&seen, method, &src, &h).await;
    r.headers_mut().insert(header::CACHE_CONTROL, "max-age=1, stale-while-revalidate=60".parse().unwrap());
    r
}

async fn serve_file(seen: &Seen, method: axum::http::Method, p: &str, h: &HeaderMap) -> Response {
    if h.contains_key(header::COOKIE) || h.contains_key(header::AUTHORIZATION) {
        seen.leaked_credentials.fetch_add(1, Ordering::SeqCst);
    }
    let Ok(data) = tokio::fs::read(corpus().join(p)).await else { return StatusCode::NOT_FOUND.into_response() };
    let etag = format!("\"{}\"", &blake3::hash(&data).to_hex()[..16]);
    if method == axum::http::Method::HEAD {
        seen.heads.fetch_add(1, Ordering::SeqCst);
    }
    if h.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        seen.not_modified.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::CACHE_CONTROL, "max-age=1".into())])
            .into_response();
    }
    if method == axum::http::Method::GET {
        seen.gets.fetch_add(1, Ordering::SeqCst);
    }
    ([(header::ETAG, etag), (header::CACHE_CONTROL, "max-age=1".to_string())], data).into_response()
}
