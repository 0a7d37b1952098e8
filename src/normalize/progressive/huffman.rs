//! Canonical Huffman tables with a 9-bit lookahead, and symbol decoding from a scan's bits.

use super::bits::Bits;
use super::types::{BAD_DATA, R};

/// A canonical Huffman table with a 9-bit lookahead.
pub(super) struct Huff {
    /// (code length << 8) | symbol for codes of at most 9 bits; 0 = use the slow path.
    pub(super) fast: Box<[u16; 512]>,
    /// For AC first scans: codes whose length plus magnitude bits fit in 9 bits, decoded at
    /// once: value << 16 | run << 8 | total length (0 = not in the table).
    pub(super) fast_ac: Box<[i32; 512]>,
    maxcode: [i32; 18],
    valoffset: [i32; 18],
    vals: [u8; 256],
}

pub(super) const LOOKAHEAD: u32 = 9;

impl Huff {
    pub(super) fn new(counts: &[u8; 16], symbols: &[u8]) -> R<Huff> {
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total > 256 || total != symbols.len() {
            return Err(BAD_DATA);
        }
        let mut vals = [0u8; 256];
        vals[..total].copy_from_slice(symbols);
        let mut fast = Box::new([0u16; 512]);
        let mut fast_ac = Box::new([0i32; 512]);
        let mut maxcode = [-1i32; 18];
        let mut valoffset = [0i32; 18];
        let mut code: u32 = 0;
        let mut k = 0usize;
        for len in 1..=16u32 {
            let n = counts[len as usize - 1] as usize;
            if n > 0 {
                valoffset[len as usize] = k as i32 - code as i32;
                for _ in 0..n {
                    // libjpeg refuses a table whose codes overflow their length; checked
                    // before the code indexes the lookahead tables.
                    if code >= (1u32 << len) {
                        return Err(BAD_DATA);
                    }
                    if len <= LOOKAHEAD {
                        let shift = LOOKAHEAD - len;
                        let sym = vals[k];
                        for low in 0..(1u32 << shift) {
                            let idx = ((code << shift) | low) as usize;
                            fast[idx] = ((len as u16) << 8) | sym as u16;
                            let (r, s) = ((sym >> 4) as u32, (sym & 15) as u32);
                            if s > 0 && len + s <= LOOKAHEAD {
                                let bits = (idx as u32 >> (LOOKAHEAD - len - s)) & ((1 << s) - 1);
                                let v = extend(bits, s);
                                fast_ac[idx] = (v << 16) | ((r as i32) << 8) | (len + s) as i32;
                            }
                        }
                    }
                    code += 1;
                    k += 1;
                }
                maxcode[len as usize] = code as i32 - 1;
            }
            // libjpeg refuses a table whose codes overflow their length.
            if code > (1u32 << len) {
                return Err(BAD_DATA);
            }
            code <<= 1;
        }
        maxcode[17] = i32::MAX;
        Ok(Huff {
            fast,
            fast_ac,
            maxcode,
            valoffset,
            vals,
        })
    }
}

/// HUFF_EXTEND: the signed value of `s` magnitude bits.
#[inline(always)]
pub(super) fn extend(bits: u32, s: u32) -> i32 {
    if s == 0 {
        0
    } else if bits < (1 << (s - 1)) {
        bits as i32 - (1 << s) + 1
    } else {
        bits as i32
    }
}

impl Huff {
    /// Decodes one symbol from `bits`; the caller refilled (57 bits available).
    #[inline(always)]
    pub(super) fn symbol(&self, bits: &mut Bits<'_>) -> R<u8> {
        let e = self.fast[bits.peek(LOOKAHEAD)];
        if e != 0 {
            bits.consume((e >> 8) as u32);
            return Ok(e as u8);
        }
        self.symbol_slow(bits)
    }

    #[cold]
    fn symbol_slow(&self, bits: &mut Bits<'_>) -> R<u8> {
        let code16 = bits.peek(16) as i32;
        for len in LOOKAHEAD + 1..=16 {
            let c = code16 >> (16 - len);
            if c <= self.maxcode[len as usize] {
                bits.consume(len);
                let i = c + self.valoffset[len as usize];
                return self.vals.get(i as usize).copied().ok_or(BAD_DATA);
            }
        }
        Err(BAD_DATA)
    }
}
