//! Backups: every photo a sync replaces or deletes is kept first, and every photo it adds to
//! a user who had none is noted, so a run can be undone.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sink::DirectorySink;
use crate::{Error, ErrorKind, Result, UserKey};

/// One line of the backup journal: a photo that was about to be replaced or deleted, or a
/// photo given to a user who had none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// The sink's name.
    pub sink: String,
    /// The user.
    pub user: UserKey,
    /// SHA-256 (hex) of the photo kept, the name of its file in `objects/`; `None` when the
    /// user had no photo (restoring removes the one the sync added).
    pub old_sha256: Option<String>,
    /// SHA-256 of what replaced it; `None` for a deletion.
    pub new_sha256: Option<String>,
}

/// A backup folder: content-addressed photos (`objects/ab/abcd....jpg`) and an append-only
/// journal (`journal.jsonl`, one [`JournalEntry`] per line).
///
/// Objects are written to a temporary file, flushed to disk and renamed into place before
/// the journal line that names them is appended (and flushed), so a crash never leaves a
/// journal entry without its photo. The same photo is stored once however often it is
/// backed up.
#[derive(Debug)]
pub struct BackupStore {
    dir: PathBuf,
    journal: Mutex<File>,
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn io(op: &'static str, e: std::io::Error) -> Error {
    Error::from(e).with_backend("backup").with_operation(op)
}

impl BackupStore {
    /// Opens (creating if needed) a backup folder.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(dir.join("objects")).map_err(|e| io("open", e))?;
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("journal.jsonl"))
            .map_err(|e| io("open", e))?;
        Ok(Self {
            dir,
            journal: Mutex::new(journal),
        })
    }

    fn object_path(&self, sha: &str) -> PathBuf {
        self.dir
            .join("objects")
            .join(&sha[..2.min(sha.len())])
            .join(format!("{sha}.jpg"))
    }

    /// Keeps `old` (the photo about to be replaced or deleted) and journals the change.
    /// Returns the old photo's SHA-256.
    pub fn save(
        &self,
        sink: &str,
        user: &UserKey,
        old: &[u8],
        new_sha256: Option<&str>,
    ) -> Result<String> {
        let sha = hex(&Sha256::digest(old));
        let path = self.object_path(&sha);
        if !path.exists() {
            let parent = path.parent().expect("objects/xx");
            std::fs::create_dir_all(parent).map_err(|e| io("save", e))?;
            let tmp = parent.join(format!(".{sha}.{}.tmp", std::process::id()));
            let mut f = File::create(&tmp).map_err(|e| io("save", e))?;
            f.write_all(old)
                .and_then(|_| f.sync_all())
                .map_err(|e| io("save", e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io("save", e))?;
        }
        self.append(sink, user, Some(sha.clone()), new_sha256, true)?;
        Ok(sha)
    }

    /// Notes that a sync gave `user` a photo (`new_sha256`) where there was none, so that
    /// [`restore`](Self::restore) removes it. Called after the write. The line is not
    /// flushed to disk on its own (one flush per new user would slow a first sync down):
    /// the next [`save`](Self::save) flushes it, and a crash can lose only such notes, never
    /// a kept photo.
    pub fn note_added(&self, sink: &str, user: &UserKey, new_sha256: &str) -> Result<()> {
        self.append(sink, user, None, Some(new_sha256), false)
    }

    fn append(
        &self,
        sink: &str,
        user: &UserKey,
        old_sha256: Option<String>,
        new_sha256: Option<&str>,
        durable: bool,
    ) -> Result<()> {
        let entry = JournalEntry {
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            sink: sink.to_owned(),
            user: user.clone(),
            old_sha256,
            new_sha256: new_sha256.map(str::to_owned),
        };
        let mut line =
            serde_json::to_vec(&entry).map_err(|e| Error::new(ErrorKind::Other, e.to_string()))?;
        line.push(b'\n');
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        j.write_all(&line)
            .and_then(|_| if durable { j.sync_data() } else { Ok(()) })
            .map_err(|e| io("save", e))
    }

    /// Every journal entry, oldest first. A torn last line (a crash mid-write) is ignored.
    pub fn journal(&self) -> Result<Vec<JournalEntry>> {
        let f = File::open(self.dir.join("journal.jsonl")).map_err(|e| io("journal", e))?;
        let mut out = Vec::new();
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| io("journal", e))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(e) => out.push(e),
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::InvalidData,
                        format!("journal.jsonl:{}: {e}", i + 1),
                    )
                    .with_backend("backup")
                    .with_operation("journal"))
                }
            }
        }
        Ok(out)
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
        if hex(&Sha256::digest(&b)) != sha256 {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!("backup {sha256} is damaged (its content no longer matches its hash)"),
            )
            .with_backend("backup")
            .with_operation("load"));
        }
        Ok(Bytes::from(b))
    }

    /// Undoes, for every user of `sink` (or only `users`), their most recent journalled
    /// change: puts back the photo it replaced or deleted, or removes the photo it added to
    /// a user who had none. One user's failure does not stop the others: the result is per
    /// user, in key order. The outer error is for an unreadable journal.
    pub async fn restore(
        &self,
        sink: &dyn DirectorySink,
        users: Option<&[UserKey]>,
    ) -> Result<Vec<(UserKey, Result<Restored>)>> {
        let mut latest: BTreeMap<UserKey, JournalEntry> = BTreeMap::new();
        for e in self.journal()? {
            if e.sink == sink.name() && users.is_none_or(|u| u.contains(&e.user)) {
                latest.insert(e.user.clone(), e);
            }
        }
        let mut done = Vec::new();
        for (user, e) in latest {
            let r = match &e.old_sha256 {
                None => sink.delete(&user).await.map(|()| Restored::Removed),
                Some(old) => match self.load(old) {
                    Ok(photo) => sink.put(&user, &photo).await.map(|_| Restored::Photo),
                    Err(err) => Err(err.with_user(user.clone())),
                },
            };
            done.push((user, r));
        }
        Ok(done)
    }
}

/// What [`BackupStore::restore`] did for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// The old photo is back.
    Photo,
    /// The user had no photo before; the one the sync added is removed.
    Removed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::MemorySink;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("userphoto-backup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[tokio::test]
    async fn backup_then_restore_round_trip() {
        let d = dir("rt");
        let store = BackupStore::open(&d).unwrap();
        let (alice, bob) = (UserKey::new("alice"), UserKey::new("bob"));
        let (a1, a2, b1) = (
            Bytes::from_static(b"\xFF\xD8alice-1"),
            Bytes::from_static(b"\xFF\xD8alice-2"),
            Bytes::from_static(b"\xFF\xD8bob-1"),
        );
        let sink = MemorySink::new(1000)
            .with_photo("alice", a1.clone())
            .with_photo("bob", b1.clone())
            .with_users(["carol"]);
        // A sync replaces Alice's photo and deletes Bob's, keeping both first.
        store.save("memory", &alice, &a1, Some("new")).unwrap();
        sink.put(&alice, &a2).await.unwrap();
        store.save("memory", &bob, &b1, None).unwrap();
        sink.delete(&bob).await.unwrap();
        // And gives Carol, who had none, her first photo.
        let carol = UserKey::new("carol");
        sink.put(&carol, &a2).await.unwrap();
        store.note_added("memory", &carol, "c0ffee").unwrap();
        let j = store.journal().unwrap();
        assert_eq!(j.len(), 3);
        assert_eq!(j[1].new_sha256, None);
        assert_eq!(j[2].old_sha256, None);
        // The same photo twice is stored once.
        store.save("memory", &alice, &a1, Some("new")).unwrap();
        let objects = std::fs::read_dir(d.join("objects")).unwrap().count();
        assert_eq!(objects, 2);
        let restored = store.restore(&sink, None).await.unwrap();
        assert_eq!(
            restored
                .iter()
                .map(|r| (r.0.clone(), r.1.as_ref().ok().copied()))
                .collect::<Vec<_>>(),
            vec![
                (alice.clone(), Some(Restored::Photo)),
                (bob.clone(), Some(Restored::Photo)),
                (carol.clone(), Some(Restored::Removed)),
            ]
        );
        assert_eq!(sink.photo(&alice), Some(a1));
        assert_eq!(sink.photo(&bob), Some(b1));
        assert_eq!(sink.photo(&carol), None, "the added photo is removed");
        // Only the named users; a user the sink no longer has fails alone.
        let other = MemorySink::new(1000).with_users(["alice"]);
        let r = store
            .restore(&other, Some(std::slice::from_ref(&bob)))
            .await
            .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].1.as_ref().unwrap_err().kind(), ErrorKind::UserNotFound);
        let r = store.restore(&other, None).await.unwrap();
        assert!(r[0].1.is_ok() && r[1].1.is_err() && r[2].1.is_err());
        assert_eq!(
            other.photo(&alice),
            Some(Bytes::from_static(b"\xFF\xD8alice-1"))
        );
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn damaged_backups_are_detected() {
        let d = dir("damaged");
        let store = BackupStore::open(&d).unwrap();
        let sha = store
            .save("ad", &UserKey::new("x"), b"photo bytes", None)
            .unwrap();
        let path = store.object_path(&sha);
        std::fs::write(&path, b"tampered").unwrap();
        let e = store.load(&sha).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert!(e.to_string().contains("damaged"));
        assert!(
            store.load("../../etc/passwd").is_err(),
            "only hashes name objects"
        );
        std::fs::remove_dir_all(&d).ok();
    }
}
