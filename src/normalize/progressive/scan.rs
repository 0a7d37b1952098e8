//! The scans' entropy decoding, one MCU row at a time: DC first and refinement passes, AC
//! first and refinement passes (the latter with a branch-free walk over the history mask).

use super::bits::{Bits, Restarts};
use super::huffman::{extend, Huff, LOOKAHEAD};
use super::types::{Frame, Row, Scan, BAD_DATA, R, ZIGZAG};

/// Where a scan's decoding stands between MCU rows.
pub(super) struct ScanState<'a> {
    pub(super) bits: Bits<'a>,
    pub(super) rst: Restarts,
    pub(super) eobrun: u32,
    pub(super) pred: [i32; 4],
}

/// One MCU row of one scan: the blocks of row `my` that the scan codes, in its order.
#[inline(always)]
pub(super) fn decode_row(
    s: &Scan,
    st: &mut ScanState<'_>,
    f: &Frame,
    rows: &mut [Row],
    my: usize,
    tables: &[Huff],
) -> R<()> {
    // The bit reader and the EOB run as locals for the row (kept in registers, where the
    // compiler cannot keep a struct's fields behind a pointer), stored back at the end. An
    // error abandons the whole decode, so the state needs no care on that path.
    let mut b = st.bits;
    let bits = &mut b;
    if s.comps.len() > 1 {
        // Interleaved (DC only): whole MCUs, dummy edge blocks included.
        for mx in 0..f.mcus_x {
            if st.rst.step(bits)? {
                st.pred = [0; 4];
            }
            for (si, &ci) in s.comps.iter().enumerate() {
                let c = &f.comps[ci];
                let row = &mut rows[ci];
                for v in 0..c.v {
                    for h in 0..c.h {
                        let at = v * c.stride + mx * c.h + h;
                        dc_block(bits, s, si, &mut st.pred[si], &mut row.coefs[at], tables)?;
                    }
                }
            }
        }
        st.bits = b;
        return Ok(());
    }
    let ci = s.comps[0];
    let c = &f.comps[ci];
    let row = &mut rows[ci];
    let ac = s.ac.map(|t| &tables[t]);
    let mut eobrun = st.eobrun;
    for v in 0..c.v {
        if my * c.v + v >= c.bh {
            break;
        }
        let base = v * c.stride;
        let coefs = &mut row.coefs[base..base + c.bw];
        let masks = &mut row.masks[base..base + c.bw];
        for (coef, mask) in coefs.iter_mut().zip(masks.iter_mut()) {
            if st.rst.step(bits)? {
                st.pred = [0; 4];
                eobrun = 0;
            }
            match ac {
                None => dc_block(bits, s, 0, &mut st.pred[0], coef, tables)?,
                Some(h) if s.ah == 0 => {
                    ac_first(bits, h, coef, mask, s.ss, s.se, s.al, &mut eobrun)?
                }
                Some(h) => ac_refine(bits, h, coef, mask, s.ss, s.se, s.al, &mut eobrun)?,
            }
        }
    }
    st.bits = b;
    st.eobrun = eobrun;
    Ok(())
}

/// The DC of one block, first scan or refinement.
#[inline(always)]
fn dc_block(
    bits: &mut Bits<'_>,
    s: &Scan,
    si: usize,
    pred: &mut i32,
    coef: &mut [i16; 64],
    tables: &[Huff],
) -> R<()> {
    if s.ah == 0 {
        let h = &tables[s.dc[si].ok_or(BAD_DATA)?];
        bits.refill();
        let n = h.symbol(bits)? as u32;
        if n > 15 {
            return Err(BAD_DATA);
        }
        let diff = extend(bits.bits(n), n);
        *pred = pred.wrapping_add(diff);
        coef[0] = pred.wrapping_shl(s.al) as i16;
    } else if bits.bit() {
        coef[0] |= 1 << s.al;
    }
    Ok(())
}

/// One block of an AC first scan (spectral selection `ss..=se`, point transform `al`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn ac_first(
    bits: &mut Bits<'_>,
    h: &Huff,
    coef: &mut [i16; 64],
    mask: &mut u64,
    ss: usize,
    se: usize,
    al: u32,
    eobrun: &mut u32,
) -> R<()> {
    if *eobrun > 0 {
        *eobrun -= 1;
        return Ok(());
    }
    // The one-step table holds magnitudes of up to 8 bits; with a larger point transform a
    // value could leave i16, which the slow path refuses.
    let use_fast = al <= 7;
    let mut m = *mask;
    let mut k = ss;
    while k <= se {
        bits.refill();
        let fast = if use_fast {
            h.fast_ac[bits.peek(LOOKAHEAD)]
        } else {
            0
        };
        let (r, val) = if fast != 0 {
            bits.consume((fast & 0xFF) as u32);
            (((fast >> 8) & 0xFF) as usize, fast >> 16)
        } else {
            let rs = h.symbol(bits)?;
            let (r, s) = ((rs >> 4) as usize, (rs & 15) as u32);
            if s == 0 {
                if r == 15 {
                    k += 16;
                    continue;
                }
                let mut run = 1 << r;
                if r > 0 {
                    run += bits.bits(r as u32);
                }
                *eobrun = run - 1;
                break;
            }
            if s + al > 15 {
                return Err(BAD_DATA);
            }
            (r, extend(bits.take(s), s))
        };
        k += r;
        if k > se {
            return Err(BAD_DATA);
        }
        m |= 1u64 << k;
        coef[ZIGZAG[k] as usize] = (val << al) as i16;
        k += 1;
    }
    *mask = m;
    Ok(())
}

/// One block of an AC refinement scan.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn ac_refine(
    bits: &mut Bits<'_>,
    h: &Huff,
    coef: &mut [i16; 64],
    mask: &mut u64,
    ss: usize,
    se: usize,
    al: u32,
    eobrun: &mut u32,
) -> R<()> {
    let p1: i16 = 1 << al;
    let band: u64 = if se == 63 {
        !0u64 << ss
    } else {
        ((1u64 << (se + 1)) - 1) & (!0u64 << ss)
    };
    let mut m = *mask;
    let mut k = ss;
    if *eobrun == 0 {
        while k <= se {
            bits.refill();
            let rs = h.symbol(bits)?;
            let (r, s) = ((rs >> 4) as u32, rs & 15);
            let mut newval: i16 = 0;
            if s != 0 {
                // jdphuff.c warns on s != 1 and goes on as if it were 1.
                newval = if bits.take(1) != 0 { p1 } else { -p1 };
            } else if r != 15 {
                let mut run = 1 << r;
                if r > 0 {
                    run += bits.bits(r);
                }
                *eobrun = run;
                break;
            }
            // jdphuff.c walks the band one position at a time: every previously nonzero
            // coefficient takes a correction bit, and the walk stops at the (r+1)-th
            // still-zero one. Here the stop is found on the history mask and the correction
            // bits are read in one go.
            let ahead = band & (!0u64 << k);
            let target = select(!m & ahead, r).min(se + 1);
            let below = if target >= 64 {
                !0u64
            } else {
                (1u64 << target) - 1
            };
            corrections(bits, coef, m & ahead & below, p1);
            k = target;
            if newval != 0 {
                if k > se {
                    return Err(BAD_DATA);
                }
                m |= 1u64 << k;
                coef[ZIGZAG[k] as usize] = newval;
            }
            k += 1;
        }
    }
    if *eobrun > 0 {
        // The rest of the band: one correction bit per previously nonzero coefficient.
        if k <= se {
            corrections(bits, coef, m & band & (!0u64 << k), p1);
        }
        *eobrun -= 1;
    }
    *mask = m;
    Ok(())
}

/// For each byte value and rank r, the position of its r-th (from 0) set bit (8: none).
const SELECT_IN_BYTE: [[u8; 8]; 256] = {
    let mut t = [[8u8; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let (mut bit, mut rank) = (0, 0);
        while bit < 8 {
            if b & (1 << bit) != 0 {
                t[b][rank] = bit as u8;
                rank += 1;
            }
            bit += 1;
        }
        b += 1;
    }
    t
};

/// The position of the `r`-th (from 0) set bit of `x`, or 64 when `x` has at most `r` set
/// bits. Branch-free (byte counts, their prefix sums by one multiplication, a table for the
/// byte): the run lengths of refinement scans vary from symbol to symbol, and a loop over
/// them mispredicts.
#[inline(always)]
fn select(x: u64, r: u32) -> usize {
    const L: u64 = 0x0101_0101_0101_0101;
    const H: u64 = 0x8080_8080_8080_8080;
    let mut c = x - ((x >> 1) & 0x5555_5555_5555_5555);
    c = (c & 0x3333_3333_3333_3333) + ((c >> 2) & 0x3333_3333_3333_3333);
    c = (c + (c >> 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    // Byte i: the set bits in bytes 0..=i (at most 64, so no carry between bytes).
    let prefix = c.wrapping_mul(L);
    // High bit of byte i set where that count exceeds r.
    let over = ((prefix | H) - (r as u64 + 1) * L) & H;
    if over == 0 {
        return 64;
    }
    let byte = over.trailing_zeros() as usize / 8;
    let before = if byte == 0 {
        0
    } else {
        (prefix >> (byte * 8 - 8)) & 0xFF
    };
    let rank = r as usize - before as usize;
    byte * 8 + SELECT_IN_BYTE[((x >> (byte * 8)) & 0xFF) as usize][rank & 7] as usize
}

/// Reads one correction bit for each zigzag position set in `nz` (ascending) and applies it
/// (jdphuff.c: add p1 away from zero unless that bit is already set), without a branch on
/// the bit.
#[inline(always)]
fn corrections(bits: &mut Bits<'_>, coef: &mut [i16; 64], mut nz: u64, p1: i16) {
    while nz != 0 {
        bits.refill();
        let n = nz.count_ones().min(32);
        // The first bit read belongs to the lowest position: align it at bit 31.
        let mut word = bits.take(n) << (32 - n);
        for _ in 0..n {
            let at = ZIGZAG[nz.trailing_zeros() as usize] as usize;
            nz &= nz - 1;
            let bit = (word >> 31) as i16;
            word <<= 1;
            let v = coef[at];
            let apply = bit & ((v & p1) == 0) as i16;
            // v is nonzero (its history bit is set): its sign is that of v.
            let step = ((v >> 15) | 1).wrapping_mul(p1);
            coef[at] = v.wrapping_add(apply.wrapping_mul(step));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::select;

    /// `select` against the plain loop it replaces, on words from sparse to dense.
    #[test]
    fn select_finds_the_rth_set_bit() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = match i % 4 {
                0 => x,
                1 => x & (x >> 3),
                2 => x | (x << 5),
                _ => x & (x >> 1) & (x >> 9),
            };
            for r in 0..16u32 {
                let mut z = w;
                for _ in 0..r {
                    z &= z.wrapping_sub(1);
                }
                let want = if z == 0 {
                    64
                } else {
                    z.trailing_zeros() as usize
                };
                assert_eq!(select(w, r), want, "select({w:#x}, {r})");
            }
        }
        assert_eq!(select(0, 0), 64);
        assert_eq!(select(!0, 15), 15);
        assert_eq!(select(1 << 63, 0), 63);
    }
}
