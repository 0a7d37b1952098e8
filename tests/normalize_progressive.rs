//! The scale-aware progressive JPEG decoder against the libjpeg path it replaces: generated
//! progressive files (cjpeg / jpegtran from libjpeg-turbo-progs; every test prints `SKIPPED`
//! and passes when they are not installed) at every scale and sampling, restart markers,
//! truncation, fallbacks and hostile headers.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use userphoto::normalize::testimage::{
    photo_rgb, progressive_fallback_reason, progressive_rasters, progressive_window,
};
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

/// Byte-identical rasters at 1/8, 1/4, 1/2 and full scale.
fn check(bytes: &[u8], what: &str) {
    for denom in [8, 4, 2, 1] {
        if let Some(why) = progressive_fallback_reason(bytes, denom) {
            panic!("{what} 1/{denom}: left to libjpeg ({why})");
        }
        let (w, h, ch, ours, theirs) = progressive_rasters(bytes, denom)
            .unwrap_or_else(|| panic!("{what} 1/{denom}: not decoded natively"));
        assert_eq!(ours.len(), (w * h) as usize * ch, "{what} 1/{denom}");
        assert_eq!(ours.len(), theirs.len(), "{what} 1/{denom}: size differs");
        let (mean, max) = diff(&ours, &theirs);
        assert!(ours == theirs, "{what} 1/{denom}: mean {mean} max {max}");
        // A decode for some columns only (a crop's) gives exactly those columns of the
        // whole decode: at the edges, in the middle, one column, MCU-aligned or not.
        for (x0, x1) in [
            (0, w / 2),
            (w / 3, 2 * w / 3 + 1),
            (w.saturating_sub(5), w),
            (1, 2),
            (7, w.saturating_sub(9)),
            (16, 48),
        ] {
            let (x1, x0) = (x1.min(w), x0.min(w.saturating_sub(1)));
            if x0 >= x1 {
                continue;
            }
            let (window, cut) = progressive_window(bytes, denom, x0, x1)
                .unwrap_or_else(|| panic!("{what} 1/{denom} [{x0}, {x1}): not decoded"));
            assert_eq!(
                window.len(),
                ((x1 - x0) * h) as usize * ch,
                "{what} 1/{denom}"
            );
            assert!(
                window == cut,
                "{what} 1/{denom}: window [{x0}, {x1}) differs"
            );
        }
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
        // 4:2:2, 4:4:0 and 4:1:1: upsampled as libjpeg-turbo does at each scale.
        ("2x1", 90),
        ("2x1", 100),
        ("1x2", 85),
        ("4x1", 90),
        // Chroma denser than luma in one direction: replication.
        ("1x1,2x1,2x1", 90),
    ] {
        // Odd sizes: partial MCUs at the right and bottom edges.
        let jpeg = cjpeg(517, 389, 3, q, sample, &[]);
        check(&jpeg, &format!("{sample} q{q}"));
    }
    // Gray written with sampling factors other than 1x1 (cjpeg applies -sample to the lone
    // component): the same picture as 1x1 for libjpeg, and for the crate's decoder.
    for sample in ["2x2", "2x1", "1x3", "4x4"] {
        let jpeg = cjpeg(517, 389, 5, 90, "gray", &["-sample", sample]);
        check(&jpeg, &format!("gray {sample}"));
    }
    // Sizes where the upsampled edges are tight: a width of 1-3 chroma samples (libjpeg
    // replicates instead of filtering at 2 or fewer), one MCU, exact multiples.
    for (w, h) in [(3, 5), (5, 3), (9, 17), (16, 16), (64, 48), (130, 66)] {
        for sample in ["2x1", "1x2", "2x2", "4x1"] {
            let jpeg = cjpeg(w, h, 7, 90, sample, &[]);
            check(&jpeg, &format!("{sample} {w}x{h}"));
        }
    }
}

#[test]
fn restart_markers_are_followed() {
    if !tools() {
        return;
    }
    for sample in ["2x2", "1x1", "2x1", "1x2"] {
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
    // Arithmetic coding is left to libjpeg, with its reason, and still normalizes.
    let arith = cjpeg(300, 200, 2, 90, "2x2", &["-arithmetic"]);
    assert_eq!(
        progressive_fallback_reason(&arith, 4),
        Some("not a Huffman-coded progressive frame (arithmetic, lossless, hierarchical or DNL)")
    );
    assert!(progressive_rasters(&arith, 4).is_none());
    // A truncated file (no EOI) is irregular.
    let s422 = cjpeg(300, 200, 2, 90, "2x1", &[]);
    assert_eq!(
        progressive_fallback_reason(&s422[..s422.len() - 2], 2),
        Some("malformed header")
    );
    for f in [&s422, &arith] {
        let r = Normalizer::new()
            .normalize(f, &Profile::ad_thumbnail())
            .unwrap();
        assert_eq!((r.width, r.height), (96, 96));
    }
}

/// Hand-written `jpegtran -scans` scripts, as other writers order their scans: chroma before
/// luma, spectral selection only, DC scans one component at a time, successive
/// approximation split many ways; on 4:2:0, 4:2:2, 4:4:0 and 4:4:4 files.
#[test]
fn every_scan_script_matches_libjpeg() {
    if !tools() {
        return;
    }
    let scripts: [(&str, &str); 5] = [
        (
            "chroma first, spectral selection only",
            "2: 0-0, 0, 0; 1: 0-0, 0, 0; 0: 0-0, 0, 0; 2: 1-63, 0, 0; 1: 1-63, 0, 0;\n\
             0: 1-5, 0, 0; 0: 6-20, 0, 0; 0: 21-63, 0, 0;",
        ),
        (
            "successive approximation, luma bands refined as one",
            "0,1,2: 0-0, 0, 1; 0: 1-5, 0, 2; 2: 1-63, 0, 1; 1: 1-63, 0, 1; 0: 6-63, 0, 2;\n\
             0: 1-63, 2, 1; 0,1,2: 0-0, 1, 0; 1: 1-63, 1, 0; 2: 1-63, 1, 0; 0: 1-63, 1, 0;",
        ),
        (
            "MozJPEG-like",
            "0,1,2: 0-0, 0, 0; 0: 1-2, 0, 1; 0: 3-63, 0, 1; 0: 1-63, 1, 0;\n\
             1: 1-63, 0, 0; 2: 1-63, 0, 0;",
        ),
        (
            "single coefficients",
            "0: 0-0, 0, 0; 1,2: 0-0, 0, 0; 0: 1-1, 0, 0; 0: 2-2, 0, 0; 0: 3-3, 0, 0;\n\
             0: 4-63, 0, 0; 1: 1-1, 0, 0; 1: 2-63, 0, 0; 2: 1-63, 0, 0;",
        ),
        (
            "deep successive approximation",
            "0,1,2: 0-0, 0, 4; 0,1,2: 0-0, 4, 3; 0,1,2: 0-0, 3, 2; 0,1,2: 0-0, 2, 1;\n\
             0,1,2: 0-0, 1, 0; 0: 1-63, 0, 5; 1: 1-63, 0, 3; 2: 1-63, 0, 3; 0: 1-63, 5, 4;\n\
             0: 1-63, 4, 3; 0: 1-63, 3, 2; 0: 1-63, 2, 1; 0: 1-63, 1, 0; 1: 1-63, 3, 2;\n\
             1: 1-63, 2, 1; 1: 1-63, 1, 0; 2: 1-63, 3, 2; 2: 1-63, 2, 1;\n\
             2: 1-63, 1, 0;",
        ),
    ];
    let mut scans = tempfile::NamedTempFile::new().unwrap();
    for sample in ["2x2", "2x1", "1x2", "1x1"] {
        let input = pnm(301, 203, 13, false);
        let base = run(
            "cjpeg",
            &["-quality", "92", "-sample", sample],
            input.path(),
        );
        let bpath = tmp_file(&base, ".jpg");
        for (name, script) in scripts {
            scans.as_file().set_len(0).unwrap();
            std::fs::write(scans.path(), script).unwrap();
            scans.flush().unwrap();
            let sp = scans.path().to_str().unwrap().to_owned();
            let prog = run("jpegtran", &["-scans", &sp], bpath.path());
            check(&prog, &format!("{sample} {name}"));
            check(
                &renumber_components(&prog),
                &format!("{sample} {name}, ids from 0"),
            );
        }
        // And with restart intervals, one per MCU row.
        let prog = run("jpegtran", &["-progressive", "-restart", "1"], bpath.path());
        check(&prog, &format!("{sample} jpegtran -progressive -restart 1"));
    }
}

/// The file with its component ids lowered by one (MozJPEG writes ids from 0 in some
/// files): in the frame header and in every scan header.
fn renumber_components(b: &[u8]) -> Vec<u8> {
    let mut f = b.to_vec();
    let mut pos = 2;
    while pos + 4 <= f.len() && f[pos] == 0xFF {
        let marker = f[pos + 1];
        let len = ((f[pos + 2] as usize) << 8) | f[pos + 3] as usize;
        let seg = pos + 4;
        match marker {
            0xC0..=0xC2 => {
                let n = f[seg + 5] as usize;
                for i in 0..n {
                    f[seg + 6 + 3 * i] -= 1;
                }
            }
            0xDA => {
                let n = f[seg] as usize;
                for i in 0..n {
                    f[seg + 1 + 2 * i] -= 1;
                }
                // Skip the entropy-coded data to the next marker.
                let mut p = seg + len - 2;
                while p + 1 < f.len()
                    && !(f[p] == 0xFF && f[p + 1] != 0 && !(0xD0..=0xD7).contains(&f[p + 1]))
                {
                    p += 1;
                }
                pos = p;
                continue;
            }
            0xD9 => break,
            _ => {}
        }
        pos = seg + len - 2;
    }
    f
}

/// ImageMagick's progressive files (`convert -interlace JPEG -sampling-factor`), when it is
/// installed: decoded natively at every scale, the same pixels as libjpeg.
#[test]
fn imagemagick_files_match() {
    if !tools() {
        return;
    }
    if !have("convert") {
        userphoto_testkit::skip("ImageMagick convert not installed");
        return;
    }
    let input = pnm(420, 270, 21, false);
    for sample in ["2x1", "1x2", "2x2", "1x1"] {
        let out = tempfile::Builder::new().suffix(".jpg").tempfile().unwrap();
        let st = Command::new("convert")
            .arg(input.path())
            .args([
                "-interlace",
                "JPEG",
                "-quality",
                "88",
                "-sampling-factor",
                sample,
            ])
            .arg(out.path())
            .status()
            .unwrap();
        assert!(st.success());
        let jpeg = std::fs::read(out.path()).unwrap();
        assert!(userphoto::normalize::bench::jpeg_is_progressive(&jpeg));
        check(&jpeg, &format!("ImageMagick {sample}"));
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
