//! Rendering of each decoded MCU row: dequantization, the scaled IDCTs, libjpeg-turbo's
//! upsampling (jdsample.c) at the chosen scale, YCbCr to RGB and the rows of the output
//! raster.
//!
//! A row is rendered once the next one has been through its IDCTs: the vertical triangle
//! filters (4:4:0, and 4:2:0 at full scale) read the sample line below a row's last one,
//! as libjpeg's context rows do. So two MCU rows of samples are held, never more.

use super::idct;
use super::types::{Frame, Irregular, Row, Up, BAD_HEADER, R};
use crate::normalize::codec::{Layout, Raster};

/// The output raster, filled one MCU row at a time.
pub(super) struct Render {
    out_w: usize,
    out_h: usize,
    /// The output columns kept, `[x0, x1)`: the whole width, or the window asked for.
    x0: usize,
    x1: usize,
    /// Per component, the block columns taken through the IDCTs: the MCU columns of the
    /// window and one more on each side (the upsampling filters' context).
    blocks: Vec<(usize, usize)>,
    colour: bool,
    data: Vec<u8>,
    /// Output rows per MCU row.
    strip_h: usize,
    planes: Vec<Plane>,
    /// The MCU row held in `Plane::held`, waiting for the next one.
    pending: Option<usize>,
    /// One upsampled output line per component (unused for full-density ones).
    lines: Vec<Vec<u8>>,
    /// Column sums of the 2x2 triangle filter.
    sums: Vec<u16>,
}

/// One component's samples for two MCU rows.
struct Plane {
    /// Samples per line, lines per MCU row.
    w: usize,
    rows: usize,
    up: Up,
    /// libjpeg's downsampled width and height: the edge the filters replicate.
    dw: usize,
    dh: usize,
    /// The MCU row just through the IDCTs, the one waiting to be rendered, and the last
    /// line of the row before that.
    fresh: Vec<u8>,
    held: Vec<u8>,
    above: Vec<u8>,
}

impl Plane {
    /// Sample line `g` of the component (clamped to its real lines, as libjpeg's context
    /// rows replicate the first and last), for rendering MCU row `m`.
    #[inline(always)]
    fn sample_line(&self, m: usize, g: isize) -> &[u8] {
        let g = g.clamp(0, self.dh as isize - 1);
        let local = g - (m * self.rows) as isize;
        if local < 0 {
            &self.above
        } else if local as usize >= self.rows {
            &self.fresh[..self.w]
        } else {
            let at = local as usize * self.w;
            &self.held[at..at + self.w]
        }
    }

    /// Output line `r` of MCU row `m` of this component, `out_w` pixels wide.
    #[inline(always)]
    fn line<'a>(
        &'a self,
        m: usize,
        r: usize,
        out_w: usize,
        buf: &'a mut Vec<u8>,
        sums: &mut Vec<u16>,
    ) -> &'a [u8] {
        let at = |local: usize| &self.held[local * self.w..(local + 1) * self.w];
        match self.up {
            Up::Full => &at(r)[..out_w],
            Up::Rep(hx, vx) => {
                let src = at(r / vx);
                buf.clear();
                buf.extend((0..out_w).map(|x| src[x / hx]));
                &buf[..]
            }
            Up::H2V1 => {
                let s = &at(r)[..self.dw];
                let n = self.dw;
                buf.resize(2 * n, 0);
                let t = |a: u8, b: u8, bias: u16| ((3 * a as u16 + b as u16 + bias) >> 2) as u8;
                buf[0] = s[0];
                buf[1] = t(s[0], s[1], 2);
                for (o, w) in buf[2..2 * n - 2].chunks_exact_mut(2).zip(s.windows(3)) {
                    o[0] = t(w[1], w[0], 1);
                    o[1] = t(w[1], w[2], 2);
                }
                buf[2 * n - 2] = t(s[n - 1], s[n - 2], 1);
                buf[2 * n - 1] = s[n - 1];
                &buf[..out_w]
            }
            Up::H1V2 => {
                let g = (m * self.rows + r / 2) as isize;
                let near = self.sample_line(m, g);
                let (far, bias) = if r.is_multiple_of(2) {
                    (self.sample_line(m, g - 1), 1)
                } else {
                    (self.sample_line(m, g + 1), 2)
                };
                buf.clear();
                buf.extend(
                    near[..out_w]
                        .iter()
                        .zip(&far[..out_w])
                        .map(|(&a, &b)| ((3 * a as u16 + b as u16 + bias) >> 2) as u8),
                );
                &buf[..]
            }
            Up::H2V2 => {
                let g = (m * self.rows + r / 2) as isize;
                let near = self.sample_line(m, g);
                let far = if r.is_multiple_of(2) {
                    self.sample_line(m, g - 1)
                } else {
                    self.sample_line(m, g + 1)
                };
                let n = self.dw;
                sums.clear();
                sums.extend(
                    near[..n]
                        .iter()
                        .zip(&far[..n])
                        .map(|(&a, &b)| 3 * a as u16 + b as u16),
                );
                let c = &sums[..];
                buf.resize(2 * n, 0);
                buf[0] = ((4 * c[0] + 8) >> 4) as u8;
                buf[1] = ((3 * c[0] + c[1] + 7) >> 4) as u8;
                for (o, w) in buf[2..2 * n - 2].chunks_exact_mut(2).zip(c.windows(3)) {
                    o[0] = ((3 * w[1] + w[0] + 8) >> 4) as u8;
                    o[1] = ((3 * w[1] + w[2] + 7) >> 4) as u8;
                }
                buf[2 * n - 2] = ((3 * c[n - 1] + c[n - 2] + 8) >> 4) as u8;
                buf[2 * n - 1] = ((4 * c[n - 1] + 7) >> 4) as u8;
                &buf[..out_w]
            }
        }
    }
}

impl Render {
    /// `cols`: only these output columns `[x0, x1)` are wanted (clamped to the picture);
    /// the raster is that wide, and blocks that cannot reach it skip their IDCTs.
    pub(super) fn new(f: &Frame, denom: usize, cols: Option<(usize, usize)>) -> R<Self> {
        let colour = f.comps.len() == 3;
        let out_w = f.width.div_ceil(denom);
        let out_h = f.height.div_ceil(denom);
        let ch = if colour { 3 } else { 1 };
        let (x0, x1) = match cols {
            Some((a, b)) if a < b.min(out_w) => (a, b.min(out_w)),
            _ => (0, out_w),
        };
        // An MCU column's width in output pixels; the window's MCU columns and one more on
        // each side, whose samples the triangle filters read at the window's edges.
        let hmax = f.comps.iter().map(|c| c.h).max().unwrap_or(1).max(1);
        let mcu_w = (hmax * 8 / denom).max(1);
        let mx0 = (x0 / mcu_w).saturating_sub(1);
        let mx1 = (x1.div_ceil(mcu_w) + 1).min(f.mcus_x.max(1));
        let blocks = f
            .comps
            .iter()
            .map(|c| ((mx0 * c.h).min(c.stride), (mx1 * c.h).min(c.stride)))
            .collect();
        if f.comps.iter().any(|c| c.quant.is_none()) {
            return Err(BAD_HEADER);
        }
        let planes = f
            .comps
            .iter()
            .map(|c| {
                let (w, rows) = (c.stride * c.size, c.v * c.size);
                Plane {
                    w,
                    rows,
                    up: c.up,
                    dw: c.dw.max(1),
                    dh: c.dh.max(1),
                    fresh: vec![0u8; w * rows],
                    held: vec![0u8; w * rows],
                    above: vec![0u8; w],
                }
            })
            .collect();
        Ok(Render {
            out_w,
            out_h,
            x0,
            x1,
            blocks,
            colour,
            data: vec![0u8; (x1 - x0) * out_h * ch],
            strip_h: f.vmax * (8 / denom),
            planes,
            pending: None,
            lines: vec![Vec::new(); f.comps.len()],
            sums: Vec::new(),
        })
    }

    /// Takes MCU row `my` through its IDCTs, then renders the row before it (whose context
    /// below is now known).
    #[inline(always)]
    pub(super) fn row<S: pulp::Simd>(
        &mut self,
        f: &Frame,
        rows: &[Row],
        my: usize,
        simd: S,
    ) -> R<()> {
        if !pulp::WithSimd::with_simd(
            RowIdct {
                f,
                rows,
                planes: &mut self.planes,
                blocks: &self.blocks,
            },
            simd,
        ) {
            return Err(Irregular("coefficients outside the conforming range"));
        }
        if let Some(m) = self.pending {
            self.emit(m);
        }
        for p in &mut self.planes {
            if matches!(p.up, Up::H1V2 | Up::H2V2) {
                let last = (p.rows - 1) * p.w;
                p.above.copy_from_slice(&p.held[last..last + p.w]);
            }
            std::mem::swap(&mut p.held, &mut p.fresh);
        }
        self.pending = Some(my);
        Ok(())
    }

    /// The output rows of MCU row `m` (held), upsampled and colour-converted.
    fn emit(&mut self, m: usize) {
        let (out_w, ch) = (self.out_w, if self.colour { 3 } else { 1 });
        let (x0, x1) = (self.x0, self.x1);
        let kept = x1 - x0;
        let y0 = m * self.strip_h;
        let nrows = self.strip_h.min(self.out_h.saturating_sub(y0));
        for r in 0..nrows {
            let dst = &mut self.data[(y0 + r) * kept * ch..(y0 + r + 1) * kept * ch];
            let sums = &mut self.sums;
            let mut lines = self
                .planes
                .iter()
                .zip(self.lines.iter_mut())
                .map(|(p, buf)| &p.line(m, r, out_w, buf, sums)[x0..x1]);
            match (lines.next(), lines.next(), lines.next()) {
                (Some(py), Some(pb), Some(pr)) => {
                    for (((px, &y), &cb), &cr) in dst.chunks_exact_mut(3).zip(py).zip(pb).zip(pr) {
                        let (y, cb, cr) = (y as i32, cb as i32 - 128, cr as i32 - 128);
                        // jdcolor.c's fixed-point YCbCr -> RGB (16-bit fractions).
                        px[0] = (y + ((91881 * cr + 32768) >> 16)).clamp(0, 255) as u8;
                        px[1] =
                            (y + ((-22554 * cb - 46802 * cr + 32768) >> 16)).clamp(0, 255) as u8;
                        px[2] = (y + ((116130 * cb + 32768) >> 16)).clamp(0, 255) as u8;
                    }
                }
                (Some(g), _, _) => dst.copy_from_slice(g),
                _ => {}
            }
        }
    }

    pub(super) fn finish(mut self) -> Raster {
        if let Some(m) = self.pending.take() {
            self.emit(m);
        }
        Raster {
            width: (self.x1 - self.x0) as u32,
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
    planes: &'a mut [Plane],
    /// Per component, the block columns to transform (see [`Render::blocks`]).
    blocks: &'a [(usize, usize)],
}

impl pulp::WithSimd for RowIdct<'_> {
    /// Whether every dequantized coefficient was within [`CONFORMING`].
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> bool {
        let mut block = [0i32; 64];
        let (mut peak, mut bad) = (0u32, 0u32);
        for (((c, row), plane), &(b0, b1)) in self
            .f
            .comps
            .iter()
            .zip(self.rows)
            .zip(self.planes.iter_mut())
            .zip(self.blocks)
        {
            let q = c.quant.as_ref().expect("checked in Render::new");
            let pw = plane.w;
            let plane = &mut plane.fresh;
            let sz = c.size;
            for v in 0..c.v {
                for bx in b0..b1 {
                    let coef = &row.coefs[v * c.stride + bx];
                    let out = &mut plane[v * sz * pw + bx * sz..];
                    if sz == 1 {
                        block[0] = coef[0] as i32 * q[0] as i32;
                        peak |= block[0].unsigned_abs();
                        bad |= idct::idct1(&block, out, pw);
                        continue;
                    }
                    // All 64 (the IDCT reads only its set): one vectorized pass.
                    for ((b, &x), &m) in block.iter_mut().zip(coef).zip(q) {
                        *b = x as i32 * m as i32;
                    }
                    peak |= block.iter().fold(0, |a, &b| a | b.unsigned_abs());
                    bad |= match sz {
                        2 => idct::idct2(&block, out, pw),
                        4 => idct::idct4(&block, out, pw),
                        _ => idct::idct8(&block, out, pw),
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
