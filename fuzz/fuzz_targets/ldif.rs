//! Fuzzes the LDIF export reader (what `LdifSink::open` reads): any bytes, as a file of any
//! encoding. Any error is fine; a panic, an abort, a hang or a huge allocation is a bug.
//! Seeds: tests/data/ldif (scripts/fuzz.sh copies them into fuzz/corpus/ldif).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = userphoto::__fuzz_ldif_read(data) {
        // Each entry needs at least a `dn:` line.
        assert!(n <= data.len() / 3 + 1);
    }
});
