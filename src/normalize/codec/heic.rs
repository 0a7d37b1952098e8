//! HEIC/HEIF decoding through the system libheif (feature `heic`).
//!
//! libheif applies the container's rotation and mirroring (`irot`/`imir`) itself, which is
//! what the HEIF specification makes authoritative, so the EXIF orientation of a HEIC file
//! is not applied again.

use libheif_rs::{ColorSpace, HeifContext, RgbChroma};

use super::{Layout, Raster};
use crate::normalize::error::NormalizeError;
use crate::normalize::profile::Limits;

fn corrupt(e: impl std::fmt::Display) -> NormalizeError {
    NormalizeError::corrupt("HEIC", e.to_string())
}

/// The upright size of the primary image, from the container alone (no pixel decoded).
pub(crate) fn dimensions(bytes: &[u8], limits: &Limits) -> Result<(u32, u32), NormalizeError> {
    let ctx = HeifContext::read_from_bytes(bytes).map_err(corrupt)?;
    let handle = ctx.primary_image_handle().map_err(corrupt)?;
    let (w, h) = (handle.width(), handle.height());
    limits.check_dimensions(w, h)?;
    Ok((w, h))
}

/// Decodes the primary image of a HEIC file to 8-bit RGB(A), plus its ICC profile.
pub(crate) fn decode(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(Raster, Option<Vec<u8>>), NormalizeError> {
    let ctx = HeifContext::read_from_bytes(bytes).map_err(corrupt)?;
    let handle = ctx.primary_image_handle().map_err(corrupt)?;
    let (w, h) = (handle.width(), handle.height());
    if w == 0 || h == 0 {
        return Err(corrupt("zero width or height"));
    }
    limits.check_dimensions(w, h)?;
    let alpha = handle.has_alpha_channel();
    let layout = if alpha { Layout::Rgba } else { Layout::Rgb };
    limits.check_decoded(w as u64 * h as u64 * layout.channels() as u64)?;
    let icc = handle.color_profile_raw().map(|p| p.data);
    let chroma = if alpha {
        RgbChroma::Rgba
    } else {
        RgbChroma::Rgb
    };
    let image = handle
        .decode(ColorSpace::Rgb(chroma), None)
        .map_err(corrupt)?;
    let planes = image.planes();
    let plane = planes
        .interleaved
        .ok_or_else(|| corrupt("libheif returned no interleaved plane"))?;
    let (pw, ph) = (plane.width as usize, plane.height as usize);
    let row = pw * layout.channels();
    if plane.stride < row || plane.data.len() < plane.stride * ph.saturating_sub(1) + row {
        return Err(corrupt("libheif returned a plane smaller than its size"));
    }
    let mut data = Vec::with_capacity(row * ph);
    for y in 0..ph {
        data.extend_from_slice(&plane.data[y * plane.stride..y * plane.stride + row]);
    }
    Ok((
        Raster {
            width: pw as u32,
            height: ph as u32,
            layout,
            data,
        },
        icc,
    ))
}
