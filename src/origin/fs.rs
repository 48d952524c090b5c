//! Local-folder origin: keys are paths under one root, which no key (or symlink) can leave.

use super::{ObjectMeta, OriginObject};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use tokio::io::AsyncReadExt;

pub struct FsOrigin {
    root: PathBuf,
    /// Recent `head` answers: a hot object is stat'ed at most once per `recheck` (0: every time).
    recent: Option<moka::future::Cache<String, ObjectMeta>>,
}

impl FsOrigin {
    pub fn new(root: impl AsRef<Path>, recheck: Duration) -> Result<Self, String> {
        let root = root.as_ref();
        let root = std::fs::canonicalize(root).map_err(|e| format!("origin directory {}: {e}", root.display()))?;
        if !root.is_dir() {
            return Err(format!("origin {} is not a directory", root.display()));
        }
        let recent = (!recheck.is_zero())
            .then(|| moka::future::Cache::builder().max_capacity(100_000).time_to_live(recheck).build());
        Ok(FsOrigin { root, recent })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolve `key` (already validated by `url::path`) to a regular file inside the root. Symlinks are
    /// followed, but the target must still be inside the root: anything else is a 404.
    async fn resolve(&self, key: &str) -> Result<(PathBuf, std::fs::Metadata)> {
        let (root, joined) = (self.root.clone(), self.root.join(key));
        let key = key.to_string();
        // one trip to the blocking pool for both syscalls
        tokio::task::spawn_blocking(move || {
            let path = std::fs::canonicalize(joined)?;
            if !path.starts_with(&root) {
                tracing::warn!(key, "key resolves outside the origin root");
                return Err(Error::NotFound);
            }
            let meta = std::fs::metadata(&path)?;
            if !meta.is_file() {
                return Err(Error::NotFound);
            }
            Ok((path, meta))
        })
        .await
        .map_err(|e| Error::Internal(format!("stat task: {e}")))?
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
        if let Some(r) = &self.recent {
            if let Some(meta) = r.get(key).await {
                return Ok(meta);
            }
        }
        let (_, m) = self.resolve(key).await?;
        let meta = Self::meta_of(&m);
        if let Some(r) = &self.recent {
            r.insert(key.to_string(), meta.clone()).await;
        }
        Ok(meta)
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
