//! [`Secret`]: a password or client secret that never shows in a log, an error or a report.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::{Error, ErrorKind, Result};

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
            Err(e) => Err(Error::new(
                ErrorKind::Config,
                format!("environment variable {var}: {e}"),
            )),
        }
    }

    /// The content of `path`, without one trailing line break
    /// ([`Config`](ErrorKind::Config) when it cannot be read or is empty).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        let text = std::fs::read_to_string(p).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot read the secret file {}: {e}", p.display()),
            )
        })?;
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
        let p = std::env::temp_dir().join(format!("userphoto-secret-{}", std::process::id()));
        std::fs::write(&p, "pa ss\n").unwrap();
        assert_eq!(Secret::from_file(&p).unwrap().expose(), "pa ss");
        std::fs::write(&p, "").unwrap();
        assert_eq!(Secret::from_file(&p).unwrap_err().kind(), ErrorKind::Config);
        let _ = std::fs::remove_file(&p);
    }
}
