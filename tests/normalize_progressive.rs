//! The scale-aware progressive JPEG decoder against the libjpeg path it replaces: generated
//! progressive files (cjpeg / jpegtran from libjpeg-turbo-progs; every test prints `SKIPPED`
//! and passes when they are not installed) at every scale and sampling, restart markers,
//! truncation, fallbacks and hostile headers.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use userphoto::normalize::testimage::{photo_rgb, progressive_rasters};
use userphoto::normalize::{Normalizer, Profile, ProgressiveDecoder};

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn tools() -> bool {
    let ok = have("cjpeg") && have("jpegtran");
    if !ok {
        userphoto_testkit::skip("cjpeg/jpegtran not installed (apt install libjpeg-turbo-progs)");
    }
    ok
}

/// A temporary file holding `bytes` (removed when dropped).
fn tmp_file(bytes: &[u8], suffix: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .prefix("userphoto-prog-")
        .suffix(suffix)
        .tempfile()
        .unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    f
}

/// `photo_rgb` (or the gray channel) as a PPM/PGM file.
fn pnm(w: u32, h: u32, seed: u32, gray: bool) -> tempfile::NamedTempFile {
    let rgb = photo_rgb(w, h, seed);
    let mut data = Vec::new();
    if gray {
        write!(data, "P5\n{w} {h}\n255\n").unwrap();
        data.extend(rgb.chunks(3).map(|p| p[1]));
    } else {
        write!(data, "P6\n{w} {h}\n255\n").unwrap();
        data.extend_from_slice(&rgb);
    }
    tmp_file(&data, ".pnm")
}

fn run(cmd: &str, args: &[&str], input: &Path) -> Vec<u8> {
    let out = Command::new(cmd)
        .args(args)
        .arg(input)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed");
    out.stdout
}

/// A progressive JPEG made by cjpeg.
fn cjpeg(w: u32, h: u32, seed: u32, quality: u32, sample: &str, extra: &[&str]) -> Vec<u8> {
    let gray = sample == "gray";
    let input = pnm(w, h, seed, gray);
    let q = quality.to_string();
    let mut args = vec!["-progressive", "-quality", &q];
    if !gray {
        args.extend(["-sample", sample]);
    }
    args.extend(extra);
    run("cjpeg", &args, input.path())
}

fn diff(a: &[u8], b: &[u8]) -> (f64, u8) {
    assert_eq!(a.len(), b.len());
    let mut sum = 0u64;
    let mut max = 0u8;
    for (x, y) in a.iter().zip(b) {
        let d = x.abs_diff(*y);
        sum += d as u64;
        max = max.max(d);
    }
    (sum as f64 / a.len().max(1) as f64, max)
}

/// Byte-identical rasters at 1/8, 1/4 and 1/2.
fn check(bytes: &[u8], what: &str) {
    for denom in [8, 4, 2] {
        let (w, h, ch, ours, theirs) = progressive_rasters(bytes, denom)
            .unwrap_or_else(|| panic!("{what} 1/{denom}: not decoded natively"));
        assert_eq!(ours.len(), (w * h) as usize * ch, "{what} 1/{denom}");
        assert_eq!(ours.len(), theirs.len(), "{what} 1/{denom}: size differs");
        let (mean, max) = diff(&ours, &theirs);
        assert!(ours == theirs, "{what} 1/{denom}: mean {mean} max {max}");
    }
}

#[test]
fn every_scale_and_sampling_matches_libjpeg() {
    if !tools() {
        return;
    }
    for (sample, q) in [
        ("2x2", 75),
        ("2x2", 100),
        ("1x1", 90),
        ("1x1", 100),
        ("gray", 85),
    ] {
        // Odd sizes: partial MCUs at the right and bottom edges.
        let jpeg = cjpeg(517, 389, 3, q, sample, &[]);
        check(&jpeg, &format!("{sample} q{q}"));
    }
}

#[test]
fn restart_markers_are_followed() {
    if !tools() {
        return;
    }
    for sample in ["2x2", "1x1"] {
        // -restart 1: an RST marker after every MCU row; 3B: after every 3 MCUs / blocks.
        for r in ["1", "3B"] {
            let jpeg = cjpeg(333, 250, 5, 90, sample, &["-restart", r]);
            assert!(jpeg.windows(2).any(|w| w[0] == 0xFF && w[1] == 0xD0));
            check(&jpeg, &format!("{sample} restart {r}"));
        }
    }
}

#[test]
fn jpegtran_progressive_files_match() {
    if !tools() {
        return;
    }
    let base = cjpeg(400, 300, 9, 92, "2x2", &[]);
    // cjpeg wrote progressive already; make a baseline file, then let jpegtran turn it
    // progressive (its default script, as the benches do).
    let input = tmp_file(&base, ".jpg");
    let baseline = run("jpegtran", &[], input.path());
    let bpath = tmp_file(&baseline, ".jpg");
    let prog = run("jpegtran", &["-progressive"], bpath.path());
    check(&prog, "jpegtran -progressive");
}

/// The final rendition (what a sink receives) against today's libjpeg path, at every
/// profile (3000x2700 so that graph decodes at 1/2): the same bytes, and deterministic.
#[test]
fn renditions_stay_within_tolerance_of_the_libjpeg_path() {
    if !tools() {
        return;
    }
    let profiles = [
        Profile::ad_thumbnail(),
        Profile::ad_large(),
        Profile::graph(),
    ];
    for (sample, q) in [("2x2", 100), ("1x1", 95), ("2x2", 80)] {
        let jpeg = cjpeg(3000, 2700, 11, q, sample, &[]);
        let ours = Normalizer::new();
        let lib = Normalizer::new().with_progressive_decoder(ProgressiveDecoder::Libjpeg);
        for p in &profiles {
            let a = ours.normalize(&jpeg, p).unwrap();
            let again = ours.normalize(&jpeg, p).unwrap();
            assert_eq!(a.bytes, again.bytes, "deterministic");
            let b = lib.normalize(&jpeg, p).unwrap();
            let da = image::load_from_memory(&a.bytes).unwrap().into_rgb8();
            let db = image::load_from_memory(&b.bytes).unwrap().into_rgb8();
            assert_eq!(da.dimensions(), db.dimensions());
            let (mean, max) = diff(da.as_raw(), db.as_raw());
            eprintln!("{sample} q{q} {}: mean {mean:.3} max {max}", p.name());
            assert!(
                mean < 1.0 && max <= 4,
                "{sample} q{q} {}: mean {mean} max {max}",
                p.name()
            );
        }
    }
}

#[test]
fn out_of_scope_files_fall_back_to_libjpeg() {
    if !tools() {
        return;
    }
    // 4:2:2 and arithmetic coding are left to libjpeg, and still normalize.
    let s422 = cjpeg(300, 200, 2, 90, "2x1", &[]);
    assert!(progressive_rasters(&s422, 4).is_none());
    let arith = cjpeg(300, 200, 2, 90, "2x2", &["-arithmetic"]);
    assert!(progressive_rasters(&arith, 4).is_none());
    for f in [&s422, &arith] {
        let r = Normalizer::new()
            .normalize(f, &Profile::ad_thumbnail())
            .unwrap();
        assert_eq!((r.width, r.height), (96, 96));
    }
}

/// Every cut of a progressive file: an error or an image, never a panic; and exactly what
/// the libjpeg path gives.
#[test]
fn truncated_files_behave_like_libjpeg() {
    if !tools() {
        return;
    }
    let jpeg = cjpeg(640, 480, 4, 90, "2x2", &["-restart", "2"]);
    let ours = Normalizer::new();
    let lib = Normalizer::new().with_progressive_decoder(ProgressiveDecoder::Libjpeg);
    let p = Profile::custom("t", 60, 60, 60_000);
    let step = (jpeg.len() / 60).max(1);
    for cut in (2..jpeg.len()).step_by(step) {
        let f = &jpeg[..cut];
        assert!(
            progressive_rasters(f, 4).is_none(),
            "cut {cut}: no EOI, left to libjpeg"
        );
        // The same bytes, or the same error kind.
        let a = ours.normalize(f, &p).map(|r| r.bytes).map_err(|e| e.kind());
        let b = lib.normalize(f, &p).map(|r| r.bytes).map_err(|e| e.kind());
        assert_eq!(a, b, "cut {cut}");
    }
}

fn find(b: &[u8], marker: u8) -> Vec<usize> {
    (0..b.len().saturating_sub(1))
        .filter(|&i| b[i] == 0xFF && b[i + 1] == marker)
        .collect()
}

/// Hostile headers and data: bad Huffman tables, Ss/Se/Ah/Al out of range, scans naming
/// components the frame lacks, flipped bytes in the data. Each gives the libjpeg path's
/// result (image or typed error), never a panic.
#[test]
fn hostile_inputs_never_panic() {
    if !tools() {
        return;
    }
    let jpeg = cjpeg(200, 160, 8, 90, "2x2", &[]);
    let p = Profile::custom("t", 20, 20, 20_000).with_min_width(16);
    let ours = Normalizer::new();
    let lib = Normalizer::new().with_progressive_decoder(ProgressiveDecoder::Libjpeg);
    let same = |f: &[u8], what: &str| {
        let a = ours.normalize(f, &p).map(|r| r.bytes);
        let b = lib.normalize(f, &p).map(|r| r.bytes);
        match (&a, &b) {
            (Ok(x), Ok(y)) => assert_eq!(x, y, "{what}"),
            (Err(x), Err(y)) => assert_eq!(x.kind(), y.kind(), "{what}: {x} / {y}"),
            _ => panic!("{what}: ours {:?} libjpeg {:?}", a.is_ok(), b.is_ok()),
        }
    };
    let sos = find(&jpeg, 0xDA);
    let dht = find(&jpeg, 0xC4);
    assert!(sos.len() > 3 && !dht.is_empty());
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, &s) in sos.iter().enumerate() {
        let ns = jpeg[s + 4] as usize;
        let p = s + 5 + 2 * ns;
        for (off, vals) in [
            (0usize, [0u8, 1, 63, 64, 200]),
            (1, [0, 1, 62, 64, 255]),
            (2, [0x00, 0x10, 0x21, 0xE0, 0x0F]),
        ] {
            for v in vals {
                let mut f = jpeg.clone();
                f[p + off] = v;
                cases.push((format!("scan {i} byte {off} = {v}"), f));
            }
        }
        // A component the frame does not have.
        let mut f = jpeg.clone();
        f[s + 5] = 0x77;
        cases.push((format!("scan {i} component 0x77"), f));
        // Table ids out of range.
        let mut f = jpeg.clone();
        f[s + 6] = 0xFF;
        cases.push((format!("scan {i} tables 0xFF"), f));
    }
    for (i, &d) in dht.iter().enumerate() {
        for at in [5usize, 6, 10, 20, 21] {
            for v in [0u8, 1, 0x80, 0xFF] {
                let mut f = jpeg.clone();
                if d + at < f.len() {
                    f[d + at] = v;
                    cases.push((format!("dht {i} +{at} = {v}"), f));
                }
            }
        }
    }
    // Flipped bytes all through the file.
    for at in (2..jpeg.len()).step_by(37) {
        let mut f = jpeg.clone();
        f[at] ^= 0x5A;
        cases.push((format!("flip {at}"), f));
    }
    for (what, f) in &cases {
        same(f, what);
        for denom in [2, 4, 8] {
            let _ = progressive_rasters(f, denom);
        }
    }
}

/// Past its cap on Huffman table definitions (1024), the decoder leaves a file to libjpeg,
/// which decodes it as before: the renditions are libjpeg's. (The cap on scans, 1024, is not
/// tested here: jpegtran's `-scans` takes at most 100.)
#[test]
fn files_past_the_table_cap_are_left_to_libjpeg() {
    if !tools() {
        return;
    }
    let p = Profile::custom("t", 24, 24, 20_000).with_min_width(16);
    let ours = Normalizer::new();
    let lib = Normalizer::new().with_progressive_decoder(ProgressiveDecoder::Libjpeg);
    let same = |f: &[u8], what: &str| {
        let a = ours.normalize(f, &p).expect(what).bytes;
        let b = lib.normalize(f, &p).expect(what).bytes;
        assert_eq!(a, b, "{what}");
    };
    // 1,100 copies of the first DHT segment before the first scan (each a valid redefinition).
    let jpeg = cjpeg(120, 96, 5, 90, "2x2", &[]);
    assert!(progressive_rasters(&jpeg, 4).is_some());
    let d = find(&jpeg, 0xC4)[0];
    let len = ((jpeg[d + 2] as usize) << 8) | jpeg[d + 3] as usize;
    let seg = jpeg[d..d + 2 + len].to_vec();
    let mut many = jpeg[..d].to_vec();
    for _ in 0..1100 {
        many.extend_from_slice(&seg);
    }
    many.extend_from_slice(&jpeg[d..]);
    assert!(progressive_rasters(&many, 4).is_none(), "1,100 tables");
    same(&many, "1,100 tables");
}

/// A restart interval that changes between scans (DRI is allowed before any SOS): each scan
/// is decoded with the interval in force at its own SOS.
#[test]
fn restart_interval_is_per_scan() {
    if !tools() {
        return;
    }
    // Two files of the same image, with restart intervals of 1 and 3 MCUs: splice the first
    // scans of one with the last scans of the other, each preceded by its DRI.
    let input = pnm(160, 112, 9, false);
    let q = ["-progressive", "-quality", "85", "-sample", "2x2"];
    let a = run(
        "cjpeg",
        &[&q[..], &["-restart", "1B"]].concat(),
        input.path(),
    );
    let b = run(
        "cjpeg",
        &[&q[..], &["-restart", "3B"]].concat(),
        input.path(),
    );
    let (sa, sb) = (find(&a, 0xDA), find(&b, 0xDA));
    assert_eq!(sa.len(), sb.len());
    // The segment run (DHTs and DRI, if any) between scans: the splice point is a scan start
    // of each, with b's DRI written in front.
    let half = sa.len() / 2;
    let dri_b = find(&b, 0xDD)[0];
    let mut f = a[..sa[half]].to_vec();
    // b's tables for the scans from `half` on are those in force in b at that point: b's
    // DHTs between its previous scan and `half` scan are copied with the data.
    let from_b = find(&b, 0xC4)
        .into_iter()
        .filter(|&d| d > sb[half - 1] && d < sb[half])
        .min()
        .unwrap_or(sb[half]);
    f.extend_from_slice(&b[dri_b..dri_b + 6]);
    f.extend_from_slice(&b[from_b..]);
    let (w, h, ch, ours, theirs) =
        progressive_rasters(&f, 2).expect("a spliced file with two restart intervals");
    assert_eq!(ours.len(), (w * h) as usize * ch);
    assert!(ours == theirs, "spliced restart intervals");
}
