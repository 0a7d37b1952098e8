//! [`Secret`]: a password or client secret that never shows in a log, an error or a report.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::{Error, ErrorKind, Result};

/// The largest secret file read: passwords and client secrets are far smaller, and a path
/// given by mistake (a log, a device, a FIFO) is refused instead of read without end.
const MAX_SECRET_FILE_BYTES: u64 = 64 << 10;

/// A password or other secret. Its `Debug` output is redacted, and this crate never puts it
/// in an error, a log line or a report.
///
/// Read it from an environment variable or a file, never from a command line (where every
/// user of the machine can see it in the process list).
///
/// ```
/// use userphoto::Secret;
/// let s = Secret::new("Passw0rd!");
/// assert_eq!(format!("{s:?}"), "Secret(***)");
/// ```
#[derive(Clone)]
// Only the network backends (`ad`, `graph`) read the value; the offline library just carries it.
#[cfg_attr(not(any(feature = "ad", feature = "graph")), allow(dead_code))]
pub struct Secret(Arc<str>);

impl Secret {
    /// A secret from its text.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The value of the environment variable `var` ([`Config`](ErrorKind::Config) when it
    /// is unset, empty or not Unicode).
    pub fn from_env(var: &str) -> Result<Self> {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Self::new(v)),
            Ok(_) => Err(Error::new(
                ErrorKind::Config,
                format!("environment variable {var} is empty"),
            )),
            Err(std::env::VarError::NotPresent) => Err(Error::new(
                ErrorKind::Config,
                format!("the environment variable {var} is not set: set it for the account the tool runs as"),
            )),
            Err(e) => Err(Error::new(
                ErrorKind::Config,
                format!("environment variable {var}: {e}"),
            )),
        }
    }

    /// The content of `path`, without one trailing line break
    /// ([`Config`](ErrorKind::Config) when it cannot be read, is empty, is not UTF-8 or is
    /// larger than 64 KiB).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        let cannot = |why: String| {
            Error::new(
                ErrorKind::Config,
                format!("cannot read the secret file {}: {why}", p.display()),
            )
        };
        let bytes = match crate::bounded::read_file(p, MAX_SECRET_FILE_BYTES)
            .map_err(|e| cannot(e.to_string()))?
        {
            crate::bounded::Bounded::Read(b) => b,
            crate::bounded::Bounded::TooLarge(_) => {
                return Err(cannot(format!(
                    "larger than {MAX_SECRET_FILE_BYTES} bytes (not a password file?)"
                )))
            }
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| cannot("stream did not contain valid UTF-8".into()))?;
        let t = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        if t.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                format!("the secret file {} is empty", p.display()),
            ));
        }
        Ok(Self::new(t))
    }

    #[cfg(any(feature = "ad", feature = "graph", test))]
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_from_files_drop_one_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, "pa ss\n").unwrap();
        assert_eq!(Secret::from_file(&p).unwrap().expose(), "pa ss");
        std::fs::write(&p, "").unwrap();
        assert_eq!(Secret::from_file(&p).unwrap_err().kind(), ErrorKind::Config);
    }

    #[test]
    fn oversized_secret_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, vec![b'x'; MAX_SECRET_FILE_BYTES as usize + 1]).unwrap();
        let e = Secret::from_file(&p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("larger than 65536 bytes"), "{e}");
        std::fs::write(&p, vec![b'x'; MAX_SECRET_FILE_BYTES as usize]).unwrap();
        assert!(Secret::from_file(&p).is_ok());
    }
}
