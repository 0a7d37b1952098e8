//! Crop and Lanczos3 resize with `fast_image_resize`.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::codec::{Layout, Raster};
use super::error::NormalizeError;
use super::geometry::CropRect;

/// Crops `rect` (in the raster's own pixel coordinates) and resizes it to `w` x `h`.
///
/// RGBA is resized with premultiplied alpha (no dark fringes at soft edges); CMYK's fourth
/// channel is ink, not alpha, so it is resized as a plain channel.
pub(crate) fn crop_resize(
    src: &Raster,
    rect: CropRect,
    w: u32,
    h: u32,
) -> Result<Raster, NormalizeError> {
    let pixel_type = match src.layout {
        Layout::Gray => PixelType::U8,
        Layout::Rgb => PixelType::U8x3,
        Layout::Rgba | Layout::Cmyk { .. } => PixelType::U8x4,
    };
    let internal =
        |e: &dyn std::fmt::Display| NormalizeError::Config(format!("resize failed: {e}"));
    let view =
        ImageRef::new(src.width, src.height, &src.data, pixel_type).map_err(|e| internal(&e))?;
    let mut dst = Image::new(w, h, pixel_type);
    let rect = rect.clamped(src.width, src.height);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(rect.x, rect.y, rect.width, rect.height)
        .use_alpha(src.layout == Layout::Rgba);
    let mut resizer = Resizer::new();
    resizer
        .resize(&view, &mut dst, &options)
        .map_err(|e| internal(&e))?;
    Ok(Raster {
        width: w,
        height: h,
        layout: src.layout,
        data: dst.into_vec(),
    })
}
