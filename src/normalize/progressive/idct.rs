//! The scaled inverse DCTs, integer-exact with libjpeg-turbo's `jpeg_idct_1x1`,
//! `jpeg_idct_2x2`, `jpeg_idct_4x4` (jidctred.c) and `jpeg_idct_islow` (jidctint.c), so the
//! pixels equal the libjpeg path's. The arithmetic is written out from the published
//! algorithm (Loeffler-Ligtenberg-Moschytz with 13-bit constants, two passes with 2 extra
//! bits between them).
//!
//! Each IDCT also reports whether its block stayed where every implementation agrees: the
//! first pass's results within 16 bits (libjpeg-turbo's SIMD IDCTs keep them in 16-bit
//! lanes, with saturation) and the outputs within -384..=383 before the +128 (where
//! libjpeg's C range-limit table, the SIMD saturation and [`limit`] give the same byte).
//! A conforming file never leaves that range; a hostile one that does is left to libjpeg by
//! the caller, so the output is libjpeg's either way.

/// 1 when `x` is outside `lo..=hi`.
#[inline(always)]
fn outside(x: i32, lo: i32, hi: i32) -> u32 {
    (x.wrapping_sub(lo) as u32 > (hi - lo) as u32) as u32
}

/// The output range every implementation agrees on (before the +128).
const OUT_LO: i32 = -384;
const OUT_HI: i32 = 383;

/// Output of the IDCT: libjpeg's post-IDCT range limit (a 10-bit wrap, then a clamp to 0..=255
/// around the centre 128).
#[inline(always)]
fn limit(x: i64) -> u8 {
    let v = ((((x as i32) & 1023) ^ 512) - 512) + 128;
    v.clamp(0, 255) as u8
}

#[inline(always)]
fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;

/// 1x1: the DC alone.
#[inline(always)]
pub(super) fn idct1(c: &[i32; 64], out: &mut [u8], _stride: usize) -> u32 {
    let x = descale(c[0] as i64, 3);
    out[0] = limit(x);
    outside(x as i32, OUT_LO, OUT_HI)
}

/// 2x2 from rows/columns 0, 1, 3, 5, 7.
#[inline(always)]
pub(super) fn idct2(c: &[i32; 64], out: &mut [u8], stride: usize) -> u32 {
    let mut ws = [0i64; 16];
    let mut bad = 0;
    for col in [0usize, 1, 3, 5, 7] {
        let t10 = (c[col] as i64) << (CONST_BITS + 2);
        let t0 = (c[56 + col] as i64) * -5906
            + (c[40 + col] as i64) * 6967
            + (c[24 + col] as i64) * -10426
            + (c[8 + col] as i64) * 29692;
        ws[col] = descale(t10 + t0, CONST_BITS - PASS1_BITS + 2) as i32 as i64;
        ws[8 + col] = descale(t10 - t0, CONST_BITS - PASS1_BITS + 2) as i32 as i64;
        bad |= outside(ws[col] as i32, -32768, 32767) | outside(ws[8 + col] as i32, -32768, 32767);
    }
    for row in 0..2 {
        let w = &ws[row * 8..row * 8 + 8];
        let t10 = w[0] << (CONST_BITS + 2);
        let t0 = w[7] * -5906 + w[5] * 6967 + w[3] * -10426 + w[1] * 29692;
        let o = &mut out[row * stride..row * stride + 2];
        let (a, b) = (
            descale(t10 + t0, CONST_BITS + PASS1_BITS + 3 + 2),
            descale(t10 - t0, CONST_BITS + PASS1_BITS + 3 + 2),
        );
        o[0] = limit(a);
        o[1] = limit(b);
        bad |= outside(a as i32, OUT_LO, OUT_HI) | outside(b as i32, OUT_LO, OUT_HI);
    }
    bad
}

/// Eight lanes: one pass of a 2-D IDCT runs on all 8 columns (or, transposed, rows) at
/// once, written so that the compiler vectorizes it. i32 with wrapping arithmetic, as
/// libjpeg-turbo's 32-bit and SIMD IDCTs: for coefficients a conforming 8-bit file can hold
/// nothing overflows, and a hostile file gets deterministic garbage, never a panic.
type V = [i32; 8];

#[inline(always)]
fn v2(a: V, b: V, f: impl Fn(i32, i32) -> i32) -> V {
    std::array::from_fn(|i| f(a[i], b[i]))
}

#[inline(always)]
fn add(a: V, b: V) -> V {
    v2(a, b, i32::wrapping_add)
}

#[inline(always)]
fn sub(a: V, b: V) -> V {
    v2(a, b, i32::wrapping_sub)
}

#[inline(always)]
fn mulc(a: V, k: i32) -> V {
    a.map(|x| x.wrapping_mul(k))
}

#[inline(always)]
fn shl(a: V, n: u32) -> V {
    a.map(|x| x.wrapping_shl(n))
}

#[inline(always)]
fn desc(a: V, n: u32) -> V {
    a.map(|x| x.wrapping_add(1 << (n - 1)) >> n)
}

/// 1 when any lane is outside `lo..=hi`.
#[inline(always)]
fn outside_v(v: &V, lo: i32, hi: i32) -> u32 {
    v.iter().fold(0, |a, &x| a | outside(x, lo, hi))
}

/// Row `r` of a block (8 coefficients, one per column lane).
#[inline(always)]
fn row(c: &[i32; 64], r: usize) -> V {
    c[r * 8..r * 8 + 8].try_into().expect("8 values")
}

#[inline(always)]
fn transpose(m: [V; 8]) -> [V; 8] {
    std::array::from_fn(|i| std::array::from_fn(|j| m[j][i]))
}

/// The odd part of the 4-point reduced IDCT (jidctred.c), on 8 lanes.
#[inline(always)]
fn odd4(z1: V, z2: V, z3: V, z4: V) -> (V, V) {
    let t0 = add(
        add(mulc(z1, -1730), mulc(z2, 11893)),
        add(mulc(z3, -17799), mulc(z4, 8697)),
    );
    let t2 = add(
        add(mulc(z1, -4176), mulc(z2, -4926)),
        add(mulc(z3, 7373), mulc(z4, 20995)),
    );
    (t0, t2)
}

/// One 4-point pass (from inputs 0, 1, 2, 3, 5, 6, 7) on 8 lanes, before its descale.
#[inline(always)]
fn red4_1d(g: [V; 8]) -> [V; 4] {
    let t0 = shl(g[0], CONST_BITS + 1);
    let t2 = add(mulc(g[2], 15137), mulc(g[6], -6270));
    let (t10, t12) = (add(t0, t2), sub(t0, t2));
    let (o0, o2) = odd4(g[7], g[5], g[3], g[1]);
    [add(t10, o2), add(t12, o0), sub(t12, o0), sub(t10, o2)]
}

/// 4x4 from rows/columns 0, 1, 2, 3, 5, 6, 7.
#[inline(always)]
pub(super) fn idct4(c: &[i32; 64], out: &mut [u8], stride: usize) -> u32 {
    let g: [V; 8] = std::array::from_fn(|r| row(c, r));
    let p = red4_1d(g).map(|v| desc(v, CONST_BITS - PASS1_BITS + 1));
    // Lane 4 (column 4, which the 4x4 IDCT does not read) is left out of the check.
    let mut bad = p.iter().fold(0, |a, v| {
        let mut v = *v;
        v[4] = 0;
        a | outside_v(&v, -32768, 32767)
    });
    // The 4 work rows, transposed: lane = output row, vector = work column.
    let z = [0i32; 8];
    let t = transpose([p[0], p[1], p[2], p[3], z, z, z, z]);
    let r = red4_1d(t).map(|v| desc(v, CONST_BITS + PASS1_BITS + 3 + 1));
    for (y, line) in out.chunks_mut(stride).take(4).enumerate() {
        for (x, o) in line[..4].iter_mut().enumerate() {
            *o = limit(r[x][y] as i64);
        }
    }
    // Lanes 4..8 of `r` come from zero rows: always in range.
    bad |= r.iter().fold(0, |a, v| a | outside_v(v, OUT_LO, OUT_HI));
    bad
}

/// One 8-point pass of the islow IDCT on 8 lanes, returning the 8 outputs before descale.
#[inline(always)]
fn islow_1d(g: [V; 8]) -> [V; 8] {
    let (z2, z3) = (g[2], g[6]);
    let z1 = mulc(add(z2, z3), 4433);
    let tmp2 = add(z1, mulc(z3, -15137));
    let tmp3 = add(z1, mulc(z2, 6270));
    let tmp0 = shl(add(g[0], g[4]), CONST_BITS);
    let tmp1 = shl(sub(g[0], g[4]), CONST_BITS);
    let (t10, t13, t11, t12) = (
        add(tmp0, tmp3),
        sub(tmp0, tmp3),
        add(tmp1, tmp2),
        sub(tmp1, tmp2),
    );
    let (a0, a1, a2, a3) = (g[7], g[5], g[3], g[1]);
    let z1 = add(a0, a3);
    let z2 = add(a1, a2);
    let z3 = add(a0, a2);
    let z4 = add(a1, a3);
    let z5 = mulc(add(z3, z4), 9633);
    let z1 = mulc(z1, -7373);
    let z2 = mulc(z2, -20995);
    let z3 = add(mulc(z3, -16069), z5);
    let z4 = add(mulc(z4, -3196), z5);
    let a0 = add(mulc(a0, 2446), add(z1, z3));
    let a1 = add(mulc(a1, 16819), add(z2, z4));
    let a2 = add(mulc(a2, 25172), add(z2, z3));
    let a3 = add(mulc(a3, 12299), add(z1, z4));
    [
        add(t10, a3),
        add(t11, a2),
        add(t12, a1),
        add(t13, a0),
        sub(t13, a0),
        sub(t12, a1),
        sub(t11, a2),
        sub(t10, a3),
    ]
}

/// The full 8x8 islow IDCT.
#[inline(always)]
pub(super) fn idct8(c: &[i32; 64], out: &mut [u8], stride: usize) -> u32 {
    let g: [V; 8] = std::array::from_fn(|r| row(c, r));
    let p = islow_1d(g).map(|v| desc(v, CONST_BITS - PASS1_BITS));
    let r = islow_1d(transpose(p)).map(|v| desc(v, CONST_BITS + PASS1_BITS + 3));
    for (y, line) in out.chunks_mut(stride).take(8).enumerate() {
        for (x, o) in line[..8].iter_mut().enumerate() {
            *o = limit(r[x][y] as i64);
        }
    }
    p.iter().fold(0, |a, v| a | outside_v(v, -32768, 32767))
        | r.iter().fold(0, |a, v| a | outside_v(v, OUT_LO, OUT_HI))
}
