//! Inputs the `progressive` fuzz target (fuzz/fuzz_targets/progressive.rs, run by
//! fuzz/progressive.sh) found, minimized with `cargo fuzz tmin`, kept in
//! tests/data/progressive/. Each one goes through the same check as the target: the crate's
//! own progressive decoder and the libjpeg path, with the target's limits and profiles, may
//! both fail but must not panic, and when both produce a rendition it is the same bytes.
//!
//! The files, and what they showed when they were found:
//! - `dht-code-overflow.jpg`: an AC table whose counts overflow their code length (two 1-bit
//!   codes, then four 2-bit ones) panics in `Huff::new` (index 512 of `fast`), before the
//!   overflow check after the length's loop runs.
//! - `mismatch-dc-scans-only.jpg`, `mismatch-non-interleaved-dc-then-ac.jpg`,
//!   `mismatch-ac-first-al10.jpg`: the renditions differ at 16 px (the last also at 32 px),
//!   the same at 64 px. The difference goes away when the quantization tables are set to 1
//!   (the first two) or the AC scan's Al is lowered to 2 (the last): coefficients far out of
//!   a conforming file's range, where the reduced IDCTs' arithmetic overflows differently.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use userphoto::normalize::{Limits, Normalizer, Profile, ProgressiveDecoder};

fn inputs() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/progressive");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// What the fuzz target checks for one input, as a description of the first difference.
fn check(data: &[u8]) -> Result<(), String> {
    let limits = Limits::default()
        .with_max_input_bytes(4 << 20)
        .with_max_dimensions(4096, 4096)
        .with_max_pixels(4_000_000)
        .with_max_decoded_bytes(64 << 20);
    let ours = Normalizer::new().with_limits(limits);
    let lib = Normalizer::new()
        .with_limits(limits)
        .with_progressive_decoder(ProgressiveDecoder::Libjpeg);
    for size in [16u32, 32, 64] {
        let p = Profile::custom("fuzz", size, size, 20_000).with_min_width(16);
        let a = catch_unwind(AssertUnwindSafe(|| ours.normalize(data, &p)))
            .map_err(|_| format!("the native progressive decoder panicked at {size} px"))?;
        let b = catch_unwind(AssertUnwindSafe(|| lib.normalize(data, &p)))
            .map_err(|_| format!("the libjpeg path panicked at {size} px"))?;
        if let (Ok(a), Ok(b)) = (&a, &b) {
            if a.bytes != b.bytes {
                return Err(format!("the renditions differ at {size} px"));
            }
        }
    }
    Ok(())
}

/// Every kept input passes the fuzz target's check; the failures are listed by file name.
#[test]
fn fuzz_found_inputs_neither_panic_nor_differ() {
    let files = inputs();
    assert!(!files.is_empty(), "tests/data/progressive is empty");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let data = std::fs::read(f).unwrap();
            check(&data)
                .err()
                .map(|e| format!("{}: {e}", f.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
