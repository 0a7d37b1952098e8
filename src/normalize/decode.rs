//! Decoding helpers around the codecs: the format sniff, the JPEG coding check, the `image`
//! crate's decoders with their limits, the crate's progressive decoder in its panic guard,
//! and the panic guard itself.

use super::codec::Raster;
use super::error::NormalizeError;
use super::format::{self, ImageFormat, JpegCoding};
use super::geometry::Orientation;
use super::profile::Limits;
use super::progressive;

/// The crate's progressive decoder inside a panic guard, as every other decoder runs: a
/// panic in it (a bug) must not unwind into the embedder's `normalize` call. The photo then
/// goes to the JPEG codec (`None`, as for a file out of the decoder's scope), and the
/// failure is logged with the file's facts (never its bytes). A file the decoder leaves to
/// libjpeg is logged as a debug event with the reason (see [`log_fallback`]).
pub(super) fn native_progressive(
    bytes: &[u8],
    info: &format::JpegInfo<'_>,
    denom: u32,
    cols: Option<(u32, u32)>,
) -> Option<Raster> {
    let decoded = std::panic::catch_unwind(|| {
        #[cfg(test)]
        seam::maybe_inject_progressive_panic();
        progressive::decode(bytes, denom, cols)
    });
    match decoded {
        Ok(Ok(raster)) => Some(raster),
        Ok(Err(why)) => {
            log_fallback(info, bytes.len(), denom, why.0);
            None
        }
        Err(payload) => {
            tracing::warn!(
                target: "userphoto::normalize",
                width = info.width,
                height = info.height,
                components = info.components,
                input_bytes = bytes.len(),
                scale = format_args!("1/{denom}"),
                panic = %panic_message(payload.as_ref()),
                "the progressive JPEG decoder failed (a bug); the photo is decoded with the JPEG codec instead"
            );
            None
        }
    }
}

/// Columns `[x0, x1)` of `r` (clamped), the raster the progressive decoder gives for the
/// same window: what a file left to libjpeg is cut to, so that both paths hand the same
/// pixels to the resize.
pub(super) fn cut_columns(r: Raster, cols: Option<(u32, u32)>) -> Raster {
    let Some((a, b)) = cols else { return r };
    let b = b.min(r.width);
    if a >= b || (a == 0 && b == r.width) {
        return r;
    }
    let ch = r.data.len() / (r.width as usize * r.height as usize).max(1);
    let (w, kept) = (r.width as usize * ch, (b - a) as usize * ch);
    let mut data = Vec::with_capacity(kept * r.height as usize);
    for line in r.data.chunks_exact(w) {
        data.extend_from_slice(&line[a as usize * ch..a as usize * ch + kept]);
    }
    Raster {
        width: b - a,
        data,
        ..r
    }
}

/// The debug event for a progressive JPEG decoded by libjpeg instead of the crate's
/// decoder (`reason`: out of its scope, such as arithmetic coding or CMYK, or irregular), so
/// that a bench or an operator can count them: `RUST_LOG=userphoto::normalize=debug`, then
/// count the lines with this message.
pub(super) fn log_fallback(
    info: &format::JpegInfo<'_>,
    input_bytes: usize,
    denom: u32,
    reason: &str,
) {
    tracing::debug!(
        target: "userphoto::normalize",
        width = info.width,
        height = info.height,
        components = info.components,
        input_bytes,
        scale = format_args!("1/{denom}"),
        reason,
        "progressive JPEG left to libjpeg"
    );
}

/// The text of a panic's payload (`panic!` with a message gives a `String` or a `&str`).
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Runs a third-party decoder so that a panic inside it (a bug on some odd file: the breadth
/// test found one in the `tiff` crate's planar tiled path) becomes `Corrupt` instead of
/// unwinding into the caller. The panic hook still reports it on stderr, which is how such
/// a bug gets noticed and reported upstream; this crate does not replace the global hook.
pub(super) fn contain_panics<T>(
    format: ImageFormat,
    f: impl FnOnce() -> Result<T, NormalizeError>,
) -> Result<T, NormalizeError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            Err(NormalizeError::corrupt(
                format.name(),
                format!("the {} decoder failed: {msg}", format.name()),
            ))
        }
    }
}

pub(super) fn detect(bytes: &[u8]) -> Result<ImageFormat, NormalizeError> {
    match ImageFormat::detect(bytes) {
        Some(
            f @ (ImageFormat::Jpeg
            | ImageFormat::Png
            | ImageFormat::Gif
            | ImageFormat::Bmp
            | ImageFormat::Tiff
            | ImageFormat::WebP),
        ) => Ok(f),
        #[cfg(feature = "heic")]
        Some(ImageFormat::Heic) => Ok(ImageFormat::Heic),
        Some(f) => Err(NormalizeError::Unsupported {
            format: f.name().to_owned(),
        }),
        None if bytes.is_empty() => Err(NormalizeError::Unsupported {
            format: "empty input".into(),
        }),
        None => Err(NormalizeError::Unsupported {
            format: "unknown".into(),
        }),
    }
}

pub(super) fn check_jpeg_coding(info: &format::JpegInfo<'_>) -> Result<(), NormalizeError> {
    let unsupported = |what: &str| {
        Err(NormalizeError::Unsupported {
            format: what.to_owned(),
        })
    };
    match info.coding {
        Some(JpegCoding::Lossless) => return unsupported("lossless JPEG"),
        Some(JpegCoding::Hierarchical) => return unsupported("hierarchical JPEG"),
        Some(JpegCoding::Arithmetic { .. }) if !cfg!(feature = "mozjpeg") => {
            return unsupported("arithmetic-coded JPEG")
        }
        _ => {}
    }
    if info.precision != 8 {
        return unsupported(&format!("{}-bit JPEG", info.precision));
    }
    if !matches!(info.components, 1 | 3 | 4) {
        return unsupported(&format!("JPEG with {} colour components", info.components));
    }
    Ok(())
}

pub(super) fn other_decoder<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<Box<dyn image::ImageDecoder + 'a>, NormalizeError> {
    use image::ImageDecoder;
    let fmt = match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Bmp => image::ImageFormat::Bmp,
        ImageFormat::Tiff => image::ImageFormat::Tiff,
        ImageFormat::WebP => image::ImageFormat::WebP,
        other => {
            return Err(NormalizeError::Unsupported {
                format: other.name().to_owned(),
            })
        }
    };
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), fmt);
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_width);
    l.max_image_height = Some(limits.max_height);
    l.max_alloc = Some(limits.max_decoded_bytes);
    reader.limits(l);
    let dec = reader
        .into_decoder()
        .map_err(|e| image_error(format, e, limits))?;
    let (w, h) = dec.dimensions();
    limits.check_dimensions(w, h)?;
    // RGBA8 is what we convert to at most; 16-bit formats are converted from their own buffer.
    limits.check_decoded(dec.total_bytes())?;
    Ok(Box::new(dec))
}

pub(super) fn image_error(
    format: ImageFormat,
    e: image::ImageError,
    limits: &Limits,
) -> NormalizeError {
    use image::error::{ImageError as E, LimitErrorKind};
    match e {
        E::Limits(l) => match l.kind() {
            LimitErrorKind::DimensionError => NormalizeError::LimitExceeded {
                what: "width or height",
                value: 0,
                limit: limits.max_width.max(limits.max_height) as u64,
            },
            _ => NormalizeError::LimitExceeded {
                what: "decoded bytes",
                value: 0,
                limit: limits.max_decoded_bytes,
            },
        },
        E::Unsupported(u) => NormalizeError::Unsupported {
            format: format!("{} ({u})", format.name()),
        },
        E::IoError(io) => NormalizeError::corrupt(
            format.name(),
            format!("data ends early or cannot be read: {io}"),
        ),
        other => NormalizeError::corrupt(format.name(), other.to_string()),
    }
}

pub(super) fn orientation_from_image(o: image::metadata::Orientation) -> Option<Orientation> {
    use image::metadata::Orientation as O;
    let v = match o {
        O::NoTransforms => 1,
        O::FlipHorizontal => 2,
        O::Rotate180 => 3,
        O::FlipVertical => 4,
        O::Rotate90FlipH => 5,
        O::Rotate90 => 6,
        O::Rotate270FlipH => 7,
        O::Rotate270 => 8,
    };
    Some(Orientation::from_exif(v))
}

/// The fault-injection seam of [`native_progressive`], for the normalizer's tests.
#[cfg(test)]
pub(super) mod seam {
    use std::cell::Cell;

    thread_local! {
        /// Set by a test: the next progressive decodes on this thread panic.
        pub(in crate::normalize) static PANIC_IN_PROGRESSIVE: Cell<bool> = const { Cell::new(false) };
        /// How many injected panics were raised on this thread.
        pub(in crate::normalize) static INJECTED: Cell<u32> = const { Cell::new(0) };
    }

    /// A panic where the decoder runs, when this thread's test asked for one.
    pub(super) fn maybe_inject_progressive_panic() {
        if PANIC_IN_PROGRESSIVE.with(Cell::get) {
            INJECTED.with(|n| n.set(n.get() + 1));
            panic!("injected panic in the progressive decoder");
        }
    }
}
