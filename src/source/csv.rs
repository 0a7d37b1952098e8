//! A CSV manifest: `key,path[,withheld]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use super::{blocking_list, file_fingerprint, read_limited, PhotoRef, PhotoSource};
use crate::normalize::Limits;
use crate::{Error, ErrorKind, Result, UserKey};

/// Photos listed in a CSV manifest (RFC 4180: quoted fields, embedded commas, quotes and
/// line breaks), with a header row naming the columns:
///
/// ```text
/// key,path,withheld
/// jdoe,photos/jdoe.jpg,
/// "o'brien, ann",photos/ann.png,no
/// mleaver,,yes
/// ```
///
/// * `key` and `path` are required columns (any order, names case-insensitive); relative
///   paths are relative to the manifest's folder.
/// * `withheld` is optional: `yes`, `true`, `1`, `y` or `x` mark a person who withdrew
///   consent (their `path` may be empty); empty, `no`, `false`, `0` or `n` do not; anything
///   else is an error item for that row.
/// * A row with an empty key or a missing file is an error item; the listing goes on.
/// * A key on several rows gives one [`Conflict`](ErrorKind::Conflict) error item.
#[derive(Debug, Clone)]
pub struct CsvSource {
    manifest: PathBuf,
}

impl CsvSource {
    /// A source reading `manifest`.
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        Self {
            manifest: manifest.into(),
        }
    }

    fn err(kind: ErrorKind, msg: String) -> Error {
        Error::new(kind, msg)
            .with_backend("csv")
            .with_operation("list")
    }

    fn scan(&self) -> Vec<Result<PhotoRef>> {
        let base = self
            .manifest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut rdr = match csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_path(&self.manifest)
        {
            Ok(r) => r,
            Err(e) => {
                return vec![Err(Self::err(
                    ErrorKind::Io,
                    format!("cannot read {}: {e}", self.manifest.display()),
                )
                .with_source(e))]
            }
        };
        let headers = match rdr.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                return vec![Err(Self::err(
                    ErrorKind::InvalidData,
                    format!("{}: bad header: {e}", self.manifest.display()),
                ))]
            }
        };
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(name))
        };
        let (Some(kc), Some(pc)) = (col("key"), col("path")) else {
            return vec![Err(Self::err(
                ErrorKind::InvalidData,
                format!(
                    "{}: the header must name a `key` and a `path` column (found {:?})",
                    self.manifest.display(),
                    headers.iter().collect::<Vec<_>>()
                ),
            ))];
        };
        let wc = col("withheld");
        let mut out = Vec::new();
        let mut rows: BTreeMap<UserKey, Vec<(u64, PhotoRef)>> = BTreeMap::new();
        for (i, rec) in rdr.records().enumerate() {
            let line = rec
                .as_ref()
                .ok()
                .and_then(|r| r.position().map(|p| p.line()))
                .unwrap_or(i as u64 + 2);
            let where_ = format!("{}:{line}", self.manifest.display());
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    out.push(Err(Self::err(
                        ErrorKind::InvalidData,
                        format!("{where_}: {e}"),
                    )));
                    continue;
                }
            };
            let key = UserKey::new(rec.get(kc).unwrap_or(""));
            if key.is_empty() {
                out.push(Err(Self::err(
                    ErrorKind::InvalidData,
                    format!("{where_}: empty key"),
                )));
                continue;
            }
            let withheld = match wc
                .and_then(|c| rec.get(c))
                .unwrap_or("")
                .to_ascii_lowercase()
                .as_str()
            {
                "" | "no" | "false" | "0" | "n" => false,
                "yes" | "true" | "1" | "y" | "x" => true,
                other => {
                    out.push(Err(Self::err(
                        ErrorKind::InvalidData,
                        format!("{where_}: withheld must be yes or no, not {other:?}"),
                    )
                    .with_user(key)));
                    continue;
                }
            };
            let path = rec.get(pc).unwrap_or("");
            let r = if withheld {
                PhotoRef {
                    key: key.clone(),
                    fingerprint: "withheld".into(),
                    location: where_,
                    withheld: true,
                }
            } else {
                if path.is_empty() {
                    out.push(Err(Self::err(
                        ErrorKind::InvalidData,
                        format!("{where_}: empty path"),
                    )
                    .with_user(key)));
                    continue;
                }
                let full = base.join(path);
                let meta = match std::fs::metadata(&full) {
                    Ok(m) if m.is_file() => m,
                    Ok(_) => {
                        out.push(Err(Self::err(
                            ErrorKind::Io,
                            format!("{where_}: {} is not a file", full.display()),
                        )
                        .with_user(key)));
                        continue;
                    }
                    Err(e) => {
                        out.push(Err(Self::err(
                            ErrorKind::Io,
                            format!("{where_}: {}: {e}", full.display()),
                        )
                        .with_user(key)));
                        continue;
                    }
                };
                PhotoRef {
                    key: key.clone(),
                    fingerprint: file_fingerprint(&meta),
                    location: full.display().to_string(),
                    withheld: false,
                }
            };
            rows.entry(key).or_default().push((line, r));
        }
        for (key, mut v) in rows {
            if v.len() > 1 {
                let lines: Vec<String> = v.iter().map(|(l, _)| l.to_string()).collect();
                out.push(Err(Self::err(
                    ErrorKind::Conflict,
                    format!(
                        "{}: key on several rows (lines {})",
                        self.manifest.display(),
                        lines.join(", ")
                    ),
                )
                .with_user(key)));
            } else {
                out.push(Ok(v.remove(0).1));
            }
        }
        out
    }
}

#[async_trait]
impl PhotoSource for CsvSource {
    fn name(&self) -> &str {
        "csv"
    }

    fn list(&self) -> BoxStream<'_, Result<PhotoRef>> {
        let this = self.clone();
        blocking_list("csv", move || this.scan())
    }

    async fn load(&self, photo: &PhotoRef, limits: &Limits) -> Result<Bytes> {
        if photo.withheld {
            return Err(Error::new(ErrorKind::Config, "the photo is withheld")
                .with_backend("csv")
                .with_operation("load")
                .with_user(photo.key.clone()));
        }
        read_limited(PathBuf::from(&photo.location), limits, "csv", &photo.key).await
    }
}
