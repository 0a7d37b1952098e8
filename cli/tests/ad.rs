//! The CLI against a real Active Directory: `userphoto sync --sink ad` into Samba's AD DC on
//! loopback (`scripts/samba-dc.sh start`, then `eval "$(scripts/samba-dc.sh env)"`), as an
//! admin and as a least-privilege delegated account.
//!
//! Without the `USERPHOTO_AD_*` variables every test prints why it skipped and passes,
//! unless `USERPHOTO_REQUIRE_AD=1` (CI). The DC's settings, admin connections and per-test
//! OUs come from the test kit (`userphoto_testkit::ad`), as for the library's
//! `tests/sink_ad.rs`.

mod common;

use std::path::PathBuf;

use common::cli;
use userphoto::normalize::testimage;
use userphoto_testkit::ad::{delegate, delegated_fixture, password, run_id, NewUser, Ou};
use userphoto_testkit::need_env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_syncs_a_folder_into_ad() {
    let env = need_env!();
    let ou = Ou::new(&env, "cli").await;
    let id = run_id();
    let sams: Vec<String> = (0..3).map(|i| format!("cl{id}{i}")).collect();
    let dns = ou
        .add_users(
            sams.iter()
                .map(|s| NewUser::new(s.clone(), s.clone()))
                .collect(),
            3,
        )
        .await;
    let tmp = tempfile::Builder::new()
        .prefix("userphoto-ad-cli-")
        .tempdir()
        .unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    for (i, s) in sams.iter().enumerate() {
        std::fs::write(
            dir.join("photos").join(format!("{s}.jpg")),
            testimage::photo_jpeg(300, 360, i as u32 + 1),
        )
        .unwrap();
    }
    let args = |pw_env: &str| {
        let mut c = cli();
        c.current_dir(&dir).args([
            "sync",
            "--source",
            "folder:photos",
            "--sink",
            "ad",
            "--ldap-url",
            &env.ldaps_url,
            "--ca-cert",
            &env.ca,
            "--bind-dn",
            &env.admin_upn,
            "--bind-password-env",
            pw_env,
            "--base-dn",
            &ou.dn,
            "--concurrency",
            "4",
            "--state",
            "state.redb",
        ]);
        c
    };
    let out = args("UP_TEST_PW")
        .env("UP_TEST_PW", password(&env.admin_pw_file))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for dn in &dns {
        let p = ou
            .photo(dn)
            .await
            .unwrap_or_else(|| panic!("{dn} has no photo"));
        assert!(p.starts_with(&[0xFF, 0xD8]) && p.len() <= 10_000, "{dn}");
    }
    // Nothing changed: the re-run writes nothing.
    let out = args("UP_TEST_PW")
        .env("UP_TEST_PW", password(&env.admin_pw_file))
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "skipped"),
        "{report}"
    );

    // A wrong password: exit 2 and one line that does not show it.
    let wrong = "Wr0ng-Password!";
    let out = args("UP_TEST_PW")
        .env("UP_TEST_PW", wrong)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    // (the cause for people; the kind `unauthenticated` is the report's and the log's)
    assert!(
        last.contains("refused: invalidCredentials") && !last.contains("unauthenticated in"),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong) && !String::from_utf8_lossy(&out.stdout).contains(wrong));
    // An unset variable is a usage error too.
    let out = args("UP_TEST_PW_UNSET").output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    ou.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// Per-user refusals: a least-privilege account delegated "write thumbnailPhoto" on an OU.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_as_a_delegated_account_exits_1_naming_the_two_denied_users() {
    let env = need_env!();
    let Some(d) = delegate(&env) else { return };
    let mut cmd = cli();
    let (ou, sams, dns) = delegated_fixture(&env, &d, "dlgcli", 3).await;
    let tmp = tempfile::Builder::new()
        .prefix("userphoto-ad-dlg-")
        .tempdir()
        .unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    for (i, s) in sams.iter().chain(&d.denied).enumerate() {
        std::fs::write(
            dir.join("photos").join(format!("{s}.jpg")),
            testimage::photo_jpeg(200, 240, 400 + i as u32),
        )
        .unwrap();
    }
    let out = cmd
        .current_dir(&dir)
        .args([
            "sync",
            "--source",
            "folder:photos",
            "--sink",
            "ad",
            "--ldap-url",
            &env.ldaps_url,
            "--ca-cert",
            &env.ca,
            "--bind-dn",
            &d.dn,
            "--bind-password-env",
            "UP_DELEGATE_PW",
            "--base-dn",
            &d.ou,
        ])
        .env("UP_DELEGATE_PW", password(&d.pw_file))
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    for u in &d.denied {
        let line = text
            .lines()
            .find(|l| l.contains(u.as_str()) && l.contains("no write access"))
            .unwrap_or_else(|| panic!("no line names {u} with the reason:\n{text}"));
        assert!(line.contains("AdminSDHolder"), "{line}");
    }
    for dn in &dns {
        assert!(ou.photo(dn).await.is_some(), "{dn}: not written\n{text}");
    }
    assert!(!text.contains(&password(&d.pw_file)));
    ou.cleanup().await;
}

/// The review page of a plan into AD: the card of a user whose entry holds a photo shows it
/// (read from the DC, decoded at reduced scale) beside the new rendition, and names the
/// user's DN; a user without a photo says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_review_shows_the_photo_ad_holds_today() {
    let env = need_env!();
    let ou = Ou::new(&env, "clirev").await;
    let id = run_id();
    let sams: Vec<String> = (0..2).map(|i| format!("cr{id}{i}")).collect();
    let dns = ou
        .add_users(
            sams.iter()
                .map(|s| NewUser::new(s.clone(), s.clone()))
                .collect(),
            2,
        )
        .await;
    ou.set_photo(&dns[0], &testimage::photo_jpeg(96, 96, 33))
        .await;
    let tmp = tempfile::Builder::new()
        .prefix("userphoto-ad-review-")
        .tempdir()
        .unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    for (i, s) in sams.iter().enumerate() {
        std::fs::write(
            dir.join("photos").join(format!("{s}.jpg")),
            testimage::photo_jpeg(300, 360, i as u32 + 1),
        )
        .unwrap();
    }
    let out = cli()
        .current_dir(&dir)
        .env("UP_TEST_PW", password(&env.admin_pw_file))
        .args(["plan", "--source", "folder:photos", "--sink", "ad"])
        .args(["--ldap-url", &env.ldaps_url, "--ca-cert", &env.ca])
        .args([
            "--bind-dn",
            &env.admin_upn,
            "--bind-password-env",
            "UP_TEST_PW",
        ])
        .args(["--base-dn", &ou.dn, "--review", "review"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(dir.join("review/index.html")).unwrap();
    // Each card, with the DN the directory gave.
    let card = |sam: &str| {
        let at = html
            .find(&format!("data-user=\"{sam}\""))
            .unwrap_or_else(|| panic!("no card for {sam}"));
        let end = html[at..].find("</article>").map_or(html.len(), |e| at + e);
        html[at..end].to_owned()
    };
    let with = card(&sams[0]);
    assert!(with.contains(&dns[0]), "the DN is on the card: {with}");
    let current = with
        .split('"')
        .find(|s| s.starts_with("img/") && s.ends_with("-current.jpg"))
        .unwrap_or_else(|| panic!("no current photo on the card: {with}"));
    let img =
        image::load_from_memory(&std::fs::read(dir.join("review").join(current)).unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (96, 96));
    let without = card(&sams[1]);
    assert!(
        !without.contains("-current.jpg") && without.contains("no photo"),
        "{without}"
    );
    ou.cleanup().await;
}

/// Cloud to AD: `--source graph --sink ad` copies the photos people have in Microsoft 365
/// (the Graph fake: 1,001 users over two pages, most without a photo, every 150th request
/// throttled) into AD's `thumbnailPhoto` by UPN, as thumbnails; a user without a cloud photo
/// keeps AD as it is, and a second run writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_copies_cloud_photos_into_ad() {
    use userphoto_testkit::graph_server::{
        Failure, GraphServer, GraphServerConfig, RetryAfter, Throttle, UserSeed,
    };
    let env = need_env!();
    let ou = Ou::new(&env, "cli-g2ad").await;
    let id = run_id();
    let sams: Vec<String> = (0..4).map(|i| format!("ga{id}{i}")).collect();
    let upn = |s: &str| format!("{s}@contoso.example");
    let dns = ou
        .add_users(
            sams.iter()
                .map(|s| NewUser::new(s.clone(), s.clone()).with("userPrincipalName", upn(s)))
                .collect(),
            4,
        )
        .await;
    // Users 0 to 2 have a cloud photo, user 3 has none; 997 cloud-only users without photos.
    let seeds = sams.iter().enumerate().map(|(i, s)| {
        let u = UserSeed::new(&format!("00000000-0000-4000-8000-{i:012}"), &upn(s));
        if i < 3 {
            u.photo(testimage::photo_jpeg(500, 600, i as u32 + 7))
        } else {
            u
        }
    });
    let fillers = (0..997).map(|i| {
        UserSeed::new(
            &format!("00000000-0000-4000-9000-{i:012}"),
            &format!("cloud{i}@contoso.example"),
        )
    });
    let srv = GraphServer::start(
        GraphServerConfig::default()
            .with_users(seeds)
            .with_users(fillers)
            .with_throttle(Throttle::every(
                150,
                Failure::TooManyRequests(RetryAfter::Seconds(1)),
            )),
    )
    .await;
    let tmp = tempfile::Builder::new()
        .prefix("userphoto-ad-g2ad-")
        .tempdir()
        .unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    let run = || {
        let mut c = cli();
        c.current_dir(&dir)
            .env("UP_TEST_PW", password(&env.admin_pw_file))
            .env("GRAPH_TEST_SECRET", srv.client_secret().unwrap())
            .args([
                "sync", "--source", "graph", "--match", "upn", "--sink", "ad",
            ])
            .args(["--ldap-url", &env.ldaps_url, "--ca-cert", &env.ca])
            .args([
                "--bind-dn",
                &env.admin_upn,
                "--bind-password-env",
                "UP_TEST_PW",
            ])
            .args(["--base-dn", &ou.dn, "--state", "state.redb", "--no-backup"])
            .args([
                "--graph-url",
                &srv.base_url(),
                "--login-url",
                &srv.login_url(),
            ])
            .args([
                "--tenant",
                &srv.tenant_id(),
                "--client-id",
                &srv.client_id(),
            ])
            .args(["--client-secret-env", "GRAPH_TEST_SECRET", "--json"]);
        c
    };
    let mut c = run();
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for (i, dn) in dns.iter().enumerate() {
        let p = ou.photo(dn).await;
        if i < 3 {
            let p = p.unwrap_or_else(|| panic!("{dn} has no photo: {stderr}"));
            let img = image::load_from_memory(&p).unwrap();
            assert_eq!(
                (img.width(), img.height()),
                (96, 96),
                "{dn}: an AD thumbnail"
            );
        } else {
            assert!(p.is_none(), "{dn} has no cloud photo, AD keeps none");
        }
    }
    let throttled = srv
        .operation_records()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert!(throttled > 0, "the run met throttling");

    let mut c = run();
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["action"] != "put"),
        "{report}"
    );
    ou.cleanup().await;
}
