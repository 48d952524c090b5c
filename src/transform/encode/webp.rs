//! WebP through libwebp 1.6 (libwebp-sys), written straight into a Rust `Vec`.

use super::{failed, Pixels};
use crate::error::Result;
use libwebp_sys as w;
use std::os::raw::c_int;

/// libwebp's writer callback: append to the `Vec<u8>` behind `custom_ptr`.
unsafe extern "C" fn write_to_vec(data: *const u8, size: usize, picture: *const w::WebPPicture) -> c_int {
    // SAFETY: `custom_ptr` is the `&mut Vec<u8>` set in `encode`, alive for the whole WebPEncode call.
    unsafe {
        let out = &mut *((*picture).custom_ptr as *mut Vec<u8>);
        out.extend_from_slice(std::slice::from_raw_parts(data, size));
    }
    1
}

pub fn encode(px: &Pixels, quality: u8, method: u8) -> Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(px.width as usize * px.height as usize / 8);
    // SAFETY: config and picture are initialised by libwebp; the picture imports from `px.data`, which
    // outlives it, and is freed before returning.
    unsafe {
        let mut config = w::WebPConfig::new_with_preset(w::WebPPreset::WEBP_PRESET_DEFAULT, quality as f32)
            .map_err(|_| failed("webp", "config"))?;
        config.method = method as c_int;
        if w::WebPValidateConfig(&config) == 0 {
            return Err(failed("webp", "invalid config"));
        }
        let mut pic = w::WebPPicture::new().map_err(|_| failed("webp", "picture"))?;
        pic.use_argb = 0;
        pic.width = px.width as c_int;
        pic.height = px.height as c_int;
        let stride = (px.width as usize * px.channels) as c_int;
        let imported = if px.channels == 4 {
            w::WebPPictureImportRGBA(&mut pic, px.data.as_ptr(), stride)
        } else {
            w::WebPPictureImportRGB(&mut pic, px.data.as_ptr(), stride)
        };
        if imported == 0 {
            w::WebPPictureFree(&mut pic);
            return Err(failed("webp", "import"));
        }
        pic.writer = Some(write_to_vec);
        pic.custom_ptr = &mut out as *mut Vec<u8> as *mut _;
        let ok = w::WebPEncode(&config, &mut pic);
        let code = pic.error_code;
        w::WebPPictureFree(&mut pic);
        if ok == 0 {
            return Err(failed("webp", format!("{code:?}")));
        }
    }
    Ok(out)
}
