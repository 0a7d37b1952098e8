//! Text files as spreadsheets and directory tools save them: UTF-8 with or without a byte
//! order mark, or UTF-16 with one. The byte order marks and the decoding are `encoding_rs`'s;
//! what is not valid text is an error saying where, never replaced.

use std::borrow::Cow;

use encoding_rs::{DecoderResult, Encoding, UTF_16BE, UTF_16LE, UTF_8};

/// The encoding a byte order mark at the start of `head` names, and the mark's length:
/// UTF-8 with length 0 when there is none.
pub(crate) fn sniff_bom(head: &[u8]) -> (&'static Encoding, usize) {
    Encoding::for_bom(head).unwrap_or((UTF_8, 0))
}

/// Whether `enc` is UTF-16 (either byte order).
pub(crate) fn is_utf16(enc: &'static Encoding) -> bool {
    enc == UTF_16LE || enc == UTF_16BE
}

/// Where bytes stop being valid text in their encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// The byte offset of the first malformed sequence (an unpaired surrogate, a trailing odd
    /// byte of UTF-16, an invalid UTF-8 sequence).
    pub offset: usize,
}

/// Decodes `bytes` (without a byte order mark) as `enc`, refusing malformed input.
pub(crate) fn decode<'a>(
    enc: &'static Encoding,
    bytes: &'a [u8],
) -> Result<Cow<'a, str>, Malformed> {
    if let Some(text) = enc.decode_without_bom_handling_and_without_replacement(bytes) {
        return Ok(text);
    }
    // Malformed: find where, for the error message.
    let mut decoder = enc.new_decoder_without_bom_handling();
    let cap = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len().saturating_mul(3));
    let mut out = String::with_capacity(cap);
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut out, true);
    Err(Malformed {
        offset: match result {
            DecoderResult::Malformed(bad, after) => {
                read.saturating_sub(bad as usize + after as usize)
            }
            _ => read,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn byte_order_marks_and_malformed_text() {
        assert_eq!(sniff_bom(b"\xEF\xBB\xBFkey"), (UTF_8, 3));
        assert_eq!(sniff_bom(b"\xFF\xFEk\0"), (UTF_16LE, 2));
        assert_eq!(sniff_bom(b"\xFE\xFF\0k"), (UTF_16BE, 2));
        assert_eq!(sniff_bom(b"key"), (UTF_8, 0));
        assert!(is_utf16(UTF_16BE) && !is_utf16(UTF_8));
        assert_eq!(
            decode(UTF_16LE, &utf16le("J\u{fc}rgen")).unwrap(),
            "J\u{fc}rgen"
        );
        // An unpaired surrogate at the third unit.
        let mut bad = utf16le("ab");
        bad.extend([0x00, 0xD8, b'x', 0]);
        assert_eq!(decode(UTF_16LE, &bad), Err(Malformed { offset: 4 }));
        // An odd trailing byte.
        let mut odd = utf16le("ab");
        odd.push(b'c');
        assert_eq!(decode(UTF_16LE, &odd), Err(Malformed { offset: 4 }));
        assert_eq!(decode(UTF_8, b"ok \xE9t\xE9"), Err(Malformed { offset: 3 }));
    }
}
