//! The headers of a progressive file: frame, tables, restart interval and every scan, read
//! and checked as libjpeg would before any entropy-coded data is decoded.

use super::huffman::Huff;
use super::types::{
    be16, Comp, Frame, Irregular, Scan, Up, BAD_HEADER, BAD_PROGRESSION, R, ZIGZAG,
};

/// Huffman table definitions one file may make (each DHT entry is one); beyond this the file
/// is left to libjpeg. Real encoders write one or two per scan; the cap bounds the memory a
/// hostile file can make this decoder spend on tables (about 3.5 KB each).
pub(super) const MAX_TABLES: usize = 1024;
/// Scans one file may have before it is left to libjpeg (jpegtran writes 10, custom scripts
/// a few dozen); every MCU row visits every scan, so this bounds the per-row work too.
pub(super) const MAX_SCANS: usize = 1024;

/// Everything the headers say, with each scan's place in the data.
pub(super) struct Headers {
    pub(super) frame: Option<Frame>,
    pub(super) tables: Vec<Huff>,
    pub(super) dc: [Option<usize>; 4],
    pub(super) ac: [Option<usize>; 4],
    pub(super) quant: [Option<[u16; 64]>; 4],
    pub(super) restart_interval: usize,
    pub(super) denom: usize,
    pub(super) jfif: bool,
    pub(super) adobe: Option<u8>,
    pub(super) scans: Vec<Scan>,
}

impl Headers {
    /// Reads every header of the file (scans are recorded, not decoded).
    pub(super) fn read(b: &[u8], denom: usize) -> R<Headers> {
        let mut d = Headers {
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
            return Err(BAD_HEADER);
        }
        let mut pos = 2usize;
        loop {
            if b.get(pos) != Some(&0xFF) {
                return Err(BAD_HEADER);
            }
            while b.get(pos) == Some(&0xFF) {
                pos += 1;
            }
            let marker = *b.get(pos).ok_or(BAD_HEADER)?;
            pos += 1;
            match marker {
                // The loop only ends here: a file without EOI is irregular.
                0xD9 => break,
                0xD8 | 0x01 | 0xD0..=0xD7 => return Err(BAD_HEADER),
                _ => {}
            }
            let len = be16(b, pos)?;
            if len < 2 || pos + len > b.len() {
                return Err(BAD_HEADER);
            }
            let seg = &b[pos + 2..pos + len];
            pos += len;
            match marker {
                0xC2 => d.sof(seg)?,
                // Any other frame type, DNL, or a hierarchical file: libjpeg's business.
                0xC0 | 0xC1 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xDC | 0xDE => {
                    return Err(Irregular(
                        "not a Huffman-coded progressive frame (arithmetic, lossless, hierarchical or DNL)",
                    ))
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
        Ok(d)
    }

    fn sof(&mut self, seg: &[u8]) -> R<()> {
        if self.frame.is_some() || seg.len() < 6 {
            return Err(BAD_HEADER);
        }
        if seg[0] != 8 {
            return Err(Irregular("not 8-bit samples"));
        }
        let height = be16(seg, 1)?;
        let width = be16(seg, 3)?;
        let n = seg[5] as usize;
        if width == 0 || height == 0 || seg.len() < 6 + 3 * n {
            return Err(BAD_HEADER);
        }
        if !(n == 1 || n == 3) {
            return Err(Irregular("not 1 or 3 components (CMYK or YCCK)"));
        }
        let mut raw = Vec::new();
        for i in 0..n {
            let c = &seg[6 + 3 * i..9 + 3 * i];
            let (h, v, tq) = ((c[1] >> 4) as usize, (c[1] & 15) as usize, c[2] as usize);
            if tq > 3 || raw.iter().any(|&(id, _, _, _)| id == c[0]) {
                return Err(BAD_HEADER);
            }
            raw.push((c[0], h, v, tq));
        }
        // Sampling factors 1 to 4 (libjpeg refuses others).
        if raw
            .iter()
            .any(|&(_, h, v, _)| !(1..=4).contains(&h) || !(1..=4).contains(&v))
        {
            return Err(BAD_HEADER);
        }
        // A lone component's factors are its own maximum: its scans are non-interleaved (one
        // block per MCU), its size in blocks and its samples are those of 1x1, and libjpeg
        // neither upsamples nor enlarges its IDCT. So gray written with other factors (cjpeg
        // -sample 2x2 on a gray picture, some scanners) decodes as 1x1.
        if n == 1 {
            raw[0].1 = 1;
            raw[0].2 = 1;
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
            // The component's samples at this scale (jdmaster.c's downsampled_width and
            // _height), and how libjpeg-turbo brings them to the output's density
            // (jdsample.c's choice; fancy upsampling is off at 1/8).
            let dw = (width * h * size).div_ceil(hmax * 8);
            let dh = (height * v * size).div_ceil(vmax * 8);
            let (h_in, v_in) = (h * size / min_size, v * size / min_size);
            let fancy = min_size > 1;
            let up = if (h_in, v_in) == (hmax, vmax) {
                Up::Full
            } else if h_in * 2 == hmax && v_in == vmax {
                if fancy && dw > 2 {
                    Up::H2V1
                } else {
                    Up::Rep(2, 1)
                }
            } else if h_in == hmax && v_in * 2 == vmax && fancy {
                Up::H1V2
            } else if h_in * 2 == hmax && v_in * 2 == vmax {
                if fancy && dw > 2 {
                    Up::H2V2
                } else {
                    Up::Rep(2, 2)
                }
            } else if hmax.is_multiple_of(h_in) && vmax.is_multiple_of(v_in) {
                Up::Rep(hmax / h_in, vmax / v_in)
            } else {
                return Err(Irregular("fractional sampling ratios"));
            };
            comps.push(Comp {
                id,
                h,
                v,
                tq,
                bw: cw.div_ceil(8),
                bh: ch.div_ceil(8),
                stride: mcus_x * h,
                size,
                dw,
                dh,
                up,
                quant: None,
                coef_bits: [-1; 64],
            });
        }
        self.frame = Some(Frame {
            width,
            height,
            comps,
            vmax,
            mcus_x,
            mcus_y,
        });
        Ok(())
    }

    fn dht(&mut self, mut seg: &[u8]) -> R<()> {
        while !seg.is_empty() {
            if seg.len() < 17 {
                return Err(BAD_HEADER);
            }
            if self.tables.len() >= MAX_TABLES {
                return Err(Irregular("too many Huffman tables"));
            }
            let (class, id) = (seg[0] >> 4, (seg[0] & 15) as usize);
            if class > 1 || id > 3 {
                return Err(BAD_HEADER);
            }
            let counts: [u8; 16] = seg[1..17].try_into().expect("16 counts");
            let total: usize = counts.iter().map(|&c| c as usize).sum();
            let syms = seg.get(17..17 + total).ok_or(BAD_HEADER)?;
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
                return Err(BAD_HEADER);
            }
            let n = if pq == 0 { 64 } else { 128 };
            let body = seg.get(1..1 + n).ok_or(BAD_HEADER)?;
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
        let f = self.frame.as_mut().ok_or(BAD_HEADER)?;
        let ns = *seg.first().ok_or(BAD_HEADER)? as usize;
        if ns == 0 || ns > 4 || seg.len() != 4 + 2 * ns {
            return Err(BAD_HEADER);
        }
        let mut comps = Vec::with_capacity(ns);
        let mut tables = Vec::with_capacity(ns);
        for i in 0..ns {
            let cid = seg[1 + 2 * i];
            let ci = f.comps.iter().position(|c| c.id == cid).ok_or(BAD_HEADER)?;
            if comps.contains(&ci) {
                return Err(BAD_HEADER);
            }
            comps.push(ci);
            let t = seg[2 + 2 * i];
            if t >> 4 > 3 || t & 15 > 3 {
                return Err(BAD_HEADER);
            }
            tables.push(((t >> 4) as usize, (t & 15) as usize));
        }
        // libjpeg's limit on the blocks of an interleaved MCU (jdinput.c).
        if ns > 1
            && comps
                .iter()
                .map(|&ci| f.comps[ci].h * f.comps[ci].v)
                .sum::<usize>()
                > 10
        {
            return Err(BAD_HEADER);
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
                return Err(BAD_PROGRESSION);
            }
        } else if ss > se || se > 63 || ns != 1 {
            return Err(BAD_PROGRESSION);
        }
        if (ah != 0 && al != ah - 1) || al > 13 {
            return Err(BAD_PROGRESSION);
        }
        for &ci in &comps {
            let c = &mut f.comps[ci];
            if !dc_scan && c.coef_bits[0] < 0 {
                return Err(BAD_PROGRESSION);
            }
            for k in ss..=se {
                let expected = c.coef_bits[k].max(0);
                if ah != expected {
                    return Err(BAD_PROGRESSION);
                }
                c.coef_bits[k] = al;
            }
            // libjpeg latches a component's quantization table at its first scan.
            if c.quant.is_none() {
                c.quant = Some(self.quant[c.tq].ok_or(BAD_HEADER)?);
            }
        }
        // At 1/8 the AC scans are not needed.
        if self.denom == 8 && !dc_scan {
            return Ok(());
        }
        if self.scans.len() >= MAX_SCANS {
            return Err(Irregular("too many scans"));
        }
        let dc: Vec<Option<usize>> = tables.iter().map(|&(td, _)| self.dc[td]).collect();
        if dc_scan && ah == 0 && dc.iter().any(|t| t.is_none()) {
            return Err(BAD_HEADER);
        }
        let ac = if dc_scan {
            None
        } else {
            Some(self.ac[tables[0].1].ok_or(BAD_HEADER)?)
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
}

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
