//! The test kit of the userphoto workspace (never published): what the library's tests,
//! benches and examples and the CLI's tests share, as a normal dev-dependency.
//!
//! - [`graph_server`]: a local fake of Microsoft Graph and of its token endpoint;
//! - [`ldif`]: the tests' own LDIF reader, writer and `ldapmodify`-like applier;
//! - [`browser`]: headless Chromium through chromedriver, for tests of pages;
//! - [`ad`]: the Samba AD DC of `scripts/samba-dc.sh`: its settings, admin connections and
//!   per-test OUs;
//! - at the top level: image helpers (an independent encoder and decoder, JPEG marker facts,
//!   noise) and the photo corpus.
//!
//! The integration tests of the library name it `common` (`use userphoto_testkit as
//! common;`), the name its helpers had when they lived in `tests/common/`.

use std::path::PathBuf;

pub mod ad;
pub mod browser;
pub mod entra_connect;
pub mod graph_server;
pub mod ldif;

/// The plain HTTP client of the Graph fake's self-tests, for requests straight to the fake
/// (as `examples/bench_graph.rs` makes them).
pub use reqwest;

/// Encodes pixels with the `image` crate (an independent encoder, so inputs are not shaped by
/// our own codec).
pub fn encode_with_image(
    px: &[u8],
    w: u32,
    h: u32,
    color: image::ExtendedColorType,
    format: image::ImageFormat,
) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::write_buffer_with_format(&mut out, px, w, h, color, format).expect("encode test image");
    out.into_inner()
}

/// Marker-level facts about a JPEG, read independently of the crate.
#[derive(Debug)]
pub struct JpegFacts {
    pub baseline: bool,
    pub only_jfif: bool,
    pub markers: Vec<u8>,
}

pub fn jpeg_facts(b: &[u8]) -> JpegFacts {
    assert_eq!(&b[..2], &[0xFF, 0xD8], "SOI");
    let mut markers = Vec::new();
    let mut pos = 2;
    while pos + 4 <= b.len() {
        assert_eq!(b[pos], 0xFF, "marker expected at {pos}");
        let m = b[pos + 1];
        markers.push(m);
        if m == 0xDA {
            break;
        }
        let len = u16::from_be_bytes([b[pos + 2], b[pos + 3]]) as usize;
        pos += 2 + len;
    }
    assert_eq!(&b[b.len() - 2..], &[0xFF, 0xD9], "EOI");
    let baseline = markers.contains(&0xC0)
        && !markers
            .iter()
            .any(|m| matches!(m, 0xC1..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF));
    // Allowed: APP0 (JFIF), DQT, SOF0, DHT, SOS. Anything else (APP1 EXIF/XMP, APP2 ICC,
    // APP13 IPTC, APP14 Adobe, COM) is metadata that must not leave.
    let only_jfif = markers
        .iter()
        .all(|m| matches!(m, 0xE0 | 0xDB | 0xC0 | 0xC4 | 0xDA | 0xDD));
    JpegFacts {
        baseline,
        only_jfif,
        markers,
    }
}

/// A test that cannot run here (a tool or data missing): prints `SKIPPED: why` so the test
/// passes saying so, or, under `USERPHOTO_REQUIRE_TOOLS=1` (as `scripts/test.sh` sets it),
/// fails the test with `why`, so a suite that is required to run everything cannot pass by
/// skipping.
pub fn skip(why: &str) {
    if std::env::var_os("USERPHOTO_REQUIRE_TOOLS").is_some_and(|v| v == "1") {
        panic!("USERPHOTO_REQUIRE_TOOLS=1, but this test cannot run: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// Where the shared photo corpus is: `USERPHOTO_CORPUS`, or `../shared/corpus` next to the
/// repository.
pub fn corpus_path() -> PathBuf {
    std::env::var_os("USERPHOTO_CORPUS")
        .map(PathBuf::from)
        // `../shared/corpus` next to the repository (this package is one folder down).
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

/// The shared photo corpus, for a test that needs it. Such tests are marked
/// `#[ignore = "needs the photo corpus ..."]`, so a plain `cargo test` lists them as ignored
/// with that reason; `scripts/test.sh` checks that the corpus is there and runs them with
/// `--include-ignored`. Run without it, a test fails here naming where it looked: it never
/// passes without its photos.
pub fn corpus() -> PathBuf {
    let dir = corpus_path();
    assert!(
        dir.is_dir(),
        "the photo corpus is not at {} (set USERPHOTO_CORPUS to the folder of real photos)",
        dir.display()
    );
    dir
}

/// The shared photo corpus when it is there: for a test that runs on generated photos and
/// adds the corpus's when it can.
pub fn corpus_if_present() -> Option<PathBuf> {
    Some(corpus_path()).filter(|d| d.is_dir())
}

/// Decodes a JPEG rendition to RGB8 with the `image` crate.
pub fn decode_rgb(jpeg: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
        .expect("decode rendition")
        .to_rgb8()
}

/// Mean absolute difference per channel between two same-sized RGB images.
pub fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y) as u64)
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

/// A generated photo encoded in `format` by the `image` crate.
pub fn photo_as(format: image::ImageFormat, w: u32, h: u32) -> Vec<u8> {
    let rgb = userphoto::normalize::testimage::photo_rgb(w, h, 1);
    encode_with_image(&rgb, w, h, image::ExtendedColorType::Rgb8, format)
}

/// `n` bytes of deterministic noise (a linear congruential generator).
pub fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 24) as u8
        })
        .collect()
}

/// An RGB PNG of noise: the worst case for a JPEG byte budget.
pub fn noise_png(w: u32, h: u32, seed: u32) -> Vec<u8> {
    encode_with_image(
        &noise(w as usize * h as usize * 3, seed),
        w,
        h,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )
}
