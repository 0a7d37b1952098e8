//! Orientation, crop rectangles and what a crop strategy is told about the picture.

/// An EXIF orientation (TIFF tag 0x0112), 1 to 8.
///
/// It says how the stored pixels must be turned to be shown upright. Values 2, 4, 5 and 7
/// mirror the picture; 5 to 8 swap width and height.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Orientation(u8);

impl Orientation {
    /// Upright (EXIF value 1).
    pub const NORMAL: Self = Self(1);

    /// From an EXIF value; anything outside 1..=8 is treated as upright.
    pub fn from_exif(value: u32) -> Self {
        if (1..=8).contains(&value) {
            Self(value as u8)
        } else {
            Self(1)
        }
    }

    /// The EXIF value, 1..=8.
    pub fn exif_value(self) -> u8 {
        self.0.clamp(1, 8)
    }

    /// Whether showing the picture upright swaps its width and height.
    pub fn swaps_axes(self) -> bool {
        self.exif_value() >= 5
    }

    /// Maps a point of the upright (displayed) picture to the stored picture of size `w` x `h`,
    /// in continuous coordinates (pixel edges, so `0..=w`).
    fn display_to_stored(self, x: f64, y: f64, w: f64, h: f64) -> (f64, f64) {
        match self.exif_value() {
            2 => (w - x, y),
            3 => (w - x, h - y),
            4 => (x, h - y),
            5 => (y, x),
            6 => (y, h - x),
            7 => (w - y, h - x),
            8 => (w - y, x),
            _ => (x, y),
        }
    }

    /// Maps a rectangle of the upright picture to the stored picture of size `w` x `h`.
    pub(crate) fn rect_to_stored(self, r: CropRect, w: u32, h: u32) -> CropRect {
        let (w, h) = (w as f64, h as f64);
        let (ax, ay) = self.display_to_stored(r.x, r.y, w, h);
        let (bx, by) = self.display_to_stored(r.x + r.width, r.y + r.height, w, h);
        CropRect {
            x: ax.min(bx),
            y: ay.min(by),
            width: (ax - bx).abs(),
            height: (ay - by).abs(),
        }
    }

    /// Turns a small stored raster of `w` x `h` pixels with `ch` interleaved channels upright.
    /// Returns the new buffer and its (width, height).
    pub(crate) fn apply(
        self,
        src: &[u8],
        w: usize,
        h: usize,
        ch: usize,
    ) -> (Vec<u8>, usize, usize) {
        let o = self.exif_value();
        if o == 1 {
            return (src.to_vec(), w, h);
        }
        let (dw, dh) = if o >= 5 { (h, w) } else { (w, h) };
        let mut out = vec![0u8; dw * dh * ch];
        for dy in 0..dh {
            for dx in 0..dw {
                let (sx, sy) = match o {
                    2 => (w - 1 - dx, dy),
                    3 => (w - 1 - dx, h - 1 - dy),
                    4 => (dx, h - 1 - dy),
                    5 => (dy, dx),
                    6 => (dy, h - 1 - dx),
                    7 => (w - 1 - dy, h - 1 - dx),
                    _ => (w - 1 - dy, dx),
                };
                let s = (sy * w + sx) * ch;
                let d = (dy * dw + dx) * ch;
                out[d..d + ch].copy_from_slice(&src[s..s + ch]);
            }
        }
        (out, dw, dh)
    }
}

/// A rectangle in pixel coordinates of the upright picture; fractional edges are allowed.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CropRect {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

impl CropRect {
    /// Clamps the rectangle into a picture of `w` x `h` and keeps it at least one pixel wide.
    pub(crate) fn clamped(self, w: u32, h: u32) -> CropRect {
        let (w, h) = (w as f64, h as f64);
        let finite = |v: f64, d: f64| if v.is_finite() { v } else { d };
        let width = finite(self.width, w).clamp(1.0_f64.min(w), w);
        let height = finite(self.height, h).clamp(1.0_f64.min(h), h);
        let x = finite(self.x, 0.0).clamp(0.0, w - width);
        let y = finite(self.y, 0.0).clamp(0.0, h - height);
        CropRect {
            x,
            y,
            width,
            height,
        }
    }
}

/// What a [`CropStrategy`](super::CropStrategy) is told about the picture it crops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CropContext {
    /// Width of the upright picture (after EXIF orientation), in pixels.
    pub width: u32,
    /// Height of the upright picture.
    pub height: u32,
    /// Width of the rendition the crop will be resized to.
    pub target_width: u32,
    /// Height of the rendition.
    pub target_height: u32,
}

impl CropContext {
    /// Builds a context (mostly useful to test a strategy).
    pub fn new(width: u32, height: u32, target_width: u32, target_height: u32) -> Self {
        Self {
            width,
            height,
            target_width,
            target_height,
        }
    }

    /// The largest rectangle with the target's aspect ratio that fits the picture.
    pub fn largest_box(&self) -> (f64, f64) {
        let (w, h) = (self.width as f64, self.height as f64);
        let aspect = self.target_width.max(1) as f64 / self.target_height.max(1) as f64;
        if w / h > aspect {
            (h * aspect, h)
        } else {
            (w, w / aspect)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored 3x2 picture `abc/def` shown upright under each EXIF orientation, as the
    /// TIFF 6.0 / EXIF 2.3 definitions of tag 0x0112 describe it.
    #[test]
    fn apply_matches_the_exif_definitions() {
        let stored = b"abcdef";
        let expected: [(&[u8], usize); 8] = [
            (b"abcdef", 3), // 1: as stored
            (b"cbafed", 3), // 2: mirrored left-right
            (b"fedcba", 3), // 3: turned 180 degrees
            (b"defabc", 3), // 4: mirrored top-bottom
            (b"adbecf", 2), // 5: transposed
            (b"daebfc", 2), // 6: turned 90 degrees clockwise
            (b"fcebda", 2), // 7: transverse
            (b"cfbead", 2), // 8: turned 90 degrees counter-clockwise
        ];
        for (i, (want, want_w)) in expected.iter().enumerate() {
            let o = Orientation::from_exif(i as u32 + 1);
            let (got, w, h) = o.apply(stored, 3, 2, 1);
            assert_eq!((w, w * h), (*want_w, 6), "orientation {}", i + 1);
            assert_eq!(&got[..], *want, "orientation {}", i + 1);
        }
    }

    #[test]
    fn rect_mapping_matches_pixel_mapping() {
        // The top-left upright pixel of a 4x2 stored picture under each orientation.
        let (w, h) = (4u32, 2u32);
        for o in 1..=8u32 {
            let o = Orientation::from_exif(o);
            let r = CropRect {
                x: 0.0,
                y: 0.0,
                width: 1.0,
                height: 1.0,
            };
            let s = o.rect_to_stored(r, w, h);
            let marker: Vec<u8> = (0..(w * h) as u8).collect();
            let (m, _, _) = o.apply(&marker, w as usize, h as usize, 1);
            let v = m[0] as u32;
            assert_eq!(
                (s.x as u32, s.y as u32),
                (v % w, v / w),
                "orientation {o:?}"
            );
            assert_eq!((s.width, s.height), (1.0, 1.0));
        }
    }
}
