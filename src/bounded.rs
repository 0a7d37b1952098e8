//! Reads that stop at a size limit.
//!
//! Checking a file's size and then reading it whole is not a bound: the file can grow
//! between the two, and a FIFO or a device reports no size at all. Every read here is
//! itself limited (`Read::take` at the limit plus one byte, so going over is seen), and
//! the size the file reports is only a quick refusal before reading.

use std::io::Read;
use std::path::Path;

/// What a bounded read found.
#[derive(Debug)]
pub(crate) enum Bounded {
    /// The whole content, at most the limit.
    Read(Vec<u8>),
    /// More than the limit: the size the file reported when that was already too large,
    /// or `None` when the read itself went past the limit (the file grew, or is a FIFO or
    /// a device).
    TooLarge(Option<u64>),
}

/// Reads `path` whole when it holds at most `max` bytes.
pub(crate) fn read_file(path: &Path, max: u64) -> std::io::Result<Bounded> {
    let file = std::fs::File::open(path)?;
    let claimed = file.metadata()?.len();
    if claimed > max {
        return Ok(Bounded::TooLarge(Some(claimed)));
    }
    read(file, max, claimed)
}

/// Reads `input` to its end when it holds at most `max` bytes; `hint` sizes the buffer
/// (never beyond `max`).
pub(crate) fn read(input: impl Read, max: u64, hint: u64) -> std::io::Result<Bounded> {
    let mut buf = Vec::with_capacity(usize::try_from(hint.min(max)).unwrap_or(0));
    input.take(max.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Ok(Bounded::TooLarge(None));
    }
    Ok(Bounded::Read(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_one_byte_past_the_limit() {
        let data = [7u8; 10];
        assert!(matches!(read(&data[..], 10, 0).unwrap(), Bounded::Read(v) if v.len() == 10));
        assert!(matches!(
            read(&data[..], 9, 100).unwrap(),
            Bounded::TooLarge(None)
        ));
        // An endless input (a FIFO or /dev/zero) ends at the limit.
        assert!(matches!(
            read(std::io::repeat(0), 1 << 20, 0).unwrap(),
            Bounded::TooLarge(None)
        ));
    }

    #[test]
    fn files_larger_than_the_limit_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sparse");
        // A sparse file: its size is claimed, not written.
        std::fs::File::create(&p).unwrap().set_len(1 << 40).unwrap();
        assert!(
            matches!(read_file(&p, 1 << 20).unwrap(), Bounded::TooLarge(Some(n)) if n == 1 << 40)
        );
        std::fs::write(&p, b"abc").unwrap();
        assert!(matches!(read_file(&p, 3).unwrap(), Bounded::Read(v) if v == b"abc"));
    }
}
