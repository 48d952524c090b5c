//! Decoders: a cheap header probe (dimensions, orientation) and a full decode to 8-bit RGB/RGBA,
//! with shrink-on-load for JPEG (libjpeg-turbo DCT scaling) and WebP (libwebp scaled decoding).

use super::orient::Orientation;
use super::sniff::SourceFormat;
use super::Pixels;
use crate::error::{Error, Result};
use bytes::Bytes;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What the header says, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    pub width: u32,
    pub height: u32,
    /// How the stored pixels must be turned to be seen upright (EXIF, or AVIF irot/imir).
    pub orientation: Orientation,
    /// Whether `decode` can shrink by an integer factor while decoding.
    pub scalable: bool,
}

/// Read dimensions and orientation from the header.
pub fn probe(bytes: &Bytes, format: SourceFormat) -> Result<Probe> {
    match format {
        SourceFormat::Jpeg => jpeg::probe(bytes),
        SourceFormat::Png | SourceFormat::Gif => raster::probe(bytes, format),
        SourceFormat::Webp => webp::probe(bytes),
        SourceFormat::Avif => avif::decode(bytes, true).map(|(p, _)| p),
    }
}

/// Decode the first frame as stored (not yet oriented), shrunk by `shrink` (1, 2, 4 or 8) where the
/// format allows it (see [`Probe::scalable`]); the result may be a little larger than `1/shrink`.
pub fn decode(bytes: &Bytes, format: SourceFormat, shrink: u32) -> Result<Pixels> {
    match format {
        SourceFormat::Jpeg => jpeg::decode(bytes, shrink),
        SourceFormat::Png | SourceFormat::Gif => raster::decode(bytes, format),
        SourceFormat::Webp => webp::decode(bytes, shrink),
        SourceFormat::Avif => avif::decode(bytes, false).map(|(_, px)| px.expect("pixels decoded")),
    }
}

/// EXIF orientation from a TIFF-structured EXIF block (without the `Exif\0\0` prefix).
fn exif_orientation(tiff: &[u8]) -> Orientation {
    let Ok(exif) = exif::Reader::new().read_raw(tiff.to_vec()) else {
        return Orientation::IDENTITY;
    };
    exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .map(Orientation::from_exif)
        .unwrap_or(Orientation::IDENTITY)
}

fn undecodable(msg: impl std::fmt::Display) -> Error {
    Error::Undecodable(msg.to_string())
}

/// libjpeg reports fatal errors by unwinding (mozjpeg's error manager); turn those into a 422.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("decoder error");
            Err(undecodable(format!("{what}: {msg}")))
        }
    }
}

mod jpeg {
    use super::*;
    use mozjpeg::decompress::DecompressBuilder;
    use mozjpeg::{ColorSpace, Marker};
    use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr, jpeg_std_error};
    use std::os::raw::c_int;

    /// A decoder that fails on corrupt data, as sharp's default `failOn: 'warning'` does: truncated or
    /// damaged entropy data is a 422, not a grey-filled image. Harmless warnings (extraneous bytes,
    /// unknown JFIF version, trailing data, odd ICC chunks) are let through.
    fn strict() -> DecompressBuilder<'static> {
        // SAFETY: jpeg_std_error fills a zeroed POD struct; our callbacks replace the ones that exit().
        let err = unsafe {
            let mut err: jpeg_error_mgr = std::mem::zeroed();
            jpeg_std_error(&mut err);
            err.error_exit = Some(error_exit);
            err.emit_message = Some(emit_message);
            err
        };
        DecompressBuilder::new().with_err(err)
    }

    fn message(cinfo: &mut jpeg_common_struct) -> String {
        // SAFETY: libjpeg's format_message writes a NUL-terminated string of at most 80 bytes.
        unsafe {
            let err = &*cinfo.err;
            let mut buf = [0u8; 80];
            match err.format_message {
                Some(f) => {
                    let f: unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &mut [u8; 80]) = std::mem::transmute(f);
                    f(cinfo, &mut buf);
                    String::from_utf8_lossy(buf.split(|&c| c == 0).next().unwrap_or_default()).into_owned()
                }
                None => format!("libjpeg message {}", err.msg_code),
            }
        }
    }

    extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
        let msg = message(cinfo);
        std::panic::resume_unwind(Box::new(msg));
    }

    extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: c_int) {
        use mozjpeg_sys::*;
        // SAFETY: cinfo.err is the manager installed by `strict`.
        let code = unsafe { (*cinfo.err).msg_code };
        let fatal = [
            JWRN_HIT_MARKER,
            JWRN_HUFF_BAD_CODE,
            JWRN_JPEG_EOF,
            JWRN_MUST_RESYNC,
            JWRN_NOT_SEQUENTIAL,
            JWRN_BOGUS_PROGRESSION,
        ];
        if level < 0 && fatal.iter().any(|&c| c as c_int == code) {
            let msg = message(cinfo);
            std::panic::resume_unwind(Box::new(msg));
        }
    }

    pub fn probe(bytes: &[u8]) -> Result<Probe> {
        check_quant_tables(bytes)?;
        guarded("jpeg", || {
            let d = strict().with_markers(&[Marker::APP(1)]).from_mem(bytes).map_err(undecodable)?;
            let orientation = d
                .markers()
                .find_map(|m| m.data.strip_prefix(b"Exif\0\0").map(exif_orientation))
                .unwrap_or(Orientation::IDENTITY);
            Ok(Probe { width: d.width() as u32, height: d.height() as u32, orientation, scalable: true })
        })
    }

    pub fn decode(bytes: &[u8], shrink: u32) -> Result<Pixels> {
        guarded("jpeg", || {
            let mut d = strict().with_markers(&[Marker::APP(14)]).from_mem(bytes).map_err(undecodable)?;
            let adobe = d.markers().any(|m| m.data.starts_with(b"Adobe"));
            if shrink > 1 {
                d.scale((8 / shrink.min(8)) as u8);
            }
            match d.color_space() {
                ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => {
                    let mut started = d.to_colorspace(ColorSpace::JCS_CMYK).map_err(undecodable)?;
                    let (w, h) = (started.width() as u32, started.height() as u32);
                    let cmyk: Vec<u8> = started.read_scanlines().map_err(undecodable)?;
                    let _ = started.finish();
                    Ok(Pixels { width: w, height: h, channels: 3, data: cmyk_to_rgb(&cmyk, adobe) })
                }
                _ => {
                    let mut started = d.rgb().map_err(undecodable)?;
                    let (w, h) = (started.width() as u32, started.height() as u32);
                    let data: Vec<u8> = started.read_scanlines().map_err(undecodable)?;
                    // A truncated file decodes with grey filler (libjpeg warns, does not fail), as browsers do.
                    let _ = started.finish();
                    if data.len() != (w * h * 3) as usize {
                        return Err(undecodable("jpeg: short image data"));
                    }
                    Ok(Pixels { width: w, height: h, channels: 3, data })
                }
            }
        })
    }

    /// Walk the header segments up to the first scan and refuse quantisation tables with a zero entry
    /// (invalid by ITU T.81 B.2.4.1; libjpeg would silently decode garbage from them).
    fn check_quant_tables(bytes: &[u8]) -> Result<()> {
        let mut i = 2; // after SOI
        while i + 4 <= bytes.len() {
            if bytes[i] != 0xFF {
                return Ok(()); // not a marker where one belongs: leave the verdict to libjpeg
            }
            let marker = bytes[i + 1];
            if marker == 0xFF {
                i += 1; // fill byte
                continue;
            }
            if marker == 0xDA || marker == 0xD9 {
                return Ok(()); // start of scan / end of image
            }
            let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
            let seg = bytes.get(i + 4..i + 2 + len).unwrap_or(&[]);
            if marker == 0xDB {
                let mut t = seg;
                while let Some((&pq_tq, rest)) = t.split_first() {
                    let wide = pq_tq >> 4 != 0;
                    let n = if wide { 128 } else { 64 };
                    let Some(table) = rest.get(..n) else { break };
                    let zero = if wide { table.chunks_exact(2).any(|v| v == [0, 0]) } else { table.contains(&0) };
                    if zero {
                        return Err(undecodable("jpeg: quantisation table has a zero entry"));
                    }
                    t = &rest[n..];
                }
            }
            i += 2 + len.max(2);
        }
        Ok(())
    }

    /// Naive CMYK → RGB. Adobe (Photoshop) files store inverted CMYK, which is what libjpeg returns.
    fn cmyk_to_rgb(cmyk: &[u8], adobe_inverted: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
        for p in cmyk.chunks_exact(4) {
            let (c, m, y, k) = if adobe_inverted {
                (p[0] as u32, p[1] as u32, p[2] as u32, p[3] as u32)
            } else {
                (255 - p[0] as u32, 255 - p[1] as u32, 255 - p[2] as u32, 255 - p[3] as u32)
            };
            out.extend_from_slice(&[(c * k / 255) as u8, (m * k / 255) as u8, (y * k / 255) as u8]);
        }
        out
    }
}

/// PNG and GIF through the `image` crate (first frame of an animation).
mod raster {
    use super::*;
    use image::{ImageFormat, ImageReader};
    use img_parts::ImageEXIF;
    use std::io::Cursor;

    fn format_of(f: SourceFormat) -> ImageFormat {
        if f == SourceFormat::Png {
            ImageFormat::Png
        } else {
            ImageFormat::Gif
        }
    }

    pub fn probe(bytes: &Bytes, format: SourceFormat) -> Result<Probe> {
        let (width, height) = ImageReader::with_format(Cursor::new(&bytes[..]), format_of(format))
            .into_dimensions()
            .map_err(undecodable)?;
        if format == SourceFormat::Gif {
            check_gif_frames(bytes)?;
        }
        let orientation = if format == SourceFormat::Png {
            img_parts::png::Png::from_bytes(bytes.clone())
                .ok()
                .and_then(|p| p.exif())
                .map(|e| exif_orientation(&e))
                .unwrap_or(Orientation::IDENTITY)
        } else {
            Orientation::IDENTITY
        };
        Ok(Probe { width, height, orientation, scalable: false })
    }

    /// Walk every GIF block without decoding: each frame must lie inside the logical screen (a frame
    /// that declares 65535x10751 inside a 100x100 screen is a decompression bomb, not an animation).
    fn check_gif_frames(b: &[u8]) -> Result<()> {
        let bad = |m: &str| Err(undecodable(format!("gif: {m}")));
        if b.len() < 13 {
            return bad("truncated header");
        }
        let (sw, sh) = (u16::from_le_bytes([b[6], b[7]]) as u32, u16::from_le_bytes([b[8], b[9]]) as u32);
        let table = |flags: u8| if flags & 0x80 != 0 { 3usize << ((flags & 7) + 1) } else { 0 };
        let mut i = 13 + table(b[10]);
        // skip data sub-blocks starting at `i`, returning the index after the terminator
        let skip_blocks = |mut i: usize| -> Option<usize> {
            loop {
                let n = *b.get(i)? as usize;
                i += 1 + n;
                if n == 0 {
                    return Some(i);
                }
            }
        };
        let mut frames = 0;
        loop {
            match b.get(i) {
                Some(0x3B) | None => break, // trailer (or truncated after complete frames)
                Some(0x21) => match b.get(i + 2).and_then(|_| skip_blocks(i + 2)) {
                    Some(next) => i = next,
                    None => break,
                },
                Some(0x2C) => {
                    let Some(d) = b.get(i + 1..i + 10) else { return bad("truncated image descriptor") };
                    let f = |k: usize| u16::from_le_bytes([d[k], d[k + 1]]) as u32;
                    let (x, y, w, h) = (f(0), f(2), f(4), f(6));
                    if x + w > sw || y + h > sh {
                        return bad(&format!("frame {w}x{h}+{x}+{y} lies outside the {sw}x{sh} screen"));
                    }
                    frames += 1;
                    i += 10 + table(d[8]) + 1; // descriptor, local colour table, LZW minimum code size
                    match skip_blocks(i) {
                        Some(next) => i = next,
                        None => break,
                    }
                }
                Some(_) => break, // garbage after the frames: the decoder decides
            }
        }
        if frames == 0 {
            return bad("no image frame");
        }
        Ok(())
    }

    pub fn decode(bytes: &[u8], format: SourceFormat) -> Result<Pixels> {
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format_of(format));
        // The probe already enforced the pixel limit; this bounds what a lying header could make us allocate.
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(1 << 30);
        reader.limits(limits);
        let img = reader.decode().map_err(undecodable)?;
        let (width, height) = (img.width(), img.height());
        if img.color().has_alpha() {
            Ok(Pixels { width, height, channels: 4, data: img.into_rgba8().into_raw() })
        } else {
            Ok(Pixels { width, height, channels: 3, data: img.into_rgb8().into_raw() })
        }
    }
}

mod webp {
    use super::*;
    use img_parts::ImageEXIF;
    use libwebp_sys as w;

    fn features(bytes: &[u8]) -> Result<w::WebPBitstreamFeatures> {
        // SAFETY: zeroed POD struct filled by libwebp from a valid slice.
        unsafe {
            let mut f: w::WebPBitstreamFeatures = std::mem::zeroed();
            match w::WebPGetFeatures(bytes.as_ptr(), bytes.len(), &mut f) {
                w::VP8StatusCode::VP8_STATUS_OK => Ok(f),
                status => Err(undecodable(format!("webp: {status:?}"))),
            }
        }
    }

    pub fn probe(bytes: &Bytes) -> Result<Probe> {
        let f = features(bytes)?;
        let orientation = img_parts::webp::WebP::from_bytes(bytes.clone())
            .ok()
            .and_then(|p| p.exif())
            .map(|e| exif_orientation(e.strip_prefix(b"Exif\0\0").unwrap_or(&e)))
            .unwrap_or(Orientation::IDENTITY);
        Ok(Probe { width: f.width as u32, height: f.height as u32, orientation, scalable: f.has_animation == 0 })
    }

    pub fn decode(bytes: &[u8], shrink: u32) -> Result<Pixels> {
        let f = features(bytes)?;
        if f.has_animation != 0 {
            return first_frame(bytes);
        }
        let channels = if f.has_alpha != 0 { 4 } else { 3 };
        let (mut width, mut height) = (f.width as u32, f.height as u32);
        // SAFETY: the decoder writes into `data`, which is sized for the output and outlives the call.
        unsafe {
            let mut config = w::WebPDecoderConfig::new().map_err(|_| undecodable("webp: init"))?;
            if shrink > 1 {
                width = width.div_ceil(shrink);
                height = height.div_ceil(shrink);
                config.options.use_scaling = 1;
                config.options.scaled_width = width as i32;
                config.options.scaled_height = height as i32;
            }
            let stride = width as usize * channels;
            let mut data = vec![0u8; stride * height as usize];
            config.output.colorspace =
                if channels == 4 { w::WEBP_CSP_MODE::MODE_RGBA } else { w::WEBP_CSP_MODE::MODE_RGB };
            config.output.is_external_memory = 1;
            config.output.u.RGBA =
                w::WebPRGBABuffer { rgba: data.as_mut_ptr(), stride: stride as i32, size: data.len() };
            let status = w::WebPDecode(bytes.as_ptr(), bytes.len(), &mut config);
            w::WebPFreeDecBuffer(&mut config.output);
            if status != w::VP8StatusCode::VP8_STATUS_OK {
                return Err(undecodable(format!("webp: {status:?}")));
            }
            Ok(Pixels { width, height, channels, data })
        }
    }

    /// First frame of an animated WebP, composited on its canvas (animations are served as stills).
    fn first_frame(bytes: &[u8]) -> Result<Pixels> {
        // SAFETY: libwebp demux API used as documented; the frame buffer is copied before the decoder dies.
        unsafe {
            let mut opts: w::WebPAnimDecoderOptions = std::mem::zeroed();
            if w::WebPAnimDecoderOptionsInit(&mut opts) == 0 {
                return Err(undecodable("webp: anim init"));
            }
            opts.color_mode = w::WEBP_CSP_MODE::MODE_RGBA;
            opts.use_threads = 0;
            let data = w::WebPData { bytes: bytes.as_ptr(), size: bytes.len() };
            let dec = w::WebPAnimDecoderNew(&data, &opts);
            if dec.is_null() {
                return Err(undecodable("webp: cannot open animation"));
            }
            let mut info = w::WebPAnimInfo::default();
            let mut buf: *mut u8 = std::ptr::null_mut();
            let mut ts = 0;
            let ok = w::WebPAnimDecoderGetInfo(dec, &mut info) != 0
                && w::WebPAnimDecoderGetNext(dec, &mut buf, &mut ts) != 0;
            let result = if ok && !buf.is_null() {
                let len = info.canvas_width as usize * info.canvas_height as usize * 4;
                Ok(Pixels {
                    width: info.canvas_width,
                    height: info.canvas_height,
                    channels: 4,
                    data: std::slice::from_raw_parts(buf, len).to_vec(),
                })
            } else {
                Err(undecodable("webp: cannot decode the first frame"))
            };
            w::WebPAnimDecoderDelete(dec);
            result
        }
    }
}

mod avif {
    use super::*;
    use libavif_sys as a;

    struct Decoder(*mut a::avifDecoder);
    impl Drop for Decoder {
        fn drop(&mut self) {
            // SAFETY: created by avifDecoderCreate, destroyed once.
            unsafe { a::avifDecoderDestroy(self.0) }
        }
    }

    fn check(r: a::avifResult, what: &str) -> Result<()> {
        if r == a::AVIF_RESULT_OK {
            return Ok(());
        }
        // SAFETY: libavif returns a static C string for every result code.
        let msg = unsafe { std::ffi::CStr::from_ptr(a::avifResultToString(r)) }.to_string_lossy().into_owned();
        Err(undecodable(format!("avif {what}: {msg}")))
    }

    /// Parse (and, unless `header_only`, decode the first image of) an AVIF file.
    pub fn decode(bytes: &[u8], header_only: bool) -> Result<(Probe, Option<Pixels>)> {
        // SAFETY: the decoder reads from `bytes`, which outlives it; the RGB buffer is ours and sized for
        // the image; every pointer comes from libavif and is checked before use.
        unsafe {
            let raw = a::avifDecoderCreate();
            if raw.is_null() {
                return Err(Error::Internal("avifDecoderCreate failed".into()));
            }
            let dec = Decoder(raw);
            (*dec.0).maxThreads = 1;
            (*dec.0).ignoreExif = 1;
            (*dec.0).ignoreXMP = 1;
            (*dec.0).strictFlags = a::AVIF_STRICT_DISABLED as _;
            check(a::avifDecoderSetIOMemory(dec.0, bytes.as_ptr(), bytes.len()), "io")?;
            check(a::avifDecoderParse(dec.0), "parse")?;
            let img = (*dec.0).image;
            let (width, height) = ((*img).width, (*img).height);
            let mut orientation = Orientation::IDENTITY;
            let flags = (*img).transformFlags;
            if flags & a::AVIF_TRANSFORM_IROT != 0 {
                // irot: angle * 90 degrees anti-clockwise
                let ccw = ((*img).irot.angle % 4) as u16 * 90;
                orientation = Orientation::rotate_cw((360 - ccw) % 360);
            }
            if flags & a::AVIF_TRANSFORM_IMIR != 0 {
                // imir axis 0: top and bottom exchanged; 1: left and right exchanged
                let m = if (*img).imir.axis == 0 {
                    Orientation::mirror(false, true)
                } else {
                    Orientation::mirror(true, false)
                };
                orientation = orientation.then(m);
            }
            let probe = Probe { width, height, orientation, scalable: false };
            if header_only {
                return Ok((probe, None));
            }
            check(a::avifDecoderNextImage(dec.0), "decode")?;
            let img = (*dec.0).image;
            let alpha = !(*img).alphaPlane.is_null();
            let channels = if alpha { 4 } else { 3 };
            let mut rgb: a::avifRGBImage = std::mem::zeroed();
            a::avifRGBImageSetDefaults(&mut rgb, img);
            rgb.depth = 8;
            rgb.format = if alpha { a::AVIF_RGB_FORMAT_RGBA } else { a::AVIF_RGB_FORMAT_RGB };
            rgb.maxThreads = 1;
            let (w, h) = ((*img).width, (*img).height);
            let mut data = vec![0u8; w as usize * h as usize * channels];
            rgb.pixels = data.as_mut_ptr();
            rgb.rowBytes = w * channels as u32;
            check(a::avifImageYUVToRGB(img, &mut rgb), "yuv→rgb")?;
            Ok((probe, Some(Pixels { width: w, height: h, channels, data })))
        }
    }
}
