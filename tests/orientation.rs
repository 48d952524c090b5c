//! EXIF orientation 0-8 (and AVIF irot) applied before anything else, exact under shrink-on-load.

use crate::util::*;

#[tokio::test(flavor = "multi_thread")]
async fn all_eight_exif_orientations_look_like_orientation_1() {
    let s = start().await;
    for kind in ["Landscape", "Portrait"] {
        // w=120 decodes at 1/8 (shrink-on-load), w=600 at 1/2, cover+focal point crops
        for q in ["w=120", "w=600", "w=100&h=100&fit=cover&g=fp:0.7,0.4", "w=200&h=80&fit=cover&g=south"] {
            let want = fetch_image(&s, &format!("/orientation/{kind}_1.jpg?{q}&fm=png")).await;
            for n in [0, 2, 3, 4, 5, 6, 7, 8] {
                let got = fetch_image(&s, &format!("/orientation/{kind}_{n}.jpg?{q}&fm=png")).await;
                assert_eq!(got.dimensions(), want.dimensions(), "{kind}_{n} {q}");
                let d = mean_abs_diff(&got, &want);
                assert!(d < 6.0, "{kind}_{n} {q}: mean difference {d:.2} from {kind}_1");
            }
        }
        // the check can fail: a mirrored image is far from the original
        let want = fetch_image(&s, &format!("/orientation/{kind}_1.jpg?w=120&fm=png")).await;
        let flipped = fetch_image(&s, &format!("/orientation/{kind}_1.jpg?w=120&flip=h&fm=png")).await;
        assert!(mean_abs_diff(&flipped, &want) > 15.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn real_camera_orientation_and_avif_irot() {
    let s = start().await;
    let img = fetch_image(&s, "/photos/canon-sx60_2048x1536_orient6.jpg?w=300&fm=png").await;
    assert_eq!(img.dimensions(), (300, 400), "orientation 6 makes a 2048x1536 landscape file portrait");
    // kimono_rotate90.avif stores the picture on its side with an irot box; upright it equals kimono.png
    let avif = fetch_image(&s, "/avif/kimono_rotate90.avif?w=200&fm=png").await;
    let png = fetch_image(&s, "/png/kimono_722x1024_rgb.png?w=200&fm=png").await;
    let d = mean_abs_diff(&avif, &png);
    assert!(d < 8.0, "irot applied: difference {d:.2}");
}

#[tokio::test(flavor = "multi_thread")]
async fn avif_output_has_orientation_in_the_pixels() {
    let s = start().await;
    // AVIF viewers ignore EXIF, so the rotation must be baked in
    let avif = fetch_image(&s, "/orientation/Landscape_6.jpg?w=200&fm=avif").await;
    let png = fetch_image(&s, "/orientation/Landscape_1.jpg?w=200&fm=png").await;
    assert_eq!(avif.dimensions(), (200, 133));
    assert!(mean_abs_diff(&avif, &png) < 8.0);
}
