//! The HTTP edge: routes, per-request logging, panic safety, and the server loop with graceful shutdown.

pub mod admin;
pub mod conn;
pub mod front;
pub mod headers;
pub mod health;
pub mod hot;
pub mod image;

use crate::app::AppState;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::catch_panic::CatchPanicLayer;

/// The public router. Everything that is not a fixed route is an image path.
pub fn router(state: Arc<AppState>) -> Router {
    router_with(state, Router::new())
}

/// [`router`] with `extra` routes inside the same middleware (access log, request ids, panic guard).
pub fn router_with(state: Arc<AppState>, extra: Router<Arc<AppState>>) -> Router {
    let mut r = extra
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/cache/{*path}", delete(admin::purge));
    if state.uploads.is_some() {
        use crate::upload;
        let limit = state.config.upload.max_bytes as usize + (1 << 20);
        let mut api = Router::new()
            .route("/api/upload", post(upload::upload).layer(DefaultBodyLimit::max(limit)))
            .route("/api/upload/{token}", put(upload::put_with_token).layer(DefaultBodyLimit::max(limit)))
            .route("/api/get-upload-url", post(upload::get_upload_url))
            .route("/api/images/{file}", delete(upload::delete));
        let origins = &state.config.upload.cors_origins;
        if !origins.is_empty() {
            use tower_http::cors::{AllowOrigin, CorsLayer};
            let allow = if origins.iter().any(|o| o == "*") {
                AllowOrigin::any()
            } else {
                AllowOrigin::list(origins.iter().filter_map(|o| http::HeaderValue::from_str(o).ok()))
            };
            api = api.layer(
                CorsLayer::new()
                    .allow_origin(allow)
                    .allow_methods([http::Method::POST, http::Method::PUT, http::Method::DELETE])
                    .allow_headers([http::header::AUTHORIZATION, http::header::CONTENT_TYPE]),
            );
        }
        r = r.merge(api);
    }
    r.fallback(image::handle)
        .with_state(state)
        // the panic guard sits inside the access log, so a panic is still logged, counted and given an id
        .layer(CatchPanicLayer::custom(|_| crate::error::Error::Internal("handler panicked".into()).into_response()))
        .layer(middleware::from_fn(access_log))
}

/// Route label for metrics (a closed set).
fn route_of(path: &str) -> &'static str {
    match path {
        "/healthz" | "/readyz" => "health",
        p if p.starts_with("/api/") => "admin",
        _ => "image",
    }
}

/// A request id: the client's `X-Request-Id` when it is short and printable, else a new one.
///
/// New ids are 16 hex digits of a bijective mix (splitmix64) of a per-process seed (hashed from the start
/// time, pid and thread) and a counter: distinct within the process, unlikely to repeat across replicas,
/// and no hashing per request. They are for correlating logs, not secrets.
fn request_id(req: &Request) -> http::HeaderValue {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    if let Some(v) = req.headers().get("x-request-id") {
        if v.len() <= 64 && v.as_bytes().iter().all(|b| b.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let seed = *SEED.get_or_init(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos());
        let material = format!("{:?} {} {:?}", now, std::process::id(), std::thread::current().id());
        let h = blake3::hash(material.as_bytes());
        u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
    });
    let mut x = seed ^ NEXT.fetch_add(1, Ordering::Relaxed);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^= x >> 31;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits: [u8; 16] = std::array::from_fn(|i| HEX[(x >> (60 - 4 * i)) as usize & 0xf]);
    http::HeaderValue::from_bytes(&digits).expect("hex digits are a valid header value")
}

/// One log line and the metrics of a request, and its `X-Request-Id`: begun when the request arrives,
/// finished on its response. The line's fields are only gathered when `imgedge::access` is enabled at INFO.
pub(crate) struct RequestLog {
    start: Instant,
    route: &'static str,
    id: http::HeaderValue,
    line: Option<(http::Method, String)>,
}

impl RequestLog {
    pub(crate) fn begin(req: &Request) -> Self {
        let line = tracing::enabled!(target: "imgedge::access", tracing::Level::INFO)
            .then(|| (req.method().clone(), req.uri().path().to_owned()));
        RequestLog { start: Instant::now(), route: route_of(req.uri().path()), id: request_id(req), line }
    }

    pub(crate) fn finish(self, resp: &mut Response) {
        let elapsed = self.start.elapsed();
        let status = resp.status().as_u16();
        crate::metrics::request(self.route, status, elapsed);
        if let Some((method, path)) = self.line {
            let h = resp.headers();
            let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
            tracing::info!(
                target: "imgedge::access",
                %method,
                path,
                status,
                bytes = header("content-length").unwrap_or("-"),
                cache = header("x-cache").unwrap_or("-"),
                timing = header("server-timing").unwrap_or(""),
                request_id = self.id.to_str().unwrap_or(""),
                ms = format!("{:.1}", elapsed.as_secs_f64() * 1000.0),
                "request"
            );
        }
        resp.headers_mut().insert("x-request-id", self.id);
    }
}

async fn access_log(req: Request, next: Next) -> Response {
    let log = RequestLog::begin(&req);
    let mut resp = next.run(req).await;
    log.finish(&mut resp);
    resp
}

/// The metrics listener's router: `GET /metrics` in the Prometheus text format.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let state = state.clone();
            async move {
                let disk = state.caches.disk.as_ref().map(|d| d.usage());
                crate::metrics::sample(
                    state.pool.queued(),
                    state.pool.in_flight(),
                    state.caches.memory.weighted_size(),
                    disk,
                    &state.stats,
                );
                let handle = crate::metrics::install();
                handle.run_upkeep();
                let body = handle.render();
                ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
            }
        }),
    )
}

/// Serve on `listener` until `shutdown` resolves. Then `/readyz` fails, no new connection is accepted,
/// and in-flight requests get `shutdown_grace_secs` to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    serve_router(listener, state, app, shutdown).await
}

/// [`serve`] with a router built by [`router_with`].
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = Duration::from_secs_f64(state.config.shutdown_grace_secs);
    let app = front::MakeFront::new(state.clone(), app);
    let (began_tx, began_rx) = tokio::sync::oneshot::channel::<()>();
    let st = state.clone();
    let signal = async move {
        shutdown.await;
        st.shutting_down.store(true, Ordering::SeqCst);
        tracing::info!("shutting down: draining in-flight requests");
        let _ = began_tx.send(());
    };
    let server = axum::serve(conn::Listener(listener), app).with_graceful_shutdown(signal);
    let deadline = async move {
        if began_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = server => r,
        _ = deadline => {
            tracing::warn!(grace_secs = grace.as_secs_f64(), "grace period over; closing remaining connections");
            Ok(())
        }
    }
}
