//! Malformed and hostile inputs, generated here: each gives its typed error, never a panic;
//! decompression bombs are refused from the header.

use userphoto_testkit as common;

use userphoto::normalize::{
    testimage, Limits, NormalizeError, NormalizeErrorKind, Normalizer, Profile,
};

fn kind_of(bytes: &[u8]) -> Result<(), NormalizeErrorKind> {
    Normalizer::new()
        .normalize(bytes, &Profile::ad_thumbnail())
        .map(|_| ())
        .map_err(|e| e.kind())
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose IHDR claims `w` x `h`, with a valid CRC and a tiny IDAT.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(data);
        out.extend_from_slice(&c);
        out.extend_from_slice(&crc32(&c).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    out
}

/// A JPEG whose frame header claims `w` x `h`.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut j = testimage::gradient_jpeg(32, 32);
    let i = j.windows(2).position(|x| x == [0xFF, 0xC0]).expect("SOF0");
    j[i + 5..i + 7].copy_from_slice(&h.to_be_bytes());
    j[i + 7..i + 9].copy_from_slice(&w.to_be_bytes());
    j
}

#[test]
fn empty_and_garbage_are_unsupported() {
    assert_eq!(kind_of(b""), Err(NormalizeErrorKind::Unsupported));
    assert_eq!(
        kind_of(b"hello, this is not an image at all"),
        Err(NormalizeErrorKind::Unsupported)
    );
    let mut s = 12345u32;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (s >> 16) as u8
        })
        .collect();
    assert_eq!(kind_of(&random), Err(NormalizeErrorKind::Unsupported));
}

#[test]
fn heic_and_other_formats_name_themselves() {
    let mut heic = vec![0, 0, 0, 0x18];
    heic.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
    match Normalizer::new().normalize(&heic, &Profile::ad_thumbnail()) {
        // With a HEIC decoder, a header alone is a damaged HEIC file; without, HEIC by name.
        Err(NormalizeError::Corrupt { format, .. }) if cfg!(feature = "heic") => {
            assert_eq!(format, "HEIC")
        }
        Err(NormalizeError::Unsupported { format }) if !cfg!(feature = "heic") => {
            assert_eq!(format, "HEIC")
        }
        other => panic!("expected a HEIC error, got {other:?}"),
    }
    match Normalizer::new().normalize(b"8BPS\0\x01rest-of-a-psd", &Profile::ad_thumbnail()) {
        Err(NormalizeError::Unsupported { format }) => assert_eq!(format, "PSD"),
        other => panic!("expected Unsupported PSD, got {other:?}"),
    }
}

#[test]
fn jpeg_bombs_are_refused_from_the_header() {
    for (w, h) in [(60000, 60000), (65535, 65535), (20000, 20000)] {
        match Normalizer::new().normalize(&jpeg_claiming(w, h), &Profile::ad_thumbnail()) {
            Err(NormalizeError::LimitExceeded { value, limit, .. }) => assert!(value > limit),
            other => panic!("{w}x{h}: expected LimitExceeded, got {other:?}"),
        }
    }
    // The same header with room in the limits decodes as far as the data goes: corrupt.
    let small_limits = Limits::default().with_max_pixels(1000);
    let err = Normalizer::new()
        .with_limits(small_limits)
        .normalize(&testimage::gradient_jpeg(64, 64), &Profile::ad_thumbnail());
    assert!(
        matches!(
            err,
            Err(NormalizeError::LimitExceeded {
                what: "pixels",
                value: 4096,
                limit: 1000
            })
        ),
        "{err:?}"
    );
}

#[test]
fn png_bombs_are_refused_from_the_header() {
    for (w, h) in [(60000, 60000), (100_000, 1), (1, 100_000)] {
        assert_eq!(
            kind_of(&png_claiming(w, h)),
            Err(NormalizeErrorKind::LimitExceeded),
            "{w}x{h}"
        );
    }
    // 16000x16000 passes width and height but not the pixel count.
    let lim = Limits::default().with_max_pixels(100_000_000);
    let r = Normalizer::new()
        .with_limits(lim)
        .normalize(&png_claiming(16000, 16000), &Profile::ad_thumbnail());
    assert!(
        matches!(r, Err(NormalizeError::LimitExceeded { what: "pixels", .. })),
        "{r:?}"
    );
    // Within every limit but with no pixel data: corrupt, not a crash or an allocation.
    assert_eq!(
        kind_of(&png_claiming(5000, 5000)),
        Err(NormalizeErrorKind::Corrupt)
    );
}

#[test]
fn gif_bmp_tiff_bombs_are_refused() {
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0]);
    gif.extend_from_slice(&[
        0x2C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 2, 2, 0x4C, 1, 0, 0x3B,
    ]);
    assert_eq!(kind_of(&gif), Err(NormalizeErrorKind::LimitExceeded));
    // BMP: BITMAPINFOHEADER claiming 50000 x 50000 at 24 bits.
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0; 8]);
    bmp.extend_from_slice(&54u32.to_le_bytes());
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&50000i32.to_le_bytes());
    bmp.extend_from_slice(&50000i32.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&[0; 24]);
    assert_eq!(kind_of(&bmp), Err(NormalizeErrorKind::LimitExceeded));
    // TIFF: one IFD of an 8-bit gray image of 60000 x 60000 (3.6 gigapixels) in one strip of
    // 4 bytes. Only the header is there: refused by its size, not as unsupported or corrupt.
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    let tags: [(u16, u16, u32); 8] = [
        (256, 4, 60000), // ImageWidth
        (257, 4, 60000), // ImageLength
        (258, 3, 8),     // BitsPerSample
        (262, 3, 1),     // PhotometricInterpretation: BlackIsZero
        (273, 4, 0),     // StripOffsets (the header: anything, never read)
        (277, 3, 1),     // SamplesPerPixel
        (278, 4, 60000), // RowsPerStrip
        (279, 4, 4),     // StripByteCounts
    ];
    tiff.extend_from_slice(&(tags.len() as u16).to_le_bytes());
    for (tag, kind, value) in tags {
        tiff.extend_from_slice(&tag.to_le_bytes());
        tiff.extend_from_slice(&kind.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&value.to_le_bytes());
    }
    tiff.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(kind_of(&tiff), Err(NormalizeErrorKind::LimitExceeded));
}

#[test]
fn input_size_limit_applies_before_anything_else() {
    let lim = Limits::default().with_max_input_bytes(100);
    let r = Normalizer::new()
        .with_limits(lim)
        .normalize(&testimage::gradient_jpeg(64, 64), &Profile::ad_thumbnail());
    assert!(
        matches!(
            r,
            Err(NormalizeError::LimitExceeded {
                what: "input bytes",
                limit: 100,
                ..
            })
        ),
        "{r:?}"
    );
}

/// Every prefix of a valid file is refused with a typed error (or, for the last bytes of a
/// JPEG whose picture is complete, normalized): never a panic.
#[test]
fn truncated_files_at_every_length_give_typed_errors() {
    let mut inputs = vec![
        ("baseline jpeg", testimage::gradient_jpeg(160, 120)),
        ("png", testimage::rgba_png(120, 90)),
    ];
    for (name, format) in [
        ("gif", image::ImageFormat::Gif),
        ("webp", image::ImageFormat::WebP),
        ("tiff", image::ImageFormat::Tiff),
        ("bmp", image::ImageFormat::Bmp),
    ] {
        inputs.push((name, common::photo_as(format, 60, 40)));
    }
    let n = Normalizer::new();
    for (name, full) in inputs {
        assert!(
            n.normalize(&full, &Profile::ad_thumbnail()).is_ok(),
            "{name} must normalize whole"
        );
        let step = (full.len() / 150).max(1);
        let mut refused = 0;
        for len in (0..full.len() - 2).step_by(step) {
            match n.normalize(&full[..len], &Profile::ad_thumbnail()) {
                Ok(_) => {}
                Err(e) => {
                    assert!(
                        matches!(
                            e.kind(),
                            NormalizeErrorKind::Corrupt
                                | NormalizeErrorKind::Unsupported
                                | NormalizeErrorKind::LimitExceeded
                        ),
                        "{name}[..{len}]: {e}"
                    );
                    refused += 1;
                }
            }
        }
        assert!(refused > 0, "{name}: no prefix was refused");
    }
}

/// Deterministic byte flips in valid files: any result is fine except a panic.
#[test]
fn mutated_files_never_panic() {
    let seeds = [
        testimage::gradient_jpeg(96, 80),
        testimage::rgba_png(64, 48),
        testimage::with_exif_orientation(&testimage::gradient_jpeg(80, 96), 6),
    ];
    let n = Normalizer::new();
    let mut s = 99u32;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s
    };
    for seed in &seeds {
        for _ in 0..300 {
            let mut m = seed.clone();
            for _ in 0..(1 + rnd() % 4) {
                let i = rnd() as usize % m.len();
                m[i] = rnd() as u8;
            }
            let _ = n.normalize(&m, &Profile::ad_thumbnail());
        }
    }
}

#[test]
fn wrong_extension_is_irrelevant() {
    // Format comes from the bytes: a PNG named .jpg is a PNG.
    let dir = std::env::temp_dir().join(format!("userphoto-ext-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("really-a-png.jpg");
    std::fs::write(&path, testimage::rgba_png(100, 100)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let info = Normalizer::new().probe(&bytes).unwrap();
    assert_eq!(info.format, userphoto::normalize::ImageFormat::Png);
    assert!(Normalizer::new()
        .normalize(&bytes, &Profile::ad_thumbnail())
        .is_ok());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_profiles_are_config_errors() {
    let jpeg = testimage::gradient_jpeg(64, 64);
    for p in [
        Profile::custom("zero", 0, 96, 10_000),
        Profile::custom("q", 96, 96, 10_000).with_quality_range(95, 90),
        Profile::custom("tiny-budget", 96, 96, 10),
        Profile::custom("floor", 96, 96, 10_000).with_min_width(200),
    ] {
        let r = Normalizer::new().normalize(&jpeg, &p);
        assert!(
            matches!(r, Err(NormalizeError::Config(_))),
            "{}: {r:?}",
            p.name()
        );
    }
}

#[test]
fn impossible_budget_is_cannot_fit_with_the_best_reached() {
    // Noise at 96x96 cannot fit 400 bytes even at quality 30 and 48 px.
    let png = common::noise_png(96, 96, 7);
    let p = Profile::custom("strict", 96, 96, 400).with_min_width(48);
    match Normalizer::new().normalize(&png, &p) {
        Err(NormalizeError::CannotFit {
            best_bytes,
            max_bytes,
            best_quality,
            best_width,
            ..
        }) => {
            assert_eq!(max_bytes, 400);
            assert!(best_bytes > 400);
            assert_eq!(best_quality, 30);
            assert_eq!(best_width, 48, "the size stepped down to the floor first");
        }
        other => panic!("expected CannotFit, got {other:?}"),
    }
    // With the floor at the full size there is no step-down.
    let fixed = Profile::custom("strict", 96, 96, 400);
    assert!(matches!(
        Normalizer::new().normalize(&png, &fixed),
        Err(NormalizeError::CannotFit { best_width: 96, .. })
    ));
}

#[test]
fn size_steps_down_when_quality_alone_cannot_fit() {
    let png = common::noise_png(96, 96, 3);
    let at_floor_quality = Normalizer::new()
        .normalize(
            &png,
            &Profile::custom("probe", 96, 96, 1_000_000).with_quality_range(30, 30),
        )
        .unwrap();
    let p = Profile::custom("step", 96, 96, at_floor_quality.bytes.len() - 1).with_min_width(32);
    let r = Normalizer::new()
        .normalize(&png, &p)
        .expect("fits at a smaller size");
    assert!(
        r.width < 96 && r.width >= 32 && r.width == r.height,
        "{r:?}"
    );
    assert!(r.bytes.len() < at_floor_quality.bytes.len());
}
