//! The crop strategies end to end: the face crop on real photos (the corpus), under every
//! EXIF orientation; the same bytes with any thread count and with or without SIMD; the
//! fallbacks on pictures without faces; no panic on degenerate pictures; and the state
//! store re-rendering when the crop changes (and only then).

use std::sync::Arc;

use userphoto::normalize::{testimage, CropMethod, CropMode, CropWarning, Normalizer, Profile};
#[cfg(feature = "face")]
use userphoto::normalize::{BatchOptions, Input};
use userphoto::sink::MemorySink;
use userphoto::source::MemorySource;
use userphoto::sync::{Engine, StateStore};
use userphoto_testkit as common;

#[cfg(feature = "face")]
fn corpus_file(name: &str) -> Vec<u8> {
    std::fs::read(common::corpus().join(name)).expect("read corpus file")
}

/// The astronaut as a JPEG stored under EXIF orientation `o`: the stored pixels are turned
/// so that applying `o` shows the original upright picture.
#[cfg(feature = "face")]
fn astronaut_stored(png: &[u8], o: u32) -> Vec<u8> {
    use image::imageops::{flip_horizontal, flip_vertical, rotate180, rotate270, rotate90};
    let up = image::load_from_memory(png).unwrap().to_rgb8();
    let stored = match o {
        2 => flip_horizontal(&up),
        3 => rotate180(&up),
        4 => flip_vertical(&up),
        5 => flip_horizontal(&rotate90(&up)),
        6 => rotate270(&up),
        7 => flip_horizontal(&rotate270(&up)),
        8 => rotate90(&up),
        _ => up,
    };
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&stored)
        .unwrap();
    testimage::with_exif_orientation(&jpeg, o as u16)
}

#[cfg(feature = "face")]
#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn the_face_crop_frames_the_astronaut_under_every_exif_orientation() {
    let png = corpus_file("30_skimage_astronaut.png");
    let n = Normalizer::new();
    let p = Profile::ad_thumbnail();
    let mut first: Option<userphoto::normalize::Rendition> = None;
    for o in 1..=8 {
        let r = n.normalize(&astronaut_stored(&png, o), &p).unwrap();
        let c = &r.crop;
        assert_eq!(c.strategy, CropMethod::Face, "orientation {o}: {c:?}");
        assert_eq!(c.faces.len(), 1, "orientation {o}: {c:?}");
        let f = c.faces[0];
        // The face (about 92x112 at x 180, y 64 in the upright 512x512 picture) ...
        assert!(
            (160..200).contains(&f.x) && (45..85).contains(&f.y),
            "orientation {o}: {f:?}"
        );
        // ... is inside the square, centred horizontally, its centre near 40 % from the top.
        let s = c.rect;
        assert!(f.x >= s.x && f.x + f.width <= s.x + s.width, "{o}: {c:?}");
        let fcx = f.x as f64 + f.width as f64 / 2.0;
        let fcy = f.y as f64 + f.height as f64 / 2.0;
        let side = s.width as f64;
        assert!(
            (fcx - (s.x as f64 + side / 2.0)).abs() < 0.1 * side,
            "{o}: {c:?}"
        );
        let v = (fcy - s.y as f64) / side;
        assert!((0.25..0.55).contains(&v), "{o}: {c:?}");
        match &first {
            None => first = Some(r),
            Some(r1) => {
                // The same crop (the faces snap to a grid; JPEG blocks differ by orientation).
                let d = |a: u32, b: u32| a.abs_diff(b);
                let (a, b) = (r1.crop.rect, s);
                assert!(
                    d(a.x, b.x) <= 8 && d(a.y, b.y) <= 8 && d(a.width, b.width) <= 8,
                    "orientation {o}: {a:?} vs {b:?}"
                );
                let diff = common::mean_abs_diff(
                    &common::decode_rgb(&r1.bytes),
                    &common::decode_rgb(&r.bytes),
                );
                assert!(diff < 12.0, "orientation {o}: renditions differ by {diff}");
            }
        }
    }
}

#[cfg(feature = "face")]
#[test]
fn renditions_are_the_same_bytes_with_any_threads_and_with_or_without_simd() {
    let mut photos: Vec<Vec<u8>> = vec![
        testimage::gradient_jpeg(1600, 1200),
        testimage::with_exif_orientation(&testimage::gradient_jpeg(900, 1300), 6),
    ];
    for name in [
        "30_skimage_astronaut.png",
        "14_lomiri_friends_2056x3088.jpg",
    ] {
        // (generated photos always; the corpus's two when it is there)
        if let Some(dir) = common::corpus_if_present() {
            photos.push(std::fs::read(dir.join(name)).expect("read corpus file"));
        }
    }
    let profiles = [Profile::ad_thumbnail(), Profile::graph()];
    let run = |n: &Normalizer, threads: usize| {
        let inputs = photos
            .iter()
            .enumerate()
            .map(|(i, b)| (i, Input::Bytes(b.clone().into())));
        let mut out = vec![Vec::new(); photos.len()];
        n.normalize_batch(
            inputs,
            &profiles,
            BatchOptions { threads, queue: 0 },
            |item, _| {
                out[item.key] = item
                    .result
                    .unwrap()
                    .into_iter()
                    .map(|r| r.unwrap())
                    .collect::<Vec<_>>();
            },
        );
        out
    };
    let one = run(&Normalizer::new(), 1);
    let two = run(&Normalizer::new(), 2);
    let scalar = run(&Normalizer::new().with_simd(false), 2);
    assert_eq!(one, two, "1 and 2 threads");
    assert_eq!(one, scalar, "SIMD and scalar detector");
    if photos.len() > 2 {
        assert!(
            one[2][0].crop.strategy == CropMethod::Face,
            "{:?}",
            one[2][0].crop
        );
    }
}

#[test]
fn a_picture_without_a_face_falls_back_and_says_so() {
    let jpeg = testimage::gradient_jpeg(1200, 800);
    let r = Normalizer::new()
        .normalize(&jpeg, &Profile::ad_thumbnail())
        .unwrap();
    assert!(r.crop.faces.is_empty());
    assert!(
        matches!(r.crop.strategy, CropMethod::Attention | CropMethod::Centre),
        "{:?}",
        r.crop
    );
    #[cfg(feature = "face")]
    assert!(r.crop.warnings.contains(&CropWarning::NoFace));
    // The centre crop reports the centred square and no warning.
    let r = Normalizer::new()
        .with_crop(CropMode::Centre)
        .normalize(&jpeg, &Profile::ad_thumbnail())
        .unwrap();
    assert_eq!(r.crop.strategy, CropMethod::Centre);
    assert_eq!(
        (r.crop.rect.x, r.crop.rect.y, r.crop.rect.width),
        (200, 0, 800)
    );
    assert!(r.crop.warnings.is_empty());
}

#[test]
fn a_small_photo_for_a_large_profile_is_low_resolution() {
    let jpeg = testimage::gradient_jpeg(200, 200);
    let r = Normalizer::new()
        .normalize(&jpeg, &Profile::graph())
        .unwrap();
    assert!(
        r.crop.warnings.contains(&CropWarning::LowResolution),
        "{:?}",
        r.crop
    );
}

#[test]
fn degenerate_pictures_never_panic_in_any_crop() {
    let pictures: Vec<(&str, Vec<u8>)> = vec![
        ("1x1", common::noise_png(1, 1, 1)),
        ("3x3", common::noise_png(3, 3, 2)),
        ("1x4000", common::noise_png(1, 4000, 3)),
        ("4000x1", common::noise_png(4000, 1, 4)),
        ("31x33", common::noise_png(31, 33, 5)),
        ("gray", common::photo_as(image::ImageFormat::Png, 300, 200)),
        ("tiny jpeg", testimage::gradient_jpeg(8, 8)),
        ("strip jpeg", testimage::gradient_jpeg(16, 2000)),
    ];
    for mode in [CropMode::Face, CropMode::Attention, CropMode::Centre] {
        let n = Normalizer::new().with_crop(mode);
        for (name, bytes) in &pictures {
            for p in [Profile::ad_thumbnail(), Profile::graph()] {
                match n.normalize(bytes, &p) {
                    Ok(r) => {
                        let c = r.crop.rect;
                        assert!(c.width >= 1 && c.height >= 1, "{mode} {name}: {c:?}");
                    }
                    Err(e) => panic!("{mode} {name} {}: {e}", p.name()),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_store_renders_again_when_the_crop_changes_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.redb");
    let sink = Arc::new(MemorySink::new(102_400).with_users(["alice", "bob"]));
    let engine = |mode: CropMode| {
        Engine::new(
            MemorySource::new()
                .with_photo("alice", testimage::gradient_jpeg(1200, 900))
                .with_photo("bob", testimage::gradient_jpeg(700, 1000)),
        )
        .with_normalizer(Normalizer::new().with_crop(mode))
        .with_sink(sink.clone(), Profile::ad_thumbnail())
        .with_state(StateStore::open(&state).unwrap())
    };
    let r1 = engine(CropMode::Attention).run().await.unwrap();
    assert_eq!(r1.timings.decoded, 2, "{r1}");
    let r2 = engine(CropMode::Attention).run().await.unwrap();
    assert_eq!(
        r2.timings.decoded, 0,
        "the same crop: nothing decoded\n{r2}"
    );
    let r3 = engine(CropMode::Centre).run().await.unwrap();
    assert_eq!(r3.timings.decoded, 2, "another crop: rendered again\n{r3}");
    let r4 = engine(CropMode::Centre).run().await.unwrap();
    assert_eq!(r4.timings.decoded, 0, "{r4}");
}
