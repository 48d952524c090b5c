//! HTTP(S) origin (and remote sources): reqwest on hyper + rustls, connect and total timeouts, at most
//! N redirects each re-checked by the SSRF guard, a byte cap enforced while streaming, and no client
//! headers (cookies, auth) forwarded.

use super::ssrf::{check_literal, GuardedResolver, Refused};
use super::{FetchConfig, ObjectMeta, OriginObject, Revalidation};
use crate::error::{Error, Result};
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, StatusCode};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

pub struct HttpClient {
    client: reqwest::Client,
    trusted: Arc<HashSet<String>>,
    allow_private: bool,
}

impl HttpClient {
    /// `trusted_hosts`: hosts the operator configured (their addresses are not checked).
    pub fn new(cfg: &FetchConfig, trusted_hosts: HashSet<String>) -> Result<Self, String> {
        let trusted = Arc::new(trusted_hosts);
        let resolver = GuardedResolver { trusted_hosts: trusted.clone(), allow_private: cfg.allow_private_networks };
        let (max, allow_private, t) = (cfg.max_redirects, cfg.allow_private_networks, trusted.clone());
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max {
                return attempt.error(format!("more than {max} redirects"));
            }
            match check_literal(attempt.url(), &t, allow_private) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(concat!("imgedge/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs_f64(cfg.connect_timeout_secs))
            .timeout(Duration::from_secs_f64(cfg.timeout_secs))
            .redirect(policy)
            .dns_resolver(Arc::new(resolver))
            .no_proxy()
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(HttpClient { client, trusted, allow_private })
    }

    fn check(&self, url: &reqwest::Url) -> Result<()> {
        check_literal(url, &self.trusted, self.allow_private).map_err(|r| Error::Forbidden(r.to_string()))
    }

    /// Conditional HEAD: is what we hold (by ETag / Last-Modified) still current?
    pub async fn head(&self, url: reqwest::Url, held: Option<&ObjectMeta>) -> Result<Revalidation> {
        self.check(&url)?;
        let mut req = self.client.head(url.clone());
        if let Some(h) = held {
            if let Some(etag) = &h.etag {
                req = req.header(header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = h.last_modified {
                req = req.header(header::IF_MODIFIED_SINCE, httpdate::fmt_http_date(lm));
            }
        }
        let resp = req.send().await.map_err(|e| map_reqwest(e, &url))?;
        if resp.status() == StatusCode::NOT_MODIFIED && held.is_some() {
            return Ok(Revalidation::NotModified(resp.headers().clone()));
        }
        status_ok(resp.status(), &url)?;
        Ok(Revalidation::Modified(meta_from(resp.headers()), resp.headers().clone()))
    }

    pub async fn get(&self, url: reqwest::Url, max_bytes: u64) -> Result<OriginObject> {
        self.check(&url)?;
        let mut resp = self.client.get(url.clone()).send().await.map_err(|e| map_reqwest(e, &url))?;
        status_ok(resp.status(), &url)?;
        if resp.content_length().is_some_and(|n| n > max_bytes) {
            return Err(Error::SourceTooLarge(max_bytes));
        }
        let meta = meta_from(resp.headers());
        let mut buf = BytesMut::with_capacity(resp.content_length().unwrap_or(64 * 1024).min(max_bytes) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(|e| map_reqwest(e, &url))? {
            if (buf.len() + chunk.len()) as u64 > max_bytes {
                return Err(Error::SourceTooLarge(max_bytes));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(OriginObject { bytes: Bytes::from(buf), meta })
    }
}

/// Origin status → our error: 404/410 are "not found"; other 4xx (401, 403, ...) are logged and answered
/// 404 too, so an origin's access rules are not leaked; 5xx and anything else unexpected are a 502.
fn status_ok(status: StatusCode, url: &reqwest::Url) -> Result<()> {
    if status.is_success() {
        return Ok(());
    }
    if status.is_client_error() {
        if !matches!(status.as_u16(), 404 | 410) {
            tracing::warn!(%status, host = url.host_str().unwrap_or(""), "origin refused the request; answering 404");
        }
        return Err(Error::NotFound);
    }
    Err(Error::OriginUnavailable(format!("origin answered {status}")))
}

fn map_reqwest(e: reqwest::Error, url: &reqwest::Url) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Error::Forbidden(r.to_string());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return Error::OriginTimeout;
    }
    let host = url.host_str().unwrap_or("");
    Error::OriginUnavailable(format!("{host}: {e}"))
}

pub fn meta_from(h: &HeaderMap) -> ObjectMeta {
    let etag = h.get(header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
    let last_modified =
        h.get(header::LAST_MODIFIED).and_then(|v| v.to_str().ok()).and_then(|s| httpdate::parse_http_date(s).ok());
    let size = h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|s| s.parse().ok());
    ObjectMeta::from_validators(etag, last_modified, size)
}
