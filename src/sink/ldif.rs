//! The offline LDIF sink: reads a directory export as a stream, writes a change file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read as _, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::{CurrentPhoto, DirectorySink, SinkCapabilities};
use crate::digest::{hex, sha256};
use crate::key::guid_from_bytes;
use crate::ldif::{write_modify, Encoding, Reader};
use crate::normalize::BuiltinProfile;
use crate::{Error, ErrorKind, MatchAttribute, Result, UserKey};

/// AD's `thumbnailPhoto` limit (`rangeUpper`, MS-ADA3 2.307).
const AD_MAX_BYTES: usize = 102_400;

/// Which file holds a photo's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    /// The export the sink was opened on.
    Export,
    /// The change file this sink writes (a photo it put this run).
    Changes,
}

/// A photo known by its hash and where its value line is, never by its bytes.
#[derive(Debug, Clone, Copy)]
struct Photo {
    sha256: [u8; 32],
    file: Which,
    /// The byte offset and number of the line the value starts on.
    offset: u64,
    line: usize,
}

#[derive(Debug)]
struct Entry {
    dn: Box<str>,
    /// The entry's first match-attribute value, as a key (GUIDs in their text form).
    key: Option<UserKey>,
    photo: Option<Photo>,
}

/// The change records written so far: appended to a spool file beside the change file as
/// they come (in whatever order the concurrent writes finish), then copied into the change
/// file in key order by [`LdifSink::finish`], so the same run gives the same file.
#[derive(Debug)]
struct Out {
    /// The spool; its path is where [`read_back`] finds a photo this sink wrote.
    spool: Spool,
    w: BufWriter<File>,
    bytes: u64,
    lines: usize,
    /// Per record written: the user key it was written for, and its byte range in the spool.
    records: Vec<Spooled>,
}

/// `<change file>.partial`: the records in the order they were written. Removed when the
/// sink is dropped; a process killed before that leaves it, with the records written until
/// then, for the operator to see (the next run with the same output starts it afresh).
#[derive(Debug)]
struct Spool {
    path: std::path::PathBuf,
}

impl Spool {
    fn path(&self) -> &Path {
        &self.path
    }

    fn reopen(&self) -> std::io::Result<File> {
        File::open(&self.path)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One change record in the spool.
#[derive(Debug)]
struct Spooled {
    key: UserKey,
    start: u64,
    len: u64,
}

/// What an LDIF export holds ([`LdifSink::summary`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LdifSummary {
    /// Entries (records with a DN) in the export.
    pub entries: usize,
    /// Entries with a value of the photo attribute.
    pub with_photos: usize,
    /// Entries without a value of the match attribute (no key can find them).
    pub without_key: usize,
    /// Keys that more than one entry has (never written: ambiguous).
    pub ambiguous_keys: usize,
    /// The photo attribute.
    pub attribute: String,
    /// The match attribute.
    pub match_attribute: String,
}

/// A directory known from an LDIF export, written through an LDIF change file.
///
/// For administrators whose change control forbids a tool holding write credentials: export
/// the users (`ldapsearch -E pr=1000/noprompt ... sAMAccountName thumbnailPhoto`, any of
/// `-L`, `-LL`, `-LLL` or none, or `ldifde -f users.ldif -r "(objectClass=user)" -l
/// sAMAccountName,thumbnailPhoto`, also with `-u`), run the sync against the export, review
/// the change file, apply it with `ldapmodify -f` or `ldifde -i`.
///
/// * The export is read once, as a stream: the sink keeps per entry its DN, its key, and
///   for a photo only its SHA-256 and where its value is in the file, so memory follows the
///   number of users, not the bytes of their photos.
/// * Keys resolve through the match attribute's values in the export (compared as
///   [`MatchAttribute::canonical`] says; binary `objectGUID` values are read as GUIDs). A key
///   on two entries is [`AmbiguousMatch`](ErrorKind::AmbiguousMatch), never written.
/// * [`current`](DirectorySink::current) answers with the SHA-256 of the photo in the
///   export (or of the one this sink wrote since), so unchanged users are skipped;
///   [`fetch`](DirectorySink::fetch) (backups before a replace) reads the old bytes again
///   from the file and checks them against that hash: an export changed since it was read
///   is a [`Conflict`](ErrorKind::Conflict), never a wrong backup.
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
    export: Arc<Path>,
    encoding: Encoding,
    out: Option<Arc<Mutex<Out>>>,
    out_path: Option<Arc<Path>>,
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
        let mut reader = Reader::new(
            BufReader::with_capacity(64 << 10, file),
            path.display().to_string(),
        );
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
            // Only the hash and the place of the photo stay; the record (and its bytes)
            // is dropped before the next one is read.
            let photo = rec.first(attribute).map(|a| Photo {
                sha256: sha256(&a.value),
                file: Which::Export,
                offset: a.offset,
                line: a.line,
            });
            entries.push(Entry {
                dn: rec.dn.into_boxed_str(),
                key,
                photo,
            });
        }
        entries.shrink_to_fit();
        Ok(Self {
            name: "ldif".into(),
            attribute: attribute.to_owned(),
            max_bytes: AD_MAX_BYTES,
            entries: Mutex::new(entries),
            index,
            matcher,
            export: Arc::from(path),
            encoding: reader.encoding(),
            out: None,
            out_path: None,
        })
    }

    /// Writes changes to `path` (created or truncated now, so a path that cannot be written
    /// fails here). The records are complete in `path` once [`finish`](Self::finish) (which
    /// the sync engine and [`BackupStore::restore`](crate::sync::BackupStore::restore) call)
    /// has returned: sorted by user key, whatever order the writes were made in. Until then
    /// they wait in `<path>.partial`, in the order they were written; the sink removes it
    /// when dropped, and a process killed before that leaves it behind with the writes made
    /// until then (the next run with the same output starts it afresh).
    pub fn with_output(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        let open_err =
            |e: std::io::Error| Error::from(e).with_backend("ldif").with_operation("open");
        File::create(p).map_err(open_err)?;
        let mut name = p.file_name().unwrap_or_default().to_owned();
        name.push(".partial");
        let spool = Spool {
            path: p.with_file_name(name),
        };
        let f = File::create(spool.path()).map_err(open_err)?;
        self.out = Some(Arc::new(Mutex::new(Out {
            spool,
            w: BufWriter::new(f),
            bytes: 0,
            lines: 0,
            records: Vec::new(),
        })));
        self.out_path = Some(Arc::from(p));
        Ok(self)
    }

    /// Another name than `ldif` (for logs, reports, the state store and backups), so two
    /// LDIF sinks in one run (two forests' exports) can be told apart.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Writes the change file: every record written so far, sorted by user key (a user's
    /// records in the order they were written), through a temporary file renamed over the
    /// change file, so it is whole or as it was. Calling it again rewrites it with the
    /// records written since. A sink without an output file has nothing to do.
    pub fn finish_blocking(&self) -> Result<()> {
        let (Some(out), Some(path)) = (&self.out, &self.out_path) else {
            return Ok(());
        };
        write_sorted(out, path, &self.name)
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

    /// How many entries of the export hold a photo (in the sink's photo attribute).
    pub fn photo_count(&self) -> usize {
        self.lock().iter().filter(|e| e.photo.is_some()).count()
    }

    /// What the export holds, for a preflight (`userphoto check`): entries, photos, entries
    /// without a match value and keys on several entries. Reading the export is what
    /// [`open`](Self::open) does; a file that cannot be read or parsed fails there, with the
    /// line.
    ///
    /// ```
    /// # fn f() -> userphoto::Result<()> {
    /// use userphoto::sink::LdifSink;
    /// let s = LdifSink::open("users.ldif", userphoto::MatchAttribute::SamAccountName)?.summary();
    /// println!("{} users, {} with photos", s.entries, s.with_photos);
    /// # Ok(()) }
    /// ```
    pub fn summary(&self) -> LdifSummary {
        let entries = self.lock();
        LdifSummary {
            entries: entries.len(),
            with_photos: entries.iter().filter(|e| e.photo.is_some()).count(),
            without_key: entries.iter().filter(|e| e.key.is_none()).count(),
            ambiguous_keys: self.index.values().filter(|v| v.len() > 1).count(),
            attribute: self.attribute.clone(),
            match_attribute: self.matcher.ldap_name().to_owned(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
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
                let entries = self.lock();
                let dns: Vec<&str> = many.iter().map(|&i| &*entries[i].dn).collect();
                Err(self.fail(
                    ErrorKind::AmbiguousMatch,
                    op,
                    key,
                    format!("{} entries match: {}", dns.len(), dns.join(" | ")),
                ))
            }
        }
    }

    /// Appends one record; returns where its value line is (for a replace).
    fn write(
        &self,
        op: &'static str,
        key: &UserKey,
        dn: &str,
        value: Option<&[u8]>,
    ) -> Result<Option<(u64, usize)>> {
        let Some(out) = &self.out else {
            return Err(self.fail(
                ErrorKind::Config,
                op,
                key,
                "this LDIF sink has no output file",
            ));
        };
        let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
        let (start, lines) = (o.bytes, o.lines);
        let written = write_modify(&mut o.w, dn, &self.attribute, value)
            // (flushed, so a read-back of this photo finds it in the spool)
            .and_then(|w| o.w.flush().map(|()| w))
            .map_err(|e| {
                self.fail(
                    ErrorKind::Io,
                    op,
                    key,
                    format!("cannot write the change file: {e}"),
                )
            })?;
        o.bytes += written.len;
        o.lines += written.lines;
        o.records.push(Spooled {
            key: key.clone(),
            start,
            len: written.len,
        });
        Ok(written
            .value_at
            .map(|(off, line)| (start + off, lines + line + 1)))
    }
}

/// Writes the change file from the spool: every record, sorted by user key (one user's in
/// the order they were written), through a temporary file renamed over `path`.
fn write_sorted(out: &Mutex<Out>, path: &Path, name: &str) -> Result<()> {
    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
    let err = |e: std::io::Error| {
        Error::new(
            ErrorKind::Io,
            format!("cannot write the change file {}: {e}", path.display()),
        )
        .with_backend(name.to_owned())
        .with_operation("finish")
    };
    o.w.flush().map_err(err)?;
    let mut order: Vec<usize> = (0..o.records.len()).collect();
    // Stable: one user's records keep the order they were written in.
    order.sort_by(|&a, &b| o.records[a].key.cmp(&o.records[b].key));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".userphoto-ldif-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(err)?;
    {
        let mut spool = BufReader::new(o.spool.reopen().map_err(err)?);
        let mut w = BufWriter::new(tmp.as_file_mut());
        for i in order {
            let r = &o.records[i];
            spool.seek(SeekFrom::Start(r.start)).map_err(err)?;
            let copied = std::io::copy(&mut (&mut spool).take(r.len), &mut w).map_err(err)?;
            if copied != r.len {
                return Err(err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the spool file is shorter than what was written to it",
                )));
            }
        }
        w.flush().map_err(err)?;
    }
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Reads the value at a remembered place again and checks it against its hash.
fn read_back(
    path: &Path,
    encoding: Encoding,
    attribute: &str,
    photo: Photo,
    dn: &str,
) -> Result<Bytes> {
    let what = match photo.file {
        Which::Export => "export",
        Which::Changes => "change file",
    };
    let changed = |why: String| {
        Error::new(
            ErrorKind::Conflict,
            format!(
                "the {what} {} changed since it was read ({why}; the photo of {dn} was at line {}): read it again (export again) and re-run",
                path.display(),
                photo.line
            ),
        )
    };
    let mut f = File::open(path).map_err(|e| Error::from(e).with_operation("fetch"))?;
    f.seek(SeekFrom::Start(photo.offset))
        .map_err(|e| Error::from(e).with_operation("fetch"))?;
    let mut r = Reader::resume(
        BufReader::new(f),
        path.display().to_string(),
        encoding,
        photo.offset,
        photo.line,
    );
    let attr = match r.attr_here() {
        Ok(Some(a)) => a,
        Ok(None) => return Err(changed("no value there".into())),
        Err(e) => return Err(changed(e.to_string())),
    };
    if !attr.name.eq_ignore_ascii_case(attribute) {
        return Err(changed(format!("`{}:` found there", attr.name)));
    }
    let sha = sha256(&attr.value);
    if sha != photo.sha256 {
        return Err(changed("another photo there".into()));
    }
    Ok(Bytes::from(attr.value))
}

#[async_trait]
impl DirectorySink for LdifSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::new(self.max_bytes, BuiltinProfile::AdThumbnail)
    }

    async fn current(&self, key: &UserKey) -> Result<Option<CurrentPhoto>> {
        let i = self.resolve("current", key)?;
        let entries = self.lock();
        Ok(entries[i]
            .photo
            .map(|p| CurrentPhoto::from_sha256(hex(&p.sha256))))
    }

    async fn entry_name(&self, key: &UserKey) -> Option<String> {
        let i = self.resolve("entry_name", key).ok()?;
        let entries = self.lock();
        Some(entries[i].dn.to_string())
    }

    async fn fetch(&self, key: &UserKey) -> Result<Option<Bytes>> {
        let i = self.resolve("fetch", key)?;
        let (photo, dn) = {
            let e = &self.lock()[i];
            (e.photo, e.dn.to_string())
        };
        let Some(photo) = photo else {
            return Ok(None);
        };
        let path = match photo.file {
            Which::Export => self.export.clone(),
            Which::Changes => match &self.out {
                Some(o) => Arc::from(o.lock().unwrap_or_else(|p| p.into_inner()).spool.path()),
                None => return Ok(None),
            },
        };
        let (encoding, attribute) = match photo.file {
            Which::Export => (self.encoding, self.attribute.clone()),
            Which::Changes => (Encoding::Utf8, self.attribute.clone()),
        };
        let r =
            tokio::task::spawn_blocking(move || read_back(&path, encoding, &attribute, photo, &dn))
                .await
                .map_err(|e| {
                    Error::new(ErrorKind::Other, format!("the read-back task failed: {e}"))
                })?;
        r.map(Some).map_err(|e| {
            e.with_backend(self.name.clone())
                .with_operation("fetch")
                .with_user(key.clone())
        })
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
        let dn = self.lock()[i].dn.to_string();
        let at = self.write("put", key, &dn, Some(jpeg))?;
        self.lock()[i].photo = at.map(|(offset, line)| Photo {
            sha256: sha256(jpeg),
            file: Which::Changes,
            offset,
            line,
        });
        Ok(None)
    }

    async fn delete(&self, key: &UserKey) -> Result<()> {
        let i = self.resolve("delete", key)?;
        let (dn, has) = {
            let e = &self.lock()[i];
            (e.dn.to_string(), e.photo.is_some())
        };
        if has {
            self.write("delete", key, &dn, None)?;
            self.lock()[i].photo = None;
        }
        Ok(())
    }

    async fn finish(&self) -> Result<()> {
        let (Some(out), Some(path)) = (self.out.clone(), self.out_path.clone()) else {
            return Ok(());
        };
        // Copying the spool is file I/O: on the blocking pool, not the async workers.
        let name = self.name.clone();
        tokio::task::spawn_blocking(move || write_sorted(&out, &path, &name))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    format!("the change-file task failed: {e}"),
                )
            })?
    }

    async fn users_with_photos(&self) -> Result<Vec<UserKey>> {
        let entries = self.lock();
        Ok(entries
            .iter()
            .filter(|e| e.photo.is_some())
            .filter_map(|e| e.key.clone())
            .collect())
    }
}
