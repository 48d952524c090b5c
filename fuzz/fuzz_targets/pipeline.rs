//! Fuzz target: arbitrary bytes and parameters through sniff → probe → plan → decode → resize → encode.
//!
//! The first 6 bytes choose the parameters (size, fit, gravity, rotation, flip, format, effects); the
//! rest is the source. Properties: nothing panics; every refusal is a 4xx; every success is a
//! non-empty image of the chosen format whose header says the size reported, within the output caps.
#![no_main]

use bytes::Bytes;
use imgedge::transform::{self, encode::EncodeSettings, sniff, Limits, OutputChoice};
use imgedge::url::{params, FormatParam, OutputFormat};
use libfuzzer_sys::fuzz_target;

fn query(p: &[u8; 6]) -> String {
    let mut q = Vec::new();
    if p[0] != 0 {
        q.push(format!("w={}", p[0] as u32 * 2));
    }
    if p[1] != 0 {
        q.push(format!("h={}", p[1] as u32 * 2));
    }
    q.push(format!("fit={}", ["inside", "contain", "cover", "fill", "outside"][p[2] as usize % 5]));
    let g = ["center", "north", "southeast", "fp:0.2,0.9", "west"][(p[2] as usize / 5) % 5];
    q.push(format!("g={g}"));
    q.push(format!("rot={}", [0, 90, 180, 270][p[3] as usize % 4]));
    if p[3] & 0x10 != 0 {
        q.push("flip=hv".into());
    }
    if p[3] & 0x20 != 0 {
        q.push("enlarge=1".into());
    }
    if p[3] & 0x40 != 0 {
        q.push("bg=ff8000".into());
    }
    // AVIF encoding is slow: only for small outputs, so the fuzzer spends its time on the decoders
    let small = p[0] != 0 && p[0] <= 32 && p[1] <= 32;
    let fm = match p[4] % 5 {
        0 => "webp",
        1 => "jpeg",
        2 => "png",
        3 if small => "avif",
        _ => "jpeg",
    };
    q.push(format!("fm={fm}"));
    if p[4] & 0x80 != 0 {
        q.push(format!("q={}", 1 + p[5] % 100));
    }
    match p[5] % 7 {
        0 => q.push("blur=1.5".into()),
        1 => q.push("sharpen=1".into()),
        _ => {}
    }
    q.join("&")
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let (p, src) = data.split_at(6);
    let spec = params::parse(&query(p.try_into().expect("6 bytes")), FormatParam::Webp).expect("generated query");
    let format = spec.format.fixed().expect("a fixed format");
    // a smaller pixel budget than the server's default keeps each run fast; the checks are the same
    let limits = Limits { max_source_pixels: 4_000_000, max_output_pixels: 4_000_000, ..Limits::default() };
    let enc = EncodeSettings { avif_speed: 10, ..EncodeSettings::default() };
    let src = Bytes::copy_from_slice(src);
    match transform::run(&src, &spec, OutputChoice::Fixed(format), &limits, &enc) {
        Ok(out) => {
            assert_eq!(out.format, format);
            assert!(!out.bytes.is_empty());
            assert!(out.width >= 1 && out.height >= 1);
            assert!(out.width <= limits.max_output_side && out.height <= limits.max_output_side);
            assert!(out.width as u64 * out.height as u64 <= limits.max_output_pixels);
            let again = sniff::sniff(&out.bytes).expect("the output is a known format");
            assert_eq!(again.as_str(), format.as_str(), "sniffed {} for {}", again.as_str(), format.as_str());
            let probe = transform::decode::probe(&out.bytes, again).expect("the output's header reads");
            assert_eq!((probe.width, probe.height), (out.width, out.height));
            assert_ne!(format, OutputFormat::Svg);
        }
        Err(e) => assert!(e.status().is_client_error(), "{e} is {} for arbitrary input", e.status()),
    }
});
