//! The one module of this crate that uses `unsafe`: libjpeg's error manager.
//!
//! libjpeg reports fatal errors by calling `error_exit`, which must not return. We install
//! an `error_exit` that unwinds (mozjpeg-sys is built with `-fexceptions` through its
//! `unwinding` feature, so unwinding through the C frames is supported), and an
//! `emit_message` that turns the "premature end of data" warning into the same unwind, so
//! a truncated file is an error instead of a picture padded with grey. Every call into the
//! codec runs inside `catch_unwind`, which turns the unwind into
//! [`NormalizeError::Corrupt`]. `resume_unwind` is used rather than `panic!`, so no panic
//! hook runs and nothing is printed.
#![allow(unsafe_code)]

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use mozjpeg::{ColorSpace, Compress, Decompress};
use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr, jpeg_std_error, JWRN_JPEG_EOF};

use super::{Layout, Raster};
use crate::normalize::error::NormalizeError;
use crate::normalize::format::JpegInfo;

/// The payload our error manager unwinds with.
struct CodecFailure(String);

fn message(cinfo: &mut jpeg_common_struct) -> String {
    // SAFETY: `cinfo.err` points at the error manager libjpeg was created with, which lives
    // as long as the codec object; `format_message` writes at most JMSG_LENGTH_MAX (200)
    // bytes, the size of the buffer given.
    unsafe {
        let Some(err) = cinfo.err.as_ref() else {
            return "libjpeg error".to_owned();
        };
        let Some(format) = err.format_message else {
            return format!("libjpeg error code {}", err.msg_code);
        };
        let mut buf = [0u8; 200];
        let f: unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &mut [u8; 200]) =
            std::mem::transmute(format);
        f(cinfo, &mut buf);
        let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    }
}

extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    let msg = message(cinfo);
    resume_unwind(Box::new(CodecFailure(msg)));
}

extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: std::os::raw::c_int) {
    // SAFETY: as in `message`.
    let code = unsafe { cinfo.err.as_ref().map(|e| e.msg_code) };
    if level < 0 && code == Some(JWRN_JPEG_EOF as _) {
        resume_unwind(Box::new(CodecFailure(
            "the data ends before the image is complete (truncated file)".into(),
        )));
    }
    // Other warnings (extraneous bytes, restart marker glitches) are tolerated, as every
    // mainstream viewer does.
}

fn error_mgr() -> jpeg_error_mgr {
    // SAFETY: `jpeg_std_error` only fills in the struct it is given; zeroed is a valid start
    // for this plain C struct of integers and nullable function pointers.
    unsafe {
        let mut err: jpeg_error_mgr = std::mem::zeroed();
        jpeg_std_error(&mut err);
        err.error_exit = Some(error_exit);
        err.emit_message = Some(emit_message);
        err
    }
}

fn guarded<T>(f: impl FnOnce() -> std::io::Result<T>) -> Result<T, NormalizeError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(NormalizeError::corrupt("JPEG", e.to_string())),
        Err(payload) => {
            let reason = if let Some(c) = payload.downcast_ref::<CodecFailure>() {
                c.0.clone()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_owned()
            } else {
                "the JPEG codec failed".to_owned()
            };
            Err(NormalizeError::corrupt("JPEG", reason))
        }
    }
}

pub(super) fn decode(
    data: &[u8],
    info: &JpegInfo<'_>,
    denom: u32,
) -> Result<Raster, NormalizeError> {
    let numerator = match denom {
        8 => 1,
        4 => 2,
        2 => 4,
        _ => 8,
    };
    let (space, layout) = match info.components {
        1 => (ColorSpace::JCS_GRAYSCALE, Layout::Gray),
        3 => (ColorSpace::JCS_RGB, Layout::Rgb),
        // libjpeg turns YCCK into CMYK; Adobe files store inverted CMYK.
        4 => (
            ColorSpace::JCS_CMYK,
            Layout::Cmyk {
                inverted: info.adobe_transform.is_some(),
            },
        ),
        n => {
            return Err(NormalizeError::Unsupported {
                format: format!("JPEG with {n} colour components"),
            })
        }
    };
    guarded(|| {
        let mut d = Decompress::builder().with_err(error_mgr()).from_mem(data)?;
        d.scale(numerator);
        d.do_block_smoothing(false);
        let mut started = d.to_colorspace(space)?;
        let (w, h) = (started.width(), started.height());
        let data = started.read_scanlines::<u8>()?;
        if data.len() != w * h * layout.channels() {
            return Err(std::io::Error::other(
                "the decoder returned fewer rows than the header declares",
            ));
        }
        Ok(Raster {
            width: w as u32,
            height: h as u32,
            layout,
            data,
        })
    })
}

pub(super) fn encode(
    rgb: &[u8],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, NormalizeError> {
    guarded(|| {
        let mut c = Compress::new_err(Box::new(error_mgr()), ColorSpace::JCS_RGB);
        // libjpeg-turbo's own defaults: standard tables, baseline, no trellis.
        c.set_fastest_defaults();
        c.set_size(width as usize, height as usize);
        c.set_quality(quality.clamp(1, 100) as f32);
        c.set_optimize_coding(true);
        c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
        let cap = (width as usize * height as usize / 2).max(2048);
        let mut s = c.start_compress(Vec::with_capacity(cap))?;
        s.write_scanlines(rgb)?;
        s.finish()
    })
}
