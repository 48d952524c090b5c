//! Local-folder origin: keys are paths under one root, which no key (or symlink) can leave.

use super::{ObjectMeta, OriginObject};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;
use tokio::io::AsyncReadExt;

pub struct FsOrigin {
    root: PathBuf,
}

impl FsOrigin {
    pub fn new(root: impl AsRef<Path>) -> Result<Self, String> {
        let root = root.as_ref();
        let root = std::fs::canonicalize(root).map_err(|e| format!("origin directory {}: {e}", root.display()))?;
        if !root.is_dir() {
            return Err(format!("origin {} is not a directory", root.display()));
        }
        Ok(FsOrigin { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolve `key` (already validated by `url::path`) to a regular file inside the root. Symlinks are
    /// followed, but the target must still be inside the root: anything else is a 404.
    async fn resolve(&self, key: &str) -> Result<(PathBuf, std::fs::Metadata)> {
        let path = tokio::fs::canonicalize(self.root.join(key)).await?;
        if !path.starts_with(&self.root) {
            tracing::warn!(key, "key resolves outside the origin root");
            return Err(Error::NotFound);
        }
        let meta = tokio::fs::metadata(&path).await?;
        if !meta.is_file() {
            return Err(Error::NotFound);
        }
        Ok((path, meta))
    }

    fn meta_of(m: &std::fs::Metadata) -> ObjectMeta {
        let modified = m.modified().ok();
        let nanos = modified.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
        ObjectMeta {
            version: format!("{:x}-{:x}", m.len(), nanos),
            etag: None,
            last_modified: modified,
            size: Some(m.len()),
        }
    }

    pub async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let (_, m) = self.resolve(key).await?;
        Ok(Self::meta_of(&m))
    }

    pub async fn get(&self, key: &str, max_bytes: u64) -> Result<OriginObject> {
        let (path, m) = self.resolve(key).await?;
        if m.len() > max_bytes {
            return Err(Error::SourceTooLarge(max_bytes));
        }
        let file = tokio::fs::File::open(&path).await?;
        let mut buf = Vec::with_capacity(m.len() as usize);
        // The cap holds even if the file grows between stat and read.
        file.take(max_bytes + 1).read_to_end(&mut buf).await?;
        if buf.len() as u64 > max_bytes {
            return Err(Error::SourceTooLarge(max_bytes));
        }
        let mut meta = Self::meta_of(&m);
        if buf.len() as u64 != m.len() {
            // changed while we read it: version the bytes we actually hold
            meta.version = format!("{}-{}", meta.version, &blake3::hash(&buf).to_hex()[..16]);
        }
        Ok(OriginObject { bytes: Bytes::from(buf), meta })
    }

    pub async fn check(&self) -> Result<()> {
        let _ = tokio::fs::read_dir(&self.root).await?;
        Ok(())
    }
}
