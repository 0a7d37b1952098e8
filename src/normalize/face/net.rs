//! YuNet's forward pass in plain Rust.
//!
//! The network is a list of four kinds of operation (read from `yunet_n.bin`, written by
//! `models/yunet/convert.py`): 1x1 and 3x3 convolutions (the first one with stride 2),
//! depthwise 3x3 convolutions, 2x2 max pooling and a nearest-neighbour 2x upsample added to
//! a skip connection. Feature maps are planar (channel, row, column) `f32`.
//!
//! **Deterministic on every CPU.** Each output value is computed by the same sequence of
//! IEEE-754 multiplications and additions in the same order, whatever the instruction set:
//! the loops vectorize across *independent* output values (pixels), never across the terms of
//! one sum, and Rust never fuses a multiply and an add into an FMA on its own. So the AVX2
//! code that `pulp` dispatches to on CPUs that have it, the SSE2 baseline, NEON and the
//! scalar fallback all give bit-identical maps. The only transcendental function, `exp` in
//! the sigmoid and the box sizes, comes from the `libm` crate (software, the same bits
//! everywhere) instead of the platform's C library.

use std::sync::OnceLock;

/// The weights, as `models/yunet/convert.py` wrote them.
static BLOB: &[u8] = include_bytes!("yunet_n.bin");

/// One operation of the network.
enum Op {
    /// A dense convolution (`kernel` 1, or 3 with stride 1 or 2), weights `[cout][cin][k][k]`.
    Conv {
        kernel: usize,
        stride: usize,
        relu: bool,
        input: usize,
        output: usize,
        cin: usize,
        cout: usize,
        weights: Vec<f32>,
        bias: Vec<f32>,
    },
    /// A depthwise 3x3 convolution, stride 1, weights `[c][3][3]`.
    Depthwise {
        relu: bool,
        input: usize,
        output: usize,
        channels: usize,
        weights: Vec<f32>,
        bias: Vec<f32>,
    },
    /// 2x2 max pooling, stride 2.
    MaxPool { input: usize, output: usize },
    /// `output = skip + upsample2x(small)`.
    UpAdd {
        small: usize,
        skip: usize,
        output: usize,
    },
}

/// The parsed network.
pub(super) struct Net {
    ops: Vec<Op>,
    slots: usize,
    /// cls 8/16/32, obj 8/16/32, bbox 8/16/32.
    outputs: [usize; 9],
    /// For each slot, the index of the last op that reads it (freed after it).
    last_use: Vec<usize>,
}

/// A feature map.
#[derive(Default)]
pub(super) struct Map {
    pub(super) c: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) data: Vec<f32>,
}

/// The nine head maps the detector decodes.
pub(super) struct Heads {
    /// cls, obj and bbox maps at strides 8, 16 and 32.
    pub(super) maps: [Map; 9],
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    }
    fn u32(&mut self) -> Option<usize> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn f32s(&mut self, n: usize) -> Option<Vec<f32>> {
        let b = self.take(n.checked_mul(4)?)?;
        Some(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }
}

impl Net {
    /// The shipped network, parsed once per process.
    pub(super) fn get() -> &'static Net {
        static NET: OnceLock<Net> = OnceLock::new();
        // The blob is part of the binary and checked by the crate's tests: failing to parse
        // it is a build defect, not an input error.
        NET.get_or_init(|| Net::parse(BLOB).expect("the shipped YuNet weights parse"))
    }

    fn parse(blob: &[u8]) -> Option<Net> {
        let mut r = Reader(blob);
        if r.take(8)? != b"UPYUNET1" {
            return None;
        }
        let n_ops = r.u32()?;
        let slots = r.u32()?;
        let mut outputs = [0usize; 9];
        for o in &mut outputs {
            *o = r.u16()?;
        }
        let mut ops = Vec::with_capacity(n_ops);
        for _ in 0..n_ops {
            let op = match r.u8()? {
                1 => {
                    let kernel = r.u8()? as usize;
                    let stride = r.u8()? as usize;
                    let relu = r.u8()? != 0;
                    let depthwise = r.u8()? != 0;
                    let (input, output, cin, cout) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
                    if depthwise {
                        Op::Depthwise {
                            relu,
                            input,
                            output,
                            channels: cout,
                            weights: r.f32s(cout * 9)?,
                            bias: r.f32s(cout)?,
                        }
                    } else {
                        Op::Conv {
                            kernel,
                            stride,
                            relu,
                            input,
                            output,
                            cin,
                            cout,
                            weights: r.f32s(cout * cin * kernel * kernel)?,
                            bias: r.f32s(cout)?,
                        }
                    }
                }
                2 => Op::MaxPool {
                    input: r.u16()?,
                    output: r.u16()?,
                },
                3 => Op::UpAdd {
                    small: r.u16()?,
                    skip: r.u16()?,
                    output: r.u16()?,
                },
                _ => return None,
            };
            ops.push(op);
        }
        if !r.0.is_empty() {
            return None;
        }
        let mut last_use = vec![usize::MAX; slots];
        for (i, op) in ops.iter().enumerate() {
            let inputs: &[usize] = match op {
                Op::Conv { input, .. } | Op::Depthwise { input, .. } | Op::MaxPool { input, .. } => {
                    std::slice::from_ref(input)
                }
                Op::UpAdd { small, skip, .. } => &[*small, *skip],
            };
            for &s in inputs {
                *last_use.get_mut(s)? = i;
            }
        }
        for &o in &outputs {
            *last_use.get_mut(o)? = usize::MAX;
        }
        Some(Net {
            ops,
            slots,
            outputs,
            last_use,
        })
    }

    /// Runs the network on a BGR image (planar, 0..255) whose sides are multiples of 32.
    /// `simd: false` forces the scalar code path (for the tests that compare the two).
    pub(super) fn run(&self, input: Map, simd: bool) -> Heads {
        let arch = if simd {
            pulp::Arch::new()
        } else {
            pulp::Arch::Scalar
        };
        arch.dispatch(Forward { net: self, input })
    }
}

struct Forward<'a> {
    net: &'a Net,
    input: Map,
}

impl pulp::WithSimd for Forward<'_> {
    type Output = Heads;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Heads {
        let net = self.net;
        let mut slots: Vec<Map> = (0..net.slots).map(|_| Map::default()).collect();
        slots[0] = self.input;
        for (i, op) in net.ops.iter().enumerate() {
            let out = match op {
                Op::Conv {
                    kernel,
                    stride,
                    relu,
                    input,
                    cin,
                    cout,
                    weights,
                    bias,
                    ..
                } => {
                    let x = &slots[*input];
                    debug_assert_eq!(x.c, *cin);
                    if *kernel == 1 {
                        conv1x1(x, *cout, weights, bias, *relu)
                    } else {
                        conv3x3(x, *stride, *cout, weights, bias, *relu)
                    }
                }
                Op::Depthwise {
                    relu,
                    input,
                    channels,
                    weights,
                    bias,
                    ..
                } => depthwise(&slots[*input], *channels, weights, bias, *relu),
                Op::MaxPool { input, .. } => maxpool(&slots[*input]),
                Op::UpAdd { small, skip, .. } => upadd(&slots[*small], &slots[*skip]),
            };
            let output = match op {
                Op::Conv { output, .. }
                | Op::Depthwise { output, .. }
                | Op::MaxPool { output, .. }
                | Op::UpAdd { output, .. } => *output,
            };
            slots[output] = out;
            for (s, &last) in net.last_use.iter().enumerate() {
                if last == i {
                    slots[s] = Map::default();
                }
            }
        }
        let maps = net.outputs.map(|o| std::mem::take(&mut slots[o]));
        Heads { maps }
    }
}

/// Pixels per block of the matrix kernels: two AVX2 vectors, four SSE2 or NEON vectors.
const LANES: usize = 16;
/// Output channels per block.
const ROWS: usize = 4;

/// `out[co][p] = act(sum_ci(w[co][ci] * x[ci][p]) + b[co])`, the sum taken in `ci` order.
#[inline(always)]
fn matmul(
    x: &[f32],
    cin: usize,
    pixels: usize,
    cout: usize,
    w: &[f32],
    b: &[f32],
    relu: bool,
) -> Vec<f32> {
    let mut out = vec![0f32; cout * pixels];
    let finish = |v: f32, co: usize| {
        let v = v + b[co];
        if relu {
            v.max(0.0)
        } else {
            v
        }
    };
    let mut co = 0;
    while co < cout {
        let rows = ROWS.min(cout - co);
        let mut p = 0;
        while p + LANES <= pixels {
            let mut acc = [[0f32; LANES]; ROWS];
            for ci in 0..cin {
                let xs: &[f32; LANES] = x[ci * pixels + p..ci * pixels + p + LANES]
                    .try_into()
                    .expect("LANES values");
                for (r, a) in acc.iter_mut().enumerate().take(rows) {
                    let wv = w[(co + r) * cin + ci];
                    for l in 0..LANES {
                        a[l] += wv * xs[l];
                    }
                }
            }
            for (r, a) in acc.iter().enumerate().take(rows) {
                let o = &mut out[(co + r) * pixels + p..(co + r) * pixels + p + LANES];
                for l in 0..LANES {
                    o[l] = finish(a[l], co + r);
                }
            }
            p += LANES;
        }
        // The last few pixels: the same sums in the same order, one value at a time.
        for r in 0..rows {
            for q in p..pixels {
                let mut a = 0f32;
                for ci in 0..cin {
                    a += w[(co + r) * cin + ci] * x[ci * pixels + q];
                }
                out[(co + r) * pixels + q] = finish(a, co + r);
            }
        }
        co += rows;
    }
    out
}

#[inline(always)]
fn conv1x1(x: &Map, cout: usize, w: &[f32], b: &[f32], relu: bool) -> Map {
    let pixels = x.h * x.w;
    Map {
        c: cout,
        h: x.h,
        w: x.w,
        data: matmul(&x.data, x.c, pixels, cout, w, b, relu),
    }
}

/// A dense 3x3 convolution with padding 1: the 9 taps of every input channel are laid out
/// as rows (`im2col`, in the weights' `[ci][ky][kx]` order), then multiplied like a 1x1.
#[inline(always)]
fn conv3x3(x: &Map, stride: usize, cout: usize, w: &[f32], b: &[f32], relu: bool) -> Map {
    let (oh, ow) = (x.h.div_ceil(stride), x.w.div_ceil(stride));
    let pixels = oh * ow;
    let rows = x.c * 9;
    let mut col = vec![0f32; rows * pixels];
    for ci in 0..x.c {
        let plane = &x.data[ci * x.h * x.w..(ci + 1) * x.h * x.w];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &mut col[(ci * 9 + ky * 3 + kx) * pixels..][..pixels];
                for oy in 0..oh {
                    let iy = (oy * stride + ky) as isize - 1;
                    if iy < 0 || iy >= x.h as isize {
                        continue;
                    }
                    let src = &plane[iy as usize * x.w..(iy as usize + 1) * x.w];
                    let dst = &mut row[oy * ow..(oy + 1) * ow];
                    for (ox, d) in dst.iter_mut().enumerate() {
                        let ix = (ox * stride + kx) as isize - 1;
                        if ix >= 0 && (ix as usize) < x.w {
                            *d = src[ix as usize];
                        }
                    }
                }
            }
        }
    }
    Map {
        c: cout,
        h: oh,
        w: ow,
        data: matmul(&col, rows, pixels, cout, w, b, relu),
    }
}

/// A depthwise 3x3 convolution with padding 1, stride 1; taps summed in `[ky][kx]` order.
#[inline(always)]
fn depthwise(x: &Map, channels: usize, w: &[f32], b: &[f32], relu: bool) -> Map {
    let (h, wd) = (x.h, x.w);
    let pw = wd + 2;
    let mut padded = vec![0f32; (h + 2) * pw];
    let mut out = vec![0f32; channels * h * wd];
    let mut acc = vec![0f32; wd];
    for c in 0..channels {
        let plane = &x.data[c * h * wd..(c + 1) * h * wd];
        for y in 0..h {
            padded[(y + 1) * pw + 1..(y + 1) * pw + 1 + wd]
                .copy_from_slice(&plane[y * wd..(y + 1) * wd]);
        }
        let k = &w[c * 9..c * 9 + 9];
        for y in 0..h {
            acc.iter_mut().for_each(|a| *a = 0.0);
            for ky in 0..3 {
                let row = &padded[(y + ky) * pw..(y + ky + 1) * pw];
                for kx in 0..3 {
                    let kv = k[ky * 3 + kx];
                    let src = &row[kx..kx + wd];
                    for (a, s) in acc.iter_mut().zip(src) {
                        *a += kv * *s;
                    }
                }
            }
            let o = &mut out[(c * h + y) * wd..(c * h + y + 1) * wd];
            for (d, a) in o.iter_mut().zip(&acc) {
                let v = *a + b[c];
                *d = if relu { v.max(0.0) } else { v };
            }
        }
    }
    Map {
        c: channels,
        h,
        w: wd,
        data: out,
    }
}

#[inline(always)]
fn maxpool(x: &Map) -> Map {
    let (oh, ow) = (x.h / 2, x.w / 2);
    let mut out = vec![0f32; x.c * oh * ow];
    for c in 0..x.c {
        let plane = &x.data[c * x.h * x.w..(c + 1) * x.h * x.w];
        for y in 0..oh {
            let r0 = &plane[2 * y * x.w..(2 * y + 1) * x.w];
            let r1 = &plane[(2 * y + 1) * x.w..(2 * y + 2) * x.w];
            let o = &mut out[(c * oh + y) * ow..(c * oh + y + 1) * ow];
            for (xo, d) in o.iter_mut().enumerate() {
                *d = r0[2 * xo]
                    .max(r0[2 * xo + 1])
                    .max(r1[2 * xo])
                    .max(r1[2 * xo + 1]);
            }
        }
    }
    Map {
        c: x.c,
        h: oh,
        w: ow,
        data: out,
    }
}

#[inline(always)]
fn upadd(small: &Map, skip: &Map) -> Map {
    let mut out = skip.data.clone();
    for c in 0..skip.c.min(small.c) {
        for y in 0..skip.h {
            let sy = (y / 2).min(small.h.saturating_sub(1));
            let srow = &small.data[(c * small.h + sy) * small.w..(c * small.h + sy + 1) * small.w];
            let o = &mut out[(c * skip.h + y) * skip.w..(c * skip.h + y + 1) * skip.w];
            for (x, d) in o.iter_mut().enumerate() {
                *d += srow[(x / 2).min(small.w.saturating_sub(1))];
            }
        }
    }
    Map {
        c: skip.c,
        h: skip.h,
        w: skip.w,
        data: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_weights_parse() {
        let net = Net::get();
        assert!(net.ops.len() > 40);
        assert_eq!(net.outputs.len(), 9);
    }

    #[test]
    fn a_corrupt_blob_is_refused() {
        assert!(Net::parse(b"UPYUNET1").is_none());
        assert!(Net::parse(&BLOB[..BLOB.len() - 1]).is_none());
        assert!(Net::parse(b"nothing").is_none());
    }

    #[test]
    fn scalar_and_dispatched_passes_agree_bit_for_bit() {
        let (h, w) = (64, 96);
        let mut data = vec![0f32; 3 * h * w];
        for (i, v) in data.iter_mut().enumerate() {
            *v = ((i * 37 + i / 7) % 256) as f32;
        }
        let input = || Map {
            c: 3,
            h,
            w,
            data: data.clone(),
        };
        let a = Net::get().run(input(), true);
        let b = Net::get().run(input(), false);
        for (x, y) in a.maps.iter().zip(&b.maps) {
            assert_eq!((x.c, x.h, x.w), (y.c, y.h, y.w));
            let xb: Vec<u32> = x.data.iter().map(|v| v.to_bits()).collect();
            let yb: Vec<u32> = y.data.iter().map(|v| v.to_bits()).collect();
            assert_eq!(xb, yb);
        }
    }
}
