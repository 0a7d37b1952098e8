//! Whether two images show the same picture: a small perceptual signature that survives
//! re-encoding (Microsoft Graph re-encodes every upload, so its bytes never equal ours) and
//! rescaling (a 96-pixel copy of a 648-pixel photo), yet tells another crop of the same
//! photo or another photo apart.
//!
//! The signature is the image, upright, reduced to a [`GRID`] x [`GRID`] grid of luma values
//! (a Lanczos reduction, which averages over each cell at these ratios). Two signatures are
//! compared by the Pearson correlation of their grids and of the grids' gradients (the
//! differences between neighbouring cells); the [similarity](Signature::similarity) is the
//! smaller of the two. Correlation ignores brightness and contrast shifts (a re-encoder's
//! colour handling); the gradients make a shift of the picture count (smooth portraits
//! correlate well with a shifted copy of themselves, their edges do not).

use super::{color, resize, CropRect, NormalizeError, Normalizer, Prepared};

/// The side of the grid a [`Signature`] keeps.
pub const GRID: usize = 32;

/// From this [similarity](Signature::similarity) up, two images show the same picture.
///
/// Measured on the real photographs of the project's corpus (`tests/likeness_corpus.rs`,
/// 21 JPEGs): a rendition re-encoded at JPEG quality 60 to 95 scores at least 0.999, a
/// 96-pixel copy of a 648-pixel rendition (as it is, or scaled back up) at least 0.992;
/// the same photo cropped with the square shifted by 10 or 15% of its side scores at most
/// 0.6, except a smooth grey storm sky (0.946 at 10%), and two different photos at most
/// 0.25. Portraits, with a face's edges, sit far from the threshold.
pub const SAME_PICTURE: f64 = 0.97;

/// A small perceptual summary of an image, for [`Signature::similarity`].
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// The image's width, upright, in pixels.
    pub width: u32,
    /// The image's height, upright, in pixels.
    pub height: u32,
    grid: Vec<f32>,
}

impl Signature {
    /// How alike the two pictures are, from -1 to 1 (1: the same picture); see
    /// [`SAME_PICTURE`]. A flat image (one colour) is like another flat image only.
    pub fn similarity(&self, other: &Signature) -> f64 {
        let a = &self.grid;
        let b = &other.grid;
        let level = correlation(a, b);
        let (ga, gb) = (gradients(a), gradients(b));
        let edges = correlation(&ga, &gb);
        level.min(edges)
    }

    /// Whether the two images show the same picture ([`similarity`](Self::similarity) at
    /// least [`SAME_PICTURE`]).
    pub fn same_picture(&self, other: &Signature) -> bool {
        self.similarity(other) >= SAME_PICTURE
    }
}

/// Horizontal then vertical differences between neighbouring cells.
fn gradients(g: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(2 * GRID * (GRID - 1));
    for y in 0..GRID {
        for x in 1..GRID {
            out.push(g[y * GRID + x] - g[y * GRID + x - 1]);
        }
    }
    for y in 1..GRID {
        for x in 0..GRID {
            out.push(g[y * GRID + x] - g[(y - 1) * GRID + x]);
        }
    }
    out
}

/// Pearson's correlation; two flat series are alike (1), a flat and a varied one are not (0).
fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let mean = |v: &[f32]| v[..n].iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (a[i] as f64 - ma, b[i] as f64 - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    // Below a tenth of a grey level of spread, an image is flat.
    let flat = 1e-2 * n as f64;
    match (saa < flat, sbb < flat) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        (false, false) => sab / (saa.sqrt() * sbb.sqrt()),
    }
}

impl Normalizer {
    /// The perceptual [`Signature`] of an image (any format the normalizer reads, the
    /// [`Limits`](super::Limits) applied), to tell whether two images show the same
    /// picture whatever their encoding and size.
    ///
    /// ```
    /// use userphoto::normalize::{testimage, Normalizer, Profile};
    /// let n = Normalizer::new();
    /// let photo = testimage::gradient_jpeg(800, 600);
    /// let graph = n.normalize(&photo, &Profile::graph())?;
    /// let large = n.normalize(&photo, &Profile::ad_large())?;
    /// let (a, b) = (n.signature(&graph.bytes)?, n.signature(&large.bytes)?);
    /// assert!(a.same_picture(&b));
    /// assert_eq!((a.width, a.height), (648, 648));
    /// // Another picture is not.
    /// let other = n.normalize(&testimage::gradient_jpeg(600, 900), &Profile::graph())?;
    /// assert!(!a.same_picture(&n.signature(&other.bytes)?));
    /// # Ok::<(), userphoto::normalize::NormalizeError>(())
    /// ```
    pub fn signature(&self, bytes: &[u8]) -> Result<Signature, NormalizeError> {
        let decoded = match self.prepare(bytes)? {
            Prepared::Other(format) => self.decode_other(bytes, format)?,
            Prepared::Jpeg { info, orientation } => {
                let d = self.analysis_denom(&info);
                self.decode_jpeg_at(bytes, &info, orientation, d)?
            }
        };
        let (width, height) = if decoded.orientation.swaps_axes() {
            (decoded.full_height, decoded.full_width)
        } else {
            (decoded.full_width, decoded.full_height)
        };
        let whole = CropRect {
            x: 0.0,
            y: 0.0,
            width: decoded.raster.width as f64,
            height: decoded.raster.height as f64,
        };
        let side = GRID as u32;
        let small = resize::crop_resize(&decoded.raster, whole, side, side)?;
        let rgb = color::to_srgb(&small, decoded.icc.as_deref(), [255, 255, 255]);
        let (rgb, _, _) = decoded.orientation.apply(&rgb, GRID, GRID, 3);
        let grid = rgb
            .chunks_exact(3)
            .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
            .collect();
        Ok(Signature {
            width,
            height,
            grid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{testimage, Profile};

    #[test]
    fn the_same_picture_at_two_sizes_is_alike() {
        let n = Normalizer::new();
        let photo = testimage::gradient_jpeg(900, 700);
        let big = n.normalize(&photo, &Profile::graph()).unwrap();
        let small = n.normalize(&photo, &Profile::ad_thumbnail()).unwrap();
        let a = n.signature(&big.bytes).unwrap();
        let b = n.signature(&small.bytes).unwrap();
        assert_eq!((a.width, a.height), (648, 648));
        assert!(a.similarity(&b) > 0.95, "{}", a.similarity(&b));
    }

    #[test]
    fn flat_images_are_alike_only_to_flat_images() {
        let flat = vec![128.0f32; GRID * GRID];
        let varied: Vec<f32> = (0..GRID * GRID).map(|i| (i % 7) as f32 * 10.0).collect();
        assert_eq!(correlation(&flat, &flat), 1.0);
        assert_eq!(correlation(&flat, &varied), 0.0);
        assert!((correlation(&varied, &varied) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let n = Normalizer::new();
        assert!(n.signature(b"not an image").is_err());
        assert!(n.signature(&[0xFF, 0xD8, 0xFF]).is_err());
    }
}
