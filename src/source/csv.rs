//! A CSV manifest: `key,path[,withheld]`, as spreadsheets save it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use super::{blocking_list, file_fingerprint, read_limited, PhotoRef, PhotoSource};
use crate::normalize::Limits;
use crate::{Error, ErrorKind, Result, UserKey};

/// The largest manifest read. The manifest is read whole and its rows are held while it is
/// listed, so memory grows with it (a line per user, some 50-100 bytes): 256 MiB is millions
/// of users, far beyond any directory this tool serves, while a file that size or larger
/// given as a manifest is much more likely a mistake (a photo archive, a log, a device)
/// than a list of people.
pub(crate) const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// The separators a manifest's header is tried with, in this order, when none is set.
const DETECTED: [u8; 3] = [b',', b';', b'\t'];

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
/// * The separator is found from the header line: `,`, `;` (what Excel writes in locales
///   whose decimal mark is a comma) or a tab (Excel's "Unicode text"), whichever makes a
///   header with a `key` and a `path` column; [`delimiter`](Self::delimiter) sets it
///   instead. Lines may end in CRLF or LF.
/// * The encoding is UTF-8, with or without the byte order mark that Excel's "CSV UTF-8"
///   writes, or UTF-16 with its byte order mark (Excel's "Unicode text"). A row that is not
///   valid text (an "ANSI" save with accented names) is an error item saying so.
/// * `withheld` is optional: `yes`, `true`, `1`, `y` or `x` mark a person who withdrew
///   consent (their `path` may be empty); empty, `no`, `false`, `0` or `n` do not; anything
///   else is an error item for that row.
/// * A row with an empty key or a missing file is an error item; the listing goes on.
/// * A key on several rows gives one [`Conflict`](ErrorKind::Conflict) error item.
/// * A manifest larger than 256 MiB is refused with a
///   [`LimitExceeded`](ErrorKind::LimitExceeded) error, without being read whole.
/// * A manifest that cannot be read at all (missing, unreadable, too large, or without a
///   `key` and a `path` column) is a single run-level error ([`Error::is_run_level`]): a sync stops
///   with that reason instead of seeing an empty source.
///
/// ```
/// use userphoto::source::CsvSource;
/// let src = CsvSource::new("people.csv").delimiter(b';');
/// # let _ = src;
/// ```
#[derive(Debug, Clone)]
pub struct CsvSource {
    manifest: PathBuf,
    delimiter: Option<u8>,
}

impl CsvSource {
    /// A source reading `manifest`, its separator found from the header.
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        Self {
            manifest: manifest.into(),
            delimiter: None,
        }
    }

    /// Reads fields separated by `delimiter` (an ASCII byte such as `b';'` or `b'\t'`)
    /// instead of finding the separator from the header.
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = Some(delimiter);
        self
    }

    /// Parses a separator as a user would name it: `,`, `;`, `tab` (or `\t`), `comma`,
    /// `semicolon`, or any one ASCII character other than a quote or a line break.
    /// Anything else is a [`Config`](ErrorKind::Config) error.
    ///
    /// ```
    /// use userphoto::source::CsvSource;
    /// assert_eq!(CsvSource::parse_delimiter("tab").unwrap(), b'\t');
    /// assert_eq!(CsvSource::parse_delimiter(";").unwrap(), b';');
    /// assert!(CsvSource::parse_delimiter("ab").is_err());
    /// ```
    pub fn parse_delimiter(name: &str) -> Result<u8> {
        let d = match name {
            "tab" | "\\t" | "\t" | "TAB" => b'\t',
            "comma" => b',',
            "semicolon" => b';',
            s if s.len() == 1 && s.is_ascii() => s.as_bytes()[0],
            _ => 0,
        };
        if d == 0 || matches!(d, b'"' | b'\n' | b'\r') || !(d == b'\t' || d.is_ascii_graphic()) {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "CSV delimiter {name:?}: expected `,`, `;`, `tab` or one ASCII character \
                     other than a quote"
                ),
            )
            .with_backend("csv"));
        }
        Ok(d)
    }

    fn err(kind: ErrorKind, msg: String) -> Error {
        Error::new(kind, msg)
            .with_backend("csv")
            .with_operation("list")
    }

    /// The manifest as UTF-8 text bytes: a UTF-8 byte order mark dropped, UTF-16 (with its
    /// byte order mark) turned into UTF-8. UTF-8 is not checked here: a row that is not
    /// valid text is an error item of its own. A manifest larger than
    /// [`MAX_MANIFEST_BYTES`] is refused without being read whole.
    fn read_text(&self) -> Result<Vec<u8>> {
        let path = self.manifest.display();
        let raw = match crate::bounded::read_file(&self.manifest, MAX_MANIFEST_BYTES) {
            Ok(crate::bounded::Bounded::Read(raw)) => raw,
            Ok(crate::bounded::Bounded::TooLarge(size)) => {
                let size = size.map_or_else(|| "larger".to_owned(), |n| format!("{n} bytes"));
                return Err(Self::err(
                    ErrorKind::LimitExceeded,
                    format!(
                        "{path} is {size}, above the manifest limit of {MAX_MANIFEST_BYTES} \
                         bytes (256 MiB)"
                    ),
                )
                .run_level());
            }
            Err(e) => {
                return Err(Self::err(ErrorKind::Io, format!("cannot read {path}: {e}"))
                    .with_source(e)
                    .run_level())
            }
        };
        let (enc, bom) = crate::text::sniff_bom(&raw);
        if !crate::text::is_utf16(enc) {
            let mut raw = raw;
            raw.drain(..bom);
            return Ok(raw);
        }
        match crate::text::decode(enc, &raw[bom..]) {
            Ok(text) => Ok(text.into_owned().into_bytes()),
            Err(bad) => Err(Self::err(
                ErrorKind::InvalidData,
                format!(
                    "{path}: not valid {} at byte {} (an unpaired surrogate or an odd \
                     trailing byte)",
                    enc.name(),
                    bad.offset + bom
                ),
            )
            .run_level()),
        }
    }

    /// The separator: the one set, or the first of `,` `;` tab whose split of the header
    /// names a key and a path column, or else the one the header holds most of.
    fn detect(&self, text: &[u8]) -> u8 {
        if let Some(d) = self.delimiter {
            return d;
        }
        let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
        let names_both = |d: u8| {
            let fields = header_fields(line, d);
            has(&fields, "key") && has(&fields, "path")
        };
        DETECTED
            .into_iter()
            .find(|&d| names_both(d))
            .unwrap_or_else(|| {
                DETECTED
                    .into_iter()
                    .max_by_key(|&d| (line.iter().filter(|&&b| b == d).count(), d == b','))
                    .unwrap_or(b',')
            })
    }

    fn scan(&self) -> Vec<Result<PhotoRef>> {
        let base = self
            .manifest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let text = match self.read_text() {
            Ok(t) => t,
            Err(e) => return vec![Err(e)],
        };
        let delimiter = self.detect(&text);
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .delimiter(delimiter)
            .from_reader(text.as_slice());
        let headers = match rdr.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                return vec![Err(Self::err(
                    ErrorKind::InvalidData,
                    format!("{}: bad header: {e}", self.manifest.display()),
                )
                .run_level())]
            }
        };
        let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let (Some(kc), Some(pc)) = (col("key"), col("path")) else {
            let how = match self.delimiter {
                Some(d) => format!("with the delimiter {:?}", char::from(d)),
                None => "separated by `,`, `;` or tab (or set the delimiter)".to_owned(),
            };
            return vec![Err(Self::err(
                ErrorKind::Config,
                format!(
                    "{}: the header must name a `key` and a `path` column {how} (found {:?})",
                    self.manifest.display(),
                    headers.iter().collect::<Vec<_>>()
                ),
            )
            .run_level())];
        };
        let wc = col("withheld");
        let mut out = Vec::new();
        let mut rows: BTreeMap<UserKey, Vec<(u64, PhotoRef)>> = BTreeMap::new();
        // The line an editor shows, counted from the record's byte offset: the csv crate's
        // own line count is one short for CRLF files (what Excel writes), as it ends a
        // record at the CR.
        let (mut seen_byte, mut seen_line) = (0usize, 1u64);
        let mut line_at = |byte: u64| {
            let mut byte = usize::try_from(byte).unwrap_or(usize::MAX).min(text.len());
            // A CRLF record "starts" at the LF that ends the line before it.
            while matches!(text.get(byte), Some(b'\r' | b'\n')) {
                byte += 1;
            }
            if byte >= seen_byte {
                seen_line += text[seen_byte..byte]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count() as u64;
                seen_byte = byte;
            }
            seen_line
        };
        let mut next_line = 2;
        for rec in rdr.records() {
            let line = match rec.as_ref().ok().and_then(|r| r.position()) {
                Some(p) => line_at(p.byte()),
                None => next_line,
            };
            next_line = line + 1;
            let where_ = format!("{}:{line}", self.manifest.display());
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    let hint = if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                        " (save the manifest as \"CSV UTF-8\")"
                    } else {
                        ""
                    };
                    out.push(Err(Self::err(
                        ErrorKind::InvalidData,
                        format!("{where_}: {e}{hint}"),
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
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        out.push(Err(Self::err(
                            ErrorKind::Io,
                            format!(
                                "{where_}: {} does not exist: check the path in the manifest \
                                 (relative paths are taken from the manifest's folder)",
                                full.display()
                            ),
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

/// The header line split by `delimiter` (quotes honoured), each name trimmed.
fn header_fields(line: &[u8], delimiter: u8) -> Vec<String> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(line)
        .records()
        .next()
        .and_then(|r| r.ok())
        .map(|r| r.iter().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn has(fields: &[String], name: &str) -> bool {
    fields.iter().any(|f| f.eq_ignore_ascii_case(name))
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
