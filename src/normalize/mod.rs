//! The normalization core: any common image in, one deterministic, size-bounded baseline
//! JPEG out per [`Profile`].
//!
//! ```
//! use userphoto::normalize::{Normalizer, Profile};
//! # let photo = userphoto::normalize::testimage::gradient_jpeg(1200, 900);
//! let n = Normalizer::new();
//! let thumb = n.normalize(&photo, &Profile::ad_thumbnail())?;
//! assert_eq!((thumb.width, thumb.height), (96, 96));
//! assert!(thumb.bytes.len() <= 10_000);
//! # Ok::<(), userphoto::normalize::NormalizeError>(())
//! ```
//!
//! The steps, in order:
//!
//! 1. **Guards** ([`Limits`]): input size, then width, height and pixel count read from the
//!    header, before any pixel buffer exists.
//! 2. **Format** from the bytes ([`ImageFormat::detect`]): JPEG, PNG, GIF (first frame), BMP,
//!    TIFF, WebP; HEIC and others give [`NormalizeError::Unsupported`] naming the format.
//! 3. **Decode**. JPEGs decode at the smallest DCT scale (1/8, 1/4, 1/2) that still leaves the
//!    resize filter at least 2x to work with, so a 24 MP photo becomes a few hundred pixels
//!    wide inside the decoder. Progressive JPEGs go through the crate's own progressive
//!    decoder, which holds one MCU row of coefficients, not the whole image's, and reads
//!    only what the scale needs (only the DC scans at 1/8), so memory and time follow the
//!    output, not the input.
//! 4. **Crop** by a [`CropStrategy`] in upright coordinates (EXIF orientation applied, all
//!    eight values), mapped back onto the stored pixels, then **Lanczos3 resize**. The
//!    default, [`FaceCrop`], looks once per photo at a small upright copy (a JPEG decoded at
//!    the coarsest DCT scale that leaves it 256 pixels on its longer side) with the face
//!    detector shipped in the crate, and puts a head-and-shoulders square around the main
//!    face; [`AttentionCrop`] when there is none. Every [`Rendition`] reports its crop
//!    ([`CropReport`]).
//! 5. **Colour** to 8-bit sRGB on the small result: ICC profiles converted, CMYK/YCCK
//!    converted, alpha composited on the profile's background.
//! 6. **Orientation** applied to the small result.
//! 7. **Encode** a baseline JFIF JPEG (4:2:0, optimized Huffman tables, no EXIF, XMP, ICC or
//!    comments) at the highest quality that fits the budget, stepping down in size if even
//!    the lowest quality does not fit.
//!
//! Everything is deterministic: the same bytes and profile give the same JPEG bytes on
//! every run, with any number of threads.

mod attention;
mod batch;
mod codec;
mod color;
mod crop;
mod decode;
mod error;
#[cfg(feature = "face")]
mod face;
mod format;
mod geometry;
mod likeness;
mod preview;
mod profile;
mod progressive;
mod resize;
mod search;
#[doc(hidden)]
pub mod testimage;

use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

pub use batch::{BatchItem, BatchOptions, BatchProgress, Input};
pub use crop::{
    AttentionCrop, CenterCrop, CropMethod, CropMode, CropReport, CropStrategy, CropWarning, Face,
    FaceCrop, FocusCrop, Picture, PixelRect, Placement, RegionCrop, Scene, SceneNeeds,
};
pub use error::{NormalizeError, NormalizeErrorKind};
pub use format::ImageFormat;
pub use geometry::{CropContext, CropRect, Orientation};
pub use likeness::{Signature, GRID as SIGNATURE_GRID, SAME_PICTURE};
pub use preview::Preview;
pub use profile::{BuiltinProfile, Limits, Profile};

use codec::{Layout, Raster};
use format::JpegCoding;
use search::Search;

use decode::{
    check_jpeg_coding, contain_panics, cut_columns, detect, image_error, log_fallback,
    native_progressive, orientation_from_image, other_decoder,
};

/// One rendition per profile asked for, in that order, or why that profile's could not be
/// made ([`Normalizer::normalize_many`]).
pub type Renditions = Vec<Result<Rendition, NormalizeError>>;

/// One normalized photo for one profile.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendition {
    /// The profile's name.
    pub profile: String,
    /// The JPEG file.
    pub bytes: Bytes,
    /// SHA-256 of `bytes`.
    pub sha256: [u8; 32],
    /// Width in pixels (the profile's, unless the size had to step down).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The JPEG quality used.
    pub quality: u8,
    /// How many JPEG encodes the byte-budget search took, over all sizes tried.
    pub encodes: u32,
    /// How the photo was cropped: the rule, the square in upright source pixels, the faces
    /// found and the warnings.
    pub crop: CropReport,
}

impl Rendition {
    /// The SHA-256 as lower-case hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for Rendition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendition")
            .field("profile", &self.profile)
            .field("bytes", &self.bytes.len())
            .field("sha256", &self.sha256_hex())
            .field("width", &self.width)
            .field("height", &self.height)
            .field("quality", &self.quality)
            .field("encodes", &self.encodes)
            .field("crop", &self.crop)
            .finish()
    }
}

/// What [`Normalizer::probe`] reads from a header without decoding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ImageInfo {
    /// The format, from the bytes.
    pub format: ImageFormat,
    /// Stored width (before orientation).
    pub width: u32,
    /// Stored height.
    pub height: u32,
    /// The EXIF orientation (JPEG only; 1 elsewhere until decode).
    pub orientation: Orientation,
    /// Whether the JPEG is progressive.
    pub progressive: bool,
}

/// Turns images into renditions. Cheap to clone; safe to share between threads.
#[derive(Debug, Clone)]
#[must_use]
pub struct Normalizer {
    limits: Limits,
    crop: Arc<dyn CropStrategy>,
    shared_decode: bool,
    progressive: ProgressiveDecoder,
    simd: bool,
}

/// Which decoder reads a progressive JPEG that is decoded at a reduced DCT scale (1/2, 1/4
/// or 1/8), chosen with [`Normalizer::with_progressive_decoder`]. Both give the same pixels,
/// bit for bit; they differ in memory and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProgressiveDecoder {
    /// The crate's own scale-aware decoder (the default): it holds one MCU row of
    /// coefficients and reads only what the scale needs (only the DC scans at 1/8). A file
    /// outside its scope, or one it finds irregular, goes to the JPEG codec as with
    /// [`Libjpeg`](Self::Libjpeg).
    #[default]
    Native,
    /// The JPEG codec the crate is built with (libjpeg with the `mozjpeg` feature), which
    /// holds the whole image's coefficients: for benchmarks and comparisons.
    Libjpeg,
}

/// What the crop strategy is shown, made once per photo.
#[derive(Default)]
pub(crate) struct Analysis {
    /// The small upright sRGB copy and its size.
    picture: Option<(Vec<u8>, u32, u32)>,
    /// Upright source size.
    upright: (u32, u32),
    faces: Vec<Face>,
}

impl Analysis {
    fn scene(&self) -> Scene<'_> {
        let picture = self
            .picture
            .as_ref()
            .map(|(rgb, w, h)| Picture::new(rgb, *w, *h, self.upright.0, self.upright.1));
        Scene::new(picture, &self.faces)
    }
}

/// The longest side of the upright copy a crop strategy looks at (the face detector's
/// input: faces down to about 8 px in it, 3 % of the photo's longer side, are found; a
/// larger copy finds smaller faces at a quadratic cost in time).
pub(crate) const ANALYSIS_SIDE: u32 = 256;

/// A header that passed the guards.
enum Prepared<'a> {
    Jpeg {
        info: format::JpegInfo<'a>,
        orientation: Orientation,
    },
    Other(ImageFormat),
}

impl Default for Normalizer {
    fn default() -> Self {
        Self::new()
    }
}

/// A decoded picture, possibly at a reduced DCT scale, with what is needed to finish it.
pub(crate) struct Decoded {
    raster: Raster,
    /// Full stored size (the raster may be smaller).
    full_width: u32,
    full_height: u32,
    /// The width of the whole (possibly DCT-scaled) picture, and where the raster's first
    /// column lies in it: a JPEG decoded for one crop keeps only the columns the crop's
    /// resize reads (`x0 > 0` or `raster.width < scaled_width`).
    scaled_width: u32,
    x0: u32,
    orientation: Orientation,
    icc: Option<Vec<u8>>,
}

impl Decoded {
    /// Whether the raster holds only some columns of the picture.
    fn is_window(&self) -> bool {
        self.x0 > 0 || self.raster.width < self.scaled_width
    }
}

/// The `whole` decode of a render that cannot need it (its decode is never a window).
fn unreachable_window() -> Result<Decoded, NormalizeError> {
    Err(NormalizeError::Config(
        "internal: a whole decode asked for a picture decoded whole".into(),
    ))
}

impl Normalizer {
    /// A normalizer with default [`Limits`] and the default crop, [`CropMode::Face`]
    /// ([`FaceCrop`] with the `face` feature, [`AttentionCrop`] without it).
    pub fn new() -> Self {
        Self {
            limits: Limits::default(),
            crop: CropMode::Face.strategy(),
            shared_decode: false,
            simd: true,
            progressive: ProgressiveDecoder::Native,
        }
    }

    /// Which decoder reads progressive JPEGs decoded at 1/2, 1/4 or 1/8 (default
    /// [`ProgressiveDecoder::Native`]). The renditions are the same either way.
    ///
    /// ```
    /// use userphoto::normalize::{Normalizer, ProgressiveDecoder};
    /// let n = Normalizer::new().with_progressive_decoder(ProgressiveDecoder::Libjpeg);
    /// # let _ = n;
    /// ```
    pub fn with_progressive_decoder(mut self, decoder: ProgressiveDecoder) -> Self {
        self.progressive = decoder;
        self
    }

    /// Decode a JPEG once, at the finest scale any requested profile needs, for all profiles
    /// of a [`normalize_many`](Self::normalize_many) call. Faster when a thumbnail and a large
    /// rendition are made together from a big baseline JPEG, but the thumbnail's bytes then
    /// depend on the set of profiles requested (off by default).
    pub fn with_shared_decode(mut self, shared: bool) -> Self {
        self.shared_decode = shared;
        self
    }

    /// Replaces the input limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Replaces the crop strategy.
    pub fn with_crop_strategy(mut self, crop: impl CropStrategy + 'static) -> Self {
        self.crop = Arc::new(crop);
        self
    }

    /// One of the built-in crop strategies by name.
    pub fn with_crop(mut self, mode: CropMode) -> Self {
        self.crop = mode.strategy();
        self
    }

    /// Whether the face detector may use the CPU's vector instructions (on by default).
    /// The results are the same bits either way; for the tests that check exactly that.
    #[doc(hidden)]
    pub fn with_simd(mut self, on: bool) -> Self {
        self.simd = on;
        self
    }

    /// A stable key for everything that decides how renditions look, beyond the profile
    /// and the codec: the crop strategy's [`CropStrategy::cache_key`] and the decode
    /// sharing. The sync engine records renditions under it, so changing the crop makes
    /// every rendition again and keeping it does not.
    pub fn cache_key(&self) -> String {
        format!(
            "crop={};shared_decode={}",
            self.crop.cache_key(),
            self.shared_decode
        )
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The name of the JPEG codec compiled in.
    pub fn codec_name() -> &'static str {
        codec::CODEC_NAME
    }

    /// Reads format, size and orientation from the header, applying the limits.
    pub fn probe(&self, bytes: &[u8]) -> Result<ImageInfo, NormalizeError> {
        match self.prepare(bytes)? {
            Prepared::Jpeg { info, orientation } => Ok(ImageInfo {
                format: ImageFormat::Jpeg,
                width: info.width,
                height: info.height,
                orientation,
                progressive: matches!(
                    info.coding,
                    Some(JpegCoding::Progressive | JpegCoding::Arithmetic { progressive: true })
                ),
            }),
            #[cfg(feature = "heic")]
            Prepared::Other(ImageFormat::Heic) => {
                // libheif parses the container only; no pixel is decoded.
                let (width, height) = contain_panics(ImageFormat::Heic, || {
                    codec::heic::dimensions(bytes, &self.limits)
                })?;
                Ok(ImageInfo {
                    format: ImageFormat::Heic,
                    width,
                    height,
                    orientation: Orientation::NORMAL,
                    progressive: false,
                })
            }
            Prepared::Other(format) => {
                let (width, height) = contain_panics(format, || {
                    let dec = other_decoder(bytes, format, &self.limits)?;
                    Ok(image::ImageDecoder::dimensions(&dec))
                })?;
                Ok(ImageInfo {
                    format,
                    width,
                    height,
                    orientation: Orientation::NORMAL,
                    progressive: false,
                })
            }
        }
    }

    /// Normalizes one image for one profile.
    pub fn normalize(&self, bytes: &[u8], profile: &Profile) -> Result<Rendition, NormalizeError> {
        let mut all = self.normalize_many(bytes, std::slice::from_ref(profile))?;
        all.pop()
            .unwrap_or_else(|| Err(NormalizeError::Config("no profile".into())))
    }

    /// Normalizes one image for several profiles, decoding it once per DCT scale needed.
    ///
    /// Profiles that want the same JPEG DCT scale share one decode (AD large and Graph at
    /// 648 px always do); a 96 px thumbnail of a large photo wants a coarser scale than a 648
    /// px rendition and gets its own decode, because renditions must not depend on which
    /// other profiles were requested: a sync that adds a Graph sink must not see every AD
    /// thumbnail change. For a progressive photo that extra decode reads only the DC scans
    /// (a few percent of the work); for a baseline one it costs about one more entropy decode.
    /// [`Normalizer::with_shared_decode`] trades that guarantee for one decode in all cases.
    ///
    /// The outer error is for the image (unsupported, corrupt, over the limits); the inner
    /// results are per profile, in the order given (one profile may not fit its budget while
    /// the others do).
    pub fn normalize_many(
        &self,
        bytes: &[u8],
        profiles: &[Profile],
    ) -> Result<Vec<Result<Rendition, NormalizeError>>, NormalizeError> {
        self.normalize_inner(bytes, profiles, None).map(|(r, _)| r)
    }

    /// [`normalize_many`](Self::normalize_many), with the photo's preview (see
    /// [`Preview`]) at most `side` pixels on its longer side. The preview comes from a
    /// picture the normalizer decoded anyway (the crop's look at the photo, or a profile's
    /// reduced-scale decode), so it costs a resize and a small encode, not a decode.
    pub(crate) fn normalize_inner(
        &self,
        bytes: &[u8],
        profiles: &[Profile],
        preview: Option<u32>,
    ) -> Result<(Renditions, Option<Preview>), NormalizeError> {
        for p in profiles {
            p.validate()?;
        }
        let needs = self.crop.needs();
        let analyse = needs.picture || needs.faces;
        match self.prepare(bytes)? {
            Prepared::Other(format) => {
                let decoded = self.decode_other(bytes, format)?;
                let analysis = if analyse {
                    self.analyse(&decoded)
                } else {
                    Analysis::default()
                };
                let scene = analysis.scene();
                let out = profiles
                    .iter()
                    .map(|p| self.render(&decoded, p, &scene, &|| unreachable_window()))
                    .collect();
                let pv = preview.and_then(|side| self.preview_of(&decoded, &analysis, side));
                Ok((out, pv))
            }
            Prepared::Jpeg { info, orientation } => {
                // One decode per distinct scale, so that a profile's rendition never depends
                // on which other profiles were asked for at the same time. The crop's look
                // at the photo has a scale of its own (from the photo's size alone), shared
                // with the profiles that want the same scale.
                let mut decodes: Vec<(u32, Decoded)> = Vec::new();
                let analysis = if analyse {
                    let d = self.analysis_denom(&info);
                    decodes.push((d, self.decode_jpeg_at(bytes, &info, orientation, d)?));
                    self.analyse(&decodes[0].1)
                } else {
                    Analysis::default()
                };
                let scene = analysis.scene();
                let mut denoms: Vec<u32> = profiles
                    .iter()
                    .map(|p| self.jpeg_denom(&info, orientation, p, &scene))
                    .collect();
                if self.shared_decode {
                    let finest = denoms.iter().copied().min().unwrap_or(1);
                    denoms.iter_mut().for_each(|d| *d = finest);
                }
                // Per profile, the columns its crop's resize reads: a progressive file is
                // decoded for those alone (one window per scale: the union of the windows of
                // the profiles decoded at that scale).
                let windows: Vec<Option<(u32, u32)>> = profiles
                    .iter()
                    .zip(&denoms)
                    .map(|(p, &d)| self.jpeg_window(&info, orientation, p, &scene, d))
                    .collect();
                let mut out = Vec::with_capacity(profiles.len());
                for (p, &d) in profiles.iter().zip(&denoms) {
                    if !decodes.iter().any(|(x, _)| *x == d) {
                        let window = denoms
                            .iter()
                            .zip(&windows)
                            .filter(|(x, _)| **x == d)
                            .map(|(_, w)| *w)
                            .reduce(|a, b| match (a, b) {
                                (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
                                _ => None,
                            })
                            .flatten();
                        decodes.push((
                            d,
                            self.decode_jpeg_window(bytes, &info, orientation, d, window)?,
                        ));
                    }
                    let decoded = &decodes
                        .iter()
                        .find(|(x, _)| *x == d)
                        .expect("decoded above")
                        .1;
                    let whole = || self.decode_jpeg_at(bytes, &info, orientation, d);
                    out.push(self.render(decoded, p, &scene, &whole));
                }
                // The preview from the smallest whole picture decoded (the crop's look, or a
                // profile's decode when that is all there is).
                let pv = match preview {
                    Some(side) => match decodes
                        .iter()
                        .filter(|(_, x)| !x.is_window())
                        .max_by_key(|(d, _)| *d)
                    {
                        Some((_, d)) => self.preview_of(d, &analysis, side),
                        None => {
                            let d = self.analysis_denom(&info);
                            let d = self.decode_jpeg_at(bytes, &info, orientation, d)?;
                            self.preview_of(&d, &analysis, side)
                        }
                    },
                    None => None,
                };
                Ok((out, pv))
            }
        }
    }

    /// The coarsest DCT scale that leaves the crop's look at the photo [`ANALYSIS_SIDE`]
    /// pixels on the longer side (or the whole photo when it is smaller).
    fn analysis_denom(&self, info: &format::JpegInfo<'_>) -> u32 {
        if !codec::DECODER_SCALES {
            return 1;
        }
        let long = info.width.max(info.height);
        codec::SCALE_DENOMS
            .into_iter()
            .find(|&d| long.div_ceil(d) >= ANALYSIS_SIDE)
            .unwrap_or(1)
    }

    /// The small upright copy and the faces in it. Nothing here fails a photo: a picture
    /// that cannot be made (or a detector panic, which would be a bug) leaves the strategy
    /// without it, and it falls back to its next rule.
    fn analyse(&self, d: &Decoded) -> Analysis {
        let upright = if d.orientation.swaps_axes() {
            (d.full_height, d.full_width)
        } else {
            (d.full_width, d.full_height)
        };
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.analyse_inner(d, upright)
        }));
        match made {
            Ok(Some(a)) => a,
            Ok(None) => Analysis {
                upright,
                ..Analysis::default()
            },
            Err(_) => {
                tracing::warn!(
                    target: "userphoto::normalize",
                    "the crop analysis failed (a bug); the photo is cropped without it"
                );
                Analysis {
                    upright,
                    ..Analysis::default()
                }
            }
        }
    }

    /// The whole of `d`, upright, in sRGB, at most `side` pixels on the longer side: the
    /// crop's look at the photo, and the review's preview.
    pub(crate) fn small_upright(
        d: &Decoded,
        upright: (u32, u32),
        side: u32,
    ) -> Option<(Vec<u8>, u32, u32)> {
        let (uw, uh) = upright;
        let long = uw.max(uh).max(1) as f64;
        let s = (side as f64 / long).min(1.0);
        let pw = ((uw as f64 * s).round() as u32).clamp(1, uw.max(1));
        let ph = ((uh as f64 * s).round() as u32).clamp(1, uh.max(1));
        let (sw, sh) = if d.orientation.swaps_axes() {
            (ph, pw)
        } else {
            (pw, ph)
        };
        let whole = CropRect {
            x: 0.0,
            y: 0.0,
            width: d.raster.width as f64,
            height: d.raster.height as f64,
        };
        let small = resize::crop_resize(&d.raster, whole, sw, sh).ok()?;
        let rgb = color::to_srgb(&small, d.icc.as_deref(), [255, 255, 255]);
        let (rgb, w, h) = d.orientation.apply(&rgb, sw as usize, sh as usize, 3);
        Some((rgb, w as u32, h as u32))
    }

    fn analyse_inner(&self, d: &Decoded, upright: (u32, u32)) -> Option<Analysis> {
        let (rgb, w, h) = Self::small_upright(d, upright, ANALYSIS_SIDE)?;
        let faces = if self.crop.needs().faces {
            self.faces(&rgb, w as usize, h as usize, upright)
        } else {
            Vec::new()
        };
        Some(Analysis {
            picture: Some((rgb, w, h)),
            upright,
            faces,
        })
    }

    /// The detector's faces in upright source pixels, snapped to 1/128 of the longer side,
    /// largest first.
    #[cfg(feature = "face")]
    fn faces(&self, rgb: &[u8], w: usize, h: usize, upright: (u32, u32)) -> Vec<Face> {
        let (uw, uh) = (upright.0 as f64, upright.1 as f64);
        let (fx, fy) = (uw / w.max(1) as f64, uh / h.max(1) as f64);
        let grid = uw.max(uh) / 128.0;
        let snap = |v: f64| (v / grid).round() * grid;
        let mut faces: Vec<Face> = face::detect(rgb, w, h, self.simd)
            .into_iter()
            .filter_map(|d| {
                let x0 = snap(d.x as f64 * fx).clamp(0.0, uw);
                let y0 = snap(d.y as f64 * fy).clamp(0.0, uh);
                let x1 = snap((d.x + d.w) as f64 * fx).clamp(0.0, uw);
                let y1 = snap((d.y + d.h) as f64 * fy).clamp(0.0, uh);
                let (x0, y0) = (x0.round() as u32, y0.round() as u32);
                let (x1, y1) = (x1.round() as u32, y1.round() as u32);
                (x1 > x0 && y1 > y0).then(|| Face {
                    x: x0,
                    y: y0,
                    width: x1 - x0,
                    height: y1 - y0,
                    score: (d.score * 1000.0).round() / 1000.0,
                })
            })
            .collect();
        faces.sort_by(|a, b| {
            (b.width as u64 * b.height as u64)
                .cmp(&(a.width as u64 * a.height as u64))
                .then(a.y.cmp(&b.y))
                .then(a.x.cmp(&b.x))
                .then(b.score.total_cmp(&a.score))
        });
        faces
    }

    #[cfg(not(feature = "face"))]
    fn faces(&self, _rgb: &[u8], _w: usize, _h: usize, _upright: (u32, u32)) -> Vec<Face> {
        Vec::new()
    }

    /// The crop for a profile: the rectangle in stored full-size coordinates, the stored-
    /// orientation target size, and the report (upright, whole pixels).
    fn plan_crop(
        &self,
        full_w: u32,
        full_h: u32,
        o: Orientation,
        tw: u32,
        th: u32,
        scene: &Scene<'_>,
    ) -> (CropRect, u32, u32, CropReport) {
        let (dw, dh) = if o.swaps_axes() {
            (full_h, full_w)
        } else {
            (full_w, full_h)
        };
        let ctx = CropContext::new(dw, dh, tw, th);
        let placement = self.crop.place(scene, &ctx);
        let rect = placement.rect.clamped(dw, dh);
        // Whole pixels: what is reported is exactly what is cropped.
        let px = PixelRect {
            x: rect.x.round() as u32,
            y: rect.y.round() as u32,
            width: (rect.width.round() as u32).max(1),
            height: (rect.height.round() as u32).max(1),
        };
        let px = PixelRect {
            width: px.width.min(dw.saturating_sub(px.x)).max(1),
            height: px.height.min(dh.saturating_sub(px.y)).max(1),
            ..px
        };
        let rect = CropRect {
            x: px.x as f64,
            y: px.y as f64,
            width: px.width as f64,
            height: px.height as f64,
        }
        .clamped(dw, dh);
        let mut warnings = placement.warnings;
        if (px.width as u64) * 2 < tw as u64 || (px.height as u64) * 2 < th as u64 {
            warnings.push(CropWarning::LowResolution);
        }
        warnings.sort();
        warnings.dedup();
        let report = CropReport {
            strategy: placement.method,
            rect: px,
            faces: scene.faces.to_vec(),
            warnings,
        };
        let stored = o
            .rect_to_stored(rect, full_w, full_h)
            .clamped(full_w, full_h);
        let (sw, sh) = if o.swaps_axes() { (th, tw) } else { (tw, th) };
        (stored, sw, sh, report)
    }

    /// Reads the header and applies the guards; nothing is decoded yet.
    fn prepare<'a>(&self, bytes: &'a [u8]) -> Result<Prepared<'a>, NormalizeError> {
        self.limits.check_input_len(bytes.len() as u64)?;
        let format = detect(bytes)?;
        if format != ImageFormat::Jpeg {
            return Ok(Prepared::Other(format));
        }
        let info = format::walk_jpeg(bytes, false)?;
        check_jpeg_coding(&info)?;
        if info.width == 0 || info.height == 0 {
            return Err(NormalizeError::corrupt(
                "JPEG",
                "zero width or height in the frame header",
            ));
        }
        self.limits.check_dimensions(info.width, info.height)?;
        let orientation =
            Orientation::from_exif(info.exif.map(format::exif_orientation).unwrap_or(1) as u32);
        Ok(Prepared::Jpeg { info, orientation })
    }

    /// The coarsest DCT scale (as 1/denom) that leaves Lanczos at least 2x for this profile.
    fn jpeg_denom(
        &self,
        info: &format::JpegInfo<'_>,
        orientation: Orientation,
        p: &Profile,
        scene: &Scene<'_>,
    ) -> u32 {
        if !codec::DECODER_SCALES {
            return 1;
        }
        let (rect, sw, sh, _) = self.plan_crop(
            info.width,
            info.height,
            orientation,
            p.width,
            p.height,
            scene,
        );
        let fits = |d: u32| {
            rect.width / d as f64 >= 2.0 * sw as f64 && rect.height / d as f64 >= 2.0 * sh as f64
        };
        codec::SCALE_DENOMS
            .into_iter()
            .find(|&d| fits(d))
            .unwrap_or(1)
    }

    fn decode_jpeg_at(
        &self,
        bytes: &[u8],
        info: &format::JpegInfo<'_>,
        orientation: Orientation,
        denom: u32,
    ) -> Result<Decoded, NormalizeError> {
        self.decode_jpeg_window(bytes, info, orientation, denom, None)
    }

    /// The columns `[x0, x1)` of the picture at 1/`d` that the resize of `p`'s crop reads
    /// (the crop, Lanczos3's reach on either side at the smallest size the byte-budget
    /// search may step down to, and a few pixels more), when the JPEG is progressive and
    /// the window leaves out at least a fifth of the width; else `None` (the whole width).
    ///
    /// Only progressive files: the crate's decoder then skips the IDCTs and the raster of
    /// the other columns (a 6912x2400 panorama decoded at full scale for `graph` holds a
    /// third of its 50 MB raster), and a file left to libjpeg is cut to the same window, so
    /// the renditions are the same whichever decoder reads it.
    fn jpeg_window(
        &self,
        info: &format::JpegInfo<'_>,
        orientation: Orientation,
        p: &Profile,
        scene: &Scene<'_>,
        d: u32,
    ) -> Option<(u32, u32)> {
        if !codec::DECODER_SCALES || !matches!(info.coding, Some(JpegCoding::Progressive)) {
            return None;
        }
        let (rect, sw, _, _) = self.plan_crop(
            info.width,
            info.height,
            orientation,
            p.width,
            p.height,
            scene,
        );
        let scaled_w = info.width.div_ceil(d);
        let fx = scaled_w as f64 / info.width as f64;
        let (x, w) = (rect.x * fx, rect.width * fx);
        // The byte-budget search steps down to the profile's smallest width.
        let min_sw = ((sw as u64 * p.min_width.max(1) as u64) / p.width.max(1) as u64).max(1);
        let reach = 3.0 * (w / min_sw as f64).max(1.0) + 8.0;
        let x0 = (x - reach).floor().max(0.0) as u32;
        let x1 = ((x + w + reach).ceil() as u32).min(scaled_w);
        (x0 < x1 && ((x1 - x0) as u64) * 5 <= (scaled_w as u64) * 4).then_some((x0, x1))
    }

    /// [`decode_jpeg_at`](Self::decode_jpeg_at), keeping only columns `cols` of the picture
    /// at that scale (see [`jpeg_window`](Self::jpeg_window)).
    fn decode_jpeg_window(
        &self,
        bytes: &[u8],
        info: &format::JpegInfo<'_>,
        orientation: Orientation,
        denom: u32,
        cols: Option<(u32, u32)>,
    ) -> Result<Decoded, NormalizeError> {
        let (w, h) = (info.width, info.height);
        let channels = info.components.max(1) as u64;
        let scaled = (w as u64).div_ceil(denom as u64) * (h as u64).div_ceil(denom as u64);
        self.limits.check_decoded(scaled * channels)?;
        let progressive = matches!(info.coding, Some(JpegCoding::Progressive));
        // The scale-aware progressive decoder (at full scale too when the codec scales, so
        // that its output is libjpeg's); `None` (out of its scope, anything irregular in the
        // file, or a panic in it) leaves the file to libjpeg exactly as before.
        let native_ok = self.progressive == ProgressiveDecoder::Native;
        let native = if progressive && native_ok && (denom > 1 || codec::DECODER_SCALES) {
            native_progressive(bytes, info, denom, cols)
        } else {
            if native_ok
                && matches!(
                    info.coding,
                    Some(JpegCoding::Arithmetic { progressive: true })
                )
            {
                log_fallback(info, bytes.len(), denom, "arithmetic coding");
            }
            None
        };
        let scaled_width = if codec::DECODER_SCALES {
            w.div_ceil(denom)
        } else {
            w
        };
        let raster = if let Some(r) = native {
            r
        } else if progressive && denom == 8 {
            let full = format::walk_jpeg(bytes, true)?;
            let r = match format::dc_only_stream(bytes, &full) {
                Some(dc) => codec::decode_jpeg(&dc, info, denom)?,
                None => codec::decode_jpeg(bytes, info, denom)?,
            };
            cut_columns(r, cols)
        } else {
            cut_columns(codec::decode_jpeg(bytes, info, denom)?, cols)
        };
        let x0 = match cols {
            Some((a, b)) if a < b.min(scaled_width) => a,
            _ => 0,
        };
        Ok(Decoded {
            raster,
            full_width: w,
            full_height: h,
            scaled_width,
            x0,
            orientation,
            icc: info.icc.clone(),
        })
    }

    fn decode_other(&self, bytes: &[u8], format: ImageFormat) -> Result<Decoded, NormalizeError> {
        contain_panics(format, || self.decode_other_inner(bytes, format))
    }

    fn decode_other_inner(
        &self,
        bytes: &[u8],
        format: ImageFormat,
    ) -> Result<Decoded, NormalizeError> {
        use image::ImageDecoder;
        #[cfg(feature = "heic")]
        if format == ImageFormat::Heic {
            let (raster, icc) = codec::heic::decode(bytes, &self.limits)?;
            return Ok(Decoded {
                full_width: raster.width,
                full_height: raster.height,
                scaled_width: raster.width,
                x0: 0,
                raster,
                orientation: Orientation::NORMAL,
                icc,
            });
        }
        let mut dec = other_decoder(bytes, format, &self.limits)?;
        let (w, h) = dec.dimensions();
        if w == 0 || h == 0 {
            return Err(NormalizeError::corrupt(
                format.name(),
                "zero width or height",
            ));
        }
        let orientation = dec
            .orientation()
            .ok()
            .and_then(orientation_from_image)
            .unwrap_or(Orientation::NORMAL);
        let icc = dec.icc_profile().ok().flatten();
        let img = image::DynamicImage::from_decoder(dec)
            .map_err(|e| image_error(format, e, &self.limits))?;
        use image::ColorType as C;
        let (layout, data) = match img.color() {
            C::L8 | C::L16 => (Layout::Gray, img.into_luma8().into_raw()),
            C::Rgb8 | C::Rgb16 | C::Rgb32F => (Layout::Rgb, img.into_rgb8().into_raw()),
            _ => (Layout::Rgba, img.into_rgba8().into_raw()),
        };
        Ok(Decoded {
            raster: Raster {
                width: w,
                height: h,
                layout,
                data,
            },
            full_width: w,
            full_height: h,
            scaled_width: w,
            x0: 0,
            orientation,
            icc,
        })
    }

    /// `whole`: the same picture decoded whole, for a crop the window of a decode made for
    /// one crop does not cover (a smaller size of the byte-budget search whose crop moved).
    fn render(
        &self,
        d: &Decoded,
        p: &Profile,
        scene: &Scene<'_>,
        whole: &dyn Fn() -> Result<Decoded, NormalizeError>,
    ) -> Result<Rendition, NormalizeError> {
        let (mut tw, mut th) = (p.width, p.height);
        let mut best: Option<(usize, u8, u32, u32)> = None;
        let mut total_encodes = 0;
        loop {
            let (rect, sw, sh, report) =
                self.plan_crop(d.full_width, d.full_height, d.orientation, tw, th, scene);
            // Map the full-size rectangle onto the (possibly DCT-scaled) raster.
            let fx = d.scaled_width as f64 / d.full_width as f64;
            let fy = d.raster.height as f64 / d.full_height as f64;
            let scaled = CropRect {
                x: rect.x * fx - d.x0 as f64,
                y: rect.y * fy,
                width: rect.width * fx,
                height: rect.height * fy,
            };
            if d.is_window() {
                // Lanczos3 reads 3 source pixels per output pixel's step on either side.
                let reach = 3.0 * (scaled.width / sw.max(1) as f64).max(1.0) + 2.0;
                let left_ok = d.x0 == 0 || scaled.x - reach >= 0.0;
                let right_ok = d.x0 + d.raster.width >= d.scaled_width
                    || scaled.x + scaled.width + reach <= d.raster.width as f64;
                if !(left_ok && right_ok) {
                    return self.render(&whole()?, p, scene, whole);
                }
            }
            let small = resize::crop_resize(&d.raster, scaled, sw, sh)?;
            let rgb = color::to_srgb(&small, d.icc.as_deref(), p.background);
            let (rgb, ow, oh) = d.orientation.apply(&rgb, sw as usize, sh as usize, 3);
            match search::search(
                &rgb,
                ow as u32,
                oh as u32,
                p.max_bytes,
                p.min_quality,
                p.max_quality,
            )? {
                Search::Fit {
                    quality,
                    jpeg,
                    encodes,
                } => {
                    let sha256: [u8; 32] = Sha256::digest(&jpeg).into();
                    // The encoder's buffer has room to spare; a rendition kept for a bulk
                    // run's apply stage should cost its length, not the buffer's.
                    let mut jpeg = jpeg;
                    jpeg.shrink_to_fit();
                    return Ok(Rendition {
                        profile: p.name.clone(),
                        bytes: Bytes::from(jpeg),
                        sha256,
                        width: ow as u32,
                        height: oh as u32,
                        quality,
                        encodes: total_encodes + encodes,
                        crop: report,
                    });
                }
                Search::NoFit {
                    smallest,
                    quality,
                    encodes,
                } => {
                    total_encodes += encodes;
                    if best.is_none_or(|b| smallest < b.0) {
                        best = Some((smallest, quality, ow as u32, oh as u32));
                    }
                    if tw <= p.min_width {
                        let (best_bytes, best_quality, best_width, best_height) =
                            best.unwrap_or((smallest, quality, tw, th));
                        return Err(NormalizeError::CannotFit {
                            profile: p.name.clone(),
                            max_bytes: p.max_bytes,
                            best_bytes,
                            best_quality,
                            best_width,
                            best_height,
                        });
                    }
                    // Step down by about 20% per round, keeping the aspect ratio.
                    let nw = ((tw as u64 * 4) / 5).max(p.min_width as u64) as u32;
                    th = ((th as u64 * nw as u64) / tw as u64).max(1) as u32;
                    tw = nw;
                }
            }
        }
    }
}

/// Entry points for benchmarks and the comparison script (not a stable API).
#[doc(hidden)]
pub mod bench {
    use super::{codec, format, NormalizeError};

    /// Decodes a JPEG at 1/8 scale with the compiled-in codec, reading every scan: the
    /// "decode floor" anchor of `reference/jpeg-speed.md`. Returns the decoded size.
    pub fn jpeg_decode_floor(bytes: &[u8]) -> Result<(u32, u32), NormalizeError> {
        let info = format::walk_jpeg(bytes, false)?;
        let r = codec::decode_jpeg(bytes, &info, 8)?;
        Ok((r.width, r.height))
    }

    /// Whether a JPEG is progressive (from its frame header).
    pub fn jpeg_is_progressive(bytes: &[u8]) -> bool {
        format::walk_jpeg(bytes, false)
            .map(|i| matches!(i.coding, Some(format::JpegCoding::Progressive)))
            .unwrap_or(false)
    }

    /// The face detector's nine head maps (cls, obj, bbox at strides 8, 16, 32; as
    /// `(channels, height, width, values)` channels last, before the sigmoid) for a BGR
    /// input of `h` x `w` (multiples of 32, channels last), for the test against onnxruntime.
    #[cfg(feature = "face")]
    pub fn face_heads(bgr: Vec<f32>, h: usize, w: usize) -> Vec<(usize, usize, usize, Vec<f32>)> {
        super::face::raw_heads(bgr, h, w)
    }

    /// The faces the detector finds in an RGB picture (at most 320 px on its longer side),
    /// as `(x, y, width, height, score)` in its pixels.
    #[cfg(feature = "face")]
    pub fn detect_faces(rgb: &[u8], w: usize, h: usize, simd: bool) -> Vec<[f32; 5]> {
        super::face::detect(rgb, w, h, simd)
            .into_iter()
            .map(|d| [d.x, d.y, d.w, d.h, d.score])
            .collect()
    }

    /// Encodes RGB at a fixed quality with the compiled-in encoder.
    pub fn encode(rgb: &[u8], w: u32, h: u32, q: u8) -> Result<Vec<u8>, NormalizeError> {
        codec::encode_rgb(rgb, w, h, q)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "mozjpeg")]
    use super::decode::seam::{INJECTED, PANIC_IN_PROGRESSIVE};
    #[cfg(feature = "mozjpeg")]
    use super::*;
    #[cfg(feature = "mozjpeg")]
    use std::cell::Cell;

    /// A progressive 4:2:0 JPEG of a generated photo, written by libjpeg.
    #[cfg(feature = "mozjpeg")]
    fn progressive_jpeg(w: u32, h: u32) -> Vec<u8> {
        let rgb = testimage::photo_rgb(w, h, 7);
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        c.set_size(w as usize, h as usize);
        c.set_quality(90.0);
        c.set_progressive_mode();
        let mut s = c.start_compress(Vec::new()).unwrap();
        s.write_scanlines(&rgb).unwrap();
        s.finish().unwrap()
    }

    /// A panic inside the crate's progressive decoder does not reach the caller: the photo
    /// is decoded by the codec instead, to the same rendition.
    #[cfg(feature = "mozjpeg")]
    #[test]
    fn a_panic_in_the_progressive_decoder_falls_back_to_the_codec() {
        let photo = progressive_jpeg(1600, 1200);
        assert!(bench::jpeg_is_progressive(&photo));
        let profile = Profile::ad_thumbnail();
        let codec = Normalizer::new()
            .with_progressive_decoder(ProgressiveDecoder::Libjpeg)
            .normalize(&photo, &profile)
            .unwrap();
        PANIC_IN_PROGRESSIVE.with(|p| p.set(true));
        let got = std::panic::catch_unwind(|| Normalizer::new().normalize(&photo, &profile));
        PANIC_IN_PROGRESSIVE.with(|p| p.set(false));
        let got = got.expect("the progressive decoder's panic reached the caller");
        assert!(
            INJECTED.with(Cell::get) > 0,
            "the progressive decoder never ran"
        );
        assert_eq!(got.unwrap().bytes, codec.bytes);
    }
}
