//! The types every part of the progressive decoder shares: the frame and its components,
//! the scans as their headers describe them, one MCU row of coefficients, and the
//! `Irregular` outcome that sends a file back to libjpeg.

/// jpeg_natural_order: the natural (row-major) index of the k-th zigzag coefficient.
pub(super) const ZIGZAG: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Why a file is left to libjpeg: out of this decoder's scope, or irregular in some way
/// (the reason is logged by the caller, so a bench can count the fallbacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Irregular(pub(crate) &'static str);

/// A malformed header segment.
pub(super) const BAD_HEADER: Irregular = Irregular("malformed header");
/// Entropy-coded data this decoder cannot follow (bad code, padding, restart glitch).
pub(super) const BAD_DATA: Irregular = Irregular("irregular entropy-coded data");
/// A progression libjpeg would warn about.
pub(super) const BAD_PROGRESSION: Irregular = Irregular("irregular progression");

pub(super) type R<T> = Result<T, Irregular>;

pub(super) fn be16(b: &[u8], at: usize) -> R<usize> {
    match (b.get(at), b.get(at + 1)) {
        (Some(&h), Some(&l)) => Ok(((h as usize) << 8) | l as usize),
        _ => Err(BAD_HEADER),
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
    /// Samples across and down at that size (libjpeg's downsampled width and height).
    pub(super) dw: usize,
    pub(super) dh: usize,
    /// How its samples are brought to the output's density.
    pub(super) up: Up,
    pub(super) quant: Option<[u16; 64]>,
    /// Successive-approximation bit of each coefficient (-1: not seen yet), as libjpeg tracks.
    pub(super) coef_bits: [i8; 64],
}

/// How a component's samples become output pixels: libjpeg-turbo's upsampling methods
/// (jdsample.c) at the chosen scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Up {
    /// Already at the output's density (including chroma whose IDCT was enlarged).
    Full,
    /// Triangle filter, 2x across (4:2:2).
    H2V1,
    /// Triangle filter, 2x down (4:4:0), with the rows above and below as context.
    H1V2,
    /// Triangle filter, 2x both ways (4:2:0 at full scale), with context rows.
    H2V2,
    /// Replication by whole factors across and down (box filter).
    Rep(usize, usize),
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
