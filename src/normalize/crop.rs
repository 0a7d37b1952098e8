//! Where the square goes: the crop strategies, what they are shown and what they report.
//!
//! A [`CropStrategy`] is asked once per profile to place the rendition's box on the upright
//! photo. Before that, once per photo, the normalizer builds a [`Scene`] with what the
//! strategy asked for in [`CropStrategy::needs`]: a small upright copy of the photo
//! ([`Picture`]) and the faces the crate's detector found in it ([`Face`]). The strategy
//! answers with a [`Placement`]: the box, the method that placed it and any warnings; the
//! normalizer reports it with the rendition ([`CropReport`]).
//!
//! The built-in strategies, chosen by name with [`CropMode`]:
//!
//! - [`FaceCrop`] (`face`, the default with the `face` feature): a head-and-shoulders square
//!   around the main face; [`AttentionCrop`] when no face is found.
//! - [`AttentionCrop`] (`attention`): the largest box, placed on what stands out (edges,
//!   skin tones, saturation); the centre when nothing does.
//! - [`CenterCrop`] (`centre`): the largest centred box.

use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use super::attention;
use super::geometry::{CropContext, CropRect};

/// A small upright copy of the photo (EXIF orientation applied, 8-bit sRGB), for strategies
/// that look at the pixels. It is at most a few hundred pixels on its longer side; multiply
/// by [`Picture::scale_x`] and [`Picture::scale_y`] to get upright source pixels.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Picture<'a> {
    /// Interleaved RGB, `width * height * 3` bytes, row after row.
    pub rgb: &'a [u8],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Upright source pixels per picture pixel, horizontally.
    pub scale_x: f64,
    /// Upright source pixels per picture pixel, vertically.
    pub scale_y: f64,
}

impl<'a> Picture<'a> {
    /// A picture of `width` x `height` RGB pixels standing for an upright source of
    /// `source_width` x `source_height` (mostly useful to test a strategy).
    pub fn new(
        rgb: &'a [u8],
        width: u32,
        height: u32,
        source_width: u32,
        source_height: u32,
    ) -> Self {
        Self {
            rgb,
            width,
            height,
            scale_x: source_width as f64 / width.max(1) as f64,
            scale_y: source_height as f64 / height.max(1) as f64,
        }
    }
}

/// A face the detector found, in upright source pixels.
///
/// Boxes are snapped to a grid of 1/128 of the photo's longer side and scores to thousandths
/// before anything uses them, so a crop never hangs on the last bits of a float.
///
/// `Eq` holds because the detector's scores are always finite; a `Face` made by hand with a
/// NaN score is not equal to itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// The detector's confidence, 0 to 1 (in thousandths).
    #[serde(serialize_with = "thousandths")]
    pub score: f32,
}

/// A score as the decimal it was snapped to (`0.933`, not `0.9330000281333923`).
fn thousandths<S: serde::Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((*v as f64 * 1000.0).round() / 1000.0)
}

impl Eq for Face {}

impl Face {
    fn area(&self) -> f64 {
        self.width as f64 * self.height as f64
    }
    fn centre(&self) -> (f64, f64) {
        (
            self.x as f64 + self.width as f64 / 2.0,
            self.y as f64 + self.height as f64 / 2.0,
        )
    }
}

/// What the normalizer shows a strategy, once per photo.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Scene<'a> {
    /// The small upright copy, when [`SceneNeeds::picture`] asked for it.
    pub picture: Option<Picture<'a>>,
    /// The faces found, largest first, when [`SceneNeeds::faces`] asked for them (empty when
    /// none were found, or the `face` feature is off).
    pub faces: &'a [Face],
}

impl<'a> Scene<'a> {
    /// A scene (mostly useful to test a strategy).
    pub fn new(picture: Option<Picture<'a>>, faces: &'a [Face]) -> Self {
        Self { picture, faces }
    }
}

/// What a strategy wants to see before it places a box (each costs time once per photo).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SceneNeeds {
    /// A small upright copy of the photo.
    pub picture: bool,
    /// The faces the crate's detector finds.
    pub faces: bool,
}

impl SceneNeeds {
    /// Nothing: the strategy works from the sizes alone.
    pub const NOTHING: Self = Self {
        picture: false,
        faces: false,
    };
    /// The picture.
    pub const PICTURE: Self = Self {
        picture: true,
        faces: false,
    };
    /// The picture and the faces.
    pub const FACES: Self = Self {
        picture: true,
        faces: true,
    };
}

/// Which rule placed a crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CropMethod {
    /// Around a face.
    Face,
    /// On what stands out in the picture.
    Attention,
    /// The centre.
    Centre,
    /// A rule of the caller's ([`FocusCrop`], [`RegionCrop`], a strategy of your own).
    Custom,
}

impl CropMethod {
    /// The name used in JSON and logs: `face`, `attention`, `centre`, `custom`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Face => "face",
            Self::Attention => "attention",
            Self::Centre => "centre",
            Self::Custom => "custom",
        }
    }
}

/// Something a reviewer should look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CropWarning {
    /// The face strategy found no face: the crop fell back to attention or the centre.
    NoFace,
    /// Several faces of similar size (at least 80 % of the largest's area): the one nearest
    /// the centre was kept.
    SeveralFaces,
    /// The face is so small in the photo that a head-and-shoulders square would be enlarged
    /// more than twice: the square is looser, and the face under a quarter of it.
    FaceTooSmall,
    /// The face is at the photo's edge: the square could not be centred on it, or cuts it.
    FaceAtEdge,
    /// The square is under half the profile's size in source pixels: the photo itself is
    /// too small, and the rendition is enlarged more than twice.
    LowResolution,
}

impl CropWarning {
    /// The name used in JSON and logs, as `no-face`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoFace => "no-face",
            Self::SeveralFaces => "several-faces",
            Self::FaceTooSmall => "face-too-small",
            Self::FaceAtEdge => "face-at-edge",
            Self::LowResolution => "low-resolution",
        }
    }
}

/// A strategy's answer: the box (upright pixels), the rule that placed it, warnings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Placement {
    /// The box to keep; clamped into the picture by the normalizer.
    pub rect: CropRect,
    /// The rule that placed it.
    pub method: CropMethod,
    /// What a reviewer should look at.
    pub warnings: Vec<CropWarning>,
}

impl Placement {
    /// A placement without warnings.
    pub fn new(rect: CropRect, method: CropMethod) -> Self {
        Self {
            rect,
            method,
            warnings: Vec::new(),
        }
    }

    /// The same placement with one more warning.
    pub fn with_warning(mut self, w: CropWarning) -> Self {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
        self
    }
}

/// How a rendition was cropped, in upright source pixels (after EXIF orientation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CropReport {
    /// The rule that placed the square.
    pub strategy: CropMethod,
    /// The square (the box with the profile's aspect ratio), whole pixels.
    pub rect: PixelRect,
    /// The faces found (empty when the strategy does not look for faces).
    pub faces: Vec<Face>,
    /// What a reviewer should look at, sorted.
    pub warnings: Vec<CropWarning>,
}

/// A rectangle in whole pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PixelRect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Chooses the part of the upright photo that becomes the rendition.
///
/// Must be deterministic: the same scene and context must give the same placement, or
/// renditions stop being byte-identical across runs (and skip-unchanged stops working).
///
/// ```
/// use userphoto::normalize::{
///     CropContext, CropMethod, CropRect, CropStrategy, Normalizer, Placement, Scene,
/// };
///
/// /// Keeps the top of the picture (for photos framed with a lot of floor).
/// #[derive(Debug)]
/// struct Top;
///
/// impl CropStrategy for Top {
///     fn cache_key(&self) -> String {
///         "top-v1".into()
///     }
///     fn place(&self, _scene: &Scene<'_>, ctx: &CropContext) -> Placement {
///         let (w, h) = ctx.largest_box();
///         let x = (ctx.width as f64 - w) / 2.0;
///         Placement::new(CropRect { x, y: 0.0, width: w, height: h }, CropMethod::Custom)
///     }
/// }
///
/// let n = Normalizer::new().with_crop_strategy(Top);
/// assert!(n.cache_key().contains("top-v1"));
/// ```
pub trait CropStrategy: Send + Sync + Debug {
    /// A stable name for the strategy and its settings. It is part of the key the sync
    /// engine's state store records renditions under: change it whenever the strategy would
    /// place a box differently, and keep it when not (a changed key re-renders every photo).
    fn cache_key(&self) -> String;

    /// What the strategy wants to see (default: nothing, no analysis decode).
    fn needs(&self) -> SceneNeeds {
        SceneNeeds::NOTHING
    }

    /// The box to keep, in upright pixel coordinates, with the rule that placed it.
    fn place(&self, scene: &Scene<'_>, ctx: &CropContext) -> Placement;
}

/// The largest centred box with the target's aspect ratio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CenterCrop;

impl CropStrategy for CenterCrop {
    fn cache_key(&self) -> String {
        "centre".into()
    }
    fn place(&self, _scene: &Scene<'_>, ctx: &CropContext) -> Placement {
        Placement::new(focus_box(ctx, 0.5, 0.5), CropMethod::Centre)
    }
}

/// The largest box with the target's aspect ratio, centred as near as possible on a focus
/// point given as fractions of the upright picture (`0.5, 0.5` is the centre; `0.5, 0.3`
/// keeps more of the top, where faces usually are in portraits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FocusCrop {
    /// Horizontal focus, 0.0 (left) to 1.0 (right).
    pub x: f64,
    /// Vertical focus, 0.0 (top) to 1.0 (bottom).
    pub y: f64,
}

impl CropStrategy for FocusCrop {
    fn cache_key(&self) -> String {
        format!("focus:{}:{}", self.x, self.y)
    }
    fn place(&self, _scene: &Scene<'_>, ctx: &CropContext) -> Placement {
        Placement::new(focus_box(ctx, self.x, self.y), CropMethod::Custom)
    }
}

/// A fixed rectangle (for example a face box widened by your own rule), used as it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionCrop(pub CropRect);

impl CropStrategy for RegionCrop {
    fn cache_key(&self) -> String {
        let r = self.0;
        format!("region:{}:{}:{}:{}", r.x, r.y, r.width, r.height)
    }
    fn place(&self, _scene: &Scene<'_>, _ctx: &CropContext) -> Placement {
        Placement::new(self.0, CropMethod::Custom)
    }
}

/// The largest box with the target's aspect ratio, placed on what stands out in the picture
/// (edges, skin tones, saturation); the centre when nothing does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttentionCrop;

impl CropStrategy for AttentionCrop {
    fn cache_key(&self) -> String {
        "attention-v1".into()
    }
    fn needs(&self) -> SceneNeeds {
        SceneNeeds::PICTURE
    }
    fn place(&self, scene: &Scene<'_>, ctx: &CropContext) -> Placement {
        attention_placement(scene, ctx)
    }
}

fn attention_placement(scene: &Scene<'_>, ctx: &CropContext) -> Placement {
    let (bw, bh) = ctx.largest_box();
    let found = scene.picture.and_then(|p| {
        let (sx, sy) = (p.scale_x, p.scale_y);
        // The box in picture pixels, rounded down so it fits.
        let pbw = ((bw / sx) as u32).clamp(1, p.width.max(1));
        let pbh = ((bh / sy) as u32).clamp(1, p.height.max(1));
        attention::attention_box(p.rgb, p.width, p.height, pbw, pbh)
            .map(|(x, y)| (x as f64 * sx, y as f64 * sy))
    });
    match found {
        Some((x, y)) => Placement::new(
            CropRect {
                x,
                y,
                width: bw,
                height: bh,
            },
            CropMethod::Attention,
        ),
        None => Placement::new(focus_box(ctx, 0.5, 0.5), CropMethod::Centre),
    }
}

/// A head-and-shoulders box around the main face; [`AttentionCrop`] when there is no face.
///
/// The rule, in upright source pixels:
///
/// 1. **The main face**: the largest; when several are at least 80 % of its area (a group),
///    the one of those nearest the photo's centre (warning `several-faces`).
/// 2. **The size**: the face's height is 40 % of the box's height, but the box is never
///    smaller than half the profile's size, so a rendition is never enlarged more than 2x
///    by the crop: a small face in a large photo gets a looser box instead of a blurry one
///    (warning `face-too-small` when the face ends up under a quarter of the box), and
///    never larger than the largest box with the profile's aspect that fits the photo.
/// 3. **The place**: the face centred horizontally, its centre 40 % of the box's height
///    from the top. A face so near the photo's edge that the box would not fit there gets
///    a tighter box (down to the face being 55 % of its height) that does; what still does
///    not fit is moved into the photo, never padded (warning `face-at-edge` when that moves
///    the face more than 10 % of the box off its place, or cuts it).
/// 4. The box is rounded to whole pixels.
///
/// A photo smaller than half the profile's size in the box's place gets the warning
/// `low-resolution`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaceCrop;

/// The face's height as a fraction of the box's height.
const FACE_FRACTION: f64 = 0.4;
/// The face centre's height from the box's top, as a fraction of the box's height.
const FACE_CENTRE_Y: f64 = 0.4;
/// The tightest box a face at the photo's edge gets: the face this fraction of its height.
const MAX_FACE_FRACTION: f64 = 0.55;
/// Faces at least this fraction of the largest's area count as "the same size".
const SIMILAR_AREA: f64 = 0.8;

impl CropStrategy for FaceCrop {
    fn cache_key(&self) -> String {
        // The detector, its input size and the rule's constants: change any, change this.
        format!(
            "face-v1:yunet_n:{}:{FACE_FRACTION}:{FACE_CENTRE_Y}:{MAX_FACE_FRACTION}:{SIMILAR_AREA}:{}",
            super::ANALYSIS_SIDE,
            AttentionCrop.cache_key()
        )
    }
    fn needs(&self) -> SceneNeeds {
        SceneNeeds::FACES
    }
    fn place(&self, scene: &Scene<'_>, ctx: &CropContext) -> Placement {
        match main_face(scene.faces, ctx) {
            None => attention_placement(scene, ctx).with_warning(CropWarning::NoFace),
            Some((face, several)) => {
                let p = face_placement(&face, ctx);
                if several {
                    p.with_warning(CropWarning::SeveralFaces)
                } else {
                    p
                }
            }
        }
    }
}

/// The largest face, or in a group the one nearest the centre among those of similar size;
/// and whether there were several.
fn main_face(faces: &[Face], ctx: &CropContext) -> Option<(Face, bool)> {
    let largest = faces.iter().map(Face::area).fold(0.0, f64::max);
    if largest <= 0.0 {
        return None;
    }
    let (cx, cy) = (ctx.width as f64 / 2.0, ctx.height as f64 / 2.0);
    let dist = |f: &Face| {
        let (x, y) = f.centre();
        (x - cx) * (x - cx) + (y - cy) * (y - cy)
    };
    let mut similar: Vec<&Face> = faces
        .iter()
        .filter(|f| f.area() >= SIMILAR_AREA * largest)
        .collect();
    similar.sort_by(|a, b| {
        dist(a)
            .total_cmp(&dist(b))
            .then(b.area().total_cmp(&a.area()))
            .then(a.y.cmp(&b.y))
            .then(a.x.cmp(&b.x))
    });
    Some((*similar[0], similar.len() > 1))
}

fn face_placement(face: &Face, ctx: &CropContext) -> Placement {
    let (w, h) = (ctx.width as f64, ctx.height as f64);
    let aspect = ctx.target_width.max(1) as f64 / ctx.target_height.max(1) as f64;
    let (_, largest_h) = ctx.largest_box();
    let face_h = (face.height as f64).max(1.0);
    let wanted_h = face_h / FACE_FRACTION;
    // Never below half the profile's size (at most 2x enlargement), never above the photo.
    let min_h = (ctx.target_height as f64 / 2.0).max(ctx.target_width as f64 / 2.0 / aspect);
    let mut bh = wanted_h.max(min_h).min(largest_h);
    let (fcx, fcy) = face.centre();
    // A face near the photo's edge: rather than slide the box off the face, tighten it
    // (down to the face filling MAX_FACE_FRACTION of it) so the face can stay in place.
    let fits_h = (2.0 * fcx.min(w - fcx) / aspect)
        .min(fcy / FACE_CENTRE_Y)
        .min((h - fcy) / (1.0 - FACE_CENTRE_Y));
    if fits_h < bh {
        bh = fits_h.max(face_h / MAX_FACE_FRACTION).max(min_h).min(bh);
    }
    let bw = bh * aspect;
    let want_x = fcx - bw / 2.0;
    let want_y = fcy - FACE_CENTRE_Y * bh;
    let x = want_x.clamp(0.0, (w - bw).max(0.0));
    let y = want_y.clamp(0.0, (h - bh).max(0.0));
    let mut p = Placement::new(
        CropRect {
            x,
            y,
            width: bw,
            height: bh,
        },
        CropMethod::Face,
    );
    if bh > wanted_h && face_h / bh < 0.25 {
        p = p.with_warning(CropWarning::FaceTooSmall);
    }
    let inside = face.x as f64 >= x
        && face.y as f64 >= y
        && (face.x + face.width) as f64 <= x + bw + 0.5
        && (face.y + face.height) as f64 <= y + bh + 0.5;
    if (x - want_x).abs() > 0.1 * bw || (y - want_y).abs() > 0.1 * bh || !inside {
        p = p.with_warning(CropWarning::FaceAtEdge);
    }
    p
}

/// The largest box with the target's aspect ratio, centred as near as possible on a focus
/// point given as fractions of the picture.
fn focus_box(ctx: &CropContext, fx: f64, fy: f64) -> CropRect {
    let (bw, bh) = ctx.largest_box();
    let fx = if fx.is_finite() {
        fx.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let fy = if fy.is_finite() {
        fy.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let x = (fx * ctx.width as f64 - bw / 2.0).clamp(0.0, ctx.width as f64 - bw);
    let y = (fy * ctx.height as f64 - bh / 2.0).clamp(0.0, ctx.height as f64 - bh);
    CropRect {
        x,
        y,
        width: bw,
        height: bh,
    }
}

/// The built-in strategies by name (the CLI's `--crop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CropMode {
    /// [`FaceCrop`] (with the `face` feature; [`AttentionCrop`] without it).
    Face,
    /// [`AttentionCrop`].
    Attention,
    /// [`CenterCrop`].
    Centre,
}

impl CropMode {
    /// The strategy.
    pub fn strategy(self) -> std::sync::Arc<dyn CropStrategy> {
        match self {
            #[cfg(feature = "face")]
            Self::Face => std::sync::Arc::new(FaceCrop),
            #[cfg(not(feature = "face"))]
            Self::Face => std::sync::Arc::new(AttentionCrop),
            Self::Attention => std::sync::Arc::new(AttentionCrop),
            Self::Centre => std::sync::Arc::new(CenterCrop),
        }
    }

    /// The name: `face`, `attention`, `centre`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Face => "face",
            Self::Attention => "attention",
            Self::Centre => "centre",
        }
    }
}

impl std::str::FromStr for CropMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "face" => Ok(Self::Face),
            "attention" => Ok(Self::Attention),
            "centre" | "center" => Ok(Self::Centre),
            other => Err(format!(
                "unknown crop {other:?}: expected face, attention or centre"
            )),
        }
    }
}

impl std::fmt::Display for CropMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: u32, y: u32, width: u32, height: u32) -> Face {
        Face {
            x,
            y,
            width,
            height,
            score: 0.9,
        }
    }

    fn place(faces: &[Face], w: u32, h: u32, side: u32) -> Placement {
        FaceCrop.place(
            &Scene::new(None, faces),
            &CropContext::new(w, h, side, side),
        )
    }

    #[test]
    fn head_and_shoulders_around_a_face_in_the_middle_of_a_large_photo() {
        // A 200 px face in a 3000x4000 portrait: the box is 2.5 face heights, the face
        // centred horizontally, its centre 40 % from the top.
        let p = place(&[face(1400, 1000, 160, 200)], 3000, 4000, 96);
        assert_eq!(p.method, CropMethod::Face);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let r = p.rect;
        assert!((r.height - 500.0).abs() < 1e-9 && (r.width - 500.0).abs() < 1e-9);
        assert!((r.x + r.width / 2.0 - 1480.0).abs() < 1e-9);
        assert!((r.y + 0.4 * r.height - 1100.0).abs() < 1e-9);
    }

    #[test]
    fn a_small_face_gets_a_looser_box_never_more_than_2x_enlargement() {
        // A 40 px face and a 648 px profile: 2.5 x 40 = 100 px would be enlarged 6.5x; the
        // box is 324 px (2x), and the face under a quarter of it is a warning.
        let p = place(&[face(1000, 500, 32, 40)], 3000, 2000, 648);
        assert_eq!(p.rect.height, 324.0);
        assert!(p.warnings.contains(&CropWarning::FaceTooSmall));
        // For the 96 px thumbnail the same face is fine.
        let p = place(&[face(1000, 500, 32, 40)], 3000, 2000, 96);
        assert_eq!(p.rect.height, 100.0);
        assert!(!p.warnings.contains(&CropWarning::FaceTooSmall));
    }

    #[test]
    fn a_face_at_the_edge_tightens_the_box_then_clamps_without_padding() {
        // A face near the left edge of a narrow photo: the box shrinks so the face stays
        // centred horizontally.
        let p = place(&[face(60, 300, 100, 120)], 400, 1200, 96);
        let r = p.rect;
        assert!(r.x >= 0.0 && r.x + r.width <= 400.0 + 1e-9);
        assert!((r.x + r.width / 2.0 - 110.0).abs() < 1e-6, "{r:?}");
        assert!((r.height - 220.0).abs() < 1e-9, "{r:?}");
        assert!(!p.warnings.contains(&CropWarning::FaceAtEdge));
        // At the very edge even the tightest box cannot centre it: clamped, warned.
        let p = place(&[face(0, 300, 100, 120)], 400, 1200, 96);
        assert_eq!(p.rect.x, 0.0);
        assert!(p.warnings.contains(&CropWarning::FaceAtEdge));
        // A face larger than the photo allows: the largest box, never bigger.
        let p = place(&[face(50, 50, 300, 380)], 400, 500, 96);
        assert!(p.rect.width <= 400.0 && p.rect.height <= 500.0);
    }

    #[test]
    fn in_a_group_the_face_nearest_the_centre_among_similar_sizes() {
        let faces = [
            face(100, 400, 100, 100),
            face(900, 400, 95, 95),
            face(1800, 400, 100, 100),
            face(1000, 100, 60, 60), // small: not a candidate even though central
        ];
        let p = place(&faces, 2000, 1500, 96);
        assert!(p.warnings.contains(&CropWarning::SeveralFaces));
        let cx = p.rect.x + p.rect.width / 2.0;
        assert!((cx - 947.5).abs() < 1e-6, "{:?}", p.rect);
        // The same faces in another order: the same box.
        let mut rev = faces;
        rev.reverse();
        assert_eq!(place(&rev, 2000, 1500, 96), p);
        // One face clearly the largest: no warning.
        let p = place(
            &[face(100, 400, 200, 200), face(900, 400, 100, 100)],
            2000,
            1500,
            96,
        );
        assert!(!p.warnings.contains(&CropWarning::SeveralFaces));
    }

    #[test]
    fn no_face_falls_back_to_attention_then_the_centre() {
        // No picture: the centre, with the warning.
        let p = place(&[], 400, 200, 96);
        assert_eq!(p.method, CropMethod::Centre);
        assert_eq!(p.warnings, vec![CropWarning::NoFace]);
        assert_eq!(p.rect.x, 100.0);
        // A picture with something at the right: attention.
        let (w, h) = (160u32, 80u32);
        let mut rgb = vec![90u8; (w * h * 3) as usize];
        for y in 20..60 {
            for x in 130..150 {
                let i = ((y * w + x) * 3) as usize;
                rgb[i..i + 3].copy_from_slice(&[230, 20, 30]);
            }
        }
        let pic = Picture::new(&rgb, w, h, 400, 200);
        let p = FaceCrop.place(
            &Scene::new(Some(pic), &[]),
            &CropContext::new(400, 200, 96, 96),
        );
        assert_eq!(p.method, CropMethod::Attention);
        assert!(p.rect.x > 100.0, "{:?}", p.rect);
    }

    #[test]
    fn cache_keys_differ_by_strategy_and_are_stable() {
        let keys = [
            CropMode::Face.strategy().cache_key(),
            CropMode::Attention.strategy().cache_key(),
            CropMode::Centre.strategy().cache_key(),
        ];
        #[cfg(feature = "face")]
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[1], keys[2]);
        assert_eq!(keys[2], "centre");
        assert_eq!(CropMode::Centre.strategy().cache_key(), keys[2]);
        assert_eq!("center".parse::<CropMode>(), Ok(CropMode::Centre));
        assert!("middle".parse::<CropMode>().is_err());
    }

    #[test]
    fn centre_and_focus_boxes() {
        let ctx = CropContext::new(400, 200, 96, 96);
        let s = Scene::default();
        assert_eq!(
            CenterCrop.place(&s, &ctx).rect,
            CropRect {
                x: 100.0,
                y: 0.0,
                width: 200.0,
                height: 200.0
            }
        );
        assert_eq!(FocusCrop { x: 0.0, y: 0.5 }.place(&s, &ctx).rect.x, 0.0);
        let ctx = CropContext::new(200, 400, 100, 50);
        let r = CenterCrop.place(&s, &ctx).rect;
        assert_eq!((r.width, r.height, r.y), (200.0, 100.0, 150.0));
    }
}
