//! Every input format the corpus has, and every output format.

use crate::util::*;

/// (corpus path, displayed width, displayed height)
const INPUTS: &[(&str, u32, u32)] = &[
    ("photos/olympus-ep3_4032x3024.jpg", 4032, 3024),
    ("photos/canon-sx60_2048x1536_orient6.jpg", 1536, 2048),
    ("jpeg-progressive/pizza-progressive_1200x1200.jpg", 1200, 1200),
    ("jpeg-progressive/imagers-progressive3_650x470.jpg", 650, 470),
    ("jpeg-cmyk/pizza-cmyk-swop_1200x1200.jpg", 1200, 1200),
    ("jpeg-cmyk/channel-cmyk-noprofile_500x333.jpg", 500, 333),
    ("jpeg-cmyk/pil-sample-cmyk_100x100.jpg", 100, 100),
    ("orientation/cmyk-orient6_800x533.jpg", 533, 800),
    ("jpeg-special/arithmetic-coded_10x10.jpg", 10, 10),
    ("jpeg-special/grey-cd1.1.jpg", 531, 373),
    ("jpeg-icc/concert-grey-gamma22.jpg", 400, 267),
    ("jpeg-special/sugarshack.mpo", 640, 480),
    ("jpeg-special/hopper-16bit-qtables.jpg", 128, 128),
    ("jpeg-icc/icc-profile-big.jpg", 425, 250),
    ("png/plum-blossom_2048x2048_rgba.png", 2048, 2048),
    ("png/indexed_palette.png", 290, 442),
    ("png/paletted-transparent.png", 300, 225),
    ("png/pil123p_palette_interlaced.png", 162, 150),
    ("png/pil123rgba_interlaced.png", 162, 150),
    ("png/grey16-alpha.png", 109, 96),
    ("png/grey8-alpha.png", 400, 300),
    ("png/bilevel_2809x2074_1bit.png", 2809, 2074),
    ("png/apng_iss634.png", 245, 245),
    ("png/pngsuite/basn0g01.png", 32, 32),
    ("png/pngsuite/basn0g16.png", 32, 32),
    ("png/pngsuite/basn2c16.png", 32, 32),
    ("png/pngsuite/basn3p08.png", 32, 32),
    ("png/pngsuite/basn4a16.png", 32, 32),
    ("png/pngsuite/basn6a16.png", 32, 32),
    ("png/pngsuite/basi6a16.png", 32, 32),
    ("png/pngsuite/tbrn2c08.png", 32, 32),
    ("gif/rotating-earth_400x400_anim.gif", 400, 400),
    ("gif/trans-x.gif", 100, 100),
    ("gif/interlaced_anim.gif", 32, 32),
    ("gif/dispose-background.gif", 192, 168),
    ("webp/gallery4_1024x772_lossy.webp", 1024, 772),
    ("webp/multi-color_lossless.webp", 300, 300),
    ("webp/gallery3-5_alpha.webp", 300, 300),
    ("webp/lossy_alpha.webp", 100, 100),
    ("webp/pizza-displayp3_vp8x.webp", 1200, 1200),
    ("webp/iss634_anim.webp", 245, 245),
    ("webp/anim_200x200.webp", 200, 200),
    ("avif/hato_3082x2048_8bit420.avif", 3082, 2048),
    ("avif/hato_10bit420.avif", 3078, 2048),
    ("avif/fox_1204x800_8bit444.avif", 1204, 800),
    ("avif/kimono_rotate90.avif", 722, 1024),
    ("avif/red-at-12_icc_8bit.avif", 800, 800),
    ("avif/bbb_alpha_3840x2160.avif", 3840, 2160),
    ("avif/tomsk_5x4_grid_6400x2880.avif", 6400, 2880),
    ("avif/sharp_pitm.avif", 4096, 800),
    ("avif/star_anim_alpha.avifs", 159, 159),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_corpus_format_decodes_to_the_right_size() {
    let s = start().await;
    let mut failures = Vec::new();
    for &(path, w, h) in INPUTS {
        let want = if w > 64 { (64, ((h as f64 * 64.0 / w as f64).round() as u32).max(1)) } else { (w, h) };
        let r = get(&s, &format!("/{path}?w=64&fm=png")).await;
        let status = r.status().as_u16();
        if status != 200 {
            failures.push(format!("{path}: {status} {}", r.text().await.unwrap()));
            continue;
        }
        let got = decode(&r.bytes().await.unwrap()).dimensions();
        if got != want {
            failures.push(format!("{path}: {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn avif_files_libavif_1_0_cannot_parse_are_a_clear_422() {
    // libvips (libheif) opens this alpha AVIF; the vendored libavif 1.0.4 rejects its box structure.
    let s = start().await;
    let r = get(&s, "/avif/plum-blossom_alpha.avif?w=64").await;
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "undecodable");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_output_format_is_what_it_says() {
    let s = start().await;
    for (fm, mime, magic) in [
        ("webp", "image/webp", &b"WEBP"[..]),
        ("avif", "image/avif", b"ftypavif"),
        ("jpeg", "image/jpeg", b"\xFF\xD8\xFF"),
        ("jpg", "image/jpeg", b"\xFF\xD8\xFF"),
        ("png", "image/png", b"\x89PNG"),
    ] {
        let r = get(&s, &format!("/photos/nikon-p6000_640x480_gps.jpg?w=320&fm={fm}")).await;
        assert_eq!(r.status(), 200, "{fm}");
        assert_eq!(r.headers()["content-type"], mime, "{fm}");
        let len: usize = r.headers()["content-length"].to_str().unwrap().parse().unwrap();
        let body = r.bytes().await.unwrap();
        assert_eq!(len, body.len());
        assert!(body.windows(magic.len()).take(16).any(|w| w == magic), "{fm}: magic bytes");
        let img = decode(&body);
        assert_eq!(img.dimensions(), (320, 240), "{fm}");
        // Outputs carry no metadata: no EXIF (the source has camera data and GPS)
        assert!(!body.windows(4).any(|w| w == b"Exif"), "{fm} output must not carry EXIF");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alpha_survives_into_formats_that_have_it() {
    let s = start().await;
    for fm in ["webp", "avif", "png"] {
        let img = fetch_image(&s, &format!("/webp/gallery3-5_alpha.webp?w=150&fm={fm}")).await;
        let transparent = img.pixels().filter(|p| p[3] < 128).count();
        assert!(transparent > 1000, "{fm}: {transparent} transparent pixels");
    }
    // and is flattened where it does not
    let img = fetch_image(&s, "/webp/gallery3-5_alpha.webp?w=150&fm=jpeg").await;
    assert!(img.pixels().all(|p| p[3] == 255));
}

#[tokio::test(flavor = "multi_thread")]
async fn decoders_agree_on_pixels() {
    let s = start().await;
    // The same picture as AVIF and as JPEG must look the same after resizing.
    let jpg = fetch_image(&s, "/photos/hato_3082x2048.jpg?w=300&fm=png").await;
    let avif = fetch_image(&s, "/avif/hato_3082x2048_8bit420.avif?w=300&fm=png").await;
    let d = mean_abs_diff(&jpg, &avif);
    assert!(d < 8.0, "hato as JPEG vs AVIF differ by {d:.2}");
    // A CMYK JPEG (Adobe, inverted) must not come out as a negative: compare with its RGB sibling.
    let cmyk = fetch_image(&s, "/jpeg-cmyk/pizza-cmyk-swop_1200x1200.jpg?w=100&fm=png").await;
    let rgb = fetch_image(&s, "/jpeg-progressive/pizza-progressive_1200x1200.jpg?w=100&fm=png").await;
    let d = mean_abs_diff(&cmyk, &rgb);
    assert!(d < 40.0, "CMYK pizza differs from the RGB one by {d:.2} (inverted?)");
}
