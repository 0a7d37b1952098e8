//! The byte-budget search: the highest quality whose JPEG fits, in few encodes.
//!
//! JPEG size falls smoothly and (almost) monotonically with libjpeg's quantiser scale
//! (`5000/q` below 50, `200-2q` from 50): `ln(bytes)` is close to linear in `ln(scale)`.
//! The search keeps a bracket (`lo` fits, `hi` does not), predicts the crossing from the
//! probes by that model (a secant step), and probes the prediction; the bracket shrinks on
//! every probe, so it ends, and it ends on adjacent qualities, so the answer is the highest
//! quality that fits (given monotonic sizes), in fewer encodes than a bisection over 30..=90.

use super::codec::encode_rgb;
use super::error::NormalizeError;

/// The result of a search at one size.
#[derive(Debug)]
pub(crate) enum Search {
    /// The highest quality that fits, its bytes, and how many encodes it took.
    Fit {
        quality: u8,
        jpeg: Vec<u8>,
        encodes: u32,
    },
    /// Even the lowest quality is too large: its size.
    NoFit {
        smallest: usize,
        quality: u8,
        encodes: u32,
    },
}

/// libjpeg's quality-to-scale mapping (jcparam.c `jpeg_quality_scaling`), as a log.
fn log_scale(q: u8) -> f64 {
    let q = q.clamp(1, 100) as f64;
    let s = if q < 50.0 {
        5000.0 / q
    } else {
        200.0 - 2.0 * q
    };
    s.max(1.0).ln()
}

/// The quality whose log-scale is closest to `ls`, rounded towards lower quality.
fn quality_for_log_scale(ls: f64) -> f64 {
    let s = ls.exp();
    if s >= 100.0 {
        5000.0 / s
    } else {
        (200.0 - s) / 2.0
    }
}

/// Finds the highest quality in `min_q..=max_q` whose encoding is at most `budget` bytes.
pub(crate) fn search(
    rgb: &[u8],
    w: u32,
    h: u32,
    budget: usize,
    min_q: u8,
    max_q: u8,
) -> Result<Search, NormalizeError> {
    let mut encodes = 0u32;
    let mut enc = |q: u8| -> Result<Vec<u8>, NormalizeError> {
        encodes += 1;
        encode_rgb(rgb, w, h, q)
    };
    let first = enc(max_q)?;
    if first.len() <= budget {
        return Ok(Search::Fit {
            quality: max_q,
            jpeg: first,
            encodes,
        });
    }
    // hi: the lowest quality known not to fit, with its size. lo: the highest known to fit.
    let mut hi = (max_q, first.len());
    let mut lo: Option<(u8, Vec<u8>)> = None;
    // A second non-fitting point sharpens the slope while nothing fits yet.
    let mut hi2: Option<(u8, usize)> = None;
    let target = (budget as f64).ln();
    loop {
        let floor_q = lo.as_ref().map(|l| l.0 + 1).unwrap_or(min_q);
        if floor_q >= hi.0 {
            break;
        }
        let predicted = match (&lo, hi2) {
            (Some((lq, lj)), _) => secant(*lq, lj.len(), hi.0, hi.1, target),
            (None, Some((q2, b2))) => secant(hi.0, hi.1, q2, b2, target - 0.03),
            // No second point yet: assume bytes ~ scale^-0.75 and aim 3% low, so the first
            // guess usually fits and closes the bracket from below.
            (None, None) => {
                let ls = log_scale(hi.0) + ((hi.1 as f64).ln() - (target - 0.03)) / 0.75;
                quality_for_log_scale(ls)
            }
        };
        let q = (predicted.floor().clamp(floor_q as f64, (hi.0 - 1) as f64)) as u8;
        let jpeg = enc(q)?;
        if jpeg.len() <= budget {
            lo = Some((q, jpeg));
        } else {
            if lo.is_none() {
                hi2 = Some(hi);
            }
            hi = (q, jpeg.len());
        }
    }
    match lo {
        Some((quality, jpeg)) => Ok(Search::Fit {
            quality,
            jpeg,
            encodes,
        }),
        None => Ok(Search::NoFit {
            smallest: hi.1,
            quality: hi.0,
            encodes,
        }),
    }
}

/// The quality where the line through two (quality, bytes) probes in (log scale, log bytes)
/// space reaches `target` (a log byte count).
fn secant(qa: u8, ba: usize, qb: u8, bb: usize, target: f64) -> f64 {
    let (xa, ya) = (log_scale(qa), (ba.max(1) as f64).ln());
    let (xb, yb) = (log_scale(qb), (bb.max(1) as f64).ln());
    if (ya - yb).abs() < 1e-9 || (xa - xb).abs() < 1e-9 {
        return (qa.min(qb) as f64 + qa.max(qb) as f64) / 2.0;
    }
    let x = xa + (target - ya) * (xb - xa) / (yb - ya);
    quality_for_log_scale(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(w: u32, h: u32, seed: u32) -> Vec<u8> {
        let mut s = seed;
        (0..w * h * 3)
            .map(|i| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Smooth gradient plus noise: compresses like a photo, not like white noise.
                let x = (i / 3) % w;
                ((x * 255 / w) as u8).wrapping_add((s >> 28) as u8)
            })
            .collect()
    }

    /// The search must agree with an exhaustive scan over every quality.
    #[test]
    fn search_finds_the_highest_fitting_quality() {
        let (w, h) = (96, 96);
        let img = noise(w, h, 7);
        let sizes: Vec<usize> = (1..=100)
            .map(|q| encode_rgb(&img, w, h, q).unwrap().len())
            .collect();
        for budget in [
            sizes[29] - 1,
            sizes[29],
            sizes[50],
            sizes[70] + 3,
            sizes[85],
            sizes[89],
            sizes[89] + 1,
            100_000,
        ] {
            let expect = (30..=90u8).rev().find(|&q| sizes[q as usize - 1] <= budget);
            match search(&img, w, h, budget, 30, 90).unwrap() {
                Search::Fit {
                    quality,
                    jpeg,
                    encodes,
                } => {
                    assert!(jpeg.len() <= budget);
                    // With monotonic sizes this is exact; allow a non-monotonic neighbour.
                    let e = expect.expect("search fitted but exhaustive scan did not");
                    assert!(
                        quality == e || sizes[quality as usize] > budget,
                        "budget {budget}: got q{quality}, want q{e}"
                    );
                    assert!(encodes <= 7, "budget {budget}: {encodes} encodes");
                }
                Search::NoFit {
                    smallest, quality, ..
                } => {
                    assert_eq!(expect, None, "budget {budget}");
                    assert_eq!(quality, 30);
                    assert!(smallest > budget);
                }
            }
        }
    }
}
