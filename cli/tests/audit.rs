//! `userphoto audit` against the test kit's Graph server (re-encoding its uploads, as Graph
//! does) and Samba's AD DC: every state, with and without a state file; the hybrid sequence
//! where Entra Connect copies AD's 96-pixel thumbnail over the HD Graph photo (the kit's
//! simulated sync cycle); the exit codes.
//!
//! The AD tests need the DC (`scripts/samba-dc.sh start`, then `eval "$(scripts/samba-dc.sh
//! env)"`); without its variables they print why they skipped and pass, unless
//! `USERPHOTO_REQUIRE_AD=1` (CI). The Graph-only tests always run.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use common::{cli, tempdir};
use serde_json::Value;
use userphoto::normalize::{Normalizer, Profile};
use userphoto_testkit::ad::{password, run_id, NewUser, Ou};
use userphoto_testkit::entra_connect::sync_thumbnails;
use userphoto_testkit::graph_server::{GraphServer, GraphServerConfig, UserSeed};
use userphoto_testkit::need_env;

/// A portrait-like picture of its own per seed (a head and shoulders placed and shaded by
/// the seed on a background whose gradient turns with it), as a JPEG: the library's test
/// images differ only in their noise from seed to seed, which is the same picture to a
/// perceptual comparison.
fn photo(seed: u32) -> Vec<u8> {
    let (w, h) = (400u32, 480u32);
    let a = seed as f64 * 0.9;
    let (hx, hy) = (
        200.0 + 60.0 * (seed as f64 * 1.7).sin(),
        190.0 + 40.0 * (seed as f64 * 2.3).cos(),
    );
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f64 / w as f64, y as f64 / h as f64);
        let bg = 60.0 + 120.0 * (fx * a.cos() + fy * a.sin()).rem_euclid(1.0);
        let head = ((x as f64 - hx).powi(2) / 70f64.powi(2)
            + (y as f64 - hy).powi(2) / 90f64.powi(2))
            < 1.0;
        let body =
            y as f64 > hy + 110.0 && (x as f64 - hx).abs() < 150.0 - (y as f64 - hy - 110.0) * 0.2;
        let v = if head {
            200.0
        } else if body {
            30.0 + (seed % 5) as f64 * 20.0
        } else {
            bg
        };
        image::Rgb([v as u8, (v * 0.8) as u8, (255.0 - v * 0.5) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
        .encode_image(&img)
        .unwrap();
    out.into_inner()
}

/// `people.csv` in `dir`: one row per (key, seed or withheld).
fn manifest(dir: &Path, rows: &[(&str, Option<u32>)]) {
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    let mut csv = String::from("key,path,withheld\n");
    for (key, seed) in rows {
        match seed {
            Some(s) => {
                let file = format!("photos/{key}.jpg");
                std::fs::write(dir.join(&file), photo(*s)).unwrap();
                csv.push_str(&format!("{key},{file},\n"));
            }
            None => csv.push_str(&format!("{key},,yes\n")),
        }
    }
    std::fs::write(dir.join("people.csv"), csv).unwrap();
}

/// `userphoto CMD --source csv:people.csv --sink graph --match upn ...` against `srv`.
fn graph_cmd(dir: &Path, srv: &GraphServer, cmd: &str) -> Command {
    let mut c = cli();
    c.current_dir(dir)
        .args([cmd, "--source", "csv:people.csv", "--match", "upn"])
        .env("GRAPH_TEST_SECRET", srv.client_secret().unwrap());
    graph_flags(&mut c, srv);
    c
}

fn graph_flags(c: &mut Command, srv: &GraphServer) {
    c.args(["--sink", "graph", "--graph-url", &srv.base_url()])
        .args([
            "--tenant",
            &srv.tenant_id(),
            "--client-id",
            &srv.client_id(),
        ])
        .args(["--client-secret-env", "GRAPH_TEST_SECRET"])
        .args(["--login-url", &srv.login_url()]);
}

/// The audit's lines: per (user, sink), the JSON object.
fn items(o: &Output) -> BTreeMap<(String, String), Value> {
    let stdout = String::from_utf8_lossy(&o.stdout);
    stdout
        .lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line: {l:?}: {e}"));
            (
                (
                    v["user"].as_str().unwrap().to_owned(),
                    v["sink"].as_str().unwrap().to_owned(),
                ),
                v,
            )
        })
        .collect()
}

fn states(o: &Output, sink: &str) -> BTreeMap<String, String> {
    items(o)
        .into_iter()
        .filter(|((_, s), _)| s == sink)
        .map(|((u, _), v)| (u, v["state"].as_str().unwrap().to_owned()))
        .collect()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const UPNS: [&str; 8] = [
    "a@contoso.test",
    "c@contoso.test",
    "d@contoso.test",
    "l@contoso.test",
    "m@contoso.test",
    "w@contoso.test",
    "x@contoso.test",
    "y@contoso.test",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_every_state_with_and_without_a_state_file() {
    let users: Vec<UserSeed> = UPNS
        .iter()
        .enumerate()
        .map(|(i, u)| UserSeed::new(&format!("00000000-0000-0000-0000-00000000000{i}"), u))
        .collect();
    let srv = GraphServer::start(
        GraphServerConfig {
            reencode_uploads: true,
            ..Default::default()
        }
        .with_users(users),
    )
    .await;
    let dir = tempdir("audit", "graph-states");
    // Synced: a (stays), c (changed by someone else), d (source changes), l (replaced by a
    // 96-pixel copy of the same picture), w (withdraws consent), x (stays).
    let synced = [
        ("a@contoso.test", Some(1)),
        ("c@contoso.test", Some(2)),
        ("d@contoso.test", Some(3)),
        ("l@contoso.test", Some(4)),
        ("w@contoso.test", Some(5)),
        ("x@contoso.test", Some(6)),
    ];
    manifest(&dir, &synced);
    // The etag after each upload is read back and recorded.
    let o = graph_cmd(&dir, &srv, "sync")
        .args([
            "--state",
            "state.redb",
            "--no-backup",
            "--graph-confirm-uploads",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));

    // Right after the sync, everything is in sync: exit 0, with and without the record.
    for state in [true, false] {
        let mut c = graph_cmd(&dir, &srv, "audit");
        if state {
            c.args(["--state", "state.redb"]);
        }
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        let s = states(&o, "graph");
        assert_eq!(s.len(), 6, "{}", show(&o));
        assert!(s.values().all(|v| v == "in-sync"), "{}", show(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains("6 in-sync"), "{stderr}");
    }
    // With the record nothing is downloaded (the etag decides); without it, every photo is.
    let etag_only = {
        srv.clear_records();
        let o = graph_cmd(&dir, &srv, "audit")
            .args(["--state", "state.redb"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        srv.records()
            .iter()
            .filter(|r| r.path.ends_with("/$value"))
            .count()
    };
    assert_eq!(etag_only, 0);

    // Then the world moves.
    let n = Normalizer::new();
    srv.set_photo("c@contoso.test", photo(20)).unwrap();
    let thumb = n.normalize(&photo(4), &Profile::ad_thumbnail()).unwrap();
    srv.set_photo("l@contoso.test", thumb.bytes.to_vec())
        .unwrap();
    manifest(
        &dir,
        &[
            ("a@contoso.test", Some(1)),
            ("c@contoso.test", Some(2)),
            ("d@contoso.test", Some(30)),
            ("l@contoso.test", Some(4)),
            ("m@contoso.test", Some(7)),
            ("nobody@contoso.test", Some(8)),
            ("w@contoso.test", None),
            ("x@contoso.test", Some(6)),
            ("y@contoso.test", None),
        ],
    );
    let o = graph_cmd(&dir, &srv, "audit")
        .args(["--state", "state.redb", "--review", "review"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let want = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(u, s)| (u.to_string(), s.to_string()))
            .collect()
    };
    assert_eq!(
        states(&o, "graph"),
        want(&[
            ("a@contoso.test", "in-sync"),
            ("c@contoso.test", "changed-elsewhere"),
            ("d@contoso.test", "outdated"),
            ("l@contoso.test", "low-res"),
            ("m@contoso.test", "missing"),
            ("nobody@contoso.test", "not-in-directory"),
            ("w@contoso.test", "withheld"),
            ("x@contoso.test", "in-sync"),
            ("y@contoso.test", "in-sync"),
        ]),
        "{}",
        show(&o)
    );
    let all = items(&o);
    let l = &all[&("l@contoso.test".to_owned(), "graph".to_owned())];
    assert_eq!(
        (l["width"].as_u64(), l["height"].as_u64()),
        (Some(96), Some(96))
    );
    assert_eq!(l["expected_side"], 648);
    assert!(l["similarity"].as_f64().unwrap() >= userphoto::normalize::SAME_PICTURE);
    let c = &all[&("c@contoso.test".to_owned(), "graph".to_owned())];
    assert!(c["similarity"].as_f64().unwrap() < userphoto::normalize::SAME_PICTURE);
    assert_eq!(c["recorded"], true);
    assert!(c["etag"].as_str().is_some_and(|e| !e.is_empty()));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("1 changed-elsewhere") && stderr.contains("1 low-res"),
        "{stderr}"
    );
    review_page_shows_the_audit(&dir, &states(&o, "graph")).await;
    // --review-all: a card for the users in sync too.
    let o = graph_cmd(&dir, &srv, "audit")
        .args([
            "--state",
            "state.redb",
            "--review",
            "review-all",
            "--review-all",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let html = std::fs::read_to_string(dir.join("review-all/index.html")).unwrap();
    assert_eq!(html.matches("<article class=\"card").count(), 9);
    assert_eq!(html.matches("data-audit=\"in-sync\"").count(), 3);

    // Without the state file: no record of ours, so the picture alone decides.
    let o = graph_cmd(&dir, &srv, "audit").output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(
        states(&o, "graph"),
        want(&[
            ("a@contoso.test", "in-sync"),
            ("c@contoso.test", "differs"),
            ("d@contoso.test", "differs"),
            ("l@contoso.test", "low-res"),
            ("m@contoso.test", "missing"),
            ("nobody@contoso.test", "not-in-directory"),
            ("w@contoso.test", "withheld"),
            ("x@contoso.test", "in-sync"),
            ("y@contoso.test", "in-sync"),
        ]),
        "{}",
        show(&o)
    );

    // The audit wrote nothing: no upload since the sync, no record changed.
    for u in UPNS {
        assert!(srv.user(u).unwrap().uploads <= 1, "{u}");
    }
    let o = graph_cmd(&dir, &srv, "audit")
        .args(["--state", "state.redb"])
        .output()
        .unwrap();
    assert_eq!(
        states(&o, "graph")["d@contoso.test"],
        "outdated",
        "{}",
        show(&o)
    );
}

/// `audit --review review` (after the world moved, in `graph_every_state_...`): the page
/// in headless Chromium has one card per user not in sync, each with the state the JSON
/// line gives; the audit filter shows one state; every image loads, the 96-pixel copy
/// shows at its size, and the withheld person's photo is not shown.
async fn review_page_shows_the_audit(dir: &Path, want: &BTreeMap<String, String>) {
    use userphoto_testkit::browser::{file_url, Browser};
    let not_in_sync: BTreeMap<String, String> = want
        .iter()
        .filter(|(_, s)| *s != "in-sync")
        .map(|(u, s)| (u.clone(), s.clone()))
        .collect();
    let Some(b) = Browser::start().await else {
        return;
    };
    let js = |script: &'static str| {
        let client = b.client.clone();
        async move { client.execute(script, vec![]).await.unwrap() }
    };
    let page = std::fs::canonicalize(dir.join("review/index.html")).unwrap();
    b.client.goto(&file_url(&page)).await.unwrap();
    let shown: BTreeMap<String, String> = serde_json::from_value(
        js(
            "return Object.fromEntries([...document.querySelectorAll('.card')]
              .map(c => [c.dataset.user, c.dataset.audit]))",
        )
        .await,
    )
    .unwrap();
    assert_eq!(shown, not_in_sync);
    let notes = js("return document.querySelector('.notes').textContent").await;
    let in_sync = want.len() - not_in_sync.len();
    assert!(
        notes
            .as_str()
            .unwrap()
            .contains(&format!("{in_sync} in sync, not shown")),
        "{notes}"
    );
    // The audit filter: one state, then all again.
    let low_res = js("const s = document.getElementById('f-audit');
         s.value = 'low-res';
         s.dispatchEvent(new Event('change'));
         return [...document.querySelectorAll('.card')].filter(c => !c.hidden)
                  .map(c => c.dataset.user);")
    .await;
    assert_eq!(low_res, serde_json::json!(["l@contoso.test"]));
    // The low-res card: the directory's 96-pixel copy, our 648-pixel rendition, and why.
    let l = js(
        "const c = document.querySelector('.card[data-user=\"l@contoso.test\"]');
         return [c.querySelector('figure.current figcaption').textContent,
                 c.querySelector('figure.new figcaption').textContent,
                 c.querySelector('.d').textContent];",
    )
    .await;
    let l: Vec<String> = serde_json::from_value(l).unwrap();
    assert!(l[0].contains("96×96"), "{l:?}");
    assert!(l[1].contains("648×648"), "{l:?}");
    assert!(l[2].contains("648 px is wanted"), "{l:?}");
    let withheld = js(
        "const c = document.querySelector('.card[data-user=\"w@contoso.test\"]');
         return c.querySelectorAll('img').length;",
    )
    .await;
    assert_eq!(withheld, 0);
    let broken = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             (async () => {
               const imgs = [...document.images];
               for (const i of imgs) { i.scrollIntoView(); await i.decode().catch(() => {}); }
               done([imgs.length, imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length]);
             })();",
            vec![],
        )
        .await
        .unwrap();
    let broken: (usize, usize) = serde_json::from_value(broken).unwrap();
    assert!(
        broken.0 >= 6 && broken.1 == 0,
        "images, not loaded: {broken:?}"
    );
    b.close().await;
}

/// A Graph sync without `--graph-confirm-uploads` records no etag: the audit then tells a
/// changed source (`outdated`) from a picture someone else put there (`changed-elsewhere`)
/// by whether the rendition it would write is the one recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_without_recorded_etags_tells_outdated_from_changed_elsewhere() {
    let upns = ["a@contoso.test", "c@contoso.test", "d@contoso.test"];
    let users: Vec<UserSeed> = upns
        .iter()
        .enumerate()
        .map(|(i, u)| UserSeed::new(&format!("00000000-0000-0000-0000-00000000001{i}"), u))
        .collect();
    let srv = GraphServer::start(
        GraphServerConfig {
            reencode_uploads: true,
            ..Default::default()
        }
        .with_users(users),
    )
    .await;
    let dir = tempdir("audit", "graph-no-etag");
    manifest(
        &dir,
        &[(upns[0], Some(1)), (upns[1], Some(2)), (upns[2], Some(3))],
    );
    let o = graph_cmd(&dir, &srv, "sync")
        .args(["--state", "state.redb", "--no-backup"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    srv.set_photo(upns[1], photo(20)).unwrap();
    manifest(
        &dir,
        &[(upns[0], Some(1)), (upns[1], Some(2)), (upns[2], Some(30))],
    );
    let o = graph_cmd(&dir, &srv, "audit")
        .args(["--state", "state.redb"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let s = states(&o, "graph");
    assert_eq!(s[upns[0]], "in-sync", "{}", show(&o));
    assert_eq!(s[upns[1]], "changed-elsewhere", "{}", show(&o));
    assert_eq!(s[upns[2]], "outdated", "{}", show(&o));
}

#[test]
fn bad_configuration_exits_2() {
    let dir = tempdir("audit", "bad-config");
    manifest(&dir, &[("a@contoso.test", Some(1))]);
    // A sink that does not exist.
    let o = cli()
        .current_dir(&dir)
        .args(["audit", "--source", "csv:people.csv", "--sink", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(o.stdout.is_empty(), "{}", show(&o));
    // A config file with an unknown key.
    std::fs::write(
        dir.join("userphoto.toml"),
        "source = \"csv:people.csv\"\nsinkk = \"x\"\n",
    )
    .unwrap();
    let o = cli()
        .current_dir(&dir)
        .args(["audit", "--config", "userphoto.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    // An unreachable directory is a run-level failure too.
    let o = cli()
        .current_dir(&dir)
        .env("GRAPH_TEST_SECRET", "s")
        .args(["audit", "--source", "csv:people.csv", "--match", "upn"])
        .args(["--sink", "graph", "--graph-url", "http://127.0.0.1:9"])
        .args(["--tenant", "t", "--client-id", "c"])
        .args(["--client-secret-env", "GRAPH_TEST_SECRET"])
        .args(["--login-url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
}

/// The hybrid sequence: `sync --sink ad --sink graph` for a synced user, then Entra Connect
/// copies AD's 96-pixel thumbnail over the HD Graph photo; `audit` reports `low-res` for
/// Graph (the etag moved, the same picture far smaller) and `in-sync` for AD, exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_thumbnail_overwriting_the_graph_photo_is_low_res() {
    let env = need_env!();
    let ou = Ou::new(&env, "audit").await;
    let id = run_id();
    let (synced, cloud_only) = (format!("as{id}"), format!("ac{id}"));
    let upn = |s: &str| format!("{s}@contoso.test");
    for s in [&synced, &cloud_only] {
        ou.add_users(
            vec![NewUser::new(s.clone(), s.clone()).with("userPrincipalName", upn(s))],
            1,
        )
        .await;
    }
    let srv = GraphServer::start(
        GraphServerConfig {
            reencode_uploads: true,
            ..Default::default()
        }
        .with_users([
            UserSeed::new("11111111-0000-0000-0000-000000000001", &upn(&synced))
                .on_premises_sync_enabled(Some(true)),
            UserSeed::new("11111111-0000-0000-0000-000000000002", &upn(&cloud_only)),
        ]),
    )
    .await;
    let dir = tempdir("audit", "hybrid");
    manifest(
        &dir,
        &[(&upn(&synced), Some(11)), (&upn(&cloud_only), Some(12))],
    );
    let run = |cmd: &str, state: &str| {
        let mut c = cli();
        c.current_dir(&dir)
            .args([cmd, "--source", "csv:people.csv", "--match", "upn"])
            .args([
                "--sink",
                "ad",
                "--ldap-url",
                &env.ldaps_url,
                "--ca-cert",
                &env.ca,
            ])
            .args([
                "--bind-dn",
                &env.admin_upn,
                "--bind-password-env",
                "UP_TEST_PW",
            ])
            .args(["--base-dn", &ou.dn, "--state", state])
            .env("UP_TEST_PW", password(&env.admin_pw_file))
            .env("GRAPH_TEST_SECRET", srv.client_secret().unwrap());
        graph_flags(&mut c, &srv);
        c
    };
    let o = run("sync", "state.redb")
        .args(["--no-backup", "--graph-confirm-uploads"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // All in sync: exit 0.
    let o = run("audit", "state.redb").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(items(&o).len(), 4, "{}", show(&o));

    // Entra Connect's cycle: the synced user's AD thumbnail becomes its cloud photo.
    let copied = sync_thumbnails(&ou, &srv).await;
    assert_eq!(copied, [upn(&synced)]);
    let cloud = srv.user(&upn(&synced)).unwrap();
    assert_eq!(cloud.photo_size, Some((96, 96)));

    let o = run("audit", "state.redb").output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let all = items(&o);
    let g = &all[&(upn(&synced), "graph".to_owned())];
    assert_eq!(g["state"], "low-res", "{}", show(&o));
    assert_eq!(
        (g["width"].as_u64(), g["expected_side"].as_u64()),
        (Some(96), Some(648))
    );
    assert_eq!(all[&(upn(&synced), "ad".to_owned())]["state"], "in-sync");
    assert_eq!(
        all[&(upn(&cloud_only), "graph".to_owned())]["state"],
        "in-sync"
    );
    assert_eq!(
        all[&(upn(&cloud_only), "ad".to_owned())]["state"],
        "in-sync"
    );
    // Without the state file, the picture alone says the same.
    let o = run("audit", "other.redb").output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let all = items(&o);
    assert_eq!(all[&(upn(&synced), "graph".to_owned())]["state"], "low-res");
    assert_eq!(all[&(upn(&synced), "ad".to_owned())]["state"], "in-sync");

    ou.cleanup().await;
}
