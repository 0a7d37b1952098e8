//! The scaled inverse DCTs, integer-exact with libjpeg-turbo's `jpeg_idct_1x1`,
//! `jpeg_idct_2x2`, `jpeg_idct_4x4` (jidctred.c) and `jpeg_idct_islow` (jidctint.c), so the
//! pixels equal the libjpeg path's. The arithmetic is written out from the published
//! algorithm (Loeffler-Ligtenberg-Moschytz with 13-bit constants, two passes with 2 extra
//! bits between them); i64 intermediates so no input, however hostile, can overflow.

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
pub(super) fn idct1(c: &[i32; 64], out: &mut [u8], _stride: usize) {
    out[0] = limit(descale(c[0] as i64, 3));
}

/// 2x2 from rows/columns 0, 1, 3, 5, 7.
pub(super) fn idct2(c: &[i32; 64], out: &mut [u8], stride: usize) {
    let mut ws = [0i64; 16];
    for col in [0usize, 1, 3, 5, 7] {
        let t10 = (c[col] as i64) << (CONST_BITS + 2);
        let t0 = (c[56 + col] as i64) * -5906
            + (c[40 + col] as i64) * 6967
            + (c[24 + col] as i64) * -10426
            + (c[8 + col] as i64) * 29692;
        ws[col] = descale(t10 + t0, CONST_BITS - PASS1_BITS + 2) as i32 as i64;
        ws[8 + col] = descale(t10 - t0, CONST_BITS - PASS1_BITS + 2) as i32 as i64;
    }
    for row in 0..2 {
        let w = &ws[row * 8..row * 8 + 8];
        let t10 = w[0] << (CONST_BITS + 2);
        let t0 = w[7] * -5906 + w[5] * 6967 + w[3] * -10426 + w[1] * 29692;
        let o = &mut out[row * stride..row * stride + 2];
        o[0] = limit(descale(t10 + t0, CONST_BITS + PASS1_BITS + 3 + 2));
        o[1] = limit(descale(t10 - t0, CONST_BITS + PASS1_BITS + 3 + 2));
    }
}

#[inline(always)]
fn odd4(z1: i64, z2: i64, z3: i64, z4: i64) -> (i64, i64) {
    let t0 = z1 * -1730 + z2 * 11893 + z3 * -17799 + z4 * 8697;
    let t2 = z1 * -4176 + z2 * -4926 + z3 * 7373 + z4 * 20995;
    (t0, t2)
}

/// 4x4 from rows/columns 0, 1, 2, 3, 5, 6, 7.
pub(super) fn idct4(c: &[i32; 64], out: &mut [u8], stride: usize) {
    let mut ws = [0i64; 32];
    for col in [0usize, 1, 2, 3, 5, 6, 7] {
        let g = |r: usize| c[r * 8 + col] as i64;
        let t0 = g(0) << (CONST_BITS + 1);
        let t2 = g(2) * 15137 + g(6) * -6270;
        let (t10, t12) = (t0 + t2, t0 - t2);
        let (o0, o2) = odd4(g(7), g(5), g(3), g(1));
        let s = CONST_BITS - PASS1_BITS + 1;
        ws[col] = descale(t10 + o2, s) as i32 as i64;
        ws[24 + col] = descale(t10 - o2, s) as i32 as i64;
        ws[8 + col] = descale(t12 + o0, s) as i32 as i64;
        ws[16 + col] = descale(t12 - o0, s) as i32 as i64;
    }
    for row in 0..4 {
        let w = &ws[row * 8..row * 8 + 8];
        let t0 = w[0] << (CONST_BITS + 1);
        let t2 = w[2] * 15137 + w[6] * -6270;
        let (t10, t12) = (t0 + t2, t0 - t2);
        let (o0, o2) = odd4(w[7], w[5], w[3], w[1]);
        let s = CONST_BITS + PASS1_BITS + 3 + 1;
        let o = &mut out[row * stride..row * stride + 4];
        o[0] = limit(descale(t10 + o2, s));
        o[3] = limit(descale(t10 - o2, s));
        o[1] = limit(descale(t12 + o0, s));
        o[2] = limit(descale(t12 - o0, s));
    }
}

/// One 8-point pass of the islow IDCT over `g(0..8)`, returning the 8 outputs before descale.
#[inline(always)]
fn islow_1d(g: [i64; 8]) -> [i64; 8] {
    let (z2, z3) = (g[2], g[6]);
    let z1 = (z2 + z3) * 4433;
    let tmp2 = z1 + z3 * -15137;
    let tmp3 = z1 + z2 * 6270;
    let tmp0 = (g[0] + g[4]) << CONST_BITS;
    let tmp1 = (g[0] - g[4]) << CONST_BITS;
    let (t10, t13, t11, t12) = (tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2);
    let (mut a0, mut a1, mut a2, mut a3) = (g[7], g[5], g[3], g[1]);
    let z1 = a0 + a3;
    let z2 = a1 + a2;
    let z3 = a0 + a2;
    let z4 = a1 + a3;
    let z5 = (z3 + z4) * 9633;
    a0 *= 2446;
    a1 *= 16819;
    a2 *= 25172;
    a3 *= 12299;
    let z1 = z1 * -7373;
    let z2 = z2 * -20995;
    let z3 = z3 * -16069 + z5;
    let z4 = z4 * -3196 + z5;
    a0 += z1 + z3;
    a1 += z2 + z4;
    a2 += z2 + z3;
    a3 += z1 + z4;
    [
        t10 + a3,
        t11 + a2,
        t12 + a1,
        t13 + a0,
        t13 - a0,
        t12 - a1,
        t11 - a2,
        t10 - a3,
    ]
}

/// The full 8x8 islow IDCT.
pub(super) fn idct8(c: &[i32; 64], out: &mut [u8], stride: usize) {
    let mut ws = [0i64; 64];
    for col in 0..8 {
        let g = std::array::from_fn(|r| c[r * 8 + col] as i64);
        let r = islow_1d(g);
        for (i, v) in r.into_iter().enumerate() {
            ws[i * 8 + col] = descale(v, CONST_BITS - PASS1_BITS) as i32 as i64;
        }
    }
    for row in 0..8 {
        let g: [i64; 8] = ws[row * 8..row * 8 + 8].try_into().expect("8 values");
        let r = islow_1d(g);
        let o = &mut out[row * stride..row * stride + 8];
        for (d, v) in o.iter_mut().zip(r) {
            *d = limit(descale(v, CONST_BITS + PASS1_BITS + 3));
        }
    }
}
