//! Memory tier: moka (TinyLFU admission, LRU eviction), weighted by body bytes. A hit clones an `Arc`;
//! the body is a shared `Bytes`, never copied. Bodies from `zero_copy_min_bytes` up are moved into sealed
//! memory files on the way in ([`super::sealed`]), so a hit is not copied into the socket either.

use super::key::{CacheKey, ObjectId};
use super::Variant;
use moka::future::Cache;
use std::sync::Arc;

pub struct MemoryTier {
    cache: Cache<CacheKey, Arc<Variant>>,
    zero_copy_min: usize,
}

impl MemoryTier {
    pub fn new(max_bytes: u64, zero_copy_min_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_k: &CacheKey, v: &Arc<Variant>| (v.body.len() + 256).min(u32::MAX as usize) as u32)
            .support_invalidation_closures()
            .build();
        MemoryTier { cache, zero_copy_min: zero_copy_min_bytes.try_into().unwrap_or(usize::MAX) }
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Arc<Variant>> {
        self.cache.get(key).await
    }

    pub async fn insert(&self, key: CacheKey, v: Arc<Variant>) {
        // sealing copies the body once; a long copy is kept off the async workers
        let min = self.zero_copy_min;
        let sealed = if min == 0 || v.body.len() < min {
            None
        } else if v.body.len() > 256 << 10 {
            let body = v.body.clone();
            tokio::task::spawn_blocking(move || super::sealed::seal(&body, min)).await.ok().flatten()
        } else {
            super::sealed::seal(&v.body, min)
        };
        let v = match sealed {
            Some(body) => Arc::new(Variant { body, ..(*v).clone() }),
            None => v,
        };
        self.cache.insert(key, v).await;
    }

    /// Drop every variant of `object`.
    pub fn purge(&self, object: &ObjectId) {
        let object = object.clone();
        // only fails without support_invalidation_closures, which the builder sets
        let _ = self.cache.invalidate_entries_if(move |k, _| k.object == object);
    }

    /// Every body held now (for inspection; clones of shared `Bytes`).
    pub fn bodies(&self) -> Vec<bytes::Bytes> {
        self.cache.iter().map(|(_, v)| v.body.clone()).collect()
    }

    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }
}
