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

#[cfg(test)]
mod tests {
    use super::*;
    use fast_image_resize::CpuExtensions;

    /// Renditions must be byte-identical on every machine: the SIMD paths that
    /// fast_image_resize picks at run time must give the same pixels as its scalar path.
    #[test]
    #[allow(unsafe_code)]
    fn simd_and_scalar_resize_agree() {
        let (w, h) = (517u32, 389u32);
        let rgb = crate::normalize::testimage::photo_rgb(w, h, 9);
        let rgba: Vec<u8> = rgb
            .chunks(3)
            .enumerate()
            .flat_map(|(i, p)| [p[0], p[1], p[2], (i % 251) as u8])
            .collect();
        let gray: Vec<u8> = rgb.chunks(3).map(|p| p[1]).collect();
        for (pt, data) in [
            (PixelType::U8x3, &rgb),
            (PixelType::U8x4, &rgba),
            (PixelType::U8, &gray),
        ] {
            let src = ImageRef::new(w, h, data, pt).unwrap();
            let opts = ResizeOptions::new()
                .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
                .crop(30.5, 10.25, 300.0, 300.0)
                .use_alpha(pt == PixelType::U8x4);
            let mut results = Vec::new();
            let mut exts = vec![CpuExtensions::None];
            #[cfg(target_arch = "x86_64")]
            exts.extend([CpuExtensions::Sse4_1, CpuExtensions::Avx2]);
            for ext in exts {
                if !ext.is_supported() {
                    continue;
                }
                let mut r = Resizer::new();
                // SAFETY: only extensions that `is_supported` reports for this CPU are set.
                unsafe { r.set_cpu_extensions(ext) };
                for (tw, th) in [(96u32, 96u32), (64, 80)] {
                    let mut dst = Image::new(tw, th, pt);
                    r.resize(&src, &mut dst, &opts).unwrap();
                    results.push((ext, tw, dst.into_vec()));
                }
            }
            for pair in results.chunks(2).collect::<Vec<_>>().windows(2) {
                assert_eq!(
                    pair[0][0].2, pair[1][0].2,
                    "{pt:?}: {:?} and {:?} differ",
                    pair[0][0].0, pair[1][0].0
                );
                assert_eq!(
                    pair[0][1].2, pair[1][1].2,
                    "{pt:?}: {:?} and {:?} differ",
                    pair[0][1].0, pair[1][1].0
                );
            }
        }
    }
}
