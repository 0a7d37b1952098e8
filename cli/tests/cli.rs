//! The CLI's contract, checked from outside: subcommands, flags, JSON lines and exit
//! codes of `userphoto normalize`.

use std::path::PathBuf;

use userphoto::normalize::testimage;

mod common;
use common::cli;

fn tempdir(name: &str) -> common::TestDir {
    common::tempdir("cli", name)
}

fn lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn normalize_writes_files_and_json_lines() {
    let d = tempdir("ok");
    let a = d.join("alice.jpg");
    let b = d.join("bob.png");
    std::fs::write(&a, testimage::gradient_jpeg(900, 600)).unwrap();
    std::fs::write(&b, testimage::rgba_png(300, 400)).unwrap();
    let out = d.join("out");
    let o = cli()
        .args([
            "normalize",
            "--profile",
            "ad-thumbnail",
            "--threads",
            "2",
            "--out",
        ])
        .arg(&out)
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ls = lines(&o.stdout);
    assert_eq!(ls.len(), 2);
    for l in &ls {
        for key in [
            "input", "output", "ok", "bytes", "width", "height", "quality",
        ] {
            assert!(l.get(key).is_some(), "missing {key} in {l}");
        }
        assert_eq!(l["ok"], true);
        assert_eq!(l["width"], 96);
        assert_eq!(l["height"], 96);
        assert!(l["bytes"].as_u64().unwrap() <= 10_000);
        let written = std::fs::read(l["output"].as_str().unwrap()).unwrap();
        assert_eq!(written.len() as u64, l["bytes"].as_u64().unwrap());
    }
    assert!(out.join("alice.jpg").exists() && out.join("bob.jpg").exists());
}

#[test]
fn size_and_max_bytes_override_the_profile() {
    let d = tempdir("size");
    let a = d.join("carol.jpg");
    std::fs::write(&a, testimage::gradient_jpeg(1200, 800)).unwrap();
    let o = cli()
        .args([
            "normalize",
            "--profile",
            "graph",
            "--size",
            "240",
            "--max-bytes",
            "9000",
            "--out",
        ])
        .arg(d.join("out"))
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let l = &lines(&o.stdout)[0];
    assert_eq!(l["width"], 240);
    assert!(l["bytes"].as_u64().unwrap() <= 9000);
}

#[test]
fn a_failed_input_does_not_stop_the_others_and_exits_1() {
    let d = tempdir("fail");
    let good = d.join("good.jpg");
    let bad = d.join("bad.jpg");
    std::fs::write(&good, testimage::gradient_jpeg(500, 500)).unwrap();
    std::fs::write(&bad, b"not an image").unwrap();
    let missing = d.join("missing.jpg");
    let o = cli()
        .args(["normalize", "--profile", "ad-large", "--out"])
        .arg(d.join("out"))
        .arg(&bad)
        .arg(&good)
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let ls = lines(&o.stdout);
    assert_eq!(ls.len(), 3);
    let by_input = |p: &PathBuf| {
        ls.iter()
            .find(|l| l["input"] == p.display().to_string())
            .unwrap()
            .clone()
    };
    assert_eq!(by_input(&good)["ok"], true);
    let b = by_input(&bad);
    assert_eq!(b["ok"], false);
    assert_eq!(b["error_kind"], "unsupported");
    assert!(b["error"].as_str().unwrap().contains("unsupported"));
    assert_eq!(by_input(&missing)["error_kind"], "io");
}

#[test]
fn bad_usage_exits_2() {
    let d = tempdir("usage");
    for args in [
        vec!["normalize", "--profile", "nope", "--out", "x", "f.jpg"],
        vec!["normalize", "--profile", "graph", "f.jpg"],
        vec!["normalize", "--profile", "graph", "--out", "x"],
        vec![
            "normalize",
            "--profile",
            "graph",
            "--size",
            "0",
            "--out",
            "x",
            "f.jpg",
        ],
        vec!["frobnicate"],
    ] {
        let o = cli().current_dir(&d).args(&args).output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.stdout.is_empty(), "{args:?} printed to stdout");
    }
}

/// Renditions are byte-identical whichever SIMD level libjpeg-turbo picks (forced through
/// its own JSIMD_FORCE* variables), so a hash compare skips unchanged users on any machine.
#[test]
fn renditions_do_not_depend_on_the_simd_level() {
    let d = tempdir("simd");
    let mut files = Vec::new();
    for (name, bytes) in [
        ("a.jpg", testimage::gradient_jpeg(2000, 1500)),
        (
            "b.jpg",
            testimage::with_exif_orientation(&testimage::gradient_jpeg(700, 900), 8),
        ),
        ("c.png", testimage::rgba_png(400, 300)),
    ] {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        files.push(p);
    }
    let mut runs = Vec::new();
    for (var, val) in [
        ("JSIMD_FORCENONE", "1"),
        ("JSIMD_FORCESSE2", "1"),
        ("JSIMD_FORCEAVX2", "1"),
        ("USERPHOTO_UNUSED", ""),
    ] {
        for profile in ["ad-thumbnail", "ad-large"] {
            let o = cli()
                .env(var, val)
                .args(["normalize", "--profile", profile, "--threads", "1", "--out"])
                .arg(d.join("out"))
                .args(&files)
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(0));
            let mut hashes: Vec<(String, String)> = lines(&o.stdout)
                .iter()
                .map(|l| {
                    (
                        l["input"].as_str().unwrap().to_owned(),
                        l["sha256"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            hashes.sort();
            runs.push((var, profile, hashes));
        }
    }
    for r in &runs[2..] {
        let base = if r.1 == "ad-thumbnail" {
            &runs[0]
        } else {
            &runs[1]
        };
        assert_eq!(
            r.2, base.2,
            "{} / {} differs from JSIMD_FORCENONE",
            r.0, r.1
        );
    }
}

/// `--crop` and the crop's JSON fields: `strategy`, `crop` {x, y, width, height} in upright
/// source pixels, `faces` and `warnings`.
#[test]
fn normalize_reports_the_crop_and_takes_crop() {
    let d = tempdir("crop");
    let a = d.join("landscape.jpg");
    std::fs::write(&a, testimage::gradient_jpeg(1200, 800)).unwrap();
    let run = |crop: Option<&str>| {
        let mut c = cli();
        c.args(["normalize", "--profile", "ad-thumbnail", "--out"])
            .arg(d.join("out"));
        if let Some(crop) = crop {
            c.args(["--crop", crop]);
        }
        let o = c.arg(&a).output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        lines(&o.stdout).remove(0)
    };
    let centre = run(Some("centre"));
    assert_eq!(centre["strategy"], "centre");
    assert_eq!(
        centre["crop"],
        serde_json::json!({"x": 200, "y": 0, "width": 800, "height": 800})
    );
    assert_eq!(centre["faces"], serde_json::json!([]));
    assert_eq!(centre["warnings"], serde_json::json!([]));
    // The default is the face crop: no face in a gradient, so it falls back and says so.
    let default = run(None);
    assert!(
        default["strategy"] == "attention" || default["strategy"] == "centre",
        "{default}"
    );
    assert_eq!(default["warnings"], serde_json::json!(["no-face"]));
    assert_eq!(run(Some("face"))["sha256"], default["sha256"]);
    let attention = run(Some("attention"));
    assert!(
        attention["warnings"].as_array().unwrap().is_empty(),
        "{attention}"
    );
    let o = cli()
        .args([
            "normalize",
            "--profile",
            "ad-thumbnail",
            "--crop",
            "middle",
            "--out",
        ])
        .arg(d.join("out"))
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// On a real photo of a person (the corpus astronaut): the face and the square around it.
#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn normalize_finds_the_face_in_a_photo_of_a_person() {
    let dir = userphoto_testkit::corpus();
    let d = tempdir("face");
    let o = cli()
        .args([
            "normalize",
            "--profile",
            "ad-thumbnail",
            "--crop",
            "face",
            "--out",
        ])
        .arg(d.join("out"))
        .arg(dir.join("30_skimage_astronaut.png"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let l = lines(&o.stdout).remove(0);
    assert_eq!(l["strategy"], "face", "{l}");
    let f = &l["faces"][0];
    for k in ["x", "y", "width", "height", "score"] {
        assert!(f.get(k).is_some(), "{k} in {l}");
    }
    let (fx, fw) = (f["x"].as_u64().unwrap(), f["width"].as_u64().unwrap());
    let (cx, cw) = (
        l["crop"]["x"].as_u64().unwrap(),
        l["crop"]["width"].as_u64().unwrap(),
    );
    assert!(fx >= cx && fx + fw <= cx + cw, "{l}");
    assert!(f["score"].as_f64().unwrap() > 0.6);
}
