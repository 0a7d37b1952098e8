//! Measures the sync engine on the LDIF path: a first run over N users, then re-runs with
//! nothing changed, with and without the state store.
//!
//! ```text
//! cargo run --release --example bench_sync -- [USERS] [WORK_DIR]
//! ```
//!
//! Generates USERS photos (10,000 by default) and a directory export listing them, syncs
//! (every user new), applies the change file to the export as `ldapmodify` and a fresh
//! export would, then syncs again twice: with the state store (sources unchanged, nothing is
//! decoded) and without it (every photo decoded, and compared by bytes). Prints one JSON
//! line per run (wall time, stage timings, decoded count, the run's peak RSS) and a summary
//! with the ratios.
//!
//! Each run is a child process of its own (this program with `--one-run`), so its peak
//! resident memory (`VmHWM`, Linux) is the run's alone: reading the export, planning and
//! writing, without the generator's buffers.

use userphoto_testkit::ldif;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::json;
use userphoto::normalize::{testimage, Profile};
use userphoto::sink::LdifSink;
use userphoto::source::FolderSource;
use userphoto::sync::{Engine, Report, StateStore};
use userphoto::MatchAttribute;

fn run(dir: &Path, state: bool) -> (f64, Report) {
    // Timed from the start: reading the export (with its photos) is part of a run.
    let t = Instant::now();
    let sink = LdifSink::open(dir.join("export.ldif"), MatchAttribute::SamAccountName)
        .and_then(|s| s.with_output(dir.join("changes.ldif")))
        .expect("open the export");
    let mut engine =
        Engine::new(FolderSource::new(dir.join("photos"))).with_sink(sink, Profile::ad_thumbnail());
    if state {
        engine = engine.with_state(StateStore::open(dir.join("state.redb")).expect("state"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(engine.run()).expect("run");
    (t.elapsed().as_secs_f64(), report)
}

/// This process's peak resident set in MiB (`VmHWM` of /proc/self/status), where the
/// system has it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

fn line(name: &str, secs: f64, r: &Report) -> serde_json::Value {
    let c = &r.sinks["ldif"];
    json!({"run": name, "seconds": (secs * 1000.0).round() / 1000.0, "written": c.put,
           "unchanged": c.unchanged, "failed": c.failed, "decoded": r.timings.decoded,
           "peak_rss_mib": peak_rss_mib(), "timings": r.timings})
}

/// Runs one sync in a child process and returns its JSON line (also printed).
fn child(dir: &Path, state: bool, name: &str) -> serde_json::Value {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .arg("--one-run")
        .arg(dir)
        .arg(if state { "state" } else { "nostate" })
        .arg(name)
        .output()
        .expect("run the child");
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    println!("{}", text.trim());
    serde_json::from_str(text.trim()).expect("one JSON line")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--one-run") {
        let dir = PathBuf::from(&args[1]);
        let (secs, report) = run(&dir, args[2] == "state");
        println!("{}", line(&args[3], secs, &report));
        return;
    }
    let users: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let dir = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("userphoto-bench-sync"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("photos")).expect("work dir");
    let t = Instant::now();
    let mut entries = Vec::with_capacity(users);
    for i in 0..users {
        let name = format!("user{i:05}");
        std::fs::write(
            dir.join("photos").join(format!("{name}.jpg")),
            testimage::photo_jpeg(240, 300, i as u32),
        )
        .expect("write photo");
        entries.push(
            ldif::Entry::new(&format!("CN={name},OU=Staff,DC=example,DC=test"))
                .with("objectClass", "user")
                .with("sAMAccountName", name.as_str()),
        );
    }
    std::fs::write(dir.join("export.ldif"), ldif::write_export(&entries)).expect("export");
    eprintln!(
        "bench_sync: {users} photos and an export generated in {:.1} s in {}",
        t.elapsed().as_secs_f64(),
        dir.display()
    );

    let r1 = child(&dir, true, "first");
    // The admin applies the change file and exports again.
    let export = std::fs::read_to_string(dir.join("export.ldif")).expect("export");
    let changes = std::fs::read_to_string(dir.join("changes.ldif")).expect("changes");
    std::fs::write(dir.join("export.ldif"), ldif::apply(&export, &changes)).expect("apply");

    let r2 = child(&dir, true, "rerun-with-state");
    let r3 = child(&dir, false, "rerun-without-state");
    let secs = |v: &serde_json::Value| v["seconds"].as_f64().unwrap_or(f64::NAN);
    let (first, again, bytes) = (secs(&r1), secs(&r2), secs(&r3));
    let decoded = r2["decoded"].as_u64().unwrap_or(u64::MAX);
    println!(
        "{}",
        json!({"summary": {
            "users": users,
            "first_s": first, "rerun_with_state_s": again, "rerun_without_state_s": bytes,
            "rerun_speedup_vs_first": first / again,
            "state_speedup_vs_bytes_compare": bytes / again,
            "rerun_decoded": decoded,
            "peak_rss_mib": {"first": r1["peak_rss_mib"], "rerun_with_state": r2["peak_rss_mib"],
                             "rerun_without_state": r3["peak_rss_mib"]},
        }})
    );
    eprintln!(
        "bench_sync: {users} users: first run {first:.2} s; re-run with nothing changed {again:.2} s \
         ({:.1}x faster, {decoded} decoded); without the state store {bytes:.2} s; peak RSS \
         {} / {} / {} MiB",
        first / again,
        r1["peak_rss_mib"],
        r2["peak_rss_mib"],
        r3["peak_rss_mib"],
    );
}
