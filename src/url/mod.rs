//! Request URLs: the object key from the path and the typed transform spec from the query.
//!
//! `GET /{key}?{params}`: [`path::object_key`] validates the key, [`params::parse`] turns the query into a
//! [`TransformSpec`], whose [`TransformSpec::canonical`] form is what caches and ETags key on.

pub mod params;
pub mod path;
pub mod sign;
pub mod spec;

pub use spec::{Download, Fit, FormatParam, Gravity, OutputFormat, Rgba, TransformSpec};

use crate::error::Result;

/// One parsed image request.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRequest {
    /// Object key in the origin, without a leading slash.
    pub key: String,
    pub spec: TransformSpec,
}

impl ImageRequest {
    /// Parse a raw (still percent-encoded) path and query.
    pub fn parse(
        raw_path: &str,
        raw_query: Option<&str>,
        default_format: FormatParam,
        presets: &params::Presets,
    ) -> Result<Self> {
        let key = path::object_key(raw_path)?;
        let spec = params::parse_with(raw_query.unwrap_or(""), default_format, presets)?;
        Ok(ImageRequest { key, spec })
    }
}
