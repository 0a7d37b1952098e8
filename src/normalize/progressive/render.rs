//! Rendering of each decoded MCU row: dequantization, the scaled IDCTs, YCbCr to RGB and the
//! rows of the output raster.

use super::idct;
use super::types::{Frame, Irregular, Row, R};
use crate::normalize::codec::{Layout, Raster};

/// The output raster, filled one MCU row at a time.
pub(super) struct Render {
    out_w: usize,
    out_h: usize,
    colour: bool,
    data: Vec<u8>,
    strip_w: usize,
    strip_h: usize,
    /// One MCU row of every component's pixels (all planes have the output's pixel density:
    /// 4:2:0 chroma is decoded with a doubled IDCT, as libjpeg does).
    planes: Vec<Vec<u8>>,
}

impl Render {
    pub(super) fn new(f: &Frame, denom: usize) -> R<Self> {
        let colour = f.comps.len() == 3;
        let out_w = f.width.div_ceil(denom);
        let out_h = f.height.div_ceil(denom);
        let ch = if colour { 3 } else { 1 };
        let strip_w = f.mcus_x * f.hmax * (8 / denom);
        let strip_h = f.vmax * (8 / denom);
        if f.comps.iter().any(|c| c.quant.is_none()) {
            return Err(Irregular);
        }
        Ok(Render {
            out_w,
            out_h,
            colour,
            data: vec![0u8; out_w * out_h * ch],
            strip_w,
            strip_h,
            planes: f
                .comps
                .iter()
                .map(|_| vec![0u8; strip_w * strip_h])
                .collect(),
        })
    }

    #[inline(always)]
    pub(super) fn row<S: pulp::Simd>(
        &mut self,
        f: &Frame,
        rows: &[Row],
        my: usize,
        simd: S,
    ) -> R<()> {
        let strip_w = self.strip_w;
        let planes = &mut self.planes;
        if !pulp::WithSimd::with_simd(
            RowIdct {
                f,
                rows,
                planes,
                strip_w,
            },
            simd,
        ) {
            return Err(Irregular);
        }
        let (out_w, ch) = (self.out_w, if self.colour { 3 } else { 1 });
        let y0 = my * self.strip_h;
        let nrows = self.strip_h.min(self.out_h.saturating_sub(y0));
        for r in 0..nrows {
            let dst = &mut self.data[(y0 + r) * out_w * ch..(y0 + r + 1) * out_w * ch];
            let line = r * strip_w..r * strip_w + out_w;
            if self.colour {
                let (py, pb, pr) = (
                    &self.planes[0][line.clone()],
                    &self.planes[1][line.clone()],
                    &self.planes[2][line],
                );
                for (((px, &y), &cb), &cr) in dst.chunks_exact_mut(3).zip(py).zip(pb).zip(pr) {
                    let (y, cb, cr) = (y as i32, cb as i32 - 128, cr as i32 - 128);
                    // jdcolor.c's fixed-point YCbCr -> RGB (16-bit fractions).
                    px[0] = (y + ((91881 * cr + 32768) >> 16)).clamp(0, 255) as u8;
                    px[1] = (y + ((-22554 * cb - 46802 * cr + 32768) >> 16)).clamp(0, 255) as u8;
                    px[2] = (y + ((116130 * cb + 32768) >> 16)).clamp(0, 255) as u8;
                }
            } else {
                dst.copy_from_slice(&self.planes[0][line]);
            }
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Raster {
        Raster {
            width: self.out_w as u32,
            height: self.out_h as u32,
            layout: if self.colour {
                Layout::Rgb
            } else {
                Layout::Gray
            },
            data: self.data,
        }
    }
}

/// The dequantization and IDCTs of one MCU row, as a pulp operation.
struct RowIdct<'a> {
    f: &'a Frame,
    rows: &'a [Row],
    planes: &'a mut [Vec<u8>],
    strip_w: usize,
}

impl pulp::WithSimd for RowIdct<'_> {
    /// Whether every dequantized coefficient was within [`CONFORMING`].
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> bool {
        let strip_w = self.strip_w;
        let mut block = [0i32; 64];
        let (mut peak, mut bad) = (0u32, 0u32);
        for ((c, row), plane) in self
            .f
            .comps
            .iter()
            .zip(self.rows)
            .zip(self.planes.iter_mut())
        {
            let q = c.quant.as_ref().expect("checked in Render::new");
            let sz = c.size;
            for v in 0..c.v {
                for bx in 0..c.stride {
                    let coef = &row.coefs[v * c.stride + bx];
                    let out = &mut plane[v * sz * strip_w + bx * sz..];
                    if sz == 1 {
                        block[0] = coef[0] as i32 * q[0] as i32;
                        peak |= block[0].unsigned_abs();
                        bad |= idct::idct1(&block, out, strip_w);
                        continue;
                    }
                    // All 64 (the IDCT reads only its set): one vectorized pass.
                    for ((b, &x), &m) in block.iter_mut().zip(coef).zip(q) {
                        *b = x as i32 * m as i32;
                    }
                    peak |= block.iter().fold(0, |a, &b| a | b.unsigned_abs());
                    bad |= match sz {
                        2 => idct::idct2(&block, out, strip_w),
                        4 => idct::idct4(&block, out, strip_w),
                        _ => idct::idct8(&block, out, strip_w),
                    };
                }
            }
        }
        peak <= CONFORMING && bad == 0
    }
}

/// The largest dequantized coefficient magnitude this decoder renders itself (an OR of
/// magnitudes per row is checked, so a power of two minus one). A conforming 8-bit file's
/// dequantized coefficients stay within about +-1024 plus half a quantization step; far
/// beyond, libjpeg-turbo's SIMD IDCTs dequantize in 16 bits and wrap where the 32-bit ones
/// here do not. Such a (hostile or broken) file is left to libjpeg, as is any block whose
/// IDCT leaves the range where every implementation agrees (see `idct`), so that every
/// output stays equal to libjpeg's. (Found by the fuzz target.)
const CONFORMING: u32 = (1 << 11) - 1;
