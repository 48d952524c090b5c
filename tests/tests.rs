//! One integration-test binary: each module starts imgedge on 127.0.0.1:0 and talks real HTTP to it.

mod util;

/// Memory and disk tiers, coalescing, originals cache, purge.
mod cache;
/// Bad requests and bad sources: clear 4xx bodies, traversal, the whole bad corpus.
mod errors;
/// Every input format in the shared corpus, every output format.
mod formats;
/// Every fit mode and parameter, checked by exact output dimensions and by pixels.
mod geometry;
/// Accept negotiation, Vary, ETag/304, HEAD, Content-Disposition, security headers.
mod headers;
/// Metrics, request ids, graceful shutdown, config check.
mod ops;
/// All 8 EXIF orientations (and AVIF irot), also under shrink-on-load and crops.
mod orientation;
/// S3 (in-process s3s server) and HTTP origins, revalidation, the SSRF guard.
mod origins;
/// Three replicas behind nginx sharing a result store.
mod scale;
/// Signed URLs, limits, queue, rate limit, trusted proxies.
mod security;
/// The upload API.
mod upload;
