//! The backup store's tests: journal, restore, torn lines, the restore's own run.

use super::*;
use crate::sink::MemorySink;

/// A fresh folder for the store (removed when the test ends), and the store's path in it.
fn dir(name: &str) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::Builder::new()
        .prefix(&format!("userphoto-backup-{name}-"))
        .tempdir()
        .unwrap();
    let d = t.path().join("backups");
    (t, d)
}

fn sha(b: &[u8]) -> String {
    crate::digest::sha256_hex(b)
}

#[tokio::test]
async fn backup_then_restore_round_trip() {
    let (_tmp, d) = dir("rt");
    let store = BackupStore::open(&d).unwrap();
    let run = store.begin_run();
    assert_eq!(
        store.run_id(),
        None,
        "a run shows once it journalled something"
    );
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
    store.save("memory", &alice, &a1, Some(&sha(&a2))).unwrap();
    sink.put(&alice, &a2).await.unwrap();
    store.save("memory", &bob, &b1, None).unwrap();
    sink.delete(&bob).await.unwrap();
    // And gives Carol, who had none, her first photo.
    let carol = UserKey::new("carol");
    sink.put(&carol, &a2).await.unwrap();
    store.note_added("memory", &carol, &sha(&a2)).unwrap();
    let j = store.journal().unwrap();
    assert_eq!(j.len(), 3);
    assert!(j.iter().all(|e| e.run.as_deref() == Some(run.as_str())));
    assert_eq!(store.run_id().as_deref(), Some(run.as_str()));
    assert_eq!(j[1].new_sha256, None);
    assert_eq!(j[2].old_sha256, None);
    // The same photo twice is stored once.
    store.save("memory", &alice, &a1, Some(&sha(&a2))).unwrap();
    let objects = std::fs::read_dir(d.join("objects")).unwrap().count();
    assert_eq!(objects, 2);
    let restored = store.restore(&sink, None).await.unwrap();
    assert_eq!(
        restored
            .iter()
            .map(|r| (r.user.clone(), r.result.as_ref().ok().cloned()))
            .collect::<Vec<_>>(),
        vec![
            (alice.clone(), Some(Restored::Photo)),
            (bob.clone(), Some(Restored::Photo)),
            (carol.clone(), Some(Restored::Removed)),
        ]
    );
    assert_eq!(sink.photo(&alice), Some(a1.clone()));
    assert_eq!(sink.photo(&bob), Some(b1.clone()));
    assert_eq!(sink.photo(&carol), None, "the added photo is removed");
    // The restore is a run of its own that kept what it overwrote.
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0].id, run);
    assert_eq!(runs[1].undoes.as_deref(), Some(run.as_str()));
    assert_eq!(
        runs[1].changes, 3,
        "alice's and carol's photos kept, bob noted"
    );
    // Restoring the same run again: everyone already has their photo from before.
    let again = store.restore(&sink, None).await.unwrap();
    assert!(
        again
            .iter()
            .all(|r| r.result.as_ref().ok() == Some(&Restored::AlreadyUndone)),
        "{again:?}"
    );
    // Undoing the restore brings the sync's result back.
    let undo = store
        .restore_run(&sink, &RestoreOptions::new().run(&runs[1].id))
        .await
        .unwrap();
    assert!(
        undo.users.iter().all(|r| r.result.is_ok()),
        "{:?}",
        undo.users
    );
    assert_eq!(sink.photo(&alice), Some(a2.clone()));
    assert_eq!(sink.photo(&bob), None);
    assert_eq!(sink.photo(&carol), Some(a2.clone()));
    // Only the named users; a user the sink no longer has fails alone.
    let other = MemorySink::new(1000)
        .with_users(["alice"])
        .with_photo("alice", a2);
    let r = store
        .restore(&other, Some(std::slice::from_ref(&bob)))
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].result.as_ref().unwrap_err().kind(),
        ErrorKind::UserNotFound
    );
    let r = store
        .restore_run(&other, &RestoreOptions::new().run(&run))
        .await
        .unwrap();
    assert!(r.users[0].result.is_ok() && r.users[1].result.is_err() && r.users[2].result.is_err());
    assert_eq!(other.photo(&alice), Some(a1));
    let e = store
        .restore_run(&other, &RestoreOptions::new().run("nope"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains(&run), "names the known runs: {e}");
}

#[tokio::test]
async fn a_photo_changed_since_the_run_is_skipped_unless_forced() {
    let (_tmp, d) = dir("changed");
    let store = BackupStore::open(&d).unwrap();
    let alice = UserKey::new("alice");
    let (before, synced, edited) = (
        Bytes::from_static(b"\xFF\xD8before"),
        Bytes::from_static(b"\xFF\xD8synced"),
        Bytes::from_static(b"\xFF\xD8someone else's"),
    );
    let sink = MemorySink::new(1000).with_photo("alice", before.clone());
    let run = store.begin_run();
    store
        .save("memory", &alice, &before, Some(&sha(&synced)))
        .unwrap();
    sink.put(&alice, &synced).await.unwrap();
    // Someone changes the photo after the sync.
    sink.put(&alice, &edited).await.unwrap();
    let r = store.restore(&sink, None).await.unwrap();
    match &r[0].result {
        Ok(Restored::Skipped { reason }) => {
            assert!(reason.contains("changed since run"), "{reason}");
            assert!(reason.contains(&run), "{reason}");
            assert!(reason.contains("changed since run"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sink.photo(&alice), Some(edited.clone()), "left alone");
    let r = store
        .restore_run(&sink, &RestoreOptions::new().force(true))
        .await
        .unwrap();
    assert_eq!(r.users[0].result.as_ref().ok(), Some(&Restored::Photo));
    assert_eq!(sink.photo(&alice), Some(before));
    // What the forced restore overwrote is kept, in the restore's run.
    let kept = store
        .journal()
        .unwrap()
        .into_iter()
        .find(|e| e.run == r.run)
        .unwrap();
    assert_eq!(kept.undoes.as_deref(), Some(run.as_str()));
    assert_eq!(
        store.load(kept.old_sha256.as_deref().unwrap()).unwrap(),
        edited
    );
}

#[test]
fn a_torn_last_line_is_ignored_and_repaired_on_open() {
    let (_tmp, d) = dir("torn");
    let u = UserKey::new("u");
    {
        let store = BackupStore::open(&d).unwrap();
        store.save("ad", &u, b"one", None).unwrap();
        store.save("ad", &u, b"two", None).unwrap();
    }
    let path = d.join("journal.jsonl");
    let whole = std::fs::read(&path).unwrap();
    // A crash in the middle of appending the second line.
    let cut = whole.len() - 20;
    std::fs::write(&path, &whole[..cut]).unwrap();
    {
        // Read as it is, by another process (no repair): the torn line is not an entry.
        let f = std::fs::read_to_string(&path).unwrap();
        assert!(!f.ends_with('\n'));
    }
    let store = BackupStore::open(&d).unwrap();
    assert_eq!(
        store.journal().unwrap().len(),
        1,
        "the torn line is dropped"
    );
    store.save("ad", &u, b"three", None).unwrap();
    let j = store.journal().unwrap();
    assert_eq!(
        j.len(),
        2,
        "the next line is not glued to the torn one: {j:?}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.ends_with('\n'));
    drop(store);
    // A line that lost only its line break is kept, and completed.
    let text = std::fs::read(&path).unwrap();
    std::fs::write(&path, &text[..text.len() - 1]).unwrap();
    let store = BackupStore::open(&d).unwrap();
    assert_eq!(store.journal().unwrap().len(), 2);
    store.note_added("ad", &u, "ab").unwrap();
    assert_eq!(store.journal().unwrap().len(), 3);
    drop(store);
    // A damaged line that is not the last one is an error, not silently skipped.
    let mut text = std::fs::read(&path).unwrap();
    text.splice(0..0, b"{not json\n".iter().copied());
    std::fs::write(&path, &text).unwrap();
    let e = BackupStore::open(&d).unwrap().journal().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert!(e.to_string().contains("journal.jsonl:1"), "{e}");
}

#[test]
fn journals_without_run_ids_stay_readable() {
    let (_tmp, d) = dir("old");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("journal.jsonl"),
        "{\"time\":1,\"sink\":\"ad\",\"user\":\"a\",\"old_sha256\":null,\"new_sha256\":\"ab\"}\n\
         {\"time\":2,\"sink\":\"ad\",\"user\":\"b\",\"old_sha256\":null,\"new_sha256\":\"cd\"}\n",
    )
    .unwrap();
    let store = BackupStore::open(&d).unwrap();
    let id = store.begin_run();
    store.note_added("ad", &UserKey::new("c"), "ef").unwrap();
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0].id.as_str(), runs[0].changes), (UNKNOWN_RUN, 2));
    assert_eq!((runs[0].first, runs[0].last), (1, 2));
    assert_eq!((runs[1].id.as_str(), runs[1].changes), (id.as_str(), 1));
}

#[test]
fn run_ids_differ_and_times_are_utc() {
    let a = new_run_id();
    let b = new_run_id();
    assert_ne!(a, b);
    assert_eq!(a.len(), "20261202T010047Z-3f9a".len(), "{a}");
    assert_eq!(utc_time(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(utc_time(951_782_400), "2000-02-29 00:00:00 UTC");
    assert_eq!(utc_time(1_798_761_599), "2026-12-31 23:59:59 UTC");
}

#[test]
fn damaged_backups_are_detected() {
    let (_tmp, d) = dir("damaged");
    let store = BackupStore::open(&d).unwrap();
    let sha = store
        .save("ad", &UserKey::new("x"), b"photo bytes", None)
        .unwrap();
    let path = store.object_path(&sha);
    std::fs::write(&path, b"tampered").unwrap();
    let e = store.load(&sha).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert!(e.to_string().contains("damaged"));
    // A name that is not a hash is refused by the check itself, even where it names a
    // file that exists (`./x` would be `objects/././x.jpg`).
    std::fs::write(d.join("objects/x.jpg"), b"not a backup").unwrap();
    assert!(store.object_path("./x").exists(), "the path would resolve");
    for name in ["./x", "../../etc/passwd"] {
        let e = store.load(name).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{name}: {e}");
        assert!(e.to_string().contains("is not a SHA-256"), "{name}: {e}");
    }
}
