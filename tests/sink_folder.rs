//! The folder sink: the conformance suite, hostile keys, atomic writes, case, the manifest
//! after an engine run, leavers and withheld people removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use userphoto::conformance::{self, SinkFixture};
use userphoto::normalize::Profile;
use userphoto::sink::{DirectorySink, FolderSink};
use userphoto::source::MemorySource;
use userphoto::sync::{Action, Engine, Policy, Reason, Status};
use userphoto::{ErrorKind, UserKey};

/// A fresh folder, removed when the test ends.
fn tempdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("userphoto-folder-{name}-"))
        .tempdir()
        .unwrap()
}

fn jpeg(seed: u32) -> Bytes {
    Bytes::from(userphoto::normalize::testimage::photo_jpeg(
        80 + seed,
        90,
        seed,
    ))
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Every file below `root` (relative path -> content), folders included (as `None`).
fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_owned();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn fixture() -> SinkFixture {
    SinkFixture {
        users: (0..10).map(|i| UserKey::new(format!("user{i}"))).collect(),
        // Not used: see `folder_sink_conforms`.
        absent: UserKey::new("../nobody"),
    }
}

/// Every clause of the suite but `sink_unknown_user_is_user_not_found`: a folder has no
/// list of users (every safe key names one, with or without a file), so it never answers
/// UserNotFound; what it refuses (an unsafe key) is checked below in the same terms.
async fn folder_contract(sink: &dyn DirectorySink, fx: &SinkFixture) {
    assert!(!sink.name().is_empty());
    conformance::sink_no_photo_is_none(sink, fx).await;
    conformance::sink_put_then_current(sink, fx).await;
    conformance::sink_put_is_idempotent_and_last_wins(sink, fx).await;
    conformance::sink_delete_is_idempotent(sink, fx).await;
    conformance::sink_oversize_put_changes_nothing(sink, fx).await;
    conformance::sink_concurrent_puts_all_land(sink, fx).await;
    conformance::sink_lists_users_with_photos(sink, fx).await;
    conformance::sink_incremental_is_safe(sink, fx).await;
}

#[tokio::test]
async fn folder_sink_conforms() {
    let tmp = tempdir("conf");
    let dir = tmp.path().join("out");
    let sink = FolderSink::new(&dir).unwrap();
    folder_contract(&sink, &fixture()).await;
    // The suite leaves every user without a photo: no file, no temporary file.
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
    assert!(sink.users_with_photos().await.unwrap().is_empty());

    // Through trait objects, with another name and limit.
    let arc: std::sync::Arc<dyn DirectorySink> = std::sync::Arc::new(
        FolderSink::new(&dir)
            .unwrap()
            .with_name("badges")
            .with_max_bytes(50_000),
    );
    folder_contract(&arc, &fixture()).await;
    assert_eq!(arc.name(), "badges");
    assert_eq!(arc.capabilities().max_bytes, 50_000);
}

#[tokio::test]
async fn capabilities_default_to_the_graph_profile() {
    let tmp = tempdir("caps");
    let sink = FolderSink::new(tmp.path().join("a/b/c")).unwrap();
    assert!(
        tmp.path().join("a/b/c").is_dir(),
        "new() creates the folder"
    );
    let c = sink.capabilities();
    assert_eq!(
        c.default_profile,
        userphoto::normalize::BuiltinProfile::Graph
    );
    assert_eq!(c.max_bytes, 4_000_000);
    assert!(c.returns_bytes);
    assert_eq!(sink.name(), "folder");
    assert_eq!(
        sink.entry_name(&UserKey::new("alice")).await.as_deref(),
        Some("alice.jpg")
    );
    assert_eq!(sink.entry_name(&UserKey::new("../x")).await, None);
}

const HOSTILE: [&str; 22] = [
    ".",
    "..",
    "../evil",
    "../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "..\\evil",
    "a\\b",
    "C:\\evil",
    "C:evil",
    "a\0b",
    "tab\there",
    "CON",
    "con",
    "Nul.txt",
    "COM1",
    "lpt9",
    "aux.photo",
    ".hidden",
    "trailing.",
    "star*",
    "what?",
];

#[tokio::test]
async fn hostile_keys_are_refused_for_that_user_and_write_nothing() {
    let tmp = tempdir("hostile");
    let root = tmp.path().join("root");
    let dir = root.join("out");
    let sink = FolderSink::new(&dir).unwrap();
    // A file that `..` style keys would reach.
    std::fs::write(root.join("evil.jpg"), b"outside").unwrap();
    let before = tree(tmp.path());
    let photo = jpeg(1);
    let long = "x".repeat(userphoto::sink::FOLDER_MAX_KEY_BYTES + 1);
    let long_utf8 = "é".repeat(userphoto::sink::FOLDER_MAX_KEY_BYTES / 2 + 1);
    let keys = HOSTILE
        .iter()
        .map(|s| s.to_string())
        .chain([long.clone(), long_utf8]);
    for k in keys {
        let key = UserKey::new(&k);
        assert!(!FolderSink::is_safe_key(key.as_str()), "{k:?}");
        for (op, r) in [
            ("put", sink.put(&key, &photo).await.map(|_| ())),
            ("current", sink.current(&key).await.map(|_| ())),
            ("fetch", sink.fetch(&key).await.map(|_| ())),
            ("delete", sink.delete(&key).await),
        ] {
            let e = r.expect_err(&format!("{op} of {k:?} succeeded"));
            assert_eq!(e.kind(), ErrorKind::InvalidData, "{op} {k:?}: {e}");
            assert!(!e.is_retryable(), "{e}");
            assert!(
                !e.is_run_level(),
                "a refused key is that user's failure: {e}"
            );
            assert_eq!(e.user(), Some(&key));
            assert_eq!(e.operation(), op);
            assert_eq!(e.backend(), "folder");
            assert!(e.message().contains("not a safe file name"), "{e}");
        }
        assert_eq!(sink.entry_name(&key).await, None);
    }
    sink.finish().await.unwrap();
    let mut after = tree(tmp.path());
    // The manifest (empty) is the only thing written, and it is inside the folder.
    let manifest = after
        .remove(Path::new("root/out/manifest.csv"))
        .expect("a manifest")
        .unwrap();
    assert_eq!(manifest, b"key,file,sha256,updated\n");
    assert_eq!(before, after, "nothing was written anywhere else");
    // The 200-byte key itself is fine.
    let ok = UserKey::new(&long[1..]);
    sink.put(&ok, &photo).await.unwrap();
    assert!(dir.join(format!("{}.jpg", &long[1..])).is_file());
}

#[tokio::test]
async fn an_engine_run_fails_only_the_hostile_users() {
    let tmp = tempdir("engine-hostile");
    let dir = tmp.path().join("out");
    let mut src = MemorySource::new().with_photo("alice", jpeg(1));
    for k in ["../evil", "CON", "a\\b"] {
        src = src.with_photo(k, jpeg(2));
    }
    let report = Engine::new(src)
        .with_sink(FolderSink::new(&dir).unwrap(), Profile::ad_thumbnail())
        .run()
        .await
        .unwrap();
    let failed: Vec<&str> = report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(failed.len(), 3, "{:#?}", report.outcomes);
    for o in report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
    {
        let m = o.message.as_deref().unwrap_or_default();
        assert!(m.contains("not a safe file name"), "{}: {m}", o.key);
    }
    assert_eq!(names(&dir), ["alice.jpg", "manifest.csv"]);
    assert_eq!(names(tmp.path()), ["out"]);
}

#[cfg(unix)]
#[tokio::test]
async fn a_put_renames_a_new_file_into_place() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempdir("atomic");
    let dir = tmp.path().join("out");
    let sink = FolderSink::new(&dir).unwrap();
    let alice = UserKey::new("alice");
    sink.put(&alice, &jpeg(1)).await.unwrap();
    // Another name for the old photo: an in-place write would change it too.
    std::fs::hard_link(dir.join("alice.jpg"), tmp.path().join("old.jpg")).unwrap();
    let ino = std::fs::metadata(dir.join("alice.jpg")).unwrap().ino();
    sink.put(&alice, &jpeg(2)).await.unwrap();
    assert_ne!(
        std::fs::metadata(dir.join("alice.jpg")).unwrap().ino(),
        ino,
        "replaced by a rename, not rewritten in place"
    );
    assert_eq!(std::fs::read(dir.join("alice.jpg")).unwrap(), jpeg(2));
    assert_eq!(std::fs::read(tmp.path().join("old.jpg")).unwrap(), jpeg(1));
    // Readable as files made by File::create are (the umask decides), not 0600.
    let mode = std::fs::metadata(dir.join("alice.jpg")).unwrap().mode();
    let plain = {
        let p = tmp.path().join("plain");
        std::fs::write(&p, b"x").unwrap();
        std::fs::metadata(&p).unwrap().mode()
    };
    assert_eq!(mode & 0o777, plain & 0o777);

    // A folder where the file would go: refused, and no temporary file is left.
    std::fs::create_dir(dir.join("bob.jpg")).unwrap();
    let e = sink
        .put(&UserKey::new("bob"), &jpeg(3))
        .await
        .expect_err("a folder is not replaced");
    assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
    // A symbolic link is not followed, replaced or removed.
    std::fs::write(tmp.path().join("target.jpg"), b"outside").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("target.jpg"), dir.join("carol.jpg")).unwrap();
    let carol = UserKey::new("carol");
    for r in [
        sink.put(&carol, &jpeg(4)).await.map(|_| ()),
        sink.current(&carol).await.map(|_| ()),
        sink.fetch(&carol).await.map(|_| ()),
        sink.delete(&carol).await,
    ] {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidData);
    }
    assert_eq!(
        std::fs::read(tmp.path().join("target.jpg")).unwrap(),
        b"outside"
    );
    assert_eq!(names(&dir), ["alice.jpg", "bob.jpg", "carol.jpg"]);
}

#[tokio::test]
async fn oversize_puts_write_nothing() {
    let tmp = tempdir("oversize");
    let dir = tmp.path().join("out");
    let sink = FolderSink::new(&dir).unwrap().with_max_bytes(1000);
    let e = sink
        .put(&UserKey::new("alice"), &jpeg(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PhotoTooLarge);
    assert!(names(&dir).is_empty());
}

#[tokio::test]
async fn keys_find_their_file_whatever_the_case() {
    let tmp = tempdir("case");
    let dir = tmp.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("Alice.jpg"), jpeg(1)).unwrap();
    let sink = FolderSink::new(&dir).unwrap();
    let lower = UserKey::new("alice");
    let c = sink.current(&lower).await.unwrap().expect("Alice.jpg");
    assert_eq!(c.content_sha256().unwrap(), sha256_hex(&jpeg(1)));
    assert_eq!(sink.entry_name(&lower).await.as_deref(), Some("Alice.jpg"));
    // A put under another case replaces the file under its own name.
    sink.put(&UserKey::new("ALICE"), &jpeg(2)).await.unwrap();
    assert_eq!(names(&dir), ["Alice.jpg"]);
    assert_eq!(std::fs::read(dir.join("Alice.jpg")).unwrap(), jpeg(2));
    assert_eq!(sink.users_with_photos().await.unwrap()[0].as_str(), "Alice");
    sink.delete(&lower).await.unwrap();
    assert!(names(&dir).is_empty());
}

#[tokio::test]
async fn files_that_differ_only_in_case_are_left_alone() {
    let tmp = tempdir("clash");
    let dir = tmp.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("Bob.jpg"), jpeg(1)).unwrap();
    if dir.join("bob.jpg").exists() {
        // A case-insensitive file system: there cannot be two.
        return;
    }
    std::fs::write(dir.join("bob.jpg"), jpeg(2)).unwrap();
    let sink = FolderSink::new(&dir).unwrap();
    let bob = UserKey::new("BOB");
    for r in [
        sink.put(&bob, &jpeg(3)).await.map(|_| ()),
        sink.current(&bob).await.map(|_| ()),
        sink.delete(&bob).await,
    ] {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AmbiguousMatch, "{e}");
        assert!(e.message().contains("Bob.jpg") && e.message().contains("bob.jpg"));
    }
    assert_eq!(std::fs::read(dir.join("Bob.jpg")).unwrap(), jpeg(1));
    assert_eq!(std::fs::read(dir.join("bob.jpg")).unwrap(), jpeg(2));
}

#[tokio::test]
async fn only_safe_jpg_files_are_users() {
    let tmp = tempdir("list");
    let dir = tmp.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    for f in [
        "alice.jpg",
        "bob.jpg",
        "notes.txt",
        "carol.JPG",
        ".hidden.jpg",
        "CON.jpg",
        "manifest.csv",
    ] {
        std::fs::write(dir.join(f), b"x").unwrap();
    }
    std::fs::create_dir(dir.join("dave.jpg")).unwrap();
    let sink = FolderSink::new(&dir).unwrap();
    let listed: Vec<String> = sink
        .users_with_photos()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    assert_eq!(listed, ["alice", "bob"]);
    assert_eq!(sink.photo_count(), 2);
}

#[tokio::test]
async fn read_only_sinks_create_and_write_nothing() {
    let tmp = tempdir("ro");
    let dir = tmp.path().join("missing");
    let sink = FolderSink::read_only(&dir).unwrap();
    assert!(sink
        .current(&UserKey::new("alice"))
        .await
        .unwrap()
        .is_none());
    let e = sink
        .put(&UserKey::new("alice"), &jpeg(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_eq!(
        sink.delete(&UserKey::new("alice"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Config
    );
    sink.finish().await.unwrap();
    assert!(!dir.exists());
    // A file where the folder should be.
    std::fs::write(&dir, b"x").unwrap();
    assert_eq!(FolderSink::new(&dir).unwrap_err().kind(), ErrorKind::Io);
    assert_eq!(
        FolderSink::read_only(&dir).unwrap_err().kind(),
        ErrorKind::Io
    );
}

/// The manifest's rows: key -> (file, sha256, updated).
fn manifest(dir: &Path) -> Vec<[String; 4]> {
    let mut r = csv::Reader::from_path(dir.join("manifest.csv")).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["key", "file", "sha256", "updated"]
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            [0, 1, 2, 3].map(|i| rec[i].to_owned())
        })
        .collect()
}

fn engine(src: MemorySource, dir: &Path, policy: Policy) -> Engine {
    Engine::new(src)
        .with_sink(FolderSink::new(dir).unwrap(), Profile::ad_thumbnail())
        .with_policy(policy)
}

#[tokio::test]
async fn an_engine_run_writes_the_photos_and_the_manifest() {
    let tmp = tempdir("engine");
    let dir = tmp.path().join("out");
    let src = || {
        MemorySource::new()
            .with_photo("carol", jpeg(3))
            .with_photo("Alice", jpeg(1))
            .with_photo("bob", jpeg(2))
    };
    let report = engine(src(), &dir, Policy::default()).run().await.unwrap();
    assert_eq!(report.failed(), 0, "{:#?}", report.outcomes);
    assert_eq!(
        names(&dir),
        ["Alice.jpg", "bob.jpg", "carol.jpg", "manifest.csv"]
    );
    let rows = manifest(&dir);
    let keys: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        keys,
        ["Alice", "bob", "carol"],
        "sorted by key, case ignored"
    );
    for [key, file, sha, updated] in &rows {
        assert_eq!(file, &format!("{key}.jpg"));
        let bytes = std::fs::read(dir.join(file)).unwrap();
        assert_eq!(sha, &sha256_hex(&bytes));
        // 96x96 renditions (the profile given), not the source photos.
        assert_ne!(bytes, jpeg(1));
        // RFC 3339, UTC: 2026-01-31T12:34:56Z
        let b = updated.as_bytes();
        assert_eq!(b.len(), 20, "{updated}");
        assert!(
            b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[19] == b'Z',
            "{updated}"
        );
        assert!(updated.as_str() >= "2024");
    }

    // A second run changes nothing, the manifest included.
    let before: Vec<_> = names(&dir)
        .iter()
        .map(|n| std::fs::metadata(dir.join(n)).unwrap().modified().unwrap())
        .collect();
    let report = engine(src(), &dir, Policy::default()).run().await.unwrap();
    assert!(
        report.outcomes.iter().all(|o| o.action == Action::Skip),
        "{:#?}",
        report.outcomes
    );
    let after: Vec<_> = names(&dir)
        .iter()
        .map(|n| std::fs::metadata(dir.join(n)).unwrap().modified().unwrap())
        .collect();
    assert_eq!(before, after);
    assert_eq!(manifest(&dir), rows);
}

#[tokio::test]
async fn leavers_are_removed_when_the_policy_says_so() {
    let tmp = tempdir("leavers");
    let dir = tmp.path().join("out");
    let both = MemorySource::new()
        .with_photo("alice", jpeg(1))
        .with_photo("dave", jpeg(4));
    let report = engine(both, &dir, Policy::default()).run().await.unwrap();
    assert_eq!(report.failed(), 0);
    assert_eq!(manifest(&dir).len(), 2);

    // dave left: kept by default, listed as a leaver.
    let alice = || MemorySource::new().with_photo("alice", jpeg(1));
    let report = engine(alice(), &dir, Policy::default())
        .run()
        .await
        .unwrap();
    let dave = report
        .outcomes
        .iter()
        .find(|o| o.key.as_str() == "dave")
        .expect("dave is in the plan");
    assert_eq!((dave.action, dave.reason), (Action::Skip, Reason::Leaver));
    assert!(dir.join("dave.jpg").is_file());

    // Removed with the policy, and gone from the manifest.
    let report = engine(alice(), &dir, Policy::default().with_remove_leavers(true))
        .run()
        .await
        .unwrap();
    assert_eq!(report.failed(), 0, "{:#?}", report.outcomes);
    assert!(!dir.join("dave.jpg").exists());
    let rows = manifest(&dir);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], "alice");
}

#[tokio::test]
async fn withheld_people_are_removed() {
    let tmp = tempdir("withheld");
    let dir = tmp.path().join("out");
    let src = MemorySource::new()
        .with_photo("alice", jpeg(1))
        .with_photo("erin", jpeg(5));
    let report = engine(src, &dir, Policy::default()).run().await.unwrap();
    assert_eq!(report.failed(), 0);
    assert!(dir.join("erin.jpg").is_file());

    // Kept when the policy says so.
    let src = || {
        MemorySource::new()
            .with_photo("alice", jpeg(1))
            .with_withheld("erin")
    };
    let report = engine(src(), &dir, Policy::default().with_remove_withheld(false))
        .run()
        .await
        .unwrap();
    assert_eq!(report.failed(), 0);
    assert!(dir.join("erin.jpg").is_file());

    let report = engine(src(), &dir, Policy::default()).run().await.unwrap();
    let erin = report
        .outcomes
        .iter()
        .find(|o| o.key.as_str() == "erin")
        .unwrap();
    assert_eq!(
        (erin.action, erin.reason, erin.status),
        (Action::Delete, Reason::Withheld, Status::Done)
    );
    assert!(!dir.join("erin.jpg").exists());
    assert_eq!(
        manifest(&dir)
            .iter()
            .map(|r| r[0].as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );
}
