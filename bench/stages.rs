//! Criterion micro-benchmarks of the pipeline's stages on a corpus photo: JPEG decode full vs DCT-scaled,
//! resize from the full and the scaled decode, each encoder at 800×600, and the whole `transform::run`.
//! Run: `cargo bench --bench stages` (results in target/criterion; figures in bench/README.md).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use imgedge::transform::encode::{encode, EncodeSettings};
use imgedge::transform::plan::Rect;
use imgedge::transform::{decode, resize, sniff, Limits, OutputChoice};
use imgedge::url::{params, FormatParam, OutputFormat};
use std::path::Path;
use std::time::Duration;

fn photo() -> Bytes {
    let corpus = std::env::var_os("IMGEDGE_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    Bytes::from(std::fs::read(corpus.join("photos/olympus-ep3_4032x3024.jpg")).expect("corpus photo"))
}

fn full(px: &imgedge::transform::Pixels) -> Rect {
    Rect { x: 0.0, y: 0.0, w: px.width as f64, h: px.height as f64 }
}

fn stages(c: &mut Criterion) {
    let src = photo();
    let format = sniff::sniff(&src).unwrap();

    let mut g = c.benchmark_group("decode 4032x3024 jpeg");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for shrink in [1, 2, 4, 8] {
        g.bench_with_input(BenchmarkId::new("scale 1/", shrink), &shrink, |b, &s| {
            b.iter(|| decode::decode(&src, format, s).unwrap())
        });
    }
    g.finish();

    let whole = decode::decode(&src, format, 1).unwrap();
    let quarter = decode::decode(&src, format, 4).unwrap();
    let mut g = c.benchmark_group("resize to 800x600 (lanczos3)");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("from 4032x3024", |b| b.iter(|| resize::resize(whole.clone(), full(&whole), (800, 600)).unwrap()));
    g.bench_function("from 1008x756", |b| {
        b.iter(|| resize::resize(quarter.clone(), full(&quarter), (800, 600)).unwrap())
    });
    g.finish();

    let small = resize::resize(quarter.clone(), full(&quarter), (800, 600)).unwrap();
    let settings = EncodeSettings::default();
    let mut g = c.benchmark_group("encode 800x600");
    g.sample_size(10).measurement_time(Duration::from_secs(6));
    for (name, fmt) in [
        ("webp", OutputFormat::Webp),
        ("jpeg", OutputFormat::Jpeg),
        ("png", OutputFormat::Png),
        ("avif", OutputFormat::Avif),
    ] {
        g.bench_function(name, |b| b.iter(|| encode(&small, fmt, None, &settings).unwrap()));
    }
    for method in [0u8, 2, 4] {
        let s = EncodeSettings { webp_method: method, ..EncodeSettings::default() };
        g.bench_with_input(BenchmarkId::new("webp method", method), &s, |b, s| {
            b.iter(|| encode(&small, OutputFormat::Webp, None, s).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("transform::run 4032x3024 jpeg to 800 px");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    let limits = Limits::default();
    for fm in ["webp", "jpeg"] {
        let spec = params::parse(&format!("w=800&fm={fm}"), FormatParam::Auto).unwrap();
        let choice = OutputChoice::Fixed(spec.format.fixed().unwrap());
        g.bench_function(fm, |b| b.iter(|| imgedge::transform::run(&src, &spec, choice, &limits, &settings).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
