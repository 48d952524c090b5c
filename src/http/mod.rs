//! The HTTP edge: routes, per-request logging, panic safety, and the server loop with graceful shutdown.

pub mod admin;
pub mod headers;
pub mod health;
pub mod image;

use crate::app::AppState;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use std::sync::Arc;
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;

/// The public router. Everything that is not a fixed route is an image path.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/cache/{*path}", delete(admin::purge))
        .fallback(image::handle)
        .with_state(state)
        .layer(middleware::from_fn(access_log))
        .layer(CatchPanicLayer::custom(|_| crate::error::Error::Internal("handler panicked".into()).into_response()))
}

/// One log line per request.
async fn access_log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let h = resp.headers();
    let bytes = h.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let cache = h.get("x-cache").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    tracing::info!(
        target: "imgedge::access",
        %method,
        path,
        status = resp.status().as_u16(),
        bytes,
        cache,
        ms = format!("{:.1}", start.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    resp
}

/// Serve `router` on `listener` until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
