//! `--config FILE` from outside: `userphoto sync`, `plan` and `restore` reading their options
//! from a TOML file on the LDIF path (no directory server), the errors a bad file gets, and
//! the generated example, completions and man page.

mod common;

use common::{cli, dn};

use std::path::Path;
use std::process::Output;

use userphoto::normalize::testimage;
use userphoto_testkit::ldif::{self, Entry};

fn tempdir(name: &str) -> common::TestDir {
    common::tempdir("config", name)
}

/// `dir/photos/<user>.jpg` for each user and `dir/<export>` listing them, `with_photo` of
/// them with an old photo.
fn world(dir: &Path, export: &str, users: &[&str], with_photo: &[&str]) {
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    let mut entries = Vec::new();
    for (i, u) in users.iter().enumerate() {
        std::fs::write(
            dir.join("photos").join(format!("{u}.jpg")),
            testimage::photo_jpeg(300, 360, i as u32 + 1),
        )
        .unwrap();
        let mut e = Entry::new(&dn(u))
            .with("objectClass", "user")
            .with("sAMAccountName", *u);
        if with_photo.contains(u) {
            let old = userphoto::normalize::bench::encode(
                &testimage::photo_rgb(96, 96, 40 + i as u32),
                96,
                96,
                50,
            )
            .unwrap();
            e = e.with("thumbnailPhoto", old);
        }
        entries.push(e);
    }
    std::fs::write(dir.join(export), ldif::write_export(&entries)).unwrap();
}

/// Runs the CLI in `cwd` with `args`.
fn run(cwd: &Path, args: &[&str]) -> Output {
    cli().current_dir(cwd).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Exit code 2 and exactly one line on stderr, returned.
fn refused(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout:\n{}\nstderr:\n{err}",
        stdout(o)
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

fn changed_users(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut users: Vec<String> = ldif::parse_changes(&text)
        .into_iter()
        .map(|c| c.dn)
        .collect();
    users.sort();
    users
}

const BASE: &str = "source = \"folder:photos\"\n\
                    sink = [\"ldif:export.ldif\"]\n\
                    out = \"changes.ldif\"\n\
                    state = \"userphoto.state\"\n\
                    backup-dir = \"backups\"\n";

#[test]
fn a_sync_from_the_config_file_alone_writes_the_changes() {
    let d = tempdir("only");
    world(&d, "export.ldif", &["alice", "bob"], &["bob"]);
    std::fs::write(
        d.join("userphoto.toml"),
        format!("{BASE}report = \"report.json\"\nconcurrency = 2\nmax-consecutive-failures = 10\n"),
    )
    .unwrap();
    let out = ok(&run(&d, &["sync", "--config", "userphoto.toml"]));
    assert!(out.contains("plan: 2 to write"), "{out}");
    assert_eq!(
        changed_users(&d.join("changes.ldif")),
        [dn("alice"), dn("bob")]
    );
    assert!(d.join("userphoto.state").exists(), "state from the file");
    assert!(d.join("backups").is_dir(), "backup-dir from the file");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("report.json")).unwrap()).unwrap();
    assert!(report.is_object(), "{report}");
}

#[test]
fn a_flag_on_the_command_line_wins_over_the_file() {
    let d = tempdir("override");
    world(&d, "export.ldif", &["alice"], &[]);
    std::fs::write(
        d.join("userphoto.toml"),
        "source = \"folder:photos\"\nsink = \"ldif:export.ldif\"\nout = \"a.ldif\"\n",
    )
    .unwrap();
    ok(&run(
        &d,
        &[
            "sync",
            "--config",
            "userphoto.toml",
            "--out",
            "b.ldif",
            "--no-backup",
        ],
    ));
    assert!(
        d.join("b.ldif").exists(),
        "the command line's --out is written"
    );
    assert!(!d.join("a.ldif").exists(), "the file's out is not");
    assert_eq!(changed_users(&d.join("b.ldif")), [dn("alice")]);
}

#[test]
fn sink_takes_an_array_or_one_string_and_the_command_line_list_replaces_it() {
    let d = tempdir("sinks");
    world(&d, "export.ldif", &["alice"], &[]);
    for sink in [
        "sink = \"ldif:export.ldif\"",
        "sink = [\"ldif:export.ldif\"]",
    ] {
        std::fs::write(
            d.join("s.toml"),
            format!("source = \"folder:photos\"\n{sink}\n"),
        )
        .unwrap();
        let out = ok(&run(&d, &["plan", "--config", "s.toml"]));
        assert!(out.contains("plan: 1 to write"), "{sink}: {out}");
        assert_eq!(out.matches("  put ").count(), 1, "{sink}: {out}");
    }
    // The file's list (two exports that do not exist) is read as a list; the command line's
    // replaces it whole.
    std::fs::write(
        d.join("s.toml"),
        "source = \"folder:photos\"\nsink = [\"ldif:missing.ldif\", \"ldif:gone.ldif\"]\n",
    )
    .unwrap();
    let o = run(&d, &["plan", "--config", "s.toml"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "the file's sinks are used: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("missing.ldif"), "{}", stderr(&o));
    std::fs::write(
        d.join("s.toml"),
        "source = \"folder:photos\"\nsink = [\"ldif:export.ldif\", \"ldif:gone.ldif\"]\n",
    )
    .unwrap();
    let o = run(&d, &["plan", "--config", "s.toml"]);
    assert!(
        stderr(&o).contains("gone.ldif"),
        "the second element is a sink: {}",
        stderr(&o)
    );
    let out = ok(&run(
        &d,
        &["plan", "--config", "s.toml", "--sink", "ldif:export.ldif"],
    ));
    assert_eq!(out.matches("  put ").count(), 1, "{out}");
}

#[test]
fn a_bool_key_is_a_switch_and_false_is_as_if_absent() {
    let d = tempdir("bool");
    world(&d, "export.ldif", &["alice"], &[]);
    std::fs::write(d.join("dry.toml"), format!("{BASE}dry-run = true\n")).unwrap();
    let out = ok(&run(&d, &["sync", "--config", "dry.toml"]));
    assert!(out.contains("dry run"), "{out}");
    assert!(
        !d.join("changes.ldif").exists(),
        "a dry run writes no changes"
    );
    std::fs::write(
        d.join("wet.toml"),
        format!("{BASE}dry-run = false\njson = true\n"),
    )
    .unwrap();
    let out = ok(&run(&d, &["sync", "--config", "wet.toml"]));
    let report: serde_json::Value =
        serde_json::from_str(out.trim()).expect("json = true: the report as JSON");
    assert!(report.is_object(), "{out}");
    assert_eq!(changed_users(&d.join("changes.ldif")), [dn("alice")]);
}

#[test]
fn an_unknown_key_names_the_file_the_line_and_the_closest_option() {
    let d = tempdir("unknown");
    let file = d.join("userphoto.toml");
    std::fs::write(
        &file,
        "# photos\nsource = \"folder:photos\"\n\nsinks = [\"ldif:export.ldif\"]\n",
    )
    .unwrap();
    let err = refused(&run(&d, &["sync", "--config", "userphoto.toml"]));
    assert_eq!(
        err.trim_end(),
        "userphoto: userphoto.toml:4: unknown key `sinks` for `userphoto sync`: did you mean `sink`?"
    );
    // No close option: no suggestion, and never the value.
    std::fs::write(
        &file,
        "source = \"folder:photos\"\nwibble = \"zq-value-zq\"\n",
    )
    .unwrap();
    let err = refused(&run(&d, &["sync", "--config", "userphoto.toml"]));
    assert!(
        err.contains("userphoto.toml:2: unknown key `wibble`"),
        "{err}"
    );
    assert!(!err.contains("zq-value-zq"), "{err}");
    // An option of another subcommand.
    std::fs::write(&file, "source = \"folder:photos\"\n\n\nsize = 96\n").unwrap();
    let err = refused(&run(&d, &["plan", "--config", "userphoto.toml"]));
    assert!(
        err.contains("userphoto.toml:4: `size` is not an option of `userphoto plan` (it is one of `userphoto normalize`)"),
        "{err}"
    );
}

#[test]
fn a_wrong_type_names_the_key_and_the_line() {
    let d = tempdir("types");
    world(&d, "export.ldif", &["alice"], &[]);
    let cases = [
        (
            "concurrency = \"four\"",
            "`concurrency`: invalid value 'four' for '--concurrency",
        ),
        (
            "sink = 3",
            "`sink` takes a string or an array of strings, not an integer",
        ),
        (
            "out = [\"a.ldif\", \"b.ldif\"]",
            "`out` takes one value, not an array",
        ),
        (
            "dry-run = \"yes\"",
            "`dry-run` is a switch: true or false, not a string",
        ),
        (
            "profile = \"huge\"",
            "[possible values: ad-thumbnail, ad-large, graph]",
        ),
        ("concurrency = 2.5", "`concurrency`: invalid value '2.5'"),
        (
            "backup-dir = { path = \"b\" }",
            "`backup-dir` takes a string, not a table",
        ),
    ];
    for (line, want) in cases {
        let key = line.split(' ').next().unwrap();
        // Drop the base's own line for the key, so the bad one is the only one (at line 6).
        let base: String = BASE
            .lines()
            .filter(|l| !l.starts_with(&format!("{key} ")))
            .map(|l| format!("{l}\n"))
            .collect();
        let text = format!(
            "{base}{}{line}\n",
            "\n".repeat(6 - base.lines().count() - 1)
        );
        std::fs::write(d.join("t.toml"), &text).unwrap();
        let err = refused(&run(&d, &["sync", "--config", "t.toml"]));
        assert!(err.starts_with("userphoto: t.toml:6: "), "{line}: {err}");
        assert!(err.contains(want), "{line}: {err}");
    }
    // A number where the option takes one: an integer for a number of seconds.
    std::fs::write(
        d.join("n.toml"),
        format!("{BASE}graph-connect-timeout = 3\ngraph-request-timeout = 2.5\nconcurrency = 1\n"),
    )
    .unwrap();
    ok(&run(&d, &["plan", "--config", "n.toml"]));
}

#[test]
fn a_syntax_error_names_the_line() {
    let d = tempdir("syntax");
    std::fs::write(
        d.join("bad.toml"),
        "source = \"folder:photos\"\nsink = [\"ldif:export.ldif\"\nout = \"c.ldif\"\n",
    )
    .unwrap();
    let err = refused(&run(&d, &["sync", "--config", "bad.toml"]));
    assert!(err.starts_with("userphoto: bad.toml:"), "{err}");
    assert!(err.contains("not valid TOML"), "{err}");
    let line: usize = err["userphoto: bad.toml:".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((2..=3).contains(&line), "the unclosed array's lines: {err}");
}

#[test]
fn a_secret_in_the_file_is_refused_without_echoing_it() {
    let d = tempdir("secret");
    for (key, hint) in [
        (
            "bind-password",
            "use bind-password-env = \"VAR\" or bind-password-file = \"PATH\"",
        ),
        ("password", "bind-password-env = \"VAR\""),
        ("client-secret", "use client-secret-env = \"VAR\""),
        ("token", "secrets are never values in the config file"),
        (
            "client-key-pem",
            "secrets are never values in the config file",
        ),
    ] {
        std::fs::write(
            d.join("s.toml"),
            format!("source = \"folder:photos\"\n{key} = \"Hunter2-Very-Secret\"\n"),
        )
        .unwrap();
        let err = refused(&run(&d, &["sync", "--config", "s.toml"]));
        assert!(
            err.contains(&format!(
                "s.toml:2: `{key}`: secrets are never values in the config file"
            )),
            "{key}: {err}"
        );
        assert!(err.contains(hint), "{key}: {err}");
        assert!(
            !err.contains("Hunter2"),
            "{key}: the value is echoed: {err}"
        );
    }
    // A TOML error in the line that holds a secret does not print that line either.
    std::fs::write(
        d.join("s.toml"),
        "bind-password-env = \"Hunter2-Very-Secret\n",
    )
    .unwrap();
    let err = refused(&run(&d, &["sync", "--config", "s.toml"]));
    assert!(!err.contains("Hunter2"), "{err}");
    // A reference is fine: the password itself comes from the environment.
    world(&d, "export.ldif", &["alice"], &[]);
    std::fs::write(
        d.join("r.toml"),
        format!("{BASE}bind-password-env = \"AD_PASSWORD\"\n"),
    )
    .unwrap();
    ok(&run(&d, &["plan", "--config", "r.toml"]));
}

#[test]
fn relative_paths_in_the_file_are_from_its_folder_and_on_the_command_line_from_the_cwd() {
    let root = tempdir("relative");
    let data = root.join("data");
    let conf = root.join("etc");
    let cwd = root.join("cwd");
    for d in [&data, &conf, &cwd] {
        std::fs::create_dir_all(d).unwrap();
    }
    world(&data, "export.ldif", &["alice", "bob"], &[]);
    std::fs::write(
        conf.join("userphoto.toml"),
        "source = \"folder:../data/photos\"\n\
         sink = [\"ldif:../data/export.ldif\"]\n\
         out = \"changes.ldif\"\n\
         state = \"userphoto.state\"\n\
         backup-dir = \"../data/backups\"\n",
    )
    .unwrap();
    let o = run(
        &cwd,
        &[
            "sync",
            "--config",
            "../etc/userphoto.toml",
            "--report",
            "report.json",
        ],
    );
    ok(&o);
    assert_eq!(
        changed_users(&conf.join("changes.ldif")),
        [dn("alice"), dn("bob")]
    );
    assert!(conf.join("userphoto.state").exists());
    assert!(data.join("backups").is_dir());
    assert!(
        cwd.join("report.json").exists(),
        "a command-line path is from the cwd"
    );
    let in_cwd: Vec<_> = std::fs::read_dir(&cwd)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        in_cwd,
        ["report.json"],
        "nothing else lands in the working directory"
    );
    // An absolute path is taken as it is.
    let abs = root.join("abs.ldif");
    std::fs::write(
        conf.join("abs.toml"),
        format!(
            "source = \"folder:../data/photos\"\nsink = \"ldif:../data/export.ldif\"\nout = {}\nno-backup = true\n",
            toml_string(&abs)
        ),
    )
    .unwrap();
    ok(&run(&cwd, &["sync", "--config", "../etc/abs.toml"]));
    assert_eq!(changed_users(&abs), [dn("alice"), dn("bob")]);
}

/// A path as a TOML literal string.
fn toml_string(p: &Path) -> String {
    format!("'{}'", p.display())
}

#[test]
fn the_example_from_config_init_runs_as_it_is() {
    let root = tempdir("init");
    let conf = root.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    let out = ok(&run(&root, &["config", "init"]));
    assert!(
        out.contains("bind-password-env") && out.contains("client-secret-env"),
        "{out}"
    );
    assert!(
        out.contains("tenant") && out.contains("ldap-url"),
        "AD and Graph examples: {out}"
    );
    std::fs::write(conf.join("userphoto.toml"), &out).unwrap();
    world(
        &conf,
        "directory.ldif",
        &["alice", "bob", "carol"],
        &["carol"],
    );
    let plan = ok(&run(&root, &["plan", "--config", "conf/userphoto.toml"]));
    assert!(plan.contains("plan: 3 to write"), "{plan}");
    let sync = ok(&run(&root, &["sync", "--config", "conf/userphoto.toml"]));
    assert!(sync.contains("3 written"), "{sync}");
    assert_eq!(
        changed_users(&conf.join("changes.ldif")),
        [dn("alice"), dn("bob"), dn("carol")]
    );
    assert!(conf.join("report.json").exists() && conf.join("userphoto-backup").is_dir());
}

#[test]
fn a_restore_takes_its_options_from_a_config_file() {
    let d = tempdir("restore");
    world(&d, "export.ldif", &["alice", "bob"], &["alice"]);
    let original = std::fs::read_to_string(d.join("export.ldif")).unwrap();
    std::fs::write(d.join("sync.toml"), BASE).unwrap();
    ok(&run(&d, &["sync", "--config", "sync.toml"]));
    let changes = std::fs::read_to_string(d.join("changes.ldif")).unwrap();
    let synced = ldif::apply(&original, &changes);
    std::fs::write(d.join("export.ldif"), &synced).unwrap();
    std::fs::write(
        d.join("restore.toml"),
        "sink = \"ldif:export.ldif\"\nout = \"undo.ldif\"\nbackup-dir = \"backups\"\nuser = [\"alice\"]\n",
    )
    .unwrap();
    let out = ok(&run(&d, &["restore", "--config", "restore.toml"]));
    assert!(out.contains("restored alice"), "{out}");
    assert!(!out.contains("bob"), "user = [\"alice\"] only: {out}");
    let undone = ldif::apply(
        &synced,
        &std::fs::read_to_string(d.join("undo.ldif")).unwrap(),
    );
    let alice = |text: &str| {
        ldif::parse_export(text)
            .into_iter()
            .find(|e| e.dn == dn("alice"))
            .and_then(|e| e.get("thumbnailPhoto").first().map(|v| v.to_vec()))
    };
    assert_eq!(
        alice(&undone),
        alice(&original),
        "alice's old photo is back"
    );
    // restore has no `source`: a sync file is not a restore file.
    let err = refused(&run(&d, &["restore", "--config", "sync.toml"]));
    assert!(
        err.contains("sync.toml:1: `source` is not an option of `userphoto restore`"),
        "{err}"
    );
}

#[test]
fn a_file_saved_as_utf16_or_with_a_byte_order_mark_is_read() {
    let d = tempdir("encodings");
    world(&d, "export.ldif", &["alice"], &[]);
    let text = format!("{BASE}# Ünïcödé comment\n");
    let mut le = vec![0xFF, 0xFE];
    le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let mut be = vec![0xFE, 0xFF];
    be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend(text.as_bytes());
    for (name, bytes) in [("le.toml", le), ("be.toml", be), ("bom.toml", bom)] {
        std::fs::write(d.join(name), bytes).unwrap();
        let out = ok(&run(&d, &["plan", "--config", name]));
        assert!(out.contains("plan: 1 to write"), "{name}: {out}");
    }
    // UTF-16 keeps the line numbers.
    let mut bad = vec![0xFF, 0xFE];
    bad.extend("\n\nsinks = 1\n".encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(d.join("bad.toml"), bad).unwrap();
    let err = refused(&run(&d, &["plan", "--config", "bad.toml"]));
    assert!(err.contains("bad.toml:3: unknown key `sinks`"), "{err}");
    std::fs::write(d.join("latin1.toml"), b"source = \"folder:ph\xf6tos\"\n").unwrap();
    let err = refused(&run(&d, &["plan", "--config", "latin1.toml"]));
    assert!(err.contains("latin1.toml: not UTF-8 text"), "{err}");
}

#[test]
fn an_unreadable_config_file_is_named() {
    let d = tempdir("missing");
    let err = refused(&run(&d, &["sync", "--config", "nowhere/userphoto.toml"]));
    assert!(
        err.contains("cannot read the config file nowhere/userphoto.toml"),
        "{err}"
    );
    std::fs::create_dir_all(d.join("adir")).unwrap();
    let err = refused(&run(&d, &["plan", "--config", "adir"]));
    assert!(err.contains("cannot read the config file adir"), "{err}");
    // Not the whole of an endless file.
    #[cfg(unix)]
    {
        let err = refused(&run(&d, &["plan", "--config", "/dev/zero"]));
        assert!(
            err.contains("/dev/zero: larger than 1048576 bytes"),
            "{err}"
        );
    }
}

#[test]
fn completions_for_every_shell_name_the_subcommands_and_options() {
    let d = tempdir("completions");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = ok(&run(&d, &["completions", shell]));
        assert!(!out.is_empty(), "{shell}");
        assert!(out.contains("sync"), "{shell}: no sync");
        assert!(out.contains("--config"), "{shell}: no --config");
    }
    let o = run(&d, &["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_man_page_is_roff_and_names_the_subcommands() {
    let d = tempdir("manpage");
    let out = ok(&run(&d, &["manpage"]));
    assert!(out.contains(".TH"), "{out}");
    assert!(out.contains("sync") && out.contains("restore"), "{out}");
    assert!(
        out.contains("config init") && out.contains("Exit codes"),
        "the config file and exit codes: {out}"
    );
    let sync = ok(&run(&d, &["manpage", "sync"]));
    assert!(
        sync.contains(".TH") && sync.contains("userphoto\\-sync"),
        "{sync}"
    );
    assert!(sync.contains("\\-\\-config"), "{sync}");
    let o = run(&d, &["manpage", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
}
