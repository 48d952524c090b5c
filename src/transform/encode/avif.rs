//! AVIF through ravif (rav1e), 8-bit. Orientation is already in the pixels: AVIF viewers ignore EXIF.

use super::{failed, Pixels};
use crate::error::Result;
use ravif::{BitDepth, Encoder, Img, RGB8, RGBA8};

pub fn encode(px: &Pixels, quality: u8, speed: u8, threads: usize) -> Result<Vec<u8>> {
    let enc = Encoder::new()
        .with_quality(quality as f32)
        .with_speed(speed)
        .with_bit_depth(BitDepth::Eight)
        .with_num_threads((threads > 0).then_some(threads));
    let (w, h) = (px.width as usize, px.height as usize);
    let encoded = if px.channels == 4 {
        let rgba: &[RGBA8] = rgb_slice(&px.data);
        enc.encode_rgba(Img::new(rgba, w, h))
    } else {
        let rgb: &[RGB8] = rgb_slice(&px.data);
        enc.encode_rgb(Img::new(rgb, w, h))
    }
    .map_err(|e| failed("avif", e))?;
    Ok(encoded.avif_file)
}

/// View interleaved bytes as pixels (`RGB8`/`RGBA8` are `repr(C)` structs of `u8`, alignment 1).
fn rgb_slice<T: Copy>(bytes: &[u8]) -> &[T] {
    let n = std::mem::size_of::<T>();
    assert_eq!(std::mem::align_of::<T>(), 1);
    assert_eq!(bytes.len() % n, 0);
    // SAFETY: T is a plain struct of n u8s with alignment 1, and the length is a multiple of n.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, bytes.len() / n) }
}
