//! Geometry as a pure function: source dimensions + requested box → crop, resize and canvas.
//!
//! Everything here is in the *final* orientation (after EXIF auto-orientation and the user's `rot`/`flip`),
//! so `w`, `h` and gravity mean what the viewer sees. The pipeline maps the crop back to the decoded
//! pixels itself; this module never sees an image.

use crate::url::{Fit, Gravity};

/// The geometric part of a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    pub gravity: Gravity,
    pub enlarge: bool,
}

/// Output caps (config `limits.max_output_side` / `limits.max_output_pixels`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputCap {
    pub max_side: u32,
    pub max_pixels: u64,
}

/// A rectangle in continuous source coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// What to do with the source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Region of the source that ends up in the output.
    pub crop: Rect,
    /// Size the region is resized to.
    pub resize: (u32, u32),
    /// Size of the output; larger than `resize` only when padding (`fit=contain`).
    pub canvas: (u32, u32),
    /// Top-left of the resized region on the canvas.
    pub offset: (u32, u32),
}

impl Plan {
    pub fn pads(&self) -> bool {
        self.canvas != self.resize
    }
    /// Largest integer factor by which the crop can be shrunk and still cover the resize target
    /// (what JPEG DCT scaling and WebP scaled decoding may use), capped at 8.
    pub fn shrink_on_load(&self) -> u32 {
        let ratio = (self.crop.w / self.resize.0 as f64).min(self.crop.h / self.resize.1 as f64);
        [8, 4, 2].into_iter().find(|&d| ratio >= d as f64).unwrap_or(1)
    }
}

fn px(v: f64) -> u32 {
    v.round().max(1.0) as u32
}

/// Compute the plan for a `src` (width, height) image.
pub fn plan(src: (u32, u32), g: &Geometry, cap: OutputCap) -> Plan {
    let (sw, sh) = (src.0.max(1) as f64, src.1.max(1) as f64);
    let full = Rect { x: 0.0, y: 0.0, w: sw, h: sh };
    let limit = |s: f64| if g.enlarge { s } else { s.min(1.0) };
    let uniform = |s: f64| (px(sw * s), px(sh * s));

    let mut p = match (g.width, g.height) {
        (None, None) => Plan { crop: full, resize: src, canvas: src, offset: (0, 0) },
        (Some(tw), None) => {
            let r = uniform(limit(tw as f64 / sw));
            Plan { crop: full, resize: r, canvas: r, offset: (0, 0) }
        }
        (None, Some(th)) => {
            let r = uniform(limit(th as f64 / sh));
            Plan { crop: full, resize: r, canvas: r, offset: (0, 0) }
        }
        (Some(tw), Some(th)) => {
            let (tw, th) = (tw as f64, th as f64);
            let (sx, sy) = (tw / sw, th / sh);
            match g.fit {
                Fit::Inside => {
                    let r = uniform(limit(sx.min(sy)));
                    Plan { crop: full, resize: r, canvas: r, offset: (0, 0) }
                }
                Fit::Outside => {
                    let r = uniform(limit(sx.max(sy)));
                    Plan { crop: full, resize: r, canvas: r, offset: (0, 0) }
                }
                Fit::Contain => {
                    let r = uniform(limit(sx.min(sy)));
                    let canvas = (px(tw), px(th));
                    let (ax, ay) = g.gravity.anchor();
                    let off = |free: u32, a: f64| (free as f64 * a).round() as u32;
                    let offset = (off(canvas.0.saturating_sub(r.0), ax), off(canvas.1.saturating_sub(r.1), ay));
                    Plan { crop: full, resize: r, canvas, offset }
                }
                Fit::Fill => {
                    let k = if g.enlarge { 1.0 } else { 1f64.min(sw / tw).min(sh / th) };
                    let r = (px(tw * k), px(th * k));
                    Plan { crop: full, resize: r, canvas: r, offset: (0, 0) }
                }
                Fit::Cover => {
                    let s = sx.max(sy);
                    // Without enlargement, a box bigger than the source shrinks (aspect kept) until it fits.
                    let k = if s > 1.0 && !g.enlarge { 1.0 / s } else { 1.0 };
                    let r = (px(tw * k), px(th * k));
                    let (cw, ch) = ((tw / s).min(sw), (th / s).min(sh));
                    let crop = place(cw, ch, sw, sh, g.gravity);
                    Plan { crop, resize: r, canvas: r, offset: (0, 0) }
                }
            }
        }
    };

    // Output caps: shrink everything uniformly (the 3x62728 JPEG must not become 300x6272800).
    let (cw, ch) = (p.canvas.0 as f64, p.canvas.1 as f64);
    let c = (cap.max_side as f64 / cw).min(cap.max_side as f64 / ch).min((cap.max_pixels as f64 / (cw * ch)).sqrt());
    if c < 1.0 {
        let s = |(a, b): (u32, u32)| (px(a as f64 * c), px(b as f64 * c));
        let off = |(a, b): (u32, u32)| ((a as f64 * c).round() as u32, (b as f64 * c).round() as u32);
        p.resize = s(p.resize);
        p.canvas = s(p.canvas);
        p.offset = off(p.offset);
        p.canvas = (p.canvas.0.max(p.resize.0 + p.offset.0), p.canvas.1.max(p.resize.1 + p.offset.1));
    }
    p
}

/// Place a `cw`x`ch` crop inside `sw`x`sh` by gravity; a focal point centres the crop on itself as far
/// as the edges allow.
fn place(cw: f64, ch: f64, sw: f64, sh: f64, gravity: Gravity) -> Rect {
    let (x, y) = match gravity {
        Gravity::Focal(fx, fy) => ((fx * sw - cw / 2.0).clamp(0.0, sw - cw), (fy * sh - ch / 2.0).clamp(0.0, sh - ch)),
        other => {
            let (ax, ay) = other.anchor();
            ((sw - cw) * ax, (sh - ch) * ay)
        }
    };
    Rect { x, y, w: cw, h: ch }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: OutputCap = OutputCap { max_side: 8192, max_pixels: 50_000_000 };

    fn g(w: Option<u32>, h: Option<u32>, fit: Fit) -> Geometry {
        Geometry { width: w, height: h, fit, gravity: Gravity::Center, enlarge: false }
    }

    #[test]
    fn width_only_keeps_aspect() {
        let p = plan((4000, 3000), &g(Some(800), None, Fit::Inside), CAP);
        assert_eq!((p.resize, p.canvas, p.crop.w, p.crop.h), ((800, 600), (800, 600), 4000.0, 3000.0));
        let p = plan((4000, 3000), &g(None, Some(300), Fit::Cover), CAP);
        assert_eq!(p.canvas, (400, 300));
    }

    #[test]
    fn no_box_no_resize() {
        let p = plan((640, 480), &g(None, None, Fit::Inside), CAP);
        assert_eq!((p.resize, p.canvas), ((640, 480), (640, 480)));
        assert_eq!(p.shrink_on_load(), 1);
    }

    #[test]
    fn inside_outside_fill() {
        let p = plan((4000, 3000), &g(Some(800), Some(800), Fit::Inside), CAP);
        assert_eq!(p.canvas, (800, 600));
        let p = plan((4000, 3000), &g(Some(800), Some(800), Fit::Outside), CAP);
        assert_eq!(p.canvas, (1067, 800));
        let p = plan((4000, 3000), &g(Some(300), Some(500), Fit::Fill), CAP);
        assert_eq!((p.canvas, p.crop), ((300, 500), Rect { x: 0.0, y: 0.0, w: 4000.0, h: 3000.0 }));
    }

    #[test]
    fn contain_pads_and_places_by_gravity() {
        let p = plan((4000, 3000), &g(Some(800), Some(800), Fit::Contain), CAP);
        assert_eq!((p.resize, p.canvas, p.offset), ((800, 600), (800, 800), (0, 100)));
        assert!(p.pads());
        let mut geo = g(Some(800), Some(800), Fit::Contain);
        geo.gravity = Gravity::South;
        assert_eq!(plan((4000, 3000), &geo, CAP).offset, (0, 200));
        // padding is not enlargement: a small source stays 1:1 inside a big canvas
        let p = plan((100, 50), &g(Some(400), Some(400), Fit::Contain), CAP);
        assert_eq!((p.resize, p.canvas, p.offset), ((100, 50), (400, 400), (150, 175)));
    }

    #[test]
    fn cover_crops_by_gravity_and_focal_point() {
        let p = plan((4000, 3000), &g(Some(600), Some(600), Fit::Cover), CAP);
        assert_eq!(p.canvas, (600, 600));
        assert_eq!(p.crop, Rect { x: 500.0, y: 0.0, w: 3000.0, h: 3000.0 });
        let mut geo = g(Some(600), Some(600), Fit::Cover);
        geo.gravity = Gravity::West;
        assert_eq!(plan((4000, 3000), &geo, CAP).crop.x, 0.0);
        geo.gravity = Gravity::East;
        assert_eq!(plan((4000, 3000), &geo, CAP).crop.x, 1000.0);
        geo.gravity = Gravity::Focal(0.3, 0.5);
        assert_eq!(plan((4000, 3000), &geo, CAP).crop.x, 0.0); // 1200 - 1500 clamps to the edge
        geo.gravity = Gravity::Focal(0.6, 0.5);
        assert_eq!(plan((4000, 3000), &geo, CAP).crop.x, 900.0);
        let mut geo = g(Some(600), Some(300), Fit::Cover);
        geo.gravity = Gravity::South;
        let p = plan((4000, 3000), &geo, CAP);
        assert_eq!(p.crop, Rect { x: 0.0, y: 1000.0, w: 4000.0, h: 2000.0 });
    }

    #[test]
    fn never_enlarges_unless_asked() {
        let p = plan((200, 100), &g(Some(800), None, Fit::Inside), CAP);
        assert_eq!(p.canvas, (200, 100));
        let mut geo = g(Some(800), None, Fit::Inside);
        geo.enlarge = true;
        assert_eq!(plan((200, 100), &geo, CAP).canvas, (800, 400));
        // cover without enlarge keeps the requested aspect at source resolution
        let p = plan((200, 100), &g(Some(400), Some(400), Fit::Cover), CAP);
        assert_eq!((p.canvas, p.crop), ((100, 100), Rect { x: 50.0, y: 0.0, w: 100.0, h: 100.0 }));
        let p = plan((200, 100), &g(Some(400), Some(100), Fit::Fill), CAP);
        assert_eq!(p.canvas, (200, 50));
    }

    #[test]
    fn output_cap_bounds_hostile_shapes() {
        // the 658-byte JPEG that declares 3x62728: with or without enlargement, never past 8192 a side
        let p = plan((3, 62728), &g(Some(300), None, Fit::Inside), CAP);
        assert!(p.canvas.0 <= 8192 && p.canvas.1 <= 8192, "{p:?}");
        let mut geo = g(Some(300), None, Fit::Inside);
        geo.enlarge = true;
        let p = plan((3, 62728), &geo, CAP);
        assert!(p.canvas.1 <= 8192 && (p.canvas.0 as u64 * p.canvas.1 as u64) <= 50_000_000, "{p:?}");
        let small = OutputCap { max_side: 8192, max_pixels: 1_000_000 };
        let p = plan((8000, 8000), &g(None, None, Fit::Inside), small);
        assert!(p.canvas.0 as u64 * p.canvas.1 as u64 <= 1_000_000, "{p:?}");
    }

    #[test]
    fn shrink_on_load_leaves_at_least_the_target() {
        let p = plan((4032, 3024), &g(Some(800), None, Fit::Inside), CAP);
        assert_eq!(p.shrink_on_load(), 4); // 1008x756 >= 800x600
        let p = plan((4032, 3024), &g(Some(400), None, Fit::Inside), CAP);
        assert_eq!(p.shrink_on_load(), 8);
        let p = plan((4032, 3024), &g(Some(2100), None, Fit::Inside), CAP);
        assert_eq!(p.shrink_on_load(), 1);
        let p = plan((4000, 3000), &g(Some(300), Some(300), Fit::Cover), CAP);
        assert_eq!(p.shrink_on_load(), 8); // crop 3000x3000 / 8 = 375 >= 300
    }
}
