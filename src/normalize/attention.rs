//! Attention crop: the part of a picture people look at, for when no face was found.
//!
//! Each pixel gets an integer saliency (see [`pixel_cues`] and [`summed_saliency`]) built
//! from three cues:
//!
//! - **Edges**: a 3x3 Sobel gradient of the luma, `(|gx| + |gy|) / 4` capped at 255, minus a
//!   floor of [`EDGE_FLOOR`] so that JPEG noise and smooth gradients count for nothing.
//! - **Skin**: a tent around the centre of the Chai & Ngan (1999) YCbCr skin box
//!   (Cb 77..=127, Cr 133..=173, full-range BT.601), flat at 255 in the inner half of the box
//!   and falling to 0 at its edges, for luma 32..=248 only (very dark or blown-out pixels say
//!   little about their colour). It is the heaviest cue ([`W_SKIN`]): a person standing at
//!   one side of a busy landscape must pull the box to them.
//! - **Saturation**: the chroma `max(R,G,B) - min(R,G,B)` minus a floor of [`SAT_FLOOR`]
//!   (near-greys count for nothing), the lightest cue: colourful objects draw the eye but a
//!   blue sky or green field is everywhere.
//!
//! Per pixel that is at most 2 x 243 for edges, 5 x 255 for skin and 231 for saturation: a
//! patch of skin outweighs the busiest foliage, and edges (eyes, hair, outlines) count about
//! twice as much as colour. Beige walls and sand also look like skin; that is the price of
//! finding people without a face detector.
//!
//! The box with the largest saliency sum is found with a summed-area table (u64) over every
//! position. Its sum is weighed by a mild position prior, at most 1/16 per axis: towards the
//! middle horizontally, and towards the upper third vertically (faces sit in the upper part
//! of head-and-shoulders pictures). Ties go to the position nearest the centre, then the
//! smallest y, then x. When the best and worst positions differ by at most a quarter of a
//! saliency unit per pixel the picture is flat, and the caller centres the box.
//!
//! Everything is integer arithmetic with no threads, so the answer is the same on every CPU.

/// Weight of the edge cue (0..=243 per pixel before weighting).
const W_EDGE: i32 = 2;
/// Weight of the skin cue (0..=255): the strongest, people are what matters.
const W_SKIN: i16 = 5;
/// Weight of the saturation cue (0..=231): colour helps, but large coloured areas are common.
const W_SAT: i16 = 1;
/// Edge responses at or below this (in `(|gx| + |gy|) / 4` units) are noise, not structure.
const EDGE_FLOOR: i32 = 12;
/// Chroma at or below this is grey, not colour.
const SAT_FLOOR: i16 = 24;
/// Luma range in which a pixel's colour is trusted for the skin rule.
const SKIN_LUMA: std::ops::RangeInclusive<u16> = 32..=248;
/// The prior's unit: a box at the preferred place has weight `PRIOR_ONE`.
const PRIOR_ONE: u64 = 256;
/// The most the prior takes away for a box at the far left or right (1/16).
const PRIOR_X: u64 = 16;
/// The most the prior takes away for a box far from the upper third (1/16).
const PRIOR_Y: u64 = 16;

/// The top-left corner, in picture pixels, of the `bw` x `bh` box that holds the most
/// interesting part of an upright RGB picture (`rgb.len() == w*h*3`), or `None` when nothing
/// stands out (a flat or nearly uniform picture): the caller then centres the box.
///
/// A box of 0 or larger than the picture is clamped to 1..=the picture's size; a box as
/// large as the picture, an empty picture or a buffer shorter than `w*h*3` give `None`.
pub(crate) fn attention_box(rgb: &[u8], w: u32, h: u32, bw: u32, bh: u32) -> Option<(u32, u32)> {
    if w == 0 || h == 0 {
        return None;
    }
    let (wu, hu) = (w as usize, h as usize);
    let n = wu.checked_mul(hu)?;
    if rgb.len() / 3 < n {
        return None;
    }
    let (bw, bh) = (bw.clamp(1, w), bh.clamp(1, h));
    if bw == w && bh == h {
        return None;
    }
    // One pass over the pixels for the cues that need only the pixel itself.
    let (mut luma, mut colour) = (vec![0u8; n], vec![0u16; n]);
    for ((l, c), p) in luma.iter_mut().zip(&mut colour).zip(rgb.chunks_exact(3)) {
        (*l, *c) = pixel_cues(p[0], p[1], p[2]);
    }
    let table = summed_saliency(&luma, &colour, wu, hu);
    best_box(&table, w, h, bw, bh)
}

/// The luma of one pixel and its colour saliency, `W_SKIN * skin + W_SAT * saturation`
/// (at most 1,506). Branch-free 16-bit arithmetic, so the pixel loop vectorizes even on
/// plain SSE2; every intermediate fits (the chroma sums lie in -32,640..=32,640, the luma sum
/// is at most 65,408).
fn pixel_cues(r: u8, g: u8, b: u8) -> (u8, u16) {
    // Full-range BT.601 (JFIF) YCbCr, coefficients x256 (the chroma rows sum to 0); `>>`
    // floors, the same on every CPU. Cb and Cr are kept minus 128.
    let y = (77 * u16::from(r) + 150 * u16::from(g) + 29 * u16::from(b) + 128) >> 8;
    let (r, g, b) = (i16::from(r), i16::from(g), i16::from(b));
    let cb = (-43 * r - 85 * g + 128 * b) >> 8;
    let cr = (128 * r - 107 * g - 21 * b) >> 8;
    // Skin: how far inside the box Cb 102 +- 25, Cr 153 +- 20 (-26 and +25 here), scaled so
    // that the inner half of each range reaches 255 (12.5 x 21 and 10 x 26 are about 255).
    let in_cb = ((25 - (cb + 26).abs()).max(0) * 21).min(255);
    let in_cr = ((20 - (cr - 25).abs()).max(0) * 26).min(255);
    let lit = i16::from(*SKIN_LUMA.start() <= y && y <= *SKIN_LUMA.end());
    let skin = in_cb.min(in_cr) * lit;
    let sat = (r.max(g).max(b) - r.min(g).min(b) - SAT_FLOOR).max(0);
    (y as u8, (W_SKIN * skin + W_SAT * sat) as u16)
}

/// The summed-area table of the saliency, `(w + 1) * (h + 1)` entries, row-major, with a
/// zero first row and column: each pixel's `colour` plus `W_EDGE` times its edge strength.
/// Borders replicate the edge pixels for the Sobel filter, which is computed separably: per
/// column, the vertical smoothing `above + 2 centre + below` and difference `below - above`
/// (padded by a copy of the end columns), then across the row.
fn summed_saliency(luma: &[u8], colour: &[u16], w: usize, h: usize) -> Vec<u64> {
    let stride = w + 1;
    let mut table = vec![0u64; stride * (h + 1)];
    let (mut smooth, mut diff) = (vec![0i32; w + 2], vec![0i32; w + 2]);
    let mut row_saliency = vec![0u32; w];
    for y in 0..h {
        let row = |y: usize| &luma[y * w..(y + 1) * w];
        let (above, centre, below) = (row(y.saturating_sub(1)), row(y), row((y + 1).min(h - 1)));
        for x in 0..w {
            let (a, c, b) = (
                i32::from(above[x]),
                i32::from(centre[x]),
                i32::from(below[x]),
            );
            smooth[x + 1] = a + 2 * c + b;
            diff[x + 1] = b - a;
        }
        (smooth[0], smooth[w + 1], diff[0], diff[w + 1]) = (smooth[1], smooth[w], diff[1], diff[w]);
        let colour = &colour[y * w..(y + 1) * w];
        for (x, (out, &c)) in row_saliency.iter_mut().zip(colour).enumerate() {
            let gx = smooth[x + 2] - smooth[x];
            let gy = diff[x] + 2 * diff[x + 1] + diff[x + 2];
            let edge = ((gx.abs() + gy.abs()) / 4).min(255) - EDGE_FLOOR;
            *out = (W_EDGE * edge.max(0) + i32::from(c)) as u32;
        }
        let (done, rest) = table.split_at_mut((y + 1) * stride);
        let mut row_sum = 0u64;
        let cells = rest[1..stride].iter_mut().zip(&done[y * stride + 1..]);
        for ((cell, above), s) in cells.zip(&row_saliency) {
            row_sum += u64::from(*s);
            *cell = *above + row_sum;
        }
    }
    table
}

/// The best `bw` x `bh` position (`bw <= w`, `bh <= h`, not both equal) over every position,
/// or `None` when all positions are about as salient as each other.
fn best_box(table: &[u64], w: u32, h: u32, bw: u32, bh: u32) -> Option<(u32, u32)> {
    let (stride, bwu, bhu) = (w as usize + 1, bw as usize, bh as usize);
    let (w64, h64, bw64, bh64) = (u64::from(w), u64::from(h), u64::from(bw), u64::from(bh));
    // Per column position: the box centre's distance from the middle, times 2 (at most w),
    // and what the prior takes away for it.
    let ox: Vec<u64> = (0..=w - bw)
        .map(|x| (2 * u64::from(x) + bw64).abs_diff(w64))
        .collect();
    let penalty_x: Vec<u64> = ox.iter().map(|&o| PRIOR_X * o / w64).collect();
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    // (score, squared distance from the centre, y, x) of the best position so far.
    let mut best = (0u64, u64::MAX, 0u32, 0u32);
    for y in 0..=(h - bh) as usize {
        // The box centre's distance from the upper third, times 6 (at most 4 h).
        let oy = (6 * y as u64 + 3 * bh64).abs_diff(2 * h64);
        let dy = (2 * y as u64 + bh64).abs_diff(h64);
        let weight_y = PRIOR_ONE - PRIOR_Y * oy / (4 * h64);
        let (top, bottom) = (
            &table[y * stride..][..stride],
            &table[(y + bhu) * stride..][..stride],
        );
        for (x, (&ox, &penalty)) in ox.iter().zip(&penalty_x).enumerate() {
            let raw = bottom[x + bwu] + top[x] - top[x + bwu] - bottom[x];
            lo = lo.min(raw);
            hi = hi.max(raw);
            let score = raw * (weight_y - penalty);
            if score >= best.0 {
                // Positions come by increasing y then x, so on a full tie the first one seen
                // (smallest y, then x) stays.
                let centre = ox * ox + dy * dy;
                if score > best.0 || centre < best.1 {
                    best = (score, centre, y as u32, x as u32);
                }
            }
        }
    }
    // Flat: the best box gains less than a quarter of a saliency unit per pixel.
    if (hi - lo) * 4 <= bw64 * bh64 {
        return None;
    }
    Some((best.3, best.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w` x `h` RGB picture from a colour function.
    fn picture(w: u32, h: u32, mut f: impl FnMut(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&f(x, y));
            }
        }
        rgb
    }

    /// Whether (x, y) is in the ellipse centred at (cx, cy) with radii rx, ry.
    fn in_ellipse(x: u32, y: u32, (cx, cy, rx, ry): (u32, u32, u32, u32)) -> bool {
        let (dx, dy) = (i64::from(x) - i64::from(cx), i64::from(y) - i64::from(cy));
        let (rx, ry) = (i64::from(rx), i64::from(ry));
        dx * dx * ry * ry + dy * dy * rx * rx <= rx * rx * ry * ry
    }

    /// A face: a skin ellipse with dark eyes and a mouth, over dark hair; `None` outside.
    fn face(x: u32, y: u32, (cx, cy, rx, ry): (u32, u32, u32, u32)) -> Option<[u8; 3]> {
        if in_ellipse(x, y, (cx, cy, rx, ry)) {
            let (eye_y, mouth_y) = (cy - ry / 4, cy + ry / 2);
            let eye = y.abs_diff(eye_y) <= 1
                && (x.abs_diff(cx - rx / 2) <= 2 || x.abs_diff(cx + rx / 2) <= 2);
            let mouth = y.abs_diff(mouth_y) <= 1 && x.abs_diff(cx) <= rx / 3;
            return Some(if eye || mouth {
                [60, 35, 30]
            } else {
                [224, 172, 140]
            });
        }
        // Hair: a slightly larger ellipse, shifted up.
        in_ellipse(x, y + ry / 5, (cx, cy, rx + 2, ry + 2)).then_some([50, 35, 25])
    }

    /// A landscape (blue sky over a green field) with a busy striped tree at the right and,
    /// when `person` is given, a face there.
    fn landscape(w: u32, h: u32, person: Option<(u32, u32, u32, u32)>) -> Vec<u8> {
        picture(w, h, |x, y| {
            if let Some(c) = person.and_then(|p| face(x, y, p)) {
                return c;
            }
            let tree = x > w * 3 / 4 && x < w - 10 && y > h / 3 && y < h - 15;
            if tree {
                return if (x / 3) % 2 == 0 {
                    [30, 80, 30]
                } else {
                    [90, 160, 70]
                };
            }
            if y < h / 2 {
                [100, 150, 225]
            } else {
                [70, 130, 60]
            }
        })
    }

    /// Asserts the box at `at` (`bw` x `bh`) holds the face's bounding box.
    fn assert_holds(
        at: Option<(u32, u32)>,
        bw: u32,
        bh: u32,
        (cx, cy, rx, ry): (u32, u32, u32, u32),
    ) {
        let (x, y) = at.expect("a salient picture gives a box");
        assert!(
            x <= cx - rx && x + bw > cx + rx,
            "x {x} misses the face at {cx}"
        );
        assert!(
            y <= cy - ry && y + bh > cy + ry,
            "y {y} misses the face at {cy}"
        );
    }

    #[test]
    fn pixel_cues_score_skin_over_colour_and_grey_as_nothing() {
        // The extremes of every channel: the 16-bit sums must not overflow (tests run with
        // overflow checks).
        for r in (0..=255).step_by(51) {
            for g in (0..=255).step_by(51) {
                for b in (0..=255).step_by(51) {
                    assert_eq!(pixel_cues(r, g, b).0, luma_reference(r, g, b));
                }
            }
        }
        let skin = |r, g, b| pixel_cues(r, g, b).1;
        // Light and dark skin score the full skin weight (plus a little saturation).
        assert!(skin(224, 172, 140) >= 5 * 255 && skin(141, 85, 36) >= 5 * 255);
        // Sky, grass and a red car score saturation only; greys score nothing.
        for colour in [[100, 150, 225], [70, 130, 60], [220, 30, 30]] {
            let [r, g, b] = colour;
            assert!(skin(r, g, b) <= 231, "{colour:?}");
        }
        assert_eq!(
            (skin(128, 128, 128), skin(0, 0, 0), skin(255, 255, 255)),
            (0, 0, 0)
        );
        // Skin-coloured but nearly black: the colour is not trusted.
        assert_eq!(skin(40, 20, 12), (40 - 12 - 24) as u16);
    }

    /// Luma in 32-bit arithmetic, rounded.
    fn luma_reference(r: u8, g: u8, b: u8) -> u8 {
        ((77 * u32::from(r) + 150 * u32::from(g) + 29 * u32::from(b) + 128) / 256) as u8
    }

    #[test]
    fn a_person_at_the_left_of_a_landscape_pulls_the_box_to_them() {
        let person = (30, 60, 12, 16);
        let rgb = landscape(240, 120, Some(person));
        let at = attention_box(&rgb, 240, 120, 120, 120);
        assert_holds(at, 120, 120, person);
        // Without the person, the busy tree at the right wins.
        let (x, _) = attention_box(&landscape(240, 120, None), 240, 120, 120, 120).unwrap();
        assert!(x + 120 >= 230, "x {x}");
    }

    #[test]
    fn a_person_anywhere_in_a_portrait_is_kept_despite_the_prior() {
        let background = |x: u32, y: u32| [90 + (x % 2) as u8, 110, 140 + (y % 2) as u8];
        for person in [(50, 35, 14, 18), (40, 160, 14, 18)] {
            let rgb = picture(100, 200, |x, y| {
                face(x, y, person).unwrap_or(background(x, y))
            });
            assert_holds(attention_box(&rgb, 100, 200, 100, 100), 100, 100, person);
        }
    }

    #[test]
    fn a_saturated_object_at_the_right_pulls_the_box_right() {
        let rgb = picture(200, 100, |x, y| {
            if (160..190).contains(&x) && (30..60).contains(&y) {
                [220, 30, 30]
            } else {
                [120, 120, 120]
            }
        });
        let (x, y) = attention_box(&rgb, 200, 100, 100, 100).unwrap();
        assert!(x >= 90, "x {x}");
        assert_eq!(y, 0);
        // A smaller box settles on the object in both directions.
        let (x, y) = attention_box(&rgb, 200, 100, 40, 40).unwrap();
        assert!(
            x <= 160 && x + 40 >= 190 && y <= 30 && y + 40 >= 60,
            "({x}, {y})"
        );
    }

    #[test]
    fn uniform_and_nearly_uniform_pictures_give_none() {
        for colour in [[128, 128, 128], [30, 90, 220], [224, 172, 140], [0, 0, 0]] {
            let rgb = picture(160, 120, |_, _| colour);
            assert_eq!(attention_box(&rgb, 160, 120, 100, 100), None, "{colour:?}");
        }
        // Grey with +-3 of deterministic noise and a gentle gradient.
        let mut s = 1u32;
        let noisy = picture(160, 120, |x, _| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let v = 100 + (x / 8) as u8 + (s >> 29) as u8;
            [v, v, v + 1]
        });
        assert_eq!(attention_box(&noisy, 160, 120, 90, 90), None);
    }

    #[test]
    fn degenerate_sizes_do_not_panic() {
        let strip = picture(
            1,
            4000,
            |_, y| if y > 3000 { [220, 30, 30] } else { [9, 9, 9] },
        );
        assert!(attention_box(&strip, 1, 4000, 1, 100).is_some_and(|(x, y)| x == 0 && y > 2900));
        let row = picture(
            4000,
            1,
            |x, _| if x < 500 { [220, 30, 30] } else { [9, 9, 9] },
        );
        assert!(attention_box(&row, 4000, 1, 100, 1).is_some_and(|(x, y)| x < 500 && y == 0));
        let rgb = landscape(64, 48, Some((16, 24, 6, 8)));
        assert_eq!(attention_box(&[], 0, 0, 10, 10), None);
        assert_eq!(attention_box(&[], 0, 48, 10, 10), None);
        assert_eq!(attention_box(&rgb, 64, 48, 64, 48), None);
        assert_eq!(attention_box(&rgb, 64, 48, 500, 500), None);
        assert!(attention_box(&rgb, 64, 48, 0, 0).is_some_and(|(x, y)| x < 64 && y < 48));
        assert!(attention_box(&rgb, 64, 48, 500, 20).is_some_and(|(x, y)| x == 0 && y <= 28));
        assert_eq!(attention_box(&rgb[..rgb.len() - 1], 64, 48, 32, 32), None);
        assert_eq!(attention_box(&rgb, u32::MAX, u32::MAX, 32, 32), None);
        assert_eq!(attention_box(&[1, 2, 3], 1, 1, 1, 1), None);
    }

    #[test]
    fn the_same_input_gives_the_same_box() {
        let rgb = landscape(320, 240, Some((250, 90, 20, 26)));
        let first = attention_box(&rgb, 320, 240, 150, 150);
        assert!(first.is_some());
        assert_eq!(first, attention_box(&rgb, 320, 240, 150, 150));
        assert_eq!(first, attention_box(&rgb.clone(), 320, 240, 150, 150));
    }

    #[test]
    fn a_mirrored_picture_gives_the_mirrored_box() {
        let (w, h, b) = (240u32, 160u32, 100u32);
        for person in [(30, 60, 12, 16), (150, 110, 10, 14)] {
            let rgb = landscape(w, h, Some(person));
            let mirrored = picture(w, h, |x, y| {
                let i = ((y * w + (w - 1 - x)) * 3) as usize;
                [rgb[i], rgb[i + 1], rgb[i + 2]]
            });
            let (x, y) = attention_box(&rgb, w, h, b, b).unwrap();
            let (mx, my) = attention_box(&mirrored, w, h, b, b).unwrap();
            assert!(
                mx.abs_diff(w - b - x) <= 2 && my == y,
                "({x}, {y}) vs ({mx}, {my})"
            );
        }
    }
}
