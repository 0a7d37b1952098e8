//! `--sink folder:DIR` from outside: the photo export (`DIR/<key>.jpg`, `DIR/manifest.csv`),
//! re-runs that write nothing, leavers removed on request, hostile keys failing only their
//! user, plans and checks that create nothing, relative paths in a config file.

mod common;

use common::{cli, succeeded};

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::SystemTime;

use userphoto::normalize::testimage;

fn tempdir(name: &str) -> common::TestDir {
    common::tempdir("folder-sink", name)
}

/// `photos/<user>.jpg` for each user, 300x360 and different.
fn photos(dir: &Path, users: &[&str]) {
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    for (i, u) in users.iter().enumerate() {
        std::fs::write(
            dir.join("photos").join(format!("{u}.jpg")),
            testimage::photo_jpeg(300, 360, i as u32 + 1),
        )
        .unwrap();
    }
}

fn run(dir: &Path, args: &[&str]) -> Output {
    cli().current_dir(dir).args(args).output().unwrap()
}

/// `sync --source SOURCE --sink folder:out`, with a report and a state file.
fn sync(dir: &Path, source: &str, extra: &[&str]) -> Output {
    let mut a = vec![
        "sync",
        "--source",
        source,
        "--sink",
        "folder:out",
        "--report",
        "report.json",
        "--state",
        "state.redb",
    ];
    a.extend_from_slice(extra);
    run(dir, &a)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Each file's modification time in `dir`.
fn times(dir: &Path) -> BTreeMap<String, SystemTime> {
    names(dir)
        .into_iter()
        .map(|n| {
            let t = std::fs::metadata(dir.join(&n)).unwrap().modified().unwrap();
            (n, t)
        })
        .collect()
}

/// The manifest's rows, after checking its header.
fn manifest(out: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("key,file,sha256,updated"));
    lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap()
}

#[test]
fn a_folder_export_of_648_px_photos_with_a_manifest_and_reruns_that_write_nothing() {
    let d = tempdir("export");
    photos(&d, &["alice", "bob", "carol"]);
    succeeded(&sync(&d, "folder:photos", &[]));
    let out = d.join("out");
    assert_eq!(
        names(&out),
        ["alice.jpg", "bob.jpg", "carol.jpg", "manifest.csv"]
    );
    for u in ["alice", "bob", "carol"] {
        let p = out.join(format!("{u}.jpg"));
        assert_eq!(
            image::image_dimensions(&p).unwrap(),
            (648, 648),
            "the graph profile by default"
        );
    }
    let rows = manifest(&out);
    assert_eq!(
        rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["alice", "bob", "carol"]
    );
    for r in &rows {
        assert_eq!(r[1], format!("{}.jpg", r[0]));
        assert_eq!(r[2].len(), 64);
        assert!(r[3].ends_with('Z'), "{r:?}");
    }
    assert_eq!(report(&d)["sinks"]["folder"]["put"], 3, "{}", report(&d));

    // Again: nothing is written, the manifest included.
    let before = times(&out);
    succeeded(&sync(&d, "folder:photos", &[]));
    assert_eq!(times(&out), before);
    let counts = &report(&d)["sinks"]["folder"];
    assert_eq!(
        (&counts["put"], &counts["unchanged"]),
        (&0.into(), &3.into()),
        "{counts}"
    );

    // Again without a state file (the folder itself says what it holds).
    let o = run(
        &d,
        &[
            "sync",
            "--source",
            "folder:photos",
            "--sink",
            "folder:out",
            "--no-backup",
        ],
    );
    succeeded(&o);
    assert_eq!(times(&out), before);
}

#[test]
fn leavers_are_kept_unless_asked_then_removed() {
    let d = tempdir("leavers");
    photos(&d, &["alice", "dave"]);
    succeeded(&sync(&d, "folder:photos", &[]));
    std::fs::remove_file(d.join("photos/dave.jpg")).unwrap();
    succeeded(&sync(&d, "folder:photos", &[]));
    assert!(d.join("out/dave.jpg").is_file(), "kept by default");
    succeeded(&sync(&d, "folder:photos", &["--remove-leavers"]));
    assert_eq!(names(&d.join("out")), ["alice.jpg", "manifest.csv"]);
    let rows = manifest(&d.join("out"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], "alice");
    // The removed photo was kept, and `restore` puts it back (the manifest too).
    let removed = std::fs::read(d.join("out/dave.jpg"));
    assert!(removed.is_err());
    let o = run(
        &d,
        &[
            "restore",
            "--sink",
            "folder:out",
            "--backup-dir",
            "userphoto-backup",
        ],
    );
    let text = succeeded(&o);
    assert!(text.contains("restored dave"), "{text}");
    assert_eq!(
        names(&d.join("out")),
        ["alice.jpg", "dave.jpg", "manifest.csv"]
    );
    assert_eq!(manifest(&d.join("out")).len(), 2);
}

#[test]
fn a_hostile_key_fails_that_user_only_and_writes_nothing_outside() {
    let d = tempdir("hostile");
    photos(&d, &["alice", "x"]);
    std::fs::write(
        d.join("people.csv"),
        "key,path\n\
         alice,photos/alice.jpg\n\
         ../evil,photos/x.jpg\n\
         CON,photos/x.jpg\n\
         a\\b,photos/x.jpg\n\
         sub/dir,photos/x.jpg\n",
    )
    .unwrap();
    let before: Vec<String> = names(&d);
    let o = sync(&d, "csv:people.csv", &["--json"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let outcomes = r["outcomes"].as_array().unwrap();
    for k in ["../evil", "CON", "a\\b", "sub/dir"] {
        let it = outcomes
            .iter()
            .find(|o| o["key"] == k)
            .unwrap_or_else(|| panic!("{k} in {r}"));
        assert_eq!(it["status"], "failed", "{it}");
        assert!(
            it["message"]
                .as_str()
                .unwrap_or_default()
                .contains("not a safe file name"),
            "{it}"
        );
    }
    assert_eq!(names(&d.join("out")), ["alice.jpg", "manifest.csv"]);
    // Only what a run writes appeared beside the folder (no `evil.jpg`, no `sub`).
    let mut expected: Vec<String> = before;
    expected.extend(["out", "report.json", "state.redb"].map(String::from));
    expected.sort();
    let now: Vec<String> = names(&d)
        .into_iter()
        .filter(|n| n != "userphoto-backup" && n != "state.redb.lock")
        .collect();
    assert_eq!(now, expected);
    let parent = d.parent().unwrap();
    assert!(!parent.join("evil.jpg").exists());
}

#[test]
fn plans_dry_runs_and_checks_create_nothing() {
    let d = tempdir("plan");
    photos(&d, &["alice"]);
    let o = run(
        &d,
        &["plan", "--source", "folder:photos", "--sink", "folder:out"],
    );
    let text = succeeded(&o);
    assert!(text.contains("alice"), "{text}");
    let o = run(
        &d,
        &[
            "sync",
            "--source",
            "folder:photos",
            "--sink",
            "folder:out",
            "--dry-run",
        ],
    );
    succeeded(&o);
    assert!(!d.join("out").exists());

    let o = run(&d, &["check", "--sink", "folder:out"]);
    let json = succeeded(&o);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["kind"], "folder");
    assert_eq!(v["exists"], false);
    assert!(!d.join("out").exists());

    let o = run(&d, &["check", "--sink", "folder:"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_config_files_folder_sink_is_relative_to_it() {
    let d = tempdir("config");
    let conf = d.join("conf");
    photos(&conf, &["alice"]);
    std::fs::write(
        conf.join("userphoto.toml"),
        "source = \"folder:photos\"\nsink = [\"folder:export\"]\nbackup-dir = \"backups\"\n",
    )
    .unwrap();
    let o = run(&d, &["sync", "--config", "conf/userphoto.toml"]);
    succeeded(&o);
    assert_eq!(names(&conf.join("export")), ["alice.jpg", "manifest.csv"]);
    assert!(!d.join("export").exists());
}

#[test]
fn the_help_names_the_folder_sink() {
    let o = cli().args(["sync", "--help"]).output().unwrap();
    let help = succeeded(&o);
    assert!(help.contains("folder:DIR"), "{help}");
    let o = run(
        Path::new("."),
        &["sync", "--source", "folder:x", "--sink", "nope"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("folder:DIR"));
}
