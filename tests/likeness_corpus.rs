//! The perceptual comparison the audit uses ([`Normalizer::signature`]) on the shared corpus
//! of real photographs (`../shared/corpus/`, or `USERPHOTO_CORPUS`): the same picture
//! re-encoded or rescaled is alike, another crop or another photo is not. Every test is
//! ignored by a plain `cargo test`, saying why; `scripts/test.sh` checks that the corpus is
//! there and runs them with `--include-ignored`.

use userphoto_testkit as common;

use std::io::Cursor;
use std::path::PathBuf;

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use userphoto::normalize::{Normalizer, Profile, Signature, SAME_PICTURE};

/// The corpus's JPEG photographs, sorted.
fn photos(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    v.sort();
    assert!(v.len() >= 10, "corpus looks incomplete: {} JPEGs", v.len());
    v
}

fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .unwrap();
    out.into_inner()
}

fn sig(n: &Normalizer, bytes: &[u8]) -> Signature {
    n.signature(bytes).expect("signature")
}

#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn a_rendition_reencoded_at_other_qualities_is_the_same_picture() {
    let dir = common::corpus();
    let n = Normalizer::new();
    let mut worst: f64 = 1.0;
    for f in photos(&dir) {
        let r = n
            .normalize(&std::fs::read(&f).unwrap(), &Profile::graph())
            .unwrap();
        let ours = sig(&n, &r.bytes);
        let rgb = common::decode_rgb(&r.bytes);
        for q in [60, 75, 85, 95] {
            let s = ours.similarity(&sig(&n, &jpeg(&rgb, q)));
            worst = worst.min(s);
            assert!(s >= SAME_PICTURE, "{} at q{q}: {s:.3}", f.display());
        }
    }
    eprintln!("re-encoded at q60-95: worst similarity {worst:.3}");
}

#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn a_96_pixel_copy_scaled_up_is_the_same_picture() {
    let dir = common::corpus();
    let n = Normalizer::new();
    let mut worst: f64 = 1.0;
    for f in photos(&dir) {
        let bytes = std::fs::read(&f).unwrap();
        let all = n
            .normalize_many(&bytes, &[Profile::graph(), Profile::ad_thumbnail()])
            .unwrap();
        let (big, thumb) = (all[0].as_ref().unwrap(), all[1].as_ref().unwrap());
        let ours = sig(&n, &big.bytes);
        let small = sig(&n, &thumb.bytes);
        assert_eq!((small.width, small.height), (96, 96));
        let up = image::imageops::resize(
            &common::decode_rgb(&thumb.bytes),
            648,
            648,
            FilterType::CatmullRom,
        );
        for (what, s) in [
            ("96 px", ours.similarity(&small)),
            ("96 px scaled up", ours.similarity(&sig(&n, &jpeg(&up, 85)))),
        ] {
            worst = worst.min(s);
            assert!(s >= SAME_PICTURE, "{}: {what}: {s:.3}", f.display());
        }
    }
    eprintln!("96 px copies: worst similarity {worst:.3}");
}

/// A square of `side` at (`x`, `y`) of `img`, as a 648-pixel JPEG.
fn square(img: &DynamicImage, x: u32, y: u32, side: u32) -> Vec<u8> {
    let c = img.crop_imm(x, y, side, side).to_rgb8();
    jpeg(
        &image::imageops::resize(&c, 648, 648, FilterType::Triangle),
        90,
    )
}

#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn the_same_photo_cropped_elsewhere_is_another_picture() {
    let dir = common::corpus();
    let n = Normalizer::new();
    let mut best: f64 = -1.0;
    for f in photos(&dir) {
        let img = image::open(&f).unwrap();
        let (w, h) = (img.width(), img.height());
        let side = w.min(h) * 7 / 10;
        let (x, y) = ((w - side) / 2, (h - side) / 2);
        let base = sig(&n, &square(&img, x, y, side));
        for pct in [10, 15] {
            let d = side * pct / 100;
            // Shifted right (or down, for a photo with no room to the right).
            let moved = if x + d + side <= w {
                square(&img, x + d, y, side)
            } else {
                square(&img, x, y + d, side)
            };
            let s = base.similarity(&sig(&n, &moved));
            best = best.max(s);
            assert!(s < SAME_PICTURE, "{} shifted {pct}%: {s:.3}", f.display());
        }
        // The same crop re-encoded stays alike (the test's own control).
        let again = base.similarity(&sig(
            &n,
            &jpeg(&common::decode_rgb(&square(&img, x, y, side)), 70),
        ));
        assert!(again >= SAME_PICTURE, "{}: control {again:.3}", f.display());
    }
    eprintln!("shifted crops: best similarity {best:.3}");
}

/// The corpus's files that are one picture (its README): the four EXIF orientations of one
/// landscape, and the files derived from another by conversion or upscaling.
fn same_picture(a: &std::path::Path, b: &std::path::Path) -> bool {
    let group = |p: &std::path::Path| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains("orient_landscape") {
            "landscape".to_owned()
        } else if name.contains("sunset") {
            "sunset".to_owned()
        } else if name.contains("jolla") {
            "jolla".to_owned()
        } else {
            name
        }
    };
    group(a) == group(b)
}

#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn different_photos_are_different_pictures() {
    let dir = common::corpus();
    let n = Normalizer::new();
    let sigs: Vec<(PathBuf, Signature)> = photos(&dir)
        .into_iter()
        .map(|f| {
            let r = n
                .normalize(&std::fs::read(&f).unwrap(), &Profile::graph())
                .unwrap();
            (f, sig(&n, &r.bytes))
        })
        .collect();
    let mut best: f64 = -1.0;
    for (i, (fa, a)) in sigs.iter().enumerate() {
        for (fb, b) in &sigs[i + 1..] {
            let s = a.similarity(b);
            if same_picture(fa, fb) {
                assert!(
                    s >= SAME_PICTURE,
                    "{} vs {}: {s:.3}",
                    fa.display(),
                    fb.display()
                );
                continue;
            }
            best = best.max(s);
            assert!(
                s < SAME_PICTURE,
                "{} vs {}: {s:.3}",
                fa.display(),
                fb.display()
            );
        }
    }
    eprintln!("different photos: best similarity {best:.3}");
}
