//! The CLI's logs from the outside: `--log-file FILE` writes JSON lines (timestamp, level,
//! target, fields, spans), one event a line, for the run, its stages, every write (user,
//! outcome, duration), every retry (wait, reason) and every Graph request (`request-id`,
//! `client-request-id`); a Graph run with a client secret and an AD run with a password leave
//! neither, nor a token or a photo, in the log, even at `RUST_LOG=trace`. Bad log options
//! exit 2.

mod common;

use common::{cli, graph_sync_with_secret, succeeded, tempdir};
use serde_json::Value;
use userphoto::normalize::testimage::photo_jpeg;
use userphoto_testkit::ad::{password, run_id, NewUser, Ou};
use userphoto_testkit::graph_server::*;
use userphoto_testkit::need_env;

/// The log file's lines, each parsed; panics (failing the test) on a line that is not a
/// JSON object with the fields every event has.
fn events(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("the log file exists");
    assert!(!text.is_empty(), "the log file is empty");
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            for k in ["timestamp", "level", "target", "fields"] {
                assert!(v.get(k).is_some(), "no {k} in {l}");
            }
            assert!(
                v["fields"]["message"].is_string(),
                "every event has a message: {l}"
            );
            v
        })
        .collect()
}

fn with_message<'a>(ev: &'a [Value], m: &str) -> Vec<&'a Value> {
    ev.iter().filter(|e| e["fields"]["message"] == m).collect()
}

/// Every value of `needle`'s base64 and raw forms that would show a photo in a log.
fn assert_no_photo(text: &str) {
    // A JPEG in base64 starts "/9j/"; raw, with FF D8 (never valid UTF-8 in a JSON line).
    assert!(!text.contains("/9j/"), "a photo (base64) in the log");
    assert!(!text.contains('\u{FFFD}'), "binary data in the log");
}

/// An LDIF sync: the run, stage and write events, as JSON lines, appended on a second run.
#[test]
fn log_file_has_one_json_event_a_line_for_the_run_its_stages_and_each_write() {
    let dir = tempdir("log", "ldif");
    let o = cli()
        .current_dir(&dir)
        .args(["demo-fixtures", "--out", "d"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let sync = || {
        let mut c = cli();
        c.current_dir(&dir)
            .env_remove("RUST_LOG")
            .args(["sync", "--source", "folder:d/photos"])
            .args(["--sink", "ldif:d/directory.ldif", "--out", "changes.ldif"])
            .args(["--no-backup", "--log-file", "run.jsonl"]);
        c
    };
    let o = sync().output().unwrap();
    succeeded(&o);
    // The human lines on stderr are as without a log file.
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("userphoto: applying"), "{stderr}");
    assert!(!stderr.contains("\"timestamp\""), "no JSON on stderr");

    let ev = events(&dir.join("run.jsonl"));
    let start = with_message(&ev, "run starts");
    assert_eq!(start.len(), 1);
    assert_eq!(start[0]["span"]["name"], "run");
    assert_eq!(start[0]["span"]["command"], "sync");
    let end = with_message(&ev, "run ends");
    assert_eq!(end.len(), 1);
    assert_eq!(end[0]["fields"]["exit_code"], 0);
    // One span per stage.
    let stages: Vec<&str> = with_message(&ev, "stage")
        .iter()
        .map(|e| e["span"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["list", "read", "normalize", "apply"], "{ev:?}");
    assert_eq!(with_message(&ev, "planned").len(), 1);
    // The demo directory: 5 changes (see cli_sync's demo test); one event each, with the
    // user key, the outcome and the duration, inside the run, apply and write spans.
    let written = with_message(&ev, "written");
    assert_eq!(written.len(), 5, "{written:?}");
    let mut users: Vec<&str> = written
        .iter()
        .map(|e| e["fields"]["user"].as_str().unwrap())
        .collect();
    users.sort_unstable();
    assert_eq!(users, ["alice", "bob", "carol", "dave", "jmuller"]);
    for w in &written {
        assert_eq!(w["level"], "INFO");
        assert_eq!(w["target"], "userphoto::sync");
        assert_eq!(w["fields"]["outcome"], "done");
        assert_eq!(w["fields"]["sink"], "ldif");
        assert!(w["fields"]["duration_ms"].is_u64(), "{w}");
        let spans: Vec<&str> = w["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(spans, ["run", "apply", "write"], "{w}");
    }
    let text = std::fs::read_to_string(dir.join("run.jsonl")).unwrap();
    assert_no_photo(&text);

    // A second run appends (a scheduled task keeps one log): nothing to write this time.
    let lines = text.lines().count();
    let o = sync().output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let ev = events(&dir.join("run.jsonl"));
    assert!(ev.len() > lines, "appended");
    assert_eq!(with_message(&ev, "run starts").len(), 2);
}

/// `--log-level` filters; a log file that cannot be opened and a bad `RUST_LOG` are bad
/// usage (exit 2, the reason on stderr), before anything runs.
#[test]
fn log_level_filters_and_bad_log_options_exit_2() {
    let dir = tempdir("log", "options");
    let o = cli()
        .current_dir(&dir)
        .args(["demo-fixtures", "--out", "d"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let plan = |extra: &[&str]| {
        let mut c = cli();
        c.current_dir(&dir)
            .env_remove("RUST_LOG")
            .args(["plan", "--source", "folder:d/photos"])
            .args(["--sink", "ldif:d/directory.ldif"])
            .args(extra);
        c
    };
    let o = plan(&["--log-file", "warn.jsonl", "--log-level", "warn"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let text = std::fs::read_to_string(dir.join("warn.jsonl")).unwrap_or_default();
    assert!(
        text.lines().all(|l| !l.contains("\"INFO\"")),
        "info filtered out: {text}"
    );
    let o = plan(&["--log-file", "debug.jsonl", "--log-level", "debug"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let ev = events(&dir.join("debug.jsonl"));
    assert!(
        !with_message(&ev, "normalized").is_empty(),
        "debug has the per-photo events"
    );

    // Without a log file, --log-level sends human lines to stderr.
    let o = plan(&["--log-level", "info"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("planned"), "{stderr}");

    let o = plan(&["--log-file", "no/such/folder/x.jsonl"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--log-file"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = plan(&["--log-file", "x.jsonl"])
        .env("RUST_LOG", "userphoto=[")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("RUST_LOG"));
    let o = plan(&["--log-level", "loud"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// A Graph run with a client secret, every third operation throttled: the log has an event
/// per request with Graph's `request-id` and our `client-request-id`, the retries with their
/// wait and reason, and never the secret, an access token or a photo, even with every
/// library logging at trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_run_logs_requests_and_retries_and_never_the_secret_or_a_token() {
    let users: Vec<UserSeed> = (0..4)
        .map(|i| {
            UserSeed::new(
                &format!("00000000-0000-4000-8000-{i:012}"),
                &format!("user{i}@contoso.onmicrosoft.com"),
            )
        })
        .collect();
    let mut cfg = GraphServerConfig::default().with_users(users);
    cfg.throttle = Some(Throttle::every(
        3,
        Failure::TooManyRequests(RetryAfter::Seconds(0)),
    ));
    let srv = GraphServer::start(cfg).await;
    let dir = tempdir("log", "graph");
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    for i in 0..4 {
        std::fs::write(
            dir.join("photos")
                .join(format!("user{i}@contoso.onmicrosoft.com.jpg")),
            photo_jpeg(500, 600, i),
        )
        .unwrap();
    }
    let secret = srv.client_secret().unwrap();
    let mut c = graph_sync_with_secret(&dir, &srv, &secret);
    c.env("RUST_LOG", "trace")
        .args(["--no-backup", "--log-file", "graph.jsonl"]);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    succeeded(&o);
    let path = dir.join("graph.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let ev = events(&path);

    assert!(!text.contains(&secret), "the client secret is in the log");
    let records = srv.records();
    let tokens: Vec<String> = records
        .iter()
        .flat_map(|r| r.headers.iter())
        .filter(|(k, _)| k == "authorization")
        .map(|(_, v)| v.trim_start_matches("Bearer ").trim().to_owned())
        .collect();
    assert!(!tokens.is_empty(), "the server saw bearer tokens");
    for t in &tokens {
        assert!(!text.contains(t.as_str()), "an access token is in the log");
    }
    assert_no_photo(&text);

    // One event per request, with the ids a Microsoft support case asks for.
    let requests = with_message(&ev, "graph request");
    assert!(requests.len() >= records.len(), "{} events", requests.len());
    for r in &records {
        let logged = requests
            .iter()
            .find(|e| e["fields"]["request_id"] == r.request_id.as_str())
            .unwrap_or_else(|| panic!("request {} not in the log", r.request_id));
        if let Some(cid) = &r.client_request_id {
            assert_eq!(logged["fields"]["client_request_id"], cid.as_str());
        }
        assert_eq!(logged["fields"]["status"], r.status);
        assert_eq!(logged["target"], "userphoto::graph");
    }
    // The throttled ones were retried: each retry says how long it waits and why, in the
    // span of the user's write.
    let retries = with_message(&ev, "retrying");
    assert!(!retries.is_empty(), "throttled requests were retried");
    for r in &retries {
        assert_eq!(r["level"], "WARN");
        assert!(r["fields"]["wait_ms"].is_u64(), "{r}");
        assert!(
            r["fields"]["reason"].as_str().unwrap().contains("429"),
            "{r}"
        );
        assert!(r["fields"]["user"].is_string(), "{r}");
    }
    assert_eq!(with_message(&ev, "written").len(), 4);
}

/// An AD run with a bind password, every library at trace: the password is not in the log;
/// the writes are, with their users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ad_run_never_logs_the_password() {
    let env = need_env!();
    let ou = Ou::new(&env, "log").await;
    let id = run_id();
    let sams: Vec<String> = (0..2).map(|i| format!("lg{id}{i}")).collect();
    ou.add_users(
        sams.iter()
            .map(|s| NewUser::new(s.clone(), s.clone()))
            .collect(),
        2,
    )
    .await;
    let dir = tempdir("log", &format!("ad{id}"));
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    for (i, s) in sams.iter().enumerate() {
        std::fs::write(
            dir.join("photos").join(format!("{s}.jpg")),
            photo_jpeg(300, 360, i as u32 + 1),
        )
        .unwrap();
    }
    let pw = password(&env.admin_pw_file);
    let o = cli()
        .current_dir(&dir)
        .env("RUST_LOG", "trace")
        .env("UP_TEST_PW", &pw)
        .args(["sync", "--source", "folder:photos", "--sink", "ad"])
        .args(["--ldap-url", &env.ldaps_url, "--ca-cert", &env.ca])
        .args([
            "--bind-dn",
            &env.admin_upn,
            "--bind-password-env",
            "UP_TEST_PW",
        ])
        .args(["--base-dn", &ou.dn, "--no-backup", "--log-file", "ad.jsonl"])
        .output()
        .unwrap();
    succeeded(&o);
    let path = dir.join("ad.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!pw.trim().is_empty());
    assert!(!text.contains(pw.trim()), "the bind password is in the log");
    assert_no_photo(&text);
    let ev = events(&path);
    let mut users: Vec<String> = with_message(&ev, "written")
        .iter()
        .map(|e| e["fields"]["user"].as_str().unwrap().to_owned())
        .collect();
    users.sort_unstable();
    assert_eq!(users, sams);
    assert!(
        !with_message(&ev, "connected and bound").is_empty(),
        "the connection is logged"
    );
    ou.cleanup().await;
}
