//! Origins: where originals come from, and how fresh what we hold of them is.
//!
//! Kinds: a local folder (`fs`), an S3-protocol bucket (`s3`: AWS, R2, B2, ...), an HTTP(S) base URL
//! (`http`), and `remote` (the URL names its own source, allowlisted). Each answers `head` (version, for
//! ETags and 304s before any download) and `get` (bytes, capped while streaming). For network origins,
//! what `head` learnt is kept with an HTTP cache policy (http-cache-semantics): fresh → no request;
//! stale → conditional request, reused on 304; within `stale-while-revalidate` → answered at once and
//! revalidated in the background; a missing key is remembered for 60 s.

pub mod fs;
pub mod http;
pub mod s3;
pub mod ssrf;

use crate::error::{Error, Result};
use ::http::HeaderMap;
use bytes::Bytes;
use http_cache_semantics::CachePolicy;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What identifies one version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Opaque version string: changes whenever the object's bytes change.
    pub version: String,
    /// The origin's own ETag, for conditional requests.
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
    pub size: Option<u64>,
}

impl ObjectMeta {
    /// Version from the origin's validators: the ETag when there is one, else Last-Modified and size.
    pub fn from_validators(etag: Option<String>, last_modified: Option<SystemTime>, size: Option<u64>) -> Self {
        let version = match &etag {
            Some(e) => format!("e:{e}"),
            None => {
                let lm = last_modified.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_secs());
                format!("m:{}:{}", lm.unwrap_or(0), size.unwrap_or(0))
            }
        };
        ObjectMeta { version, etag, last_modified, size }
    }
}

/// An original, fetched.
#[derive(Debug, Clone)]
pub struct OriginObject {
    pub bytes: Bytes,
    pub meta: ObjectMeta,
}

/// Answer to a (conditional) metadata request, with the response headers that carry cache policy.
pub enum Revalidation {
    NotModified(HeaderMap),
    Modified(ObjectMeta, HeaderMap),
}

/// Per-origin settings; each may also be given as a query option of the origin spec
/// (`s3://bucket/prefix?provider=r2&account_id=...&region=auto&path_style=true`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OriginOptions {
    /// `aws`, `r2`, `b2` or `custom` (any other S3-compatible endpoint).
    pub provider: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    /// Cloudflare account id (R2 endpoint).
    pub account_id: Option<String>,
    pub path_style: Option<bool>,
    /// Explicit keys; without them the standard AWS chain is used (env, profile, IRSA, instance metadata).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl OriginOptions {
    /// `base` with every field set in `self` taking precedence.
    pub fn over(&self, base: &OriginOptions) -> OriginOptions {
        OriginOptions {
            provider: self.provider.clone().or_else(|| base.provider.clone()),
            region: self.region.clone().or_else(|| base.region.clone()),
            endpoint: self.endpoint.clone().or_else(|| base.endpoint.clone()),
            account_id: self.account_id.clone().or_else(|| base.account_id.clone()),
            path_style: self.path_style.or(base.path_style),
            access_key_id: self.access_key_id.clone().or_else(|| base.access_key_id.clone()),
            secret_access_key: self.secret_access_key.clone().or_else(|| base.secret_access_key.clone()),
        }
    }
}

/// A named origin mounted at a path prefix (`[[origins]]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedOrigin {
    pub name: String,
    /// First path segment(s) that select this origin: `products` serves `/products/...`.
    pub mount: String,
    pub spec: String,
    #[serde(default, flatten)]
    pub options: OriginOptions,
}

/// Network fetch policy (config section `[fetch]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    pub connect_timeout_secs: f64,
    /// Total time for one origin request.
    pub timeout_secs: f64,
    pub max_redirects: usize,
    /// Let remote sources and redirects reach loopback/private/link-local addresses (off: SSRF guard).
    pub allow_private_networks: bool,
    /// A folder origin re-reads an object's size and mtime at most this often (0: on every request).
    pub folder_recheck_ms: u64,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            connect_timeout_secs: 5.0,
            timeout_secs: 20.0,
            max_redirects: 3,
            allow_private_networks: false,
            folder_recheck_ms: 1000,
        }
    }
}

/// Remote sources: `/remote/<url-encoded URL>` (config section `[remote]`). Off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    pub enabled: bool,
    /// Host patterns a remote URL may name: `images.example.com` or `*.example.com`.
    pub allow_hosts: Vec<String>,
}

enum Kind {
    Fs(fs::FsOrigin),
    S3(s3::S3Origin),
    Http { base: reqwest::Url, client: http::HttpClient },
    Remote { allow: Vec<String>, client: http::HttpClient },
}

/// What we hold about a network object, with its cache policy.
struct Held {
    meta: ObjectMeta,
    policy: CachePolicy,
    fresh_until: SystemTime,
    stale_while_revalidate: Duration,
}

/// One configured origin.
pub struct Origin {
    name: String,
    kind: Kind,
    held: moka::future::Cache<String, Arc<Held>>,
    missing: moka::future::Cache<String, ()>,
}

impl Origin {
    fn with_kind(name: &str, kind: Kind) -> Arc<Self> {
        Arc::new(Origin {
            name: name.to_string(),
            kind,
            held: moka::future::Cache::builder().max_capacity(200_000).build(),
            missing: moka::future::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(60)).build(),
        })
    }

    /// Build from a spec: a directory, `s3://bucket[/prefix][?options]` or `http(s)://host[/base]`.
    pub async fn from_spec(
        name: &str,
        spec: &str,
        options: &OriginOptions,
        fetch: &FetchConfig,
    ) -> Result<Arc<Self>, String> {
        if spec.starts_with("s3://") {
            let settings = s3_settings(spec, options)?;
            let origin = s3::S3Origin::new(settings, fetch).await?;
            return Ok(Self::with_kind(name, Kind::S3(origin)));
        }
        if spec.starts_with("http://") || spec.starts_with("https://") {
            let mut base = reqwest::Url::parse(spec).map_err(|e| format!("origin `{spec}`: {e}"))?;
            if !base.path().ends_with('/') {
                base.set_path(&format!("{}/", base.path()));
            }
            let host = base.host_str().unwrap_or("").to_ascii_lowercase();
            let client = http::HttpClient::new(fetch, HashSet::from([host]))?;
            return Ok(Self::with_kind(name, Kind::Http { base, client }));
        }
        if spec.contains("://") {
            return Err(format!("origin `{spec}`: use a directory, s3://bucket[/prefix] or http(s)://host[/base]"));
        }
        let recheck = Duration::from_millis(fetch.folder_recheck_ms);
        Ok(Self::with_kind(name, Kind::Fs(fs::FsOrigin::new(spec, recheck)?)))
    }

    /// The `remote` origin: URLs name their source, only allowlisted hosts, always SSRF-checked.
    pub fn remote(cfg: &RemoteConfig, fetch: &FetchConfig) -> Result<Arc<Self>, String> {
        let client = http::HttpClient::new(fetch, HashSet::new())?;
        Ok(Self::with_kind("remote", Kind::Remote { allow: cfg.allow_hosts.clone(), client }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Fs(_) => "fs",
            Kind::S3(_) => "s3",
            Kind::Http { .. } => "http",
            Kind::Remote { .. } => "remote",
        }
    }

    /// The S3 client and bucket, for S3 origins (presigned uploads, result store).
    pub fn s3(&self) -> Option<&s3::S3Origin> {
        match &self.kind {
            Kind::S3(o) => Some(o),
            _ => None,
        }
    }

    /// The local folder, for folder origins.
    pub fn fs(&self) -> Option<&fs::FsOrigin> {
        match &self.kind {
            Kind::Fs(o) => Some(o),
            _ => None,
        }
    }

    fn url_for(&self, key: &str) -> Result<reqwest::Url> {
        match &self.kind {
            Kind::Http { base, .. } => {
                let encoded: String = key
                    .split('/')
                    .map(|seg| percent_encoding::utf8_percent_encode(seg, PATH_SEGMENT).to_string())
                    .collect::<Vec<_>>()
                    .join("/");
                base.join(&encoded).map_err(|_| Error::BadPath("not a valid URL path"))
            }
            Kind::Remote { allow, .. } => {
                let url = reqwest::Url::parse(key).map_err(|_| Error::bad_param("url", "not a valid URL"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(Error::bad_param("url", "only http and https sources"));
                }
                let host = url.host_str().unwrap_or("");
                if !allow.iter().any(|p| ssrf::host_matches(p, host)) {
                    return Err(Error::Forbidden(format!("remote host `{host}` is not allowed")));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(Error::bad_param("url", "credentials in source URLs are not allowed"));
                }
                Ok(url)
            }
            _ => Err(Error::Internal("not an HTTP origin".into())),
        }
    }

    /// Current version of `key`.
    pub async fn head(self: &Arc<Self>, key: &str) -> Result<ObjectMeta> {
        if let Kind::Fs(o) = &self.kind {
            return o.head(key).await;
        }
        if self.missing.contains_key(key) {
            return Err(Error::NotFound);
        }
        let held = self.held.get(key).await;
        if let Some(h) = &held {
            let now = SystemTime::now();
            if now < h.fresh_until {
                return Ok(h.meta.clone());
            }
            if now < h.fresh_until + h.stale_while_revalidate {
                let (this, key, held) = (self.clone(), key.to_string(), h.clone());
                tokio::spawn(async move {
                    if let Err(e) = this.revalidate(&key, Some(held)).await {
                        tracing::debug!(error = %e, "background revalidation failed");
                    }
                });
                return Ok(h.meta.clone());
            }
        }
        self.revalidate(key, held).await
    }

    async fn revalidate(&self, key: &str, held: Option<Arc<Held>>) -> Result<ObjectMeta> {
        let answer = match &self.kind {
            Kind::S3(o) => o.head(key, held.as_ref().map(|h| &h.meta)).await,
            Kind::Http { client, .. } | Kind::Remote { client, .. } => {
                client.head(self.url_for(key)?, held.as_ref().map(|h| &h.meta)).await
            }
            Kind::Fs(_) => unreachable!("folders are not cached"),
        };
        let now = SystemTime::now();
        let req = policy_request(key);
        let (meta, policy, swr) = match answer {
            Err(Error::NotFound) => {
                self.held.invalidate(key).await;
                self.missing.insert(key.to_string(), ()).await;
                return Err(Error::NotFound);
            }
            Err(e) => return Err(e),
            Ok(Revalidation::NotModified(headers)) => {
                let h = held.expect("304 only answers a conditional request");
                let swr = stale_while_revalidate(&headers).unwrap_or(h.stale_while_revalidate);
                let res = policy_response(::http::StatusCode::NOT_MODIFIED, headers);
                let policy = match h.policy.after_response(&req, &res, now) {
                    http_cache_semantics::AfterResponse::NotModified(p, _)
                    | http_cache_semantics::AfterResponse::Modified(p, _) => p,
                };
                (h.meta.clone(), policy, swr)
            }
            Ok(Revalidation::Modified(meta, headers)) => {
                let swr = stale_while_revalidate(&headers).unwrap_or_default();
                (meta, CachePolicy::new(&req, &policy_response(::http::StatusCode::OK, headers)), swr)
            }
        };
        let fresh_until = now + policy.time_to_live(now);
        self.held
            .insert(
                key.to_string(),
                Arc::new(Held { meta: meta.clone(), policy, fresh_until, stale_while_revalidate: swr }),
            )
            .await;
        Ok(meta)
    }

    /// The bytes of `key`, at most `max_bytes`.
    pub async fn get(&self, key: &str, max_bytes: u64) -> Result<OriginObject> {
        match &self.kind {
            Kind::Fs(o) => o.get(key, max_bytes).await,
            Kind::S3(o) => o.get(key, max_bytes).await,
            Kind::Http { client, .. } | Kind::Remote { client, .. } => client.get(self.url_for(key)?, max_bytes).await,
        }
    }

    /// Forget what is held about `key` (purge).
    pub async fn forget(&self, key: &str) {
        self.held.invalidate(key).await;
        self.missing.invalidate(key).await;
    }

    /// Whether the origin is usable (readiness).
    pub async fn check(&self) -> Result<()> {
        match &self.kind {
            Kind::Fs(o) => o.check().await,
            Kind::S3(o) => o.check().await,
            Kind::Http { .. } | Kind::Remote { .. } => Ok(()),
        }
    }
}

/// What must be escaped in one URL path segment (RFC 3986 unreserved characters stay as they are).
const PATH_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn policy_request(key: &str) -> ::http::Request<()> {
    let path: String = percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC).to_string();
    ::http::Request::get(format!("http://origin/{path}")).body(()).expect("valid request")
}

fn policy_response(status: ::http::StatusCode, headers: HeaderMap) -> ::http::Response<()> {
    let mut res = ::http::Response::new(());
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

/// `stale-while-revalidate=N` of a response's `Cache-Control` (None when the header is absent).
fn stale_while_revalidate(headers: &HeaderMap) -> Option<Duration> {
    let cc = headers.get_all(::http::header::CACHE_CONTROL);
    let mut values = cc.iter().filter_map(|v| v.to_str().ok()).peekable();
    values.peek()?;
    Some(
        values
            .flat_map(|v| v.split(','))
            .find_map(|d| d.trim().strip_prefix("stale-while-revalidate=").and_then(|n| n.trim().parse().ok()))
            .map(Duration::from_secs)
            .unwrap_or_default(),
    )
}

/// Resolve `s3://bucket[/prefix][?options]` with `options` (config) over the spec's own query options.
pub fn s3_settings(spec: &str, options: &OriginOptions) -> Result<s3::S3Settings, String> {
    let rest = spec.strip_prefix("s3://").ok_or_else(|| format!("`{spec}` is not s3://bucket[/prefix]"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    if bucket.is_empty() {
        return Err(format!("`{spec}`: no bucket"));
    }
    let from_spec = parse_options(query).map_err(|e| format!("`{spec}`: {e}"))?;
    s3::S3Settings::resolve(bucket, prefix, &options.over(&from_spec))
}

fn parse_options(query: &str) -> Result<OriginOptions, String> {
    let mut o = OriginOptions::default();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let v = v.into_owned();
        match k.as_ref() {
            "provider" => o.provider = Some(v),
            "region" => o.region = Some(v),
            "endpoint" => o.endpoint = Some(v),
            "account_id" => o.account_id = Some(v),
            "path_style" => o.path_style = Some(matches!(v.as_str(), "1" | "true")),
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(o)
}

/// All configured origins: named ones by mount prefix, the default for everything else, and the
/// remote origin when enabled.
pub struct Origins {
    pub default: Arc<Origin>,
    mounts: Vec<(String, Arc<Origin>)>,
    pub remote: Option<Arc<Origin>>,
}

impl Origins {
    pub async fn new(
        default_spec: &str,
        default_options: &OriginOptions,
        named: &[NamedOrigin],
        remote: &RemoteConfig,
        fetch: &FetchConfig,
    ) -> Result<Self, String> {
        let default = Origin::from_spec("default", default_spec, default_options, fetch).await?;
        let mut mounts = Vec::new();
        for n in named {
            let mount = n.mount.trim_matches('/').to_string();
            if mount.is_empty() || n.name == "default" || n.name == "remote" {
                return Err(format!(
                    "origin `{}`: needs a non-empty mount and a name other than default/remote",
                    n.name
                ));
            }
            mounts.push((mount, Origin::from_spec(&n.name, &n.spec, &n.options, fetch).await?));
        }
        // longest mount first, so `a/b` wins over `a`
        mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
        let remote = if remote.enabled { Some(Origin::remote(remote, fetch)?) } else { None };
        Ok(Origins { default, mounts, remote })
    }

    /// The origin serving `key`, and the key inside it.
    pub fn route<'a>(&'a self, key: &'a str) -> (&'a Arc<Origin>, &'a str) {
        for (mount, origin) in &self.mounts {
            if let Some(rest) = key.strip_prefix(mount.as_str()).and_then(|r| r.strip_prefix('/')) {
                return (origin, rest);
            }
        }
        (&self.default, key)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Origin>> {
        std::iter::once(&self.default).chain(self.mounts.iter().map(|(_, o)| o))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => Error::NotFound,
            _ => Error::OriginUnavailable(e.to_string()),
        }
    }
}
