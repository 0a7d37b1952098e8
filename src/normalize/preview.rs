//! Small upright copies of photos for people to look at (the review page): the source photo
//! beside its rendition, and the photo a directory holds today. A preview is not a
//! rendition: no crop, no byte budget, the whole picture at most `side` pixels on its longer
//! side, as a baseline JPEG with no metadata.

use bytes::Bytes;

use super::{
    codec, format, Analysis, Decoded, NormalizeError, Normalizer, Prepared, Profile, Renditions,
};

/// The JPEG quality of previews: they are looked at small, next to the rendition.
const PREVIEW_QUALITY: u8 = 82;

/// A small upright copy of a photo, for people to look at.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Preview {
    /// A baseline JPEG, sRGB, no metadata.
    pub jpeg: Bytes,
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
    /// The photo's upright size in pixels: the coordinates of a rendition's
    /// [`CropReport`](super::CropReport) (its square and faces).
    pub upright_width: u32,
    /// The photo's upright height in pixels.
    pub upright_height: u32,
}

impl std::fmt::Debug for Preview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preview")
            .field("bytes", &self.jpeg.len())
            .field("width", &self.width)
            .field("height", &self.height)
            .field("upright_width", &self.upright_width)
            .field("upright_height", &self.upright_height)
            .finish()
    }
}

impl Normalizer {
    /// A preview of `bytes`: the whole photo, upright (EXIF orientation applied), in sRGB,
    /// at most `side` pixels on its longer side (never enlarged). A JPEG is decoded at the
    /// coarsest DCT scale that still gives `side` pixels, so a preview of a large photo
    /// costs a fraction of a full decode. The normalizer's [`Limits`](super::Limits) apply.
    ///
    /// ```
    /// use userphoto::normalize::{testimage, Normalizer};
    /// let photo = testimage::gradient_jpeg(1200, 800);
    /// let p = Normalizer::new().preview(&photo, 160)?;
    /// assert_eq!((p.width, p.height), (160, 107));
    /// assert_eq!((p.upright_width, p.upright_height), (1200, 800));
    /// # Ok::<(), userphoto::normalize::NormalizeError>(())
    /// ```
    pub fn preview(&self, bytes: &[u8], side: u32) -> Result<Preview, NormalizeError> {
        let side = side.max(1);
        let decoded = match self.prepare(bytes)? {
            Prepared::Other(format) => self.decode_other(bytes, format)?,
            Prepared::Jpeg { info, orientation } => {
                let d = preview_denom(&info, side);
                self.decode_jpeg_at(bytes, &info, orientation, d)?
            }
        };
        self.preview_of(&decoded, &Analysis::default(), side)
            .ok_or_else(|| NormalizeError::Config("the preview could not be made".into()))
    }

    /// [`normalize_many`](Self::normalize_many), and a [`preview`](Self::preview) of the
    /// photo (`None` when it could not be made) from what was decoded for the renditions: it
    /// costs a resize and a small encode, not another decode. The renditions are the same
    /// bytes `normalize_many` makes.
    pub fn normalize_with_preview(
        &self,
        bytes: &[u8],
        profiles: &[Profile],
        side: u32,
    ) -> Result<(Renditions, Option<Preview>), NormalizeError> {
        self.normalize_inner(bytes, profiles, Some(side.max(1)))
    }

    /// The preview from a decoded picture: the crop's look at the photo when there is one
    /// (already small, upright and sRGB), else the decoded raster.
    pub(crate) fn preview_of(&self, d: &Decoded, a: &Analysis, side: u32) -> Option<Preview> {
        let upright = if d.orientation.swaps_axes() {
            (d.full_height, d.full_width)
        } else {
            (d.full_width, d.full_height)
        };
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (rgb, w, h) = match &a.picture {
                // The crop's copy, when it is at least as large as the preview.
                Some((rgb, w, h)) if (*w).max(*h) >= side.min(upright.0.max(upright.1)) => {
                    shrink(rgb, *w, *h, side)?
                }
                _ => Self::small_upright(d, upright, side)?,
            };
            let jpeg = codec::encode_rgb(&rgb, w, h, PREVIEW_QUALITY).ok()?;
            Some(Preview {
                jpeg: Bytes::from(jpeg),
                width: w,
                height: h,
                upright_width: upright.0,
                upright_height: upright.1,
            })
        }));
        made.ok().flatten()
    }
}

/// `rgb` (`w` x `h`) at most `side` pixels on its longer side.
fn shrink(rgb: &[u8], w: u32, h: u32, side: u32) -> Option<(Vec<u8>, u32, u32)> {
    let long = w.max(h);
    if long <= side {
        return Some((rgb.to_vec(), w, h));
    }
    let s = side as f64 / long as f64;
    let nw = ((w as f64 * s).round() as u32).max(1);
    let nh = ((h as f64 * s).round() as u32).max(1);
    let raster = codec::Raster {
        width: w,
        height: h,
        layout: codec::Layout::Rgb,
        data: rgb.to_vec(),
    };
    let whole = super::CropRect {
        x: 0.0,
        y: 0.0,
        width: w as f64,
        height: h as f64,
    };
    let small = super::resize::crop_resize(&raster, whole, nw, nh).ok()?;
    Some((small.data, nw, nh))
}

/// The coarsest DCT scale that leaves `side` pixels on the longer side.
fn preview_denom(info: &format::JpegInfo<'_>, side: u32) -> u32 {
    if !codec::DECODER_SCALES {
        return 1;
    }
    let long = info.width.max(info.height);
    codec::SCALE_DENOMS
        .into_iter()
        .find(|&d| long.div_ceil(d) >= side)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::super::testimage;
    use super::*;

    #[test]
    fn a_preview_is_upright_small_and_a_jpeg() {
        let n = Normalizer::new();
        let p = n.preview(&testimage::gradient_jpeg(900, 300), 120).unwrap();
        assert_eq!((p.width, p.height), (120, 40));
        assert_eq!((p.upright_width, p.upright_height), (900, 300));
        assert_eq!(&p.jpeg[..2], &[0xFF, 0xD8]);
        // Never enlarged.
        let small = n.preview(&testimage::gradient_jpeg(50, 40), 120).unwrap();
        assert_eq!((small.width, small.height), (50, 40));
    }

    #[test]
    fn renditions_with_a_preview_are_the_renditions_without() {
        let n = Normalizer::new();
        let photo = testimage::gradient_jpeg(1600, 1200);
        let profiles = [Profile::ad_thumbnail(), Profile::graph()];
        let plain = n.normalize_many(&photo, &profiles).unwrap();
        let (with, preview) = n.normalize_with_preview(&photo, &profiles, 192).unwrap();
        let hashes = |v: &Renditions| {
            v.iter()
                .map(|r| r.as_ref().unwrap().sha256)
                .collect::<Vec<_>>()
        };
        assert_eq!(hashes(&plain), hashes(&with));
        let preview = preview.unwrap();
        assert_eq!((preview.width, preview.height), (192, 144));
        assert_eq!(
            (preview.upright_width, preview.upright_height),
            (1600, 1200)
        );
    }

    #[test]
    fn a_non_image_has_no_preview_but_an_error() {
        assert!(Normalizer::new().preview(b"not an image", 100).is_err());
    }
}
