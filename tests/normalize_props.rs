//! Property tests of the normalization core on generated images: any size, aspect ratio,
//! colour type and budget gives exact dimensions, `len <= budget`, a decodable baseline JPEG
//! without metadata, and the same bytes twice.

use userphoto_testkit as common;

use proptest::prelude::*;
use userphoto::normalize::{NormalizeError, Normalizer, Profile};

#[derive(Debug, Clone, Copy)]
enum Kind {
    JpegRgb,
    JpegGray,
    PngRgba,
    PngGray16,
    Gif,
    Bmp,
}

fn make(kind: Kind, w: u32, h: u32, seed: u32) -> Vec<u8> {
    let rgb = userphoto::normalize::testimage::photo_rgb(w, h, seed);
    match kind {
        Kind::JpegRgb => common::encode_with_image(
            &rgb,
            w,
            h,
            image::ExtendedColorType::Rgb8,
            image::ImageFormat::Jpeg,
        ),
        Kind::JpegGray => {
            let g: Vec<u8> = rgb.chunks(3).map(|p| p[1]).collect();
            common::encode_with_image(
                &g,
                w,
                h,
                image::ExtendedColorType::L8,
                image::ImageFormat::Jpeg,
            )
        }
        Kind::PngRgba => {
            let px: Vec<u8> = rgb
                .chunks(3)
                .enumerate()
                .flat_map(|(i, p)| [p[0], p[1], p[2], (i * 7 % 256) as u8])
                .collect();
            common::encode_with_image(
                &px,
                w,
                h,
                image::ExtendedColorType::Rgba8,
                image::ImageFormat::Png,
            )
        }
        Kind::PngGray16 => {
            let px: Vec<u8> = rgb.chunks(3).flat_map(|p| [p[0], p[1]]).collect();
            common::encode_with_image(
                &px,
                w,
                h,
                image::ExtendedColorType::L16,
                image::ImageFormat::Png,
            )
        }
        Kind::Gif => common::encode_with_image(
            &rgb,
            w,
            h,
            image::ExtendedColorType::Rgb8,
            image::ImageFormat::Gif,
        ),
        Kind::Bmp => common::encode_with_image(
            &rgb,
            w,
            h,
            image::ExtendedColorType::Rgb8,
            image::ImageFormat::Bmp,
        ),
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::JpegRgb),
        Just(Kind::JpegGray),
        Just(Kind::PngRgba),
        Just(Kind::PngGray16),
        Just(Kind::Gif),
        Just(Kind::Bmp),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn any_input_gives_an_exact_bounded_deterministic_jpeg(
        kind in kind(),
        w in 1u32..700,
        h in 1u32..700,
        seed in 0u32..1000,
        tw in 8u32..200,
        th in 8u32..200,
        budget in 600usize..30_000,
        orientation in 1u16..=8,
    ) {
        let mut input = make(kind, w, h, seed);
        if matches!(kind, Kind::JpegRgb) {
            input = userphoto::normalize::testimage::with_exif_orientation(&input, orientation);
        }
        let profile = Profile::custom("prop", tw, th, budget).with_min_width(tw.min(16));
        let n = Normalizer::new();
        match n.normalize(&input, &profile) {
            Ok(r) => {
                prop_assert!(r.bytes.len() <= budget, "{} > {budget}", r.bytes.len());
                if r.width == tw {
                    prop_assert_eq!(r.height, th);
                } else {
                    // Stepped down: smaller, same aspect within rounding.
                    prop_assert!(r.width < tw && r.width >= profile.min_width());
                }
                let facts = common::jpeg_facts(&r.bytes);
                prop_assert!(facts.baseline, "not baseline");
                prop_assert!(facts.only_jfif, "metadata left: {:?}", facts.markers);
                let decoded = image::load_from_memory_with_format(&r.bytes, image::ImageFormat::Jpeg).expect("decodable");
                prop_assert_eq!((decoded.width(), decoded.height()), (r.width, r.height));
                let again = n.normalize(&input, &profile).expect("second run");
                prop_assert_eq!(&again.bytes, &r.bytes, "not deterministic");
            }
            Err(NormalizeError::CannotFit { best_bytes, max_bytes, .. }) => {
                prop_assert!(best_bytes > max_bytes);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}

/// Flat pictures give degenerate Huffman statistics; every rendition must still decode to
/// the right colour in an independent decoder (zune-jpeg, through `image`).
#[test]
fn flat_pictures_decode_to_their_colour_everywhere() {
    for colour in [[255u8, 255, 255], [0, 0, 0], [200, 30, 90], [128, 128, 128]] {
        let px: Vec<u8> = (0..300 * 200).flat_map(|_| colour).collect();
        let png = common::encode_with_image(
            &px,
            300,
            200,
            image::ExtendedColorType::Rgb8,
            image::ImageFormat::Png,
        );
        for p in [Profile::ad_thumbnail(), Profile::graph()] {
            let r = Normalizer::new().normalize(&png, &p).unwrap();
            let img = common::decode_rgb(&r.bytes);
            for (x, y) in [
                (0, 0),
                (r.width / 2, r.height / 2),
                (r.width - 1, r.height - 1),
            ] {
                let got = img.get_pixel(x, y).0;
                for (g, c) in got.iter().zip(colour) {
                    assert!(
                        g.abs_diff(c) <= 3,
                        "{colour:?} / {}: pixel ({x},{y}) decoded as {got:?}",
                        p.name()
                    );
                }
            }
        }
    }
}
