//! The image-hosting API: `POST /api/upload` (multipart `file`), `POST /api/get-upload-url` (pre-signed
//! direct uploads: S3 presigned PUT, or a one-time URL on imgedge for folder origins), and
//! `DELETE /api/images/{id}.{ext}?token=…` with the HMAC delete token from `deleteUrl`.

pub mod client;
pub mod strip;

use crate::app::AppState;
use crate::cache::key::ObjectId;
use crate::error::{Error, Result};
use crate::origin::Origin;
use crate::transform::{decode, sniff};
use axum::extract::{ConnectInfo, Multipart, Path, Query, State};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use governor::{DefaultKeyedRateLimiter, Quota};
use hmac::{Hmac, Mac};
use http::{header, HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Config section `[upload]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// Turn the API on (`--upload`).
    pub enabled: bool,
    /// Base of `directUrl` (`--public-url`); default: the address the request came to.
    pub public_url: Option<String>,
    /// Bearer keys; none: anonymous uploads (still rate limited). Env: `IMGEDGE_UPLOAD_API_KEYS`.
    pub api_keys: Vec<String>,
    pub max_bytes: u64,
    pub max_pixels: u64,
    /// Key prefix of stored uploads inside the default origin.
    pub prefix: String,
    /// Uploads per minute per client address (0: no limit).
    pub per_minute: u32,
    /// Uploads a client may send at once before the per-minute rate applies; default: `per_minute`.
    pub burst: Option<u32>,
    /// Lifetime of pre-signed upload URLs, in seconds.
    pub presign_expires_secs: u64,
    /// Browser origins allowed to call the API (CORS); `*` for any.
    pub cors_origins: Vec<String>,
    /// HMAC secret for delete tokens; default: a random one kept in `cache_dir/upload.secret`.
    pub secret: Option<String>,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            enabled: false,
            public_url: None,
            api_keys: Vec::new(),
            max_bytes: 10 << 20,
            max_pixels: 50_000_000,
            prefix: "u/".into(),
            per_minute: 30,
            burst: None,
            presign_expires_secs: 300,
            cors_origins: Vec::new(),
            secret: None,
        }
    }
}

/// Upload state built at start-up.
pub struct Uploads {
    secret: Vec<u8>,
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// One-time upload tokens (folder origins): token → key.
    tokens: moka::future::Cache<String, String>,
}

impl Uploads {
    pub fn new(cfg: &UploadConfig, cache_dir: &std::path::Path) -> Result<Self, String> {
        let secret = match &cfg.secret {
            Some(s) if s.len() >= 16 => s.as_bytes().to_vec(),
            Some(_) => return Err("upload.secret needs at least 16 characters".into()),
            None => {
                let path = cache_dir.join("upload.secret");
                match std::fs::read(&path) {
                    Ok(s) if s.len() >= 32 => s,
                    _ => {
                        let s = random_token(32).into_bytes();
                        std::fs::write(&path, &s).map_err(|e| format!("{}: {e}", path.display()))?;
                        s
                    }
                }
            }
        };
        let limiter = NonZeroU32::new(cfg.per_minute).map(|n| {
            let burst = cfg.burst.and_then(NonZeroU32::new).unwrap_or(n);
            DefaultKeyedRateLimiter::keyed(Quota::per_minute(n).allow_burst(burst))
        });
        let tokens = moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(cfg.presign_expires_secs.max(1)))
            .build();
        Ok(Uploads { secret, limiter, tokens })
    }

    fn delete_token(&self, key: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(b"delete\0");
        mac.update(key.as_bytes());
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..20])
    }
}

fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("OS randomness");
    URL_SAFE_NO_PAD.encode(b)
}

/// The upload contract's error envelope.
fn fail(e: Error) -> Response {
    let status = e.status();
    if status.is_server_error() {
        tracing::warn!(error = %e, "upload failed");
    }
    let mut r =
        (status, axum::Json(serde_json::json!({"success": false, "error": e.public_message()}))).into_response();
    if let Error::RateLimited(secs) = e {
        r.headers_mut().insert(header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    r.headers_mut().insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    r
}

fn uploads(state: &AppState) -> Result<&Uploads> {
    state.uploads.as_ref().ok_or(Error::NotFound)
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let keys = &state.config.upload.api_keys;
    if keys.is_empty() {
        return Ok(());
    }
    crate::security::check_bearer(headers, keys)
}

fn charge(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Result<()> {
    let Some(limiter) = &uploads(state)?.limiter else { return Ok(()) };
    crate::security::take_token(limiter, state.admission.client_ip(peer.ip(), headers))
}

fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.config.upload.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}")
}

/// What is stored, after validation.
struct Accepted {
    bytes: Bytes,
    format: sniff::SourceFormat,
    width: u32,
    height: u32,
    id: String,
}

fn extension(f: sniff::SourceFormat) -> &'static str {
    match f {
        sniff::SourceFormat::Jpeg => "jpg",
        other => other.as_str(),
    }
}

fn mime(f: sniff::SourceFormat) -> &'static str {
    match f {
        sniff::SourceFormat::Jpeg => "image/jpeg",
        sniff::SourceFormat::Png => "image/png",
        sniff::SourceFormat::Gif => "image/gif",
        sniff::SourceFormat::Webp => "image/webp",
        sniff::SourceFormat::Avif => "image/avif",
    }
}

/// Type by magic bytes (415), pixel limit from the header (422), a full decode (422), metadata strip.
async fn validate(state: &AppState, body: Bytes) -> Result<Accepted> {
    let max_pixels = state.config.upload.max_pixels;
    let id = blake3::hash(&body).to_hex()[..24].to_string();
    state
        .pool
        .run(move || {
            let format = sniff::sniff(&body)?;
            let probe = decode::probe(&body, format)?;
            if probe.width as u64 * probe.height as u64 > max_pixels {
                return Err(Error::TooManyPixels {
                    width: probe.width as u64,
                    height: probe.height as u64,
                    max_pixels,
                });
            }
            decode::decode(&body, format, if probe.scalable { 8 } else { 1 })?;
            let bytes = strip::strip(body, format, &probe)?;
            let (width, height) = probe.orientation.dims((probe.width, probe.height));
            Ok(Accepted { bytes, format, width, height, id })
        })
        .await
}

/// Put `bytes` at `key` in the default origin: all or nothing.
async fn store(origin: &Origin, key: &str, bytes: Bytes, content_type: &str) -> Result<()> {
    if let Some(fs) = origin.fs() {
        let path = fs.root().join(key);
        let parent = path.parent().ok_or(Error::Internal("upload path".into()))?.to_path_buf();
        tokio::fs::create_dir_all(&parent).await.map_err(|e| Error::Internal(e.to_string()))?;
        let tmp = parent.join(format!(".{}.tmp", random_token(8)));
        tokio::fs::write(&tmp, &bytes).await.map_err(|e| Error::Internal(e.to_string()))?;
        return tokio::fs::rename(&tmp, &path).await.map_err(|e| Error::Internal(e.to_string()));
    }
    if let Some(s3) = origin.s3() {
        s3.client()
            .put_object()
            .bucket(s3.bucket())
            .key(s3.object_key(key))
            .content_type(content_type)
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| crate::origin::s3::map_sdk(e, key))?;
        return Ok(());
    }
    Err(Error::Internal("uploads need a folder or S3 origin".into()))
}

async fn accept_and_store(
    state: &AppState,
    headers: &HeaderMap,
    body: Bytes,
    key: Option<String>,
    title: Option<String>,
) -> Result<serde_json::Value> {
    let a = validate(state, body).await?;
    let key = key.unwrap_or_else(|| format!("{}{}.{}", state.config.upload.prefix, a.id, extension(a.format)));
    let origin = &state.origins.default;
    store(origin, &key, a.bytes.clone(), mime(a.format)).await?;
    origin.forget(&key).await;
    state.caches.purge(&ObjectId::new(origin.name(), &key)).await;
    let base = public_base(state, headers);
    let file = key.rsplit('/').next().unwrap_or(&key).to_string();
    let token = uploads(state)?.delete_token(&key);
    tracing::info!(key, bytes = a.bytes.len(), "uploaded");
    Ok(serde_json::json!({
        "success": true,
        "id": a.id,
        "key": key,
        "directUrl": format!("{base}/{key}"),
        "width": a.width,
        "height": a.height,
        "format": a.format.as_str(),
        "bytes": a.bytes.len(),
        "title": title,
        "deleteUrl": format!("{base}/api/images/{file}?token={token}"),
    }))
}

/// `POST /api/upload`: multipart with `file` (and optional `title`).
pub async fn upload(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    multipart: std::result::Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let run = async {
        uploads(&state)?;
        authorize(&state, &headers)?;
        charge(&state, peer, &headers)?;
        let mut multipart = multipart.map_err(|e| Error::bad_param("multipart", e.body_text()))?;
        let max = state.config.upload.max_bytes;
        let (mut file, mut title) = (None, None);
        while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
            match field.name() {
                Some("file") if file.is_none() => {
                    let mut buf = BytesMut::new();
                    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                        if (buf.len() + chunk.len()) as u64 > max {
                            // Read (and drop) the rest, up to the route's body limit of max + 1 MiB, so
                            // the client gets its 413 instead of a reset while still sending.
                            drop(buf);
                            while let Ok(Some(_)) = field.chunk().await {}
                            while let Ok(Some(mut rest)) = multipart.next_field().await {
                                while let Ok(Some(_)) = rest.chunk().await {}
                            }
                            return Err(Error::PayloadTooLarge(max));
                        }
                        buf.extend_from_slice(&chunk);
                    }
                    file = Some(buf.freeze());
                }
                Some("title") => {
                    let t = field.text().await.map_err(multipart_error)?;
                    title = Some(t.chars().filter(|c| !c.is_control()).take(200).collect::<String>());
                }
                _ => {} // other fields are ignored
            }
        }
        let file = file.ok_or_else(|| Error::bad_param("file", "no `file` field in the form"))?;
        if file.is_empty() {
            return Err(Error::bad_param("file", "the file is empty"));
        }
        accept_and_store(&state, &headers, file, None, title).await
    };
    match run.await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => fail(e),
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Error::PayloadTooLarge(0);
    }
    Error::bad_param("multipart", e.body_text())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadUrlRequest {
    filename: String,
    content_type: String,
}

/// `POST /api/get-upload-url` `{filename, contentType}` → `{uploadUrl, imageUrl, key, expiresIn}`.
pub async fn get_upload_url(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: std::result::Result<axum::Json<UploadUrlRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let run = async {
        let up = uploads(&state)?;
        authorize(&state, &headers)?;
        charge(&state, peer, &headers)?;
        let axum::Json(req) = body.map_err(|e| Error::bad_param("body", e.body_text()))?;
        let ext = match req.content_type.as_str() {
            "image/jpeg" => "jpg",
            "image/png" => "png",
            "image/gif" => "gif",
            "image/webp" => "webp",
            "image/avif" => "avif",
            _ => return Err(Error::UnsupportedType(format!("{} is not an allowed image type", req.content_type))),
        };
        if req.filename.trim().is_empty() {
            return Err(Error::bad_param("filename", "empty"));
        }
        let key = format!("{}direct/{}.{ext}", state.config.upload.prefix, random_token(12));
        let expires = state.config.upload.presign_expires_secs;
        let base = public_base(&state, &headers);
        let origin = &state.origins.default;
        let upload_url = if let Some(s3) = origin.s3() {
            let cfg = aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(expires))
                .map_err(|e| Error::Internal(e.to_string()))?;
            let req = s3
                .client()
                .put_object()
                .bucket(s3.bucket())
                .key(s3.object_key(&key))
                .content_type(&req.content_type)
                .presigned(cfg)
                .await
                .map_err(|e| Error::Internal(format!("presign: {e}")))?;
            req.uri().to_string()
        } else {
            let token = random_token(24);
            up.tokens.insert(token.clone(), key.clone()).await;
            format!("{base}/api/upload/{token}")
        };
        Ok(
            serde_json::json!({ "uploadUrl": upload_url, "imageUrl": format!("{base}/{key}"), "key": key, "expiresIn": expires }),
        )
    };
    match run.await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => fail(e),
    }
}

/// `PUT /api/upload/{token}`: the one-time URL of a folder origin; same validation as `/api/upload`.
pub async fn put_with_token(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let up = uploads(&state)?;
        let key =
            up.tokens.remove(&token).await.ok_or(Error::Forbidden("unknown, used or expired upload URL".into()))?;
        if body.len() as u64 > state.config.upload.max_bytes {
            return Err(Error::PayloadTooLarge(state.config.upload.max_bytes));
        }
        accept_and_store(&state, &headers, body, Some(key), None).await
    };
    match run.await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => fail(e),
    }
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    token: String,
}

/// `DELETE /api/images/{id}.{ext}?token=…`: remove the original and purge its variants.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
    q: std::result::Result<Query<DeleteQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let run = async {
        let up = uploads(&state)?;
        let Ok(Query(q)) = q else { return Err(Error::bad_param("token", "missing")) };
        if file.contains('/') || file.contains("..") || file.is_empty() {
            return Err(Error::BadPath("not an image id"));
        }
        let key = format!("{}{}", state.config.upload.prefix, file);
        let direct = format!("{}direct/{}", state.config.upload.prefix, file);
        let key = [key, direct]
            .into_iter()
            .find(|k| bool::from(up.delete_token(k).as_bytes().ct_eq(q.token.as_bytes())))
            .ok_or_else(|| Error::Forbidden("invalid delete token".into()))?;
        let origin = &state.origins.default;
        if let Some(fs) = origin.fs() {
            match tokio::fs::remove_file(fs.root().join(&key)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound),
                Err(e) => return Err(Error::Internal(e.to_string())),
            }
        } else if let Some(s3) = origin.s3() {
            s3.client()
                .delete_object()
                .bucket(s3.bucket())
                .key(s3.object_key(&key))
                .send()
                .await
                .map_err(|e| crate::origin::s3::map_sdk(e, &key))?;
        }
        origin.forget(&key).await;
        state.caches.purge(&ObjectId::new(origin.name(), &key)).await;
        Ok(serde_json::json!({ "success": true, "deleted": key }))
    };
    match run.await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => fail(e),
    }
}
