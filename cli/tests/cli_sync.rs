//! End to end on the LDIF path, from outside: `userphoto sync`, `plan` and `restore` against
//! generated photo folders, CSV manifests and directory exports; change files applied with
//! the tests' own LDIF code (as `ldapmodify` would) between runs.

mod common;

use common::{cli, dn};

use std::path::{Path, PathBuf};
use std::process::Output;

use userphoto::normalize::testimage;
use userphoto_testkit::ldif::{self, Entry};

fn tempdir(name: &str) -> common::TestDir {
    common::tempdir("sync", name)
}

/// A folder with photos for `users` (seeded by position) and an export listing `directory`,
/// some with photos already.
struct World {
    dir: common::TestDir,
}

impl World {
    fn new(name: &str, photos: &[&str], directory: &[(&str, Option<Vec<u8>>)]) -> Self {
        let dir = tempdir(name);
        std::fs::create_dir_all(dir.join("photos")).unwrap();
        for (i, u) in photos.iter().enumerate() {
            std::fs::write(
                dir.join("photos").join(format!("{u}.jpg")),
                testimage::photo_jpeg(300, 360, i as u32 + 1),
            )
            .unwrap();
        }
        let entries: Vec<Entry> = directory
            .iter()
            .map(|(u, p)| {
                let mut e = Entry::new(&dn(u))
                    .with("objectClass", "user")
                    .with("sAMAccountName", *u);
                if let Some(p) = p {
                    e = e.with("thumbnailPhoto", p.clone());
                }
                e
            })
            .collect();
        std::fs::write(dir.join("export.ldif"), ldif::write_export(&entries)).unwrap();
        Self { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    fn sync(&self, extra: &[&str]) -> Output {
        let mut c = cli();
        c.current_dir(&self.dir).args([
            "sync",
            "--source",
            "folder:photos",
            "--sink",
            "ldif:export.ldif",
            "--out",
            "changes.ldif",
            "--state",
            "state.redb",
            "--report",
            "report.json",
        ]);
        c.args(extra);
        c.output().unwrap()
    }

    fn report(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.path("report.json")).unwrap()).unwrap()
    }

    fn changes(&self) -> Vec<ldif::Change> {
        ldif::parse_changes(&std::fs::read_to_string(self.path("changes.ldif")).unwrap())
    }

    /// Applies the change file to the export, as an admin running `ldapmodify -f` and
    /// exporting again would.
    fn apply_changes(&self) {
        let export = std::fs::read_to_string(self.path("export.ldif")).unwrap();
        let changes = std::fs::read_to_string(self.path("changes.ldif")).unwrap();
        std::fs::write(self.path("export.ldif"), ldif::apply(&export, &changes)).unwrap();
    }

    fn photo_in_export(&self, user: &str) -> Option<Vec<u8>> {
        let export = std::fs::read_to_string(self.path("export.ldif")).unwrap();
        ldif::parse_export(&export)
            .into_iter()
            .find(|e| e.dn == dn(user))
            .and_then(|e| e.get("thumbnailPhoto").first().map(|v| v.to_vec()))
    }
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{out}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn old_photo(seed: u32) -> Vec<u8> {
    userphoto::normalize::bench::encode(&testimage::photo_rgb(96, 96, seed), 96, 96, 50).unwrap()
}

#[test]
fn a_second_run_writes_nothing_and_a_changed_photo_is_the_only_change() {
    let w = World::new(
        "rerun",
        &["alice", "bob", "carol"],
        &[
            ("alice", None),
            ("bob", Some(old_photo(9))),
            ("carol", None),
        ],
    );
    let out = ok(&w.sync(&[]));
    assert!(out.contains("plan: 3 to write"), "{out}");
    let changes = w.changes();
    assert_eq!(changes.len(), 3);
    for c in &changes {
        assert_eq!(c.ops.len(), 1);
        let (op, attr, values) = &c.ops[0];
        assert_eq!((op.as_str(), attr.as_str()), ("replace", "thumbnailPhoto"));
        assert_eq!(values.len(), 1);
        assert!(values[0].len() <= 10_000 && values[0].starts_with(b"\xFF\xD8"));
    }
    let r = w.report();
    assert_eq!(r["sinks"]["ldif"]["put"], 3);
    assert_eq!(r["timings"]["decoded"], 3);

    // The admin applies the change file; the next run has nothing to do and decodes nothing.
    w.apply_changes();
    let out = ok(&w.sync(&[]));
    assert!(
        out.contains("plan: 0 to write, 0 to remove, 3 unchanged"),
        "{out}"
    );
    assert!(w.changes().is_empty(), "a second run writes nothing");
    let r = w.report();
    assert_eq!(r["timings"]["decoded"], 0, "{r}");
    assert_eq!(r["sinks"]["ldif"]["unchanged"], 3);

    // Bob gets a new photo: his is the only change.
    std::fs::write(
        w.path("photos/bob.jpg"),
        testimage::photo_jpeg(300, 360, 77),
    )
    .unwrap();
    ok(&w.sync(&[]));
    let changes = w.changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].dn, dn("bob"));
    assert_eq!(w.report()["timings"]["decoded"], 1);
}

#[test]
fn withheld_photos_are_removed_and_leavers_kept_unless_asked() {
    let w = World::new(
        "withheld",
        &["alice"],
        &[
            ("alice", None),
            ("wanda", Some(old_photo(1))),
            ("leo", Some(old_photo(2))),
        ],
    );
    std::fs::write(
        w.path("manifest.csv"),
        "key,path,withheld\nalice,photos/alice.jpg,\nwanda,,yes\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut c = cli();
        c.current_dir(&w.dir).args([
            "sync",
            "--source",
            "csv:manifest.csv",
            "--sink",
            "ldif:export.ldif",
            "--out",
            "changes.ldif",
        ]);
        c.args(extra);
        c.output().unwrap()
    };
    let out = ok(&run(&[]));
    assert!(out.contains("keep   leo"), "{out}");
    let changes = w.changes();
    let wanda = changes.iter().find(|c| c.dn == dn("wanda")).expect("wanda");
    assert_eq!(wanda.ops[0].0, "delete");
    assert_eq!(wanda.ops[0].1, "thumbnailPhoto");
    assert!(
        changes.iter().all(|c| c.dn != dn("leo")),
        "leaver kept by default"
    );
    assert_eq!(changes.len(), 2);

    ok(&run(&["--remove-leavers"]));
    let changes = w.changes();
    let leo = changes
        .iter()
        .find(|c| c.dn == dn("leo"))
        .expect("leo removed");
    assert_eq!(leo.ops[0].0, "delete");
    // The change file applies cleanly.
    w.apply_changes();
    assert_eq!(w.photo_in_export("leo"), None);
    assert_eq!(w.photo_in_export("wanda"), None);
    assert!(w.photo_in_export("alice").is_some());
}

#[test]
fn dry_run_and_plan_change_nothing() {
    let w = World::new("dry", &["alice"], &[("alice", None)]);
    let o = w.sync(&["--dry-run"]);
    let out = ok(&o);
    assert!(out.contains("dry run"), "{out}");
    assert!(
        !w.path("changes.ldif").exists(),
        "a dry run writes no change file"
    );
    assert_eq!(w.report()["outcomes"][0]["status"], "planned");
    let o = cli()
        .current_dir(&w.dir)
        .args([
            "plan",
            "--source",
            "folder:photos",
            "--sink",
            "ldif:export.ldif",
        ])
        .output()
        .unwrap();
    let out = ok(&o);
    assert!(out.contains("put    alice"), "{out}");
    assert!(!w.path("changes.ldif").exists());
}

#[test]
fn failures_give_exit_code_1_and_the_json_report_names_them() {
    let w = World::new("fail", &["alice", "ghost"], &[("alice", None)]);
    std::fs::write(w.path("photos/broken.jpg"), b"\xFF\xD8\xFF\xE0 truncated").unwrap();
    let o = w.sync(&["--json"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let outcomes = r["outcomes"].as_array().unwrap();
    let by = |k: &str| {
        outcomes
            .iter()
            .find(|o| o["key"] == k)
            .unwrap_or_else(|| panic!("{k} in {r}"))
    };
    assert_eq!(by("ghost")["reason"], "unmatched");
    assert_eq!(by("ghost")["status"], "failed");
    assert_eq!(by("alice")["status"], "done");
    assert_eq!(w.changes().len(), 1);
}

#[test]
fn bad_usage_and_hostile_exports_exit_2_with_one_line() {
    let w = World::new("usage", &["alice"], &[("alice", None)]);
    let run = |args: &[&str]| {
        let o = cli().current_dir(&w.dir).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        (o.status.code(), err)
    };
    let base = ["sync", "--source", "folder:photos"];
    let (code, err) = run(&[&base[..], &["--sink", "ldif:export.ldif"]].concat());
    assert_eq!(code, Some(2));
    assert!(err.contains("--out"), "{err}");
    let (code, err) = run(&[&base[..], &["--sink", "ftp:x", "--out", "c.ldif"]].concat());
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown kind"), "{err}");
    let (code, _) = run(&["sync", "--sink", "ldif:export.ldif"]);
    assert_eq!(code, Some(2), "missing --source is bad usage");

    let export = std::fs::read_to_string(w.path("export.ldif")).unwrap();
    let photo = testimage::photo_jpeg(40, 40, 3);
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&photo)
    };
    let hostile: Vec<(&str, String)> = vec![
        (
            "truncated",
            format!(
                "{export}dn: CN=t,DC=example,DC=test\nsAMAccountName: t\nthumbnailPhoto:: {}",
                &b64[..b64.len() / 2 + 1]
            ),
        ),
        (
            "bad base64",
            format!("{export}dn: CN=b,DC=example,DC=test\nthumbnailPhoto:: @@not*base64@@\n"),
        ),
        (
            "enormous line",
            format!(
                "{export}dn: CN=e,DC=example,DC=test\ndescription: {}\n",
                "x".repeat(5 << 20)
            ),
        ),
    ];
    for (what, text) in hostile {
        std::fs::write(w.path("hostile.ldif"), text).unwrap();
        let (code, err) = run(&[
            &base[..],
            &["--sink", "ldif:hostile.ldif", "--out", "c.ldif"],
        ]
        .concat());
        assert_eq!(code, Some(2), "{what}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: one line: {err}");
        assert!(
            err.contains("hostile.ldif"),
            "{what}: names the file: {err}"
        );
        assert!(err.len() < 400, "{what}: short: {err}");
    }
}

#[test]
fn an_interrupted_run_is_completed_by_the_next_one() {
    let users: Vec<String> = (0..12).map(|i| format!("user{i:02}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let dir: Vec<(&str, Option<Vec<u8>>)> = names.iter().map(|u| (*u, None)).collect();
    let w = World::new("crash", &names, &dir);
    // The process dies (abort: no destructors, no flushing) right after the 5th write.
    let o = w.sync(&["--concurrency", "1"]).status;
    assert!(o.success(), "a normal run works first");
    std::fs::remove_file(w.path("state.redb")).unwrap();
    let mut c = cli();
    c.current_dir(&w.dir)
        .env("USERPHOTO_TEST_ABORT_AFTER", "5")
        .args([
            "sync",
            "--source",
            "folder:photos",
            "--sink",
            "ldif:export.ldif",
            "--out",
            "changes.ldif",
            "--state",
            "state.redb",
            "--concurrency",
            "1",
        ]);
    let crashed = c.output().unwrap();
    common::assert_aborted(&crashed);
    // The change file is written whole at the end, sorted: the crash left it empty, and
    // the writes made before it in `changes.ldif.partial`.
    assert!(w.changes().is_empty(), "the crash left a change file");
    let partial =
        ldif::parse_changes(&std::fs::read_to_string(w.path("changes.ldif.partial")).unwrap());
    assert!(
        (5..12).contains(&partial.len()),
        "the crash left the writes made in changes.ldif.partial: {} records",
        partial.len()
    );

    // The re-run completes: every user exactly once, and the file applies cleanly.
    ok(&w.sync(&[]));
    let changes = w.changes();
    let mut dns: Vec<&str> = changes.iter().map(|c| c.dn.as_str()).collect();
    dns.sort();
    let mut want: Vec<String> = names.iter().map(|u| dn(u)).collect();
    want.sort();
    assert_eq!(dns, want);
    w.apply_changes();
    let out = ok(&w.sync(&[]));
    assert!(out.contains("plan: 0 to write"), "{out}");
    assert_eq!(w.report()["timings"]["decoded"], 0);
}

#[test]
fn backup_and_restore_round_trip() {
    let originals: Vec<Vec<u8>> = (0..3).map(|i| old_photo(20 + i)).collect();
    let w = World::new(
        "restore",
        &["alice", "bob", "carol", "dave"],
        &[
            ("alice", Some(originals[0].clone())),
            ("bob", Some(originals[1].clone())),
            ("carol", Some(originals[2].clone())),
            ("dave", None),
        ],
    );
    ok(&w.sync(&["--backup-dir", "backups"]));
    w.apply_changes();
    for (u, orig) in ["alice", "bob", "carol"].iter().zip(&originals) {
        assert_ne!(w.photo_in_export(u).as_ref(), Some(orig), "{u} replaced");
    }
    assert!(
        w.photo_in_export("dave").is_some(),
        "dave got a first photo"
    );
    let journal = std::fs::read_to_string(w.path("backups/journal.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 4, "{journal}");

    // Restore one user, then everyone.
    let restore = |extra: &[&str]| {
        let mut c = cli();
        c.current_dir(&w.dir).args([
            "restore",
            "--sink",
            "ldif:export.ldif",
            "--out",
            "changes.ldif",
            "--backup-dir",
            "backups",
        ]);
        c.args(extra).output().unwrap()
    };
    let out = ok(&restore(&["--user", "bob"]));
    assert!(out.contains("restored bob"), "{out}");
    assert_eq!(w.changes().len(), 1);
    let o = restore(&[]);
    let out = ok(&o);
    assert!(out.contains("removed  dave"), "{out}");
    w.apply_changes();
    for (u, orig) in ["alice", "bob", "carol"].iter().zip(&originals) {
        assert_eq!(w.photo_in_export(u).as_ref(), Some(orig), "{u} restored");
    }
    assert_eq!(
        w.photo_in_export("dave"),
        None,
        "the photo the sync added is removed"
    );
    let o = cli()
        .current_dir(&w.dir)
        .args([
            "restore",
            "--sink",
            "ldif:export.ldif",
            "--out",
            "c.ldif",
            "--backup-dir",
            "none",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_shipped_demo_syncs() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let d = tempdir("demo");
    let o = cli()
        .current_dir(&d)
        .args(["sync", "--source"])
        .arg(format!("folder:{}", demo.join("photos").display()))
        .arg("--sink")
        .arg(format!("ldif:{}", demo.join("directory.ldif").display()))
        .args(["--out", "changes.ldif"])
        .output()
        .unwrap();
    let out = ok(&o);
    assert!(out.contains("1 leavers kept"), "{out}");
    let changes = ldif::parse_changes(&std::fs::read_to_string(d.join("changes.ldif")).unwrap());
    assert!(changes.len() >= 4, "{out}");
    assert!(
        changes
            .iter()
            .any(|c| c.dn.contains("M\u{fc}ller\\, J\u{fc}rgen")),
        "the DN with a comma and umlauts is kept exactly"
    );
}

fn run_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = cli().current_dir(dir).args(args).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn excel_manifests_sync_and_unreadable_sources_stop_with_their_reason() {
    let w = World::new(
        "excel",
        &["alice", "bob"],
        &[("alice", None), ("bob", None)],
    );
    // Excel, German locale, "CSV UTF-8": BOM, `;`, CRLF.
    std::fs::write(
        w.path("people.csv"),
        "\u{feff}key;path\r\nalice;photos/alice.jpg\r\nbob;photos/bob.jpg\r\n",
    )
    .unwrap();
    let sync = |source: &str, extra: &[&str]| {
        let mut args = vec![
            "sync",
            "--source",
            source,
            "--sink",
            "ldif:export.ldif",
            "--out",
            "changes.ldif",
            "--no-backup",
        ];
        args.extend_from_slice(extra);
        run_in(&w.dir, &args)
    };
    let (code, out, err) = sync("csv:people.csv", &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("plan: 2 to write"), "{out}");
    assert_eq!(w.changes().len(), 2);
    let (code, out, err) = sync("csv:people.csv", &["--csv-delimiter", ";"]);
    assert_eq!(code, Some(0), "{out}{err}");

    // Unreadable at all: exit 2, one line with the reason, nothing planned.
    for (source, extra, reason) in [
        (
            "csv:people.csv",
            &["--csv-delimiter", ","][..],
            "\"key;path\"",
        ),
        ("csv:absent.csv", &[][..], "absent.csv"),
        ("folder:no-such-folder", &[][..], "no-such-folder"),
    ] {
        let (code, out, err) = sync(source, extra);
        assert_eq!(code, Some(2), "{source}: {out}{err}");
        // After the progress line of the listing, one line with the reason.
        let last = err.trim().lines().last().unwrap_or_default();
        assert!(last.contains(reason), "{source}: {err}");
        assert_eq!(
            err.lines()
                .filter(|l| !l.contains("listing the source"))
                .count(),
            1,
            "{source}: one line: {err}"
        );
        assert!(!out.contains("plan:"), "{source}: not an empty plan: {out}");
    }
    let (code, _, err) = sync("csv:people.csv", &["--csv-delimiter", "ab"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--csv-delimiter"), "{err}");

    // A row that cannot be tied to a user is printed in the plan and the summary.
    std::fs::write(
        w.path("rows.csv"),
        "key,path\r\nalice,photos/alice.jpg\r\n,photos/bob.jpg\r\n",
    )
    .unwrap();
    let (code, out, err) = sync("csv:rows.csv", &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("1 source failure"), "{out}");
    assert!(
        out.contains("SOURCE ") && out.contains("empty key"),
        "{out}"
    );
    assert!(
        out.contains("source failure: ") && out.contains("rows.csv:"),
        "{out}"
    );
}

#[test]
fn a_second_run_on_one_state_file_refuses_naming_the_first() {
    let w = World::new("locked", &["alice"], &[("alice", None)]);
    // This test process is the first run: it holds the state file.
    let held = userphoto::sync::StateStore::open(w.path("state.redb")).unwrap();
    let o = w.sync(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("process {}", std::process::id())),
        "names the first run: {err}"
    );
    assert!(err.contains(" UTC"), "and when it started: {err}");
    assert!(
        !w.path("changes.ldif").exists(),
        "nothing was touched, not even the change file of the run that holds the lock"
    );
    drop(held);
    // Its lock went with it: the next run goes ahead.
    ok(&w.sync(&[]));

    // A run killed in the middle leaves no lock behind (the OS lock dies with it).
    let mut c = cli();
    c.current_dir(&w.dir)
        .env("USERPHOTO_TEST_ABORT_AFTER", "1")
        .args([
            "sync",
            "--source",
            "folder:photos",
            "--sink",
            "ldif:empty.ldif",
            "--out",
            "c.ldif",
            "--state",
            "state.redb",
        ]);
    std::fs::write(
        w.path("empty.ldif"),
        ldif::write_export(&[Entry::new(&dn("alice"))
            .with("objectClass", "user")
            .with("sAMAccountName", "alice")]),
    )
    .unwrap();
    common::assert_aborted(&c.output().unwrap());
    ok(&w.sync(&[]));
}

#[test]
fn restore_undoes_the_last_run_checks_hashes_and_can_itself_be_undone() {
    let originals: Vec<Vec<u8>> = (0..2).map(|i| old_photo(40 + i)).collect();
    let w = World::new(
        "runs",
        &["alice", "bob"],
        &[
            ("alice", Some(originals[0].clone())),
            ("bob", Some(originals[1].clone())),
        ],
    );
    let (code, out, err) = run_in(&w.dir, &["runs", "--backup-dir", "backups"]);
    assert_eq!(code, Some(2), "no journal yet: {out}{err}");
    // Run 1 replaces both photos.
    let out = ok(&w.sync(&["--backup-dir", "backups"]));
    let run1 = w.report()["backup_run"].as_str().unwrap().to_owned();
    assert!(out.contains(&format!("backup run: {run1}")), "{out}");
    w.apply_changes();
    let synced_alice = w.photo_in_export("alice").unwrap();
    // Run 2: bob's source photo changes.
    std::fs::write(
        w.path("photos/bob.jpg"),
        testimage::photo_jpeg(300, 360, 99),
    )
    .unwrap();
    ok(&w.sync(&["--backup-dir", "backups"]));
    let run2 = w.report()["backup_run"].as_str().unwrap().to_owned();
    assert_ne!(run1, run2);
    w.apply_changes();
    let synced_bob = w.photo_in_export("bob").unwrap();
    let runs = ok(&cli()
        .current_dir(&w.dir)
        .args(["runs", "--backup-dir", "backups"])
        .output()
        .unwrap());
    assert_eq!(runs.lines().count(), 2, "{runs}");
    assert!(runs.lines().next().unwrap().starts_with(&run1), "{runs}");
    assert!(runs.lines().nth(1).unwrap().starts_with(&run2), "{runs}");

    let restore = |extra: &[&str]| {
        let mut args = vec![
            "restore",
            "--sink",
            "ldif:export.ldif",
            "--out",
            "changes.ldif",
            "--backup-dir",
            "backups",
        ];
        args.extend_from_slice(extra);
        run_in(&w.dir, &args)
    };
    // By default the last run: only bob, back to his photo of run 1.
    let (code, out, err) = restore(&[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!("run {run2} undone for 1 users")),
        "{out}"
    );
    assert!(out.contains("restored bob"), "{out}");
    let changes = w.changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].dn, dn("bob"));
    w.apply_changes();
    assert_ne!(w.photo_in_export("bob"), Some(synced_bob.clone()));
    assert_eq!(w.photo_in_export("alice"), Some(synced_alice.clone()));
    let journal = std::fs::read_to_string(w.path("backups/journal.jsonl")).unwrap();
    let own: serde_json::Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert_eq!(own["undoes"], run2.as_str(), "{journal}");
    let own_run = own["run"].as_str().unwrap().to_owned();
    assert!(out.contains(&format!("restore --run {own_run}")), "{out}");

    // Run 1 for alice, after someone else changed her photo: skipped with the reason.
    let mut entries = ldif::parse_export(&std::fs::read_to_string(w.path("export.ldif")).unwrap());
    for e in &mut entries {
        if e.dn == dn("alice") {
            e.attrs.retain(|(n, _)| n != "thumbnailPhoto");
            e.attrs.push(("thumbnailPhoto".into(), old_photo(77)));
        }
    }
    std::fs::write(w.path("export.ldif"), ldif::write_export(&entries)).unwrap();
    let (code, out, err) = restore(&["--run", &run1, "--user", "alice"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("SKIP") && out.contains("changed since run"),
        "{out}"
    );
    assert!(w.changes().is_empty(), "nothing written: {out}");
    let (code, out, err) = restore(&["--run", &run1, "--user", "alice", "--force"]);
    assert_eq!(code, Some(0), "{out}{err}");
    w.apply_changes();
    assert_eq!(w.photo_in_export("alice"), Some(originals[0].clone()));

    // The first restore can itself be undone: bob gets run 2's photo back.
    let (code, out, err) = restore(&["--run", &own_run]);
    assert_eq!(code, Some(0), "{out}{err}");
    w.apply_changes();
    assert_eq!(w.photo_in_export("bob"), Some(synced_bob));
    let (code, _, err) = restore(&["--run", "no-such-run"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no-such-run"), "{err}");
}

/// `--crop` is part of what the state file records: the same crop decodes nothing on a
/// re-run, another crop makes every rendition again.
#[test]
fn changing_the_crop_renders_again_and_keeping_it_does_not() {
    let w = World::new(
        "crop",
        &["alice", "bob"],
        &[("alice", None), ("bob", Some(old_photo(4)))],
    );
    ok(&w.sync(&["--crop", "centre"]));
    assert_eq!(w.report()["timings"]["decoded"], 2);
    w.apply_changes();
    let out = ok(&w.sync(&["--crop", "centre"]));
    assert!(out.contains("2 unchanged"), "{out}");
    assert_eq!(
        w.report()["timings"]["decoded"],
        0,
        "the same crop: nothing decoded"
    );
    // The default crop (face; attention on these generated photos without a face).
    let out = ok(&w.sync(&[]));
    assert_eq!(w.report()["timings"]["decoded"], 2, "another crop: {out}");
    w.apply_changes();
    ok(&w.sync(&[]));
    assert_eq!(w.report()["timings"]["decoded"], 0);
    // A crop the tool does not know is a usage error.
    let o = w.sync(&["--crop", "sideways"]);
    assert_eq!(o.status.code(), Some(2));
}
