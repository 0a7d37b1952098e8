//! Backups: every photo a sync replaces or deletes is kept first, and every photo it adds to
//! a user who had none is noted, so a run can be undone.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::civil;
pub(crate) use crate::clock::rfc3339;
use crate::digest::sha256_hex;
use crate::sink::DirectorySink;
use crate::{Error, ErrorKind, Result, UserKey};

/// The name under which entries journalled before runs had ids are grouped.
pub const UNKNOWN_RUN: &str = "unknown";

/// One line of the backup journal: a photo that was about to be replaced or deleted, or a
/// photo given to a user who had none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// The run that made the change ([`BackupStore::begin_run`]); `None` in journals written
    /// before runs had ids, whose entries all belong to the run [`UNKNOWN_RUN`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The sink's name.
    pub sink: String,
    /// The user.
    pub user: UserKey,
    /// SHA-256 (hex) of the photo kept, the name of its file in `objects/`; `None` when the
    /// user had no photo (restoring removes the one the sync added).
    pub old_sha256: Option<String>,
    /// SHA-256 of what replaced it; `None` for a deletion.
    pub new_sha256: Option<String>,
    /// For a change made by a restore: the run it undid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
}

impl JournalEntry {
    /// The run the entry belongs to: its id, or [`UNKNOWN_RUN`].
    pub fn run_id(&self) -> &str {
        self.run.as_deref().unwrap_or(UNKNOWN_RUN)
    }
}

/// A run as the journal tells it: what [`BackupStore::runs`] lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run's id (what `restore --run` takes), or [`UNKNOWN_RUN`].
    pub id: String,
    /// Time of its first journal entry (seconds since the Unix epoch).
    pub first: u64,
    /// Time of its last journal entry.
    pub last: u64,
    /// Its journal entries (photos kept or first photos noted).
    pub changes: usize,
    /// The sinks it changed, sorted.
    pub sinks: Vec<String>,
    /// For a restore: the run it undid.
    pub undoes: Option<String>,
}

/// Which run to undo and how: for [`BackupStore::restore_run`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RestoreOptions {
    run: Option<String>,
    users: Option<Vec<UserKey>>,
    force: bool,
}

impl RestoreOptions {
    /// Undo the last sync run that changed the sink, for every user it changed, skipping
    /// users whose photo changed since.
    pub fn new() -> Self {
        Self::default()
    }

    /// Undo this run instead (an id from [`BackupStore::runs`]; a restore's own run can be
    /// undone too).
    pub fn run(mut self, id: impl Into<String>) -> Self {
        self.run = Some(id.into());
        self
    }

    /// Only these users.
    pub fn users(mut self, users: impl IntoIterator<Item = UserKey>) -> Self {
        self.users = Some(users.into_iter().collect());
        self
    }

    /// Restore even users whose photo is no longer the one the run left (someone changed
    /// it since, or the sink cannot tell). What is overwritten is still backed up.
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }
}

/// What [`BackupStore::restore_run`] did for one sink.
#[derive(Debug)]
pub struct Restoration {
    /// The run that was undone.
    pub undone: String,
    /// The restore's own run, which journals what it overwrote (undo it with
    /// [`RestoreOptions::run`]); `None` when nothing was written.
    pub run: Option<String>,
    /// Per user, in key order: what was done, or why the user failed.
    pub users: Vec<UserRestored>,
}

/// One user's part in a restore.
#[derive(Debug)]
#[non_exhaustive]
pub struct UserRestored {
    /// The user.
    pub user: UserKey,
    /// What was done, or why the user failed.
    pub result: Result<Restored>,
}

/// A backup folder: content-addressed photos (`objects/ab/abcd....jpg`) and an append-only
/// journal (`journal.jsonl`, one [`JournalEntry`] per line), grouped in runs.
///
/// # Durability
///
/// An object is written to a temporary file, flushed to disk, renamed into place and its
/// folder flushed before the journal line that names it is appended and flushed, so a
/// crash never leaves a journal entry without its photo, and a photo is never replaced
/// before its backup is on disk. The same photo is stored once however often it is backed
/// up. Lines noting a first photo ([`note_added`](Self::note_added)) are written at once
/// and flushed to disk with the next kept photo, at least once a second, and when the
/// store is [synced](Self::sync) or dropped. A line torn by a crash while it was appended
/// is dropped when the store is next opened (or completed, when only its line break was
/// lost), so the next line starts on a line of its own.
///
/// # Runs
///
/// Every entry carries the id of the run that made it: [`begin_run`](Self::begin_run)
/// starts one (the engine does at the start of each apply); an entry made without one
/// starts one. [`restore_run`](Self::restore_run) undoes a run and is a run itself, so a
/// restore can be undone too.
#[derive(Debug)]
pub struct BackupStore {
    dir: PathBuf,
    journal: Mutex<Journal>,
    run: Mutex<Option<Run>>,
}

#[derive(Debug)]
struct Journal {
    file: File,
    /// Lines written since the last flush to disk.
    dirty: bool,
    synced: Instant,
}

#[derive(Debug, Clone)]
struct Run {
    id: String,
    undoes: Option<String>,
    /// Entries journalled in it so far.
    entries: usize,
}

/// Lines noted without their own flush are flushed at least this often.
const SYNC_EVERY: Duration = Duration::from_secs(1);

fn io(op: &'static str, e: std::io::Error) -> Error {
    Error::from(e).with_backend("backup").with_operation(op)
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2026-12-02 01:00:47 UTC`.
pub(crate) fn utc_time(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// This machine's name, for lock files (`unknown host` where it cannot be read).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".to_owned())
}

/// A new run id: the UTC time and 4 hex digits that differ between processes and between
/// runs of one process (`20261202T010047Z-3f9a`).
fn new_run_id() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(now.as_nanos().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(SEQ.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let tag = h.finalize();
    let (y, mo, d, hh, mi, s) = civil(now.as_secs());
    format!(
        "{y:04}{mo:02}{d:02}T{hh:02}{mi:02}{s:02}Z-{:02x}{:02x}",
        tag[0], tag[1]
    )
}

/// Flushes a folder's entry list to disk (after a file in it was created or renamed).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Drops a torn last line (a crash while it was appended), or completes it when only its
/// line break is missing, so that the next line starts on a line of its own.
fn repair(f: &mut File) -> std::io::Result<()> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    // Lines are a few hundred bytes: the tail holds the last line break, except in a
    // damaged file, which is then read whole.
    let mut from = len.saturating_sub(64 * 1024);
    let tail = loop {
        let mut tail = Vec::new();
        f.seek(SeekFrom::Start(from))?;
        Read::by_ref(f).take(len - from).read_to_end(&mut tail)?;
        if from == 0 || tail.contains(&b'\n') {
            break tail;
        }
        from = 0;
    };
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let start = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if serde_json::from_slice::<JournalEntry>(&tail[start..]).is_ok() {
        f.write_all(b"\n")?;
    } else {
        f.set_len(from + start as u64)?;
    }
    f.sync_data()
}

impl BackupStore {
    /// Opens (creating if needed) a backup folder, repairing a journal line torn by a crash.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(dir.join("objects")).map_err(|e| io("open", e))?;
        let path = dir.join("journal.jsonl");
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|e| io("open", e))?;
        repair(&mut file).map_err(|e| io("open", e))?;
        if created {
            sync_dir(&dir).map_err(|e| io("open", e))?;
        }
        Ok(Self {
            dir,
            journal: Mutex::new(Journal {
                file,
                dirty: false,
                synced: Instant::now(),
            }),
            run: Mutex::new(None),
        })
    }

    fn object_path(&self, sha: &str) -> PathBuf {
        self.dir
            .join("objects")
            .join(&sha[..2.min(sha.len())])
            .join(format!("{sha}.jpg"))
    }

    /// Starts a new run: the entries journalled from now on carry its id. Returns the id.
    pub fn begin_run(&self) -> String {
        self.start(None)
    }

    fn start(&self, undoes: Option<String>) -> String {
        let id = new_run_id();
        *self.run.lock().unwrap_or_else(|p| p.into_inner()) = Some(Run {
            id: id.clone(),
            undoes,
            entries: 0,
        });
        id
    }

    /// The current run's id, once it has journalled something (a run that changed nothing
    /// leaves no trace in the journal, and `restore` does not count it).
    pub fn run_id(&self) -> Option<String> {
        self.run
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|r| r.entries > 0)
            .map(|r| r.id.clone())
    }

    /// Keeps `old` (the photo about to be replaced or deleted) and journals the change.
    /// Returns the old photo's SHA-256. The photo and its journal line are on disk when this
    /// returns.
    pub fn save(
        &self,
        sink: &str,
        user: &UserKey,
        old: &[u8],
        new_sha256: Option<&str>,
    ) -> Result<String> {
        let sha = self.keep(old)?;
        self.append(sink, user, Some(sha.clone()), new_sha256, true)?;
        Ok(sha)
    }

    /// Writes an object (if not there yet) durably; returns its hash.
    fn keep(&self, photo: &[u8]) -> Result<String> {
        let sha = sha256_hex(photo);
        let path = self.object_path(&sha);
        if !path.exists() {
            let parent = self.dir.join("objects").join(&sha[..2]);
            let new_dir = !parent.exists();
            std::fs::create_dir_all(&parent).map_err(|e| io("save", e))?;
            if new_dir {
                sync_dir(&self.dir.join("objects")).map_err(|e| io("save", e))?;
            }
            let tmp = parent.join(format!(".{sha}.{}.tmp", std::process::id()));
            let mut f = File::create(&tmp).map_err(|e| io("save", e))?;
            f.write_all(photo)
                .and_then(|_| f.sync_all())
                .map_err(|e| io("save", e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io("save", e))?;
            sync_dir(&parent).map_err(|e| io("save", e))?;
        }
        Ok(sha)
    }

    /// Notes that a sync gave `user` a photo (`new_sha256`) where there was none, so that
    /// [`restore`](Self::restore) removes it. Called after the write. The line is written
    /// at once (a killed process does not lose it) and flushed to disk with the next
    /// [`save`](Self::save), within a second, or at [`sync`](Self::sync): one flush per new
    /// user would slow a first sync down, and a power cut can lose only such notes, never
    /// a kept photo.
    pub fn note_added(&self, sink: &str, user: &UserKey, new_sha256: &str) -> Result<()> {
        self.append(sink, user, None, Some(new_sha256), false)
    }

    /// Flushes every journal line written so far to disk.
    pub fn sync(&self) -> Result<()> {
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if j.dirty {
            j.file.sync_data().map_err(|e| io("sync", e))?;
            j.dirty = false;
            j.synced = Instant::now();
        }
        Ok(())
    }

    fn append(
        &self,
        sink: &str,
        user: &UserKey,
        old_sha256: Option<String>,
        new_sha256: Option<&str>,
        durable: bool,
    ) -> Result<()> {
        let (run, undoes) = {
            let mut r = self.run.lock().unwrap_or_else(|p| p.into_inner());
            let run = r.get_or_insert_with(|| Run {
                id: new_run_id(),
                undoes: None,
                entries: 0,
            });
            run.entries += 1;
            (run.id.clone(), run.undoes.clone())
        };
        let entry = JournalEntry {
            time: now_secs(),
            run: Some(run),
            sink: sink.to_owned(),
            user: user.clone(),
            old_sha256,
            new_sha256: new_sha256.map(str::to_owned),
            undoes,
        };
        let mut line =
            serde_json::to_vec(&entry).map_err(|e| Error::new(ErrorKind::Other, e.to_string()))?;
        line.push(b'\n');
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        j.file.write_all(&line).map_err(|e| io("save", e))?;
        j.dirty = true;
        if durable || j.synced.elapsed() >= SYNC_EVERY {
            j.file.sync_data().map_err(|e| io("save", e))?;
            j.dirty = false;
            j.synced = Instant::now();
        }
        Ok(())
    }

    /// Every journal entry, oldest first. A torn last line (a crash mid-write) is ignored;
    /// a damaged line before it is an [`InvalidData`](ErrorKind::InvalidData) error.
    pub fn journal(&self) -> Result<Vec<JournalEntry>> {
        let f = File::open(self.dir.join("journal.jsonl")).map_err(|e| io("journal", e))?;
        let mut out = Vec::new();
        let mut reader = BufReader::new(f);
        let mut line = String::new();
        let mut no = 0;
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(|e| io("journal", e))?;
            if n == 0 {
                break;
            }
            no += 1;
            let complete = line.ends_with('\n');
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(e) => out.push(e),
                // Being appended (or torn by a crash): not an entry yet.
                Err(_) if !complete => break,
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::InvalidData,
                        format!("journal.jsonl:{no}: {e}"),
                    )
                    .with_backend("backup")
                    .with_operation("journal"))
                }
            }
        }
        Ok(out)
    }

    /// The runs in the journal, oldest first.
    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        let mut runs: Vec<RunInfo> = Vec::new();
        let mut at: BTreeMap<String, usize> = BTreeMap::new();
        for e in self.journal()? {
            let id = e.run_id().to_owned();
            let i = *at.entry(id.clone()).or_insert_with(|| {
                runs.push(RunInfo {
                    id,
                    first: e.time,
                    last: e.time,
                    changes: 0,
                    sinks: Vec::new(),
                    undoes: e.undoes.clone(),
                });
                runs.len() - 1
            });
            let r = &mut runs[i];
            r.changes += 1;
            r.first = r.first.min(e.time);
            r.last = r.last.max(e.time);
            if !r.sinks.contains(&e.sink) {
                r.sinks.push(e.sink);
                r.sinks.sort();
            }
        }
        Ok(runs)
    }

    /// Reads a kept photo and checks that it still has its hash.
    pub fn load(&self, sha256: &str) -> Result<Bytes> {
        if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!("{sha256:?} is not a SHA-256"),
            )
            .with_backend("backup")
            .with_operation("load"));
        }
        let b = std::fs::read(self.object_path(sha256)).map_err(|e| io("load", e))?;
        if sha256_hex(&b) != sha256 {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!("backup {sha256} is damaged (its content no longer matches its hash)"),
            )
            .with_backend("backup")
            .with_operation("load"));
        }
        Ok(Bytes::from(b))
    }

    /// Undoes the last sync run for every user of `sink` it changed (or only `users`); see
    /// [`restore_run`](Self::restore_run), whose per-user results this returns.
    pub async fn restore(
        &self,
        sink: &dyn DirectorySink,
        users: Option<&[UserKey]>,
    ) -> Result<Vec<UserRestored>> {
        let mut opts = RestoreOptions::new();
        if let Some(u) = users {
            opts = opts.users(u.iter().cloned());
        }
        Ok(self.restore_run(sink, &opts).await?.users)
    }

    /// Undoes a run in one sink: for each user it changed there (or each of
    /// [`RestoreOptions::users`]), puts back the photo the user had before the run, or
    /// removes the photo the run gave a user who had none.
    ///
    /// * The run is [`RestoreOptions::run`], or else the last run that changed this sink
    ///   and was not itself a restore. An id that is not in the journal is a
    ///   [`Config`](ErrorKind::Config) error.
    /// * Before writing, each user's photo is checked to be still the one the run left,
    ///   by the SHA-256 of [`current`](DirectorySink::current)
    ///   ([`CurrentPhoto::content_sha256`](crate::sink::CurrentPhoto::content_sha256)).
    ///   One changed since is [`Restored::Skipped`] with the reason, unless
    ///   [`force`](RestoreOptions::force)d; one already back to its photo before the run is
    ///   [`Restored::AlreadyUndone`]. A sink whose `current` gives only a version tag
    ///   (Graph re-encodes every upload, so no hash of it can match) cannot be checked:
    ///   its users are skipped saying so, and `force` restores them.
    /// * What a restore overwrites or removes is backed up first, in the restore's own run
    ///   (journalled with [`JournalEntry::undoes`]), so the restore can be undone.
    /// * One user's failure does not stop the others: the result is per user, in key
    ///   order. The outer error is for an unreadable journal or an unknown run.
    pub async fn restore_run(
        &self,
        sink: &dyn DirectorySink,
        opts: &RestoreOptions,
    ) -> Result<Restoration> {
        let journal = self.journal()?;
        let target = match &opts.run {
            Some(id) => {
                if !journal.iter().any(|e| e.run_id() == id) {
                    let known: Vec<String> = self
                        .runs()?
                        .into_iter()
                        .rev()
                        .take(5)
                        .map(|r| r.id)
                        .collect();
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!(
                            "no run {id:?} in the backup journal (latest: {})",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    )
                    .with_backend("backup")
                    .with_operation("restore"));
                }
                id.clone()
            }
            None => {
                match journal
                    .iter()
                    .rev()
                    .find(|e| e.sink == sink.name() && e.undoes.is_none())
                {
                    Some(e) => e.run_id().to_owned(),
                    None => {
                        return Ok(Restoration {
                            undone: String::new(),
                            run: None,
                            users: Vec::new(),
                        })
                    }
                }
            }
        };
        // Per user: the photo before the run (its first entry's old) and what the run left
        // (its last entry's new).
        let mut changed: BTreeMap<UserKey, (Option<String>, Option<String>)> = BTreeMap::new();
        for e in journal {
            if e.sink != sink.name()
                || e.run_id() != target
                || opts.users.as_ref().is_some_and(|u| !u.contains(&e.user))
            {
                continue;
            }
            changed
                .entry(e.user)
                .and_modify(|c| c.1 = e.new_sha256.clone())
                .or_insert((e.old_sha256, e.new_sha256));
        }
        // The restore's own run, unless this store is already in one undoing the same run
        // (one restore over several sinks).
        {
            let mut r = self.run.lock().unwrap_or_else(|p| p.into_inner());
            if r.as_ref()
                .is_none_or(|r| r.undoes.as_deref() != Some(&target))
            {
                *r = Some(Run {
                    id: new_run_id(),
                    undoes: Some(target.clone()),
                    entries: 0,
                });
            }
        }
        let mut users = Vec::new();
        for (user, (before, left)) in changed {
            let r = self
                .restore_one(sink, &user, before, left, &target, opts.force)
                .await
                .map_err(|e| e.with_user(user.clone()));
            users.push(UserRestored { user, result: r });
        }
        // A sink that writes a file (the LDIF change file) completes it now.
        sink.finish().await?;
        Ok(Restoration {
            undone: target,
            run: self.run_id(),
            users,
        })
    }

    async fn restore_one(
        &self,
        sink: &dyn DirectorySink,
        user: &UserKey,
        before: Option<String>,
        left: Option<String>,
        target: &str,
        force: bool,
    ) -> Result<Restored> {
        let short = |s: &Option<String>| match s {
            Some(s) => format!("photo {}", &s[..12.min(s.len())]),
            None => "no photo".to_owned(),
        };
        let current = sink.current(user).await?;
        let now: Option<Option<String>> = match &current {
            None => Some(None),
            Some(c) => c.content_sha256().map(Some),
        };
        match &now {
            Some(n) if *n == before => return Ok(Restored::AlreadyUndone),
            Some(n) if *n == left || force => {}
            None if force => {}
            Some(n) => {
                return Ok(Restored::Skipped {
                    reason: format!(
                        "changed since run {target}: it has {} where the run left {}",
                        short(n),
                        short(&left)
                    ),
                })
            }
            None => {
                return Ok(Restored::Skipped {
                    reason: format!(
                        "{} keeps only a version tag, so whether the photo changed since run \
                         {target} cannot be checked",
                        sink.name()
                    ),
                })
            }
        }
        let old = match &before {
            Some(sha) => Some(self.load(sha)?),
            None => None,
        };
        // Keep what is about to be overwritten or removed.
        let had = match current {
            None => false,
            Some(c) => match c.bytes {
                Some(b) => {
                    self.save(sink.name(), user, &b, before.as_deref())?;
                    true
                }
                None => match sink.fetch(user).await? {
                    Some(b) => {
                        self.save(sink.name(), user, &b, before.as_deref())?;
                        true
                    }
                    None => false,
                },
            },
        };
        match old {
            Some(photo) => {
                sink.put(user, &photo).await?;
                if !had {
                    self.note_added(sink.name(), user, before.as_deref().unwrap_or_default())?;
                }
                Ok(Restored::Photo)
            }
            None => {
                sink.delete(user).await?;
                Ok(Restored::Removed)
            }
        }
    }
}

impl Drop for BackupStore {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

/// What [`BackupStore::restore`] did for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restored {
    /// The old photo is back.
    Photo,
    /// The user had no photo before; the one the sync added is removed.
    Removed,
    /// The user already has the photo from before the run: nothing to do.
    AlreadyUndone,
    /// Not restored: the photo changed since the run, or the sink cannot tell.
    Skipped {
        /// Why ([`RestoreOptions::force`] restores it anyway).
        reason: String,
    },
}

#[cfg(test)]
mod tests;
