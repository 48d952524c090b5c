//! Application state shared by every request, built once from [`Config`]: origin, caches, single-flight
//! table, CPU pool and counters.

use crate::cache::coalesce::Flights;
use crate::cache::key::CacheKey;
use crate::cache::{Caches, Variant};
use crate::config::Config;
use crate::error::Error;
use crate::metrics::Stats;
use crate::origin::Origins;
use crate::security::Admission;
use crate::transform::pool::CpuPool;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Time the leader of a miss spent fetching and transforming (for `Server-Timing`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    pub origin: Duration,
    pub transform: Duration,
    /// The variant came from the shared result store (no fetch, no transform).
    pub from_store: bool,
}

pub struct AppState {
    pub config: Config,
    pub origins: Origins,
    pub pool: CpuPool,
    pub caches: Caches,
    pub flights: Flights<CacheKey, (Arc<Variant>, Timing)>,
    /// Client errors of recent misses (undecodable, too many pixels, ...), remembered for 60 s so a
    /// repeated bad request costs no CPU. Server errors are never remembered.
    pub failures: moka::future::Cache<CacheKey, Error>,
    pub stats: Arc<Stats>,
    /// Signatures, client addresses and the rate limit.
    pub admission: Admission,
    /// The upload API, when enabled.
    pub uploads: Option<crate::upload::Uploads>,
    /// URLs answered before, for the hit fast path.
    pub hot: crate::http::hot::HotPaths,
    /// Set when shutdown begins: `/readyz` fails so load balancers drain this instance.
    pub shutting_down: AtomicBool,
}

impl AppState {
    pub async fn new(config: Config) -> Result<Self, String> {
        config.validate()?;
        let origins =
            Origins::new(&config.origin, &config.origin_options, &config.origins, &config.remote, &config.fetch)
                .await?;
        std::fs::create_dir_all(&config.cache_dir)
            .map_err(|e| format!("cache dir {}: {e}", config.cache_dir.display()))?;
        let l = &config.limits;
        let pool = CpuPool::new(l.workers, l.max_queue, Duration::from_secs_f64(l.transform_timeout_secs));
        crate::metrics::install();
        let stats = Arc::new(Stats::default());
        let caches = Caches::new(&config.cache, &config.cache_dir, &config.fetch, stats.clone()).await?;
        let admission = Admission::new(&config.signing, &config.rate_limit)?;
        let uploads = if config.upload.enabled {
            if origins.default.fs().is_none() && origins.default.s3().is_none() {
                return Err("uploads need a folder or S3 default origin".into());
            }
            Some(crate::upload::Uploads::new(&config.upload, &config.cache_dir)?)
        } else {
            None
        };
        let failures =
            moka::future::Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(60)).build();
        Ok(AppState {
            config,
            origins,
            pool,
            caches,
            flights: Flights::default(),
            failures,
            stats,
            admission,
            uploads,
            hot: Default::default(),
            shutting_down: AtomicBool::new(false),
        })
    }
}
