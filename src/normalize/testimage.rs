//! Deterministic generated images for examples, doc tests, tests and benchmarks.
//!
//! Not part of the stable API (hidden from the docs): it exists so that everything in this
//! repository can run without any photo files.

use super::codec;

/// A photo-like RGB picture: smooth colour gradients, a soft disc (a "face"), fine stripes
/// and a little deterministic noise, so it compresses like a photograph.
pub fn photo_rgb(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let (cx, cy, r) = (w as f64 * 0.5, h as f64 * 0.42, w.min(h) as f64 * 0.28);
    for y in 0..h {
        for x in 0..w {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let n = (s % 9) as f64 - 4.0;
            let (fx, fy) = (x as f64 / w.max(1) as f64, y as f64 / h.max(1) as f64);
            let d = (((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)).sqrt() / r).min(2.0);
            let disc = (1.0 - d).max(0.0);
            let stripes = if (x / 3 + y / 7) % 2 == 0 { 6.0 } else { -6.0 };
            let red = 40.0 + 150.0 * fx + 60.0 * disc + n + stripes;
            let green = 60.0 + 120.0 * fy + 40.0 * disc + n;
            let blue = 180.0 - 120.0 * fx * fy + n - stripes;
            out.extend([red, green, blue].map(|v| v.clamp(0.0, 255.0) as u8));
        }
    }
    out
}

/// [`photo_rgb`] encoded as a baseline JPEG at quality 92.
pub fn gradient_jpeg(w: u32, h: u32) -> Vec<u8> {
    codec::encode_rgb(&photo_rgb(w, h, 1), w, h, 92).unwrap_or_default()
}

/// [`photo_rgb`] with its `seed`, encoded as a baseline JPEG at quality 92: a different
/// picture per seed.
pub fn photo_jpeg(w: u32, h: u32, seed: u32) -> Vec<u8> {
    codec::encode_rgb(&photo_rgb(w, h, seed), w, h, 92).unwrap_or_default()
}

/// Inserts an EXIF APP1 segment carrying `orientation` right after the SOI of a JPEG.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    // TIFF header (big-endian), one IFD with one SHORT entry: Orientation (0x0112).
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0*\0\0\0\x08");
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let mut seg = b"Exif\0\0".to_vec();
    seg.extend_from_slice(&tiff);
    insert_segment(jpeg, 0xE1, &seg)
}

/// Inserts an ICC profile (one APP2 chunk) right after the SOI of a JPEG.
pub fn with_icc_profile(jpeg: &[u8], icc: &[u8]) -> Vec<u8> {
    let mut seg = b"ICC_PROFILE\0\x01\x01".to_vec();
    seg.extend_from_slice(icc);
    insert_segment(jpeg, 0xE2, &seg)
}

/// Inserts a marker segment right after the SOI. The payload must be under 65,534 bytes.
pub fn insert_segment(jpeg: &[u8], marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(jpeg.len() + payload.len() + 4);
    out.extend_from_slice(&jpeg[..2.min(jpeg.len())]);
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&jpeg[2.min(jpeg.len())..]);
    out
}

/// An RGBA PNG of [`photo_rgb`] with a soft circular alpha mask.
pub fn rgba_png(w: u32, h: u32) -> Vec<u8> {
    let rgb = photo_rgb(w, h, 3);
    let mut rgba = Vec::with_capacity(rgb.len() / 3 * 4);
    for (i, p) in rgb.chunks_exact(3).enumerate() {
        let (x, y) = ((i as u32 % w) as f64, (i as u32 / w) as f64);
        let d = ((x - w as f64 / 2.0).powi(2) + (y - h as f64 / 2.0).powi(2)).sqrt()
            / (w.min(h) as f64 / 2.0);
        let a = ((1.2 - d) * 255.0 / 0.4).clamp(0.0, 255.0) as u8;
        rgba.extend_from_slice(&[p[0], p[1], p[2], a]);
    }
    let mut out = Vec::new();
    let enc = image::codecs::png::PngEncoder::new(&mut out);
    let _ = image::ImageEncoder::write_image(enc, &rgba, w, h, image::ExtendedColorType::Rgba8);
    out
}

/// Why the crate's progressive decoder leaves a file to libjpeg at 1/`denom` (`None`: it
/// decodes it). For the tests of its scope.
pub fn progressive_fallback_reason(bytes: &[u8], denom: u32) -> Option<&'static str> {
    super::progressive::decode(bytes, denom, None)
        .err()
        .map(|e| e.0)
}

/// A progressive JPEG decoded at 1/`denom` by the crate's progressive decoder for columns
/// `[x0, x1)` only, and the same columns cut from its whole decode: `(window, cut)`, equal
/// when the window is exact. `None` when the decoder leaves the file to libjpeg. For the
/// exactness tests.
pub fn progressive_window(
    bytes: &[u8],
    denom: u32,
    x0: u32,
    x1: u32,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let window = super::progressive::decode(bytes, denom, Some((x0, x1))).ok()?;
    let whole = super::progressive::decode(bytes, denom, None).ok()?;
    let cut = super::decode::cut_columns(whole, Some((x0, x1)));
    Some((window.data, cut.data))
}

/// `(width, height, channels, ours, libjpeg)`: what [`progressive_rasters`] returns.
pub type RasterPair = (u32, u32, usize, Vec<u8>, Vec<u8>);

/// A progressive JPEG decoded at 1/`denom` by the crate's progressive decoder and by the
/// libjpeg path it replaces (at 1/8: the DC-only stream, as before): `(width, height,
/// channels, ours, libjpeg)`. `None` when the progressive decoder leaves the file to libjpeg.
/// For the exactness tests.
pub fn progressive_rasters(bytes: &[u8], denom: u32) -> Option<RasterPair> {
    let ours = super::progressive::decode(bytes, denom, None).ok()?;
    let info = super::format::walk_jpeg(bytes, true).ok()?;
    let theirs = if denom == 8 {
        let dc = super::format::dc_only_stream(bytes, &info)?;
        codec::decode_jpeg(&dc, &info, denom).ok()?
    } else {
        codec::decode_jpeg(bytes, &info, denom).ok()?
    };
    if (ours.width, ours.height) != (theirs.width, theirs.height) {
        return Some((
            ours.width,
            ours.height,
            ours.layout.channels(),
            ours.data,
            Vec::new(),
        ));
    }
    Some((
        ours.width,
        ours.height,
        ours.layout.channels(),
        ours.data,
        theirs.data,
    ))
}
