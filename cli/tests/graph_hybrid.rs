//! Hybrid tenants against the Graph fake: `--graph-users` routes writes by
//! `onPremisesSyncEnabled` (skipped users carry `synced-user` / `cloud-only-user`), `check
//! --sink graph` reports the photo policy and the synced / cloud-only split, and a write
//! refused under the `onPremises` policy is that user's failure with a message naming it.

mod common;

use std::process::Output;

use common::graph_sync_with_secret;
use serde_json::Value;
use userphoto::normalize::testimage::photo_jpeg;
use userphoto_testkit::graph_server::*;

/// Two synced users, one never synced (`null`) and one no longer synced (`false`).
const USERS: [(&str, Option<bool>); 4] = [
    ("sam@contoso.onmicrosoft.com", Some(true)),
    ("sue@contoso.onmicrosoft.com", Some(true)),
    ("cal@contoso.onmicrosoft.com", None),
    ("cox@contoso.onmicrosoft.com", Some(false)),
];

fn synced(upn: &str) -> bool {
    USERS.iter().any(|(u, s)| *u == upn && *s == Some(true))
}

/// Cloud-only users without photos beside [`USERS`], so the tenant (1,001 users) takes two
/// pages of Graph's largest page (999).
const FILLERS: usize = 997;

/// The tenant above, plus [`FILLERS`].
async fn tenant(edit: impl FnOnce(&mut GraphServerConfig)) -> GraphServer {
    let mut cfg = GraphServerConfig::default()
        .with_users(USERS.iter().enumerate().map(|(i, (upn, s))| {
            UserSeed::new(&format!("00000000-0000-4000-8000-{i:012}"), upn)
                .on_premises_sync_enabled(*s)
        }))
        .with_users((0..FILLERS).map(|i| {
            UserSeed::new(
                &format!("00000000-0000-4000-9000-{i:012}"),
                &format!("filler{i}@contoso.onmicrosoft.com"),
            )
        }));
    edit(&mut cfg);
    GraphServer::start(cfg).await
}

fn photos(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    for (i, (upn, _)) in USERS.iter().enumerate() {
        std::fs::write(
            dir.join("photos").join(format!("{upn}.jpg")),
            photo_jpeg(400, 500, i as u32),
        )
        .unwrap();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn run(mut c: std::process::Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn outcomes(dir: &std::path::Path) -> Vec<Value> {
    let r: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    r["outcomes"].as_array().unwrap().clone()
}

/// `--graph-users cloud-only` writes the two cloud-only users (null and false) and skips
/// the synced ones as `synced-user`; `--graph-users synced` does the reverse, skipping the
/// cloud-only ones as `cloud-only-user`; the sync states are read once, over every page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_users_routes_writes_by_sync_state() {
    let srv = tenant(|_| {}).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    photos(dir);
    let sync = |which: &str| {
        let mut c = graph_sync_with_secret(dir, &srv, &srv.client_secret().unwrap());
        c.args(["--graph-users", which, "--report", "report.json"]);
        c
    };

    let o = run(sync("cloud-only")).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for (upn, _) in USERS {
        assert_eq!(
            srv.user(upn).unwrap().photo.is_some(),
            !synced(upn),
            "{upn}: {}",
            text(&o)
        );
    }
    let out = outcomes(dir);
    for (upn, _) in USERS {
        let item = out.iter().find(|o| o["key"] == upn).expect(upn);
        if synced(upn) {
            assert_eq!(item["action"], "skip", "{item}");
            assert_eq!(item["reason"], "synced-user", "{item}");
        } else {
            assert_eq!(item["action"], "put", "{item}");
        }
    }
    // Listed once (1,001 users: two pages), with the sync state selected.
    let listings: Vec<_> = srv
        .operation_records()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/users"))
        .collect();
    assert_eq!(listings.len(), 2, "{listings:?}");
    assert!(listings[0]
        .query
        .as_deref()
        .unwrap_or("")
        .contains("onPremisesSyncEnabled"));

    // The audit leaves the synced users out of Graph's items as well: Graph is not theirs.
    let mut audit = common::cli();
    audit
        .current_dir(dir)
        .env("GRAPH_TEST_SECRET", srv.client_secret().unwrap())
        .args(["audit", "--source", "folder:photos", "--sink", "graph"])
        .args([
            "--graph-users",
            "cloud-only",
            "--graph-url",
            &srv.base_url(),
        ])
        .args([
            "--tenant",
            &srv.tenant_id(),
            "--client-id",
            &srv.client_id(),
        ])
        .args(["--client-secret-env", "GRAPH_TEST_SECRET"])
        .args(["--login-url", &srv.login_url()]);
    let o = run(audit).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let users: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["state"], "in-sync", "{v}");
            v["user"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        users,
        ["cal@contoso.onmicrosoft.com", "cox@contoso.onmicrosoft.com"]
    );

    let o = run(sync("synced")).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for (upn, _) in USERS {
        assert!(srv.user(upn).unwrap().photo.is_some(), "{upn}");
    }
    let out = outcomes(dir);
    for (upn, _) in USERS {
        let item = out.iter().find(|o| o["key"] == upn).expect(upn);
        if synced(upn) {
            assert_eq!(item["action"], "put", "{item}");
        } else {
            assert_eq!(item["reason"], "cloud-only-user", "{item}");
        }
    }
    assert!(
        text(&o).contains("cloud-only-user"),
        "the summary names why users were left out: {}",
        text(&o)
    );
}

fn check(srv: &GraphServer, extra: &[&str]) -> std::process::Command {
    let mut c = common::cli();
    c.args(["check", "--sink", "graph"])
        .args([
            "--tenant",
            &srv.tenant_id(),
            "--client-id",
            &srv.client_id(),
        ])
        .args(["--client-secret-env", "UP_HYBRID_SECRET"])
        .args([
            "--graph-url",
            &srv.base_url(),
            "--login-url",
            &srv.login_url(),
        ])
        .args(extra)
        .env("UP_HYBRID_SECRET", srv.client_secret().unwrap());
    c
}

fn finding(o: &Output) -> Value {
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.lines().next().expect("a JSON line")).unwrap()
}

/// `check --sink graph` reads the policy and the split: `cloud` without a warning,
/// `onPremises` (with allowed roles) with a warning while Graph would write synced users
/// and none with `--graph-users cloud-only`; a token that may not read the policy gets
/// `photo_policy: null` and the refusal, and the check still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_the_photo_policy_and_the_sync_split() {
    let srv = tenant(|_| {}).await;
    let o = run(check(&srv, &[])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = finding(&o);
    assert_eq!(v["photo_policy"]["source"], "cloud", "{v}");
    assert_eq!(v["photo_policy"]["allowed_roles"], serde_json::json!([]));
    assert!(v["photo_policy_error"].is_null(), "{v}");
    assert_eq!(v["synced_users"], 2, "{v}");
    assert_eq!(v["cloud_only_users"], 2 + FILLERS, "{v}");
    assert!(!text(&o).contains("WARNING"), "{}", text(&o));

    let role = "62e90394-69f5-4237-9190-012177145e10";
    srv.configure(|c| {
        c.cloud_updates_disabled = true;
        c.photo_update_allowed_roles = vec![role.to_owned()];
    });
    let o = run(check(&srv, &[])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = finding(&o);
    assert_eq!(v["photo_policy"]["source"], "onPremises", "{v}");
    assert_eq!(
        v["photo_policy"]["allowed_roles"],
        serde_json::json!([role])
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines()
            .any(|l| l.contains("WARNING") && l.contains("onPremises")),
        "{err}"
    );
    let o = run(check(&srv, &["--graph-users", "cloud-only"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("WARNING"), "{}", text(&o));
    assert_eq!(finding(&o)["graph_users"], "cloud-only");

    srv.configure(|c| c.photo_update_settings_denied = true);
    let o = run(check(&srv, &[])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = finding(&o);
    assert!(v["photo_policy"].is_null(), "{v}");
    let why = v["photo_policy_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("403") && why.contains("PeopleSettings.Read.All"),
        "{v}"
    );
    assert_eq!(v["synced_users"], 2, "{v}");
}

/// Under `source = onPremises` Graph refuses every photo write: each user fails on their
/// own (exit 1, every user tried) with a message that names the policy and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_under_the_on_premises_policy_names_it() {
    let srv = tenant(|c| c.cloud_updates_disabled = true).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    photos(dir);
    let mut c = graph_sync_with_secret(dir, &srv, &srv.client_secret().unwrap());
    c.args(["--report", "report.json"]);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    for (upn, _) in USERS {
        assert!(
            all.lines().any(|l| l.contains(upn)
                && l.contains("photoUpdateSettings")
                && l.contains("onPremises")
                && l.contains("--graph-users cloud-only")),
            "{upn}: {all}"
        );
    }
    let puts = srv
        .operation_records()
        .iter()
        .filter(|r| r.method == "PUT")
        .count();
    assert_eq!(puts, USERS.len(), "every user is tried: {all}");
}
