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
