//! JPEG variants made with libjpeg-turbo's own tools (`cjpeg`, `jpegtran`; Debian package
//! `libjpeg-turbo-progs`, which `scripts/test.sh` installs): progressive, arithmetic-coded,
//! restart markers, every chroma subsampling, grayscale. Skipped with a message when the
//! tools are missing.

use userphoto_testkit as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use userphoto::normalize::{testimage, Normalizer, Profile};

fn tool(name: &str) -> Option<PathBuf> {
    let ok = Command::new(name).arg("-version").output().is_ok();
    if ok {
        Some(PathBuf::from(name))
    } else {
        userphoto_testkit::skip(&format!(
            "{name} not found (apt install libjpeg-turbo-progs)"
        ));
        None
    }
}

fn run(cmd: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Feed stdin from another thread: the tool streams, so its stdout must be drained while
    // the input is still being written.
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success(), "{} {args:?} failed", cmd.display());
    out.stdout
}

fn ppm(w: u32, h: u32) -> Vec<u8> {
    let mut v = format!("P6\n{w} {h}\n255\n").into_bytes();
    v.extend(testimage::photo_rgb(w, h, 11));
    v
}

fn thumb(bytes: &[u8], p: &Profile) -> image::RgbImage {
    let r = Normalizer::new().normalize(bytes, p).unwrap();
    assert_eq!((r.width, r.height), (p.width(), p.height()));
    common::decode_rgb(&r.bytes)
}

/// A progressive file at 1/8 scale is decoded from its DC scans only; the result must match
/// the baseline encoding of the same picture closely.
#[test]
fn progressive_dc_only_matches_baseline() {
    let (Some(cjpeg), Some(jpegtran)) = (tool("cjpeg"), tool("jpegtran")) else {
        return;
    };
    let source = ppm(2400, 1800);
    for sample in ["2x2", "2x1", "1x1"] {
        let baseline = run(&cjpeg, &["-quality", "90", "-sample", sample], &source);
        let progressive = run(&jpegtran, &["-progressive"], &baseline);
        assert!(userphoto::normalize::bench::jpeg_is_progressive(
            &progressive
        ));
        for p in [Profile::ad_thumbnail(), Profile::ad_large()] {
            let a = thumb(&baseline, &p);
            let b = thumb(&progressive, &p);
            let d = common::mean_abs_diff(&a, &b);
            assert!(
                d < 1.5,
                "{sample} / {}: progressive differs from baseline by {d:.2}",
                p.name()
            );
        }
    }
}

#[test]
fn arithmetic_restart_and_subsampling_variants_normalize() {
    let (Some(cjpeg), Some(jpegtran)) = (tool("cjpeg"), tool("jpegtran")) else {
        return;
    };
    let source = ppm(1000, 700);
    let reference = thumb(
        &run(&cjpeg, &["-quality", "95"], &source),
        &Profile::ad_thumbnail(),
    );
    let variants: Vec<(&str, Vec<u8>)> = vec![
        (
            "4:4:4",
            run(&cjpeg, &["-quality", "95", "-sample", "1x1"], &source),
        ),
        (
            "4:2:2",
            run(&cjpeg, &["-quality", "95", "-sample", "2x1"], &source),
        ),
        (
            "4:4:0",
            run(&cjpeg, &["-quality", "95", "-sample", "1x2"], &source),
        ),
        (
            "4:1:1",
            run(&cjpeg, &["-quality", "95", "-sample", "4x1"], &source),
        ),
        (
            "restart",
            run(&cjpeg, &["-quality", "95", "-restart", "1"], &source),
        ),
        (
            "arithmetic",
            run(&cjpeg, &["-quality", "95", "-arithmetic"], &source),
        ),
        (
            "arithmetic-progressive",
            run(
                &jpegtran,
                &["-arithmetic", "-progressive"],
                &run(&cjpeg, &["-quality", "95"], &source),
            ),
        ),
        (
            "optimized",
            run(&cjpeg, &["-quality", "95", "-optimize"], &source),
        ),
        (
            "smoothed",
            run(&cjpeg, &["-quality", "95", "-smooth", "10"], &source),
        ),
    ];
    for (name, bytes) in variants {
        if name.starts_with("arithmetic") && !cfg!(feature = "mozjpeg") {
            // zune-jpeg has no arithmetic decoder: a typed error that says so.
            let e = Normalizer::new()
                .normalize(&bytes, &Profile::ad_thumbnail())
                .unwrap_err();
            assert!(e.to_string().contains("arithmetic"), "{name}: {e}");
            continue;
        }
        let t = thumb(&bytes, &Profile::ad_thumbnail());
        let d = common::mean_abs_diff(&reference, &t);
        assert!(d < 4.0, "{name}: differs from the 4:2:0 baseline by {d:.2}");
    }
    // Grayscale stays grey.
    let gray = run(&cjpeg, &["-quality", "95", "-grayscale"], &source);
    let t = thumb(&gray, &Profile::ad_thumbnail());
    assert!(t
        .pixels()
        .all(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() <= 3));
}
