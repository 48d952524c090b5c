//! Application state shared by every request: config, origin and CPU pool, built once from [`Config`].

use crate::config::Config;
use crate::origin::Origin;
use crate::transform::pool::CpuPool;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub struct AppState {
    pub config: Config,
    pub origin: Origin,
    pub pool: CpuPool,
    /// Set when shutdown begins: `/readyz` fails so load balancers drain this instance.
    pub shutting_down: AtomicBool,
}

impl AppState {
    pub fn new(config: Config) -> Result<Self, String> {
        config.validate()?;
        let origin = Origin::from_spec(&config.origin)?;
        std::fs::create_dir_all(&config.cache_dir)
            .map_err(|e| format!("cache dir {}: {e}", config.cache_dir.display()))?;
        let l = &config.limits;
        let pool = CpuPool::new(l.workers, l.max_queue, Duration::from_secs_f64(l.transform_timeout_secs));
        Ok(AppState { config, origin, pool, shutting_down: AtomicBool::new(false) })
    }
}
