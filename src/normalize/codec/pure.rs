//! The pure-Rust JPEG codec: zune-jpeg (through `image`) and `jpeg-encoder`.

use image::ImageDecoder;

use super::{Layout, Raster};
use crate::normalize::error::NormalizeError;
use crate::normalize::format::JpegInfo;

pub(super) fn decode(data: &[u8], _info: &JpegInfo<'_>) -> Result<Raster, NormalizeError> {
    let dec = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(data))
        .map_err(|e| NormalizeError::corrupt("JPEG", e.to_string()))?;
    let (w, h) = dec.dimensions();
    let layout = match dec.color_type() {
        image::ColorType::L8 => Layout::Gray,
        image::ColorType::Rgb8 => Layout::Rgb,
        image::ColorType::Rgba8 => Layout::Rgba,
        other => {
            return Err(NormalizeError::Unsupported {
                format: format!("JPEG decoded as {other:?}"),
            })
        }
    };
    let mut buf = vec![0u8; dec.total_bytes() as usize];
    dec.read_image(&mut buf)
        .map_err(|e| NormalizeError::corrupt("JPEG", e.to_string()))?;
    Ok(Raster {
        width: w,
        height: h,
        layout,
        data: buf,
    })
}

pub(super) fn encode(
    rgb: &[u8],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, NormalizeError> {
    let (w, h) = (
        u16::try_from(width).map_err(|_| NormalizeError::Config("width above 65535".into()))?,
        u16::try_from(height).map_err(|_| NormalizeError::Config("height above 65535".into()))?,
    );
    let mut out = Vec::with_capacity(width as usize * height as usize / 2);
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    // Standard tables: jpeg-encoder 0.7's optimized tables for nearly flat pictures (an
    // all-white square) are misread by zune-jpeg, which `image` uses, while libjpeg reads
    // them. A rendition must decode everywhere, so the pure-Rust path gives up the few
    // percent that optimized tables save.
    enc.set_optimized_huffman_tables(false);
    enc.encode(rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| NormalizeError::corrupt("JPEG", e.to_string()))?;
    Ok(out)
}
