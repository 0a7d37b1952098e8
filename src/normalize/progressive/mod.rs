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
//! decoded at all (only the DC is read).
//!
//! Why a hand-written decoder (safe Rust) and not:
//! - libjpeg's buffered-image mode: `jpeg_read_coefficients` and buffered mode allocate the
//!   same whole-image 64-coefficient buffer, which is the memory problem itself;
//! - zune-jpeg or jpeg-decoder: zune-jpeg has no DCT scaling and both decode into full-size
//!   rasters (54 MB for 18 MP), then every scan at full cost.
//!
//! Scope: 8-bit Huffman progressive frames (SOF2) with 1 component, or 3 components in
//! YCbCr with 4:4:4 or 4:2:0 sampling, at 1/2, 1/4 and 1/8. Anything else (arithmetic
//! coding, 12-bit, CMYK, 4:2:2, 4:4:0, odd factors, RGB-coded files), and any file this
//! decoder finds irregular (bad Huffman code, data running into a marker, a missing or
//! unexpected restart marker, a progression libjpeg would warn about, no EOI, more than
//! [`MAX_SCANS`] scans or [`MAX_TABLES`] Huffman tables) returns `None`, and the caller
//! decodes with libjpeg as before. So every output is either this decoder's or libjpeg's,
//! and irregular input behaves exactly as it did before.
//!
//! Exactness: the coefficients are libjpeg's (the order in which the scans are decoded does
//! not change any value: a refinement scan's row only depends on the earlier scans' same
//! row), and the scaled IDCTs (libjpeg-turbo's `jpeg_idct_4x4`/`2x2`/`1x1` and islow for
//! chroma that libjpeg enlarges instead of upsampling) and the YCbCr conversion are
//! integer-exact, so the raster equals libjpeg's bit for bit.

mod idct;

use super::codec::{Layout, Raster};

/// jpeg_natural_order: the natural (row-major) index of the k-th zigzag coefficient.
const ZIGZAG: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Any irregularity: the caller falls back to libjpeg.
#[derive(Debug)]
struct Irregular;

type R<T> = Result<T, Irregular>;

fn be16(b: &[u8], at: usize) -> R<usize> {
    match (b.get(at), b.get(at + 1)) {
        (Some(&h), Some(&l)) => Ok(((h as usize) << 8) | l as usize),
        _ => Err(Irregular),
    }
}

/// A canonical Huffman table with a 9-bit lookahead.
struct Huff {
    /// (code length << 8) | symbol for codes of at most 9 bits; 0 = use the slow path.
    fast: Box<[u16; 512]>,
    /// For AC first scans: codes whose length plus magnitude bits fit in 9 bits, decoded at
    /// once: value << 16 | run << 8 | total length (0 = not in the table).
    fast_ac: Box<[i32; 512]>,
    maxcode: [i32; 18],
    valoffset: [i32; 18],
    vals: [u8; 256],
}

const LOOKAHEAD: u32 = 9;

impl Huff {
    fn new(counts: &[u8; 16], symbols: &[u8]) -> R<Huff> {
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total > 256 || total != symbols.len() {
            return Err(Irregular);
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
                        return Err(Irregular);
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
                return Err(Irregular);
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
fn extend(bits: u32, s: u32) -> i32 {
    if s == 0 {
        0
    } else if bits < (1 << (s - 1)) {
        bits as i32 - (1 << s) + 1
    } else {
        bits as i32
    }
}

/// The entropy-coded bit stream of one scan, with 0xFF00 unstuffing. At a marker (RSTn or
/// the end) it feeds zero bits and counts them, so running into padding is detected.
#[derive(Clone, Copy)]
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    /// Left-aligned: the next bit is the most significant.
    buf: u64,
    n: u32,
    at_marker: bool,
    /// Bits fed into `buf` since the last reset, and how many of them came from the data.
    fed: u64,
    real: u64,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            pos: 0,
            buf: 0,
            n: 0,
            at_marker: false,
            fed: 0,
            real: 0,
        }
    }

    /// Makes at least 57 bits available.
    #[inline(always)]
    fn refill(&mut self) {
        if self.n > 56 {
            return;
        }
        if !self.at_marker {
            if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
                let w = u64::from_be_bytes(chunk.try_into().expect("8 bytes"));
                let inv = !w;
                // No byte of w is 0xFF (no zero byte in !w): take whole bytes at once.
                if (inv.wrapping_sub(0x0101_0101_0101_0101) & !inv & 0x8080_8080_8080_8080) == 0 {
                    let take = (64 - self.n) / 8;
                    let bits = take * 8;
                    self.buf |= (w >> (64 - bits)) << (64 - self.n - bits);
                    self.n += bits;
                    self.pos += take as usize;
                    self.fed += bits as u64;
                    self.real += bits as u64;
                    return;
                }
            }
        }
        self.refill_slow();
    }

    #[cold]
    fn refill_slow(&mut self) {
        while self.n <= 56 {
            let mut byte = 0u8;
            if !self.at_marker {
                match self.data.get(self.pos) {
                    None => self.at_marker = true,
                    Some(&0xFF) => {
                        if self.data.get(self.pos + 1) == Some(&0) {
                            byte = 0xFF;
                            self.pos += 2;
                            self.real += 8;
                        } else {
                            self.at_marker = true;
                        }
                    }
                    Some(&b) => {
                        byte = b;
                        self.pos += 1;
                        self.real += 8;
                    }
                }
            }
            self.buf |= (byte as u64) << (56 - self.n);
            self.n += 8;
            self.fed += 8;
        }
    }

    #[inline(always)]
    fn consume(&mut self, k: u32) {
        self.buf <<= k;
        self.n -= k;
    }

    /// `k` in 1..=32 bits; the caller refilled (57 available).
    #[inline(always)]
    fn take(&mut self, k: u32) -> u32 {
        let v = (self.buf >> (64 - k)) as u32;
        self.consume(k);
        v
    }

    #[inline(always)]
    fn bits(&mut self, k: u32) -> u32 {
        if k == 0 {
            return 0;
        }
        self.refill();
        self.take(k)
    }

    #[inline(always)]
    fn bit(&mut self) -> bool {
        self.refill();
        self.take(1) != 0
    }

    /// Decodes one Huffman symbol; the caller refilled (57 bits available).
    #[inline(always)]
    fn symbol(&mut self, h: &Huff) -> R<u8> {
        let e = h.fast[(self.buf >> (64 - LOOKAHEAD)) as usize];
        if e != 0 {
            self.consume((e >> 8) as u32);
            return Ok(e as u8);
        }
        self.symbol_slow(h)
    }

    #[cold]
    fn symbol_slow(&mut self, h: &Huff) -> R<u8> {
        let code16 = (self.buf >> 48) as i32;
        for len in LOOKAHEAD + 1..=16 {
            let c = code16 >> (16 - len);
            if c <= h.maxcode[len as usize] {
                self.consume(len);
                let i = c + h.valoffset[len as usize];
                return h.vals.get(i as usize).copied().ok_or(Irregular);
            }
        }
        Err(Irregular)
    }

    /// Whether everything consumed came from the data (not from zero padding at a marker).
    fn sound(&self) -> bool {
        self.fed - self.n as u64 <= self.real
    }

    /// At a restart boundary: the rest of the current byte is padding, the next marker must
    /// be RSTn with the expected n. Resets the bit buffer.
    fn restart(&mut self, expect: u8) -> R<()> {
        if !self.sound() || self.real - (self.fed - self.n as u64) >= 8 {
            return Err(Irregular);
        }
        let mut p = self.pos;
        if self.data.get(p) != Some(&0xFF) {
            return Err(Irregular);
        }
        while self.data.get(p) == Some(&0xFF) {
            p += 1;
        }
        if self.data.get(p) != Some(&(0xD0 + expect)) {
            return Err(Irregular);
        }
        self.pos = p + 1;
        self.buf = 0;
        self.n = 0;
        self.at_marker = false;
        self.fed = 0;
        self.real = 0;
        Ok(())
    }
}

/// Huffman table definitions one file may make (each DHT entry is one); beyond this the file
/// is left to libjpeg. Real encoders write one or two per scan; the cap bounds the memory a
/// hostile file can make this decoder spend on tables (about 3.5 KB each).
const MAX_TABLES: usize = 1024;
/// Scans one file may have before it is left to libjpeg (jpegtran writes 10, custom scripts
/// a few dozen); every MCU row visits every scan, so this bounds the per-row work too.
const MAX_SCANS: usize = 1024;

/// One frame component.
struct Comp {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Blocks coded in a non-interleaved scan.
    bw: usize,
    bh: usize,
    /// Blocks stored per row (padded to whole MCUs).
    stride: usize,
    /// IDCT output size (1, 2, 4 or 8) at the chosen scale.
    size: usize,
    quant: Option<[u16; 64]>,
    /// Successive-approximation bit of each coefficient (-1: not seen yet), as libjpeg tracks.
    coef_bits: [i8; 64],
}

/// The coefficients of one MCU row of a component: `v` block rows of `stride` blocks, each
/// block in natural order, with its "has been nonzero" mask over zigzag positions.
struct Row {
    coefs: Vec<[i16; 64]>,
    masks: Vec<u64>,
}

struct Frame {
    width: usize,
    height: usize,
    comps: Vec<Comp>,
    hmax: usize,
    vmax: usize,
    mcus_x: usize,
    mcus_y: usize,
}

/// A scan's header, with the tables in force at its SOS and its entropy-coded data.
struct Scan {
    /// Frame component indices (1 to 4).
    comps: Vec<usize>,
    /// Per scan component: its DC table (an index into `Decoder::tables`), for DC first scans.
    dc: Vec<Option<usize>>,
    /// The AC table, for AC scans.
    ac: Option<usize>,
    ss: usize,
    se: usize,
    ah: i8,
    al: u32,
    restart_interval: usize,
    start: usize,
    end: usize,
}

/// Where a scan's decoding stands between MCU rows.
struct ScanState<'a> {
    bits: Bits<'a>,
    rst: Restarts,
    eobrun: u32,
    pred: [i32; 4],
}

/// Decodes a progressive JPEG at 1/`denom` (2, 4 or 8). `None`: not in scope or irregular;
/// decode it with libjpeg.
pub(crate) fn decode(data: &[u8], denom: u32) -> Option<Raster> {
    if !matches!(denom, 2 | 4 | 8) {
        return None;
    }
    Decoder::run(data, denom as usize).ok()
}

struct Decoder {
    frame: Option<Frame>,
    tables: Vec<Huff>,
    dc: [Option<usize>; 4],
    ac: [Option<usize>; 4],
    quant: [Option<[u16; 64]>; 4],
    restart_interval: usize,
    denom: usize,
    jfif: bool,
    adobe: Option<u8>,
    scans: Vec<Scan>,
}

impl Decoder {
    fn run(b: &[u8], denom: usize) -> R<Raster> {
        let mut d = Decoder {
            frame: None,
            tables: Vec::new(),
            dc: [None; 4],
            ac: [None; 4],
            quant: [None; 4],
            restart_interval: 0,
            denom,
            jfif: false,
            adobe: None,
            scans: Vec::new(),
        };
        if !b.starts_with(&[0xFF, 0xD8]) {
            return Err(Irregular);
        }
        let mut pos = 2usize;
        loop {
            if b.get(pos) != Some(&0xFF) {
                return Err(Irregular);
            }
            while b.get(pos) == Some(&0xFF) {
                pos += 1;
            }
            let marker = *b.get(pos).ok_or(Irregular)?;
            pos += 1;
            match marker {
                // The loop only ends here: a file without EOI is irregular.
                0xD9 => break,
                0xD8 | 0x01 | 0xD0..=0xD7 => return Err(Irregular),
                _ => {}
            }
            let len = be16(b, pos)?;
            if len < 2 || pos + len > b.len() {
                return Err(Irregular);
            }
            let seg = &b[pos + 2..pos + len];
            pos += len;
            match marker {
                0xC2 => d.sof(seg)?,
                // Any other frame type, DNL, or a hierarchical file: libjpeg's business.
                0xC0 | 0xC1 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xDC | 0xDE => {
                    return Err(Irregular)
                }
                0xC4 => d.dht(seg)?,
                0xDB => d.dqt(seg)?,
                0xDD => {
                    d.restart_interval = be16(seg, 0)?;
                }
                0xE0 if seg.starts_with(b"JFIF\0") => d.jfif = true,
                0xEE if seg.len() >= 12 && seg.starts_with(b"Adobe") => d.adobe = Some(seg[11]),
                0xDA => {
                    let end = scan_end(b, pos);
                    d.sos(seg, pos, end)?;
                    pos = end;
                }
                _ => {}
            }
        }
        d.decode(b)
    }

    fn sof(&mut self, seg: &[u8]) -> R<()> {
        if self.frame.is_some() || seg.len() < 6 || seg[0] != 8 {
            return Err(Irregular);
        }
        let height = be16(seg, 1)?;
        let width = be16(seg, 3)?;
        let n = seg[5] as usize;
        if width == 0 || height == 0 || !(n == 1 || n == 3) || seg.len() < 6 + 3 * n {
            return Err(Irregular);
        }
        let mut raw = Vec::new();
        for i in 0..n {
            let c = &seg[6 + 3 * i..9 + 3 * i];
            let (h, v, tq) = ((c[1] >> 4) as usize, (c[1] & 15) as usize, c[2] as usize);
            if tq > 3 || raw.iter().any(|&(id, _, _, _)| id == c[0]) {
                return Err(Irregular);
            }
            raw.push((c[0], h, v, tq));
        }
        // Supported sampling: gray 1x1; YCbCr 1x1,1x1,1x1 or 2x2,1x1,1x1.
        let ok = match n {
            1 => raw[0].1 == 1 && raw[0].2 == 1,
            _ => {
                let luma = (raw[0].1, raw[0].2);
                (luma == (1, 1) || luma == (2, 2))
                    && raw[1..].iter().all(|&(_, h, v, _)| h == 1 && v == 1)
            }
        };
        if !ok {
            return Err(Irregular);
        }
        let hmax = raw.iter().map(|c| c.1).max().unwrap_or(1);
        let vmax = raw.iter().map(|c| c.2).max().unwrap_or(1);
        let mcus_x = width.div_ceil(8 * hmax);
        let mcus_y = height.div_ceil(8 * vmax);
        let min_size = 8 / self.denom;
        let mut comps = Vec::with_capacity(n);
        for &(id, h, v, tq) in &raw {
            // libjpeg (jdmaster.c) enlarges a subsampled component's IDCT instead of
            // upsampling when the factors allow it: 4:2:0 chroma gets twice the luma size.
            let mut size = min_size;
            while size < 8
                && (hmax * min_size).is_multiple_of(h * size * 2)
                && (vmax * min_size).is_multiple_of(v * size * 2)
            {
                size *= 2;
            }
            let cw = (width * h).div_ceil(hmax);
            let ch = (height * v).div_ceil(vmax);
            comps.push(Comp {
                id,
                h,
                v,
                tq,
                bw: cw.div_ceil(8),
                bh: ch.div_ceil(8),
                stride: mcus_x * h,
                size,
                quant: None,
                coef_bits: [-1; 64],
            });
        }
        self.frame = Some(Frame {
            width,
            height,
            comps,
            hmax,
            vmax,
            mcus_x,
            mcus_y,
        });
        Ok(())
    }

    fn dht(&mut self, mut seg: &[u8]) -> R<()> {
        while !seg.is_empty() {
            if seg.len() < 17 || self.tables.len() >= MAX_TABLES {
                return Err(Irregular);
            }
            let (class, id) = (seg[0] >> 4, (seg[0] & 15) as usize);
            if class > 1 || id > 3 {
                return Err(Irregular);
            }
            let counts: [u8; 16] = seg[1..17].try_into().expect("16 counts");
            let total: usize = counts.iter().map(|&c| c as usize).sum();
            let syms = seg.get(17..17 + total).ok_or(Irregular)?;
            self.tables.push(Huff::new(&counts, syms)?);
            let at = Some(self.tables.len() - 1);
            if class == 0 {
                self.dc[id] = at;
            } else {
                self.ac[id] = at;
            }
            seg = &seg[17 + total..];
        }
        Ok(())
    }

    fn dqt(&mut self, mut seg: &[u8]) -> R<()> {
        while !seg.is_empty() {
            let (pq, id) = (seg[0] >> 4, (seg[0] & 15) as usize);
            if pq > 1 || id > 3 {
                return Err(Irregular);
            }
            let n = if pq == 0 { 64 } else { 128 };
            let body = seg.get(1..1 + n).ok_or(Irregular)?;
            let mut q = [0u16; 64];
            for k in 0..64 {
                let v = if pq == 0 {
                    body[k] as u16
                } else {
                    u16::from_be_bytes([body[2 * k], body[2 * k + 1]])
                };
                q[ZIGZAG[k] as usize] = v;
            }
            self.quant[id] = Some(q);
            seg = &seg[1 + n..];
        }
        Ok(())
    }

    /// Checks a scan header as libjpeg would at its SOS and records it with the tables in
    /// force; the data is decoded later, row by row, with every other scan.
    fn sos(&mut self, seg: &[u8], start: usize, end: usize) -> R<()> {
        let f = self.frame.as_mut().ok_or(Irregular)?;
        let ns = *seg.first().ok_or(Irregular)? as usize;
        if ns == 0 || ns > 4 || seg.len() != 4 + 2 * ns {
            return Err(Irregular);
        }
        let mut comps = Vec::with_capacity(ns);
        let mut tables = Vec::with_capacity(ns);
        for i in 0..ns {
            let cid = seg[1 + 2 * i];
            let ci = f.comps.iter().position(|c| c.id == cid).ok_or(Irregular)?;
            if comps.contains(&ci) {
                return Err(Irregular);
            }
            comps.push(ci);
            let t = seg[2 + 2 * i];
            if t >> 4 > 3 || t & 15 > 3 {
                return Err(Irregular);
            }
            tables.push(((t >> 4) as usize, (t & 15) as usize));
        }
        let p = 1 + 2 * ns;
        let (ss, se, ah, al) = (
            seg[p] as usize,
            seg[p + 1] as usize,
            (seg[p + 2] >> 4) as i8,
            (seg[p + 2] & 15) as i8,
        );
        // jdphuff.c's progression checks; its warnings are irregular here too.
        let dc_scan = ss == 0;
        if dc_scan {
            if se != 0 {
                return Err(Irregular);
            }
        } else if ss > se || se > 63 || ns != 1 {
            return Err(Irregular);
        }
        if (ah != 0 && al != ah - 1) || al > 13 {
            return Err(Irregular);
        }
        for &ci in &comps {
            let c = &mut f.comps[ci];
            if !dc_scan && c.coef_bits[0] < 0 {
                return Err(Irregular);
            }
            for k in ss..=se {
                let expected = c.coef_bits[k].max(0);
                if ah != expected {
                    return Err(Irregular);
                }
                c.coef_bits[k] = al;
            }
            // libjpeg latches a component's quantization table at its first scan.
            if c.quant.is_none() {
                c.quant = Some(self.quant[c.tq].ok_or(Irregular)?);
            }
        }
        // At 1/8 the AC scans are not needed.
        if self.denom == 8 && !dc_scan {
            return Ok(());
        }
        if self.scans.len() >= MAX_SCANS {
            return Err(Irregular);
        }
        let dc: Vec<Option<usize>> = tables.iter().map(|&(td, _)| self.dc[td]).collect();
        if dc_scan && ah == 0 && dc.iter().any(|t| t.is_none()) {
            return Err(Irregular);
        }
        let ac = if dc_scan {
            None
        } else {
            Some(self.ac[tables[0].1].ok_or(Irregular)?)
        };
        self.scans.push(Scan {
            comps,
            dc,
            ac,
            ss,
            se,
            ah,
            al: al as u32,
            restart_interval: self.restart_interval,
            start,
            end,
        });
        Ok(())
    }

    /// Decodes every scan one MCU row at a time (each scan keeps its own place in its data)
    /// and renders each row as soon as its last scan has been through it, so only one MCU
    /// row of coefficients is ever held, and it stays in cache across the scans.
    fn decode(self, b: &[u8]) -> R<Raster> {
        let f = self.frame.ok_or(Irregular)?;
        let ncomp = f.comps.len();
        // Every component needs its DC, or libjpeg would warn.
        if f.comps.iter().any(|c| c.coef_bits[0] < 0) {
            return Err(Irregular);
        }
        let colour = ncomp == 3;
        if colour {
            let rgb_ids = f.comps.iter().map(|c| c.id).eq([b'R', b'G', b'B']);
            if self.adobe == Some(0) || (!self.jfif && self.adobe.is_none() && rgb_ids) {
                return Err(Irregular);
            }
        }
        let mut states: Vec<ScanState<'_>> = self
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
        let mut out = Render::new(&f, self.denom)?;
        // The whole decode is compiled for the best instruction set the CPU has (pulp
        // detects it once): POPCNT/TZCNT for the bit masks, AVX2 for the IDCTs; every path
        // computes the same integers.
        pulp::Arch::new().dispatch(DecodeAll {
            scans: &self.scans,
            states: &mut states,
            f: &f,
            rows: &mut rows,
            tables: &self.tables,
            out: &mut out,
        })?;
        if states.iter().any(|s| !s.bits.sound()) {
            return Err(Irregular);
        }
        Ok(out.finish())
    }
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

/// One MCU row of one scan: the blocks of row `my` that the scan codes, in its order.
#[inline(always)]
fn decode_row(
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
        let h = &tables[s.dc[si].ok_or(Irregular)?];
        bits.refill();
        let n = bits.symbol(h)? as u32;
        if n > 15 {
            return Err(Irregular);
        }
        let diff = extend(bits.bits(n), n);
        *pred = pred.wrapping_add(diff);
        coef[0] = pred.wrapping_shl(s.al) as i16;
    } else if bits.bit() {
        coef[0] |= 1 << s.al;
    }
    Ok(())
}

/// The output raster, filled one MCU row at a time.
struct Render {
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
    fn new(f: &Frame, denom: usize) -> R<Self> {
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
    fn row<S: pulp::Simd>(&mut self, f: &Frame, rows: &[Row], my: usize, simd: S) -> R<()> {
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

    fn finish(self) -> Raster {
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

/// The end of a scan's entropy-coded data: the first marker that is not RSTn or a stuffed
/// 0xFF00.
fn scan_end(b: &[u8], from: usize) -> usize {
    let mut p = from;
    loop {
        match b[p.min(b.len())..].iter().position(|&x| x == 0xFF) {
            None => return b.len(),
            Some(off) => {
                let at = p + off;
                match b.get(at + 1) {
                    None => return b.len(),
                    Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => p = at + 1,
                    Some(_) => return at,
                }
            }
        }
    }
}

/// Restart bookkeeping: `interval` MCUs between RSTn markers (a block, in a single-component
/// scan).
struct Restarts {
    interval: usize,
    togo: usize,
    next: u8,
}

impl Restarts {
    fn new(interval: usize) -> Self {
        Restarts {
            interval,
            togo: interval,
            next: 0,
        }
    }

    /// Before each MCU: true when a restart happened (predictions and EOB run reset).
    #[inline(always)]
    fn step(&mut self, bits: &mut Bits<'_>) -> R<bool> {
        if self.interval == 0 {
            return Ok(false);
        }
        let mut restarted = false;
        if self.togo == 0 {
            bits.restart(self.next)?;
            self.next = (self.next + 1) & 7;
            self.togo = self.interval;
            restarted = true;
        }
        self.togo -= 1;
        Ok(restarted)
    }
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
            h.fast_ac[(bits.buf >> (64 - LOOKAHEAD)) as usize]
        } else {
            0
        };
        let (r, val) = if fast != 0 {
            bits.consume((fast & 0xFF) as u32);
            (((fast >> 8) & 0xFF) as usize, fast >> 16)
        } else {
            let rs = bits.symbol(h)?;
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
                return Err(Irregular);
            }
            (r, extend(bits.take(s), s))
        };
        k += r;
        if k > se {
            return Err(Irregular);
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
            let rs = bits.symbol(h)?;
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
                    return Err(Irregular);
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
