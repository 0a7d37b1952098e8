//! SHA-256 and lower-case hex: the one encoder of the crate's hashes (fingerprints, photo
//! hashes, backup object names, state records).
//!
//! The normalizer keeps its own one-line encoder
//! ([`Rendition::sha256_hex`](crate::normalize::Rendition::sha256_hex)) so that it imports
//! nothing else of the crate; a test here checks that the two agree.

use sha2::{Digest, Sha256};

/// Lower-case hex of `bytes`, two digits per byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// The SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The SHA-256 of `bytes` as 64 lower-case hex digits.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha256(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_sha256_match_known_values() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        // FIPS 180-2's "abc" and the empty message.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(hex(&sha256(b"abc")), sha256_hex(b"abc"));
    }

    #[test]
    fn the_normalizer_hex_agrees() {
        let r = crate::normalize::Normalizer::default()
            .normalize(
                &crate::normalize::testimage::photo_jpeg(64, 80, 1),
                &crate::normalize::Profile::ad_thumbnail(),
            )
            .unwrap();
        assert_eq!(r.sha256_hex(), hex(&r.sha256));
        assert_eq!(r.sha256_hex(), sha256_hex(&r.bytes));
    }
}
