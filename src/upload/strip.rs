//! Privacy for uploads: remove EXIF/XMP/IPTC/comments (GPS, camera serials, thumbnails) losslessly from
//! JPEG, PNG and WebP, keeping only the orientation tag; drop bytes after the image end. AVIF is
//! re-encoded upright (its metadata lives in items that cannot be cut safely). GIF has no EXIF; it is
//! stored as uploaded.

use crate::error::{Error, Result};
use crate::transform::decode::{self, Probe};
use crate::transform::orient::Orientation;
use crate::transform::sniff::SourceFormat;
use bytes::Bytes;
use img_parts::{ImageEXIF, ImageICC};

/// A minimal big-endian TIFF block holding one tag: Orientation.
fn orientation_only_exif(value: u16) -> Bytes {
    let mut t = Vec::with_capacity(26);
    t.extend_from_slice(b"MM\0\x2A");
    t.extend_from_slice(&8u32.to_be_bytes());
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    t.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&value.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0u32.to_be_bytes());
    Bytes::from(t)
}

/// The EXIF orientation value of an orientation (1 when upright).
fn exif_value(o: Orientation) -> u16 {
    (1..=8).find(|&v| Orientation::from_exif(v) == o).unwrap_or(1) as u16
}

fn bad(e: impl std::fmt::Display) -> Error {
    Error::Undecodable(format!("cannot rewrite the file: {e}"))
}

/// Strip `bytes` (already sniffed as `format` and probed as `probe`).
pub fn strip(bytes: Bytes, format: SourceFormat, probe: &Probe) -> Result<Bytes> {
    let orientation = exif_value(probe.orientation);
    let exif = (orientation != 1).then(|| orientation_only_exif(orientation));
    match format {
        SourceFormat::Jpeg => {
            let mut jpeg = img_parts::jpeg::Jpeg::from_bytes(bytes).map_err(bad)?;
            let icc = jpeg.icc_profile();
            jpeg.segments_mut().retain(|s| {
                let m = s.marker();
                // keep JFIF (APP0), Adobe (APP14: needed to read CMYK right) and every non-APP segment
                !((0xE1..=0xEF).contains(&m) && m != 0xEE) && m != 0xFE
            });
            jpeg.set_icc_profile(icc);
            jpeg.set_exif(exif);
            let out = jpeg.encoder().bytes();
            let end = jpeg_end(&out).ok_or_else(|| bad("no end of image"))?;
            Ok(out.slice(..end))
        }
        SourceFormat::Png => {
            let mut png = img_parts::png::Png::from_bytes(bytes).map_err(bad)?;
            for kind in [*b"eXIf", *b"tEXt", *b"zTXt", *b"iTXt", *b"tIME"] {
                png.remove_chunks_by_type(kind);
            }
            png.set_exif(exif);
            Ok(png.encoder().bytes())
        }
        SourceFormat::Webp => {
            let mut webp = img_parts::webp::WebP::from_bytes(bytes).map_err(bad)?;
            webp.remove_chunks_by_id(*b"XMP ");
            webp.set_exif(exif);
            Ok(webp.encoder().bytes())
        }
        SourceFormat::Gif => Ok(bytes),
        SourceFormat::Avif => {
            let px = decode::decode(&bytes, format, 1)?;
            let data = probe.orientation.apply(&px.data, (px.width, px.height), px.channels);
            let (w, h) = probe.orientation.dims((px.width, px.height));
            let upright = crate::transform::Pixels { width: w, height: h, channels: px.channels, data };
            let settings = crate::transform::encode::EncodeSettings::default();
            let out = crate::transform::encode::encode(&upright, crate::url::OutputFormat::Avif, Some(90), &settings)?;
            Ok(Bytes::from(out))
        }
    }
}

/// Offset just past the JPEG's real EOI marker: segments are skipped by their length, entropy-coded
/// data by its byte stuffing, so an EOI inside an EXIF thumbnail or a DHT table does not count and
/// anything appended after the image (a polyglot payload, an MPO's second picture) is cut off.
fn jpeg_end(d: &[u8]) -> Option<usize> {
    let mut i = 2;
    while i + 1 < d.len() {
        if d[i] != 0xFF {
            i += 1;
            continue;
        }
        match d[i + 1] {
            0x00 | 0xFF | 0x01 | 0xD0..=0xD7 => i += 1, // stuffing, fill, TEM, restart markers
            0xD9 => return Some(i + 2),
            _ => {
                let len = u16::from_be_bytes([*d.get(i + 2)?, *d.get(i + 3)?]) as usize;
                i += 2 + len;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_end_ignores_eoi_inside_segments_and_cuts_trailers() {
        // SOI, APP1 containing FF D9, SOS with stuffed FF 00, EOI, trailer
        let mut d = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0xAA, 0xBB];
        d.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD9]);
        let end = d.len();
        d.extend_from_slice(b"<?php trailer");
        assert_eq!(jpeg_end(&d), Some(end));
        assert_eq!(jpeg_end(&[0xFF, 0xD8, 0x00]), None);
    }

    #[test]
    fn the_minimal_exif_parses_as_orientation() {
        for v in 1..=8u16 {
            let e = exif::Reader::new().read_raw(orientation_only_exif(v).to_vec()).unwrap();
            let f = e.get_field(exif::Tag::Orientation, exif::In::PRIMARY).unwrap();
            assert_eq!(f.value.get_uint(0), Some(v as u32));
            assert_eq!(exif_value(Orientation::from_exif(v as u32)), v);
        }
    }
}
