//! Query-string parsing: one table of parameters (with aliases) into a validated [`TransformSpec`].

use super::spec::{fmt_num, Download, Fit, FormatParam, Gravity, Rgba, TransformSpec};
use crate::error::{Error, Result};
use std::borrow::Cow;

/// Largest output side accepted from `w`/`h` (after `dpr`).
pub const MAX_DIMENSION: u32 = 8192;

/// Every parameter name imgedge accepts, mapped to its canonical short name.
fn canonical_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "w" | "width" => "w",
        "h" | "height" => "h",
        "dpr" => "dpr",
        "fit" => "fit",
        "g" | "gravity" => "g",
        "q" | "quality" => "q",
        "fm" | "format" => "fm",
        "bg" => "bg",
        "rot" => "rot",
        "flip" => "flip",
        "blur" => "blur",
        "sharpen" => "sharpen",
        "dl" => "dl",
        "enlarge" => "enlarge",
        "exp" => "exp",
        _ => return None,
    })
}

/// Parse a raw query string (percent-encoded, without `?`), with no presets.
///
/// Unknown names, repeated names (also through an alias), empty values where a value is required,
/// malformed numbers and out-of-range values are refused with a 400 naming the parameter.
pub fn parse(raw_query: &str, default_format: FormatParam) -> Result<TransformSpec> {
    parse_with(raw_query, default_format, &Presets::new())
}

/// Named parameter sets (config section `[presets]`), e.g. `thumb = "w=200&h=200&fit=cover"`.
pub type Presets = std::collections::BTreeMap<String, String>;

/// [`parse`], with `preset=NAME` expanded from `presets`. A preset's parameters come first; a parameter
/// also given in the URL overrides the preset's. The result is an ordinary spec, so a preset and the
/// same parameters spelled out share one cache entry.
pub fn parse_with(raw_query: &str, default_format: FormatParam, presets: &Presets) -> Result<TransformSpec> {
    let given: Vec<(Cow<str>, Cow<str>)> = form_urlencoded::parse(raw_query.as_bytes()).collect();
    let mut chosen = given.iter().filter(|(k, _)| k == "preset");
    let Some((_, name)) = chosen.next() else { return parse_pairs(given, default_format) };
    if chosen.next().is_some() {
        return Err(Error::bad_param("preset", "given more than once"));
    }
    let expansion = presets
        .get(name.as_ref())
        .ok_or_else(|| Error::bad_param("preset", format!("no preset named {:?}", truncate(name))))?;
    let in_url: Vec<&'static str> = given.iter().filter_map(|(k, _)| canonical_name(k)).collect();
    let mut pairs: Vec<(Cow<str>, Cow<str>)> = form_urlencoded::parse(expansion.as_bytes())
        .filter(|(k, _)| canonical_name(k).is_none_or(|c| !in_url.contains(&c)))
        .collect();
    pairs.extend(given.iter().filter(|(k, _)| k != "preset").cloned());
    parse_pairs(pairs, default_format)
}

/// Check a `[presets]` table at start-up: each must parse on its own, without `preset` or `exp`.
pub fn validate_presets(presets: &Presets) -> std::result::Result<(), String> {
    for (name, query) in presets {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(format!("presets: name {name:?} must be letters, digits, '-' or '_'"));
        }
        for (k, _) in form_urlencoded::parse(query.as_bytes()) {
            if k == "preset" || canonical_name(&k) == Some("exp") {
                return Err(format!("presets.{name}: {k} cannot be part of a preset"));
            }
        }
        parse(query, FormatParam::Auto).map_err(|e| format!("presets.{name}: {e}"))?;
    }
    Ok(())
}

fn parse_pairs(pairs: Vec<(Cow<str>, Cow<str>)>, default_format: FormatParam) -> Result<TransformSpec> {
    let mut spec = TransformSpec { format: default_format, ..TransformSpec::default() };
    let mut seen: Vec<&'static str> = Vec::new();
    let (mut w, mut h, mut dpr) = (None::<u32>, None::<u32>, None::<f64>);

    for (name, value) in pairs {
        let Some(key) = canonical_name(&name) else {
            return Err(Error::UnknownParam(truncate(&name)));
        };
        if seen.contains(&key) {
            return Err(Error::bad_param(key, "given more than once"));
        }
        seen.push(key);
        let v = value.as_ref();
        match key {
            "w" => w = Some(parse_int(key, v, 1, MAX_DIMENSION)?),
            "h" => h = Some(parse_int(key, v, 1, MAX_DIMENSION)?),
            "dpr" => dpr = Some(parse_float(key, v, 1.0, 4.0)?),
            "fit" => {
                spec.fit = match v {
                    "inside" => Fit::Inside,
                    "contain" | "pad" => Fit::Contain,
                    "cover" => Fit::Cover,
                    "fill" => Fit::Fill,
                    "outside" => Fit::Outside,
                    _ => return Err(Error::bad_param(key, "expected inside, contain, pad, cover, fill or outside")),
                }
            }
            "g" => spec.gravity = parse_gravity(v)?,
            "q" => spec.quality = Some(parse_int(key, v, 1, 100)? as u8),
            "fm" => {
                spec.format = FormatParam::parse(v)
                    .ok_or_else(|| Error::bad_param(key, "expected auto, webp, avif, jpeg, jpg or png"))?
            }
            "bg" => spec.background = Some(parse_color(v)?),
            "rot" => {
                spec.rotate = match v {
                    "0" => 0,
                    "90" => 90,
                    "180" => 180,
                    "270" => 270,
                    _ => return Err(Error::bad_param(key, "expected 0, 90, 180 or 270")),
                }
            }
            "flip" => {
                (spec.flip_h, spec.flip_v) = match v {
                    "h" => (true, false),
                    "v" => (false, true),
                    "hv" | "vh" => (true, true),
                    _ => return Err(Error::bad_param(key, "expected h, v or hv")),
                }
            }
            "blur" => spec.blur = Some(parse_float(key, v, 0.3, 100.0)? as f32),
            "sharpen" => {
                let s = parse_float(key, v, 0.0, 10.0)? as f32;
                spec.sharpen = (s > 0.0).then_some(s);
            }
            "enlarge" => {
                spec.enlarge = match v {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(Error::bad_param(key, "expected 1 or 0")),
                }
            }
            "dl" => spec.download = Some(parse_download(v)?),
            "exp" => {
                if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::bad_param(key, "expected unix seconds"));
                }
                spec.expires = Some(v.parse().map_err(|_| Error::bad_param(key, "expected unix seconds"))?);
            }
            _ => unreachable!("every canonical name is handled"),
        }
    }

    let dpr = dpr.unwrap_or(1.0);
    spec.width = w.map(|v| scale_dim("w", v, dpr)).transpose()?;
    spec.height = h.map(|v| scale_dim("h", v, dpr)).transpose()?;
    Ok(spec)
}

fn scale_dim(param: &str, v: u32, dpr: f64) -> Result<u32> {
    let px = (v as f64 * dpr).round();
    if px > MAX_DIMENSION as f64 {
        return Err(Error::bad_param(param, format!("{v} at dpr {} is over {MAX_DIMENSION} pixels", fmt_num(dpr))));
    }
    Ok(px as u32)
}

fn parse_int(param: &str, v: &str, min: u32, max: u32) -> Result<u32> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 9 {
        return Err(Error::bad_param(param, format!("expected an integer {min}..={max}")));
    }
    let n: u32 = v.parse().map_err(|_| Error::bad_param(param, "malformed integer"))?;
    if !(min..=max).contains(&n) {
        return Err(Error::bad_param(param, format!("{n} is outside {min}..={max}")));
    }
    Ok(n)
}

/// A plain decimal (`1`, `1.5`, `.5`): no sign, exponent, `inf` or `NaN`. Rounded to 3 decimals so that
/// the canonical form and the operation agree.
fn parse_float(param: &str, v: &str, min: f64, max: f64) -> Result<f64> {
    let plain = !v.is_empty()
        && v.len() <= 12
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|&b| b == b'.').count() <= 1
        && v != ".";
    if !plain {
        return Err(Error::bad_param(param, format!("expected a number {}..={}", fmt_num(min), fmt_num(max))));
    }
    let n: f64 = v.parse().map_err(|_| Error::bad_param(param, "malformed number"))?;
    let n = (n * 1000.0).round() / 1000.0;
    if !(min..=max).contains(&n) {
        return Err(Error::bad_param(param, format!("{v} is outside {}..={}", fmt_num(min), fmt_num(max))));
    }
    Ok(n)
}

fn parse_gravity(v: &str) -> Result<Gravity> {
    Ok(match v {
        "center" | "centre" => Gravity::Center,
        "north" => Gravity::North,
        "south" => Gravity::South,
        "east" => Gravity::East,
        "west" => Gravity::West,
        "northeast" => Gravity::NorthEast,
        "northwest" => Gravity::NorthWest,
        "southeast" => Gravity::SouthEast,
        "southwest" => Gravity::SouthWest,
        _ => {
            let fp = v
                .strip_prefix("fp:")
                .ok_or_else(|| Error::bad_param("g", "expected center, a compass direction or fp:x,y"))?;
            let (x, y) = fp.split_once(',').ok_or_else(|| Error::bad_param("g", "focal point is fp:x,y"))?;
            Gravity::Focal(parse_float("g", x, 0.0, 1.0)?, parse_float("g", y, 0.0, 1.0)?)
        }
    })
}

fn parse_color(v: &str) -> Result<Rgba> {
    let v = v.strip_prefix('#').unwrap_or(v);
    if !(v.len() == 6 || v.len() == 8) || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::bad_param("bg", "expected RRGGBB or RRGGBBAA (hex)"));
    }
    let byte = |i: usize| u8::from_str_radix(&v[i..i + 2], 16).expect("validated hex");
    let a = if v.len() == 8 { byte(6) } else { 255 };
    Ok(Rgba([byte(0), byte(2), byte(4), a]))
}

/// `dl` without a value (or `dl=1`) asks for a download under the default name; any other value is the
/// file name, cleaned of path separators, quotes and control characters.
fn parse_download(v: &str) -> Result<Download> {
    if v.is_empty() || v == "1" || v == "true" {
        return Ok(Download { filename: None });
    }
    let name: String =
        v.chars().filter(|c| !c.is_control() && !matches!(c, '/' | '\\' | '"' | ';')).take(200).collect();
    let name = name.trim().trim_start_matches('.').to_string();
    if name.is_empty() {
        return Err(Error::bad_param("dl", "file name is empty after removing unsafe characters"));
    }
    Ok(Download { filename: Some(name) })
}

fn truncate(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::spec::OutputFormat;

    fn p(q: &str) -> Result<TransformSpec> {
        parse(q, FormatParam::Auto)
    }

    #[test]
    fn aliases_order_and_defaults_share_one_canonical_form() {
        let forms = [
            "w=800&h=600&fit=cover",
            "h=600&fit=cover&w=800",
            "width=800&height=600&fit=cover&g=center",
            "w=400&dpr=2&h=300&fit=cover&enlarge=0&rot=0",
            "fit=cover&width=800&gravity=center&h=600&sharpen=0",
        ];
        let first = p(forms[0]).unwrap().canonical();
        assert_eq!(first, "w=800,h=600,fit=cover");
        for f in forms {
            assert_eq!(p(f).unwrap().canonical(), first, "{f}");
        }
    }

    #[test]
    fn fit_and_gravity_elided_when_they_cannot_matter() {
        assert_eq!(p("w=300&fit=cover&g=north").unwrap().canonical(), "w=300");
        assert_eq!(p("w=300&h=200&fit=fill&g=north").unwrap().canonical(), "w=300,h=200,fit=fill");
        assert_eq!(p("w=300&h=200&fit=pad").unwrap().canonical(), "w=300,h=200,fit=contain");
        assert_eq!(p("w=300&h=200&fit=cover&g=fp:0.3,0.70").unwrap().canonical(), "w=300,h=200,fit=cover,g=fp:0.3,0.7");
        assert_eq!(p("").unwrap().canonical(), "");
    }

    #[test]
    fn every_parameter_round_trips() {
        let s = p("w=10&h=20&fit=contain&g=southwest&q=55&fm=jpg&bg=FF0000&rot=90&flip=vh&blur=1.50&sharpen=2&dl=x.jpg&enlarge=1")
            .unwrap();
        assert_eq!(s.quality, Some(55));
        assert_eq!(s.format.fixed(), Some(OutputFormat::Jpeg));
        assert_eq!(s.background, Some(Rgba([255, 0, 0, 255])));
        assert_eq!(s.download, Some(Download { filename: Some("x.jpg".into()) }));
        assert_eq!(
            s.canonical(),
            "w=10,h=20,fit=contain,g=southwest,enlarge=1,bg=ff0000,rot=90,flip=hv,blur=1.5,sharpen=2"
        );
        assert_eq!(s.variant("jpeg", Some(55)), format!("{},fm=jpeg,q=55", s.canonical()));
        // explicit opaque alpha is the same colour
        assert_eq!(p("bg=ff0000ff").unwrap().canonical(), "bg=ff0000");
        assert_eq!(p("bg=ff000080").unwrap().canonical(), "bg=ff000080");
    }

    #[test]
    fn dpr_folds_into_pixels_and_is_capped() {
        assert_eq!(p("w=400&dpr=2").unwrap().width, Some(800));
        assert_eq!(p("w=333&dpr=1.5").unwrap().width, Some(500));
        assert!(p("w=5000&dpr=2").is_err());
        assert!(p("w=8192").is_ok());
    }

    #[test]
    fn bad_input_names_the_parameter() {
        let cases = [
            ("w=0", "w"),
            ("w=8193", "w"),
            ("w=-1", "w"),
            ("w=1e3", "w"),
            ("w=12px", "w"),
            ("w=", "w"),
            ("w=1&width=2", "w"),
            ("w=1&w=1", "w"),
            ("dpr=0.5", "dpr"),
            ("dpr=5", "dpr"),
            ("dpr=NaN", "dpr"),
            ("dpr=inf", "dpr"),
            ("fit=crop", "fit"),
            ("g=up", "g"),
            ("g=fp:2,0", "g"),
            ("g=fp:0.5", "g"),
            ("q=0", "q"),
            ("q=101", "q"),
            ("fm=gif", "fm"),
            ("bg=red", "bg"),
            ("bg=fff", "bg"),
            ("rot=45", "rot"),
            ("flip=x", "flip"),
            ("blur=0.1", "blur"),
            ("blur=101", "blur"),
            ("sharpen=11", "sharpen"),
            ("enlarge=yes", "enlarge"),
            ("dl=%2F%2F", "dl"),
        ];
        for (q, name) in cases {
            match p(q) {
                Err(Error::BadParam { param, .. }) => assert_eq!(param, name, "{q}"),
                other => panic!("{q}: expected BadParam({name}), got {other:?}"),
            }
        }
        assert!(matches!(p("zoom=2"), Err(Error::UnknownParam(n)) if n == "zoom"));
    }

    #[test]
    fn dl_is_not_part_of_the_variant() {
        assert_eq!(p("w=5&dl").unwrap().canonical(), p("w=5").unwrap().canonical());
        assert_eq!(p("dl").unwrap().download, Some(Download { filename: None }));
        assert_eq!(p("dl=1").unwrap().download, Some(Download { filename: None }));
        assert_eq!(
            p("dl=..%2Fevil%22name.png").unwrap().download,
            Some(Download { filename: Some("evilname.png".into()) })
        );
    }

    #[test]
    fn default_format_comes_from_config() {
        assert_eq!(parse("", FormatParam::Webp).unwrap().format, FormatParam::Webp);
        assert_eq!(parse("fm=png", FormatParam::Webp).unwrap().format, FormatParam::Png);
    }

    #[test]
    fn presets_expand_and_url_parameters_override_them() {
        let presets: Presets = [("thumb".to_string(), "w=200&h=200&fit=cover&q=70".to_string())].into();
        let with = |q: &str| parse_with(q, FormatParam::Auto, &presets);
        assert_eq!(with("preset=thumb").unwrap().canonical(), p("w=200&h=200&fit=cover").unwrap().canonical());
        assert_eq!(with("preset=thumb").unwrap().quality, Some(70));
        // the URL's own value wins, through an alias too
        assert_eq!(with("preset=thumb&width=100").unwrap().width, Some(100));
        assert_eq!(with("fm=png&preset=thumb").unwrap().format, FormatParam::Png);
        for bad in ["preset=nope", "preset=thumb&preset=thumb", "preset="] {
            assert_eq!(with(bad).unwrap_err().code(), "bad_param", "{bad}");
        }
        // with no presets configured, every name is unknown
        assert!(p("preset=thumb").is_err());
    }

    #[test]
    fn preset_tables_are_checked_at_start_up() {
        let one = |n: &str, q: &str| validate_presets(&[(n.to_string(), q.to_string())].into());
        assert!(one("card-2x", "w=800&h=400&fit=cover&fm=webp").is_ok());
        assert!(one("bad name", "w=1").is_err());
        assert!(one("a", "w=0").is_err());
        assert!(one("a", "preset=b").is_err());
        assert!(one("a", "w=10&exp=99999999999").is_err());
        assert!(one("a", "zoom=2").is_err());
    }
}
