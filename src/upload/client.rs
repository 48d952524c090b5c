//! `imgedge upload`: a batch client for `POST /api/upload` with bounded concurrency, retries with
//! exponential backoff on 429/5xx/connection errors, a progress bar and one `✓`/`✗` line per file.

use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Options of one batch.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Base URL of the server, e.g. `https://img.example.com`.
    pub server: String,
    pub api_key: Option<String>,
    /// Uploads in flight at once.
    pub concurrency: usize,
    /// Attempts after the first, for 429, 5xx and connection errors.
    pub retries: u32,
    /// First backoff delay; doubles per attempt (with jitter), capped at 30 s.
    pub backoff: Duration,
    pub title: Option<String>,
}

/// What happened to one file.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub path: PathBuf,
    /// `directUrl` on success, the error message otherwise.
    pub result: Result<String, String>,
    pub attempts: u32,
}

/// File extensions the server accepts (it checks magic bytes; this only picks files out of folders).
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "gif", "webp", "avif"];

/// Files named on the command line as they are; folders walked recursively for image extensions,
/// sorted so that a batch runs in a stable order.
pub fn collect(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| format!("{}: {e}", input.display()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(input, &mut found).map_err(|e| format!("{}: {e}", input.display()))?;
            found.sort();
            out.extend(found);
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                out.push(path);
            }
        }
    }
    Ok(())
}

/// Upload `files`, printing a line per file to stdout as each finishes. Returns the outcomes in the
/// order of `files`.
pub async fn run(files: Vec<PathBuf>, opts: UploadOptions) -> Vec<Outcome> {
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {wide_msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client");
    let endpoint = format!("{}/api/upload", opts.server.trim_end_matches('/'));
    let gate = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let opts = Arc::new(opts);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, path) in files.into_iter().enumerate() {
        let (client, endpoint, gate, opts, bar) =
            (client.clone(), endpoint.clone(), gate.clone(), opts.clone(), bar.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore open");
            let name = display_name(&path);
            bar.set_message(name.clone());
            let (result, attempts) = upload_one(&client, &endpoint, &path, &opts).await;
            bar.suspend(|| match &result {
                Ok(url) => println!("✓ {name} → {url}"),
                Err(e) => println!("✗ {name}: {e}"),
            });
            bar.inc(1);
            (i, Outcome { path, result, attempts })
        });
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; tasks.len()];
    while let Some(done) = tasks.join_next().await {
        let (i, outcome) = done.expect("upload task panicked");
        outcomes[i] = Some(outcome);
    }
    bar.finish_and_clear();
    outcomes.into_iter().map(|o| o.expect("every task reports")).collect()
}

fn display_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// Why an attempt failed, and whether another attempt may succeed.
enum Failure {
    Retry { error: String, after: Option<Duration> },
    Final(String),
}

async fn upload_one(
    client: &reqwest::Client,
    endpoint: &str,
    path: &Path,
    opts: &UploadOptions,
) -> (Result<String, String>, u32) {
    let bytes = match tokio::fs::read(path).await {
        Ok(b) => bytes::Bytes::from(b),
        Err(e) => return (Err(format!("read: {e}")), 0),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match attempt_upload(client, endpoint, path, &bytes, opts).await {
            Ok(url) => return (Ok(url), attempt),
            Err(Failure::Final(e)) => return (Err(e), attempt),
            Err(Failure::Retry { error, after }) => {
                if attempt > opts.retries {
                    return (Err(format!("{error} (after {attempt} attempts)")), attempt);
                }
                tokio::time::sleep(after.unwrap_or_else(|| backoff(opts.backoff, attempt))).await;
            }
        }
    }
}

/// `base · 2^(attempt-1)`, capped at 30 s, with up to 25 % random jitter so that clients that were
/// refused together do not come back together.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << (attempt - 1).min(16)).min(Duration::from_secs(30));
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    let jitter = u16::from_le_bytes(r) as f64 / u16::MAX as f64 * 0.25;
    exp.mul_f64(1.0 + jitter)
}

async fn attempt_upload(
    client: &reqwest::Client,
    endpoint: &str,
    path: &Path,
    bytes: &bytes::Bytes,
    opts: &UploadOptions,
) -> Result<String, Failure> {
    // a retry shares the bytes read once; no copy per attempt
    let part =
        reqwest::multipart::Part::stream_with_length(bytes.clone(), bytes.len() as u64).file_name(display_name(path));
    let mut form = reqwest::multipart::Form::new().part("file", part);
    if let Some(t) = &opts.title {
        form = form.text("title", t.clone());
    }
    let mut req = client.post(endpoint).multipart(form);
    if let Some(k) = &opts.api_key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.map_err(|e| Failure::Retry { error: error_chain(&e), after: None })?;
    let status = resp.status();
    let after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(60)));
    let body = resp.bytes().await.map_err(|e| Failure::Retry { error: error_chain(&e), after: None })?;
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let message = json
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(|e| e.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_owned());
    if status.is_success() {
        return json
            .as_ref()
            .filter(|j| j.get("success").and_then(|s| s.as_bool()) == Some(true))
            .and_then(|j| j.get("directUrl"))
            .and_then(|u| u.as_str())
            .map(str::to_owned)
            .ok_or_else(|| Failure::Final(format!("{status}: response has no directUrl")));
    }
    let error = format!("{} {}", status.as_u16(), if message.is_empty() { status.to_string() } else { message });
    if status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(Failure::Retry { error, after })
    } else {
        Err(Failure::Final(error))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_a_cap() {
        let base = Duration::from_millis(100);
        for attempt in 1..=4 {
            let d = backoff(base, attempt);
            let exp = base * (1 << (attempt - 1));
            assert!(d >= exp && d <= exp.mul_f64(1.25), "attempt {attempt}: {d:?}");
        }
        assert!(backoff(base, 30) <= Duration::from_secs(30).mul_f64(1.25));
    }

    #[test]
    fn collect_walks_folders_for_images_only_and_keeps_named_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for f in ["b.jpg", "a.PNG", "notes.txt", "sub/c.webp"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let named = dir.path().join("notes.txt");
        let got = collect(&[dir.path().to_path_buf(), named.clone()]).unwrap();
        let rel: Vec<_> =
            got.iter().map(|p| p.strip_prefix(dir.path()).unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(rel, ["a.PNG", "b.jpg", "sub/c.webp", "notes.txt"]);
        assert!(collect(&[dir.path().join("missing")]).is_err());
    }
}
