//! A folder of photos named by user key.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use super::{blocking_list, file_fingerprint, read_limited, PhotoRef, PhotoSource};
use crate::normalize::{ImageFormat, Limits};
use crate::{Error, ErrorKind, Result, UserKey};

/// How a file name becomes a user key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum KeyRule {
    /// The file name without its extension (`jdoe.jpg` -> `jdoe`). The default.
    Stem,
    /// A regular expression matched against the file stem; the key is the capture group
    /// named `key`, or else group 1, or else the whole match. A stem that does not match
    /// is reported as an error item. Made with [`KeyRule::regex`] or [`KeyPattern::new`].
    Regex(KeyPattern),
    /// A template with one `{key}` placeholder matched against the stem, for example
    /// `photo_{key}` or `{key}-2024`. Made with [`KeyRule::template`].
    Template(KeyTemplate),
}

/// A checked template for [`KeyRule::Template`]: the text before and after its one `{key}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    template: String,
    at: usize,
}

impl KeyTemplate {
    /// Checks `template`: it must contain `{key}` exactly once, else a
    /// [`Config`](ErrorKind::Config) error.
    pub fn new(template: &str) -> Result<Self> {
        match template
            .match_indices("{key}")
            .map(|(i, _)| i)
            .collect::<Vec<_>>()[..]
        {
            [at] => Ok(Self {
                template: template.to_owned(),
                at,
            }),
            _ => Err(Error::new(
                ErrorKind::Config,
                format!("key template {template:?} must contain {{key}} once"),
            )),
        }
    }

    /// The template as it was given.
    pub fn as_str(&self) -> &str {
        &self.template
    }

    /// The key in `stem`, if the stem has the template's text around it.
    fn key_in<'a>(&self, stem: &'a str) -> Option<&'a str> {
        let (pre, post) = (&self.template[..self.at], &self.template[self.at + 5..]);
        stem.strip_prefix(pre)?.strip_suffix(post)
    }
}

/// A compiled regular expression for [`KeyRule::Regex`] (the `regex` crate's syntax), kept
/// behind this type so that the crate's public API does not name the `regex` crate.
#[derive(Debug, Clone)]
pub struct KeyPattern(regex::Regex);

impl KeyPattern {
    /// Compiles `pattern`; a bad pattern is a [`Config`](ErrorKind::Config) error.
    pub fn new(pattern: &str) -> Result<Self> {
        regex::Regex::new(pattern)
            .map(Self)
            .map_err(|e| Error::new(ErrorKind::Config, format!("bad key regex {pattern:?}: {e}")))
    }

    /// The pattern as it was given.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::str::FromStr for KeyPattern {
    type Err = Error;

    fn from_str(pattern: &str) -> Result<Self> {
        Self::new(pattern)
    }
}

impl KeyRule {
    /// A `Regex` rule; a bad pattern is a [`Config`](ErrorKind::Config) error.
    pub fn regex(pattern: &str) -> Result<Self> {
        KeyPattern::new(pattern).map(Self::Regex)
    }

    /// A `Template` rule; it must contain `{key}` exactly once.
    pub fn template(template: &str) -> Result<Self> {
        KeyTemplate::new(template).map(Self::Template)
    }

    fn extract(&self, stem: &str) -> Option<String> {
        match self {
            Self::Stem => Some(stem.to_owned()),
            Self::Regex(re) => {
                let c = re.0.captures(stem)?;
                c.name("key")
                    .or_else(|| c.get(1))
                    .or_else(|| c.get(0))
                    .map(|m| m.as_str().to_owned())
            }
            Self::Template(t) => t.key_in(stem).map(str::to_owned),
        }
        .filter(|k| !k.trim().is_empty())
    }
}

/// Photos in a folder, one file per person, named by key (`jdoe.jpg`, `JDOE.png`...).
///
/// * The format is detected from each file's first bytes, never from its extension; a file
///   that is not an image is reported as an error item (kind
///   [`InvalidPhoto`](ErrorKind::InvalidPhoto)) and the listing goes on. Hidden files
///   (starting with `.`) are skipped.
/// * Two files for one key (`jdoe.jpg` and `JDoe.png`) give one
///   [`Conflict`](ErrorKind::Conflict) error item naming both, and neither is used.
/// * The fingerprint is the file size and modification time.
/// * A folder that cannot be read at all (missing, not a folder) is a single run-level
///   error ([`Error::is_run_level`]); a sub-folder or file that cannot be read is an error
///   item and the listing goes on.
#[derive(Debug, Clone)]
pub struct FolderSource {
    root: PathBuf,
    recursive: bool,
    rule: KeyRule,
    lowercase: bool,
}

impl FolderSource {
    /// The photos directly in `root`, keyed by file stem.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            recursive: false,
            rule: KeyRule::Stem,
            lowercase: false,
        }
    }

    /// Also list sub-folders.
    pub fn recursive(mut self, yes: bool) -> Self {
        self.recursive = yes;
        self
    }

    /// How keys are extracted from file names.
    pub fn key_rule(mut self, rule: KeyRule) -> Self {
        self.rule = rule;
        self
    }

    /// Report keys in lower case (keys always compare case-insensitively; this only
    /// changes how they are spelled in plans and reports).
    pub fn lowercase_keys(mut self, yes: bool) -> Self {
        self.lowercase = yes;
        self
    }

    fn err(kind: ErrorKind, msg: String) -> Error {
        Error::new(kind, msg)
            .with_backend("folder")
            .with_operation("list")
    }

    /// The blocking walk: every candidate file, grouped by key.
    fn scan(&self) -> Vec<Result<PhotoRef>> {
        let mut files = Vec::new();
        let mut out = Vec::new();
        // The folder itself unreadable (missing, not a folder, no permission): nothing can
        // be listed, and an empty listing would look like a source with nobody in it.
        if let Err(e) = std::fs::read_dir(&self.root) {
            return vec![Err(Self::err(
                ErrorKind::Io,
                if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "the folder {} does not exist: check the path after folder:",
                        self.root.display()
                    )
                } else {
                    format!("cannot read the folder {}: {e}", self.root.display())
                },
            )
            .with_source(e)
            .run_level())];
        }
        for (dir, e) in walk(&self.root, self.recursive, &mut files) {
            // A sub-folder or entry that cannot be read: the rest is listed, and the
            // failure is a source failure (so leavers are not removed this run).
            out.push(Err(Self::err(
                ErrorKind::Io,
                format!("cannot read {}: {e}", dir.display()),
            )
            .with_source(e)));
        }
        files.sort();
        let mut by_key: BTreeMap<UserKey, Vec<(PathBuf, std::fs::Metadata)>> = BTreeMap::new();
        for path in files {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(raw) = self.rule.extract(&stem) else {
                out.push(Err(Self::err(
                    ErrorKind::InvalidData,
                    format!("{}: no key in the file name", path.display()),
                )));
                continue;
            };
            let key = UserKey::new(if self.lowercase {
                raw.to_lowercase()
            } else {
                raw
            });
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    out.push(Err(Self::err(
                        ErrorKind::Io,
                        format!("{}: {e}", path.display()),
                    )
                    .with_user(key)));
                    continue;
                }
            };
            // An empty file (a copy that failed, a placeholder) and a file that is not an
            // image (a document named like a person) are told apart: each has its own fix.
            if meta.len() == 0 {
                out.push(Err(Self::err(
                    ErrorKind::InvalidPhoto,
                    format!(
                        "{} is empty (0 bytes): replace it with the person's photo, or remove it",
                        path.display()
                    ),
                )
                .with_user(key)));
                continue;
            }
            if !is_image(&path) {
                out.push(Err(Self::err(
                    ErrorKind::InvalidPhoto,
                    format!(
                        "{} is not an image (JPEG, PNG, GIF, BMP, TIFF, WebP or HEIC, told from \
                         its first bytes): replace it with the person's photo, or move it out of \
                         the folder",
                        path.display()
                    ),
                )
                .with_user(key)));
                continue;
            }
            by_key.entry(key).or_default().push((path, meta));
        }
        for (key, mut found) in by_key {
            if found.len() > 1 {
                let names: Vec<String> =
                    found.iter().map(|(p, _)| p.display().to_string()).collect();
                out.push(Err(Self::err(
                    ErrorKind::Conflict,
                    format!("several photos for one key: {}", names.join(", ")),
                )
                .with_user(key)));
                continue;
            }
            let (path, meta) = found.remove(0);
            out.push(Ok(PhotoRef {
                key,
                fingerprint: file_fingerprint(&meta),
                location: path.display().to_string(),
                withheld: false,
            }));
        }
        out
    }
}

/// Collects the files below `dir`; returns what could not be read (the path and why),
/// without stopping at it.
fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Vec<(PathBuf, std::io::Error)> {
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push((dir.to_path_buf(), e));
            return errors;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                errors.push((dir.to_path_buf(), e));
                continue;
            }
        };
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let ft = match std::fs::metadata(&path) {
            Ok(m) => m.file_type(),
            Err(e) => {
                errors.push((path, e));
                continue;
            }
        };
        if ft.is_dir() {
            if recursive {
                errors.extend(walk(&path, true, out));
            }
        } else if ft.is_file() {
            out.push(path);
        }
    }
    errors
}

fn is_image(path: &Path) -> bool {
    let mut head = [0u8; 32];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    ImageFormat::detect(&head[..n]).is_some()
}

#[async_trait]
impl PhotoSource for FolderSource {
    fn name(&self) -> &str {
        "folder"
    }

    fn list(&self) -> BoxStream<'_, Result<PhotoRef>> {
        let this = self.clone();
        blocking_list("folder", move || this.scan())
    }

    async fn load(&self, photo: &PhotoRef, limits: &Limits) -> Result<Bytes> {
        read_limited(PathBuf::from(&photo.location), limits, "folder", &photo.key).await
    }
}
