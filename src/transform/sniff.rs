//! Source type from magic bytes only (never the extension or `Content-Type`).

use crate::error::{Error, Result};

/// The source formats imgedge decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Jpeg,
    Png,
    Gif,
    Webp,
    Avif,
}

impl SourceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "jpeg",
            SourceFormat::Png => "png",
            SourceFormat::Gif => "gif",
            SourceFormat::Webp => "webp",
            SourceFormat::Avif => "avif",
        }
    }
}

/// Identify `bytes`, or refuse them with 415 naming what they look like.
pub fn sniff(bytes: &[u8]) -> Result<SourceFormat> {
    use infer::image;
    if image::is_jpeg(bytes) {
        return Ok(SourceFormat::Jpeg);
    }
    if image::is_png(bytes) {
        return Ok(SourceFormat::Png);
    }
    if image::is_gif(bytes) {
        return Ok(SourceFormat::Gif);
    }
    if image::is_webp(bytes) {
        return Ok(SourceFormat::Webp);
    }
    if image::is_avif(bytes) {
        return Ok(SourceFormat::Avif);
    }
    if looks_like_svg(bytes) {
        return Err(Error::UnsupportedType("image/svg+xml (SVG sources are refused)".into()));
    }
    let what = infer::get(bytes).map(|t| t.mime_type()).unwrap_or("unknown data");
    Err(Error::UnsupportedType(format!("{what} is not a supported image (jpeg, png, gif, webp, avif)")))
}

/// SVG is XML text: look for an `<svg` element near the start, after an optional BOM, XML prolog,
/// comments or doctype.
fn looks_like_svg(bytes: &[u8]) -> bool {
    let t = text_head(bytes).trim_start();
    (t.starts_with('<')) && t.to_ascii_lowercase().contains("<svg")
}

/// The first 4 KiB as text, after an optional UTF-8 BOM: the part that decodes as UTF-8 (the 4 KiB cut
/// may split a character).
fn text_head(bytes: &[u8]) -> &str {
    let head = &bytes[..bytes.len().min(4096)];
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// Stricter than [`looks_like_svg`], for serving SVG as it is: valid UTF-8 whose root element is
/// `<svg`, after an optional BOM, XML declaration, processing instructions, comments and doctype. An HTML
/// page with an inline `<svg>` is not an SVG document.
pub fn is_svg_document(bytes: &[u8]) -> bool {
    let mut t = text_head(bytes).trim_start();
    loop {
        let end = if t.starts_with("<?") {
            t.find("?>").map(|i| i + 2)
        } else if t.starts_with("<!--") {
            t.find("-->").map(|i| i + 3)
        } else if t.len() >= 9 && t[..9].eq_ignore_ascii_case("<!doctype") {
            // a doctype may carry an internal subset in [...]
            match (t.find('['), t.find('>')) {
                (Some(b), Some(g)) if b < g => t.find("]>").map(|i| i + 2),
                (_, g) => g.map(|i| i + 1),
            }
        } else {
            break;
        };
        let Some(end) = end else { return false };
        t = t[end..].trim_start();
    }
    let Some(rest) = t.strip_prefix('<') else { return false };
    let name: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/').collect();
    name == "svg" || name.ends_with(":svg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0\0\x10JFIF\0").unwrap(), SourceFormat::Jpeg);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap(), SourceFormat::Png);
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0").unwrap(), SourceFormat::Gif);
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8 ").unwrap(), SourceFormat::Webp);
        assert_eq!(sniff(b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf").unwrap(), SourceFormat::Avif);
    }

    #[test]
    fn non_images_are_415() {
        for bytes in [
            &b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>"[..],
            b"<svg onload=alert(1)>",
            b"<!DOCTYPE html><html><body>hi</body></html>",
            b"%PDF-1.7\n",
            b"PK\x03\x04\x14\0\0\0",
            b"",
            b"hello",
            b"\0\0\0\x18ftypheic\0\0\0\0mif1heic",
        ] {
            let err = sniff(bytes).unwrap_err();
            assert_eq!(err.status().as_u16(), 415, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn svg_documents_need_an_svg_root() {
        for yes in [
            &b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"[..],
            b"\xEF\xBB\xBF<?xml version=\"1.0\"?>\n<!-- made by hand -->\n<svg>",
            b"<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x\"><svg/>",
            b"<!DOCTYPE svg [ <!ENTITY a \"b\"> ]>\n<svg>",
            b"<svg:svg xmlns:svg=\"http://www.w3.org/2000/svg\">",
        ] {
            assert!(is_svg_document(yes), "{:?}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"<!DOCTYPE html><html><body><svg></svg></body></html>"[..],
            b"<html><svg>",
            b"<svgfoo>",
            b"<!-- unterminated <svg>",
            b"\x89PNG\r\n\x1a\n<svg>",
            b"text then <svg>",
            b"",
        ] {
            assert!(!is_svg_document(no), "{:?}", String::from_utf8_lossy(no));
        }
    }
}
