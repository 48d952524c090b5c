//! Test helpers: a real server on port 0, a raw HTTP client for paths a URL library would normalise,
//! image decoding with decoders independent of imgedge's, and pixel comparisons.

#![allow(dead_code)]

pub mod servers;

use imgedge::{AppState, Config};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The shared corpus (`../shared/corpus`, or `IMGEDGE_CORPUS`).
pub fn corpus() -> PathBuf {
    std::env::var_os("IMGEDGE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
}

pub struct Server {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub state: Arc<AppState>,
    _cache: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start imgedge serving `origin`, after `tweak` has adjusted the config.
pub async fn start_with(origin: &Path, tweak: impl FnOnce(&mut Config)) -> Server {
    start_with_routes(origin, tweak, axum::Router::new()).await
}

/// [`start_with`], with `extra` routes inside imgedge's own middleware stack.
pub async fn start_with_routes(
    origin: &Path,
    tweak: impl FnOnce(&mut Config),
    extra: axum::Router<Arc<AppState>>,
) -> Server {
    let cache = tempfile::tempdir().unwrap();
    let mut config = Config {
        origin: origin.to_string_lossy().into_owned(),
        cache_dir: cache.path().to_path_buf(),
        ..Config::default()
    };
    // tests send hundreds of misses from one address; the rate limit has its own tests
    config.rate_limit.misses_per_second = 0;
    tweak(&mut config);
    let state = Arc::new(AppState::new(config).await.expect("valid test config"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let st = state.clone();
    let app = imgedge::http::router_with(st.clone(), extra);
    let task = tokio::spawn(async move {
        imgedge::http::serve_router(listener, st, app, std::future::pending()).await.unwrap();
    });
    Server { base: format!("http://{addr}"), addr, state, _cache: cache, task }
}

/// Start imgedge serving the shared corpus with the default config.
pub async fn start() -> Server {
    start_with(&corpus(), |_| {}).await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub async fn get(server: &Server, path_and_query: &str) -> reqwest::Response {
    client().get(format!("{}{}", server.base, path_and_query)).send().await.unwrap()
}

/// GET with an `Accept` header.
pub async fn get_accept(server: &Server, path_and_query: &str, accept: &str) -> reqwest::Response {
    client().get(format!("{}{}", server.base, path_and_query)).header("accept", accept).send().await.unwrap()
}

/// Send `raw_target` byte for byte (no normalisation of `..` or `%2e`); returns (status, body).
pub async fn raw_get(server: &Server, raw_target: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let req = format!("GET {raw_target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Decode a response body to RGBA with decoders that are not imgedge's (png, zune-jpeg, image-webp);
/// AVIF, which `image` cannot decode here, goes through libavif.
pub fn decode(bytes: &[u8]) -> image::RgbaImage {
    if bytes.len() > 12 && &bytes[4..8] == b"ftyp" {
        let b = bytes::Bytes::copy_from_slice(bytes);
        let px = imgedge::transform::decode::decode(&b, imgedge::transform::sniff::SourceFormat::Avif, 1).unwrap();
        let rgba: Vec<u8> = if px.channels == 4 {
            px.data
        } else {
            px.data.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect()
        };
        return image::RgbaImage::from_raw(px.width, px.height, rgba).unwrap();
    }
    image::load_from_memory(bytes).expect("response decodes").into_rgba8()
}

/// GET and decode; asserts a 200.
pub async fn fetch_image(server: &Server, path_and_query: &str) -> image::RgbaImage {
    let r = get(server, path_and_query).await;
    assert_eq!(r.status(), 200, "{path_and_query}: {:?}", r.headers());
    decode(&r.bytes().await.unwrap())
}

/// Mean absolute difference per channel (RGB only), 0..=255.
pub fn mean_abs_diff(a: &image::RgbaImage, b: &image::RgbaImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "compared images differ in size");
    let sum: u64 = a
        .pixels()
        .zip(b.pixels())
        .map(|(p, q)| (0..3).map(|i| (p[i] as i32 - q[i] as i32).unsigned_abs() as u64).sum::<u64>())
        .sum();
    sum as f64 / (a.width() as f64 * a.height() as f64 * 3.0)
}

/// A sub-rectangle copy.
pub fn region(img: &image::RgbaImage, x: u32, y: u32, w: u32, h: u32) -> image::RgbaImage {
    image::imageops::crop_imm(img, x, y, w, h).to_image()
}

/// Sum of absolute horizontal neighbour differences: a crude sharpness measure.
pub fn edge_energy(img: &image::RgbaImage) -> u64 {
    let mut e = 0u64;
    for y in 0..img.height() {
        for x in 1..img.width() {
            let (p, q) = (img.get_pixel(x, y), img.get_pixel(x - 1, y));
            e += (0..3).map(|i| (p[i] as i32 - q[i] as i32).unsigned_abs() as u64).sum::<u64>();
        }
    }
    e
}

/// Every file below `dir` (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
