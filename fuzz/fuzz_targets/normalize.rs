//! Fuzzes the decode entry point: probe and normalize any bytes for a small profile.
//! Any error is fine; a panic, an abort, a hang or a huge allocation is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use userphoto::normalize::{Limits, Normalizer, Profile};

fuzz_target!(|data: &[u8]| {
    // Limits small enough that no accepted input can make a large allocation.
    let limits = Limits::default()
        .with_max_input_bytes(4 << 20)
        .with_max_dimensions(4096, 4096)
        .with_max_pixels(4_000_000)
        .with_max_decoded_bytes(64 << 20);
    let n = Normalizer::new().with_limits(limits);
    let _ = n.probe(data);
    let profile = Profile::custom("fuzz", 48, 48, 4000).with_min_width(16);
    if let Ok(r) = n.normalize(data, &profile) {
        assert!(r.bytes.len() <= 4000);
        assert!(r.width <= 48 && r.height <= 48);
    }
});
