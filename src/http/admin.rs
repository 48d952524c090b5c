//! Operator API: `DELETE /api/cache/{path}` purges every variant of one object from every tier.

use crate::app::AppState;
use crate::cache::key::ObjectId;
use crate::error::{Error, Result};
use crate::url::path::object_key;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, Uri};
use std::sync::Arc;

/// Check `Authorization: Bearer <admin.token>`; without a token the admin API is off.
pub fn authorize(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let Some(token) = state.config.admin.token.as_ref().filter(|t| !t.is_empty()) else {
        return Err(Error::Forbidden("the admin API is disabled: set admin.token".into()));
    };
    crate::security::check_bearer(headers, std::slice::from_ref(token))
}

pub async fn purge(State(state): State<Arc<AppState>>, uri: Uri, headers: HeaderMap) -> Response {
    let run = async {
        authorize(&state, &headers)?;
        let path = uri.path().strip_prefix("/api/cache").unwrap_or("");
        let key = object_key(path)?;
        let (origin, inner) = state.origins.route(&key);
        let object = ObjectId::new(origin.name(), inner);
        origin.forget(inner).await;
        state.caches.purge(&object).await;
        tracing::info!(key, "purged");
        Ok::<_, Error>(axum::Json(serde_json::json!({ "purged": key })).into_response())
    };
    let mut r = run.await.unwrap_or_else(IntoResponse::into_response);
    r.headers_mut().insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    r
}
