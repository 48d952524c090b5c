//! Pixel effects after resizing: padding, alpha flattening, blur and sharpen.

use super::Pixels;
use crate::url::Rgba;

impl Pixels {
    /// Whether any pixel is not fully opaque.
    pub fn has_transparency(&self) -> bool {
        self.channels == 4 && self.data.chunks_exact(4).any(|p| p[3] != 255)
    }

    /// Drop a fully opaque alpha channel (smaller and faster to encode).
    pub fn drop_opaque_alpha(self) -> Pixels {
        if self.channels != 4 || self.has_transparency() {
            return self;
        }
        let data = self.data.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        Pixels { channels: 3, data, ..self }
    }

    fn into_rgba(self) -> Pixels {
        if self.channels == 4 {
            return self;
        }
        let data = self.data.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
        Pixels { channels: 4, data, ..self }
    }

    /// Composite over an opaque `bg`, giving RGB.
    pub fn flatten(self, bg: Rgba) -> Pixels {
        if self.channels == 3 {
            return self;
        }
        let [br, bgc, bb, _] = bg.0;
        let blend = |c: u8, b: u8, a: u32| ((c as u32 * a + b as u32 * (255 - a) + 127) / 255) as u8;
        let data = self
            .data
            .chunks_exact(4)
            .flat_map(|p| {
                let a = p[3] as u32;
                [blend(p[0], br, a), blend(p[1], bgc, a), blend(p[2], bb, a)]
            })
            .collect();
        Pixels { channels: 3, data, ..self }
    }

    /// Place this image at `offset` on a `canvas` filled with `bg`.
    pub fn pad(self, canvas: (u32, u32), offset: (u32, u32), bg: Rgba) -> Pixels {
        let src = if bg.0[3] == 255 { self } else { self.into_rgba() };
        let ch = src.channels;
        let fill: &[u8] = if ch == 4 { &bg.0 } else { &bg.0[..3] };
        let mut data: Vec<u8> = fill.iter().copied().cycle().take(canvas.0 as usize * canvas.1 as usize * ch).collect();
        let row = src.width as usize * ch;
        for y in 0..src.height as usize {
            let dy = y + offset.1 as usize;
            if dy >= canvas.1 as usize {
                break;
            }
            let dst = (dy * canvas.0 as usize + offset.0 as usize) * ch;
            let n = row.min((canvas.0 - offset.0) as usize * ch);
            data[dst..dst + n].copy_from_slice(&src.data[y * row..y * row + n]);
        }
        Pixels { width: canvas.0, height: canvas.1, channels: ch, data }
    }

    /// Gaussian-like blur (three box passes) with standard deviation `sigma`.
    pub fn blur(self, sigma: f32) -> Pixels {
        let (w, h, ch) = (self.width, self.height, self.channels);
        let data = if ch == 4 {
            let img = image::RgbaImage::from_raw(w, h, self.data).expect("buffer sized for image");
            image::imageops::fast_blur(&img, sigma).into_raw()
        } else {
            let img = image::RgbImage::from_raw(w, h, self.data).expect("buffer sized for image");
            image::imageops::fast_blur(&img, sigma).into_raw()
        };
        Pixels { width: w, height: h, channels: ch, data }
    }

    /// Unsharp mask: `out = in + amount * (in - blur(in))`, amount = `strength / 2`, radius 1 px.
    pub fn sharpen(self, strength: f32) -> Pixels {
        let amount = strength / 2.0;
        let blurred = Pixels { data: self.data.clone(), ..self }.blur(1.0);
        let ch = self.channels;
        let mut data = self.data;
        for (i, (v, b)) in data.iter_mut().zip(blurred.data.iter()).enumerate() {
            if ch == 4 && i % 4 == 3 {
                continue; // leave alpha alone
            }
            let s = *v as f32 + amount * (*v as f32 - *b as f32);
            *v = s.round().clamp(0.0, 255.0) as u8;
        }
        Pixels { data, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, px: &[u8]) -> Pixels {
        Pixels {
            width: w,
            height: h,
            channels: px.len(),
            data: px.iter().copied().cycle().take((w * h) as usize * px.len()).collect(),
        }
    }

    #[test]
    fn pad_places_the_image() {
        let p = solid(2, 1, &[9, 9, 9]).pad((4, 3), (1, 1), Rgba([1, 2, 3, 255]));
        assert_eq!((p.width, p.height, p.channels), (4, 3, 3));
        assert_eq!(&p.data[0..3], &[1, 2, 3]);
        assert_eq!(&p.data[(4 + 1) * 3..(4 + 1) * 3 + 6], &[9, 9, 9, 9, 9, 9]);
        let t = solid(1, 1, &[9, 9, 9]).pad((2, 1), (0, 0), Rgba::TRANSPARENT);
        assert_eq!(t.data, vec![9, 9, 9, 255, 0, 0, 0, 0]);
    }

    #[test]
    fn flatten_blends_on_background() {
        let p = solid(1, 1, &[255, 0, 0, 128]).flatten(Rgba::WHITE);
        assert_eq!(p.data, vec![255, 127, 127]);
        assert!(!solid(1, 1, &[1, 2, 3, 255]).has_transparency());
        assert_eq!(solid(2, 2, &[1, 2, 3, 255]).drop_opaque_alpha().channels, 3);
    }

    #[test]
    fn blur_and_sharpen_change_edges_only() {
        let mut edge = solid(8, 8, &[0, 0, 0]);
        for y in 0..8 {
            for x in 4..8 {
                let i = (y * 8 + x) * 3;
                edge.data[i..i + 3].copy_from_slice(&[200, 200, 200]);
            }
        }
        let blurred = Pixels { data: edge.data.clone(), ..edge }.blur(1.5);
        assert!(blurred.data[(4 * 8 + 3) * 3] > 0, "blur spreads light into the dark side");
        let sharp = edge.sharpen(4.0);
        assert!(sharp.data[(4 * 8 + 4) * 3] > 200, "sharpen overshoots the bright edge");
        let flat = solid(4, 4, &[100, 100, 100]).sharpen(10.0);
        assert!(flat.data.iter().all(|&v| v == 100), "flat areas are unchanged");
    }
}
