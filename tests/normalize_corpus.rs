//! The normalization core on the shared corpus of real photographs (`../shared/corpus/`, or
//! `USERPHOTO_CORPUS`). Every test is ignored by a plain `cargo test`, saying why;
//! `scripts/test.sh` checks that the corpus is there and runs them with `--include-ignored`,
//! and a test run without it fails.

use userphoto_testkit as common;

use std::path::Path;

use userphoto::normalize::{NormalizeError, Normalizer, Profile, Rendition};

fn load(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn render(dir: &Path, name: &str, p: &Profile) -> Rendition {
    Normalizer::new()
        .normalize(&load(dir, name), p)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn every_file_normalizes_for_every_profile() {
    let dir = common::corpus();
    let profiles = [
        Profile::ad_thumbnail(),
        Profile::ad_large(),
        Profile::graph(),
    ];
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e != "md"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "corpus looks incomplete: {} files",
        files.len()
    );
    let n = Normalizer::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy();
        if name.ends_with(".heic") && !cfg!(feature = "heic") {
            // Documented: HEIC is refused by name unless a HEIC decoder is compiled in.
            match n.normalize_many(&bytes, &profiles) {
                Err(NormalizeError::Unsupported { format }) => assert_eq!(format, "HEIC"),
                other => panic!("{name}: expected Unsupported(HEIC), got {other:?}"),
            }
            continue;
        }
        let all = n
            .normalize_many(&bytes, &profiles)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (p, r) in profiles.iter().zip(all) {
            let r = r.unwrap_or_else(|e| panic!("{name} / {}: {e}", p.name()));
            assert_eq!(
                (r.width, r.height),
                (p.width(), p.height()),
                "{name} / {}",
                p.name()
            );
            assert!(
                r.bytes.len() <= p.max_bytes(),
                "{name} / {}: {} bytes",
                p.name(),
                r.bytes.len()
            );
            let facts = common::jpeg_facts(&r.bytes);
            assert!(
                facts.baseline && facts.only_jfif,
                "{name} / {}: {facts:?}",
                p.name()
            );
            // One decode for several profiles gives the same bytes as one profile at a time.
            let single = n.normalize(&bytes, p).unwrap();
            assert_eq!(
                single.bytes,
                r.bytes,
                "{name} / {}: normalize_many differs from normalize",
                p.name()
            );
        }
    }
}

#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn the_four_orientations_give_the_same_picture() {
    let dir = common::corpus();
    for p in [Profile::ad_thumbnail(), Profile::ad_large()] {
        let upright = common::decode_rgb(&render(&dir, "25_orient_landscape_1.jpg", &p).bytes);
        for other in [
            "26_orient_landscape_3.jpg",
            "27_orient_landscape_6.jpg",
            "28_orient_landscape_8.jpg",
        ] {
            let img = common::decode_rgb(&render(&dir, other, &p).bytes);
            let d = common::mean_abs_diff(&upright, &img);
            // The files differ only in how they are stored (and a digit drawn on them).
            assert!(
                d < 6.0,
                "{other} / {}: mean difference {d:.2} from the upright file",
                p.name()
            );
        }
        // A wrong orientation is far off: the upright file turned 90 degrees.
        let turned = image::imageops::rotate90(&upright);
        assert!(
            common::mean_abs_diff(&upright, &turned) > 20.0,
            "the test picture is too symmetric to tell"
        );
    }
}

#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn cmyk_is_close_to_its_srgb_original() {
    let dir = common::corpus();
    let p = Profile::ad_large();
    let original = common::decode_rgb(&render(&dir, "05_lomiri_sunset_4272x2848.jpg", &p).bytes);
    let cmyk = common::decode_rgb(&render(&dir, "37_derived_cmyk_sunset_4272x2848.jpg", &p).bytes);
    let d = common::mean_abs_diff(&original, &cmyk);
    assert!(d < 4.0, "CMYK rendition differs by {d:.2} on average");
    // An inverted conversion would be far off.
    let mut inverted = cmyk.clone();
    inverted.as_mut().iter_mut().for_each(|v| *v = 255 - *v);
    assert!(common::mean_abs_diff(&original, &inverted) > 40.0);
}

#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn rgba_is_flattened_on_white() {
    let dir = common::corpus();
    let r = render(&dir, "40_derived_chelsea_rgba.png", &Profile::ad_large());
    let img = common::decode_rgb(&r.bytes);
    // The alpha mask is a blurred disc: the corners are transparent, so white.
    for (x, y) in [(2, 2), (645, 2), (2, 645), (645, 645)] {
        let px = img.get_pixel(x, y).0;
        assert!(
            px.iter().all(|&v| v >= 245),
            "corner ({x},{y}) is {px:?}, not white"
        );
    }
    let black = Normalizer::new()
        .normalize(
            &load(&dir, "40_derived_chelsea_rgba.png"),
            &Profile::ad_large().with_background([0, 0, 0]),
        )
        .unwrap();
    let px = common::decode_rgb(&black.bytes).get_pixel(2, 2).0;
    assert!(
        px.iter().all(|&v| v <= 10),
        "corner on a black background is {px:?}"
    );
}

#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn gray_and_tiff_and_webp_inputs() {
    let dir = common::corpus();
    let g = common::decode_rgb(
        &render(
            &dir,
            "38_derived_gray_storm_1920x1280.jpg",
            &Profile::ad_thumbnail(),
        )
        .bytes,
    );
    let max_chroma = g
        .pixels()
        .map(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap())
        .max()
        .unwrap();
    assert!(
        max_chroma <= 6,
        "a grey input must stay grey, chroma {max_chroma}"
    );
    for f in [
        "35_exif_bsg1.tiff",
        "39_derived_life_3088x2056.webp",
        "30_skimage_astronaut.png",
    ] {
        let r = render(&dir, f, &Profile::graph());
        assert_eq!((r.width, r.height), (648, 648), "{f}");
    }
}

#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn renditions_are_deterministic_across_runs_and_threads() {
    let dir = common::corpus();
    let files = [
        "03_lomiri_seeding_5312x2988.jpg",
        "17_exif_canon_sx60_orient6_2048x1536.jpg",
        "37_derived_cmyk_sunset_4272x2848.jpg",
    ];
    let inputs: Vec<_> = files
        .iter()
        .map(|f| {
            (
                f.to_string(),
                userphoto::normalize::Input::Path(dir.join(f)),
            )
        })
        .collect();
    let profiles = [Profile::ad_thumbnail(), Profile::graph()];
    let mut runs = Vec::new();
    for threads in [1, 2] {
        let mut hashes = std::collections::BTreeMap::new();
        Normalizer::new().normalize_batch(
            inputs.clone(),
            &profiles,
            userphoto::normalize::BatchOptions { threads, queue: 1 },
            |item, _| {
                let v: Vec<String> = item
                    .result
                    .unwrap()
                    .into_iter()
                    .map(|r| r.unwrap().sha256_hex())
                    .collect();
                hashes.insert(item.key, v);
            },
        );
        runs.push(hashes);
    }
    assert_eq!(runs[0].len(), files.len());
    assert_eq!(runs[0], runs[1]);
}

#[cfg(feature = "heic")]
#[test]
#[ignore = "needs the photo corpus (USERPHOTO_CORPUS); scripts/test.sh runs it"]
fn heic_from_an_iphone_is_decoded_upright() {
    let dir = common::corpus();
    let bytes = load(&dir, "34_exif_iphone13pm_orient6.heic");
    let info = Normalizer::new().probe(&bytes).unwrap();
    assert_eq!(info.format, userphoto::normalize::ImageFormat::Heic);
    // Stored 4032x3024 with a 90 degree rotation: upright it is portrait.
    assert_eq!((info.width, info.height), (3024, 4032));
    let r = Normalizer::new()
        .normalize(&bytes, &Profile::graph())
        .unwrap();
    assert_eq!((r.width, r.height), (648, 648));
}
