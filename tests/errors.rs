//! Bad requests and bad sources: each gets a clear 4xx with a JSON body, never a 5xx or a hang.

use crate::util::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn bad_parameters_are_400_and_name_the_parameter() {
    let s = start().await;
    for (q, param) in [
        ("w=0", "w"),
        ("w=abc", "w"),
        ("w=9000", "w"),
        ("w=5000&dpr=2", "w"),
        ("h=-3", "h"),
        ("dpr=9", "dpr"),
        ("fit=squash", "fit"),
        ("g=up", "g"),
        ("q=0", "q"),
        ("fm=bmp", "fm"),
        ("bg=zzz", "bg"),
        ("rot=45", "rot"),
        ("flip=d", "flip"),
        ("blur=1000", "blur"),
        ("sharpen=x", "sharpen"),
        ("w=1&w=2", "w"),
    ] {
        let r = get(&s, &format!("/photos/jolla_3264x2448.jpg?{q}")).await;
        assert_eq!(r.status(), 400, "{q}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "bad_param", "{q}");
        assert!(body["error"].as_str().unwrap().contains(&format!("`{param}`")), "{q}: {body}");
    }
    let r = get(&s, "/photos/jolla_3264x2448.jpg?zoom=2").await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "unknown_param");
    assert!(body["error"].as_str().unwrap().contains("zoom"));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_objects_are_404_briefly_cacheable() {
    let s = start().await;
    let r = get(&s, "/photos/does-not-exist.jpg?w=100").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["cache-control"], "public, max-age=60");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    // a directory is not an object
    assert_eq!(get(&s, "/photos").await.status(), 404);
    // other methods
    let r = client().post(format!("{}/photos/jolla_3264x2448.jpg", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
}

#[tokio::test(flavor = "multi_thread")]
async fn traversal_never_leaves_the_origin() {
    // the origin is a folder with one image; a secret sits next to it
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(top.path().join("secret.txt"), "TOP SECRET").unwrap();
    std::fs::copy(corpus().join("png/pngsuite/basn2c08.png"), root.join("ok.png")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(top.path().join("secret.txt"), root.join("link.png")).unwrap();
    let s = start_with(&root, |_| {}).await;
    assert_eq!(raw_get(&s, "/ok.png?fm=png").await.0, 200);
    for target in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/..%5csecret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/./ok.png",
        "/ok.png%00.jpg",
        "/link.png",
    ] {
        let (status, body) = raw_get(&s, target).await;
        assert!(status == 400 || status == 404, "{target}: {status}");
        assert!(!body.contains("TOP SECRET"), "{target} leaked the file");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_content_is_415_and_real_images_under_wrong_names_are_served() {
    let s = start().await;
    for f in ["one-byte.jpg", "ole-document.jpg", "svg-document.png"] {
        let r = get(&s, &format!("/bad/wrong-content/{f}?w=50")).await;
        assert_eq!(r.status(), 415, "{f}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "unsupported_type");
    }
    for f in ["webp-named.jpg", "looks-like-svg.webp"] {
        let r = get(&s, &format!("/bad/wrong-content/{f}?w=50&fm=png")).await;
        assert_eq!(r.status(), 200, "{f} is a real WebP, sniffed by its bytes");
    }
    // HEIC is an image, but not one imgedge decodes
    assert_eq!(get(&s, "/heic/samplefilehub_640x426.heif?w=50").await.status(), 415);
}

/// Every broken, truncated and hostile file answers quickly and never with a 5xx. Files that libvips or
/// Pillow cannot open (per the corpus MANIFEST) must be refused with a 4xx; files both reference decoders
/// open may be served, and then must decode. Decompression bombs must be refused by the pixel limit.
#[tokio::test(flavor = "multi_thread")]
async fn the_whole_bad_corpus_is_refused_with_4xx() {
    let s = start().await;
    let manifest = std::fs::read_to_string(corpus().join("MANIFEST.tsv")).unwrap();
    let rows: Vec<(String, String)> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols.len() >= 7 && cols[0].starts_with("bad/")).then(|| (cols[0].to_string(), cols[6].to_string()))
        })
        .collect();
    assert!(rows.len() > 30, "the bad corpus is listed in the MANIFEST");
    let (mut refused, mut served) = (0, 0);
    let mut report = Vec::new();
    for (key, notes) in &rows {
        // One reviewed exception: in this Apple non-compliance sample the primary item is complete (libavif
        // decodes the whole 1024x768 photo; checked by eye) and only the second image is cut short.
        let reviewed_ok = key == "bad/truncated_elementary_stream.avif";
        let references_fail = notes.contains("FAIL") && !reviewed_ok;
        for q in ["w=300&fm=webp", "w=300&enlarge=1&fm=png"] {
            let t = Instant::now();
            let r = get(&s, &format!("/{key}?{q}")).await;
            let status = r.status().as_u16();
            let elapsed = t.elapsed();
            let body = r.bytes().await.unwrap_or_default();
            let problem = match status {
                400..=499 => {
                    refused += 1;
                    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    (json["code"].as_str().is_none()).then(|| "4xx without a JSON code".to_string())
                }
                200 if references_fail => Some("served a file libvips/Pillow reject".to_string()),
                200 => {
                    served += 1;
                    image::load_from_memory(&body).is_err().then(|| "served bytes that do not decode".to_string())
                }
                other => Some(format!("status {other}")),
            };
            let slow = elapsed > Duration::from_secs(10);
            if let Some(p) = problem.or(slow.then(|| format!("took {elapsed:?}"))) {
                report.push(format!("{key}?{q}: {p}"));
            }
        }
    }
    for bomb in
        ["16384x16384.png", "65536x65536_1bit.png", "20000x14000_grey.jpg", "9643x10328.jpg", "17000x17000.avif"]
    {
        let r = get(&s, &format!("/bad/bombs/{bomb}?w=100")).await;
        assert_eq!(r.status(), 422, "{bomb}");
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
    assert!(refused > 60, "most of the bad corpus is refused ({refused} refused, {served} served)");
    assert_eq!(get(&s, "/png/pngsuite/basn2c08.png?w=10").await.status(), 200, "server still healthy");
}
