//! The image pipeline: sniff → probe (limits) → plan → decode (shrink-on-load) → resize → orient →
//! pad/effects → encode. Pure CPU work: call [`run`] only through [`pool::CpuPool`].

pub mod decode;
pub mod effects;
pub mod encode;
pub mod orient;
pub mod plan;
pub mod pool;
pub mod resize;
pub mod sniff;

use crate::error::{Error, Result};
use crate::url::{Gravity, OutputFormat, Rgba, TransformSpec};
use bytes::Bytes;
use encode::EncodeSettings;
use orient::Orientation;
use plan::{Geometry, OutputCap, Rect};
use serde::{Deserialize, Serialize};

/// Interleaved 8-bit pixels, 3 (RGB) or 4 (RGBA, straight alpha) channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub channels: usize,
    pub data: Vec<u8>,
}

/// Resource limits enforced before each expensive step (config section `[limits]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest source accepted, in bytes (enforced while reading).
    pub max_source_bytes: u64,
    /// Largest source accepted, in pixels (checked from the header, before decoding).
    pub max_source_pixels: u64,
    /// Largest output side in pixels.
    pub max_output_side: u32,
    /// Largest output in pixels.
    pub max_output_pixels: u64,
    /// Deadline for one transform, in seconds.
    pub transform_timeout_secs: f64,
    /// Concurrent transforms (0: one per CPU core).
    pub workers: usize,
    /// Transforms allowed to wait for a worker before new ones get 503.
    pub max_queue: usize,
    /// Serve SVG sources as they are (never rasterised, transform parameters ignored) with the
    /// sandboxing CSP every response carries. Off: SVG sources get 415.
    pub svg_passthrough: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_source_bytes: 50 * 1024 * 1024,
            max_source_pixels: 50_000_000,
            max_output_side: 8192,
            max_output_pixels: 50_000_000,
            transform_timeout_secs: 10.0,
            workers: 0,
            max_queue: 256,
            svg_passthrough: false,
        }
    }
}

/// The output format to produce: fixed, or JPEG unless the result has transparency (then PNG), which is
/// what `fm=auto` falls back to for clients that accept neither AVIF nor WebP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputChoice {
    Fixed(OutputFormat),
    JpegOrPng,
}

impl OutputChoice {
    /// Name used in variant keys and ETags.
    pub fn key(self) -> &'static str {
        match self {
            OutputChoice::Fixed(f) => f.as_str(),
            OutputChoice::JpegOrPng => "jpeg|png",
        }
    }
    /// Quality that applies (JPEG's for the fallback; PNG has none).
    pub fn quality(self, spec: &TransformSpec, s: &EncodeSettings) -> Option<u8> {
        let f = match self {
            OutputChoice::Fixed(f) => f,
            OutputChoice::JpegOrPng => OutputFormat::Jpeg,
        };
        if f == OutputFormat::Png {
            return None;
        }
        spec.quality.or(s.default_quality(f))
    }
}

/// One encoded result.
#[derive(Debug, Clone)]
pub struct Output {
    pub bytes: Bytes,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
}

/// Transform `src` as `spec` asks, producing `choice`.
pub fn run(
    src: &Bytes,
    spec: &TransformSpec,
    choice: OutputChoice,
    limits: &Limits,
    enc: &EncodeSettings,
) -> Result<Output> {
    if limits.svg_passthrough && sniff::is_svg_document(src) {
        // never parsed or rasterised: the bytes go out as they came in (the source size cap applied)
        return Ok(Output { bytes: src.clone(), format: OutputFormat::Svg, width: 0, height: 0 });
    }
    let format = sniff::sniff(src)?;
    let probe = decode::probe(src, format)?;
    let pixels = probe.width as u64 * probe.height as u64;
    if pixels > limits.max_source_pixels || probe.width == 0 || probe.height == 0 {
        return Err(Error::TooManyPixels {
            width: probe.width as u64,
            height: probe.height as u64,
            max_pixels: limits.max_source_pixels,
        });
    }

    // One orientation for everything: stored pixels → upright (EXIF/irot) → user rot, then flip.
    let user = Orientation::rotate_cw(spec.rotate).then(Orientation::mirror(spec.flip_h, spec.flip_v));
    let total = probe.orientation.then(user);
    let raw_dims = (probe.width, probe.height);
    let final_dims = total.dims(raw_dims);
    let gravity = match spec.gravity {
        // focal points are given on the upright image; carry them through the user's rot/flip
        Gravity::Focal(x, y) => {
            let (u, v) = user.map_point(x, y, (1.0, 1.0));
            Gravity::Focal(u, v)
        }
        g => g,
    };
    let geometry =
        Geometry { width: spec.width, height: spec.height, fit: spec.effective_fit(), gravity, enlarge: spec.enlarge };
    let cap = OutputCap { max_side: limits.max_output_side, max_pixels: limits.max_output_pixels };
    let plan = plan::plan(final_dims, &geometry, cap);

    let shrink = if probe.scalable { plan.shrink_on_load() } else { 1 };
    let decoded = decode::decode(src, format, shrink)?;

    // Map the crop from the final orientation back to the stored pixels, then to the decoded scale.
    let inv = total.inverse();
    let (fw, fh) = (final_dims.0 as f64, final_dims.1 as f64);
    let (ax, ay) = inv.map_point(plan.crop.x, plan.crop.y, (fw, fh));
    let (bx, by) = inv.map_point(plan.crop.x + plan.crop.w, plan.crop.y + plan.crop.h, (fw, fh));
    let sx = decoded.width as f64 / raw_dims.0 as f64;
    let sy = decoded.height as f64 / raw_dims.1 as f64;
    let crop = Rect { x: ax.min(bx) * sx, y: ay.min(by) * sy, w: (ax - bx).abs() * sx, h: (ay - by).abs() * sy };
    let stored_target = inv.dims(plan.resize);

    let resized = resize::resize(decoded, crop, stored_target)?;
    let data = total.apply(&resized.data, (resized.width, resized.height), resized.channels);
    let mut px = Pixels { width: plan.resize.0, height: plan.resize.1, channels: resized.channels, data };

    let alpha_capable = match choice {
        OutputChoice::Fixed(f) => f.supports_alpha(),
        OutputChoice::JpegOrPng => true,
    };
    if plan.pads() {
        let bg = spec.background.unwrap_or(if alpha_capable { Rgba::TRANSPARENT } else { Rgba::WHITE });
        px = px.pad(plan.canvas, plan.offset, bg);
    }
    if let Some(sigma) = spec.blur {
        px = px.blur(sigma);
    }
    if let Some(s) = spec.sharpen {
        px = px.sharpen(s);
    }
    px = px.drop_opaque_alpha();

    let out_format = match choice {
        OutputChoice::Fixed(f) => f,
        OutputChoice::JpegOrPng if px.channels == 4 => OutputFormat::Png,
        OutputChoice::JpegOrPng => OutputFormat::Jpeg,
    };
    if !out_format.supports_alpha() && px.channels == 4 {
        let bg = spec.background.map(|Rgba([r, g, b, _])| Rgba([r, g, b, 255])).unwrap_or(Rgba::WHITE);
        px = px.flatten(bg);
    }
    let quality = if out_format == OutputFormat::Png { None } else { spec.quality };
    let bytes = encode::encode(&px, out_format, quality, enc)?;
    Ok(Output { bytes: Bytes::from(bytes), format: out_format, width: px.width, height: px.height })
}
