//! The hit fast path. A raw URL (with the client's `Accept` class) that was answered before maps to its
//! cache key and its prebuilt response headers, so a repeat skips the signature check, parsing, two
//! BLAKE3 hashes and header formatting. Each use still asks the origin for the object's version and
//! takes the body from the memory tier: a changed object, a purge or an eviction falls back to the full
//! path, so the fast path never answers what the full path would not.

use crate::cache::key::CacheKey;
use crate::error::Result;
use crate::origin::Origin;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::sync::Arc;
use std::time::SystemTime;

/// Bytes of headers and keys the table may hold (an entry is a few hundred bytes).
const TABLE_BYTES: u64 = 16 << 20;

pub struct HotPaths {
    map: moka::sync::Cache<String, Arc<Hot>>,
}

/// What a URL resolved to the last time it was answered.
pub struct Hot {
    pub origin: Arc<Origin>,
    pub object_key: String,
    pub version: String,
    pub key: CacheKey,
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    /// `exp` of the URL, checked on every use.
    pub expires: Option<u64>,
    /// The 200 headers, without `X-Cache` and `Server-Timing`.
    pub headers: HeaderMap,
}

impl Default for HotPaths {
    fn default() -> Self {
        let map = moka::sync::Cache::builder()
            .max_capacity(TABLE_BYTES)
            .weigher(|k: &String, v: &Arc<Hot>| {
                let headers: usize = v.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 32).sum();
                (k.len() + v.object_key.len() + v.version.len() + headers + 256).try_into().unwrap_or(u32::MAX)
            })
            .build();
        HotPaths { map }
    }
}

impl HotPaths {
    /// The table key: the raw path and query as sent, and the format class the `Accept` header selects.
    pub fn key(path_and_query: &str, accept_class: &str) -> String {
        let mut k = String::with_capacity(path_and_query.len() + accept_class.len() + 1);
        k.push_str(path_and_query);
        k.push('\0');
        k.push_str(accept_class);
        k
    }

    /// [`Self::key`] of a request.
    pub fn key_for(uri: &http::Uri, headers: &HeaderMap) -> String {
        let accept = super::headers::negotiate(crate::url::FormatParam::Auto, headers.get(header::ACCEPT)).0.key();
        Self::key(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"), accept)
    }

    pub fn get(&self, key: &str) -> Option<Arc<Hot>> {
        self.map.get(key)
    }

    pub fn insert(&self, key: String, hot: Hot) {
        self.map.insert(key, Arc::new(hot));
    }

    pub fn remove(&self, key: &str) {
        self.map.invalidate(key);
    }
}

/// What the fast path made of a request.
pub enum HotAnswer {
    /// A 200 with the body, or a 304.
    Answer(http::Response<axum::body::Body>),
    /// The object changed or the variant left memory: take the full path.
    Fallback,
}

/// Answer from `hot` if the object is still at the same version and the variant is in memory.
pub async fn answer(state: &crate::app::AppState, hot: &Hot, req_headers: &HeaderMap) -> Result<HotAnswer> {
    crate::security::check_expiry(hot.expires)?;
    let meta = hot.origin.head(&hot.object_key).await?;
    if meta.version != hot.version {
        return Ok(HotAnswer::Fallback);
    }
    if super::headers::not_modified(req_headers, &hot.etag, hot.last_modified) {
        let mut r = http::Response::new(axum::body::Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        let h = r.headers_mut();
        for (name, value) in &hot.headers {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH && name != header::CONTENT_DISPOSITION {
                h.append(name.clone(), value.clone());
            }
        }
        return Ok(HotAnswer::Answer(r));
    }
    let t = std::time::Instant::now();
    let Some(v) = state.caches.memory.get(&hot.key).await else { return Ok(HotAnswer::Fallback) };
    crate::metrics::cache_result("HIT-MEMORY", v.body.len());
    let mut r = http::Response::new(axum::body::Body::from(v.body.clone()));
    let h = r.headers_mut();
    *h = hot.headers.clone();
    h.insert("x-cache", HeaderValue::from_static("HIT-MEMORY"));
    let timing = format!("cache;desc=\"HIT-MEMORY\";dur={:.2}", t.elapsed().as_secs_f64() * 1000.0);
    if let Ok(t) = HeaderValue::from_str(&timing) {
        h.insert("server-timing", t);
    }
    Ok(HotAnswer::Answer(r))
}
