//! Fit modes and parameters, against orientation/Landscape_1.jpg (1800x1200) unless noted.

use crate::util::*;

const SRC: &str = "/orientation/Landscape_1.jpg";

async fn dims(server: &Server, q: &str) -> (u32, u32) {
    fetch_image(server, &format!("{SRC}?{q}")).await.dimensions()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fit_mode_gives_exact_dimensions() {
    let s = start().await;
    let cases = [
        ("w=300&fm=png", (300, 200)),
        ("h=300&fm=png", (450, 300)),
        ("width=300&height=300&fm=png", (300, 200)), // inside is the default
        ("w=300&h=300&fit=inside&fm=png", (300, 200)),
        ("w=300&h=300&fit=contain&fm=png", (300, 300)),
        ("w=300&h=300&fit=pad&fm=jpeg", (300, 300)),
        ("w=300&h=300&fit=cover&fm=png", (300, 300)),
        ("w=300&h=100&fit=fill&fm=png", (300, 100)),
        ("w=300&h=300&fit=outside&fm=png", (450, 300)),
        ("w=150&dpr=2&fm=png", (300, 200)),
        ("w=100&dpr=1.5&fm=png", (150, 100)),
        ("w=3000&fm=png", (1800, 1200)),                   // never enlarges by default
        ("w=2700&enlarge=1&fm=jpeg", (2700, 1800)),        // unless asked
        ("w=4000&h=4000&fit=cover&fm=jpeg", (1200, 1200)), // cover keeps the box aspect at source scale
        ("w=300&rot=90&fm=png", (300, 450)),               // w/h are the axes of the output
        ("w=300&rot=270&fm=png", (300, 450)),
        ("w=300&rot=180&fm=png", (300, 200)),
        ("fm=png", (1800, 1200)),
    ];
    for (q, want) in cases {
        assert_eq!(dims(&s, q).await, want, "{q}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cover_gravity_and_focal_point_pick_the_right_region() {
    let s = start().await;
    // Reference: the whole image at 150x100 (scale 1/12). A 100x100 cover crop at the same scale must
    // equal the matching 100x100 window of the reference.
    let full = fetch_image(&s, &format!("{SRC}?w=150&fm=png")).await;
    for (g, x) in [("west", 0), ("center", 25), ("east", 50), ("fp:0.6,0.5", 40), ("fp:0.1,0.5", 0)] {
        let crop = fetch_image(&s, &format!("{SRC}?w=100&h=100&fit=cover&g={g}&fm=png")).await;
        let want = region(&full, x, 0, 100, 100);
        let d = mean_abs_diff(&crop, &want);
        assert!(d < 4.0, "g={g}: mean difference {d:.2} from the expected window at x={x}");
        if x != 25 {
            let centre = region(&full, 25, 0, 100, 100);
            assert!(mean_abs_diff(&crop, &centre) > d + 2.0, "g={g} must differ from the centre crop");
        }
    }
    // north/south on a landscape box
    let full = fetch_image(&s, &format!("{SRC}?w=300&fm=png")).await; // 300x200
    for (g, y) in [("north", 0), ("south", 100)] {
        let crop = fetch_image(&s, &format!("{SRC}?w=300&h=100&fit=cover&g={g}&fm=png")).await;
        assert!(mean_abs_diff(&crop, &region(&full, 0, y, 300, 100)) < 4.0, "g={g}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn contain_pads_with_bg_and_transparency() {
    let s = start().await;
    // 300x300 box, image 300x200 centred: 50 px bands top and bottom
    let img = fetch_image(&s, &format!("{SRC}?w=300&h=300&fit=contain&bg=ff0000&fm=png")).await;
    assert_eq!(img.get_pixel(150, 10).0, [255, 0, 0, 255]);
    assert_eq!(img.get_pixel(150, 290).0, [255, 0, 0, 255]);
    assert_ne!(img.get_pixel(150, 150).0, [255, 0, 0, 255]);
    let img = fetch_image(&s, &format!("{SRC}?w=300&h=300&fit=contain&fm=png")).await;
    assert_eq!(img.get_pixel(150, 10).0[3], 0, "default padding is transparent where the format allows");
    let img = fetch_image(&s, &format!("{SRC}?w=300&h=300&fit=contain&fm=jpeg")).await;
    let p = img.get_pixel(150, 10).0;
    assert!(p[0] > 245 && p[1] > 245 && p[2] > 245, "JPEG padding defaults to white, got {p:?}");
    let img = fetch_image(&s, &format!("{SRC}?w=300&h=300&fit=contain&g=north&bg=0000ff&fm=png")).await;
    assert_eq!(img.get_pixel(150, 290).0, [0, 0, 255, 255], "g=north puts all padding at the bottom");
    assert_ne!(img.get_pixel(150, 10).0, [0, 0, 255, 255]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_and_flip_move_pixels() {
    let s = start().await;
    let base = fetch_image(&s, &format!("{SRC}?w=300&fm=png")).await;
    let h = fetch_image(&s, &format!("{SRC}?w=300&flip=h&fm=png")).await;
    assert!(mean_abs_diff(&h, &image::imageops::flip_horizontal(&base)) < 1.0);
    let v = fetch_image(&s, &format!("{SRC}?w=300&flip=v&fm=png")).await;
    assert!(mean_abs_diff(&v, &image::imageops::flip_vertical(&base)) < 1.0);
    let r90 = fetch_image(&s, &format!("{SRC}?h=300&rot=90&fm=png")).await; // 200x300
    assert!(mean_abs_diff(&r90, &image::imageops::rotate90(&base)) < 1.0);
    let r180 = fetch_image(&s, &format!("{SRC}?w=300&rot=180&fm=png")).await;
    assert!(mean_abs_diff(&r180, &image::imageops::rotate180(&base)) < 1.0);
    assert!(mean_abs_diff(&r180, &base) > 10.0, "the comparison can fail");
}

#[tokio::test(flavor = "multi_thread")]
async fn blur_sharpen_quality_and_background() {
    let s = start().await;
    let base = fetch_image(&s, &format!("{SRC}?w=300&fm=png")).await;
    let blurred = fetch_image(&s, &format!("{SRC}?w=300&blur=3&fm=png")).await;
    let sharp = fetch_image(&s, &format!("{SRC}?w=300&sharpen=5&fm=png")).await;
    assert!(edge_energy(&blurred) * 2 < edge_energy(&base), "blur smooths");
    assert!(edge_energy(&sharp) > edge_energy(&base) * 11 / 10, "sharpen adds edge contrast");

    let size = |q: u8| {
        let s = &s;
        async move { get(s, &format!("{SRC}?w=600&q={q}&fm=jpeg")).await.bytes().await.unwrap().len() }
    };
    let (lo, hi) = (size(20).await, size(95).await);
    assert!(lo * 2 < hi, "q=20 ({lo} B) must be much smaller than q=95 ({hi} B)");

    // bg flattens alpha into JPEG: the transparent corners of this RGBA PNG become the bg colour
    let img = fetch_image(&s, "/webp/transparent.webp?fm=jpeg&bg=00ff00").await;
    let p = img.get_pixel(0, 0).0;
    assert!(p[1] > 200 && p[0] < 60 && p[2] < 60, "corner should be green, got {p:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn equivalent_urls_share_one_etag() {
    let s = start().await;
    let etag = |q: &'static str| {
        let s = &s;
        async move { get(s, &format!("{SRC}?{q}")).await.headers()["etag"].to_str().unwrap().to_string() }
    };
    let a = etag("w=300&h=200&fit=cover&fm=webp").await;
    assert_eq!(a, etag("fm=webp&fit=cover&height=200&width=300").await);
    assert_eq!(a, etag("w=150&dpr=2&h=100&fit=cover&format=webp&q=80&g=center").await);
    assert_ne!(a, etag("w=300&h=200&fit=cover&fm=webp&q=81").await);
    assert_ne!(a, etag("w=300&h=200&fit=cover&fm=avif").await);
}
