//! S3-protocol origin (AWS S3, Cloudflare R2, Backblaze B2, MinIO, ...) through aws-sdk-s3.
//!
//! Metadata comes from a 1-byte ranged GET rather than HeadObject: a HEAD error has no body, so a
//! missing key (403 AccessDenied without ListBucket) could not be told from wrong credentials.

use super::{FetchConfig, ObjectMeta, OriginObject, OriginOptions, Revalidation};
use crate::error::{Error, Result};
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue};
use std::time::{Duration, SystemTime};

pub struct S3Origin {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

/// Which S3 service: decides endpoint, region and checksum defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Aws,
    R2,
    B2,
    /// Any other S3-compatible endpoint (MinIO, Ceph, test servers).
    Custom,
}

/// Resolved client settings for one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Settings {
    pub provider: Provider,
    pub bucket: String,
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl S3Settings {
    /// From `s3://bucket[/prefix]` plus options (spec query first, then explicit config on top).
    pub fn resolve(bucket: &str, prefix: &str, o: &OriginOptions) -> Result<Self, String> {
        let provider = match o.provider.as_deref().unwrap_or(if o.endpoint.is_some() { "custom" } else { "aws" }) {
            "aws" | "s3" => Provider::Aws,
            "r2" => Provider::R2,
            "b2" => Provider::B2,
            "custom" | "minio" => Provider::Custom,
            other => return Err(format!("unknown provider `{other}` (aws, r2, b2, custom)")),
        };
        let mut region = o.region.clone();
        let mut endpoint = o.endpoint.clone();
        match provider {
            Provider::R2 => {
                region.get_or_insert_with(|| "auto".into());
                if endpoint.is_none() {
                    let account = o.account_id.as_deref().ok_or("provider r2 needs account_id or endpoint")?;
                    endpoint = Some(format!("https://{account}.r2.cloudflarestorage.com"));
                }
            }
            Provider::B2 => {
                if region.is_none() {
                    // https://s3.us-west-004.backblazeb2.com → us-west-004
                    region = endpoint
                        .as_deref()
                        .and_then(|e| e.split("://").nth(1))
                        .and_then(|h| h.strip_prefix("s3."))
                        .and_then(|h| h.split('.').next())
                        .map(str::to_string);
                }
                let r = region.clone().ok_or("provider b2 needs region or endpoint")?;
                endpoint.get_or_insert_with(|| format!("https://s3.{r}.backblazeb2.com"));
            }
            Provider::Custom => {
                if endpoint.is_none() {
                    return Err("a custom S3 provider needs endpoint".into());
                }
                region.get_or_insert_with(|| "us-east-1".into());
            }
            Provider::Aws => {}
        }
        let path_style = o.path_style.unwrap_or(matches!(provider, Provider::Custom | Provider::R2));
        let prefix = prefix.trim_matches('/');
        Ok(S3Settings {
            provider,
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
            region,
            endpoint,
            path_style,
            access_key_id: o.access_key_id.clone(),
            secret_access_key: o.secret_access_key.clone(),
        })
    }
}

impl S3Origin {
    pub async fn new(s: S3Settings, fetch: &FetchConfig) -> Result<Self, String> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs_f64(fetch.connect_timeout_secs))
                .operation_timeout(Duration::from_secs_f64(fetch.timeout_secs))
                .build(),
        );
        if let Some(r) = &s.region {
            loader = loader.region(Region::new(r.clone()));
        }
        match (&s.access_key_id, &s.secret_access_key) {
            (Some(ak), Some(sk)) => {
                loader = loader.credentials_provider(Credentials::new(ak, sk, None, None, "imgedge-config"))
            }
            (None, None) => {} // the standard chain: env, profile, web identity (IRSA), ECS, instance metadata
            _ => return Err("set both access_key_id and secret_access_key, or neither".into()),
        }
        let sdk = loader.load().await;
        let mut b = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(s.path_style);
        if let Some(ep) = &s.endpoint {
            b = b.endpoint_url(ep);
        }
        if s.provider != Provider::Aws {
            // R2 and B2 reject or mishandle the flexible-checksum headers recent SDKs send by default
            b = b
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(S3Origin { client: aws_sdk_s3::Client::from_conf(b.build()), bucket: s.bucket, prefix: s.prefix })
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
    pub fn object_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub async fn head(&self, key: &str, held: Option<&ObjectMeta>) -> Result<Revalidation> {
        let mut req = self.client.get_object().bucket(&self.bucket).key(self.object_key(key)).range("bytes=0-0");
        if let Some(etag) = held.and_then(|h| h.etag.as_deref()) {
            req = req.if_none_match(etag);
        }
        match req.send().await {
            Ok(out) => {
                let size = out.content_range().and_then(|r| r.rsplit('/').next()).and_then(|n| n.parse().ok());
                let etag = out.e_tag().map(str::to_string);
                let last_modified = out.last_modified().and_then(|t| SystemTime::try_from(*t).ok());
                let mut headers = HeaderMap::new();
                let mut put = |name: header::HeaderName, v: Option<String>| {
                    if let Some(v) = v.and_then(|v| HeaderValue::from_str(&v).ok()) {
                        headers.insert(name, v);
                    }
                };
                put(header::ETAG, etag.clone());
                put(header::LAST_MODIFIED, last_modified.map(httpdate::fmt_http_date));
                put(header::CACHE_CONTROL, out.cache_control().map(str::to_string));
                put(header::EXPIRES, out.expires_string().map(str::to_string));
                if let Some(held) = held {
                    if held.etag.is_some() && held.etag == etag {
                        return Ok(Revalidation::NotModified(headers));
                    }
                }
                Ok(Revalidation::Modified(ObjectMeta::from_validators(etag, last_modified, size), headers))
            }
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 304 => {
                Ok(Revalidation::NotModified(HeaderMap::new()))
            }
            Err(e) => Err(map_sdk(e, key)),
        }
    }

    pub async fn get(&self, key: &str, max_bytes: u64) -> Result<OriginObject> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await
            .map_err(|e| map_sdk(e, key))?;
        if out.content_length().is_some_and(|n| n as u64 > max_bytes) {
            return Err(Error::SourceTooLarge(max_bytes));
        }
        let meta = ObjectMeta::from_validators(
            out.e_tag().map(str::to_string),
            out.last_modified().and_then(|t| SystemTime::try_from(*t).ok()),
            out.content_length().map(|n| n as u64),
        );
        let mut body = out.body;
        let mut buf = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::OriginUnavailable(format!("S3 body: {e}")))?;
            if (buf.len() + chunk.len()) as u64 > max_bytes {
                return Err(Error::SourceTooLarge(max_bytes));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(OriginObject { bytes: Bytes::from(buf), meta })
    }

    pub async fn check(&self) -> Result<()> {
        self.client.head_bucket().bucket(&self.bucket).send().await.map_err(|e| map_sdk(e, ""))?;
        Ok(())
    }
}

/// S3 failure → our error. A 403 `AccessDenied` on GET is what S3 answers for a missing key when the
/// credentials lack ListBucket: it becomes a 404 (logged). Bad credentials (`InvalidAccessKeyId`,
/// `SignatureDoesNotMatch`) and everything else server-side are a 502; timeouts a 504.
pub fn map_sdk<E: ProvideErrorMetadata + std::fmt::Debug>(
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    key: &str,
) -> Error {
    match &e {
        SdkError::TimeoutError(_) => Error::OriginTimeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => Error::OriginTimeout,
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("");
            match (status, code) {
                (404, _) | (_, "NoSuchKey") => Error::NotFound,
                (416, _) | (_, "InvalidRange") => Error::Undecodable("the object is empty".into()),
                (403, "AccessDenied") => {
                    tracing::warn!(
                        key,
                        "S3 AccessDenied on GET: treated as a missing key (grant s3:ListBucket to get real 404s)"
                    );
                    Error::NotFound
                }
                _ => {
                    tracing::error!(key, status, code, message = se.err().message().unwrap_or(""), "S3 request failed");
                    Error::OriginUnavailable(format!("S3 answered {status} {code}"))
                }
            }
        }
        other => {
            tracing::error!(key, error = ?other, "S3 request failed");
            Error::OriginUnavailable("S3 unreachable".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(f: impl FnOnce(&mut OriginOptions)) -> OriginOptions {
        let mut o = OriginOptions::default();
        f(&mut o);
        o
    }

    #[test]
    fn provider_presets() {
        let r2 = S3Settings::resolve(
            "b",
            "x/",
            &opts(|o| {
                o.provider = Some("r2".into());
                o.account_id = Some("abc123".into());
            }),
        )
        .unwrap();
        assert_eq!(r2.endpoint.as_deref(), Some("https://abc123.r2.cloudflarestorage.com"));
        assert_eq!((r2.region.as_deref(), r2.prefix.as_str()), (Some("auto"), "x/"));
        let b2 = S3Settings::resolve(
            "b",
            "",
            &opts(|o| {
                o.provider = Some("b2".into());
                o.endpoint = Some("https://s3.us-west-004.backblazeb2.com".into());
            }),
        )
        .unwrap();
        assert_eq!(b2.region.as_deref(), Some("us-west-004"));
        let b2 = S3Settings::resolve(
            "b",
            "",
            &opts(|o| {
                o.provider = Some("b2".into());
                o.region = Some("eu-central-003".into());
            }),
        )
        .unwrap();
        assert_eq!(b2.endpoint.as_deref(), Some("https://s3.eu-central-003.backblazeb2.com"));
        let aws = S3Settings::resolve("b", "", &OriginOptions::default()).unwrap();
        assert_eq!((aws.provider, aws.endpoint, aws.path_style), (Provider::Aws, None, false));
        assert!(S3Settings::resolve("b", "", &opts(|o| o.provider = Some("r2".into()))).is_err());
        assert!(S3Settings::resolve("b", "", &opts(|o| o.provider = Some("gcs".into()))).is_err());
        let custom =
            S3Settings::resolve("b", "", &opts(|o| o.endpoint = Some("http://127.0.0.1:9000".into()))).unwrap();
        assert_eq!((custom.provider, custom.path_style), (Provider::Custom, true));
    }
}
