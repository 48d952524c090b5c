//! Counters the server keeps about itself (also what tests count: origin fetches, transforms).

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Originals downloaded from an origin (not metadata lookups).
    pub origin_fetches: Counter,
    /// Transforms run (decode + resize + encode).
    pub transforms: Counter,
    /// Requests that waited for another request's identical miss.
    pub coalesced: Counter,
    /// Disk cache writes that failed (disk full, unwritable).
    pub disk_write_errors: Counter,
    /// Disk cache entries found corrupt and deleted.
    pub disk_corrupt: Counter,
}
