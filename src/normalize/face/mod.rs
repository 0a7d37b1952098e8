//! The face detector shipped in the crate: YuNet (Wu, Peng, Yu, "YuNet: A Tiny
//! Millisecond-level Face Detector", Machine Intelligence Research 2023), the `yunet_n`
//! weights from `ShiqiYu/libfacedetection.train` (Apache-2.0; origin, checksum and the
//! conversion in `models/yunet/README.md`), run by a forward pass written here ([`net`]).
//!
//! Why this detector: it finds frontal, turned and partly covered faces from about 10 pixels
//! up (it was trained on WIDER FACE), which the SeetaFace cascade (frontal only) does not;
//! its weights are 290 KB, a fifth of UltraFace's; its whole network is four kinds of
//! operation, so a deterministic forward pass in plain Rust is a few hundred lines and needs
//! no inference engine (tract and onnxruntime choose kernels per CPU and differ in the last
//! bits). InsightFace's detectors are better still but their weights are for non-commercial
//! use only.

mod net;

use net::{Map, Net};

/// Detections below this score are dropped (OpenCV's YuNet sample uses 0.9 for a
/// high-precision demo; a crop wants recall on the main face, and the placement rule keeps
/// the largest face, so a stray low-score box in the background rarely matters).
const MIN_SCORE: f32 = 0.6;
/// Boxes overlapping a better one by more than this (intersection over union) are dropped.
const NMS_IOU: f32 = 0.3;
/// At most this many faces are kept (the best by score).
const MAX_FACES: usize = 32;

/// One face, in pixels of the picture given to [`detect`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Detection {
    pub(crate) x: f32,
    pub(crate) y: f32,
    pub(crate) w: f32,
    pub(crate) h: f32,
    pub(crate) score: f32,
}

/// Finds faces in an RGB picture (`rgb.len() == w * h * 3`, at most a few hundred pixels on its
/// longer side, not enlarged when smaller). Sorted by score, best first, ties by position.
/// `simd: false` forces the scalar code (the tests check both give the same bits).
pub(crate) fn detect(rgb: &[u8], w: usize, h: usize, simd: bool) -> Vec<Detection> {
    if w == 0 || h == 0 || rgb.len() < w * h * 3 {
        return Vec::new();
    }
    // The network downsamples by 32: pad right and bottom with black, as OpenCV does.
    let (pw, ph) = (w.div_ceil(32) * 32, h.div_ceil(32) * 32);
    let mut data = vec![0f32; 3 * pw * ph];
    for y in 0..h {
        for x in 0..w {
            let s = (y * w + x) * 3;
            let d = (y * pw + x) * 3;
            // YuNet was trained on OpenCV's BGR order, 0..255, no mean or scale.
            data[d] = rgb[s + 2] as f32;
            data[d + 1] = rgb[s + 1] as f32;
            data[d + 2] = rgb[s] as f32;
        }
    }
    let heads = Net::get().run(
        Map {
            c: 3,
            h: ph,
            w: pw,
            data,
        },
        simd,
    );
    let mut found = Vec::new();
    for (level, stride) in [8usize, 16, 32].into_iter().enumerate() {
        let cls = &heads.maps[level];
        let obj = &heads.maps[3 + level];
        let bbox = &heads.maps[6 + level];
        let cells = cls.h * cls.w;
        if obj.data.len() < cells || bbox.data.len() < 4 * cells || cls.data.len() < cells {
            continue;
        }
        for i in 0..cells {
            let score = (sigmoid(cls.data[i]) * sigmoid(obj.data[i])).sqrt();
            if score < MIN_SCORE {
                continue;
            }
            let (row, col) = ((i / cls.w) as f32, (i % cls.w) as f32);
            let s = stride as f32;
            let b = &bbox.data[i * 4..i * 4 + 4];
            let cx = (col + b[0]) * s;
            let cy = (row + b[1]) * s;
            let bw = libm::expf(b[2]) * s;
            let bh = libm::expf(b[3]) * s;
            if !(cx.is_finite() && cy.is_finite() && bw.is_finite() && bh.is_finite()) {
                continue;
            }
            found.push(Detection {
                x: cx - bw / 2.0,
                y: cy - bh / 2.0,
                w: bw,
                h: bh,
                score,
            });
        }
    }
    nms(found)
}

fn sigmoid(v: f32) -> f32 {
    (1.0 / (1.0 + libm::expf(-v))).clamp(0.0, 1.0)
}

/// Greedy non-maximum suppression in a total order (score, then position), so the result
/// never depends on the order the candidates were found in.
fn nms(mut found: Vec<Detection>) -> Vec<Detection> {
    found.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.y.total_cmp(&b.y))
            .then(a.x.total_cmp(&b.x))
            .then(b.w.total_cmp(&a.w))
            .then(b.h.total_cmp(&a.h))
    });
    let mut kept: Vec<Detection> = Vec::new();
    for d in found {
        if kept.iter().all(|k| iou(k, &d) <= NMS_IOU) {
            kept.push(d);
            if kept.len() == MAX_FACES {
                break;
            }
        }
    }
    kept
}

fn iou(a: &Detection, b: &Detection) -> f32 {
    let ix = ((a.x + a.w).min(b.x + b.w) - a.x.max(b.x)).max(0.0);
    let iy = ((a.y + a.h).min(b.y + b.h) - a.y.max(b.y)).max(0.0);
    let inter = ix * iy;
    let union = a.w * a.h + b.w * b.h - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// The raw head maps for the oracle test (`tests/face_oracle.rs` feeds the same input to
/// onnxruntime): the input is BGR, channels last, `h` and `w` multiples of 32; the maps are
/// channels last too.
pub(crate) fn raw_heads(bgr: Vec<f32>, h: usize, w: usize) -> Vec<(usize, usize, usize, Vec<f32>)> {
    let heads = Net::get().run(
        Map {
            c: 3,
            h,
            w,
            data: bgr,
        },
        true,
    );
    heads
        .maps
        .into_iter()
        .map(|m| (m.c, m.h, m.w, m.data))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_pictures_find_nothing_and_do_not_panic() {
        assert!(detect(&[], 0, 0, true).is_empty());
        assert!(detect(&[0; 3], 1, 1, true).is_empty());
        assert!(detect(&[0; 9], 4, 4, true).is_empty()); // short buffer
        let strip = vec![128u8; 320 * 3];
        assert!(detect(&strip, 1, 320, true).is_empty());
        assert!(detect(&strip, 320, 1, true).is_empty());
        let flat = vec![200u8; 64 * 48 * 3];
        assert!(detect(&flat, 64, 48, true).is_empty());
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_in_any_order() {
        let a = Detection {
            x: 10.0,
            y: 10.0,
            w: 20.0,
            h: 20.0,
            score: 0.9,
        };
        let b = Detection {
            score: 0.8,
            x: 11.0,
            ..a
        };
        let c = Detection {
            x: 100.0,
            score: 0.7,
            ..a
        };
        let one = nms(vec![a, b, c]);
        let two = nms(vec![c, b, a]);
        assert_eq!(one, vec![a, c]);
        assert_eq!(one, two);
    }
}
