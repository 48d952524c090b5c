//! Crop + resize in one pass with fast_image_resize (SIMD convolution; alpha resized premultiplied).

use super::plan::Rect;
use super::Pixels;
use crate::error::{Error, Result};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

/// Resize the `crop` region of `src` (in `src` pixel coordinates, fractional allowed) to `dst`.
/// Returns `src` untouched when there is nothing to do.
pub fn resize(src: Pixels, crop: Rect, dst: (u32, u32)) -> Result<Pixels> {
    // Mapping the crop through orientation and decode scale can overshoot the edge by a rounding error.
    let (sw, sh) = (src.width as f64, src.height as f64);
    let x = crop.x.clamp(0.0, sw - 1.0);
    let y = crop.y.clamp(0.0, sh - 1.0);
    let crop = Rect { x, y, w: crop.w.min(sw - x).max(1.0), h: crop.h.min(sh - y).max(1.0) };
    let full = crop.x == 0.0 && crop.y == 0.0 && crop.w == src.width as f64 && crop.h == src.height as f64;
    if full && dst == (src.width, src.height) {
        return Ok(src);
    }
    let pixel_type = if src.channels == 4 { PixelType::U8x4 } else { PixelType::U8x3 };
    let from = ImageRef::new(src.width, src.height, &src.data, pixel_type).map_err(internal)?;
    let mut to = Image::new(dst.0, dst.1, pixel_type);
    // Lanczos3 for shrinking (sharp's default kernel); Catmull-Rom rings less when enlarging.
    let filter = if dst.0 as f64 > crop.w { FilterType::CatmullRom } else { FilterType::Lanczos3 };
    let opts = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(filter))
        .crop(crop.x, crop.y, crop.w, crop.h)
        .use_alpha(true);
    Resizer::new().resize(&from, &mut to, &opts).map_err(internal)?;
    Ok(Pixels { width: dst.0, height: dst.1, channels: src.channels, data: to.into_vec() })
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("resize: {e}"))
}
