//! What a new admin meets first, from outside: README's first command prints what README
//! shows, counts say what they count, and the same validation holds for every sink.

mod common;

use common::cli;
use std::path::Path;

/// README's first command, run in a copy of `examples/demo`, prints the output README shows
/// (the run's id and its timings aside, which change from run to run).
#[test]
fn readme_shows_what_the_first_command_prints() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let shown: Vec<&str> = {
        let start = readme
            .find("```text\nplan: ")
            .expect("README shows the first command's output in a ```text block");
        let block = &readme[start + "```text\n".len()..];
        block[..block.find("```").unwrap()].lines().collect()
    };
    let dir = common::tempdir("first", "readme");
    let demo = dir.join("examples/demo");
    std::fs::create_dir_all(demo.join("photos")).unwrap();
    for e in std::fs::read_dir(repo.join("examples/demo/photos")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), demo.join("photos").join(e.file_name())).unwrap();
    }
    std::fs::copy(
        repo.join("examples/demo/directory.ldif"),
        demo.join("directory.ldif"),
    )
    .unwrap();
    let o = cli()
        .current_dir(&dir)
        .args([
            "sync",
            "--source",
            "folder:examples/demo/photos",
            "--sink",
            "ldif:examples/demo/directory.ldif",
            "--out",
            "changes.ldif",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8(o.stdout).unwrap();
    let printed: Vec<&str> = out.lines().collect();
    assert_eq!(
        printed.len(),
        shown.len(),
        "README:\n{}\nprinted:\n{out}",
        shown.join("\n")
    );
    for (p, s) in printed.iter().zip(&shown) {
        // The run's id and the timings differ from run to run: their lines' start must match.
        let variable = ["  backup run: ", "  time: "]
            .into_iter()
            .find(|pre| s.starts_with(pre));
        match variable {
            Some(pre) => assert!(p.starts_with(pre), "README {s:?}, printed {p:?}"),
            None => assert_eq!(p, s),
        }
    }
}

/// The summary counts users, not items: the source's users, those only in the directory,
/// and the plan's total.
#[test]
fn the_summary_counts_users_from_the_source_and_the_directory() {
    let dir = common::tempdir("first", "counts");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = cli()
        .current_dir(&dir)
        .args(["sync", "--dry-run", "--source"])
        .arg(format!(
            "folder:{}",
            repo.join("examples/demo/photos").display()
        ))
        .arg("--sink")
        .arg(format!(
            "ldif:{}",
            repo.join("examples/demo/directory.ldif").display()
        ))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("dry run: 6 users from folder, 1 only in the directory: 7 in the plan"),
        "{out}"
    );
}

/// `--concurrency 0` is refused for every sink alike, before anything is opened.
#[test]
fn concurrency_zero_is_refused_for_every_sink() {
    for sink in ["ldif:nothing.ldif", "ad", "graph"] {
        let o = cli()
            .args(["sync", "--source", "folder:nowhere", "--sink", sink])
            .args(["--concurrency", "0"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{sink}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("'--concurrency <CONCURRENCY>'") && err.contains("must be at least 1"),
            "{sink}: {err}"
        );
    }
}

/// A copy of `examples/demo` (`photos/` and `directory.ldif`) in a fresh folder.
fn demo_copy(name: &str) -> common::TestDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = common::tempdir("first", name);
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    for e in std::fs::read_dir(repo.join("examples/demo/photos")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join("photos").join(e.file_name())).unwrap();
    }
    std::fs::copy(
        repo.join("examples/demo/directory.ldif"),
        dir.join("directory.ldif"),
    )
    .unwrap();
    dir
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// README: `config init`'s example runs as it is in a folder that holds `photos/` and
/// `directory.ldif`, as a copy of the demo does: `check` passes and `sync` writes.
#[test]
fn config_init_runs_as_it_is_in_a_copy_of_the_demo() {
    let dir = demo_copy("config-init");
    let o = cli().args(["config", "init"]).output().unwrap();
    std::fs::write(dir.join("userphoto.toml"), common::succeeded(&o)).unwrap();
    let o = cli()
        .current_dir(&dir)
        .args(["check", "--config", "userphoto.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = cli()
        .current_dir(&dir)
        .args(["sync", "--config", "userphoto.toml"])
        .output()
        .unwrap();
    let out = common::succeeded(&o);
    assert!(out.contains("ldif: 5 written"), "{out}");
    assert!(dir.join("changes.ldif").is_file());
}

/// `--sink ad` with none of its required options names all of them in one message, with
/// their config keys, and exits 2.
#[test]
fn every_missing_ad_option_is_named_at_once() {
    for cmd in ["sync", "check"] {
        let o = cli()
            .args([cmd, "--source", "folder:nowhere", "--sink", "ad"])
            .env_remove("AD_PASSWORD")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        for flag in [
            "--ldap-url",
            "--bind-dn",
            "--bind-password-env VAR or --bind-password-file FILE",
            "--base-dn",
            "ldap-url, bind-dn, bind-password-env or bind-password-file, base-dn",
        ] {
            assert!(err.contains(flag), "{cmd}: {flag} in {err}");
        }
        assert_eq!(err.matches("--sink ad needs").count(), 1, "{cmd}: {err}");
    }
    // Only what is missing is named.
    let o = cli()
        .args(["sync", "--source", "folder:nowhere", "--sink", "ad"])
        .args([
            "--ldap-url",
            "ldaps://dc.example.test",
            "--base-dn",
            "DC=example",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--sink ad needs --bind-dn") && !err.contains("--ldap-url"),
        "{err}"
    );
}

/// An LDIF export with no users stops `sync` and `check` (exit 2), naming the export and
/// the match attribute.
#[test]
fn an_export_with_no_users_stops_the_run() {
    let dir = demo_copy("empty-export");
    std::fs::write(dir.join("empty.ldif"), "# no users\n").unwrap();
    for cmd in ["sync", "check"] {
        let o = cli()
            .current_dir(&dir)
            .args([
                cmd,
                "--source",
                "folder:photos",
                "--sink",
                "ldif:empty.ldif",
            ])
            .args(["--out", "changes.ldif"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("--sink ldif:empty.ldif: the export holds no users to match")
                && err.contains("sAMAccountName"),
            "{cmd}: {err}"
        );
    }
    assert!(!dir.join("changes.ldif").exists());
}

/// An export none of whose users the source lists (photos named by sAMAccountName, matched
/// by UPN) stops `sync`, `plan` and `check --source` (exit 2) naming the export and the
/// match attribute, instead of failing every user.
#[test]
fn an_export_that_matches_no_source_user_stops_the_run() {
    let dir = demo_copy("no-match");
    for cmd in ["sync", "plan", "check"] {
        let o = cli()
            .current_dir(&dir)
            .args([
                cmd,
                "--source",
                "folder:photos",
                "--sink",
                "ldif:directory.ldif",
            ])
            .args(["--match", "upn", "--out", "changes.ldif"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(
                "--sink ldif:directory.ldif: none of the source's 6 users is in the export by userPrincipalName"
            ),
            "{cmd}: {err}"
        );
    }
    // check: the source's object and the sink's say so on stdout.
    let o = cli()
        .current_dir(&dir)
        .args([
            "check",
            "--source",
            "folder:photos",
            "--sink",
            "ldif:directory.ldif",
        ])
        .args(["--match", "upn"])
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["source"], "folder:photos");
    assert_eq!(lines[0]["photos"], 6);
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[1]["matched"], 0);
    assert_eq!(lines[1]["source_users"], 6);
    assert_eq!(lines[1]["ok"], false);
}

/// `check --source` lists the source: a folder that does not exist fails the check; a
/// folder's unreadable files are counted and named.
#[test]
fn check_reads_the_source() {
    let dir = demo_copy("check-source");
    let o = cli()
        .current_dir(&dir)
        .args(["check", "--source", "folder:/nonexistent/photos"])
        .args(["--sink", "ldif:directory.ldif"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the folder /nonexistent/photos does not exist: check the path after folder:"),
        "{err}"
    );
    assert!(!err.contains("io in "), "{err}");

    std::fs::write(dir.join("photos/empty.jpg"), b"").unwrap();
    let o = cli()
        .current_dir(&dir)
        .args([
            "check",
            "--source",
            "folder:photos",
            "--sink",
            "ldif:directory.ldif",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("6 photos, 0 withheld, 1 unreadable"), "{err}");
    assert!(err.contains("unreadable: empty: "), "{err}");
}

/// An empty file, a file that is not an image and a missing file each have their own
/// message, without the error's kind or operation, for the user concerned (exit 1: those
/// users failed, the others were written); the JSON report keeps the kind.
#[test]
fn empty_not_an_image_and_missing_files_are_told_apart() {
    let dir = demo_copy("bad-files");
    std::fs::write(dir.join("photos/empty.jpg"), b"").unwrap();
    std::fs::write(dir.join("photos/notes.jpg"), b"meeting notes, not a photo").unwrap();
    let o = cli()
        .current_dir(&dir)
        .args([
            "sync",
            "--source",
            "folder:photos",
            "--sink",
            "ldif:directory.ldif",
        ])
        .args(["--out", "changes.ldif", "--report", "report.json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("photos/empty.jpg is empty (0 bytes): replace it with the person's photo"),
        "{all}"
    );
    assert!(
        all.contains("photos/notes.jpg is not an image (JPEG, PNG, GIF, BMP, TIFF, WebP or HEIC"),
        "{all}"
    );
    for internal in ["invalid_photo in", "folder.list"] {
        assert!(!all.contains(internal), "{internal}: {all}");
    }
    let report = std::fs::read_to_string(dir.join("report.json")).unwrap();
    assert!(report.contains("invalid_photo"), "{report}");

    std::fs::write(
        dir.join("photos.csv"),
        "key,path\nalice,photos/alice.jpg\nzoe,photos/zoe.jpg\n",
    )
    .unwrap();
    let o = cli()
        .current_dir(&dir)
        .args(["sync", "--dry-run", "--source", "csv:photos.csv"])
        .args(["--sink", "ldif:directory.ldif"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("photos/zoe.jpg does not exist: check the path in the manifest"),
        "{all}"
    );
    assert!(!all.contains("io in "), "{all}");
}

/// An unset secret variable says so, without the error's kind.
#[test]
fn an_unset_password_variable_says_so() {
    let o = cli()
        .args(["sync", "--source", "folder:nowhere", "--sink", "ad"])
        .args([
            "--ldap-url",
            "ldaps://dc.example.test",
            "--base-dn",
            "DC=example",
        ])
        .args(["--bind-dn", "svc@example.test"])
        .args(["--bind-password-env", "USERPHOTO_TEST_UNSET_PASSWORD"])
        .env_remove("USERPHOTO_TEST_UNSET_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "--bind-password-env: the environment variable USERPHOTO_TEST_UNSET_PASSWORD is not set"
        ),
        "{err}"
    );
    assert!(!err.contains("config:"), "{err}");
}

/// `sync --help` groups its options under headings, the common ones first, and ends with
/// examples.
#[test]
fn sync_help_is_grouped_and_ends_with_examples() {
    let o = cli().args(["sync", "--help"]).output().unwrap();
    let help = common::succeeded(&o);
    let headings = [
        "Source:",
        "Directories:",
        "Run:",
        "Output:",
        "Active Directory and LDAP (--sink ad, --source ldap):",
        "Microsoft Graph (--sink graph, --source graph):",
        "Logging:",
    ];
    let at: Vec<usize> = headings
        .iter()
        .map(|h| {
            help.lines()
                .position(|l| l == *h)
                .unwrap_or_else(|| panic!("{h} in {help}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}\n{help}");
    let under = |flag: &str| {
        let line = help
            .lines()
            .position(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} in {help}"));
        headings[at.iter().rposition(|&h| h < line).unwrap()]
    };
    assert_eq!(under("--source"), "Source:");
    assert_eq!(under("--sink"), "Directories:");
    assert_eq!(under("--dry-run"), "Run:");
    assert_eq!(under("--state"), "Run:");
    assert_eq!(under("--out"), "Output:");
    assert_eq!(under("--report"), "Output:");
    assert_eq!(under("--ldap-url"), headings[4]);
    assert_eq!(under("--tenant"), headings[5]);
    assert_eq!(under("--log-file"), "Logging:");
    let examples = help.find("Examples:").expect("examples");
    assert!(examples > at[6], "{help}");
    assert!(help[examples..].contains("userphoto sync --source folder:photos --sink ad"));
}

/// A restore against the export a sync read (its change file never applied) undoes no one
/// and says why: an export shows the directory as it was exported.
#[test]
fn a_restore_against_an_unchanged_export_says_why_it_undoes_no_one() {
    let dir = demo_copy("restore");
    let o = cli()
        .current_dir(&dir)
        .args([
            "sync",
            "--source",
            "folder:photos",
            "--sink",
            "ldif:directory.ldif",
        ])
        .args(["--out", "changes.ldif"])
        .output()
        .unwrap();
    common::succeeded(&o);
    let o = cli()
        .current_dir(&dir)
        .args([
            "restore",
            "--sink",
            "ldif:directory.ldif",
            "--out",
            "undo.ldif",
        ])
        .output()
        .unwrap();
    let out = common::succeeded(&o);
    assert!(out.contains("undone for 0 users"), "{out}");
    assert!(
        out.contains("directory.ldif is an LDIF export: it shows the directory as it was exported")
            && out.contains("restore against that new export"),
        "{out}"
    );
}
