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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_is_resized_premultiplied_without_dark_fringes() {
        // left half transparent black, right half opaque white
        let (w, h) = (64u32, 8u32);
        let mut data = Vec::new();
        for _ in 0..h {
            for x in 0..w {
                data.extend_from_slice(if x < w / 2 { &[0, 0, 0, 0] } else { &[255, 255, 255, 255] });
            }
        }
        let src = Pixels { width: w, height: h, channels: 4, data };
        let out = resize(src, Rect { x: 0.0, y: 0.0, w: w as f64, h: h as f64 }, (16, 2)).unwrap();
        for p in out.data.chunks_exact(4).filter(|p| p[3] > 8) {
            // straight-alpha resizing would average in the black of the transparent pixels
            assert!(p[0] > 240 && p[1] > 240 && p[2] > 240, "fringe pixel {p:?}");
        }
        assert!(out.data.chunks_exact(4).any(|p| p[3] > 8 && p[3] < 247), "the edge is partly transparent");
    }

    #[test]
    fn crop_overshoot_from_rounding_is_clamped() {
        let src = Pixels { width: 10, height: 10, channels: 3, data: vec![7; 300] };
        let out = resize(src, Rect { x: 0.0, y: 0.0, w: 10.000001, h: 10.0000001 }, (5, 5)).unwrap();
        assert_eq!((out.width, out.height), (5, 5));
        assert!(out.data.iter().all(|&v| v == 7));
    }
}
