//! Disk tier: one file per variant under `{cache_dir}/v1/{oid[..2]}/{oid}/{variant}`, written to a temp
//! file and renamed into place (a crash never leaves a half entry that is served), with a header that
//! carries the response metadata and a BLAKE3 checksum of the body, verified on every read. A corrupt
//! or truncated entry is a miss and is deleted.
//!
//! Eviction: the index is a moka cache weighted by file size with the byte budget as capacity. moka
//! admits with TinyLFU and evicts LRU, so one-hit wonders (a crawler walking every width once) do not
//! flush the entries that are asked for again and again; its eviction listener unlinks evicted files.
//! The index is rebuilt from the directory at start-up in the background (oldest first); until that
//! finishes, a lookup the index does not know yet still tries the file.

use super::key::{CacheKey, ObjectId};
use super::Variant;
use crate::metrics::Stats;
use crate::url::OutputFormat;
use bytes::Bytes;
use moka::notification::RemovalCause;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

const MAGIC: &[u8; 8] = b"IMGEDGE1";

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    etag: String,
    last_modified: Option<u64>,
    body_len: u64,
    blake3: String,
}

pub struct DiskTier {
    root: PathBuf,
    index: moka::sync::Cache<String, u64>,
    loaded: Arc<AtomicBool>,
    stats: Arc<Stats>,
}

impl DiskTier {
    /// Open (creating) the tier under `dir` and start rebuilding its index in the background.
    pub fn open(dir: &Path, budget: u64, stats: Arc<Stats>) -> std::io::Result<Arc<Self>> {
        let root = dir.join("v1");
        std::fs::create_dir_all(&root)?;
        let tmp = dir.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp); // leftovers of writes a crash interrupted
        std::fs::create_dir_all(&tmp)?;
        let listener_root = root.clone();
        let index = moka::sync::Cache::builder()
            .max_capacity(budget)
            .weigher(|_k: &String, size: &u64| (*size).min(u32::MAX as u64) as u32)
            .support_invalidation_closures()
            .eviction_listener(move |rel: Arc<String>, _size, cause| {
                if cause != RemovalCause::Replaced {
                    let _ = std::fs::remove_file(listener_root.join(rel.as_str()));
                }
            })
            .build();
        let tier = Arc::new(DiskTier { root, index, loaded: Arc::new(AtomicBool::new(false)), stats });
        let t = tier.clone();
        std::thread::Builder::new().name("disk-index".into()).spawn(move || t.rebuild_index())?;
        Ok(tier)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.with_file_name("tmp")
    }

    /// Whether the start-up index rebuild has finished.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    fn rebuild_index(&self) {
        let mut files = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(d) = dirs.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let Ok(meta) = e.metadata() else { continue };
                if meta.is_dir() {
                    dirs.push(e.path());
                } else if let Ok(rel) = e.path().strip_prefix(&self.root) {
                    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
                    files.push((mtime, rel.to_string_lossy().replace('\\', "/"), meta.len()));
                }
            }
        }
        files.sort();
        let n = files.len();
        for (_, rel, size) in files {
            if !self.index.contains_key(&rel) {
                self.index.insert(rel, size);
            }
        }
        self.index.run_pending_tasks();
        self.loaded.store(true, Ordering::SeqCst);
        tracing::info!(entries = n, bytes = self.index.weighted_size(), "disk cache index rebuilt");
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Arc<Variant>> {
        let rel = key.rel_path();
        if self.loaded() && !self.index.contains_key(&rel) {
            return None;
        }
        let path = self.root.join(&rel);
        let data = match tokio::fs::read(&path).await {
            Ok(d) => Bytes::from(d),
            Err(_) => {
                self.index.invalidate(&rel);
                return None;
            }
        };
        let data_len = data.len() as u64;
        match decode_entry(data) {
            Some(v) => {
                if !self.index.contains_key(&rel) {
                    self.index.insert(rel, data_len);
                }
                Some(Arc::new(v))
            }
            None => {
                tracing::warn!(path = %path.display(), "corrupt disk cache entry removed");
                self.stats.disk_corrupt.inc();
                let _ = tokio::fs::remove_file(&path).await;
                self.index.invalidate(&rel);
                None
            }
        }
    }

    /// Write an entry; failures (disk full, read-only) are logged and counted, never fatal.
    pub async fn put(&self, key: &CacheKey, v: &Variant) {
        let rel = key.rel_path();
        let size = match self.write(&rel, v).await {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(error = %e, "disk cache write failed; serving without caching");
                self.stats.disk_write_errors.inc();
                return;
            }
        };
        self.index.insert(rel, size);
        self.index.run_pending_tasks();
    }

    async fn write(&self, rel: &str, v: &Variant) -> std::io::Result<u64> {
        let final_path = self.root.join(rel);
        if let Some(parent) = final_path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let tmp = self.tmp_dir().join(format!("{}.{}.tmp", rel.replace('/', "_"), std::process::id()));
        let entry = encode_entry(v);
        tokio::fs::write(&tmp, &entry).await?;
        if let Err(e) = tokio::fs::rename(&tmp, &final_path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        Ok(entry.len() as u64)
    }

    /// Remove every variant of `object`.
    pub async fn purge(&self, object: &ObjectId) {
        let dir = self.root.join(&object.0[..2]).join(&object.0);
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let prefix = format!("{}/{}/", &object.0[..2], object.0);
        let _ = self.index.invalidate_entries_if(move |k, _| k.starts_with(&prefix));
        self.index.run_pending_tasks();
    }

    /// Bytes and entries the index holds.
    pub fn usage(&self) -> (u64, u64) {
        self.index.run_pending_tasks();
        (self.index.weighted_size(), self.index.entry_count())
    }
}

/// Serialise an entry: magic, header (response metadata + BLAKE3 of the body), body.
pub(super) fn encode_entry(v: &Variant) -> Vec<u8> {
    let header = Header {
        format: v.format.as_str().to_string(),
        etag: v.etag.clone(),
        last_modified: v.last_modified.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()),
        body_len: v.body.len() as u64,
        blake3: blake3::hash(&v.body).to_hex().to_string(),
    };
    let header = serde_json::to_vec(&header).expect("header serialises");
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + v.body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&v.body);
    out
}

/// Parse and verify an entry; `None` for anything truncated, altered or unknown.
pub(super) fn decode_entry(data: Bytes) -> Option<Variant> {
    if data.len() < 12 || &data[..8] != MAGIC {
        return None;
    }
    let hlen = u32::from_le_bytes(data[8..12].try_into().ok()?) as usize;
    let header: Header = serde_json::from_slice(data.get(12..12 + hlen)?).ok()?;
    let body = data.slice(12 + hlen..);
    if body.len() as u64 != header.body_len || blake3::hash(&body).to_hex().as_str() != header.blake3 {
        return None;
    }
    let format = match header.format.as_str() {
        "webp" => OutputFormat::Webp,
        "avif" => OutputFormat::Avif,
        "jpeg" => OutputFormat::Jpeg,
        "png" => OutputFormat::Png,
        "svg" => OutputFormat::Svg,
        _ => return None,
    };
    Some(Variant {
        body,
        format,
        etag: header.etag,
        last_modified: header.last_modified.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(n: usize) -> Variant {
        Variant {
            body: Bytes::from(vec![7u8; n]),
            format: OutputFormat::Webp,
            etag: "\"e\"".into(),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        }
    }

    #[test]
    fn entries_round_trip_and_damage_is_detected() {
        let v = variant(1000);
        let enc = Bytes::from(encode_entry(&v));
        let back = decode_entry(enc.clone()).unwrap();
        assert_eq!((back.body, back.etag, back.last_modified), (v.body.clone(), v.etag.clone(), v.last_modified));
        assert!(decode_entry(enc.slice(..enc.len() - 1)).is_none(), "truncated");
        let mut flipped = enc.to_vec();
        let last = flipped.len() - 10;
        flipped[last] ^= 1;
        assert!(decode_entry(Bytes::from(flipped)).is_none(), "bit flip");
        assert!(decode_entry(Bytes::from_static(b"IMGEDGE1")).is_none());
    }

    #[tokio::test]
    async fn budget_is_kept_and_purge_removes_an_objects_variants() {
        let dir = tempfile::tempdir().unwrap();
        let tier = DiskTier::open(dir.path(), 100_000, Arc::new(Stats::default())).unwrap();
        while !tier.loaded() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for i in 0..60 {
            let k = CacheKey::new("fs", &format!("img{}.jpg", i % 30), "v", &format!("w={i}"));
            tier.put(&k, &variant(10_000)).await;
        }
        let on_disk: u64 = walk(&dir.path().join("v1")).iter().map(|p| p.metadata().unwrap().len()).sum();
        assert!(on_disk <= 100_000, "{on_disk} bytes on disk for a 100000-byte budget");
        let (bytes, entries) = tier.usage();
        assert!(bytes <= 100_000 && entries > 0);

        let a = CacheKey::new("fs", "keep.jpg", "v", "w=1");
        let b1 = CacheKey::new("fs", "gone.jpg", "v", "w=1");
        let b2 = CacheKey::new("fs", "gone.jpg", "v2", "w=2");
        for k in [&a, &b1, &b2] {
            tier.put(k, &variant(100)).await;
        }
        tier.purge(&b1.object).await;
        assert!(tier.get(&b1).await.is_none() && tier.get(&b2).await.is_none());
        assert!(tier.get(&a).await.is_some());
    }

    fn walk(d: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }
}
