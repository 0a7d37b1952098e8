//! JPEG codecs behind one internal interface.
//!
//! The default (`mozjpeg` feature) is libjpeg-turbo's code as vendored by `mozjpeg-sys`:
//! DCT-scaled decoding and libjpeg-turbo's baseline encoder. Without it, the `pure-rust`
//! feature decodes with zune-jpeg (through `image`) and encodes with `jpeg-encoder`.

use super::error::NormalizeError;
use super::format::JpegInfo;

#[cfg(feature = "heic")]
pub(crate) mod heic;
#[cfg(feature = "mozjpeg")]
mod mozjpeg;
#[cfg(all(feature = "pure-rust", not(feature = "mozjpeg")))]
mod pure;

#[cfg(not(any(feature = "mozjpeg", feature = "pure-rust")))]
compile_error!(
    "userphoto needs a JPEG codec: enable the `mozjpeg` (default) or the `pure-rust` feature"
);

/// How the bytes of a raster are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "mozjpeg"), allow(dead_code))]
pub(crate) enum Layout {
    Gray,
    Rgb,
    Rgba,
    /// CMYK ink amounts; `inverted` when stored as Adobe writes them (255 = no ink).
    Cmyk {
        inverted: bool,
    },
}

impl Layout {
    #[cfg_attr(not(feature = "mozjpeg"), allow(dead_code))]
    pub(crate) fn channels(self) -> usize {
        match self {
            Layout::Gray => 1,
            Layout::Rgb => 3,
            Layout::Rgba | Layout::Cmyk { .. } => 4,
        }
    }
}

/// Decoded pixels, 8 bits per channel, interleaved, no padding.
#[derive(Debug, Clone)]
pub(crate) struct Raster {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub data: Vec<u8>,
}

/// Which DCT scales the JPEG decoder offers, as denominators of 1/n.
pub(crate) const SCALE_DENOMS: [u32; 4] = [8, 4, 2, 1];

/// Decodes a JPEG at 1/`denom` of its size (`denom` in 1, 2, 4, 8; the pure-Rust decoder
/// always decodes at full size and reports it in the raster's dimensions).
pub(crate) fn decode_jpeg(
    data: &[u8],
    info: &JpegInfo<'_>,
    denom: u32,
) -> Result<Raster, NormalizeError> {
    #[cfg(feature = "mozjpeg")]
    {
        mozjpeg::decode(data, info, denom)
    }
    #[cfg(all(feature = "pure-rust", not(feature = "mozjpeg")))]
    {
        let _ = denom;
        pure::decode(data, info)
    }
}

/// Whether [`decode_jpeg`] honours the scale (so a DC-only stream is worth building).
pub(crate) const DECODER_SCALES: bool = cfg!(feature = "mozjpeg");

/// Encodes 8-bit RGB as a baseline JPEG (JFIF, 4:2:0, optimized Huffman tables with the libjpeg codec, no other
/// markers) at `quality` 1..=100.
pub(crate) fn encode_rgb(
    rgb: &[u8],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, NormalizeError> {
    #[cfg(feature = "mozjpeg")]
    {
        mozjpeg::encode(rgb, width, height, quality)
    }
    #[cfg(all(feature = "pure-rust", not(feature = "mozjpeg")))]
    {
        pure::encode(rgb, width, height, quality)
    }
}

/// The name of the codec compiled in, for reports and benchmarks.
pub(crate) const CODEC_NAME: &str = if cfg!(feature = "mozjpeg") {
    "libjpeg-turbo (mozjpeg-sys)"
} else {
    "pure Rust (zune-jpeg + jpeg-encoder)"
};
