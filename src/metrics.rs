//! Metrics: counters the server keeps about itself (also what tests count), and the Prometheus
//! exposition for the separate metrics listener. Every name and help text is here; labels come from
//! closed sets (route, status class, cache result, origin kind, format, error code), never from paths.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics::{Counter as Count, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// A monotonically increasing counter kept in-process (tests read these).
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

pub const REQUESTS: &str = "imgedge_requests_total";
pub const REQUEST_DURATION: &str = "imgedge_request_duration_seconds";
pub const CACHE_RESULTS: &str = "imgedge_cache_results_total";
pub const ORIGIN_FETCH_DURATION: &str = "imgedge_origin_fetch_duration_seconds";
pub const ORIGIN_ERRORS: &str = "imgedge_origin_errors_total";
pub const TRANSFORM_DURATION: &str = "imgedge_transform_duration_seconds";
pub const BYTES_IN: &str = "imgedge_origin_bytes_total";
pub const BYTES_OUT: &str = "imgedge_response_bytes_total";
pub const QUEUE_DEPTH: &str = "imgedge_transform_queue_depth";
pub const IN_FLIGHT: &str = "imgedge_transforms_in_flight";
pub const COALESCED: &str = "imgedge_coalesced_waiters_total";
pub const DISK_BYTES: &str = "imgedge_disk_cache_bytes";
pub const DISK_ENTRIES: &str = "imgedge_disk_cache_entries";
pub const DISK_WRITE_ERRORS: &str = "imgedge_disk_cache_write_errors_total";
pub const DISK_CORRUPT: &str = "imgedge_disk_cache_corrupt_total";
pub const MEMORY_BYTES: &str = "imgedge_memory_cache_bytes";
pub const SEALED_BODIES: &str = "imgedge_memory_cache_sealed_bodies";
pub const SENDFILE_BYTES: &str = "imgedge_sendfile_bytes_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the process-wide Prometheus recorder (once) and return its handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let fast = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), &fast)
            .expect("valid buckets")
            .build_recorder();
        let handle = recorder.handle();
        // another recorder may already be installed (several servers in one test process share this one)
        let _ = metrics::set_global_recorder(recorder);
        describe();
        let _ = HANDLES.set(Handles::new());
        handle
    })
}

fn describe() {
    describe_counter!(REQUESTS, "Requests answered, by route and status class");
    describe_histogram!(REQUEST_DURATION, Unit::Seconds, "Time to answer a request, by route");
    describe_counter!(CACHE_RESULTS, "Image responses by cache result (X-Cache)");
    describe_histogram!(ORIGIN_FETCH_DURATION, Unit::Seconds, "Time to download an original, by origin kind");
    describe_counter!(ORIGIN_ERRORS, "Failed origin downloads, by origin kind and error code");
    describe_histogram!(TRANSFORM_DURATION, Unit::Seconds, "Decode + resize + encode time, by output format");
    describe_counter!(BYTES_IN, Unit::Bytes, "Bytes of originals downloaded");
    describe_counter!(BYTES_OUT, Unit::Bytes, "Bytes of image bodies sent");
    describe_gauge!(QUEUE_DEPTH, "Transforms waiting for a worker");
    describe_gauge!(IN_FLIGHT, "Transforms running");
    describe_counter!(COALESCED, "Requests that waited for an identical miss in progress");
    describe_gauge!(DISK_BYTES, Unit::Bytes, "Bytes in the disk cache");
    describe_gauge!(DISK_ENTRIES, "Entries in the disk cache");
    describe_counter!(DISK_WRITE_ERRORS, "Disk cache writes that failed");
    describe_counter!(DISK_CORRUPT, "Disk cache entries found damaged and removed");
    describe_gauge!(MEMORY_BYTES, Unit::Bytes, "Bytes in the memory cache");
    describe_gauge!(SEALED_BODIES, "Memory-cache bodies held in sealed memory files (one descriptor each)");
    describe_counter!(SENDFILE_BYTES, Unit::Bytes, "Body bytes sent from sealed memory files without a copy");
}

const ROUTES: [&str; 3] = ["image", "admin", "health"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const RESULTS: [&str; 5] = ["HIT-MEMORY", "HIT-DISK", "HIT-STORE", "MISS", "COALESCED"];

/// The per-request series, resolved once when the recorder is installed: the labels are closed sets,
/// and a registry lookup (hashing name and labels) on every request would cost more than the count.
struct Handles {
    requests: [[Count; CLASSES.len()]; ROUTES.len()],
    durations: [Histogram; ROUTES.len()],
    results: [Count; RESULTS.len()],
    bytes_out: Count,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

impl Handles {
    fn new() -> Self {
        Handles {
            requests: ROUTES.map(|r| CLASSES.map(|c| counter!(REQUESTS, "route" => r, "status" => c))),
            durations: ROUTES.map(|r| histogram!(REQUEST_DURATION, "route" => r)),
            results: RESULTS.map(|r| counter!(CACHE_RESULTS, "result" => r)),
            bytes_out: counter!(BYTES_OUT),
        }
    }
}

fn status_index(status: u16) -> usize {
    (status / 100).clamp(1, 5) as usize - 1
}

/// Status class label: `2xx` .. `5xx`.
pub fn status_class(status: u16) -> &'static str {
    CLASSES[status_index(status)]
}

pub fn request(route: &'static str, status: u16, elapsed: Duration) {
    match (HANDLES.get(), ROUTES.iter().position(|r| *r == route)) {
        (Some(h), Some(i)) => {
            h.requests[i][status_index(status)].increment(1);
            h.durations[i].record(elapsed.as_secs_f64());
        }
        _ => {
            counter!(REQUESTS, "route" => route, "status" => status_class(status)).increment(1);
            histogram!(REQUEST_DURATION, "route" => route).record(elapsed.as_secs_f64());
        }
    }
}

pub fn cache_result(result: &'static str, body_bytes: usize) {
    match (HANDLES.get(), RESULTS.iter().position(|r| *r == result)) {
        (Some(h), Some(i)) => {
            h.results[i].increment(1);
            h.bytes_out.increment(body_bytes as u64);
        }
        _ => {
            counter!(CACHE_RESULTS, "result" => result).increment(1);
            counter!(BYTES_OUT).increment(body_bytes as u64);
        }
    }
}

pub fn origin_fetch(kind: &'static str, elapsed: Duration, outcome: Result<usize, &'static str>) {
    histogram!(ORIGIN_FETCH_DURATION, "origin" => kind).record(elapsed.as_secs_f64());
    match outcome {
        Ok(bytes) => counter!(BYTES_IN).increment(bytes as u64),
        Err(code) => counter!(ORIGIN_ERRORS, "origin" => kind, "code" => code).increment(1),
    }
}

pub fn transform(format: &'static str, elapsed: Duration) {
    histogram!(TRANSFORM_DURATION, "format" => format).record(elapsed.as_secs_f64());
}

pub fn coalesced() {
    counter!(COALESCED).increment(1);
}

/// Gauges sampled at scrape time.
pub fn sample(queue: usize, in_flight: usize, memory_bytes: u64, disk: Option<(u64, u64)>, stats: &Stats) {
    gauge!(QUEUE_DEPTH).set(queue as f64);
    gauge!(IN_FLIGHT).set(in_flight as f64);
    gauge!(MEMORY_BYTES).set(memory_bytes as f64);
    if let Some((bytes, entries)) = disk {
        gauge!(DISK_BYTES).set(bytes as f64);
        gauge!(DISK_ENTRIES).set(entries as f64);
    }
    counter!(DISK_WRITE_ERRORS).absolute(stats.disk_write_errors.get());
    counter!(DISK_CORRUPT).absolute(stats.disk_corrupt.get());
    gauge!(SEALED_BODIES).set(crate::cache::sealed::live() as f64);
    counter!(SENDFILE_BYTES).absolute(crate::http::conn::sent_from_files());
}
