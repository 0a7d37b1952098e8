//! Colour: everything to 8-bit sRGB, alpha flattened, ICC profiles honoured.
//!
//! Runs on the resized raster (a few thousand to a few hundred thousand pixels), so colour
//! management costs little even for large photos.

use moxcms::{ColorProfile, DataColorSpace, Layout as CmsLayout, TransformOptions};

use super::codec::{Layout, Raster};

/// Converts a resized raster to interleaved 8-bit sRGB.
///
/// * An embedded ICC profile whose colour space matches the pixels is converted to sRGB
///   (Display P3 phone photos, Adobe RGB camera files, CMYK press profiles). A profile that
///   does not parse or does not match is ignored, as browsers do.
/// * CMYK without a profile uses the plain complement formula, reading Adobe's inverted
///   storage correctly (a file written by `-colorspace CMYK` tools round-trips).
/// * Alpha is composited over `background` (gamma-encoded, like every browser).
pub(crate) fn to_srgb(r: &Raster, icc: Option<&[u8]>, background: [u8; 3]) -> Vec<u8> {
    let n = r.width as usize * r.height as usize;
    let profile = icc.and_then(|b| ColorProfile::new_from_slice(b).ok());
    match r.layout {
        Layout::Gray => profile
            .filter(|p| p.color_space == DataColorSpace::Gray)
            .and_then(|p| transform(&p, CmsLayout::Gray, &r.data[..n], n))
            .unwrap_or_else(|| r.data[..n].iter().flat_map(|&g| [g, g, g]).collect()),
        Layout::Rgb => {
            let px = &r.data[..n * 3];
            profile
                .filter(|p| p.color_space == DataColorSpace::Rgb)
                .and_then(|p| transform(&p, CmsLayout::Rgb, px, n))
                .unwrap_or_else(|| px.to_vec())
        }
        Layout::Rgba => {
            let px = &r.data[..n * 4];
            let converted = profile
                .filter(|p| p.color_space == DataColorSpace::Rgb)
                .and_then(|p| transform(&p, CmsLayout::Rgba, px, n));
            let mut out = Vec::with_capacity(n * 3);
            for (i, p) in px.chunks_exact(4).enumerate() {
                let a = p[3] as u32;
                let rgb = match &converted {
                    Some(c) => [c[i * 3], c[i * 3 + 1], c[i * 3 + 2]],
                    None => [p[0], p[1], p[2]],
                };
                for (c, bg) in rgb.iter().zip(background) {
                    out.push(((*c as u32 * a + bg as u32 * (255 - a) + 127) / 255) as u8);
                }
            }
            out
        }
        Layout::Cmyk { inverted } => {
            let px = &r.data[..n * 4];
            if let Some(p) = profile.filter(|p| p.color_space == DataColorSpace::Cmyk) {
                // moxcms expects ink amounts (0 = no ink) in an RGBA-shaped buffer.
                let ink: Vec<u8> = if inverted {
                    px.iter().map(|v| 255 - v).collect()
                } else {
                    px.to_vec()
                };
                if let Some(conv) = transform(&p, CmsLayout::Rgba, &ink, n) {
                    return conv;
                }
            }
            let mut out = Vec::with_capacity(n * 3);
            for p in px.chunks_exact(4) {
                // Complement of ink: 255 = no ink.
                let (c, m, y, k) = if inverted {
                    (p[0] as u32, p[1] as u32, p[2] as u32, p[3] as u32)
                } else {
                    (
                        255 - p[0] as u32,
                        255 - p[1] as u32,
                        255 - p[2] as u32,
                        255 - p[3] as u32,
                    )
                };
                out.push(((c * k + 127) / 255) as u8);
                out.push(((m * k + 127) / 255) as u8);
                out.push(((y * k + 127) / 255) as u8);
            }
            out
        }
    }
}

/// Runs an ICC transform from `src` to sRGB; `None` when moxcms cannot build it.
fn transform(src: &ColorProfile, layout: CmsLayout, px: &[u8], n: usize) -> Option<Vec<u8>> {
    let srgb = ColorProfile::new_srgb();
    let t = src
        .create_transform_8bit(layout, &srgb, CmsLayout::Rgb, TransformOptions::default())
        .ok()?;
    let mut out = vec![0u8; n * 3];
    t.transform(px, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raster(layout: Layout, data: Vec<u8>) -> Raster {
        let n = data.len() / layout.channels();
        Raster {
            width: n as u32,
            height: 1,
            layout,
            data,
        }
    }

    #[test]
    fn alpha_is_flattened_on_the_background() {
        let r = raster(
            Layout::Rgba,
            vec![0, 0, 0, 0, 0, 0, 0, 255, 200, 100, 0, 128],
        );
        let out = to_srgb(&r, None, [255, 255, 255]);
        assert_eq!(
            &out[0..3],
            &[255, 255, 255],
            "transparent pixel shows the background"
        );
        assert_eq!(&out[3..6], &[0, 0, 0], "opaque pixel keeps its colour");
        assert_eq!(&out[6..9], &[227, 177, 127], "half alpha mixes");
        let out = to_srgb(&r, None, [0, 0, 255]);
        assert_eq!(&out[0..3], &[0, 0, 255]);
    }

    #[test]
    fn cmyk_complement_honours_adobe_inversion() {
        // Pure cyan ink at full strength, no black: (0, 255, 255) in RGB.
        let plain = raster(Layout::Cmyk { inverted: false }, vec![255, 0, 0, 0]);
        assert_eq!(to_srgb(&plain, None, [255; 3]), vec![0, 255, 255]);
        let adobe = raster(Layout::Cmyk { inverted: true }, vec![0, 255, 255, 255]);
        assert_eq!(to_srgb(&adobe, None, [255; 3]), vec![0, 255, 255]);
    }

    #[test]
    fn display_p3_is_converted_and_srgb_is_kept() {
        let p3 = ColorProfile::new_display_p3().encode().unwrap();
        let r = raster(Layout::Rgb, vec![200, 100, 50, 128, 128, 128]);
        let out = to_srgb(&r, Some(&p3), [255; 3]);
        // P3 is wider than sRGB: the same numbers mean a more saturated red in sRGB.
        assert!(
            out[0] > 205 && out[2] < 45,
            "P3 (200,100,50) became {:?}",
            &out[0..3]
        );
        // Neutral grey stays neutral.
        assert!(
            out[3..6].iter().all(|&v| (126..=130).contains(&v)),
            "{:?}",
            &out[3..6]
        );
        let srgb = ColorProfile::new_srgb().encode().unwrap();
        let same = to_srgb(&r, Some(&srgb), [255; 3]);
        for (a, b) in same.iter().zip(&r.data) {
            assert!(a.abs_diff(*b) <= 1);
        }
        // A garbage profile is ignored.
        assert_eq!(to_srgb(&r, Some(b"not a profile"), [255; 3]), r.data);
    }
}
