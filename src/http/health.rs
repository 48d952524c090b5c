//! Liveness (`/healthz`) and readiness (`/readyz`: origin reachable, cache dir writable, not draining).

use crate::app::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    crate::http::headers::security_headers(r.headers_mut());
    r
}

pub async fn healthz() -> Response {
    answer(StatusCode::OK, serde_json::json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.shutting_down.load(Ordering::SeqCst) {
        return answer(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"status": "shutting down"}));
    }
    for origin in state.origins.all() {
        if let Err(e) = origin.check().await {
            tracing::warn!(origin = origin.name(), error = %e, "readiness: origin check failed");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "origin unavailable", "origin": origin.name()}),
            );
        }
    }
    let probe = state.config.cache_dir.join(".readyz");
    if let Err(e) = tokio::fs::write(&probe, b"ok").await {
        tracing::warn!(error = %e, "readiness: cache dir not writable");
        return answer(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"status": "cache dir not writable"}));
    }
    answer(StatusCode::OK, serde_json::json!({"status": "ready"}))
}
