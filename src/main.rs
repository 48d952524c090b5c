//! imgedge command line: `serve`, `transform` (one file, no server), `sign`, `upload` (batch client),
//! `healthcheck` and `config check`.

use clap::{Parser, Subcommand};
use imgedge::config::{Config, LogFormat, Overrides};
use imgedge::{transform, url, AppState};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "imgedge", version, about = "CDN-origin image-transform proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve images over HTTP.
    Serve {
        /// TOML config file [env: IMGEDGE_CONFIG]
        #[arg(long, value_name = "FILE", env = "IMGEDGE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Transform one file with the same pipeline and URL parameters as the server.
    Transform {
        input: PathBuf,
        output: PathBuf,
        /// URL query, e.g. "w=800&fm=webp"
        #[arg(long, short, default_value = "")]
        query: String,
        #[arg(long, value_name = "FILE", env = "IMGEDGE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print a signed URL for a path and query, e.g. `imgedge sign '/cat.jpg?w=800&fm=webp'`.
    Sign {
        path_and_query: String,
        #[arg(long, value_name = "FILE", env = "IMGEDGE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Upload files (and image files inside folders) to a server's `POST /api/upload`.
    Upload {
        #[arg(required = true, value_name = "FILES_OR_DIRS")]
        paths: Vec<PathBuf>,
        /// Base URL of the imgedge server, e.g. https://img.example.com
        #[arg(long, env = "IMGEDGE_SERVER")]
        server: String,
        /// Bearer API key, when the server requires one
        #[arg(long, env = "IMGEDGE_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Uploads in flight at once
        #[arg(long, short = 'j', default_value_t = 4)]
        concurrency: usize,
        /// Retries per file after 429, 5xx or a connection error (exponential backoff)
        #[arg(long, default_value_t = 5)]
        retries: u32,
        /// First backoff delay in milliseconds; doubles per retry (a server's Retry-After wins)
        #[arg(long, default_value_t = 500)]
        backoff_ms: u64,
        /// `title` sent with every file
        #[arg(long)]
        title: Option<String>,
    },
    /// Exit 0 when the server answers `/healthz` (for container health checks).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print the effective result.
    Check {
        #[arg(long, value_name = "FILE", env = "IMGEDGE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// glibc gives every thread that allocates its own malloc arena (up to 8 per core) and keeps freed
/// memory in each. With multi-megabyte buffers per transform, that more than triples peak RSS: under
/// `bench/compare`, 262 MB with the default and 78 MB with 2 arenas, at the same throughput.
/// `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first thing in main, before any other thread exists; mallopt only sets a tunable.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Raise the soft descriptor limit to the hard one, as Go's runtime and nginx's `worker_rlimit_nofile`
/// do: connections and sealed memory-cache bodies (a quarter of the limit) each take a descriptor, and
/// the soft default (often 1024) is far below what the hard limit allows.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write only the struct given; a failure leaves the limit as is.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    raise_fd_limit();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, overrides } => serve(config, overrides),
        Command::Transform { input, output, query, config } => transform_file(input, output, &query, config),
        Command::Sign { path_and_query, config, overrides } => {
            Config::load(config.as_deref(), &overrides).and_then(|c| {
                let key = c
                    .signing
                    .keys
                    .first()
                    .ok_or("no signing key: set signing.keys, IMGEDGE_SIGNING_KEYS or --signing-key")?;
                println!("{}", imgedge::url::sign::sign_url(key, &path_and_query));
                Ok(())
            })
        }
        Command::Healthcheck { url } => healthcheck(&url),
        Command::Upload { paths, server, api_key, concurrency, retries, backoff_ms, title } => {
            let opts = imgedge::upload::client::UploadOptions {
                server,
                api_key,
                concurrency,
                retries,
                backoff: std::time::Duration::from_millis(backoff_ms),
                title,
            };
            upload(paths, opts)
        }
        Command::Config { command: ConfigCommand::Check { config, overrides } } => {
            Config::load(config.as_deref(), &overrides).map(|c| print!("{}", c.to_toml_masked()))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imgedge: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(config: Option<PathBuf>, overrides: Overrides) -> Result<(), String> {
    let config = Config::load(config.as_deref(), &overrides)?;
    init_logs(config.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listen = config.listen;
        let state = Arc::new(AppState::new(config).await?);
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("listen {listen}: {e}"))?;
        tracing::info!(
            addr = %listener.local_addr().map_err(|e| e.to_string())?,
            origin = %state.origins.default.kind_name(),
            workers = state.pool.workers(),
            "imgedge listening"
        );
        if let Some(addr) = state.config.metrics_listen {
            let metrics =
                tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("metrics listen {addr}: {e}"))?;
            tracing::info!(%addr, "metrics listening");
            let app = imgedge::http::metrics_router(state.clone());
            tokio::spawn(async move { axum::serve(metrics, app).await });
        }
        imgedge::http::serve(listener, state, wait_for_signal()).await.map_err(|e| e.to_string())
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn transform_file(input: PathBuf, output: PathBuf, query: &str, config: Option<PathBuf>) -> Result<(), String> {
    let config = Config::load(config.as_deref(), &Overrides::default())?;
    let mut spec = url::params::parse_with(query, config.default_format, &config.presets).map_err(|e| e.to_string())?;
    if spec.format == url::FormatParam::Auto {
        // no Accept header here: take the format from the output file's extension
        let ext = output.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        spec.format =
            url::FormatParam::parse(&ext).filter(|f| *f != url::FormatParam::Auto).unwrap_or(url::FormatParam::Webp);
    }
    let choice = transform::OutputChoice::Fixed(spec.format.fixed().expect("fixed format"));
    let bytes = bytes::Bytes::from(std::fs::read(&input).map_err(|e| format!("{}: {e}", input.display()))?);
    let out = transform::run(&bytes, &spec, choice, &config.limits, &config.encode).map_err(|e| e.to_string())?;
    std::fs::write(&output, &out.bytes).map_err(|e| format!("{}: {e}", output.display()))?;
    eprintln!(
        "{} → {} ({}x{} {}, {} bytes)",
        input.display(),
        output.display(),
        out.width,
        out.height,
        out.format.as_str(),
        out.bytes.len()
    );
    Ok(())
}

fn upload(paths: Vec<PathBuf>, opts: imgedge::upload::client::UploadOptions) -> Result<(), String> {
    use imgedge::upload::client;
    let files = client::collect(&paths)?;
    if files.is_empty() {
        return Err("no image files found".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let outcomes = rt.block_on(client::run(files, opts));
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    let retries: u32 = outcomes.iter().map(|o| o.attempts.saturating_sub(1)).sum();
    eprintln!("{} uploaded, {failed} failed, {retries} retries", outcomes.len() - failed);
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} of {} uploads failed", outcomes.len()))
    }
}

fn healthcheck(url: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client =
            reqwest::Client::builder().timeout(std::time::Duration::from_secs(3)).build().map_err(|e| e.to_string())?;
        let r = client.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("{url}: {}", r.status()))
        }
    })
}
