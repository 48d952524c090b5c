//! imgedge: a CDN-origin image-transform proxy.
//!
//! One request flows `http` → `url` (parse, canonical form) → `origin` (head, get) → `transform` (on the
//! CPU pool) → `http`; `error` is the only place that maps failures to statuses.

pub mod app;
pub mod cache;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod origin;
pub mod security;
pub mod transform;
pub mod upload;
pub mod url;

pub use app::AppState;
pub use config::Config;
