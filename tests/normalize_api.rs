//! The public API end to end: ICC profiles, crop strategies, batches and progress.

use userphoto_testkit as common;

use userphoto::normalize::{
    testimage, BatchOptions, CropContext, CropMethod, CropMode, CropRect, CropStrategy, FocusCrop,
    Input, NormalizeError, Normalizer, Placement, Profile, RegionCrop, Scene,
};

fn mean_rgb(img: &image::RgbImage) -> [f64; 3] {
    let mut s = [0f64; 3];
    for p in img.pixels() {
        for (acc, v) in s.iter_mut().zip(p.0) {
            *acc += v as f64;
        }
    }
    let n = (img.width() * img.height()) as f64;
    s.map(|v| v / n)
}

#[test]
fn an_embedded_display_p3_profile_is_converted_to_srgb() {
    // A flat orange in Display P3 numbers: in sRGB the same colour is more saturated.
    let px: Vec<u8> = (0..400 * 300).flat_map(|_| [200u8, 100, 50]).collect();
    let plain = userphoto::normalize::bench::encode(&px, 400, 300, 95).unwrap();
    let p3 = moxcms_profile();
    let tagged = testimage::with_icc_profile(&plain, &p3);
    let p = Profile::ad_thumbnail();
    let a = mean_rgb(&common::decode_rgb(
        &Normalizer::new().normalize(&plain, &p).unwrap().bytes,
    ));
    let b = mean_rgb(&common::decode_rgb(
        &Normalizer::new().normalize(&tagged, &p).unwrap().bytes,
    ));
    assert!(
        (a[0] - 200.0).abs() < 3.0,
        "untagged input is taken as sRGB: {a:?}"
    );
    assert!(
        b[0] > a[0] + 8.0 && b[2] < a[2] - 8.0,
        "P3 input must come out more saturated in sRGB: {a:?} -> {b:?}"
    );
    // The profile itself never leaves.
    let r = Normalizer::new().normalize(&tagged, &p).unwrap();
    assert!(common::jpeg_facts(&r.bytes).only_jfif);
}

/// Display P3, as the ICC bytes a phone embeds (built by the test with the same CMS library
/// the crate uses, so no profile file is needed).
fn moxcms_profile() -> Vec<u8> {
    moxcms::ColorProfile::new_display_p3().encode().unwrap()
}

/// A picture whose left half is black and right half white.
fn split_jpeg() -> Vec<u8> {
    let (w, h) = (600u32, 200u32);
    let px: Vec<u8> = (0..w * h)
        .flat_map(|i| if i % w < w / 2 { [0u8; 3] } else { [255u8; 3] })
        .collect();
    userphoto::normalize::bench::encode(&px, w, h, 95).unwrap()
}

#[test]
fn crop_strategies_choose_the_region() {
    let jpeg = split_jpeg();
    let p = Profile::ad_thumbnail();
    let mean =
        |n: Normalizer| mean_rgb(&common::decode_rgb(&n.normalize(&jpeg, &p).unwrap().bytes))[1];
    let left = mean(Normalizer::new().with_crop_strategy(FocusCrop { x: 0.0, y: 0.5 }));
    let right = mean(Normalizer::new().with_crop_strategy(FocusCrop { x: 1.0, y: 0.5 }));
    let centre = mean(Normalizer::new().with_crop(CropMode::Centre));
    assert!(left < 10.0, "left crop is black: {left}");
    assert!(right > 245.0, "right crop is white: {right}");
    assert!(
        (centre - 127.0).abs() < 15.0,
        "centre crop is half and half: {centre}"
    );
    let region = mean(Normalizer::new().with_crop_strategy(RegionCrop(CropRect {
        x: 500.0,
        y: 50.0,
        width: 80.0,
        height: 80.0,
    })));
    assert!(region > 245.0);
}

/// An integrator's strategy (for example from a face detector) sees the upright size.
#[derive(Debug)]
struct RecordingCrop(std::sync::Mutex<Vec<(u32, u32)>>);

impl CropStrategy for RecordingCrop {
    fn cache_key(&self) -> String {
        "recording".into()
    }
    fn place(&self, _scene: &Scene<'_>, ctx: &CropContext) -> Placement {
        self.0.lock().unwrap().push((ctx.width, ctx.height));
        Placement::new(
            CropRect {
                x: 0.0,
                y: 0.0,
                width: ctx.width as f64,
                height: ctx.width as f64,
            },
            CropMethod::Custom,
        )
    }
}

#[test]
fn a_custom_strategy_sees_upright_dimensions() {
    let rec = std::sync::Arc::new(RecordingCrop(Default::default()));
    #[derive(Debug)]
    struct Shared(std::sync::Arc<RecordingCrop>);
    impl CropStrategy for Shared {
        fn cache_key(&self) -> String {
            self.0.cache_key()
        }
        fn place(&self, scene: &Scene<'_>, ctx: &CropContext) -> Placement {
            self.0.place(scene, ctx)
        }
    }
    let n = Normalizer::new().with_crop_strategy(Shared(rec.clone()));
    // Stored 800x600 with orientation 6: upright it is 600x800.
    let jpeg = testimage::with_exif_orientation(&testimage::gradient_jpeg(800, 600), 6);
    n.normalize(&jpeg, &Profile::ad_thumbnail()).unwrap();
    assert!(
        rec.0.lock().unwrap().iter().all(|&d| d == (600, 800)),
        "{:?}",
        rec.0.lock().unwrap()
    );
}

#[test]
fn batches_report_progress_and_failures_and_keep_keys() {
    let good = testimage::gradient_jpeg(640, 480);
    let inputs: Vec<(usize, Input)> = (0..12)
        .map(|i| {
            (
                i,
                if i % 4 == 3 {
                    Input::Bytes(b"broken".to_vec().into())
                } else {
                    Input::Bytes(good.clone().into())
                },
            )
        })
        .collect();
    let mut seen = Vec::new();
    let mut last = None;
    let total = Normalizer::new().normalize_batch(
        inputs,
        &[Profile::ad_thumbnail(), Profile::ad_large()],
        BatchOptions {
            threads: 2,
            queue: 1,
        },
        |item, progress| {
            assert_eq!(item.key, item.index);
            assert_eq!(progress.done, seen.len() + 1);
            match &item.result {
                Ok(v) => {
                    assert_eq!(v.len(), 2);
                    assert!(item.key % 4 != 3);
                }
                Err(e) => {
                    assert!(matches!(e, NormalizeError::Unsupported { .. }));
                    assert_eq!(item.key % 4, 3);
                }
            }
            seen.push(item.key);
            last = Some(progress);
        },
    );
    seen.sort();
    assert_eq!(seen, (0..12).collect::<Vec<_>>());
    assert_eq!(total.done, 12);
    assert_eq!(total.failed, 3);
    assert_eq!(last, Some(total));
}

#[test]
fn batch_reads_files_and_applies_the_input_limit() {
    let dir = std::env::temp_dir().join(format!("userphoto-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let small = dir.join("small.jpg");
    std::fs::write(&small, testimage::gradient_jpeg(300, 300)).unwrap();
    let n = Normalizer::new()
        .with_limits(userphoto::normalize::Limits::default().with_max_input_bytes(50_000));
    let big = dir.join("big.png");
    std::fs::write(&big, common::noise_png(400, 400, 1)).unwrap();
    let mut results = std::collections::BTreeMap::new();
    n.normalize_batch(
        [
            ("small", Input::Path(small)),
            ("big", Input::Path(big)),
            ("missing", Input::Path(dir.join("nope.jpg"))),
        ],
        &[Profile::ad_thumbnail()],
        BatchOptions::default(),
        |item, _| {
            results.insert(item.key, item.result.map(|_| ()).map_err(|e| e.kind()));
        },
    );
    use userphoto::normalize::NormalizeErrorKind as K;
    assert_eq!(results["small"], Ok(()));
    assert_eq!(results["big"], Err(K::LimitExceeded));
    assert_eq!(results["missing"], Err(K::Io));
    std::fs::remove_dir_all(&dir).ok();
}
