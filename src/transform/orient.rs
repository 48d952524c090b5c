//! Orientation as an element of the 8-element dihedral group: EXIF orientation, AVIF irot/imir and the
//! user's `rot`/`flip` all compose into one [`Orientation`], applied once to the (small) resized pixels.

/// A lossless orientation change: optionally transpose (swap axes), then mirror x and/or y.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Orientation {
    pub transpose: bool,
    pub flip_x: bool,
    pub flip_y: bool,
}

const ALL: [Orientation; 8] = {
    let mut all = [Orientation { transpose: false, flip_x: false, flip_y: false }; 8];
    let mut i = 0;
    while i < 8 {
        all[i] = Orientation { transpose: i & 4 != 0, flip_x: i & 2 != 0, flip_y: i & 1 != 0 };
        i += 1;
    }
    all
};

impl Orientation {
    pub const IDENTITY: Orientation = Orientation { transpose: false, flip_x: false, flip_y: false };

    /// From an EXIF `Orientation` tag value; anything outside 1..=8 is the identity.
    pub fn from_exif(value: u32) -> Self {
        let (transpose, flip_x, flip_y) = match value {
            2 => (false, true, false),
            3 => (false, true, true),
            4 => (false, false, true),
            5 => (true, false, false),
            6 => (true, true, false),
            7 => (true, true, true),
            8 => (true, false, true),
            _ => (false, false, false),
        };
        Orientation { transpose, flip_x, flip_y }
    }

    /// Clockwise rotation by 0, 90, 180 or 270 degrees.
    pub fn rotate_cw(degrees: u16) -> Self {
        match degrees % 360 {
            90 => Self::from_exif(6),
            180 => Self::from_exif(3),
            270 => Self::from_exif(8),
            _ => Self::IDENTITY,
        }
    }

    /// Mirror left-right (`h`) and/or top-bottom (`v`).
    pub fn mirror(h: bool, v: bool) -> Self {
        Orientation { transpose: false, flip_x: h, flip_y: v }
    }

    pub fn is_identity(self) -> bool {
        self == Self::IDENTITY
    }

    /// Dimensions after applying this orientation.
    pub fn dims(self, (w, h): (u32, u32)) -> (u32, u32) {
        if self.transpose {
            (h, w)
        } else {
            (w, h)
        }
    }

    /// Where pixel `(x, y)` of a `w`x`h` image lands.
    pub fn map_pixel(self, x: u32, y: u32, (w, h): (u32, u32)) -> (u32, u32) {
        let (u, v) = if self.transpose { (y, x) } else { (x, y) };
        let (ow, oh) = self.dims((w, h));
        (if self.flip_x { ow - 1 - u } else { u }, if self.flip_y { oh - 1 - v } else { v })
    }

    /// Where continuous point `(x, y)` of a `w`x`h` area lands (for crop rectangles and focal points).
    pub fn map_point(self, x: f64, y: f64, (w, h): (f64, f64)) -> (f64, f64) {
        let (u, v) = if self.transpose { (y, x) } else { (x, y) };
        let (ow, oh) = if self.transpose { (h, w) } else { (w, h) };
        (if self.flip_x { ow - u } else { u }, if self.flip_y { oh - v } else { v })
    }

    /// `self` first, then `next`.
    pub fn then(self, next: Orientation) -> Orientation {
        let dims = (3, 2);
        let probe = [(0, 0), (1, 0), (0, 1), (2, 1)];
        *ALL.iter()
            .find(|c| {
                probe.iter().all(|&(x, y)| {
                    let (u, v) = self.map_pixel(x, y, dims);
                    c.map_pixel(x, y, dims) == next.map_pixel(u, v, self.dims(dims))
                })
            })
            .expect("the dihedral group is closed")
    }

    pub fn inverse(self) -> Orientation {
        *ALL.iter().find(|c| self.then(**c).is_identity()).expect("every element has an inverse")
    }

    /// Apply to an interleaved 8-bit image with `channels` bytes per pixel.
    pub fn apply(self, data: &[u8], (w, h): (u32, u32), channels: usize) -> Vec<u8> {
        if self.is_identity() {
            return data.to_vec();
        }
        let (ow, _) = self.dims((w, h));
        let mut out = vec![0u8; data.len()];
        for y in 0..h {
            let row = &data[(y * w) as usize * channels..][..w as usize * channels];
            for x in 0..w {
                let (u, v) = self.map_pixel(x, y, (w, h));
                let dst = (v as usize * ow as usize + u as usize) * channels;
                out[dst..dst + channels].copy_from_slice(&row[x as usize * channels..][..channels]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exif_values_match_their_definitions() {
        // 3x2 image, pixel (0,0) is the top-left "marker".
        let d = (3, 2);
        assert_eq!(Orientation::from_exif(1).map_pixel(0, 0, d), (0, 0));
        assert_eq!(Orientation::from_exif(2).map_pixel(0, 0, d), (2, 0)); // mirror
        assert_eq!(Orientation::from_exif(3).map_pixel(0, 0, d), (2, 1)); // 180
        assert_eq!(Orientation::from_exif(4).map_pixel(0, 0, d), (0, 1)); // flip v
        assert_eq!(Orientation::from_exif(5).map_pixel(2, 0, d), (0, 2)); // transpose
        assert_eq!(Orientation::from_exif(6).map_pixel(0, 0, d), (1, 0)); // 90 cw: top-left -> top-right
        assert_eq!(Orientation::from_exif(7).map_pixel(0, 0, d), (1, 2)); // transverse
        assert_eq!(Orientation::from_exif(8).map_pixel(0, 0, d), (0, 2)); // 270 cw: top-left -> bottom-left
    }

    #[test]
    fn group_laws() {
        for a in ALL {
            assert!(a.then(a.inverse()).is_identity());
            assert!(a.inverse().then(a).is_identity());
            for b in ALL {
                for c in ALL {
                    assert_eq!(a.then(b).then(c), a.then(b.then(c)));
                }
            }
        }
        let r90 = Orientation::rotate_cw(90);
        assert_eq!(r90.then(r90), Orientation::rotate_cw(180));
        assert_eq!(r90.then(r90).then(r90), Orientation::rotate_cw(270));
        assert!(r90.then(Orientation::rotate_cw(270)).is_identity());
    }

    #[test]
    fn apply_matches_map_pixel() {
        let (w, h) = (3u32, 2u32);
        let data: Vec<u8> = (0..(w * h) as u8).collect();
        for o in ALL {
            let out = o.apply(&data, (w, h), 1);
            let (ow, _) = o.dims((w, h));
            for y in 0..h {
                for x in 0..w {
                    let (u, v) = o.map_pixel(x, y, (w, h));
                    assert_eq!(out[(v * ow + u) as usize], data[(y * w + x) as usize]);
                }
            }
        }
    }

    #[test]
    fn continuous_map_agrees_with_pixel_centres() {
        for o in ALL {
            let (u, v) = o.map_point(0.5, 0.5, (3.0, 2.0));
            let (pu, pv) = o.map_pixel(0, 0, (3, 2));
            assert_eq!((u, v), (pu as f64 + 0.5, pv as f64 + 0.5));
        }
    }
}
