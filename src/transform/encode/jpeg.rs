//! JPEG through libjpeg-turbo (mozjpeg crate) with libjpeg-turbo's fast defaults plus optimised
//! Huffman tables: no trellis quantisation (too slow per request), 4:2:0 chroma, no metadata.

use super::{failed, Pixels};
use crate::error::Result;
use mozjpeg::{ColorSpace, Compress};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub fn encode(px: &Pixels, quality: u8, progressive: bool) -> Result<Vec<u8>> {
    assert_eq!(px.channels, 3, "JPEG input is flattened to RGB first");
    catch_unwind(AssertUnwindSafe(|| -> std::io::Result<Vec<u8>> {
        let mut c = Compress::new(ColorSpace::JCS_RGB);
        c.set_fastest_defaults();
        c.set_size(px.width as usize, px.height as usize);
        c.set_quality(quality as f32);
        c.set_optimize_coding(true);
        if progressive {
            c.set_progressive_mode();
        }
        let mut started = c.start_compress(Vec::with_capacity(px.data.len() / 10))?;
        started.write_scanlines(&px.data)?;
        started.finish()
    }))
    .map_err(|_| failed("jpeg", "libjpeg error"))?
    .map_err(|e| failed("jpeg", e))
}
