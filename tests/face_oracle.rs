//! The crate's face detector against an oracle: the same YuNet model (the ONNX file the
//! shipped weights were converted from, `models/yunet/`) run by onnxruntime, on corpus photos
//! with and without faces. The crate's forward pass must give the same maps up to float
//! rounding (onnxruntime sums in another order, with FMA), and the same faces.
//!
//! Needs a Python with `onnxruntime` and `numpy`: `USERPHOTO_ORACLE_PYTHON=/path/to/python`
//! (scripts/test.sh makes one). Without it the test says so and passes, unless
//! `USERPHOTO_REQUIRE_TOOLS=1` (as in scripts/test.sh), where it fails.
#![cfg(feature = "face")]

use std::path::{Path, PathBuf};
use std::process::Command;

use userphoto::normalize::bench;
use userphoto_testkit as common;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> Option<PathBuf> {
    match std::env::var_os("USERPHOTO_ORACLE_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var_os("USERPHOTO_REQUIRE_TOOLS").is_none_or(|v| v != "1"),
                "USERPHOTO_REQUIRE_TOOLS=1 but USERPHOTO_ORACLE_PYTHON is not set"
            );
            eprintln!("SKIPPED: set USERPHOTO_ORACLE_PYTHON to a Python with onnxruntime");
            None
        }
    }
}

/// The detector's input for a photo: fitted into 256 px, padded to multiples of 32, BGR
/// channels last; and the RGB picture it came from.
fn input(path: &Path) -> (Vec<f32>, usize, usize, Vec<u8>, usize, usize) {
    let img = image::open(path).expect("open corpus photo").to_rgb8();
    let (w, h) = img.dimensions();
    let s = (256.0 / w.max(h) as f64).min(1.0);
    let (rw, rh) = (
        ((w as f64 * s).round() as u32).max(1),
        ((h as f64 * s).round() as u32).max(1),
    );
    let small = image::imageops::resize(&img, rw, rh, image::imageops::FilterType::Triangle);
    let (pw, ph) = (
        (rw as usize).div_ceil(32) * 32,
        (rh as usize).div_ceil(32) * 32,
    );
    let mut planar = vec![0f32; 3 * pw * ph];
    for (x, y, p) in small.enumerate_pixels() {
        let d = (y as usize * pw + x as usize) * 3;
        planar[d] = p[2] as f32;
        planar[d + 1] = p[1] as f32;
        planar[d + 2] = p[0] as f32;
    }
    (planar, ph, pw, small.into_raw(), rw as usize, rh as usize)
}

fn oracle(py: &Path, planar: &[f32], h: usize, w: usize) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.f32");
    let dst = dir.path().join("out.f32");
    let bytes: Vec<u8> = planar.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&src, bytes).unwrap();
    let out = Command::new(py)
        .arg(repo().join("tests/oracle/yunet_ort.py"))
        .arg(repo().join("models/yunet/yunet_n_dynamic.onnx"))
        .arg(&src)
        .arg(h.to_string())
        .arg(w.to_string())
        .arg(&dst)
        .output()
        .expect("run the oracle");
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&dst)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// Faces (x, y, w, h, score) above 0.6 from the oracle's maps, decoded as the crate does.
fn oracle_faces(maps: &[Vec<f32>], h: usize, w: usize) -> Vec<[f32; 5]> {
    let mut out = Vec::new();
    for (level, s) in [8usize, 16, 32].into_iter().enumerate() {
        let cols = w / s;
        let cells = (h / s) * cols;
        let (cls, obj, bbox) = (&maps[level], &maps[3 + level], &maps[6 + level]);
        for i in 0..cells {
            let score = (cls[i].clamp(0.0, 1.0) * obj[i].clamp(0.0, 1.0)).sqrt();
            if score < 0.6 {
                continue;
            }
            let (r, c) = ((i / cols) as f32, (i % cols) as f32);
            let b = &bbox[i * 4..i * 4 + 4];
            let (cx, cy) = ((c + b[0]) * s as f32, (r + b[1]) * s as f32);
            let (bw, bh) = (b[2].exp() * s as f32, b[3].exp() * s as f32);
            out.push([cx - bw / 2.0, cy - bh / 2.0, bw, bh, score]);
        }
    }
    out.sort_by(|a, b| b[4].total_cmp(&a[4]));
    out
}

#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn the_forward_pass_matches_onnxruntime_on_corpus_photos() {
    let corpus = common::corpus();
    let Some(py) = python() else { return };
    // (photo, whether a face is there at this input size: None when it is borderline, as
    // the band's 8 px faces are; the crate and the oracle must then still agree)
    let photos = [
        ("30_skimage_astronaut.png", Some(true)),
        ("14_lomiri_friends_2056x3088.jpg", Some(true)),
        ("35_exif_bsg1.tiff", None),
        ("29_orient_portrait_6.jpg", Some(false)),
        ("06_exif_olympus_ep3_4032x3024.jpg", Some(false)),
    ];
    for (name, has_face) in photos {
        let (planar, h, w, rgb, rw, rh) = input(&corpus.join(name));
        let ours = bench::face_heads(planar.clone(), h, w);
        let theirs = oracle(&py, &planar, h, w);
        // Split the oracle's output into its nine maps, in (cell, channel) order.
        let mut maps = Vec::new();
        let mut at = 0;
        for (c, mh, mw, _) in &ours {
            let n = c * mh * mw;
            maps.push(theirs[at..at + n].to_vec());
            at += n;
        }
        assert_eq!(at, theirs.len(), "{name}: map sizes");
        let mut worst = 0f32;
        for (i, ((c, mh, mw, data), theirs)) in ours.iter().zip(&maps).enumerate() {
            let cells = mh * mw;
            for cell in 0..cells {
                for ch in 0..*c {
                    let mine = data[cell * c + ch];
                    let mine = if i < 6 { sigmoid(mine) } else { mine };
                    let other = theirs[cell * c + ch];
                    let err = (mine - other).abs() / (1.0 + other.abs());
                    worst = worst.max(err);
                }
            }
        }
        assert!(worst < 2e-3, "{name}: largest relative difference {worst}");

        let mine = bench::detect_faces(&rgb, rw, rh, true);
        let other = oracle_faces(&maps, h, w);
        if let Some(has_face) = has_face {
            assert_eq!(!mine.is_empty(), has_face, "{name}: {mine:?}");
        }
        assert_eq!(
            mine.is_empty(),
            other.is_empty(),
            "{name}: {mine:?} vs {other:?}"
        );
        if let (Some(a), Some(b)) = (mine.first(), other.first()) {
            for k in 0..4 {
                assert!(
                    (a[k] - b[k]).abs() < 1.5,
                    "{name}: best face {a:?} vs {b:?}"
                );
            }
            assert!((a[4] - b[4]).abs() < 0.01, "{name}: scores {a:?} vs {b:?}");
        }
        eprintln!(
            "{name}: {}x{} max relative difference {worst:.2e}, {} faces",
            w,
            h,
            mine.len()
        );
    }
}
