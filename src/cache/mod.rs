//! Result caches, looked up in order: memory (moka), then disk; plus a bounded memory cache of
//! originals so that many widths of one image cost one download. Misses are coalesced in
//! [`coalesce::Flights`]: a variant is made once, however many requests want it at the same time.

pub mod coalesce;
pub mod disk;
pub mod key;
pub mod memory;
pub mod sealed;
pub mod store;

use crate::error::{Error, Result};
use crate::metrics::Stats;
use crate::origin::FetchConfig;
use crate::url::OutputFormat;
use bytes::Bytes;
use key::{CacheKey, ObjectId};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// Cache sizes (config section `[cache]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Memory tier size in bytes of response bodies.
    pub memory_bytes: u64,
    /// Disk tier budget in bytes (0 turns the disk tier off).
    pub disk_bytes: u64,
    /// Memory for recently fetched originals, in bytes.
    pub originals_bytes: u64,
    /// Memory-tier bodies at least this long are kept in sealed memory files and sent with `sendfile`
    /// (0: all bodies stay on the heap and are copied into the socket).
    pub zero_copy_min_bytes: u64,
    /// Shared result store for several replicas (`[cache.store]`).
    pub store: store::StoreConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            memory_bytes: 256 << 20,
            disk_bytes: 10 << 30,
            originals_bytes: 256 << 20,
            zero_copy_min_bytes: 16 << 10,
            store: store::StoreConfig::default(),
        }
    }
}

/// One cached variant: the encoded body and what its response headers need.
#[derive(Debug, Clone)]
pub struct Variant {
    pub body: Bytes,
    pub format: OutputFormat,
    pub etag: String,
    pub last_modified: Option<SystemTime>,
}

/// Where a response came from (the `X-Cache` header and a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    HitMemory,
    HitDisk,
    HitStore,
    Miss,
    Coalesced,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::HitMemory => "HIT-MEMORY",
            CacheStatus::HitDisk => "HIT-DISK",
            CacheStatus::HitStore => "HIT-STORE",
            CacheStatus::Miss => "MISS",
            CacheStatus::Coalesced => "COALESCED",
        }
    }
}

pub struct Caches {
    pub memory: memory::MemoryTier,
    pub disk: Option<Arc<disk::DiskTier>>,
    pub store: Option<Arc<store::Store>>,
    originals: moka::future::Cache<(ObjectId, String), Bytes>,
}

impl Caches {
    pub async fn new(cfg: &CacheConfig, dir: &Path, fetch: &FetchConfig, stats: Arc<Stats>) -> Result<Self, String> {
        let disk = if cfg.disk_bytes > 0 {
            Some(
                disk::DiskTier::open(dir, cfg.disk_bytes, stats)
                    .map_err(|e| format!("cache dir {}: {e}", dir.display()))?,
            )
        } else {
            None
        };
        let store = store::Store::new(&cfg.store, fetch).await?;
        let originals = moka::future::Cache::builder()
            .max_capacity(cfg.originals_bytes)
            .weigher(|_k: &(ObjectId, String), v: &Bytes| v.len().min(u32::MAX as usize) as u32)
            .support_invalidation_closures()
            .build();
        Ok(Caches {
            memory: memory::MemoryTier::new(cfg.memory_bytes, cfg.zero_copy_min_bytes),
            disk,
            store,
            originals,
        })
    }

    /// Memory, then disk, then the shared store (hits are promoted to the faster tiers).
    pub async fn lookup(&self, key: &CacheKey) -> Option<(Arc<Variant>, CacheStatus)> {
        if let Some(v) = self.memory.get(key).await {
            return Some((v, CacheStatus::HitMemory));
        }
        if let Some(disk) = &self.disk {
            if let Some(v) = disk.get(key).await {
                self.memory.insert(key.clone(), v.clone()).await;
                return Some((v, CacheStatus::HitDisk));
            }
        }
        None
    }

    /// The shared store, looked up only by the leader of a miss (one request per variant and replica).
    pub async fn lookup_store(&self, key: &CacheKey) -> Option<Arc<Variant>> {
        let v = Arc::new(self.store.as_ref()?.get(key).await?);
        self.keep_locally(key.clone(), v.clone()).await;
        Some(v)
    }

    async fn keep_locally(&self, key: CacheKey, v: Arc<Variant>) {
        if let Some(disk) = &self.disk {
            let (disk, key, v) = (disk.clone(), key.clone(), v.clone());
            tokio::spawn(async move { disk.put(&key, &v).await });
        }
        self.memory.insert(key, v).await;
    }

    /// Keep a fresh variant: in memory now, on disk and in the shared store in the background.
    pub async fn store(&self, key: CacheKey, v: Arc<Variant>) {
        if let Some(store) = &self.store {
            let (store, key, v) = (store.clone(), key.clone(), v.clone());
            tokio::spawn(async move { store.put(&key, &v).await });
        }
        self.keep_locally(key, v).await;
    }

    /// The original `(object, version)`, fetched by `fetch` at most once at a time and kept while memory
    /// allows.
    pub async fn original<F>(&self, object: &ObjectId, version: &str, fetch: F) -> Result<Bytes>
    where
        F: std::future::Future<Output = Result<Bytes>>,
    {
        self.originals
            .try_get_with((object.clone(), version.to_string()), fetch)
            .await
            .map_err(|e: Arc<Error>| (*e).clone())
    }

    /// Remove every variant (and held original) of `object` from every tier.
    pub async fn purge(&self, object: &ObjectId) {
        self.memory.purge(object);
        let o = object.clone();
        let _ = self.originals.invalidate_entries_if(move |k, _| k.0 == o);
        if let Some(disk) = &self.disk {
            disk.purge(object).await;
        }
        if let Some(store) = &self.store {
            store.purge(object).await;
        }
        self.memory.run_pending_tasks().await;
        self.originals.run_pending_tasks().await;
    }
}
