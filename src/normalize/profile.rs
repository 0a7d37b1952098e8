//! Target profiles and input limits.

use serde::{Deserialize, Serialize};

use super::error::NormalizeError;

/// What one directory wants: pixel size, byte budget and quality range.
///
/// The three built-in profiles follow `reference/domain.md`:
///
/// | profile | size | budget | why |
/// |---|---|---|---|
/// | [`Profile::ad_thumbnail`] | 96x96 | 10,000 bytes | Exchange/Exchange Online accept at most "10 KB" from AD (KB 3062745); 10,000 is the safe reading |
/// | [`Profile::ad_large`] | 648x648 | 102,400 bytes | AD's `thumbnailPhoto` `rangeUpper` (MS-ADA3 2.307) |
/// | [`Profile::graph`] | 648x648 | 500,000 bytes | Graph takes up to 4 MB, Exchange Online's HD photo guidance is 648x648 and 500 KB |
///
/// Every rendition is a baseline JPEG of exactly `width` x `height`, at the highest quality
/// from `min_quality` to `max_quality` whose size is at most `max_bytes`. When even
/// `min_quality` does not fit, the size steps down (keeping the aspect ratio) towards
/// `min_width`; below that the result is [`NormalizeError::CannotFit`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
#[must_use]
pub struct Profile {
    /// A short name, used in reports and errors (`ad-thumbnail`, `graph`, ...).
    pub(crate) name: String,
    /// Output width in pixels.
    pub(crate) width: u32,
    /// Output height in pixels.
    pub(crate) height: u32,
    /// The byte budget: no rendition is ever larger.
    pub(crate) max_bytes: usize,
    /// The quality ceiling (1..=100). Above about 90 bytes grow fast for little gain.
    pub(crate) max_quality: u8,
    /// The lowest quality tried before the size steps down.
    pub(crate) min_quality: u8,
    /// The smallest width the size may step down to (equal to `width`: never step down).
    pub(crate) min_width: u32,
    /// The colour that transparent pixels are composited on.
    pub(crate) background: [u8; 3],
}

impl Profile {
    /// AD `thumbnailPhoto` as Outlook and Exchange expect it: 96x96 in at most 10,000 bytes.
    pub fn ad_thumbnail() -> Self {
        Self::custom("ad-thumbnail", 96, 96, 10_000).with_min_width(48)
    }

    /// AD `thumbnailPhoto` at Microsoft 365's largest served size: 648x648 in at most
    /// 102,400 bytes, AD's hard limit.
    pub fn ad_large() -> Self {
        Self::custom("ad-large", 648, 648, 102_400).with_min_width(96)
    }

    /// Microsoft Graph's profile photo: 648x648, quality first, at most 500,000 bytes.
    pub fn graph() -> Self {
        Self::custom("graph", 648, 648, 500_000).with_min_width(240)
    }

    /// A profile of your own, with quality 30..=90, no size step-down and a white background.
    pub fn custom(name: impl Into<String>, width: u32, height: u32, max_bytes: usize) -> Self {
        Self {
            name: name.into(),
            width,
            height,
            max_bytes,
            max_quality: 90,
            min_quality: 30,
            min_width: width,
            background: [255, 255, 255],
        }
    }

    /// A built-in profile by its name: `ad-thumbnail`, `ad-large` or `graph` (underscores
    /// are accepted too).
    pub fn by_name(name: &str) -> Option<Self> {
        name.parse::<BuiltinProfile>()
            .ok()
            .map(BuiltinProfile::profile)
    }

    /// The same profile at another square size (the step-down floor follows if it was higher).
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self.min_width = self.min_width.min(width);
        self
    }

    /// The same profile with another byte budget.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The same profile with another quality range.
    pub fn with_quality_range(mut self, min_quality: u8, max_quality: u8) -> Self {
        self.min_quality = min_quality;
        self.max_quality = max_quality;
        self
    }

    /// The same profile with another step-down floor.
    pub fn with_min_width(mut self, min_width: u32) -> Self {
        self.min_width = min_width;
        self
    }

    /// The same profile with another background for transparent pixels.
    pub fn with_background(mut self, rgb: [u8; 3]) -> Self {
        self.background = rgb;
        self
    }

    /// The short name, used in reports and errors (`ad-thumbnail`, `graph`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Output width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Output height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The byte budget: no rendition is ever larger.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The quality ceiling (1..=100).
    pub fn max_quality(&self) -> u8 {
        self.max_quality
    }

    /// The lowest quality tried before the size steps down.
    pub fn min_quality(&self) -> u8 {
        self.min_quality
    }

    /// The smallest width the size may step down to.
    pub fn min_width(&self) -> u32 {
        self.min_width
    }

    /// The colour that transparent pixels are composited on.
    pub fn background(&self) -> [u8; 3] {
        self.background
    }

    /// Checks that the profile can produce anything at all.
    pub fn validate(&self) -> Result<(), NormalizeError> {
        let bad = |m: String| {
            Err(NormalizeError::Config(format!(
                "profile {}: {m}",
                self.name
            )))
        };
        if self.width == 0 || self.height == 0 || self.width > 8192 || self.height > 8192 {
            return bad(format!(
                "size {}x{} must be 1..=8192 on each side",
                self.width, self.height
            ));
        }
        if !(1..=100).contains(&self.min_quality) || !(1..=100).contains(&self.max_quality) {
            return bad("qualities must be 1..=100".into());
        }
        if self.min_quality > self.max_quality {
            return bad(format!(
                "min_quality {} above max_quality {}",
                self.min_quality, self.max_quality
            ));
        }
        if self.min_width == 0 || self.min_width > self.width {
            return bad(format!(
                "min_width {} must be 1..={}",
                self.min_width, self.width
            ));
        }
        if self.max_bytes < 200 {
            return bad(format!(
                "max_bytes {} is below any JPEG's header size",
                self.max_bytes
            ));
        }
        Ok(())
    }
}

/// One of the built-in [`Profile`]s, by name: what a sink's
/// [`SinkCapabilities::default_profile`](crate::sink::SinkCapabilities::default_profile)
/// names, and what `ad-thumbnail`, `ad-large` and `graph` parse to.
///
/// It serializes as its name (`"ad-thumbnail"`, `"ad-large"`, `"graph"`); it parses from the
/// name in any case, with underscores for hyphens too.
///
/// ```
/// use userphoto::normalize::{BuiltinProfile, Profile};
///
/// let p: BuiltinProfile = "ad-large".parse().unwrap();
/// assert_eq!(p, BuiltinProfile::AdLarge);
/// assert_eq!(p.to_string(), "ad-large");
/// assert_eq!(p.profile(), Profile::ad_large());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum BuiltinProfile {
    /// [`Profile::ad_thumbnail`]: 96x96 in at most 10,000 bytes.
    AdThumbnail,
    /// [`Profile::ad_large`]: 648x648 in at most 102,400 bytes.
    AdLarge,
    /// [`Profile::graph`]: 648x648 in at most 500,000 bytes.
    Graph,
}

impl BuiltinProfile {
    /// Every built-in profile.
    pub const ALL: [BuiltinProfile; 3] = [Self::AdThumbnail, Self::AdLarge, Self::Graph];

    /// The profile itself.
    pub fn profile(self) -> Profile {
        match self {
            Self::AdThumbnail => Profile::ad_thumbnail(),
            Self::AdLarge => Profile::ad_large(),
            Self::Graph => Profile::graph(),
        }
    }

    /// Its name: `ad-thumbnail`, `ad-large` or `graph` (also the [`Profile::name`] of
    /// [`profile`](Self::profile)).
    pub fn name(self) -> &'static str {
        match self {
            Self::AdThumbnail => "ad-thumbnail",
            Self::AdLarge => "ad-large",
            Self::Graph => "graph",
        }
    }
}

impl std::fmt::Display for BuiltinProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BuiltinProfile {
    type Err = NormalizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let want = s.replace('_', "-").to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|p| p.name() == want)
            .ok_or_else(|| {
                NormalizeError::Config(format!(
                    "unknown profile {s:?} (expected ad-thumbnail, ad-large or graph)"
                ))
            })
    }
}

impl From<BuiltinProfile> for Profile {
    fn from(p: BuiltinProfile) -> Self {
        p.profile()
    }
}

/// Guards applied to the input before anything is decoded or allocated.
///
/// The defaults take any real photo (phones write up to 200 MP JPEGs) and refuse
/// decompression bombs: a header claiming 60000x60000 is refused from the header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Limits {
    /// Largest input file, in bytes (default 64 MiB).
    pub max_input_bytes: u64,
    /// Largest width (default 30,000).
    pub max_width: u32,
    /// Largest height (default 30,000).
    pub max_height: u32,
    /// Largest pixel count (default 200,000,000).
    pub max_pixels: u64,
    /// Largest decoded buffer, in bytes (default 512 MiB). JPEGs are decoded at a reduced
    /// DCT scale, so this binds only for large PNG, TIFF, WebP, GIF and BMP files.
    pub max_decoded_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_bytes: 64 << 20,
            max_width: 30_000,
            max_height: 30_000,
            max_pixels: 200_000_000,
            max_decoded_bytes: 512 << 20,
        }
    }
}

impl Limits {
    /// The same limits with another largest input file, in bytes.
    pub fn with_max_input_bytes(mut self, max_input_bytes: u64) -> Self {
        self.max_input_bytes = max_input_bytes;
        self
    }

    /// The same limits with another largest width and height.
    pub fn with_max_dimensions(mut self, max_width: u32, max_height: u32) -> Self {
        self.max_width = max_width;
        self.max_height = max_height;
        self
    }

    /// The same limits with another largest pixel count.
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// The same limits with another largest decoded buffer, in bytes.
    pub fn with_max_decoded_bytes(mut self, max_decoded_bytes: u64) -> Self {
        self.max_decoded_bytes = max_decoded_bytes;
        self
    }

    pub(crate) fn check_input_len(&self, len: u64) -> Result<(), NormalizeError> {
        check("input bytes", len, self.max_input_bytes)
    }

    pub(crate) fn check_dimensions(&self, w: u32, h: u32) -> Result<(), NormalizeError> {
        check("width", w as u64, self.max_width as u64)?;
        check("height", h as u64, self.max_height as u64)?;
        check("pixels", w as u64 * h as u64, self.max_pixels)
    }

    pub(crate) fn check_decoded(&self, bytes: u64) -> Result<(), NormalizeError> {
        check("decoded bytes", bytes, self.max_decoded_bytes)
    }
}

fn check(what: &'static str, value: u64, limit: u64) -> Result<(), NormalizeError> {
    if value > limit {
        Err(NormalizeError::LimitExceeded { what, value, limit })
    } else {
        Ok(())
    }
}
