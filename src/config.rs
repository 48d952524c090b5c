//! Typed configuration, layered: built-in defaults < TOML file (`--config`) < environment
//! (`IMGEDGE_KEY`, nested with `__`, e.g. `IMGEDGE_LIMITS__MAX_SOURCE_PIXELS`) < command-line flags.

use crate::cache::CacheConfig;
use crate::origin::{FetchConfig, NamedOrigin, OriginOptions, RemoteConfig};
use crate::security::{RateLimitConfig, SigningConfig};
use crate::transform::encode::EncodeSettings;
use crate::transform::Limits;
use crate::upload::UploadConfig;
use crate::url::FormatParam;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The whole configuration. Every field has a default, so an empty file is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the public listener.
    pub listen: SocketAddr,
    /// The default origin: a directory, `s3://bucket[/prefix][?options]` or `http(s)://host[/base]`.
    pub origin: String,
    /// Settings of the default origin (provider, region, endpoint, credentials, ...).
    pub origin_options: OriginOptions,
    /// Named origins, each mounted at a path prefix (`[[origins]]`).
    pub origins: Vec<NamedOrigin>,
    /// Timeouts, redirects and the SSRF guard for network origins.
    pub fetch: FetchConfig,
    /// `/remote/<url>` sources (off by default).
    pub remote: RemoteConfig,
    /// Directory for imgedge's data (disk cache).
    pub cache_dir: PathBuf,
    /// Output format when a URL has no `fm`: auto, webp, avif, jpeg or png.
    pub default_format: FormatParam,
    /// `Cache-Control` of successful image responses.
    pub cache_control: String,
    /// Log line format: text or json.
    pub log_format: LogFormat,
    /// Address of the Prometheus listener (`/metrics`); off when unset. Never the public port.
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: f64,
    pub limits: Limits,
    pub encode: EncodeSettings,
    pub cache: CacheConfig,
    pub admin: AdminConfig,
    pub signing: SigningConfig,
    pub rate_limit: RateLimitConfig,
    pub upload: UploadConfig,
    /// Named parameter sets for `?preset=NAME` (`[presets]`, e.g. `thumb = "w=200&h=200&fit=cover"`).
    pub presets: crate::url::params::Presets,
}

/// Operator API (config section `[admin]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for `DELETE /api/cache/{path}`; the purge API is off without one.
    pub token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:8080".parse().expect("valid address"),
            origin: "images".into(),
            origin_options: OriginOptions::default(),
            origins: Vec::new(),
            fetch: FetchConfig::default(),
            remote: RemoteConfig::default(),
            cache_dir: "data/cache".into(),
            default_format: FormatParam::Auto,
            cache_control: "public, max-age=86400, stale-while-revalidate=604800".into(),
            log_format: LogFormat::Text,
            metrics_listen: None,
            shutdown_grace_secs: 30.0,
            limits: Limits::default(),
            encode: EncodeSettings::default(),
            cache: CacheConfig::default(),
            admin: AdminConfig::default(),
            signing: SigningConfig::default(),
            rate_limit: RateLimitConfig::default(),
            upload: UploadConfig::default(),
            presets: Default::default(),
        }
    }
}

/// Values given on the command line; each one set overrides every other layer.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Address to listen on [config: listen, env: IMGEDGE_LISTEN, default: 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Default origin: DIR, s3://bucket[/prefix][?provider=r2&region=..&endpoint=..&path_style=true] or
    /// http(s)://host[/base] [config: origin, env: IMGEDGE_ORIGIN, default: images]
    #[arg(long, value_name = "SPEC")]
    pub origin: Option<String>,
    /// Directory for cached results [config: cache_dir, env: IMGEDGE_CACHE_DIR, default: data/cache]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Format when a URL has no `fm` [config: default_format, env: IMGEDGE_DEFAULT_FORMAT, default: auto]
    #[arg(long, value_name = "FMT", value_parser = ["auto", "webp", "avif", "jpeg", "jpg", "png"])]
    pub default_format: Option<String>,
    /// Cache-Control of image responses [config: cache_control, env: IMGEDGE_CACHE_CONTROL]
    #[arg(long, value_name = "VALUE")]
    pub cache_control: Option<String>,
    /// Concurrent transforms, 0 = one per core [config: limits.workers, env: IMGEDGE_LIMITS__WORKERS]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Log format [config: log_format, env: IMGEDGE_LOG_FORMAT, default: text]
    #[arg(long, value_name = "FMT")]
    pub log_format: Option<LogFormat>,
    /// Prometheus listener, e.g. 127.0.0.1:9090 [config: metrics_listen, env: IMGEDGE_METRICS_LISTEN, default: off]
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Turn on the upload API [config: upload.enabled, env: IMGEDGE_UPLOAD__ENABLED]
    #[arg(long)]
    pub upload: bool,
    /// Base URL of `directUrl` in upload answers, e.g. a CDN domain [config: upload.public_url]
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// URL signing key, repeatable; the first signs [config: signing.keys, env: IMGEDGE_SIGNING_KEYS]
    #[arg(long = "signing-key", value_name = "KEY")]
    pub signing_keys: Vec<String>,
}

impl Config {
    /// Load the layers. A `file` that is given must exist.
    pub fn load(file: Option<&Path>, cli: &Overrides) -> Result<Config, String> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(format!("config file {} not found", path.display()));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        fig = fig.merge(Env::prefixed("IMGEDGE_").split("__").ignore(&["config", "signing_keys", "upload_api_keys"]));

        for (var, key) in [("IMGEDGE_SIGNING_KEYS", "signing.keys"), ("IMGEDGE_UPLOAD_API_KEYS", "upload.api_keys")] {
            if let Ok(list) = std::env::var(var) {
                let items: Vec<String> =
                    list.split(',').map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect();
                fig = fig.merge((key, items));
            }
        }
        fig = fig.merge(cli.provider());
        let config: Config = fig.extract().map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Check values the types alone cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.encode.validate()?;
        let l = &self.limits;
        if l.max_source_bytes == 0 || l.max_source_pixels == 0 || l.max_output_pixels == 0 {
            return Err("limits.max_source_bytes, max_source_pixels and max_output_pixels must be positive".into());
        }
        if !(1..=65535).contains(&l.max_output_side) {
            return Err("limits.max_output_side must be 1..=65535".into());
        }
        if !(l.transform_timeout_secs > 0.0 && l.transform_timeout_secs.is_finite()) {
            return Err("limits.transform_timeout_secs must be a positive number".into());
        }
        crate::url::params::validate_presets(&self.presets)?;
        if let Some(p) = self.signing.allow_unsigned_presets.iter().find(|p| !self.presets.contains_key(*p)) {
            return Err(format!("signing.allow_unsigned_presets: no preset named {p:?}"));
        }
        if http::HeaderValue::from_str(&self.cache_control).is_err() {
            return Err("cache_control is not a valid header value".into());
        }
        Ok(())
    }

    /// The effective configuration as TOML, with secrets masked.
    pub fn to_toml_masked(&self) -> String {
        let mut c = self.clone();
        let mask = |s: &mut String| *s = "********".into();
        c.signing.keys.iter_mut().for_each(mask);
        c.admin.token.iter_mut().for_each(mask);
        c.upload.api_keys.iter_mut().for_each(mask);
        c.upload.secret.iter_mut().for_each(mask);
        for o in std::iter::once(&mut c.origin_options)
            .chain(c.origins.iter_mut().map(|n| &mut n.options))
            .chain(std::iter::once(&mut c.cache.store.options))
        {
            o.secret_access_key.iter_mut().for_each(mask);
        }
        c.to_toml()
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises to TOML")
    }
}

impl Overrides {
    fn provider(&self) -> Figment {
        let mut f = Figment::new();
        if let Some(v) = self.listen {
            f = f.merge(("listen", v.to_string()));
        }
        if let Some(v) = &self.origin {
            f = f.merge(("origin", v));
        }
        if let Some(v) = &self.cache_dir {
            f = f.merge(("cache_dir", v));
        }
        if let Some(v) = &self.default_format {
            f = f.merge(("default_format", v));
        }
        if let Some(v) = &self.cache_control {
            f = f.merge(("cache_control", v));
        }
        if let Some(v) = self.workers {
            f = f.merge(("limits.workers", v));
        }
        if let Some(v) = self.log_format {
            f = f.merge(("log_format", v));
        }
        if let Some(v) = self.metrics_listen {
            f = f.merge(("metrics_listen", v.to_string()));
        }
        if self.upload {
            f = f.merge(("upload.enabled", true));
        }
        if let Some(v) = &self.public_url {
            f = f.merge(("upload.public_url", v));
        }
        if !self.signing_keys.is_empty() {
            f = f.merge(("signing.keys", self.signing_keys.clone()));
        }
        f
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "imgedge.toml",
                "origin = \"from-file\"\ncache_dir = \"file-cache\"\n[limits]\nmax_source_pixels = 1000\nworkers = 3\n",
            )?;
            jail.set_env("IMGEDGE_CACHE_DIR", "env-cache");
            jail.set_env("IMGEDGE_LIMITS__WORKERS", "5");
            let cli = Overrides { origin: Some("from-cli".into()), ..Default::default() };
            let c = Config::load(Some(Path::new("imgedge.toml")), &cli).map_err(figment::Error::from)?;
            assert_eq!(c.origin, "from-cli");
            assert_eq!(c.cache_dir, PathBuf::from("env-cache"));
            assert_eq!(c.limits.max_source_pixels, 1000);
            assert_eq!(c.limits.workers, 5);
            assert_eq!(c.limits.max_output_side, 8192, "defaults fill the rest");
            Ok(())
        });
    }

    #[test]
    fn bad_files_are_refused_clearly() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "orign = \"x\"\n")?;
            let e = Config::load(Some(Path::new("typo.toml")), &Overrides::default()).unwrap_err();
            assert!(e.contains("orign"), "{e}");
            jail.create_file("range.toml", "[encode]\nwebp_quality = 0\n")?;
            let e = Config::load(Some(Path::new("range.toml")), &Overrides::default()).unwrap_err();
            assert!(e.contains("webp_quality"), "{e}");
            assert!(Config::load(Some(Path::new("missing.toml")), &Overrides::default()).is_err());
            Ok(())
        });
    }

    #[test]
    fn effective_config_round_trips_through_toml() {
        let c = Config::default();
        let text = c.to_toml();
        let back: Config = Figment::from(Toml::string(&text)).extract().unwrap();
        assert_eq!(back, c);
    }
}
