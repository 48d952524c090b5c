//! Origins: where originals come from. Each kind answers `head` (version only, for ETags and 304s
//! before any download) and `get` (bytes, capped), and maps its own failures to [`crate::error::Error`].

pub mod fs;

use crate::error::{Error, Result};
use bytes::Bytes;
use std::time::SystemTime;

/// What identifies one version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Opaque version string: changes whenever the object's bytes change.
    pub version: String,
    pub last_modified: Option<SystemTime>,
    pub size: Option<u64>,
}

/// An original, fetched.
#[derive(Debug, Clone)]
pub struct OriginObject {
    pub bytes: Bytes,
    pub meta: ObjectMeta,
}

/// A configured origin (enum dispatch: one match per call, no boxing).
pub enum Origin {
    Fs(fs::FsOrigin),
}

impl Origin {
    /// Build from an origin spec (`--origin`): for now a directory.
    pub fn from_spec(spec: &str) -> Result<Self, String> {
        if spec.contains("://") {
            return Err(format!("origin `{spec}`: only local directories are supported in this build"));
        }
        Ok(Origin::Fs(fs::FsOrigin::new(spec)?))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Origin::Fs(_) => "fs",
        }
    }

    pub async fn head(&self, key: &str) -> Result<ObjectMeta> {
        match self {
            Origin::Fs(o) => o.head(key).await,
        }
    }

    pub async fn get(&self, key: &str, max_bytes: u64) -> Result<OriginObject> {
        match self {
            Origin::Fs(o) => o.get(key, max_bytes).await,
        }
    }

    /// Whether the origin is usable (readiness).
    pub async fn check(&self) -> Result<()> {
        match self {
            Origin::Fs(o) => o.check().await,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound,
            _ => Error::OriginUnavailable(e.to_string()),
        }
    }
}
