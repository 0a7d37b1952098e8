//! The CLI against the Graph fake (`userphoto_testkit::graph_server`): `userphoto sync
//! --sink graph` end to end, over plain HTTP to loopback and over HTTPS (the system roots
//! through `SSL_CERT_FILE`, or `--graph-ca-cert`), and per-user refusals with exit 1.

mod common;

use common::{graph_sync_with_secret, succeeded};
use userphoto::normalize::testimage::photo_jpeg;
use userphoto_testkit::graph_server::*;

const GUEST_ID: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f2a3b4c5d";
const GUEST_UPN: &str = "carol_fabrikam.com#EXT#@contoso.onmicrosoft.com";
const DOLLAR_ID: &str = "2d4f6a8c-0e1b-4c3d-a5e7-9f1b3d5e7a9c";
const DOLLAR_UPN: &str = "$dave@contoso.onmicrosoft.com";

fn id_of(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn upn_of(i: usize) -> String {
    format!("user{i}@contoso.onmicrosoft.com")
}

/// `n` users `user{i}@contoso…` with employee ids `E{i}`, plus a guest and a `$` UPN (the
/// directory of the library's `tests/sink_graph.rs`).
fn directory(n: usize) -> Vec<UserSeed> {
    let mut v: Vec<UserSeed> = (0..n)
        .map(|i| UserSeed::new(&id_of(i), &upn_of(i)).employee_id(&format!("E{i}")))
        .collect();
    v.push(UserSeed::new(GUEST_ID, GUEST_UPN).employee_id("G1"));
    v.push(UserSeed::new(DOLLAR_ID, DOLLAR_UPN).employee_id("D1"));
    v
}

async fn server(n: usize) -> GraphServer {
    GraphServer::start(GraphServerConfig::default().with_users(directory(n))).await
}

fn puts(srv: &GraphServer) -> usize {
    srv.operation_records()
        .iter()
        .filter(|r| r.method == "PUT" && r.status == 200)
        .count()
}

/// The CLI end to end: `sync --sink graph` with a secret from the environment, a
/// folder of photos named by UPN, the `graph` profile by default; a re-run with the state
/// file writes nothing; a wrong secret exits 2 with one line that does not show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_syncs_a_folder_into_graph() {
    let srv = server(3).await;
    let tmp = tempfile::Builder::new()
        .prefix("userphoto-graph-cli-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    for i in 0..3 {
        std::fs::write(
            dir.join("photos").join(format!("{}.jpg", upn_of(i))),
            photo_jpeg(700, 800, i as u32),
        )
        .unwrap();
    }
    let run = |secret: String| {
        let mut c = graph_sync_with_secret(&dir, &srv, &secret);
        c.args(["--state", "state.redb", "--report", "report.json"]);
        c
    };
    let secret = srv.client_secret().unwrap();
    let o = tokio::task::spawn_blocking({
        let mut c = run(secret.clone());
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let out = succeeded(&o);
    assert!(out.contains("graph: 3 written"), "{out}");
    for i in 0..3 {
        let u = srv.user(&upn_of(i)).expect("user");
        let photo = u.photo.expect("a photo landed");
        assert!(photo.len() <= 500_000 && photo.starts_with(b"\xFF\xD8"));
        let (w, h) = image::load_from_memory(&photo)
            .unwrap()
            .to_rgb8()
            .dimensions();
        assert_eq!((w, h), (648, 648), "the graph profile by default");
    }
    let before = puts(&srv);
    let o = tokio::task::spawn_blocking({
        let mut c = run(secret.clone());
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        puts(&srv),
        before,
        "a re-run with the state file writes nothing"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["sinks"]["graph"]["unchanged"], 3);
    assert_eq!(report["timings"]["decoded"], 0);

    let wrong = "not-the-secret-1234".to_owned();
    let o = tokio::task::spawn_blocking({
        let mut c = run(wrong.clone());
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains(&wrong), "the secret must not be shown: {err}");
    assert!(
        err.contains("7000215") || err.contains("invalid_client"),
        "{err}"
    );
}

/// The system-roots path: the CLI (a subprocess, so this process's environment is left
/// alone) trusts the test CA through `SSL_CERT_FILE`, which rustls-native-certs reads;
/// without it the system store does not know the CA and the run stops at once with exit 2
/// and one line; `--graph-ca-cert` with the CA works too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_https_through_ssl_cert_file_and_graph_ca_cert() {
    let ca = TestCa::new("userphoto test CA");
    let cert = ca.issue(&["localhost"], &["127.0.0.1"]);
    let srv = GraphServer::start_tls(
        GraphServerConfig::default().with_users(directory(2)),
        &cert,
        "localhost",
    )
    .await;
    let tmp = tempfile::Builder::new()
        .prefix("userphoto-graph-tls-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    for i in 0..2 {
        std::fs::write(
            dir.join("photos").join(format!("{}.jpg", upn_of(i))),
            photo_jpeg(300, 300, i as u32),
        )
        .unwrap();
    }
    let run = |env_ca: Option<&std::path::Path>, flag_ca: Option<&std::path::Path>| {
        let mut c = graph_sync_with_secret(&dir, &srv, &srv.client_secret().unwrap());
        c.env_remove("SSL_CERT_DIR")
            .args(["--graph-request-timeout", "10"]);
        match env_ca {
            Some(p) => c.env("SSL_CERT_FILE", p),
            // An empty bundle: the system store without the test CA.
            None => c.env("SSL_CERT_FILE", dir.join("empty.pem")),
        };
        if let Some(p) = flag_ca {
            c.arg("--graph-ca-cert").arg(p);
        }
        c
    };
    std::fs::write(dir.join("empty.pem"), "").unwrap();
    let go = |mut c: std::process::Command| async move {
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    };
    let o = go(run(None, None)).await;
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "untrusted: {err}");
    assert!(err.contains("not trusted"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("not trusted")).count(),
        1,
        "one line: {err}"
    );
    // The library names its setting; the CLI adds its own flag and config-file key.
    let line = err.lines().find(|l| l.contains("not trusted")).unwrap();
    for want in ["--graph-ca-cert FILE", "graph-ca-cert in the config file"] {
        assert!(line.contains(want), "{want:?} in {line}");
    }
    assert!(srv.records().is_empty());

    let o = go(run(Some(&ca.cert_path), None)).await;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "SSL_CERT_FILE: {out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(srv.user(&upn_of(0)).unwrap().photo.is_some());

    srv.set_photo(&upn_of(0), photo_jpeg(64, 64, 99));
    srv.clear_records();
    let o = go(run(None, Some(&ca.cert_path))).await;
    let seen: Vec<String> = srv
        .records()
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    assert_eq!(
        o.status.code(),
        Some(0),
        "--graph-ca-cert: {}\n{seen:#?}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Issue 10 point 1 through the CLI: two users' photos refused, the others written, exit 1,
/// the two named with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_per_user_403_exits_1_and_names_the_two() {
    let srv = server(5).await;
    srv.configure(|c| c.photo_write_denied = vec![upn_of(1), upn_of(3)]);
    let tmp = tempfile::Builder::new()
        .prefix("userphoto-graph-403-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    for i in 0..5 {
        std::fs::write(
            dir.join("photos").join(format!("{}.jpg", upn_of(i))),
            photo_jpeg(300, 300, i as u32),
        )
        .unwrap();
    }
    let mut c = graph_sync_with_secret(&dir, &srv, &srv.client_secret().unwrap());
    c.args(["--report", "report.json"]);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(1), "{all}");
    assert_eq!(puts(&srv), 3, "{all}");
    for i in [1, 3] {
        assert!(
            all.lines().any(|l| l.contains(&upn_of(i))
                && l.contains("ErrorAccessDenied")
                && l.contains("ProfilePhoto.ReadWrite.All")),
            "{} named with the reason: {all}",
            upn_of(i)
        );
    }
    for i in [0, 2, 4] {
        assert!(srv.user(&upn_of(i)).unwrap().photo.is_some());
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["sinks"]["graph"]["put"], 3);
    assert_eq!(report["sinks"]["graph"]["failed"], 2);
    assert!(report["aborted"].is_null(), "{}", report["aborted"]);
}

/// Plain http:// to a host that is not loopback: refused before anything is sent, the
/// library's message citing its setting and the CLI's line naming the flag and the key.
#[test]
fn cli_plain_http_names_the_flag() {
    let dir = tempfile::Builder::new()
        .prefix("userphoto-graph-http-")
        .tempdir()
        .unwrap();
    std::fs::create_dir_all(dir.path().join("photos")).unwrap();
    let o = common::cli()
        .current_dir(dir.path())
        .env("GRAPH_TEST_SECRET", "x")
        .args(["plan", "--source", "folder:photos", "--sink", "graph"])
        .args(["--tenant", "contoso.onmicrosoft.com", "--client-id", "c"])
        .args(["--client-secret-env", "GRAPH_TEST_SECRET"])
        .args(["--graph-url", "http://graph.example.com"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    for want in [
        userphoto::cited::GRAPH_ALLOW_INSECURE_HTTP,
        "--graph-insecure-http",
        "graph-insecure-http = true in the config file",
    ] {
        assert!(err.contains(want), "{want:?} in {err}");
    }
}
