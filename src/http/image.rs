//! The image route: one request from URL to bytes.
//!
//! parse URL → negotiate format → origin `head` (version) → ETag/304 → origin `get` → transform on the
//! CPU pool → response with caching headers. Errors from any step go straight to `error.rs`.

use super::headers::{self, security_headers};
use crate::app::AppState;
use crate::error::Result;
use crate::transform;
use crate::url::ImageRequest;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cache status of an image response (the `X-Cache` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Miss,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Miss => "MISS",
        }
    }
}

pub async fn handle(State(state): State<Arc<AppState>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::Json(
                serde_json::json!({"error": "only GET and HEAD are allowed here", "code": "method_not_allowed"}),
            ),
        )
            .into_response();
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        security_headers(r.headers_mut());
        return r;
    }
    let mut resp = match serve(&state, &uri, &headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if method == Method::HEAD {
        *resp.body_mut() = Body::empty();
    }
    resp
}

async fn serve(state: &AppState, uri: &Uri, req_headers: &HeaderMap) -> Result<Response> {
    let cfg = &state.config;
    let req = ImageRequest::parse(uri.path(), uri.query(), cfg.default_format)?;
    let (choice, vary) = headers::negotiate(req.spec.format, req_headers.get(header::ACCEPT));
    let quality = choice.quality(&req.spec, &cfg.encode);
    let variant = req.spec.variant(choice.key(), quality);

    let t_origin = Instant::now();
    let meta = state.origin.head(&req.key).await?;
    let etag = headers::etag(state.origin.name(), &req.key, &meta.version, &variant);
    let common = Common { etag, last_modified: meta.last_modified, vary, cache_control: &cfg.cache_control };
    if headers::not_modified(req_headers, &common.etag, meta.last_modified) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        common.apply(r.headers_mut());
        return Ok(r);
    }

    let obj = state.origin.get(&req.key, cfg.limits.max_source_bytes).await?;
    let common = if obj.meta.version != meta.version {
        // the object changed between head and get: label the bytes we transform
        Common {
            etag: headers::etag(state.origin.name(), &req.key, &obj.meta.version, &variant),
            last_modified: obj.meta.last_modified,
            ..common
        }
    } else {
        common
    };
    let origin_time = t_origin.elapsed();

    let t_transform = Instant::now();
    let spec = req.spec.clone();
    let (limits, enc) = (cfg.limits.clone(), cfg.encode.clone());
    let src = obj.bytes;
    let out = state.pool.run(move || transform::run(&src, &spec, choice, &limits, &enc)).await?;
    let transform_time = t_transform.elapsed();

    let mut r = Response::new(Body::from(out.bytes.clone()));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(out.format.mime()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(out.bytes.len()));
    h.insert(
        header::CONTENT_DISPOSITION,
        headers::content_disposition(&req.key, out.format, req.spec.download.as_ref()),
    );
    h.insert("x-cache", HeaderValue::from_static(CacheStatus::Miss.as_str()));
    h.insert("server-timing", server_timing(origin_time, transform_time));
    common.apply(h);
    Ok(r)
}

/// Headers shared by 200 and 304 answers for one variant.
struct Common<'a> {
    etag: String,
    last_modified: Option<std::time::SystemTime>,
    vary: bool,
    cache_control: &'a str,
}

impl Common<'_> {
    fn apply(&self, h: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.etag) {
            h.insert(header::ETAG, v);
        }
        if let Some(t) = self.last_modified {
            h.insert(header::LAST_MODIFIED, headers::http_date(t));
        }
        if self.vary {
            h.insert(header::VARY, HeaderValue::from_static("Accept"));
        }
        if let Ok(v) = HeaderValue::from_str(self.cache_control) {
            h.insert(header::CACHE_CONTROL, v);
        }
        security_headers(h);
    }
}

fn server_timing(origin: Duration, transform: Duration) -> HeaderValue {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    HeaderValue::from_str(&format!("origin;dur={:.1}, transform;dur={:.1}", ms(origin), ms(transform))).expect("ASCII")
}
