//! Encoders, one file per output format, and the per-format settings they read from config.

mod avif;
mod jpeg;
mod png;
mod webp;

use super::Pixels;
use crate::error::{Error, Result};
use crate::url::OutputFormat;
use serde::{Deserialize, Serialize};

/// Encoder settings (config section `[encode]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncodeSettings {
    /// Default WebP quality (sharp: 80).
    pub webp_quality: u8,
    /// libwebp method 0 (fastest) ..= 6 (smallest); sharp's default effort is 4.
    pub webp_method: u8,
    /// Default AVIF quality as understood by ravif (1..=100).
    pub avif_quality: u8,
    /// rav1e speed 1 (slowest, smallest) ..= 10 (fastest).
    pub avif_speed: u8,
    /// Threads one AVIF encode may use (0: rav1e's shared pool).
    pub avif_threads: usize,
    /// Default JPEG quality (sharp: 80).
    pub jpeg_quality: u8,
    /// Progressive JPEG (smaller above ~10 KB, a little more CPU).
    pub jpeg_progressive: bool,
    /// zlib level for PNG: fast, default or best.
    pub png_compression: PngCompression,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PngCompression {
    Fast,
    Default,
    Best,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        EncodeSettings {
            webp_quality: 80,
            webp_method: 4,
            avif_quality: 60,
            avif_speed: 8,
            avif_threads: 0,
            jpeg_quality: 80,
            jpeg_progressive: true,
            png_compression: PngCompression::Default,
        }
    }
}

impl EncodeSettings {
    /// Quality used for `format` when the request gives none; `None` for lossless PNG.
    pub fn default_quality(&self, format: OutputFormat) -> Option<u8> {
        match format {
            OutputFormat::Webp => Some(self.webp_quality),
            OutputFormat::Avif => Some(self.avif_quality),
            OutputFormat::Jpeg => Some(self.jpeg_quality),
            OutputFormat::Png | OutputFormat::Svg => None,
        }
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, q) in [
            ("webp_quality", self.webp_quality),
            ("avif_quality", self.avif_quality),
            ("jpeg_quality", self.jpeg_quality),
        ] {
            if !(1..=100).contains(&q) {
                return Err(format!("encode.{name} must be 1..=100"));
            }
        }
        if self.webp_method > 6 {
            return Err("encode.webp_method must be 0..=6".into());
        }
        if !(1..=10).contains(&self.avif_speed) {
            return Err("encode.avif_speed must be 1..=10".into());
        }
        Ok(())
    }
}

/// Encode `px` (RGB or RGBA, 8-bit) as `format`. `quality` is ignored for PNG. The returned buffer is
/// the encoder's own output, handed on as the response body without another copy.
pub fn encode(px: &Pixels, format: OutputFormat, quality: Option<u8>, s: &EncodeSettings) -> Result<Vec<u8>> {
    let q = quality.or(s.default_quality(format)).unwrap_or(100);
    match format {
        OutputFormat::Webp => webp::encode(px, q, s.webp_method),
        OutputFormat::Avif => avif::encode(px, q, s.avif_speed, s.avif_threads),
        OutputFormat::Jpeg => jpeg::encode(px, q, s.jpeg_progressive),
        OutputFormat::Png => png::encode(px, s.png_compression),
        OutputFormat::Svg => Err(crate::error::Error::Internal("SVG is passed through, never encoded".into())),
    }
}

fn failed(format: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("{format} encode: {e}"))
}
