//! Format detection from the bytes (never from a file name) and cheap header probes.

use super::error::NormalizeError;

/// An image format recognised from the first bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ImageFormat {
    /// JPEG (JFIF, Exif, Adobe).
    Jpeg,
    /// PNG.
    Png,
    /// GIF (the first frame is used).
    Gif,
    /// Windows bitmap.
    Bmp,
    /// TIFF (and BigTIFF).
    Tiff,
    /// WebP, lossy or lossless.
    WebP,
    /// HEIC/HEIF, as phones write it.
    Heic,
    /// AVIF.
    Avif,
    /// JPEG 2000.
    Jpeg2000,
    /// JPEG XL.
    JpegXl,
    /// Photoshop document.
    Psd,
    /// Windows icon.
    Ico,
}

impl ImageFormat {
    /// The conventional upper-case name, as used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::Gif => "GIF",
            Self::Bmp => "BMP",
            Self::Tiff => "TIFF",
            Self::WebP => "WebP",
            Self::Heic => "HEIC",
            Self::Avif => "AVIF",
            Self::Jpeg2000 => "JPEG 2000",
            Self::JpegXl => "JPEG XL",
            Self::Psd => "PSD",
            Self::Ico => "ICO",
        }
    }

    /// Detects the format from the leading bytes. `None` when nothing matches.
    ///
    /// ```
    /// use userphoto::normalize::ImageFormat;
    /// assert_eq!(ImageFormat::detect(b"\x89PNG\r\n\x1a\n...."), Some(ImageFormat::Png));
    /// assert_eq!(ImageFormat::detect(b"hello"), None);
    /// ```
    pub fn detect(bytes: &[u8]) -> Option<Self> {
        let b = bytes;
        if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return Some(Self::Jpeg);
        }
        if b.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Some(Self::Png);
        }
        if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
            return Some(Self::Gif);
        }
        if b.starts_with(b"BM") && b.len() >= 26 {
            return Some(Self::Bmp);
        }
        if b.starts_with(b"II*\0")
            || b.starts_with(b"MM\0*")
            || b.starts_with(b"II+\0")
            || b.starts_with(b"MM\0+")
        {
            return Some(Self::Tiff);
        }
        if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
            return Some(Self::WebP);
        }
        if b.len() >= 12 && &b[4..8] == b"ftyp" {
            let brand = &b[8..12];
            return match brand {
                b"avif" | b"avis" => Some(Self::Avif),
                b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => {
                    Some(Self::Heic)
                }
                b"jp2 " | b"jpx " => Some(Self::Jpeg2000),
                _ => None,
            };
        }
        if b.starts_with(&[0, 0, 0, 0x0C, b'j', b'P', b' ', b' '])
            || b.starts_with(&[0xFF, 0x4F, 0xFF, 0x51])
        {
            return Some(Self::Jpeg2000);
        }
        if b.starts_with(&[0xFF, 0x0A]) || b.starts_with(&[0, 0, 0, 0x0C, b'J', b'X', b'L', b' ']) {
            return Some(Self::JpegXl);
        }
        if b.starts_with(b"8BPS") {
            return Some(Self::Psd);
        }
        if b.starts_with(&[0, 0, 1, 0]) && b.len() >= 6 {
            return Some(Self::Ico);
        }
        None
    }
}

/// The kind of JPEG frame, from its SOF marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JpegCoding {
    Baseline,
    Extended,
    Progressive,
    Lossless,
    Arithmetic { progressive: bool },
    Hierarchical,
}

/// One scan (SOS segment plus its entropy-coded data) of a JPEG file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scan {
    /// Offset of the 0xFF of the SOS marker.
    pub start: usize,
    /// Offset just past the entropy-coded data (the 0xFF of the next marker).
    pub end: usize,
    /// Spectral selection start (0 for a DC scan).
    pub ss: u8,
}

/// What the marker walk learns about a JPEG file without decoding any pixels.
#[derive(Debug, Clone, Default)]
pub(crate) struct JpegInfo<'a> {
    pub width: u32,
    pub height: u32,
    pub components: u8,
    pub precision: u8,
    pub coding: Option<JpegCoding>,
    /// The TIFF structure of the first `Exif\0\0` APP1 segment.
    pub exif: Option<&'a [u8]>,
    /// The ICC profile assembled from its APP2 chunks, when complete.
    pub icc: Option<Vec<u8>>,
    /// The Adobe APP14 transform flag (0 = none/CMYK, 1 = YCbCr, 2 = YCCK).
    pub adobe_transform: Option<u8>,
    /// Offset of the first SOS marker.
    pub first_sos: Option<usize>,
    /// Every scan, only filled when the walk is asked to go through the entropy data.
    pub scans: Vec<Scan>,
    /// Whether an EOI marker was reached (only meaningful for a full walk).
    pub eoi: bool,
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(((*b.get(at)? as usize) << 8) | *b.get(at + 1)? as usize)
}

/// Walks the JPEG marker structure.
///
/// With `full == false` it stops at the first SOS (a header probe: microseconds, no
/// allocation beyond the ICC profile). With `full == true` it also walks every scan's
/// entropy-coded data, which the progressive DC-only decode needs.
pub(crate) fn walk_jpeg(b: &[u8], full: bool) -> Result<JpegInfo<'_>, NormalizeError> {
    const F: &str = "JPEG";
    let corrupt = |r: &str| NormalizeError::corrupt(F, r);
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err(corrupt("missing SOI marker"));
    }
    let mut info = JpegInfo::default();
    let mut icc_chunks: Vec<(u8, u8, &[u8])> = Vec::new();
    let mut pos = 2usize;
    loop {
        // Find the next marker: 0xFF followed by a non-0xFF byte (0xFF fill bytes are legal).
        if pos >= b.len() {
            break;
        }
        if b[pos] != 0xFF {
            return Err(corrupt(&format!("expected a marker at byte {pos}")));
        }
        while pos < b.len() && b[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = b.get(pos) else { break };
        let mstart = pos - 1;
        pos += 1;
        match marker {
            0xD8 => return Err(corrupt("second SOI marker")),
            0xD9 => {
                info.eoi = true;
                break;
            }
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let len = be16(b, pos).ok_or_else(|| corrupt("truncated marker segment"))?;
        if len < 2 || pos + len > b.len() {
            return Err(corrupt("truncated marker segment"));
        }
        let seg = &b[pos + 2..pos + len];
        pos += len;
        match marker {
            0xC0..=0xCF if marker != 0xC4 && marker != 0xC8 && marker != 0xCC => {
                if info.coding.is_some() {
                    // A second frame header only appears in hierarchical files.
                    info.coding = Some(JpegCoding::Hierarchical);
                    continue;
                }
                if seg.len() < 6 {
                    return Err(corrupt("short SOF segment"));
                }
                info.precision = seg[0];
                info.height = be16(seg, 1).unwrap_or(0) as u32;
                info.width = be16(seg, 3).unwrap_or(0) as u32;
                info.components = seg[5];
                if seg.len() < 6 + 3 * info.components as usize {
                    return Err(corrupt("short SOF segment"));
                }
                info.coding = Some(match marker {
                    0xC0 => JpegCoding::Baseline,
                    0xC1 => JpegCoding::Extended,
                    0xC2 => JpegCoding::Progressive,
                    0xC3 => JpegCoding::Lossless,
                    0xC9 => JpegCoding::Arithmetic { progressive: false },
                    0xCA => JpegCoding::Arithmetic { progressive: true },
                    0xCB => JpegCoding::Lossless,
                    _ => JpegCoding::Hierarchical,
                });
            }
            0xE1 if info.exif.is_none() && seg.starts_with(b"Exif\0\0") => {
                info.exif = Some(&seg[6..])
            }
            0xE2 if seg.len() > 14 && seg.starts_with(b"ICC_PROFILE\0") => {
                icc_chunks.push((seg[12], seg[13], &seg[14..]))
            }
            0xEE if seg.len() >= 12 && seg.starts_with(b"Adobe") => {
                info.adobe_transform = Some(seg[11])
            }
            0xDA => {
                if info.first_sos.is_none() {
                    info.first_sos = Some(mstart);
                }
                if !full {
                    break;
                }
                // Ss is the byte after the component list.
                let ns = *seg.first().ok_or_else(|| corrupt("short SOS segment"))? as usize;
                let ss = *seg
                    .get(1 + 2 * ns)
                    .ok_or_else(|| corrupt("short SOS segment"))?;
                // Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or RSTn.
                let mut p = pos;
                let end = loop {
                    match b[p..].iter().position(|&x| x == 0xFF) {
                        None => break b.len(),
                        Some(off) => {
                            let at = p + off;
                            match b.get(at + 1) {
                                None => break b.len(),
                                Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => p = at + 1,
                                Some(_) => break at,
                            }
                        }
                    }
                };
                info.scans.push(Scan {
                    start: mstart,
                    end,
                    ss,
                });
                pos = end;
            }
            _ => {}
        }
    }
    if !icc_chunks.is_empty() {
        icc_chunks.sort_by_key(|c| c.0);
        let count = icc_chunks[0].1 as usize;
        let complete = icc_chunks.len() == count
            && icc_chunks
                .iter()
                .enumerate()
                .all(|(i, c)| c.0 as usize == i + 1 && c.1 as usize == count);
        if complete {
            info.icc = Some(
                icc_chunks
                    .iter()
                    .flat_map(|c| c.2.iter().copied())
                    .collect(),
            );
        }
    }
    if info.coding.is_none() {
        return Err(corrupt("no frame header (SOF) before the image data"));
    }
    Ok(info)
}

/// Builds a JPEG stream holding only the DC scans of a progressive file.
///
/// At a 1/8 DCT scale libjpeg's IDCT reads the DC coefficient alone, so for the luma
/// channel the result is the same as decoding every scan; chroma loses the little detail that
/// libjpeg's 2x2 chroma IDCT would add. DC scans are a few percent of a progressive file, so
/// the entropy decoding, which is the whole cost of a 1/8-scale decode, shrinks by an order
/// of magnitude. Tables (DHT, DQT, DRI) between scans are kept.
pub(crate) fn dc_only_stream(b: &[u8], info: &JpegInfo<'_>) -> Option<Vec<u8>> {
    let first = info.first_sos?;
    if info.scans.is_empty() || !info.eoi {
        return None;
    }
    let mut out = Vec::with_capacity(first + b.len() / 8);
    out.extend_from_slice(&b[..first]);
    let mut prev_end = first;
    for scan in &info.scans {
        // Marker segments between the previous scan and this one (tables).
        if scan.start > prev_end {
            out.extend_from_slice(&b[prev_end..scan.start]);
        }
        if scan.ss == 0 {
            out.extend_from_slice(&b[scan.start..scan.end]);
        }
        prev_end = scan.end;
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    Some(out)
}

/// Reads the EXIF orientation (1..=8) from a TIFF structure; 1 when absent or invalid.
pub(crate) fn exif_orientation(tiff: &[u8]) -> u8 {
    let Ok(exif) = exif::Reader::new().read_raw(tiff.to_vec()) else {
        return 1;
    };
    exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .filter(|v| (1..=8).contains(v))
        .map(|v| v as u8)
        .unwrap_or(1)
}
