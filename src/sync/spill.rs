//! Renditions made while planning and written while applying, kept out of memory.
//!
//! The plan stage normalizes every photo whose sink holds one already (to compare them), and
//! the apply stage writes those that differ. Keeping all their bytes in memory between the two
//! would make the run's memory grow with the photos (a first sync of 100,000 users whose
//! directory holds other photos); making them again at apply time would decode every such
//! photo twice. So the engine keeps the first renditions in memory, up to its rendition cache,
//! and appends the others to one temporary file, read back by offset when they are written
//! (a read of a few kilobytes from the page cache, against a decode of megabytes).
//!
//! The file is anonymous (unlinked at once on Unix, deleted on close on Windows: nothing is
//! left behind by a run that is killed) and holds only renditions, which are the photos the
//! run writes to the sinks anyway. A rendition read back is checked against the hash the plan
//! holds before it is written. When the file cannot be made or written (no temporary space),
//! the engine falls back to making the rendition again, as it did before.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Where a spilled rendition is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spilled {
    offset: u64,
    len: usize,
}

/// An append-only temporary file of renditions. Clones share the file.
#[derive(Debug, Clone)]
pub(crate) struct Spill {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    // The file, made on first use, and the end of what was written to it. A failed write
    // moves nothing: the next one starts at the same end.
    file: Mutex<Option<(File, u64)>>,
}

impl Spill {
    /// A spill that makes its file on first use.
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                file: Mutex::new(None),
            }),
        }
    }

    /// [`put`](Self::put) on the blocking pool (file I/O stays off the async workers).
    pub(crate) async fn put_blocking(&self, bytes: bytes::Bytes) -> Option<Spilled> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.put(&bytes))
            .await
            .ok()
            .flatten()
    }

    /// [`get`](Self::get) on the blocking pool, checked there against `sha256_hex`.
    pub(crate) async fn get_blocking(&self, at: Spilled, sha256_hex: String) -> Option<Bytes> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.get(at)
                .filter(|b| crate::digest::sha256_hex(b) == sha256_hex)
        })
        .await
        .ok()
        .flatten()
    }

    /// Appends `bytes`; `None` when the file cannot be made or written.
    pub(crate) fn put(&self, bytes: &[u8]) -> Option<Spilled> {
        let mut g = self.inner.file.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            g.replace((tempfile::tempfile().ok()?, 0));
        }
        let (file, end) = g.as_mut()?;
        let offset = *end;
        let res = file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| file.write_all(bytes));
        match res {
            Ok(()) => {
                *end = offset + bytes.len() as u64;
                Some(Spilled {
                    offset,
                    len: bytes.len(),
                })
            }
            Err(_) => None,
        }
    }

    /// Reads a rendition back; `None` when it cannot be read.
    pub(crate) fn get(&self, at: Spilled) -> Option<Bytes> {
        let mut g = self.inner.file.lock().unwrap_or_else(|p| p.into_inner());
        let (file, end) = g.as_mut()?;
        if at.offset.checked_add(at.len as u64)? > *end {
            return None;
        }
        let mut buf = vec![0u8; at.len];
        file.seek(SeekFrom::Start(at.offset)).ok()?;
        file.read_exact(&mut buf).ok()?;
        Some(Bytes::from(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_wrote_in_any_order() {
        let s = Spill::new();
        let a = s.put(b"first rendition").unwrap();
        let b = s.put(&[7u8; 10_000]).unwrap();
        let c = s.put(b"").unwrap();
        assert_eq!(s.get(b).unwrap().as_ref(), &[7u8; 10_000][..]);
        assert_eq!(s.get(a).unwrap().as_ref(), b"first rendition");
        assert_eq!(s.get(c).unwrap().as_ref(), b"");
        // A place past the end of what was written is refused, not read.
        let beyond = Spilled {
            offset: b.offset,
            len: 20_000,
        };
        assert!(s.get(beyond).is_none());
    }

    #[test]
    fn nothing_to_read_before_anything_was_written() {
        let s = Spill::new();
        assert!(s.get(Spilled { offset: 0, len: 1 }).is_none());
    }
}
