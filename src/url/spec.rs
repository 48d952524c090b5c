//! The typed transform spec and its canonical form (the cache identity of a variant).

use std::fmt::Write as _;

/// How the output box is filled when both width and height are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fit {
    /// Fit inside the box, keep the aspect ratio, no padding.
    #[default]
    Inside,
    /// Fit inside the box and pad to exactly the box with `bg` (alias `pad`).
    Contain,
    /// Fill the box and crop the overflow, placed by gravity.
    Cover,
    /// Stretch to exactly the box.
    Fill,
    /// Cover the box without cropping (the output may exceed one side).
    Outside,
}

impl Fit {
    pub fn as_str(self) -> &'static str {
        match self {
            Fit::Inside => "inside",
            Fit::Contain => "contain",
            Fit::Cover => "cover",
            Fit::Fill => "fill",
            Fit::Outside => "outside",
        }
    }
}

/// Where a crop (cover) or the image inside its padding (contain) is placed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Gravity {
    #[default]
    Center,
    North,
    South,
    East,
    West,
    NorthEast,
    NorthWest,
    SouthEast,
    SouthWest,
    /// Focal point as fractions of the (auto-oriented) source width and height, each 0..=1.
    Focal(f64, f64),
}

impl Gravity {
    /// The anchor as fractions (0 = left/top, 1 = right/bottom).
    pub fn anchor(self) -> (f64, f64) {
        match self {
            Gravity::Center => (0.5, 0.5),
            Gravity::North => (0.5, 0.0),
            Gravity::South => (0.5, 1.0),
            Gravity::East => (1.0, 0.5),
            Gravity::West => (0.0, 0.5),
            Gravity::NorthEast => (1.0, 0.0),
            Gravity::NorthWest => (0.0, 0.0),
            Gravity::SouthEast => (1.0, 1.0),
            Gravity::SouthWest => (0.0, 1.0),
            Gravity::Focal(x, y) => (x, y),
        }
    }

    fn write_canonical(self, out: &mut String) {
        let name = match self {
            Gravity::Center => "center",
            Gravity::North => "north",
            Gravity::South => "south",
            Gravity::East => "east",
            Gravity::West => "west",
            Gravity::NorthEast => "northeast",
            Gravity::NorthWest => "northwest",
            Gravity::SouthEast => "southeast",
            Gravity::SouthWest => "southwest",
            Gravity::Focal(x, y) => {
                let _ = write!(out, "fp:{},{}", fmt_num(x), fmt_num(y));
                return;
            }
        };
        out.push_str(name);
    }
}

/// An encoded output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    Webp,
    Avif,
    Jpeg,
    Png,
    /// An SVG source passed through unchanged (`limits.svg_passthrough`); never an encoder output.
    Svg,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Webp => "webp",
            OutputFormat::Avif => "avif",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Png => "png",
            OutputFormat::Svg => "svg",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpg",
            other => other.as_str(),
        }
    }
    pub fn mime(self) -> &'static str {
        match self {
            OutputFormat::Webp => "image/webp",
            OutputFormat::Avif => "image/avif",
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Png => "image/png",
            OutputFormat::Svg => "image/svg+xml",
        }
    }
    pub fn supports_alpha(self) -> bool {
        !matches!(self, OutputFormat::Jpeg)
    }
}

/// The `fm` parameter: a fixed format, or `auto` (negotiated from `Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatParam {
    #[default]
    Auto,
    Webp,
    Avif,
    #[serde(alias = "jpg")]
    Jpeg,
    Png,
}

impl FormatParam {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "auto" => FormatParam::Auto,
            "webp" => FormatParam::Webp,
            "avif" => FormatParam::Avif,
            "jpeg" | "jpg" => FormatParam::Jpeg,
            "png" => FormatParam::Png,
            _ => return None,
        })
    }
    pub fn fixed(self) -> Option<OutputFormat> {
        Some(match self {
            FormatParam::Auto => return None,
            FormatParam::Webp => OutputFormat::Webp,
            FormatParam::Avif => OutputFormat::Avif,
            FormatParam::Jpeg => OutputFormat::Jpeg,
            FormatParam::Png => OutputFormat::Png,
        })
    }
}

/// A colour with alpha (`bg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgba(pub [u8; 4]);

impl Rgba {
    pub const WHITE: Rgba = Rgba([255, 255, 255, 255]);
    pub const TRANSPARENT: Rgba = Rgba([0, 0, 0, 0]);
}

/// `dl`: answer with `Content-Disposition: attachment`, optionally with a file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub filename: Option<String>,
}

/// Everything a query can ask for, after validation. Sizes are device pixels (`dpr` already applied).
#[derive(Debug, Clone, PartialEq)]
pub struct TransformSpec {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    pub gravity: Gravity,
    pub enlarge: bool,
    pub quality: Option<u8>,
    pub format: FormatParam,
    pub background: Option<Rgba>,
    /// Clockwise rotation in degrees: 0, 90, 180 or 270, applied after EXIF auto-orientation.
    pub rotate: u16,
    pub flip_h: bool,
    pub flip_v: bool,
    pub blur: Option<f32>,
    pub sharpen: Option<f32>,
    /// Headers only: not part of the variant (same bytes).
    pub download: Option<Download>,
    /// `exp`: unix seconds after which the URL is refused (covered by the signature; not part of the variant).
    pub expires: Option<u64>,
}

impl Default for TransformSpec {
    fn default() -> Self {
        TransformSpec {
            width: None,
            height: None,
            fit: Fit::Inside,
            gravity: Gravity::Center,
            enlarge: false,
            quality: None,
            format: FormatParam::Auto,
            background: None,
            rotate: 0,
            flip_h: false,
            flip_v: false,
            blur: None,
            sharpen: None,
            download: None,
            expires: None,
        }
    }
}

impl TransformSpec {
    /// Whether both box dimensions are given (only then do `fit` and `gravity` matter).
    pub fn has_box(&self) -> bool {
        self.width.is_some() && self.height.is_some()
    }

    /// The fit that actually applies: with one dimension or none, every fit keeps the aspect ratio.
    pub fn effective_fit(&self) -> Fit {
        if self.has_box() {
            self.fit
        } else {
            Fit::Inside
        }
    }

    /// Canonical form of the pixel operations: fixed key order, defaults and no-op parameters elided,
    /// aliases and `dpr` folded in. Equivalent URLs give the same string. The output format and quality
    /// are not included: they are appended by [`TransformSpec::variant`] once the format is resolved.
    pub fn canonical(&self) -> String {
        let mut s = String::with_capacity(48);
        let sep = |s: &mut String| {
            if !s.is_empty() {
                s.push(',');
            }
        };
        if let Some(w) = self.width {
            sep(&mut s);
            let _ = write!(s, "w={w}");
        }
        if let Some(h) = self.height {
            sep(&mut s);
            let _ = write!(s, "h={h}");
        }
        let fit = self.effective_fit();
        if fit != Fit::Inside {
            sep(&mut s);
            let _ = write!(s, "fit={}", fit.as_str());
        }
        if matches!(fit, Fit::Cover | Fit::Contain) && self.gravity != Gravity::Center {
            sep(&mut s);
            s.push_str("g=");
            self.gravity.write_canonical(&mut s);
        }
        if self.enlarge && (self.width.is_some() || self.height.is_some()) {
            sep(&mut s);
            s.push_str("enlarge=1");
        }
        if let Some(Rgba([r, g, b, a])) = self.background {
            sep(&mut s);
            if a == 255 {
                let _ = write!(s, "bg={r:02x}{g:02x}{b:02x}");
            } else {
                let _ = write!(s, "bg={r:02x}{g:02x}{b:02x}{a:02x}");
            }
        }
        if self.rotate != 0 {
            sep(&mut s);
            let _ = write!(s, "rot={}", self.rotate);
        }
        if self.flip_h || self.flip_v {
            sep(&mut s);
            s.push_str(match (self.flip_h, self.flip_v) {
                (true, true) => "flip=hv",
                (true, false) => "flip=h",
                _ => "flip=v",
            });
        }
        if let Some(b) = self.blur {
            sep(&mut s);
            let _ = write!(s, "blur={}", fmt_num(b as f64));
        }
        if let Some(v) = self.sharpen {
            sep(&mut s);
            let _ = write!(s, "sharpen={}", fmt_num(v as f64));
        }
        s
    }

    /// Canonical variant: [`canonical`](Self::canonical) plus the resolved output choice and quality.
    pub fn variant(&self, output: &str, quality: Option<u8>) -> String {
        let mut s = self.canonical();
        if !s.is_empty() {
            s.push(',');
        }
        let _ = write!(s, "fm={output}");
        if let Some(q) = quality {
            let _ = write!(s, ",q={q}");
        }
        s
    }
}

/// Shortest decimal form of a value already rounded to 3 decimals ("0.3", "1", "12.5").
pub fn fmt_num(v: f64) -> String {
    let mut s = format!("{:.3}", v);
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    s
}
