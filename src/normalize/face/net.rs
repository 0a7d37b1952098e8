//! YuNet's forward pass in plain Rust.
//!
//! The network is a list of four kinds of operation (read from `yunet_n.bin`, written by
//! `models/yunet/convert.py`): 1x1 and 3x3 convolutions (the first one with stride 2),
//! depthwise 3x3 convolutions, 2x2 max pooling and a nearest-neighbour 2x upsample added to
//! a skip connection. Feature maps are channels-last (row, column, channel) `f32`, so the
//! vectors of the kernels run across channels.
//!
//! **Deterministic on every CPU.** Each output value is computed by the same sequence of
//! IEEE-754 multiplications and additions in the same order, whatever the instruction set:
//! the loops vectorize across *independent* output values (pixels), never across the terms of
//! one sum, and Rust never fuses a multiply and an add into an FMA on its own. So the AVX2
//! code that `pulp` dispatches to on CPUs that have it, the SSE2 baseline, NEON and the
//! scalar fallback all give bit-identical maps. The only transcendental function, `exp` in
//! the sigmoid and the box sizes, comes from the `libm` crate (software, the same bits
//! everywhere) instead of the platform's C library.

use std::cell::RefCell;
use std::sync::OnceLock;

thread_local! {
    /// Feature-map buffers of this thread's earlier passes: a map of a few hundred KB from
    /// the allocator is fresh pages from the kernel on every pass (page faults cost more
    /// than the convolution that fills them), so buffers are kept and reused.
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// At most this many buffers are kept per thread (a pass has about five maps alive).
const POOL_BUFFERS: usize = 8;

/// A buffer of `len` values whose contents are unspecified (every kernel writes all of
/// its output).
fn take(len: usize) -> Vec<f32> {
    let reused = POOL.with(|p| {
        let mut p = p.borrow_mut();
        let best = p
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        best.map(|i| p.swap_remove(i))
    });
    match reused {
        Some(mut v) => {
            if v.len() >= len {
                v.truncate(len);
            } else {
                v.resize(len, 0.0);
            }
            v
        }
        None => vec![0f32; len],
    }
}

/// Returns a buffer to this thread's pool.
fn give(v: Vec<f32>) {
    if v.capacity() == 0 {
        return;
    }
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_BUFFERS {
            p.push(v);
        } else if let Some(i) = (0..p.len()).min_by_key(|&i| p[i].capacity()) {
            if p[i].capacity() < v.capacity() {
                p[i] = v;
            }
        }
    });
}

/// The weights, as `models/yunet/convert.py` wrote them.
static BLOB: &[u8] = include_bytes!("yunet_n.bin");

/// One operation of the network.
enum Op {
    /// A dense convolution (`kernel` 1, or 3 with stride 1 or 2), weights `[cin][k][k][cout]`.
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
    /// A depthwise 3x3 convolution, stride 1, weights `[3][3][c]`.
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
        self.take(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
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
                        // Stored `[c][9]`; the kernel reads `[9][c]`.
                        let w = r.f32s(cout * 9)?;
                        let mut weights = vec![0f32; w.len()];
                        for c in 0..cout {
                            for t in 0..9 {
                                weights[t * cout + c] = w[c * 9 + t];
                            }
                        }
                        Op::Depthwise {
                            relu,
                            input,
                            output,
                            channels: cout,
                            weights,
                            bias: r.f32s(cout)?,
                        }
                    } else {
                        // Stored `[cout][cin*k*k]`; the kernels read `[cin*k*k][cout]`.
                        let w = r.f32s(cout * cin * kernel * kernel)?;
                        let taps = cin * kernel * kernel;
                        let mut weights = vec![0f32; w.len()];
                        for co in 0..cout {
                            for t in 0..taps {
                                weights[t * cout + co] = w[co * taps + t];
                            }
                        }
                        Op::Conv {
                            kernel,
                            stride,
                            relu,
                            input,
                            output,
                            cin,
                            cout,
                            weights,
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
                Op::Conv { input, .. }
                | Op::Depthwise { input, .. }
                | Op::MaxPool { input, .. } => std::slice::from_ref(input),
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

    /// Runs the network on a BGR image (channels last, 0..255) whose sides are multiples of
    /// 32.
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
    fn with_simd<S: pulp::Simd>(self, simd: S) -> Heads {
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
                        conv1x1(simd, x, *cout, weights, bias, *relu)
                    } else {
                        conv3x3(simd, x, *stride, *cout, weights, bias, *relu)
                    }
                }
                Op::Depthwise {
                    relu,
                    input,
                    channels,
                    weights,
                    bias,
                    ..
                } => depthwise(simd, &slots[*input], *channels, weights, bias, *relu),
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
                    give(std::mem::take(&mut slots[s]).data);
                }
            }
        }
        let maps = net.outputs.map(|o| std::mem::take(&mut slots[o]));
        Heads { maps }
    }
}

/// One vector from the first `S::F32_LANES` values of `s`.
#[inline(always)]
fn load<S: pulp::Simd>(s: &[f32]) -> S::f32s {
    S::as_simd_f32s(s).0[0]
}

/// Stores one vector into the first `S::F32_LANES` values of `s`.
#[inline(always)]
fn store<S: pulp::Simd>(s: &mut [f32], v: S::f32s) {
    S::as_mut_simd_f32s(s).0[0] = v;
}

/// `max(v, 0)` as a mask on the bits (`+0.0` for anything not above 0): the same bits on
/// every path, vectorized as an AND.
#[inline(always)]
fn relu_in_place(v: &mut [f32]) {
    for x in v {
        let keep = ((*x > 0.0) as u32).wrapping_neg();
        *x = f32::from_bits(x.to_bits() & keep);
    }
}

/// `out[p][co] = sum_ci(x[p][ci] * w[ci][co]) + b[co]` for channels-last maps, each sum
/// taken in `ci` order from 0.0 (one multiplication and one addition per term, never
/// fused). Vectors run across output channels; when `cout` is not 2, 4, 8 or 16 vectors the
/// scalar loop computes the same sums.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn matmul<S: pulp::Simd>(
    simd: S,
    x: &[f32],
    cin: usize,
    pixels: usize,
    cout: usize,
    wt: &[f32],
    b: &[f32],
    relu: bool,
) -> Vec<f32> {
    let mut out = take(cout * pixels);
    let lanes = S::F32_LANES;
    let vectors = if cout.is_multiple_of(lanes) {
        cout / lanes
    } else {
        0
    };
    match vectors {
        16 => gemm::<S, 16>(simd, x, cin, pixels, wt, b, &mut out),
        8 => gemm::<S, 8>(simd, x, cin, pixels, wt, b, &mut out),
        4 => gemm::<S, 4>(simd, x, cin, pixels, wt, b, &mut out),
        2 => gemm::<S, 2>(simd, x, cin, pixels, wt, b, &mut out),
        _ => {
            for p in 0..pixels {
                let xp = &x[p * cin..(p + 1) * cin];
                for co in 0..cout {
                    let mut a = 0f32;
                    for (ci, xv) in xp.iter().enumerate() {
                        a += xv * wt[ci * cout + co];
                    }
                    out[p * cout + co] = a + b[co];
                }
            }
        }
    }
    if relu {
        relu_in_place(&mut out);
    }
    out
}

/// [`matmul`] with `V` vectors of output channels: two pixels at a time share each weight
/// load.
#[inline(always)]
fn gemm<S: pulp::Simd, const V: usize>(
    simd: S,
    x: &[f32],
    cin: usize,
    pixels: usize,
    wt: &[f32],
    b: &[f32],
    out: &mut [f32],
) {
    let lanes = S::F32_LANES;
    let cout = V * lanes;
    let zero = simd.splat_f32s(0.0);
    let bias: [S::f32s; V] = std::array::from_fn(|v| load::<S>(&b[v * lanes..]));
    let mut p = 0;
    while p < pixels {
        let two = p + 1 < pixels;
        let mut a0 = [zero; V];
        let mut a1 = [zero; V];
        let x0 = &x[p * cin..(p + 1) * cin];
        let x1 = if two {
            &x[(p + 1) * cin..(p + 2) * cin]
        } else {
            x0
        };
        for ci in 0..cin {
            let w = &wt[ci * cout..(ci + 1) * cout];
            let s0 = simd.splat_f32s(x0[ci]);
            let s1 = simd.splat_f32s(x1[ci]);
            for v in 0..V {
                let wv = load::<S>(&w[v * lanes..]);
                a0[v] = simd.add_f32s(a0[v], simd.mul_f32s(s0, wv));
                a1[v] = simd.add_f32s(a1[v], simd.mul_f32s(s1, wv));
            }
        }
        for v in 0..V {
            store::<S>(
                &mut out[p * cout + v * lanes..],
                simd.add_f32s(a0[v], bias[v]),
            );
            if two {
                store::<S>(
                    &mut out[(p + 1) * cout + v * lanes..],
                    simd.add_f32s(a1[v], bias[v]),
                );
            }
        }
        p += 2;
    }
}

#[inline(always)]
fn conv1x1<S: pulp::Simd>(simd: S, x: &Map, cout: usize, w: &[f32], b: &[f32], relu: bool) -> Map {
    let pixels = x.h * x.w;
    Map {
        c: cout,
        h: x.h,
        w: x.w,
        data: matmul(simd, &x.data, x.c, pixels, cout, w, b, relu),
    }
}

/// A dense 3x3 convolution with padding 1 (the network's first layer: 3 channels in,
/// stride 2). The terms are summed in the weights' `[ci][ky][kx]` order from 0.0, the
/// padding's zeros included, then the bias. `w` is `[ci][ky][kx][cout]`.
#[inline(always)]
fn conv3x3<S: pulp::Simd>(
    simd: S,
    x: &Map,
    stride: usize,
    cout: usize,
    w: &[f32],
    b: &[f32],
    relu: bool,
) -> Map {
    let (oh, ow) = (x.h.div_ceil(stride), x.w.div_ceil(stride));
    let mut out = take(oh * ow * cout);
    let lanes = S::F32_LANES;
    let vectors = if cout.is_multiple_of(lanes) {
        cout / lanes
    } else {
        0
    };
    match vectors {
        16 => c3::<S, 16>(simd, x, stride, w, b, &mut out),
        8 => c3::<S, 8>(simd, x, stride, w, b, &mut out),
        4 => c3::<S, 4>(simd, x, stride, w, b, &mut out),
        2 => c3::<S, 2>(simd, x, stride, w, b, &mut out),
        _ => {
            for oy in 0..oh {
                for ox in 0..ow {
                    for co in 0..cout {
                        let mut a = 0f32;
                        for ci in 0..x.c {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let v = tap(x, oy * stride + ky, ox * stride + kx, ci);
                                    a += v * w[(ci * 9 + ky * 3 + kx) * cout + co];
                                }
                            }
                        }
                        out[(oy * ow + ox) * cout + co] = a + b[co];
                    }
                }
            }
        }
    }
    if relu {
        relu_in_place(&mut out);
    }
    Map {
        c: cout,
        h: oh,
        w: ow,
        data: out,
    }
}

/// The input value under a 3x3 tap at padded coordinates (`py`, `px` are one more than the
/// map's), 0.0 in the padding.
#[inline(always)]
fn tap(x: &Map, py: usize, px: usize, ci: usize) -> f32 {
    if py == 0 || px == 0 || py > x.h || px > x.w {
        0.0
    } else {
        x.data[((py - 1) * x.w + px - 1) * x.c + ci]
    }
}

/// [`conv3x3`] with `V` vectors of output channels.
#[inline(always)]
fn c3<S: pulp::Simd, const V: usize>(
    simd: S,
    x: &Map,
    stride: usize,
    w: &[f32],
    b: &[f32],
    out: &mut [f32],
) {
    let lanes = S::F32_LANES;
    let cout = V * lanes;
    let (oh, ow) = (x.h.div_ceil(stride), x.w.div_ceil(stride));
    let zero = simd.splat_f32s(0.0);
    let bias: [S::f32s; V] = std::array::from_fn(|v| load::<S>(&b[v * lanes..]));
    let inside = |ox: usize| ox * stride >= 1 && ox * stride + 2 <= x.w;
    for oy in 0..oh {
        let row_inside = oy * stride >= 1 && oy * stride + 2 <= x.h;
        let mut ox = 0;
        while ox < ow {
            // Four pixels at a time where their windows are in the map: four independent
            // sums per vector keep the adder busy (one sum alone waits on its own latency).
            if row_inside && ox + 4 <= ow && inside(ox) && inside(ox + 3) {
                let mut acc = [[zero; V]; 4];
                let base = ((oy * stride - 1) * x.w + ox * stride - 1) * x.c;
                for ci in 0..x.c {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let wr = &w[(ci * 9 + ky * 3 + kx) * cout..][..cout];
                            let at = base + (ky * x.w + kx) * x.c + ci;
                            let v: [S::f32s; 4] = std::array::from_fn(|j| {
                                simd.splat_f32s(x.data[at + j * stride * x.c])
                            });
                            for k in 0..V {
                                let wv = load::<S>(&wr[k * lanes..]);
                                for j in 0..4 {
                                    acc[j][k] = simd.add_f32s(acc[j][k], simd.mul_f32s(v[j], wv));
                                }
                            }
                        }
                    }
                }
                for (j, aj) in acc.iter().enumerate() {
                    let o = &mut out[(oy * ow + ox + j) * cout..][..cout];
                    for (k, a) in aj.iter().enumerate() {
                        store::<S>(&mut o[k * lanes..], simd.add_f32s(*a, bias[k]));
                    }
                }
                ox += 4;
                continue;
            }
            // The rest of the row (its edges, and up to three pixels before them), with
            // the padding checked per tap: the same sums in the same order.
            let mut acc = [zero; V];
            for ci in 0..x.c {
                for ky in 0..3 {
                    for kx in 0..3 {
                        let v = simd.splat_f32s(tap(x, oy * stride + ky, ox * stride + kx, ci));
                        let wr = &w[(ci * 9 + ky * 3 + kx) * cout..][..cout];
                        for (k, a) in acc.iter_mut().enumerate() {
                            *a = simd.add_f32s(*a, simd.mul_f32s(v, load::<S>(&wr[k * lanes..])));
                        }
                    }
                }
            }
            let o = &mut out[(oy * ow + ox) * cout..][..cout];
            for (k, a) in acc.iter().enumerate() {
                store::<S>(&mut o[k * lanes..], simd.add_f32s(*a, bias[k]));
            }
            ox += 1;
        }
    }
}

/// A depthwise 3x3 convolution with padding 1, stride 1, on a channels-last map; taps
/// summed in `[ky][kx]` order from 0.0 (the padding's zeros included), then the bias. `w`
/// is `[tap][channel]`.
#[inline(always)]
fn depthwise<S: pulp::Simd>(
    simd: S,
    x: &Map,
    channels: usize,
    w: &[f32],
    b: &[f32],
    relu: bool,
) -> Map {
    let lanes = S::F32_LANES;
    let vectors = if channels.is_multiple_of(lanes) {
        channels / lanes
    } else {
        0
    };
    let (h, wd, c) = (x.h, x.w, channels);
    let mut out = take(h * wd * c);
    match vectors {
        16 => dw::<S, 16>(simd, x, w, b, &mut out),
        8 => dw::<S, 8>(simd, x, w, b, &mut out),
        4 => dw::<S, 4>(simd, x, w, b, &mut out),
        2 => dw::<S, 2>(simd, x, w, b, &mut out),
        _ => {
            for y in 0..h {
                for xo in 0..wd {
                    for ch in 0..c {
                        let mut a = 0f32;
                        for ky in 0..3 {
                            for kx in 0..3 {
                                a += w[(ky * 3 + kx) * c + ch] * tap(x, y + ky, xo + kx, ch);
                            }
                        }
                        out[(y * wd + xo) * c + ch] = a + b[ch];
                    }
                }
            }
        }
    }
    if relu {
        relu_in_place(&mut out);
    }
    Map {
        c: channels,
        h,
        w: wd,
        data: out,
    }
}

/// [`depthwise`] with `V` vectors of channels.
#[inline(always)]
fn dw<S: pulp::Simd, const V: usize>(simd: S, x: &Map, w: &[f32], b: &[f32], out: &mut [f32]) {
    let lanes = S::F32_LANES;
    let c = V * lanes;
    let (h, wd) = (x.h, x.w);
    let zero = simd.splat_f32s(0.0);
    let bias: [S::f32s; V] = std::array::from_fn(|v| load::<S>(&b[v * lanes..]));
    for y in 0..h {
        let row_inside = y >= 1 && y + 1 < h;
        for xo in 0..wd {
            let mut acc = [zero; V];
            if row_inside && xo >= 1 && xo + 1 < wd {
                // The whole window is in the map: no padding checks.
                let base = ((y - 1) * wd + xo - 1) * c;
                for ky in 0..3 {
                    for kx in 0..3 {
                        let wk = &w[(ky * 3 + kx) * c..][..c];
                        let src = &x.data[base + (ky * wd + kx) * c..][..c];
                        for (k, a) in acc.iter_mut().enumerate() {
                            let t = load::<S>(&src[k * lanes..]);
                            *a = simd.add_f32s(*a, simd.mul_f32s(load::<S>(&wk[k * lanes..]), t));
                        }
                    }
                }
                let o = &mut out[(y * wd + xo) * c..][..c];
                for (k, a) in acc.iter().enumerate() {
                    store::<S>(&mut o[k * lanes..], simd.add_f32s(*a, bias[k]));
                }
                continue;
            }
            for ky in 0..3 {
                for kx in 0..3 {
                    let wk = &w[(ky * 3 + kx) * c..][..c];
                    let (py, px) = (y + ky, xo + kx);
                    let inside = py != 0 && px != 0 && py <= h && px <= wd;
                    if inside {
                        let src = &x.data[((py - 1) * wd + px - 1) * c..][..c];
                        for (k, a) in acc.iter_mut().enumerate() {
                            let t = load::<S>(&src[k * lanes..]);
                            *a = simd.add_f32s(*a, simd.mul_f32s(load::<S>(&wk[k * lanes..]), t));
                        }
                    } else {
                        for (k, a) in acc.iter_mut().enumerate() {
                            *a =
                                simd.add_f32s(*a, simd.mul_f32s(load::<S>(&wk[k * lanes..]), zero));
                        }
                    }
                }
            }
            let o = &mut out[(y * wd + xo) * c..][..c];
            for (k, a) in acc.iter().enumerate() {
                store::<S>(&mut o[k * lanes..], simd.add_f32s(*a, bias[k]));
            }
        }
    }
}

#[inline(always)]
fn maxpool(x: &Map) -> Map {
    let (oh, ow, c) = (x.h / 2, x.w / 2, x.c);
    let mut out = take(oh * ow * c);
    for y in 0..oh {
        for xo in 0..ow {
            let at = |dy: usize, dx: usize| ((2 * y + dy) * x.w + 2 * xo + dx) * c;
            let (a, b2, c2, d) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
            let o = &mut out[(y * ow + xo) * c..(y * ow + xo + 1) * c];
            for (ch, v) in o.iter_mut().enumerate() {
                *v = x.data[a + ch]
                    .max(x.data[b2 + ch])
                    .max(x.data[c2 + ch])
                    .max(x.data[d + ch]);
            }
        }
    }
    Map {
        c,
        h: oh,
        w: ow,
        data: out,
    }
}

#[inline(always)]
fn upadd(small: &Map, skip: &Map) -> Map {
    let mut out = take(skip.data.len());
    out.copy_from_slice(&skip.data);
    let c = skip.c.min(small.c);
    if small.h > 0 && small.w > 0 {
        for y in 0..skip.h {
            let sy = (y / 2).min(small.h - 1);
            for x in 0..skip.w {
                let sx = (x / 2).min(small.w - 1);
                let s = &small.data[(sy * small.w + sx) * small.c..][..c];
                let o = &mut out[(y * skip.w + x) * skip.c..][..c];
                for (d, v) in o.iter_mut().zip(s) {
                    *d += v;
                }
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
