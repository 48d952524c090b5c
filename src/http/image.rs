//! The image route: one request from URL to bytes.
//!
//! (repeats of known URLs are answered before the router, in `front`; this is everything else)
//! parse URL → negotiate format → origin `head` (version) → ETag/304 → memory → disk → coalesced miss
//! (original from the originals cache or the origin, transform on the CPU pool, store) → response.
//! Errors from any step go straight to `error.rs`.

use super::headers::{self, security_headers};
use super::hot::{Hot, HotPaths};
use crate::app::{AppState, Timing};
use crate::cache::coalesce::Role;
use crate::cache::key::CacheKey;
use crate::cache::{CacheStatus, Variant};
use crate::error::{Error, Result};
use crate::origin::{ObjectMeta, Origin};
use crate::transform::{self, OutputChoice};
use crate::url::{ImageRequest, TransformSpec};
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn handle(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
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
    let client = state.admission.client_ip(peer.ip(), &headers);
    let mut resp = match serve(&state, &uri, &headers, client).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if method == Method::HEAD {
        *resp.body_mut() = Body::empty();
    }
    resp
}

async fn serve(state: &Arc<AppState>, uri: &Uri, req_headers: &HeaderMap, client: IpAddr) -> Result<Response> {
    let cfg = &state.config;
    // a URL answered before was served by `front` unless its object changed or its variant left memory;
    // this answer is remembered under the same key for the next repeat
    let hot_key = HotPaths::key_for(uri, req_headers);
    let remote_path = uri.path().strip_prefix("/remote/").filter(|_| state.origins.remote.is_some());
    // the signature is checked before anything else is parsed
    let query = state.admission.verify(uri.path(), uri.query(), remote_path.is_some())?;
    let (origin, req) = match (remote_path, &state.origins.remote) {
        (Some(encoded), Some(remote)) => {
            // the source URL is the key: percent-decoded once, then checked against the allowlist
            let url = percent_encoding::percent_decode_str(encoded)
                .decode_utf8()
                .map_err(|_| Error::BadPath("remote URL is not valid UTF-8"))?
                .into_owned();
            let spec = crate::url::params::parse_with(query, cfg.default_format, &cfg.presets)?;
            (remote.clone(), ImageRequest { key: url, spec })
        }
        _ => {
            let mut req = ImageRequest::parse(uri.path(), Some(query), cfg.default_format, &cfg.presets)?;
            let (origin, inner) = state.origins.route(&req.key);
            let (origin, inner) = (origin.clone(), inner.to_string());
            req.key = inner;
            (origin, req)
        }
    };
    crate::security::check_expiry(req.spec.expires)?;
    let (choice, vary) = headers::negotiate(req.spec.format, req_headers.get(header::ACCEPT));
    let quality = choice.quality(&req.spec, &cfg.encode);
    let variant = req.spec.variant(choice.key(), quality);

    let meta = origin.head(&req.key).await?;
    let etag = headers::etag(origin.name(), &req.key, &meta.version, &variant);
    if headers::not_modified(req_headers, &etag, meta.last_modified) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        apply_common(r.headers_mut(), &etag, meta.last_modified, vary, &cfg.cache_control);
        return Ok(r);
    }

    let key = CacheKey::new(origin.name(), &req.key, &meta.version, &variant);
    let mut hot = Hot {
        origin: origin.clone(),
        object_key: req.key.clone(),
        version: meta.version.clone(),
        key: key.clone(),
        etag: etag.clone(),
        last_modified: meta.last_modified,
        expires: req.spec.expires,
        headers: HeaderMap::new(),
    };
    let remember = |r: Response| {
        hot.headers = r.headers().clone();
        hot.headers.remove("x-cache");
        hot.headers.remove("server-timing");
        state.hot.insert(hot_key, hot);
        r
    };
    let t_cache = Instant::now();
    if let Some((v, status)) = state.caches.lookup(&key).await {
        let timing = format!("cache;desc=\"{}\";dur={:.2}", status.as_str(), ms(t_cache.elapsed()));
        return Ok(remember(respond(&v, status, &req, vary, &cfg.cache_control, &timing)));
    }
    if let Some(err) = state.failures.get(&key).await {
        return Err(err);
    }
    // only work that would fetch and transform is charged to the client (joining a running miss is free)
    if !state.flights.is_running(&key) {
        state.admission.charge(client)?;
    }

    let job =
        Job { state: state.clone(), origin, object_key: req.key.clone(), meta, spec: req.spec.clone(), choice, etag };
    let t_wait = Instant::now();
    let (result, role) = state.flights.run(key.clone(), move || job.produce(key)).await;
    let (v, t) = result?;
    let (status, timing) = match role {
        Role::Leader if t.from_store => (CacheStatus::HitStore, format!("store;dur={:.1}", ms(t_wait.elapsed()))),
        Role::Leader => (
            CacheStatus::Miss,
            format!(
                "origin;dur={:.1}, transform;dur={:.1}, cache;dur={:.2}",
                ms(t.origin),
                ms(t.transform),
                ms(t_cache.elapsed() - t_wait.elapsed())
            ),
        ),
        Role::Follower => {
            state.stats.coalesced.inc();
            crate::metrics::coalesced();
            (CacheStatus::Coalesced, format!("coalesced;dur={:.1}", ms(t_wait.elapsed())))
        }
    };
    Ok(remember(respond(&v, status, &req, vary, &cfg.cache_control, &timing)))
}

/// The work of a miss, done once per variant however many requests wait for it.
struct Job {
    state: Arc<AppState>,
    origin: Arc<Origin>,
    object_key: String,
    meta: ObjectMeta,
    spec: TransformSpec,
    choice: OutputChoice,
    etag: String,
}

impl Job {
    async fn produce(self, key: CacheKey) -> Result<(Arc<Variant>, Timing)> {
        let state = &self.state;
        // A flight for this key may have finished between our lookup and this one starting.
        if let Some((v, _)) = state.caches.lookup(&key).await {
            return Ok((v, Timing::default()));
        }
        // Another replica may have made it already.
        if let Some(v) = state.caches.lookup_store(&key).await {
            return Ok((v, Timing { from_store: true, ..Timing::default() }));
        }
        let t = Instant::now();
        let max = state.config.limits.max_source_bytes;
        let version = self.meta.version.clone();
        let fetch = async {
            state.stats.origin_fetches.inc();
            let t = Instant::now();
            let got = self.origin.get(&self.object_key, max).await;
            let kind = self.origin.kind_name();
            crate::metrics::origin_fetch(kind, t.elapsed(), got.as_ref().map(|o| o.bytes.len()).map_err(|e| e.code()));
            let obj = got?;
            if obj.meta.version != version {
                // replaced between head and get: do not file new bytes under the old version
                return Err(Error::OriginUnavailable("the object changed while it was being read".into()));
            }
            Ok(obj.bytes)
        };
        let src = state.caches.original(&key.object, &version, fetch).await?;
        let origin = t.elapsed();

        let t = Instant::now();
        let (spec, choice) = (self.spec, self.choice);
        let (limits, enc) = (state.config.limits.clone(), state.config.encode.clone());
        let out = match state.pool.run(move || transform::run(&src, &spec, choice, &limits, &enc)).await {
            Ok(out) => out,
            Err(e) => {
                if e.status().is_client_error() {
                    state.failures.insert(key, e.clone()).await;
                }
                return Err(e);
            }
        };
        state.stats.transforms.inc();
        crate::metrics::transform(out.format.as_str(), t.elapsed());
        let v = Arc::new(Variant {
            body: out.bytes,
            format: out.format,
            etag: self.etag,
            last_modified: self.meta.last_modified,
        });
        state.caches.store(key, v.clone()).await;
        Ok((v, Timing { origin, transform: t.elapsed(), from_store: false }))
    }
}

fn respond(
    v: &Variant,
    status: CacheStatus,
    req: &ImageRequest,
    vary: bool,
    cache_control: &str,
    timing: &str,
) -> Response {
    crate::metrics::cache_result(status.as_str(), v.body.len());
    let mut r = Response::new(Body::from(v.body.clone()));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v.format.mime()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(v.body.len()));
    h.insert(header::CONTENT_DISPOSITION, headers::content_disposition(&req.key, v.format, req.spec.download.as_ref()));
    h.insert("x-cache", HeaderValue::from_static(status.as_str()));
    if let Ok(t) = HeaderValue::from_str(timing) {
        h.insert("server-timing", t);
    }
    apply_common(h, &v.etag, v.last_modified, vary, cache_control);
    r
}

/// Headers shared by 200 and 304 answers for one variant.
fn apply_common(
    h: &mut HeaderMap,
    etag: &str,
    last_modified: Option<std::time::SystemTime>,
    vary: bool,
    cache_control: &str,
) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(t) = last_modified {
        h.insert(header::LAST_MODIFIED, headers::http_date(t));
    }
    if vary {
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    if let Ok(v) = HeaderValue::from_str(cache_control) {
        h.insert(header::CACHE_CONTROL, v);
    }
    security_headers(h);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
