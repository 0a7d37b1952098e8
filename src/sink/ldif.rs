//! The offline LDIF sink: reads a directory export, writes a change file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use super::{CurrentPhoto, DirectorySink, SinkCapabilities};
use crate::ldif::{write_modify, Reader};
use crate::{Error, ErrorKind, MatchAttribute, Result, UserKey};

/// AD's `thumbnailPhoto` limit (`rangeUpper`, MS-ADA3 2.307).
const AD_MAX_BYTES: usize = 102_400;

#[derive(Debug)]
struct Entry {
    dn: String,
    /// The entry's first match-attribute value, as a key (GUIDs in their text form).
    key: Option<UserKey>,
    photo: Option<Bytes>,
}

/// A directory known from an LDIF export, written through an LDIF change file.
///
/// For administrators whose change control forbids a tool holding write credentials: export
/// the users (`ldapsearch -LLL ... sAMAccountName thumbnailPhoto` or
/// `ldifde -f users.ldif -r "(objectClass=user)" -l sAMAccountName,thumbnailPhoto`), run the
/// sync against the export, review the change file, apply it with `ldapmodify -f` or
/// `ldifde -i`.
///
/// * Keys resolve through the match attribute's values in the export (compared as
///   [`MatchAttribute::canonical`] says; binary `objectGUID` values are read as GUIDs). A key
///   on two entries is [`AmbiguousMatch`](ErrorKind::AmbiguousMatch), never written.
/// * [`current`](DirectorySink::current) returns the photo in the export (or the one this
///   sink wrote since), so unchanged users are skipped and backups keep the old bytes.
/// * [`put`](DirectorySink::put) appends a `changetype: modify` / `replace:` record;
///   [`delete`](DirectorySink::delete) appends a `delete:` record, or nothing when the entry
///   has no photo (so `ldapmodify` never fails on a missing attribute).
/// * DNs with commas, quotes or non-ASCII characters are kept exactly (non-ASCII ones are
///   written base64, as RFC 2849 requires).
#[derive(Debug)]
pub struct LdifSink {
    name: String,
    attribute: String,
    max_bytes: usize,
    entries: Mutex<Vec<Entry>>,
    index: HashMap<String, Vec<usize>>,
    matcher: MatchAttribute,
    out: Option<Mutex<BufWriter<File>>>,
    out_path: Option<PathBuf>,
}

fn guid_from_bytes(b: &[u8]) -> Option<String> {
    if b.len() != 16 {
        return None;
    }
    // objectGUID is stored in the Windows GUID layout: the first three fields little-endian.
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

impl LdifSink {
    /// Reads `export` (blocking), matching keys on `matcher` and reading photos from
    /// `thumbnailPhoto`. Without [`with_output`](Self::with_output) the sink is read-only:
    /// writes fail with [`Config`](ErrorKind::Config).
    pub fn open(export: impl AsRef<Path>, matcher: MatchAttribute) -> Result<Self> {
        Self::open_with_attribute(export, matcher, "thumbnailPhoto")
    }

    /// As [`open`](Self::open), with another photo attribute (`jpegPhoto`, `thumbnailLogo`).
    pub fn open_with_attribute(
        export: impl AsRef<Path>,
        matcher: MatchAttribute,
        attribute: &str,
    ) -> Result<Self> {
        let path = export.as_ref();
        let file = File::open(path)
            .map_err(|e| Error::from(e).with_backend("ldif").with_operation("open"))?;
        let mut reader = Reader::new(BufReader::new(file), path.display().to_string());
        let mut entries = Vec::new();
        let mut index: HashMap<String, Vec<usize>> = HashMap::new();
        let match_name = matcher.ldap_name().to_ascii_lowercase();
        while let Some(rec) = reader.next_record()? {
            let i = entries.len();
            let mut key = None;
            for v in rec.values(&match_name) {
                let canon = if matcher == MatchAttribute::ObjectGuid {
                    guid_from_bytes(v).or_else(|| {
                        std::str::from_utf8(v)
                            .ok()
                            .and_then(|s| matcher.canonical(s))
                    })
                } else {
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| matcher.canonical(s))
                };
                if let Some(c) = canon {
                    if key.is_none() {
                        key = Some(if matcher == MatchAttribute::ObjectGuid {
                            UserKey::new(&c)
                        } else {
                            UserKey::new(String::from_utf8_lossy(v))
                        });
                    }
                    let slot = index.entry(c).or_default();
                    if !slot.contains(&i) {
                        slot.push(i);
                    }
                }
            }
            let photo = rec.values(attribute).next().map(Bytes::copy_from_slice);
            entries.push(Entry {
                dn: rec.dn,
                key,
                photo,
            });
        }
        Ok(Self {
            name: "ldif".into(),
            attribute: attribute.to_owned(),
            max_bytes: AD_MAX_BYTES,
            entries: Mutex::new(entries),
            index,
            matcher,
            out: None,
            out_path: None,
        })
    }

    /// Writes changes to `path` (created or truncated now).
    pub fn with_output(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        let f = File::create(p)
            .map_err(|e| Error::from(e).with_backend("ldif").with_operation("open"))?;
        self.out = Some(Mutex::new(BufWriter::new(f)));
        self.out_path = Some(p.to_path_buf());
        Ok(self)
    }

    /// Another byte limit than AD's 102,400.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// How many entries the export holds.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether the export holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fail(
        &self,
        kind: ErrorKind,
        op: &'static str,
        key: &UserKey,
        msg: impl Into<String>,
    ) -> Error {
        Error::new(kind, msg)
            .with_backend(self.name.clone())
            .with_operation(op)
            .with_user(key.clone())
    }

    /// The entry index for a key, or UserNotFound / AmbiguousMatch.
    fn resolve(&self, op: &'static str, key: &UserKey) -> Result<usize> {
        let canon = self.matcher.canonical(key.as_str()).ok_or_else(|| {
            self.fail(
                ErrorKind::UserNotFound,
                op,
                key,
                format!("not a valid {} value", self.matcher),
            )
        })?;
        match self.index.get(&canon).map(Vec::as_slice) {
            None | Some([]) => Err(self.fail(
                ErrorKind::UserNotFound,
                op,
                key,
                format!("no entry with {}={}", self.matcher, key),
            )),
            Some([i]) => Ok(*i),
            Some(many) => {
                let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
                let dns: Vec<&str> = many.iter().map(|&i| entries[i].dn.as_str()).collect();
                Err(self.fail(
                    ErrorKind::AmbiguousMatch,
                    op,
                    key,
                    format!("{} entries match: {}", dns.len(), dns.join(" | ")),
                ))
            }
        }
    }

    fn write(&self, op: &'static str, key: &UserKey, dn: &str, value: Option<&[u8]>) -> Result<()> {
        let Some(out) = &self.out else {
            return Err(self.fail(
                ErrorKind::Config,
                op,
                key,
                "this LDIF sink has no output file",
            ));
        };
        let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
        write_modify(&mut *w, dn, &self.attribute, value)
            .and_then(|_| w.flush())
            .map_err(|e| {
                self.fail(
                    ErrorKind::Io,
                    op,
                    key,
                    format!("cannot write the change file: {e}"),
                )
            })
    }
}

#[async_trait]
impl DirectorySink for LdifSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::new(self.max_bytes, "ad-thumbnail")
    }

    async fn current(&self, key: &UserKey) -> Result<Option<CurrentPhoto>> {
        let i = self.resolve("current", key)?;
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        Ok(entries[i].photo.clone().map(CurrentPhoto::from_bytes))
    }

    async fn put(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>> {
        if jpeg.len() > self.max_bytes {
            return Err(self.fail(
                ErrorKind::PhotoTooLarge,
                "put",
                key,
                format!(
                    "{} bytes, above the limit of {}",
                    jpeg.len(),
                    self.max_bytes
                ),
            ));
        }
        let i = self.resolve("put", key)?;
        let dn = self.entries.lock().unwrap_or_else(|p| p.into_inner())[i]
            .dn
            .clone();
        self.write("put", key, &dn, Some(jpeg))?;
        self.entries.lock().unwrap_or_else(|p| p.into_inner())[i].photo = Some(jpeg.clone());
        Ok(None)
    }

    async fn delete(&self, key: &UserKey) -> Result<()> {
        let i = self.resolve("delete", key)?;
        let (dn, has) = {
            let e = &self.entries.lock().unwrap_or_else(|p| p.into_inner())[i];
            (e.dn.clone(), e.photo.is_some())
        };
        if has {
            self.write("delete", key, &dn, None)?;
            self.entries.lock().unwrap_or_else(|p| p.into_inner())[i].photo = None;
        }
        Ok(())
    }

    async fn users_with_photos(&self) -> Result<Vec<UserKey>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        Ok(entries
            .iter()
            .filter(|e| e.photo.is_some())
            .filter_map(|e| e.key.clone())
            .collect())
    }
}
