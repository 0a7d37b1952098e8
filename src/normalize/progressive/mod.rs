//! A progressive-JPEG decoder whose memory follows one MCU row and whose work follows the
//! DCT scale the output needs.
//!
//! libjpeg decodes a progressive file into a whole-image coefficient buffer (64 coefficients
//! of 2 bytes per block) and runs every scan over it, whatever the output scale: 105 MB and
//! 0.6 s for a 16 MB, 18-megapixel quality-100 file. This decoder first reads every header
//! (each scan's tables, restart interval and where its data lies), then decodes all the
//! scans together, one MCU row at a time: each scan keeps its own place in its data (bit
//! position, EOB run, DC predictions, restart count), and a row is rendered as soon as the
//! last scan has been through it. So only one MCU row of coefficients is ever held (the
//! output raster aside), and it stays in cache while ten or so scans refine it, where
//! libjpeg streams its buffer through memory once per scan. At 1/8 the AC scans are not
//! decoded at all (only the DC is read). A decode for one crop ([`decode`]'s `cols`) keeps
//! only the columns the crop's resize reads: the other blocks are entropy-decoded (their
//! bits must be read) but never transformed, upsampled or stored, and the raster is that
//! narrow (a 6912x2400 panorama decoded at full scale for a square crop holds 17 MB of
//! raster instead of 50).
//!
//! Why a hand-written decoder (safe Rust) and not:
//! - libjpeg's buffered-image mode: `jpeg_read_coefficients` and buffered mode allocate the
//!   same whole-image 64-coefficient buffer, which is the memory problem itself;
//! - zune-jpeg or jpeg-decoder: zune-jpeg has no DCT scaling and both decode into full-size
//!   rasters (54 MB for 18 MP), then every scan at full cost.
//!
//! Scope: 8-bit Huffman progressive frames (SOF2) with 1 component (any factors), or 3 in
//! YCbCr with any sampling factors libjpeg upsamples by whole factors (4:4:4, 4:2:0, 4:2:2,
//! 4:4:0, 4:1:1...), at 1/1, 1/2, 1/4 and 1/8, with any scan script the standard allows (any
//! number and order of scans, components in any order and with any ids, DC scans
//! interleaved or not, spectral selection and successive approximation split any way, a
//! restart interval per scan). Anything else (arithmetic coding, 12-bit, CMYK/YCCK,
//! RGB-coded files), and any file this decoder finds irregular (bad Huffman code, data
//! running into a marker, a missing or unexpected restart marker, a progression libjpeg
//! would warn about, no EOI, more than [`header::MAX_SCANS`] scans or [`header::MAX_TABLES`]
//! Huffman tables) returns an [`Irregular`] with its reason, and the caller decodes with
//! libjpeg as before (logging the reason). So every output is either this decoder's or
//! libjpeg's, and irregular input behaves exactly as it did before.
//!
//! Exactness: the coefficients are libjpeg's (the order in which the scans are decoded does
//! not change any value: a refinement scan's row only depends on the earlier scans' same
//! row), the scaled IDCTs (libjpeg-turbo's `jpeg_idct_4x4`/`2x2`/`1x1` and islow for
//! full-size blocks and for chroma that libjpeg enlarges instead of upsampling), the
//! upsampling (jdsample.c's choice per component and scale: the fancy triangle filters
//! h2v1, h1v2 and h2v2 with their edge replication and alternating rounding, plain
//! replication at 1/8 or for other whole factors) and the YCbCr conversion are
//! integer-exact, so the raster equals libjpeg's bit for bit.

mod bits;
mod header;
mod huffman;
mod idct;
mod render;
mod scan;
mod types;

use self::bits::{Bits, Restarts};
use self::header::Headers;
use self::huffman::Huff;
use self::render::Render;
use self::scan::{decode_row, ScanState};
use self::types::{Frame, Row, Scan, BAD_DATA, BAD_HEADER, BAD_PROGRESSION, R};
use super::codec::Raster;

pub(crate) use self::types::Irregular;

/// Decodes a progressive JPEG at 1/`denom` (1, 2, 4 or 8). An error: not in scope or
/// irregular (its reason says which); decode it with libjpeg.
///
/// `cols`: only the output columns `[x0, x1)` are wanted (clamped to the picture): the
/// raster is that wide and holds exactly those columns of the whole picture's raster, and
/// the blocks that cannot reach them are entropy-decoded (every bit must be read) but not
/// transformed.
pub(crate) fn decode(
    data: &[u8],
    denom: u32,
    cols: Option<(u32, u32)>,
) -> Result<Raster, Irregular> {
    if !matches!(denom, 1 | 2 | 4 | 8) {
        return Err(Irregular("a DCT scale other than 1/1, 1/2, 1/4 or 1/8"));
    }
    let cols = cols.map(|(a, b)| (a as usize, b as usize));
    Headers::read(data, denom as usize).and_then(|h| decode_scans(h, data, cols))
}

/// Decodes every scan one MCU row at a time (each scan keeps its own place in its data)
/// and renders each row as soon as its last scan has been through it, so only one MCU
/// row of coefficients is ever held, and it stays in cache across the scans.
fn decode_scans(h: Headers, b: &[u8], cols: Option<(usize, usize)>) -> R<Raster> {
    let f = h.frame.ok_or(BAD_HEADER)?;
    let ncomp = f.comps.len();
    // Every component needs its DC, or libjpeg would warn.
    if f.comps.iter().any(|c| c.coef_bits[0] < 0) {
        return Err(BAD_PROGRESSION);
    }
    let colour = ncomp == 3;
    if colour {
        let rgb_ids = f.comps.iter().map(|c| c.id).eq([b'R', b'G', b'B']);
        if h.adobe == Some(0) || (!h.jfif && h.adobe.is_none() && rgb_ids) {
            return Err(Irregular("RGB-coded colour"));
        }
    }
    let mut states: Vec<ScanState<'_>> = h
        .scans
        .iter()
        .map(|s| ScanState {
            bits: Bits::new(&b[s.start..s.end]),
            rst: Restarts::new(s.restart_interval),
            eobrun: 0,
            pred: [0; 4],
        })
        .collect();
    let mut rows: Vec<Row> = f
        .comps
        .iter()
        .map(|c| Row {
            coefs: vec![[0i16; 64]; c.stride * c.v],
            masks: vec![0u64; c.stride * c.v],
        })
        .collect();
    let mut out = Render::new(&f, h.denom, cols)?;
    // The whole decode is compiled for the best instruction set the CPU has (pulp
    // detects it once): POPCNT/TZCNT for the bit masks, AVX2 for the IDCTs; every path
    // computes the same integers.
    pulp::Arch::new().dispatch(DecodeAll {
        scans: &h.scans,
        states: &mut states,
        f: &f,
        rows: &mut rows,
        tables: &h.tables,
        out: &mut out,
    })?;
    if states.iter().any(|s| !s.bits.sound()) {
        return Err(BAD_DATA);
    }
    Ok(out.finish())
}

/// Every MCU row: each scan through it, then its rendering.
struct DecodeAll<'a, 'b> {
    scans: &'a [Scan],
    states: &'a mut [ScanState<'b>],
    f: &'a Frame,
    rows: &'a mut [Row],
    tables: &'a [Huff],
    out: &'a mut Render,
}

impl pulp::WithSimd for DecodeAll<'_, '_> {
    type Output = R<()>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> R<()> {
        for my in 0..self.f.mcus_y {
            for row in self.rows.iter_mut() {
                row.coefs.fill([0; 64]);
                row.masks.fill(0);
            }
            for (scan, st) in self.scans.iter().zip(self.states.iter_mut()) {
                decode_row(scan, st, self.f, self.rows, my, self.tables)?;
            }
            self.out.row(self.f, self.rows, my, simd)?;
        }
        Ok(())
    }
}
