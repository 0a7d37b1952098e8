//! Fuzzes the progressive JPEG decoder at every scale it serves (1/1, 1/2, 1/4, 1/8) through the
//! normalizer, against the libjpeg path: both may fail, neither may panic, hang or allocate
//! without bound, and when both produce a rendition it is the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use userphoto::normalize::{Limits, Normalizer, ProgressiveDecoder, Profile};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default()
        .with_max_input_bytes(4 << 20)
        .with_max_dimensions(4096, 4096)
        .with_max_pixels(4_000_000)
        .with_max_decoded_bytes(64 << 20);
    let ours = Normalizer::new().with_limits(limits.clone());
    let lib = Normalizer::new()
        .with_limits(limits)
        .with_progressive_decoder(ProgressiveDecoder::Libjpeg);
    // Small squares so that even small inputs decode at a reduced DCT scale.
    for size in [16u32, 32, 64] {
        let p = Profile::custom("fuzz", size, size, 20_000).with_min_width(16);
        let a = ours.normalize(data, &p);
        let b = lib.normalize(data, &p);
        if let (Ok(a), Ok(b)) = (&a, &b) {
            assert_eq!(a.bytes, b.bytes);
        }
    }
});
