//! A folder of JPEG files, one per user: the photo export that badge systems and intranets
//! read.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{CurrentPhoto, DirectorySink, SinkCapabilities};
use crate::bounded::{self, Bounded};
use crate::digest::{hex, sha256_hex};
use crate::normalize::BuiltinProfile;
use crate::{Error, ErrorKind, Result, UserKey};

/// The byte limit unless [`FolderSink::with_max_bytes`] sets another: Graph's (4,000,000),
/// as the folder's default profile is [`BuiltinProfile::Graph`].
const DEFAULT_MAX_BYTES: usize = 4_000_000;

/// The longest key, in bytes of UTF-8, that becomes a file name: with `.jpg` it stays well
/// under the 255 bytes (or UTF-16 units) that file systems allow in one name.
pub const FOLDER_MAX_KEY_BYTES: usize = 200;

/// The manifest's file name in the folder.
const MANIFEST: &str = "manifest.csv";

/// The largest file [`FolderSink`] reads whole into memory (for a backup before a replace).
const FETCH_LIMIT: u64 = 64 << 20;

/// Characters no key may hold: path separators, and what Windows refuses in a file name.
const FORBIDDEN: [char; 9] = ['/', '\\', ':', '*', '?', '"', '<', '>', '|'];

/// Why `key` cannot name a file in the folder, or `None` when it can. The rules are listed
/// on [`FolderSink`].
fn unsafe_reason(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("it is empty".into());
    }
    if key.len() > FOLDER_MAX_KEY_BYTES {
        return Some(format!(
            "it is {} bytes long, above {FOLDER_MAX_KEY_BYTES}",
            key.len()
        ));
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Some(format!(
            "it holds the control character U+{:04X}",
            u32::from(c)
        ));
    }
    if let Some(c) = key.chars().find(|c| FORBIDDEN.contains(c)) {
        return Some(format!(
            "it holds {c:?} (a path separator, or a character Windows refuses in file names)"
        ));
    }
    if key.starts_with('.') {
        return Some("it starts with a dot (`.`, `..`, a hidden file)".into());
    }
    if key.starts_with(char::is_whitespace) || key.ends_with(char::is_whitespace) {
        return Some("it starts or ends with white space".into());
    }
    if key.ends_with('.') {
        return Some("it ends with a dot, which Windows drops".into());
    }
    // Windows opens the device whatever the extension: `CON.jpg`, `nul.x.jpg`, `COM1 .jpg`.
    let base = key.split('.').next().unwrap_or(key).trim_end();
    if is_reserved_device(base) {
        return Some(format!("`{base}` is a reserved device name on Windows"));
    }
    None
}

/// Whether `base` (a name before its first dot) is one of Windows' device names, in any case.
fn is_reserved_device(base: &str) -> bool {
    let upper = base.to_ascii_uppercase();
    if ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"].contains(&upper.as_str()) {
        return true;
    }
    let Some(rest) = upper
        .strip_prefix("COM")
        .or_else(|| upper.strip_prefix("LPT"))
    else {
        return false;
    };
    let mut chars = rest.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if c.is_ascii_digit() || "¹²³".contains(c))
}

/// What the sink last saw of a file: its size and time, and the SHA-256 of its content then.
#[derive(Debug, Clone)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
    sha256: String,
}

impl Seen {
    /// Whether `meta` still describes the file that was hashed.
    fn matches(&self, meta: &Metadata) -> bool {
        self.len == meta.len() && self.modified.is_some() && self.modified == meta.modified().ok()
    }
}

/// The files of one case-folded key.
#[derive(Debug)]
enum Slot {
    /// One file: its name without `.jpg`, as it is spelt on disk.
    One { stem: String, seen: Option<Seen> },
    /// Several files whose names differ only in case (on a case-sensitive file system):
    /// which one is the user's photo is not known, so none is read or written.
    Clash(Vec<String>),
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    writable: bool,
    /// Per case-folded key, the file(s) found when the sink was made, kept up to date with
    /// its own writes: a small record per user, never the photos.
    index: Mutex<HashMap<String, Slot>>,
}

impl Inner {
    fn index(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, stem: &str) -> PathBuf {
        self.dir.join(format!("{stem}.jpg"))
    }

    /// Remembers that `stem.jpg` holds a photo (with what was seen of it, if anything).
    fn found(&self, stem: &str, seen: Option<Seen>) {
        let folded = UserKey::new(stem).folded().to_owned();
        self.index().insert(
            folded,
            Slot::One {
                stem: stem.to_owned(),
                seen,
            },
        );
    }

    /// Forgets the file of `stem`.
    fn gone(&self, stem: &str) {
        let folded = UserKey::new(stem).folded().to_owned();
        self.index().remove(&folded);
    }

    /// The SHA-256 of `stem.jpg` known for these metadata, if it was seen since it changed.
    fn cached(&self, stem: &str, meta: &Metadata) -> Option<String> {
        match self.index().get(UserKey::new(stem).folded()) {
            Some(Slot::One {
                stem: s,
                seen: Some(seen),
            }) if s == stem && seen.matches(meta) => Some(seen.sha256.clone()),
            _ => None,
        }
    }
}

/// The `.jpg` files of `dir` whose names are safe keys, regular files only (no symbolic
/// links, folders or devices): `(stem, metadata)`. A missing folder has none.
fn scan(dir: &Path) -> std::io::Result<Vec<(String, Metadata)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        // `file_type` does not follow a symbolic link.
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".jpg")) else {
            continue;
        };
        if unsafe_reason(stem).is_some() {
            continue;
        }
        out.push((stem.to_owned(), entry.metadata()?));
    }
    Ok(out)
}

/// The SHA-256 (hex) of a file's content, read as a stream: memory stays small whatever its
/// size.
fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// A temporary file in `dir` for content that is renamed into place when complete, readable
/// as a file made with `File::create` would be (not only by its owner).
fn temp_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(".userphoto-folder-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    b.tempfile_in(dir)
}

/// Makes the renames in `dir` durable (on Unix; elsewhere the rename is what there is).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// One manifest row.
#[derive(Debug, serde::Serialize)]
struct Row<'a> {
    key: &'a str,
    file: String,
    sha256: String,
    updated: String,
}

/// A folder of photos, one JPEG per user: `DIR/<key>.jpg`, with a manifest
/// (`DIR/manifest.csv`) that says what each file holds.
///
/// With a Graph or LDAP source this is the photo export that badge systems, intranets and
/// print shops take; its default profile is [`BuiltinProfile::Graph`] (648x648) and its byte
/// limit Graph's 4,000,000.
///
/// ```
/// use userphoto::sink::{DirectorySink, FolderSink};
/// use userphoto::UserKey;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let sink = FolderSink::new(dir.path().join("photos"))?;
/// let jpeg = bytes::Bytes::from(userphoto::normalize::testimage::gradient_jpeg(64, 64));
/// sink.put(&UserKey::new("alice"), &jpeg).await?;
/// assert_eq!(std::fs::read(dir.path().join("photos/alice.jpg")).unwrap(), jpeg);
/// assert!(sink.current(&UserKey::new("bob")).await?.is_none());
/// // A key that is not a safe file name is refused for that user; nothing is written.
/// assert!(sink.put(&UserKey::new("../evil"), &jpeg).await.is_err());
/// sink.finish().await?; // writes photos/manifest.csv
/// # Ok::<(), userphoto::Error>(()) }).unwrap();
/// ```
///
/// # Users
///
/// A folder has no list of users: every key that is a safe file name (below) names a user,
/// who has a photo when the file exists and none otherwise, so
/// [`current`](DirectorySink::current) never answers
/// [`UserNotFound`](ErrorKind::UserNotFound).
///
/// # File names
///
/// The file of a key is `<key>.jpg`, the key as given. A key is a safe file name, on Linux,
/// macOS and Windows alike, when it
///
/// * is not empty and has at most [`FOLDER_MAX_KEY_BYTES`] bytes of UTF-8;
/// * holds no `/`, `\`, NUL or other control character, and none of `: * ? " < > |`;
/// * does not start with a dot (no `.`, `..` or hidden files), does not start or end with
///   white space, and does not end with a dot;
/// * is not a Windows device name (`CON`, `PRN`, `AUX`, `NUL`, `CONIN$`, `CONOUT$`, `COM0`
///   to `COM9`, `LPT0` to `LPT9`, in any case, also before a dot: `con.x`).
///
/// Any other key is refused for that user with [`InvalidData`](ErrorKind::InvalidData) (not
/// retryable, never run-level) by every call, before anything is read or written, so no path
/// outside the folder is ever formed.
///
/// # Case
///
/// Keys compare case-insensitively ([`UserKey`]), and so do the files: `ALICE` finds
/// `alice.jpg`, and a put for `ALICE` replaces `alice.jpg` under its existing name (a
/// user's file keeps the spelling it was first written with). Two files that differ only in
/// case (`Alice.jpg` and `alice.jpg`, possible on a case-sensitive file system) make that
/// key [`AmbiguousMatch`](ErrorKind::AmbiguousMatch): neither is read, replaced or removed
/// until one of them is moved away.
///
/// # Files
///
/// * The folder is listed once, when the sink is made; files that other programs add during
///   the run are found by their exact name only.
/// * [`put`](DirectorySink::put) writes a temporary file in the folder, flushes it to disk
///   and renames it over `<key>.jpg`: a reader sees the old photo or the new one, never
///   part of one. Only regular files are replaced or removed: a folder or a symbolic link
///   named `<key>.jpg` is refused ([`InvalidData`](ErrorKind::InvalidData)).
/// * [`current`](DirectorySink::current) answers with the SHA-256 of the file, read as a
///   stream (memory does not grow with the photos); [`fetch`](DirectorySink::fetch) reads
///   the bytes (for backups), up to 64 MiB.
/// * [`delete`](DirectorySink::delete) removes the file; [`users_with_photos`] lists the
///   keys of the `.jpg` files, so leavers can be found and removed.
/// * [`finish`](DirectorySink::finish) (the sync engine calls it after applying) writes
///   `manifest.csv` from the files present: `key,file,sha256,updated`, one row per photo
///   sorted by key, `updated` the file's modification time (RFC 3339, UTC). It is written
///   through a temporary file and a rename, and only when its content changes.
///
/// [`users_with_photos`]: DirectorySink::users_with_photos
#[derive(Debug)]
pub struct FolderSink {
    name: String,
    max_bytes: usize,
    inner: Arc<Inner>,
}

impl FolderSink {
    /// A sink writing to `dir`, which is created (with its parents) when missing; the
    /// folder's `.jpg` files are listed now. A path that is not a folder or cannot be
    /// created or listed fails with [`Io`](ErrorKind::Io).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::from(e)
                .with_backend("folder")
                .with_operation("open")
                .run_level()
        })?;
        Self::open(dir, true)
    }

    /// A sink that reads `dir` and never writes (plans, dry runs, checks): a missing folder
    /// reads as one without photos, and [`put`](DirectorySink::put) and
    /// [`delete`](DirectorySink::delete) fail with [`Config`](ErrorKind::Config).
    pub fn read_only(dir: impl Into<PathBuf>) -> Result<Self> {
        Self::open(dir.into(), false)
    }

    fn open(dir: PathBuf, writable: bool) -> Result<Self> {
        let open_err = |e: std::io::Error| {
            Error::new(
                ErrorKind::Io,
                format!("cannot list the folder {}: {e}", dir.display()),
            )
            .with_backend("folder")
            .with_operation("open")
            .run_level()
        };
        if let Ok(meta) = std::fs::metadata(&dir) {
            if !meta.is_dir() {
                return Err(open_err(std::io::Error::other("not a folder")));
            }
        }
        let mut index: HashMap<String, Slot> = HashMap::new();
        for (stem, _) in scan(&dir).map_err(open_err)? {
            let folded = UserKey::new(&stem).folded().to_owned();
            match index.remove(&folded) {
                None => {
                    index.insert(folded, Slot::One { stem, seen: None });
                }
                Some(Slot::One { stem: first, .. }) => {
                    index.insert(folded, Slot::Clash(vec![first, stem]));
                }
                Some(Slot::Clash(mut all)) => {
                    all.push(stem);
                    index.insert(folded, Slot::Clash(all));
                }
            }
        }
        Ok(Self {
            name: "folder".into(),
            max_bytes: DEFAULT_MAX_BYTES,
            inner: Arc::new(Inner {
                dir,
                writable,
                index: Mutex::new(index),
            }),
        })
    }

    /// Another name than `folder` (for logs, reports, the state store and backups), so two
    /// folder sinks in one run can be told apart.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Another byte limit than 4,000,000: a larger photo fails with
    /// [`PhotoTooLarge`](ErrorKind::PhotoTooLarge) and writes nothing.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// How many users have a photo in the folder, as far as the sink knows (the files found
    /// when it was made, with its own writes since).
    pub fn photo_count(&self) -> usize {
        self.inner
            .index()
            .values()
            .map(|s| match s {
                Slot::One { .. } => 1,
                Slot::Clash(all) => all.len(),
            })
            .sum()
    }

    /// Whether `key` can name a file in a folder sink (the rules are listed on
    /// [`FolderSink`]).
    pub fn is_safe_key(key: &str) -> bool {
        unsafe_reason(key).is_none()
    }

    fn fail(&self, kind: ErrorKind, op: &'static str, key: &UserKey, msg: String) -> Error {
        fail(&self.name, kind, op, key, msg)
    }

    /// The file name (without `.jpg`) of a key: its existing file's, or the key's own; an
    /// unsafe key or one with several files is the user's error.
    fn locate(&self, op: &'static str, key: &UserKey) -> Result<String> {
        if let Some(why) = unsafe_reason(key.as_str()) {
            return Err(self.fail(
                ErrorKind::InvalidData,
                op,
                key,
                format!("`{key}` is not a safe file name: {why}; nothing is read or written for this user"),
            ));
        }
        match self.inner.index().get(key.folded()) {
            Some(Slot::One { stem, .. }) => Ok(stem.clone()),
            Some(Slot::Clash(all)) => Err(self.fail(
                ErrorKind::AmbiguousMatch,
                op,
                key,
                format!(
                    "{} files differ only in case ({}): move all but one away",
                    all.len(),
                    all.iter()
                        .map(|s| format!("{s}.jpg"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            None => Ok(key.as_str().to_owned()),
        }
    }

    fn writable(&self, op: &'static str, key: &UserKey) -> Result<()> {
        if self.inner.writable {
            Ok(())
        } else {
            Err(self.fail(
                ErrorKind::Config,
                op,
                key,
                format!(
                    "the folder sink on {} was opened read-only",
                    self.inner.dir.display()
                ),
            ))
        }
    }

    /// Runs file I/O on the blocking pool, not on the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        key: &UserKey,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(f).await.map_err(|e| {
            self.fail(
                ErrorKind::Other,
                op,
                key,
                format!("the file task failed: {e}"),
            )
        })?
    }

    /// Writes the manifest (blocking), as [`finish`](DirectorySink::finish) does: see
    /// [`FolderSink`]. A read-only sink writes nothing.
    pub fn finish_blocking(&self) -> Result<()> {
        finish(&self.inner, &self.name)
    }
}

/// Writes the manifest of a writable sink.
fn finish(inner: &Inner, name: &str) -> Result<()> {
    if !inner.writable {
        return Ok(());
    }
    write_manifest(inner).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot write {}: {e}", inner.dir.join(MANIFEST).display()),
        )
        .with_backend(name.to_owned())
        .with_operation("finish")
    })
}

fn fail(name: &str, kind: ErrorKind, op: &'static str, key: &UserKey, msg: String) -> Error {
    Error::new(kind, msg)
        .with_backend(name.to_owned())
        .with_operation(op)
        .with_user(key.clone())
}

/// What is at `path`: `None` when nothing, the metadata of a regular file, else the user's
/// [`InvalidData`](ErrorKind::InvalidData) (a folder, a symbolic link, a device).
fn regular_file(path: &Path) -> std::result::Result<Option<Metadata>, String> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => Ok(Some(m)),
        Ok(_) => Err(format!(
            "{} is not a regular file (a folder, a link or a device): it is left alone",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes `manifest.csv` from the photos in the folder, unless it already says the same.
fn write_manifest(inner: &Inner) -> std::io::Result<()> {
    let mut files = scan(&inner.dir)?;
    files.sort_by(|(a, _), (b, _)| {
        UserKey::new(a)
            .folded()
            .cmp(UserKey::new(b).folded())
            .then_with(|| a.cmp(b))
    });
    let mut w = csv::Writer::from_writer(Vec::new());
    for (stem, meta) in &files {
        let path = inner.path(stem);
        let sha256 = match inner.cached(stem, meta) {
            Some(s) => s,
            None => match hash_file(&path) {
                Ok(s) => {
                    // (Only a photo the index already knows keeps what was seen of it.)
                    if let Some(Slot::One { stem: known, seen }) =
                        inner.index().get_mut(UserKey::new(stem).folded())
                    {
                        if known == stem {
                            *seen = Some(Seen {
                                len: meta.len(),
                                modified: meta.modified().ok(),
                                sha256: s.clone(),
                            });
                        }
                    }
                    s
                }
                // Removed since it was listed: not in the folder, not in the manifest.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            },
        };
        let updated = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| crate::clock::rfc3339(d.as_secs()))
            .unwrap_or_default();
        w.serialize(Row {
            key: stem,
            file: format!("{stem}.jpg"),
            sha256,
            updated,
        })
        .map_err(std::io::Error::other)?;
    }
    if files.is_empty() {
        w.write_record(["key", "file", "sha256", "updated"])
            .map_err(std::io::Error::other)?;
    }
    let text = w
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let target = inner.dir.join(MANIFEST);
    if let Ok(Bounded::Read(old)) = bounded::read_file(&target, text.len() as u64) {
        if old == text {
            return Ok(());
        }
    }
    let mut tmp = temp_in(&inner.dir)?;
    tmp.write_all(&text)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    sync_dir(&inner.dir)
}

#[async_trait]
impl DirectorySink for FolderSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::new(self.max_bytes, BuiltinProfile::Graph)
    }

    async fn current(&self, key: &UserKey) -> Result<Option<CurrentPhoto>> {
        let stem = self.locate("current", key)?;
        let (inner, name, k) = (self.inner.clone(), self.name.clone(), key.clone());
        self.blocking("current", key, move || {
            let path = inner.path(&stem);
            let user = |kind, msg| fail(&name, kind, "current", &k, msg);
            let Some(meta) = regular_file(&path).map_err(|m| user(ErrorKind::InvalidData, m))?
            else {
                inner.gone(&stem);
                return Ok(None);
            };
            if let Some(sha) = inner.cached(&stem, &meta) {
                return Ok(Some(CurrentPhoto::from_sha256(sha)));
            }
            let sha = match hash_file(&path) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    inner.gone(&stem);
                    return Ok(None);
                }
                Err(e) => {
                    return Err(user(
                        ErrorKind::Io,
                        format!("cannot read {}: {e}", path.display()),
                    ))
                }
            };
            inner.found(
                &stem,
                Some(Seen {
                    len: meta.len(),
                    modified: meta.modified().ok(),
                    sha256: sha.clone(),
                }),
            );
            Ok(Some(CurrentPhoto::from_sha256(sha)))
        })
        .await
    }

    async fn fetch(&self, key: &UserKey) -> Result<Option<Bytes>> {
        let stem = self.locate("fetch", key)?;
        let (inner, name, k) = (self.inner.clone(), self.name.clone(), key.clone());
        self.blocking("fetch", key, move || {
            let path = inner.path(&stem);
            let user = |kind, msg| fail(&name, kind, "fetch", &k, msg);
            if regular_file(&path)
                .map_err(|m| user(ErrorKind::InvalidData, m))?
                .is_none()
            {
                return Ok(None);
            }
            match bounded::read_file(&path, FETCH_LIMIT) {
                Ok(Bounded::Read(v)) => Ok(Some(Bytes::from(v))),
                Ok(Bounded::TooLarge(_)) => Err(user(
                    ErrorKind::LimitExceeded,
                    format!(
                        "{} is larger than {} MiB: not a photo to keep a backup of",
                        path.display(),
                        FETCH_LIMIT >> 20
                    ),
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(user(
                    ErrorKind::Io,
                    format!("cannot read {}: {e}", path.display()),
                )),
            }
        })
        .await
    }

    async fn put(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>> {
        self.writable("put", key)?;
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
        let stem = self.locate("put", key)?;
        let (inner, name, k) = (self.inner.clone(), self.name.clone(), key.clone());
        let jpeg = jpeg.clone();
        self.blocking("put", key, move || {
            let path = inner.path(&stem);
            let user = |kind, msg| fail(&name, kind, "put", &k, msg);
            let io = |e: std::io::Error| {
                user(
                    ErrorKind::Io,
                    format!("cannot write {}: {e}", path.display()),
                )
            };
            regular_file(&path).map_err(|m| user(ErrorKind::InvalidData, m))?;
            let mut tmp = temp_in(&inner.dir).map_err(io)?;
            tmp.write_all(&jpeg).map_err(io)?;
            tmp.as_file().sync_all().map_err(io)?;
            // (A temporary file that is not persisted is removed when dropped.)
            tmp.persist(&path).map_err(|e| io(e.error))?;
            let meta = std::fs::metadata(&path).ok();
            inner.found(
                &stem,
                meta.map(|m| Seen {
                    len: m.len(),
                    modified: m.modified().ok(),
                    sha256: sha256_hex(&jpeg),
                }),
            );
            Ok(None)
        })
        .await
    }

    async fn delete(&self, key: &UserKey) -> Result<()> {
        self.writable("delete", key)?;
        let stem = self.locate("delete", key)?;
        let (inner, name, k) = (self.inner.clone(), self.name.clone(), key.clone());
        self.blocking("delete", key, move || {
            let path = inner.path(&stem);
            let user = |kind, msg| fail(&name, kind, "delete", &k, msg);
            if regular_file(&path)
                .map_err(|m| user(ErrorKind::InvalidData, m))?
                .is_some()
            {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(user(
                            ErrorKind::Io,
                            format!("cannot remove {}: {e}", path.display()),
                        ))
                    }
                }
            }
            inner.gone(&stem);
            Ok(())
        })
        .await
    }

    async fn users_with_photos(&self) -> Result<Vec<UserKey>> {
        let mut keys: Vec<UserKey> = self
            .inner
            .index()
            .values()
            .map(|s| match s {
                Slot::One { stem, .. } => UserKey::new(stem),
                // Listed once: a leaver's clash then fails as AmbiguousMatch, visibly.
                Slot::Clash(all) => UserKey::new(&all[0]),
            })
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn finish(&self) -> Result<()> {
        let (inner, name) = (self.inner.clone(), self.name.clone());
        tokio::task::spawn_blocking(move || finish(&inner, &name))
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Other, format!("the manifest task failed: {e}"))
                    .with_backend(self.name.clone())
                    .with_operation("finish")
            })?
    }

    async fn entry_name(&self, key: &UserKey) -> Option<String> {
        self.locate("entry_name", key)
            .ok()
            .map(|stem| format!("{stem}.jpg"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_keys_are_ordinary_names() {
        for k in [
            "alice",
            "j.doe",
            "jdoe@contoso.com",
            "José Núñez",
            "x-1_2",
            "console",
            "com10",
            "lpt",
            "nul-user",
            "auxiliary.x",
            &"a".repeat(FOLDER_MAX_KEY_BYTES),
        ] {
            assert!(unsafe_reason(k).is_none(), "{k:?}: {:?}", unsafe_reason(k));
        }
    }

    #[test]
    fn unsafe_keys_are_refused_with_a_reason() {
        for (k, why) in [
            ("", "empty"),
            (".", "dot"),
            ("..", "dot"),
            ("../evil", "'/'"),
            ("a/b", "'/'"),
            ("a\\b", "'\\\\'"),
            ("a\0b", "U+0000"),
            ("a\nb", "U+000A"),
            ("a\u{7f}", "U+007F"),
            ("C:evil", "':'"),
            ("a*", "'*'"),
            ("what?", "'?'"),
            ("a\"b", "'\"'"),
            ("<a>", "'<'"),
            ("a|b", "'|'"),
            (".hidden", "dot"),
            (" alice", "white space"),
            ("alice ", "white space"),
            ("alice.", "ends with a dot"),
            ("CON", "device"),
            ("con", "device"),
            ("Nul.txt", "device"),
            ("aux .x", "device"),
            ("COM1", "device"),
            ("lpt9", "device"),
            ("COM¹", "device"),
            ("CONIN$", "device"),
            ("prn.a.b", "device"),
        ] {
            let r = unsafe_reason(k).unwrap_or_else(|| panic!("{k:?} passed"));
            assert!(r.contains(why), "{k:?}: {r}");
        }
        let long = "é".repeat(FOLDER_MAX_KEY_BYTES / 2 + 1);
        assert!(unsafe_reason(&long).unwrap().contains("bytes long"));
    }
}
