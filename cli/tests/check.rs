//! `userphoto check` from outside (`CARGO_BIN_EXE_userphoto`): against the Samba AD DC of
//! `scripts/samba-dc.sh` with the delegated account `photo-delegate` (the AD tests skip
//! without the DC's `USERPHOTO_AD_*` variables, and fail under `USERPHOTO_REQUIRE_AD=1`),
//! against the Graph test server, and on an LDIF export. Each checks the exit code, the JSON
//! line per sink on stdout, and that nothing was written.

mod common;

use std::process::Output;

use common::{cli, tempdir};
use serde_json::Value;
use userphoto::normalize::testimage::photo_jpeg;
use userphoto_testkit::ad::{delegate, delegated_fixture, password};
use userphoto_testkit::graph_server::*;
use userphoto_testkit::need_env;

/// The JSON objects on stdout, one per sink.
fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn dns(v: &Value) -> Vec<String> {
    let mut d: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_lowercase())
        .collect();
    d.sort();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_ad_as_the_delegate_names_the_denied_users_and_writes_nothing() {
    let env = need_env!();
    let Some(d) = delegate(&env) else { return };
    let (ou, _sams, users) = delegated_fixture(&env, &d, "chk", 2).await;
    let before = photo_jpeg(96, 96, 7);
    ou.set_photo(&users[0], &before).await;
    let run = |base: &str, pw_env: &str| {
        cli()
            .args(["check", "--sink", "ad", "--ldap-url", &env.ldaps_url])
            .args(["--ca-cert", &env.ca, "--bind-dn", &d.dn])
            .args(["--bind-password-env", pw_env, "--base-dn", base])
            .args(["--check-sample", "1000"])
            .env("UP_CHECK_PW", password(&d.pw_file))
            .env("UP_CHECK_WRONG", "Wr0ng-Check-Password!")
            .output()
            .unwrap()
    };

    // The delegated OU: the two denied users are reported, the others writable: exit 0.
    let out = run(&d.ou, "UP_CHECK_PW");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = &lines(&out)[0];
    assert_eq!(v["sink"], "ad");
    assert_eq!(v["ok"], true);
    assert_eq!(v["not_writable"], 2, "{v}");
    let want: Vec<String> = {
        let mut w: Vec<String> = d
            .denied
            .iter()
            .map(|u| format!("CN={u},{}", d.ou).to_lowercase())
            .collect();
        w.sort();
        w
    };
    assert_eq!(dns(&v["not_writable_dns"]), want, "{v}");
    assert!(v["writable"].as_u64().unwrap() >= 2, "{v}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for u in &d.denied {
        assert!(stderr.contains(u.as_str()), "{stderr}");
    }

    // One denied user as the base DN: no write right on any sampled user: exit 2.
    let out = run(&format!("CN={},{}", d.denied[0], d.ou), "UP_CHECK_PW");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let v = &lines(&out)[0];
    assert_eq!(
        (v["ok"].clone(), v["writable"].clone()),
        (false.into(), 0.into())
    );
    assert!(
        v["reason"].as_str().unwrap().contains("may not write"),
        "{v}"
    );

    // A wrong password: exit 2, unauthenticated, and the password is shown nowhere.
    let out = run(&d.ou, "UP_CHECK_WRONG");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(lines(&out)[0]["error_kind"], "unauthenticated");
    assert!(!text(&out).contains("Wr0ng-Check-Password!"));
    assert!(!text(&out).contains(&password(&d.pw_file)));

    // Nothing was written.
    assert_eq!(ou.photo(&users[0]).await, Some(before));
    assert_eq!(ou.photo(&users[1]).await, None);
    ou.cleanup().await;
}

async fn graph(cfg: GraphServerConfig) -> GraphServer {
    GraphServer::start(
        cfg.with_user(
            UserSeed::new(
                "00000000-0000-4000-8000-000000000001",
                "ann@contoso.onmicrosoft.com",
            )
            .photo(photo_jpeg(96, 96, 1)),
        )
        .with_user(UserSeed::new(
            "00000000-0000-4000-8000-000000000002",
            "ben@contoso.onmicrosoft.com",
        )),
    )
    .await
}

fn check_graph(srv: &GraphServer, secret: &str) -> Output {
    cli()
        .args(["check", "--sink", "graph"])
        .args([
            "--tenant",
            &srv.tenant_id(),
            "--client-id",
            &srv.client_id(),
        ])
        .args(["--client-secret-env", "UP_CHECK_SECRET"])
        .args([
            "--graph-url",
            &srv.base_url(),
            "--login-url",
            &srv.login_url(),
        ])
        .env("UP_CHECK_SECRET", secret)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_graph_with_a_photo_role_exits_0_and_writes_nothing() {
    let srv = graph(GraphServerConfig::default()).await;
    let before = srv.user("ann@contoso.onmicrosoft.com").unwrap().photo;
    let out = check_graph(&srv, DEFAULT_CLIENT_SECRET);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = &lines(&out)[0];
    assert_eq!(v["sink"], "graph");
    assert_eq!(v["ok"], true);
    assert_eq!(v["token_decoded"], true);
    assert_eq!(v["photo_role"], "ProfilePhoto.ReadWrite.All");
    assert_eq!(v["user"], "ann@contoso.onmicrosoft.com");
    assert!(srv.operation_records().iter().all(|r| r.method == "GET"));
    assert_eq!(
        srv.user("ann@contoso.onmicrosoft.com").unwrap().photo,
        before
    );
    assert!(srv
        .user("ben@contoso.onmicrosoft.com")
        .unwrap()
        .photo
        .is_none());
    assert!(!text(&out).contains(DEFAULT_CLIENT_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_graph_without_a_photo_role_or_with_a_wrong_secret_exits_2() {
    let srv = graph(GraphServerConfig::default().with_app_roles(&["User.Read.All"])).await;
    let out = check_graph(&srv, DEFAULT_CLIENT_SECRET);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let v = &lines(&out)[0];
    assert_eq!(v["ok"], false);
    assert_eq!(v["roles"], serde_json::json!(["User.Read.All"]));
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("ProfilePhoto.ReadWrite.All"),
        "{v}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("FAIL"));

    // A photo role but no directory role: the user read is refused.
    let srv =
        graph(GraphServerConfig::default().with_app_roles(&["ProfilePhoto.ReadWrite.All"])).await;
    let out = check_graph(&srv, DEFAULT_CLIENT_SECRET);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(lines(&out)[0]["user_error"]
        .as_str()
        .unwrap()
        .contains("403"));

    let out = check_graph(&srv, "not-the-secret-4711");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(lines(&out)[0]["error_kind"], "unauthenticated");
    assert!(!text(&out).contains("not-the-secret-4711"));
}

fn export(dir: &std::path::Path) -> std::path::PathBuf {
    let mut ldif = Vec::new();
    for (i, (sam, photo)) in [("ann", true), ("ben", false), ("cid", true)]
        .iter()
        .enumerate()
    {
        userphoto::ldif::write_attr(&mut ldif, "dn", common::dn(sam).as_bytes()).unwrap();
        userphoto::ldif::write_attr(&mut ldif, "sAMAccountName", sam.as_bytes()).unwrap();
        if *photo {
            userphoto::ldif::write_attr(&mut ldif, "thumbnailPhoto", &photo_jpeg(48, 48, i as u32))
                .unwrap();
        }
        ldif.push(b'\n');
    }
    // A user without a sAMAccountName.
    userphoto::ldif::write_attr(&mut ldif, "dn", common::dn("nokey").as_bytes()).unwrap();
    ldif.push(b'\n');
    let p = dir.join("users.ldif");
    std::fs::write(&p, ldif).unwrap();
    p
}

#[test]
fn check_ldif_counts_users_and_photos_from_a_config_file_and_writes_nothing() {
    let dir = tempdir("check", "ldif");
    let p = export(&dir);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(
        dir.join("userphoto.toml"),
        "sink = [\"ldif:users.ldif\"]\nout = \"changes.ldif\"\ncheck-sample = 5\n",
    )
    .unwrap();
    let cfg = dir.join("userphoto.toml");
    let out = cli()
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = &lines(&out)[0];
    assert_eq!(v["kind"], "ldif");
    assert_eq!(v["ok"], true);
    assert_eq!(
        (v["users"].clone(), v["with_photos"].clone()),
        (4.into(), 2.into()),
        "{v}"
    );
    assert_eq!(v["without_key"], 1);
    assert_eq!(std::fs::read(&p).unwrap(), bytes);
    assert!(
        !dir.join("changes.ldif").exists(),
        "check wrote the change file"
    );

    // An export that is not there, or not LDIF: exit 2 with the reason.
    let out = cli()
        .args(["check", "--sink", "ldif:/nonexistent/users.ldif"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(lines(&out)[0]["error_kind"], "io");
    std::fs::write(
        dir.join("bad.ldif"),
        "dn: CN=x,DC=example,DC=test\n: no name\n",
    )
    .unwrap();
    let out = cli()
        .current_dir(&dir)
        .args(["check", "--sink", "ldif:bad.ldif"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(lines(&out)[0]["ok"], false);
}

#[test]
fn source_is_optional_for_check_only() {
    let dir = tempdir("check", "source");
    export(&dir);
    let out = cli()
        .current_dir(&dir)
        .args(["check", "--sink", "ldif:users.ldif"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = cli()
        .current_dir(&dir)
        .args(["check", "--sink", "ldif:users.ldif", "--check-sample", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--check-sample"));
    for cmd in ["sync", "plan"] {
        let out = cli()
            .current_dir(&dir)
            .args([cmd, "--sink", "ldif:users.ldif", "--out", "c.ldif"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--source"),
            "{cmd}"
        );
    }
}
