//! The normalization error type.

use std::fmt;

/// What went wrong while turning an image into a rendition.
///
/// Every failure of [`Normalizer`](super::Normalizer) is one of these kinds; none of them is a
/// panic. Match on the variant, or use [`NormalizeError::kind`] for a stable short name (the
/// example CLI prints it as `error_kind`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NormalizeError {
    /// The bytes are an image format this build cannot decode (HEIC without the `heic`
    /// feature, JPEG 2000, 12-bit or lossless JPEG, ...), or not a recognised image at all.
    #[error("unsupported image format: {format}")]
    Unsupported {
        /// The format detected from the bytes, such as `"HEIC"` or `"unknown"`.
        format: String,
    },
    /// The bytes claim to be an image of a known format but cannot be decoded (truncated,
    /// damaged headers, bad entropy data, ...).
    #[error("corrupt {format} data: {reason}")]
    Corrupt {
        /// The detected format.
        format: &'static str,
        /// What the decoder reported.
        reason: String,
    },
    /// A guard from [`Limits`](super::Limits) refused the input before it was decoded.
    #[error("{}", limit_message(what, *value, *limit))]
    LimitExceeded {
        /// Which limit: `"input bytes"`, `"width"`, `"height"`, `"pixels"`, `"decoded bytes"`
        /// or `"width or height"`.
        what: &'static str,
        /// The value found in the input (or its header); 0 when the decoder that refused the
        /// input did not say.
        value: u64,
        /// The configured limit.
        limit: u64,
    },
    /// No allowed quality and size keeps the JPEG within the profile's byte budget.
    #[error(
        "cannot fit the {profile} budget of {max_bytes} bytes: the best reached was {best_bytes} \
         bytes at {best_width}x{best_height}, quality {best_quality}"
    )]
    CannotFit {
        /// The profile's name.
        profile: String,
        /// The profile's byte budget.
        max_bytes: usize,
        /// The smallest encoding tried.
        best_bytes: usize,
        /// Its quality.
        best_quality: u8,
        /// Its width.
        best_width: u32,
        /// Its height.
        best_height: u32,
    },
    /// The profile or limits are not usable (zero size, quality out of range, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Reading the input failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

fn limit_message(what: &str, value: u64, limit: u64) -> String {
    if value == 0 {
        format!("{what} above the limit of {limit}")
    } else {
        format!("{what} is {value}, above the limit of {limit}")
    }
}

/// The stable short names of [`NormalizeError`] variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NormalizeErrorKind {
    /// [`NormalizeError::Unsupported`]
    Unsupported,
    /// [`NormalizeError::Corrupt`]
    Corrupt,
    /// [`NormalizeError::LimitExceeded`]
    LimitExceeded,
    /// [`NormalizeError::CannotFit`]
    CannotFit,
    /// [`NormalizeError::Config`]
    Config,
    /// [`NormalizeError::Io`]
    Io,
}

impl NormalizeErrorKind {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsupported => "unsupported",
            Self::Corrupt => "corrupt",
            Self::LimitExceeded => "limit_exceeded",
            Self::CannotFit => "cannot_fit",
            Self::Config => "config",
            Self::Io => "io",
        }
    }
}

impl fmt::Display for NormalizeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl NormalizeError {
    /// The kind of this error, for matching and for machine-readable output.
    pub fn kind(&self) -> NormalizeErrorKind {
        match self {
            Self::Unsupported { .. } => NormalizeErrorKind::Unsupported,
            Self::Corrupt { .. } => NormalizeErrorKind::Corrupt,
            Self::LimitExceeded { .. } => NormalizeErrorKind::LimitExceeded,
            Self::CannotFit { .. } => NormalizeErrorKind::CannotFit,
            Self::Config(_) => NormalizeErrorKind::Config,
            Self::Io(_) => NormalizeErrorKind::Io,
        }
    }

    pub(crate) fn corrupt(format: &'static str, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            format,
            reason: reason.into(),
        }
    }
}
