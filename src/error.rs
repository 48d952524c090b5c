//! The one place where a failure becomes an HTTP status, a stable machine code and a public message.
//!
//! Every fallible step returns [`Error`]; only [`Error::into_response`] turns it into a response, so the
//! status mapping, the `Cache-Control` of error responses and what is safe to show a client live here.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

/// Everything that can go wrong while answering a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A query parameter is malformed or out of range.
    #[error("parameter `{param}`: {reason}")]
    BadParam { param: String, reason: String },
    /// A query parameter imgedge does not know.
    #[error("unknown parameter `{0}`")]
    UnknownParam(String),
    /// The path is not a valid object key (traversal, empty segment, ...).
    #[error("invalid path: {0}")]
    BadPath(&'static str),
    /// Credentials are missing or wrong.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The request is understood and refused.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The object does not exist at the origin.
    #[error("not found")]
    NotFound,
    /// The source is not an image type imgedge transforms (by its magic bytes).
    #[error("unsupported source type: {0}")]
    UnsupportedType(String),
    /// The source declares more pixels than the configured limit.
    #[error("source image is {width}x{height}, over the limit of {max_pixels} pixels")]
    TooManyPixels { width: u64, height: u64, max_pixels: u64 },
    /// An uploaded body is larger than the configured limit.
    #[error("the upload is larger than the limit of {0} bytes")]
    PayloadTooLarge(u64),
    /// The source is larger than the configured byte limit.
    #[error("source is larger than the limit of {0} bytes")]
    SourceTooLarge(u64),
    /// The source claims to be an image but cannot be decoded.
    #[error("cannot decode the source image: {0}")]
    Undecodable(String),
    /// The origin failed or could not be reached.
    #[error("origin unavailable: {0}")]
    OriginUnavailable(String),
    /// The origin did not answer in time.
    #[error("origin timed out")]
    OriginTimeout,
    /// The client used up its rate limit; retry after this many seconds.
    #[error("too many requests, retry in {0} s")]
    RateLimited(u64),
    /// The transform queue is full.
    #[error("server is busy, retry shortly")]
    Overloaded,
    /// A transform ran past its deadline.
    #[error("transform exceeded its deadline")]
    TransformTimeout,
    /// A bug or an environment failure; details are logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn bad_param(param: &str, reason: impl Into<String>) -> Self {
        Error::BadParam { param: param.to_string(), reason: reason.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadParam { .. } | Error::UnknownParam(_) | Error::BadPath(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::TooManyPixels { .. } | Error::SourceTooLarge(_) | Error::Undecodable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Error::OriginUnavailable(_) => StatusCode::BAD_GATEWAY,
            Error::OriginTimeout => StatusCode::GATEWAY_TIMEOUT,
            Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Overloaded | Error::TransformTimeout => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code, also used as a metrics label (closed set).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadParam { .. } => "bad_param",
            Error::UnknownParam(_) => "unknown_param",
            Error::BadPath(_) => "bad_path",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound => "not_found",
            Error::UnsupportedType(_) => "unsupported_type",
            Error::TooManyPixels { .. } => "too_many_pixels",
            Error::SourceTooLarge(_) => "source_too_large",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::Undecodable(_) => "undecodable",
            Error::OriginUnavailable(_) => "origin_unavailable",
            Error::OriginTimeout => "origin_timeout",
            Error::RateLimited(_) => "rate_limited",
            Error::Overloaded => "overloaded",
            Error::TransformTimeout => "transform_timeout",
            Error::Internal(_) => "internal",
        }
    }

    /// What the client may read: the full message for client errors, a generic one for server errors
    /// (whose details can name internal hosts or paths).
    pub fn public_message(&self) -> String {
        match self {
            Error::OriginUnavailable(_) => "the origin is unavailable".into(),
            Error::Internal(_) => "internal error".into(),
            other => other.to_string(),
        }
    }

    /// `Cache-Control` of the error response: deterministic client errors may be cached briefly by a CDN,
    /// anything transient (overload, outage, bugs) must never be.
    pub fn cache_control(&self) -> &'static str {
        match self.status().as_u16() {
            400 | 404 | 415 | 422 => "public, max-age=60",
            _ => "no-store",
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), error = %self, "request failed");
        } else {
            tracing::debug!(code = self.code(), error = %self, "request refused");
        }
        let body = serde_json::json!({ "error": self.public_message(), "code": self.code() });
        let mut resp = (status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(self.cache_control()));
        if matches!(self, Error::Unauthorized(_)) {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, Error::Overloaded | Error::TransformTimeout) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Error::RateLimited(secs) = self {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        crate::http::headers::security_headers(h);
        resp
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
