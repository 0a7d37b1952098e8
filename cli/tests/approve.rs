//! The four-eyes workflow from outside: `plan --save-plan FILE` writes the plan with what it
//! was based on, `sync --plan FILE` applies exactly that plan (changes since are skipped and
//! named, users added since are not written, other settings are refused with exit code 2),
//! on the offline LDIF path.

mod common;

use common::{cli, dn};

use std::path::PathBuf;
use std::process::Output;

use userphoto::normalize::testimage;
use userphoto_testkit::ldif::{self, Entry};

/// Photos for some users, an export of the directory (some with photos already).
struct World {
    dir: common::TestDir,
}

impl World {
    fn new(name: &str, photos: &[&str], directory: &[(&str, Option<Vec<u8>>)]) -> Self {
        let dir = common::tempdir("approve", name);
        std::fs::create_dir_all(dir.join("photos")).unwrap();
        let w = Self { dir };
        for (i, u) in photos.iter().enumerate() {
            w.photo(u, i as u32 + 1);
        }
        w.export(directory);
        w
    }

    fn photo(&self, user: &str, seed: u32) {
        std::fs::write(
            self.path("photos").join(format!("{user}.jpg")),
            testimage::photo_jpeg(300, 360, seed),
        )
        .unwrap();
    }

    fn export(&self, directory: &[(&str, Option<Vec<u8>>)]) {
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
        std::fs::write(self.path("export.ldif"), ldif::write_export(&entries)).unwrap();
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    fn run(&self, cmd: &str, extra: &[&str]) -> Output {
        let mut c = cli();
        c.current_dir(&self.dir).args([
            cmd,
            "--source",
            "folder:photos",
            "--sink",
            "ldif:export.ldif",
            "--out",
            "changes.ldif",
            "--no-backup",
        ]);
        c.args(extra);
        c.output().unwrap()
    }

    fn json(&self, p: &str) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.path(p)).unwrap()).unwrap()
    }

    /// The DNs the change file writes.
    fn written(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.path("changes.ldif")).unwrap_or_default();
        let mut dns: Vec<String> = ldif::parse_changes(&text)
            .into_iter()
            .map(|c| c.dn)
            .collect();
        dns.sort();
        dns
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn outcome<'a>(report: &'a serde_json::Value, user: &str) -> &'a serde_json::Value {
    report["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"] == user)
        .unwrap_or_else(|| panic!("no outcome for {user}: {report}"))
}

#[test]
fn the_plan_file_records_what_each_item_was_based_on() {
    let w = World::new(
        "basis",
        &["alice", "bob"],
        &[
            ("alice", None),
            ("bob", Some(testimage::photo_jpeg(96, 96, 40))),
        ],
    );
    let o = w.run("plan", &["--save-plan", "plan.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("plan saved: plan.json"));
    let p = w.json("plan.json");
    assert_eq!(p["format"], "userphoto-plan/1");
    assert_eq!(p["settings"]["sinks"][0]["name"], "ldif");
    assert_eq!(p["settings"]["sinks"][0]["profile"]["name"], "ad-thumbnail");
    assert_eq!(p["summary"]["put"], 2);
    let items = p["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for it in items {
        assert!(
            it["source_fingerprint"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{it}"
        );
        assert_eq!(
            it["rendition_sha256"].as_str().map(str::len),
            Some(64),
            "{it}"
        );
    }
    assert_eq!(items[0]["current_version"], "none");
    // bob's directory photo, known by the hash of its bytes.
    let bob = items[1]["current_version"].as_str().unwrap();
    assert!(bob.starts_with("sha256:") && bob.len() == 7 + 64, "{bob}");
    // Nothing was written by the plan.
    assert!(w.written().is_empty());
}

#[test]
fn sync_with_a_plan_applies_exactly_the_approved_changes() {
    let w = World::new(
        "exact",
        &["alice", "bob", "carol"],
        &[
            ("alice", None),
            ("bob", None),
            ("carol", Some(testimage::photo_jpeg(96, 96, 50))),
            ("dave", None),
            ("erin", Some(testimage::photo_jpeg(96, 96, 51))),
        ],
    );
    let o = w.run("plan", &["--save-plan", "plan.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // After the approval: bob's photo is replaced in the source, dave gets one, and
    // erin's directory photo changes.
    w.photo("bob", 77);
    w.photo("dave", 78);
    w.export(&[
        ("alice", None),
        ("bob", None),
        ("carol", Some(testimage::photo_jpeg(96, 96, 50))),
        ("dave", None),
        ("erin", Some(testimage::photo_jpeg(96, 96, 52))),
    ]);
    let o = w.run(
        "sync",
        &[
            "--plan",
            "plan.json",
            "--report",
            "report.json",
            "--remove-leavers",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Only alice and carol were approved and unchanged since.
    assert_eq!(w.written(), vec![dn("alice"), dn("carol")]);
    let r = w.json("report.json");
    assert_eq!(outcome(&r, "bob")["reason"], "changed-since-plan", "{r}");
    assert_eq!(outcome(&r, "bob")["action"], "skip");
    assert_eq!(outcome(&r, "dave")["reason"], "not-in-plan", "{r}");
    // erin is a leaver the plan kept: removing her now (--remove-leavers) is no approved
    // change.
    assert_eq!(outcome(&r, "erin")["reason"], "changed-since-plan", "{r}");
    assert_eq!(r["sinks"]["ldif"]["changed_since_plan"], 2);
    assert_eq!(r["sinks"]["ldif"]["not_in_plan"], 1);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("not made: bob in ldif: changed-since-plan"),
        "{out}"
    );
    assert!(out.contains("not made: dave in ldif: not-in-plan"), "{out}");
}

#[test]
fn a_directory_photo_changed_since_the_plan_is_not_overwritten() {
    let before = testimage::photo_jpeg(96, 96, 60);
    let w = World::new("directory", &["carol"], &[("carol", Some(before))]);
    let o = w.run("plan", &["--save-plan", "plan.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    w.export(&[("carol", Some(testimage::photo_jpeg(96, 96, 61)))]);
    let o = w.run("sync", &["--plan", "plan.json", "--report", "report.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(w.written().is_empty());
    let r = w.json("report.json");
    let c = outcome(&r, "carol");
    assert_eq!(c["reason"], "changed-since-plan");
    assert!(
        c["message"]
            .as_str()
            .unwrap_or_default()
            .contains("directory"),
        "{c}"
    );
}

#[test]
fn a_plan_made_with_other_settings_is_refused() {
    let w = World::new("settings", &["alice"], &[("alice", None)]);
    let o = w.run("plan", &["--save-plan", "plan.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for (extra, word) in [
        (&["--profile", "ad-large"][..], "profile"),
        (&["--crop", "centre"][..], "crop"),
    ] {
        let mut args = vec!["--plan", "plan.json"];
        args.extend_from_slice(extra);
        let o = w.run("sync", &args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("approved plan") && err.contains(word),
            "{extra:?}: {err}"
        );
        assert!(w.written().is_empty(), "{extra:?}");
    }
    // Not a plan file at all.
    std::fs::write(w.path("bad.json"), b"{\"items\": []}").unwrap();
    let o = w.run("sync", &["--plan", "bad.json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a plan file"));
}
