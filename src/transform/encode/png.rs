//! PNG through the `png` crate (via `image`), adaptive filtering.

use super::{failed, Pixels, PngCompression};
use crate::error::Result;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};

pub fn encode(px: &Pixels, level: PngCompression) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(px.data.len() / 2);
    let compression = match level {
        PngCompression::Fast => CompressionType::Fast,
        PngCompression::Default => CompressionType::Default,
        PngCompression::Best => CompressionType::Best,
    };
    let color = if px.channels == 4 { ExtendedColorType::Rgba8 } else { ExtendedColorType::Rgb8 };
    PngEncoder::new_with_quality(&mut out, compression, FilterType::Adaptive)
        .write_image(&px.data, px.width, px.height, color)
        .map_err(|e| failed("png", e))?;
    Ok(out)
}
