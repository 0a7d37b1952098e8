//! The state store: what was written where, so a re-run over unchanged sources decodes
//! nothing and an interrupted run resumes.

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Recorded, SinkState};
use crate::{Error, ErrorKind, Result, UserKey};

/// Key: `sink` + NUL + the user's case-folded key. Value: a JSON [`StateRecord`].
const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("userphoto-state-v1");
/// Sinks' snapshots ([`Incremental::snapshot`](crate::sink::Incremental::snapshot)), by
/// sink name.
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("userphoto-snapshots-v1");

/// What the store keeps per sink and user after a successful write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StateRecord {
    /// The source's fingerprint of the photo that was written (or withheld).
    pub source_fingerprint: String,
    /// The rendition written (hex SHA-256); empty after a deletion.
    pub rendition_sha256: String,
    /// The rendition's size in bytes.
    pub bytes: usize,
    /// The sink's version tag seen after the write, if it has one.
    pub version: Option<String>,
    /// Seconds since the Unix epoch.
    pub time: u64,
}

impl StateRecord {
    /// A record of a write: the source's fingerprint, the rendition written (hex SHA-256)
    /// and its size; no version tag and a time of 0 (set them with
    /// [`with_version`](Self::with_version) and [`with_time`](Self::with_time)).
    pub fn new(
        source_fingerprint: impl Into<String>,
        rendition_sha256: impl Into<String>,
        bytes: usize,
    ) -> Self {
        Self {
            source_fingerprint: source_fingerprint.into(),
            rendition_sha256: rendition_sha256.into(),
            bytes,
            version: None,
            time: 0,
        }
    }

    /// The same record with the sink's version tag seen after the write.
    pub fn with_version(mut self, version: Option<String>) -> Self {
        self.version = version;
        self
    }

    /// The same record with another time, in seconds since the Unix epoch.
    pub fn with_time(mut self, time: u64) -> Self {
        self.time = time;
        self
    }

    /// The part of the record the planner compares with.
    pub fn recorded(&self) -> Recorded {
        Recorded {
            rendition_sha256: self.rendition_sha256.clone(),
            version: self.version.clone(),
        }
    }

    /// The fingerprint a record keeps: the source's fingerprint of the photo, under the id
    /// of the profile (and normalizer) it was rendered with, so a rendition made with other
    /// settings never counts as the same.
    pub(crate) fn keyed_fingerprint(profile_id: &str, source_fingerprint: &str) -> String {
        format!("{profile_id}:{source_fingerprint}")
    }

    /// Whether this record is of the photo with this keyed fingerprint.
    pub(crate) fn is_of(&self, keyed_fingerprint: &str) -> bool {
        self.source_fingerprint == keyed_fingerprint
    }

    /// The freshness rule, in one place: the record is of this photo (keyed fingerprint) and
    /// the sink still shows what it wrote: the same bytes (by hash), or for a sink that
    /// re-encodes, the version tag recorded (a record without one adopts the tag seen now).
    /// Then the recorded rendition can be used without decoding the photo again.
    pub(crate) fn still_current(&self, keyed_fingerprint: &str, current: &SinkState) -> bool {
        self.is_of(keyed_fingerprint)
            && match current {
                SinkState::Photo {
                    sha256: Some(s), ..
                } => s.eq_ignore_ascii_case(&self.rendition_sha256),
                SinkState::Photo {
                    sha256: None,
                    version: Some(v),
                } => self.version.as_ref().is_none_or(|r| r == v),
                _ => false,
            }
    }
}

/// One database file (redb: copy-on-write B-trees with checksummed commits, so a crash or a
/// killed process leaves the last committed state, never a torn one).
///
/// # One run at a time
///
/// [`open`](Self::open) takes an exclusive operating-system lock on a lock file next to the
/// database (`state.redb` -> `state.redb.lock`) and holds it until the store is dropped. A
/// second open, in this process or another, fails at once with a run-level
/// [`Conflict`](ErrorKind::Conflict) error naming the holder (its process id, host and
/// start time, which the holder writes into the lock file). The lock dies with its process,
/// so a run that was killed never blocks the next one; the lock file itself stays (it is
/// harmless and reused).
#[derive(Debug)]
pub struct StateStore {
    db: Database,
    /// Held (locked) for as long as the store is open.
    _lock: std::fs::File,
}

/// Who holds a state file's lock, as the holder wrote it into the lock file.
#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    /// Seconds since the Unix epoch.
    started: u64,
}

/// The lock file of a state file: its name with `.lock` added.
fn lock_path(path: &Path) -> std::path::PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    path.with_file_name(name)
}

/// Takes the state file's lock, or says who holds it.
fn lock(path: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let lp = lock_path(path);
    let io_err = |e: std::io::Error| {
        Error::new(
            ErrorKind::Io,
            format!(
                "state store: cannot open the lock file {}: {e}",
                lp.display()
            ),
        )
        .with_backend("state")
        .with_operation("open")
        .with_source(e)
        .run_level()
    };
    // Opened without truncating: the holder's details must stay readable.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lp)
        .map_err(io_err)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = f.read_to_string(&mut text);
            let who = match serde_json::from_str::<Holder>(text.trim()) {
                Ok(h) => format!(
                    "process {} on {} since {}",
                    h.pid,
                    h.host,
                    crate::sync::backup::utc_time(h.started)
                ),
                Err(_) => "another process".to_owned(),
            };
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "state store {} is in use by another run ({who}); wait for it to end \
                     (its lock is {})",
                    path.display(),
                    lp.display()
                ),
            )
            .with_backend("state")
            .with_operation("open")
            .run_level());
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
    }
    let me = Holder {
        pid: std::process::id(),
        host: crate::sync::backup::host_name(),
        started: crate::sync::backup::now_secs(),
    };
    let line = serde_json::to_string(&me).unwrap_or_default();
    f.set_len(0)
        .and_then(|_| f.rewind())
        .and_then(|_| f.write_all(line.as_bytes()))
        .and_then(|_| f.write_all(b"\n"))
        .map_err(io_err)?;
    Ok(f)
}

fn db_err(op: &'static str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Io, format!("state store: {e}"))
        .with_backend("state")
        .with_operation(op)
}

/// The state store's page cache.
const STATE_CACHE_BYTES: usize = 16 << 20;

fn key(sink: &str, user: &UserKey) -> String {
    format!("{sink}\0{}", user.folded())
}

impl StateStore {
    /// Opens or creates the store at `path`, and holds its lock (see
    /// [One run at a time](Self#one-run-at-a-time)) until the store is dropped.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let lock = lock(path.as_ref())?;
        // redb caches up to 1 GiB of pages by default, and a first run over 100,000 users
        // fills much of it; the store holds a small record per user, so a few dozen MiB of
        // cache keep its reads fast and the process's memory bounded.
        let db = redb::Builder::new()
            .set_cache_size(STATE_CACHE_BYTES)
            .create(path.as_ref())
            .map_err(|e| db_err("open", e))?;
        let tx = db.begin_write().map_err(|e| db_err("open", e))?;
        tx.open_table(TABLE).map_err(|e| db_err("open", e))?;
        tx.open_table(SNAPSHOTS).map_err(|e| db_err("open", e))?;
        tx.commit().map_err(|e| db_err("open", e))?;
        Ok(Self { db, _lock: lock })
    }

    /// The record for a user in a sink.
    pub fn get(&self, sink: &str, user: &UserKey) -> Result<Option<StateRecord>> {
        Ok(self
            .get_many(sink, std::slice::from_ref(user))?
            .pop()
            .flatten())
    }

    /// The records for many users of one sink, in the order given, from one read
    /// transaction.
    pub fn get_many(&self, sink: &str, users: &[UserKey]) -> Result<Vec<Option<StateRecord>>> {
        let tx = self.db.begin_read().map_err(|e| db_err("get", e))?;
        let t = tx.open_table(TABLE).map_err(|e| db_err("get", e))?;
        users
            .iter()
            .map(|user| {
                let k = key(sink, user);
                let Some(v) = t.get(k.as_str()).map_err(|e| db_err("get", e))? else {
                    return Ok(None);
                };
                serde_json::from_slice(v.value()).map(Some).map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidData,
                        format!("state store record for {user} in {sink}: {e}"),
                    )
                    .with_backend("state")
                })
            })
            .collect()
    }

    /// Records writes (`Some`) and deletions (`None`) in one durable transaction.
    pub fn commit(&self, changes: &[(String, UserKey, Option<StateRecord>)]) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| db_err("commit", e))?;
        {
            let mut t = tx.open_table(TABLE).map_err(|e| db_err("commit", e))?;
            for (sink, user, rec) in changes {
                let k = key(sink, user);
                match rec {
                    Some(rec) => {
                        let v = serde_json::to_vec(rec).map_err(|e| db_err("commit", e))?;
                        t.insert(k.as_str(), v.as_slice())
                            .map_err(|e| db_err("commit", e))?;
                    }
                    None => {
                        t.remove(k.as_str()).map_err(|e| db_err("commit", e))?;
                    }
                }
            }
        }
        tx.commit().map_err(|e| db_err("commit", e))
    }

    /// Records several writes in one durable transaction (the engine batches them).
    pub fn put_many<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a str, &'a UserKey, &'a StateRecord)>,
    ) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| db_err("put", e))?;
        {
            let mut t = tx.open_table(TABLE).map_err(|e| db_err("put", e))?;
            for (sink, user, rec) in records {
                let v = serde_json::to_vec(rec).map_err(|e| db_err("put", e))?;
                t.insert(key(sink, user).as_str(), v.as_slice())
                    .map_err(|e| db_err("put", e))?;
            }
        }
        tx.commit().map_err(|e| db_err("put", e))
    }

    /// The snapshot a sink left at the end of its last run, if any.
    pub fn snapshot(&self, sink: &str) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read().map_err(|e| db_err("snapshot", e))?;
        let t = tx
            .open_table(SNAPSHOTS)
            .map_err(|e| db_err("snapshot", e))?;
        Ok(t.get(sink)
            .map_err(|e| db_err("snapshot", e))?
            .map(|v| v.value().to_vec()))
    }

    /// Keeps a sink's snapshot (replacing the one before), or forgets it (`None`).
    pub fn put_snapshot(&self, sink: &str, snapshot: Option<&[u8]>) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| db_err("snapshot", e))?;
        {
            let mut t = tx
                .open_table(SNAPSHOTS)
                .map_err(|e| db_err("snapshot", e))?;
            match snapshot {
                Some(v) => t.insert(sink, v).map(|_| ()),
                None => t.remove(sink).map(|_| ()),
            }
            .map_err(|e| db_err("snapshot", e))?;
        }
        tx.commit().map_err(|e| db_err("snapshot", e))
    }

    /// Records one write.
    pub fn put(&self, sink: &str, user: &UserKey, record: &StateRecord) -> Result<()> {
        self.put_many([(sink, user, record)])
    }

    /// Forgets a user in a sink (after a deletion).
    pub fn remove(&self, sink: &str, user: &UserKey) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| db_err("remove", e))?;
        {
            let mut t = tx.open_table(TABLE).map_err(|e| db_err("remove", e))?;
            t.remove(key(sink, user).as_str())
                .map_err(|e| db_err("remove", e))?;
        }
        tx.commit().map_err(|e| db_err("remove", e))
    }

    /// How many records the store holds for a sink.
    pub fn count(&self, sink: &str) -> Result<usize> {
        let tx = self.db.begin_read().map_err(|e| db_err("count", e))?;
        let t = tx.open_table(TABLE).map_err(|e| db_err("count", e))?;
        let prefix = format!("{sink}\0");
        let mut n = 0;
        for item in t.range(prefix.as_str()..).map_err(|e| db_err("count", e))? {
            let (k, _) = item.map_err(|e| db_err("count", e))?;
            if !k.value().starts_with(&prefix) {
                break;
            }
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: usize) -> StateRecord {
        StateRecord {
            source_fingerprint: format!("fp{n}"),
            rendition_sha256: format!("{n:064x}"),
            bytes: n,
            version: Some(format!("v{n}")),
            time: 1,
        }
    }

    /// A fresh folder (removed when the test ends) and a store's path in it.
    fn path(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let t = tempfile::Builder::new()
            .prefix(&format!("userphoto-state-{name}-"))
            .tempdir()
            .unwrap();
        let p = t.path().join("state.redb");
        (t, p)
    }

    #[test]
    fn a_second_open_refuses_naming_the_first_and_the_lock_dies_with_it() {
        let (_tmp, p) = path("locked");
        let first = StateStore::open(&p).unwrap();
        let e = StateStore::open(&p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.is_run_level(), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("process {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains(&super::super::backup::host_name()), "{msg}");
        assert!(msg.contains(" UTC"), "the start time: {msg}");
        assert!(msg.contains(".redb.lock"), "{msg}");
        drop(first);
        let again = StateStore::open(&p).expect("free once the first is closed");
        drop(again);
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_file(lock_path(&p));
    }

    #[test]
    fn snapshots_are_per_sink_replaced_and_forgotten() {
        let (_tmp, p) = path("snapshots");
        {
            let s = StateStore::open(&p).unwrap();
            assert_eq!(s.snapshot("ad").unwrap(), None);
            s.put_snapshot("ad", Some(b"one")).unwrap();
            s.put_snapshot("graph", Some(b"g")).unwrap();
            s.put_snapshot("ad", Some(b"two")).unwrap();
        }
        let s = StateStore::open(&p).unwrap();
        assert_eq!(s.snapshot("ad").unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(s.snapshot("graph").unwrap().as_deref(), Some(&b"g"[..]));
        s.put_snapshot("ad", None).unwrap();
        assert_eq!(s.snapshot("ad").unwrap(), None);
        assert_eq!(s.count("ad").unwrap(), 0, "snapshots are not user records");
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn records_survive_reopening_and_are_per_sink() {
        let (_tmp, p) = path("reopen");
        {
            let s = StateStore::open(&p).unwrap();
            s.put("ad", &UserKey::new("Alice"), &rec(1)).unwrap();
            s.put("graph", &UserKey::new("alice"), &rec(2)).unwrap();
            let batch: Vec<(UserKey, StateRecord)> = (0..100)
                .map(|i| (UserKey::new(format!("u{i}")), rec(i)))
                .collect();
            s.put_many(batch.iter().map(|(k, r)| ("ad", k, r))).unwrap();
        }
        let s = StateStore::open(&p).unwrap();
        assert_eq!(
            s.get("ad", &UserKey::new("ALICE")).unwrap(),
            Some(rec(1)),
            "keys are case-insensitive"
        );
        assert_eq!(
            s.get("graph", &UserKey::new("alice")).unwrap(),
            Some(rec(2))
        );
        assert_eq!(s.get("ldif", &UserKey::new("alice")).unwrap(), None);
        assert_eq!(s.count("ad").unwrap(), 101);
        s.remove("ad", &UserKey::new("alice")).unwrap();
        assert_eq!(s.get("ad", &UserKey::new("alice")).unwrap(), None);
        assert_eq!(s.count("ad").unwrap(), 100);
    }

    /// A process killed (SIGKILL) in the middle of a stream of commits leaves a store that
    /// opens and holds a prefix of the commits: every record up to some point, none after.
    #[test]
    #[cfg(unix)]
    fn a_killed_writer_leaves_a_consistent_store() {
        if let Some(p) = std::env::var_os("USERPHOTO_STATE_CHILD") {
            use std::io::Write;
            let s = StateStore::open(p).unwrap();
            let mut out = std::io::stdout().lock();
            for i in 0.. {
                s.put("ad", &UserKey::new(format!("u{i:08}")), &rec(i))
                    .unwrap();
                // Tells the parent how far the commits got.
                let _ = writeln!(out, "committed {i}").and_then(|()| out.flush());
            }
            return;
        }
        let (_tmp, p) = path("killed");
        let exe = std::env::current_exe().unwrap();
        let mut child = std::process::Command::new(exe)
            .args([
                "--exact",
                "sync::state::tests::a_killed_writer_leaves_a_consistent_store",
                "--nocapture",
            ])
            .env("USERPHOTO_STATE_CHILD", &p)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let it make some commits (it says so after each), then kill it without warning,
        // in the middle of the ones that follow.
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let mut seen = 0;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.starts_with("committed ") {
                seen += 1;
                if seen == 20 {
                    break;
                }
            }
        }
        assert_eq!(seen, 20, "the child stopped before 20 commits");
        child.kill().unwrap();
        drop(lines);
        child.wait().unwrap();
        let s = StateStore::open(&p).expect("the store opens after a kill");
        let n = s.count("ad").unwrap();
        assert!(n >= 20, "the commits it reported are in the store: {n}");
        for i in 0..n {
            assert_eq!(
                s.get("ad", &UserKey::new(format!("u{i:08}"))).unwrap(),
                Some(rec(i)),
                "record {i} of {n}"
            );
        }
        assert_eq!(
            s.get("ad", &UserKey::new(format!("u{n:08}"))).unwrap(),
            None
        );
    }
}
