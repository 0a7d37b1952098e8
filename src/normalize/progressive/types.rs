//! The types every part of the progressive decoder shares: the frame and its components,
//! the scans as their headers describe them, one MCU row of coefficients, and the
//! `Irregular` outcome that sends a file back to libjpeg.

/// jpeg_natural_order: the natural (row-major) index of the k-th zigzag coefficient.
pub(super) const ZIGZAG: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Any irregularity: the caller falls back to libjpeg.
#[derive(Debug)]
pub(super) struct Irregular;

pub(super) type R<T> = Result<T, Irregular>;

pub(super) fn be16(b: &[u8], at: usize) -> R<usize> {
    match (b.get(at), b.get(at + 1)) {
        (Some(&h), Some(&l)) => Ok(((h as usize) << 8) | l as usize),
        _ => Err(Irregular),
    }
}

/// One frame component.
pub(super) struct Comp {
    pub(super) id: u8,
    pub(super) h: usize,
    pub(super) v: usize,
    pub(super) tq: usize,
    /// Blocks coded in a non-interleaved scan.
    pub(super) bw: usize,
    pub(super) bh: usize,
    /// Blocks stored per row (padded to whole MCUs).
    pub(super) stride: usize,
    /// IDCT output size (1, 2, 4 or 8) at the chosen scale.
    pub(super) size: usize,
    pub(super) quant: Option<[u16; 64]>,
    /// Successive-approximation bit of each coefficient (-1: not seen yet), as libjpeg tracks.
    pub(super) coef_bits: [i8; 64],
}

/// The coefficients of one MCU row of a component: `v` block rows of `stride` blocks, each
/// block in natural order, with its "has been nonzero" mask over zigzag positions.
pub(super) struct Row {
    pub(super) coefs: Vec<[i16; 64]>,
    pub(super) masks: Vec<u64>,
}

pub(super) struct Frame {
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) comps: Vec<Comp>,
    pub(super) hmax: usize,
    pub(super) vmax: usize,
    pub(super) mcus_x: usize,
    pub(super) mcus_y: usize,
}

/// A scan's header, with the tables in force at its SOS and its entropy-coded data.
pub(super) struct Scan {
    /// Frame component indices (1 to 4).
    pub(super) comps: Vec<usize>,
    /// Per scan component: its DC table (an index into `Headers::tables`), for DC first scans.
    pub(super) dc: Vec<Option<usize>>,
    /// The AC table, for AC scans.
    pub(super) ac: Option<usize>,
    pub(super) ss: usize,
    pub(super) se: usize,
    pub(super) ah: i8,
    pub(super) al: u32,
    pub(super) restart_interval: usize,
    pub(super) start: usize,
    pub(super) end: usize,
}
