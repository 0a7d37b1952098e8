//! The review page from outside: `userphoto plan --review DIR` and `sync --plan ... --review
//! DIR` on the offline LDIF path, opened from `file://` in headless Chromium (Debian's
//! `chromium` and `chromedriver`, which `scripts/test.sh` installs): one card per change,
//! every image loads, hostile names show as text and run nothing, nothing leaves `file://`.

mod common;

use common::{cli, dn};

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use userphoto::normalize::testimage;
use userphoto_testkit::browser::{file_url, Browser};
use userphoto_testkit::ldif::{self, Entry};

/// A key that is markup: shown as text, never run.
const HOSTILE_KEY: &str = "<img src=x onerror=alert(1)>";
/// A DN that is markup.
const HOSTILE_CN: &str = "<script>document.title='pwned'</script>";

struct World {
    dir: common::TestDir,
}

impl World {
    /// alice (new), bob (changed), carol (unchanged after a first sync is not made here:
    /// a directory photo that differs), mallory (a DN that is markup), the hostile key (not
    /// in the directory: a failure whose message holds the key), and grace (a leaver).
    fn new(name: &str) -> Self {
        let dir = common::tempdir("review", name);
        std::fs::create_dir_all(dir.join("photos")).unwrap();
        let w = Self { dir };
        for (i, u) in ["alice", "bob", "mallory", HOSTILE_KEY].iter().enumerate() {
            w.photo(u, i as u32 + 1);
        }
        let mut entries = vec![
            user("alice", &dn("alice"), None),
            user("bob", &dn("bob"), Some(testimage::photo_jpeg(96, 96, 90))),
            user(
                "mallory",
                &format!("CN={HOSTILE_CN},OU=Staff,DC=example,DC=test"),
                Some(testimage::photo_jpeg(96, 96, 91)),
            ),
        ];
        entries.push(user(
            "grace",
            &dn("grace"),
            Some(testimage::photo_jpeg(96, 96, 92)),
        ));
        std::fs::write(w.path("export.ldif"), ldif::write_export(&entries)).unwrap();
        w
    }

    fn photo(&self, user: &str, seed: u32) {
        std::fs::write(
            self.path("photos").join(format!("{user}.jpg")),
            testimage::photo_jpeg(320, 400, seed),
        )
        .unwrap();
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    fn run(&self, cmd: &str, extra: &[&str]) -> Output {
        let mut c = cli();
        c.current_dir(&self.dir).args([
            cmd,
            "--source",
            "folder:photos",
            "--sink",
            "ldif:export.ldif",
            "--out",
            "changes.ldif",
            "--no-backup",
        ]);
        c.args(extra);
        let o = c.output().unwrap();
        assert!(
            o.status.code().is_some_and(|c| c < 2),
            "{cmd} {extra:?}: {:?}\n{}\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    fn json(&self, p: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.path(p)).unwrap()).unwrap()
    }
}

fn user(name: &str, dn: &str, photo: Option<Vec<u8>>) -> Entry {
    let mut e = Entry::new(dn)
        .with("objectClass", "user")
        .with("sAMAccountName", name);
    if let Some(p) = photo {
        e = e.with("thumbnailPhoto", p);
    }
    e
}

/// Runs `script` in the page and returns its value.
async fn js(b: &Browser, script: &str) -> Value {
    b.client.execute(script, vec![]).await.unwrap()
}

/// Scrolls every image into view (they load lazily) and waits until each has loaded or
/// failed; returns the `src` of those that did not load.
async fn images_not_loaded(b: &Browser) -> Vec<String> {
    let v = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             (async () => {
               const imgs = [...document.images];
               for (const i of imgs) {
                 i.scrollIntoView();
                 await i.decode().catch(() => {});
               }
               done(imgs.filter(i => !(i.complete && i.naturalWidth > 0))
                        .map(i => i.getAttribute('src')));
             })();",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

fn artifact(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_review_shows_every_change_and_runs_nothing() {
    let w = World::new("plan");
    w.run("plan", &["--review", "review", "--save-plan", "plan.json"]);
    let plan = w.json("plan.json");
    let changes = plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| matches!(i["action"].as_str(), Some("put" | "delete" | "fail")))
        .count();
    assert!(changes >= 4, "{plan}");
    let Some(b) = Browser::start().await else {
        return;
    };
    let page = std::fs::canonicalize(w.path("review/index.html")).unwrap();
    b.client.goto(&file_url(&page)).await.unwrap();
    let title = js(&b, "return document.title").await;
    assert_eq!(
        js(&b, "return document.querySelectorAll('.card').length").await,
        changes,
        "one card per change"
    );
    // The cards' attributes, exactly.
    let cards: Vec<(String, String, String, String)> = serde_json::from_value(
        js(
            &b,
            "return [...document.querySelectorAll('.card')].map(c =>
               [c.dataset.user, c.dataset.sink, c.dataset.action, c.dataset.reason]);",
        )
        .await,
    )
    .unwrap();
    for it in plan["items"].as_array().unwrap() {
        if !matches!(it["action"].as_str(), Some("put" | "delete" | "fail")) {
            continue;
        }
        let want = (
            it["key"].as_str().unwrap().to_owned(),
            it["sink"].as_str().unwrap().to_owned(),
            it["action"].as_str().unwrap().to_owned(),
            it["reason"].as_str().unwrap().replace('_', "-"),
        );
        assert!(cards.contains(&want), "{want:?} not in {cards:?}");
    }
    // The current photo beside the new one: bob's card has both.
    let bob: Vec<String> = serde_json::from_value(
        js(
            &b,
            "return [...document.querySelector('.card[data-user=\"bob\"]').querySelectorAll('img')]
               .map(i => i.getAttribute('alt'));",
        )
        .await,
    )
    .unwrap();
    assert!(bob.len() >= 3, "current, new and source photos: {bob:?}");
    assert!(bob.iter().all(|a| !a.is_empty()), "{bob:?}");
    assert_eq!(images_not_loaded(&b).await, Vec::<String>::new());
    // Hostile names are text: the key, the DN and the failure's message.
    let text = js(&b, "return document.body.textContent").await;
    let text = text.as_str().unwrap();
    assert!(text.contains(HOSTILE_KEY), "the key shows as text");
    assert!(text.contains(HOSTILE_CN), "the DN shows as text");
    assert_eq!(
        js(&b, "return document.title").await,
        title,
        "no script ran"
    );
    assert_eq!(
        js(&b, "return document.querySelectorAll('script').length").await,
        1
    );
    assert_eq!(
        js(
            &b,
            "return document.querySelectorAll('img[src=\"x\"]').length"
        )
        .await,
        0
    );
    // Nothing leaves file://: every image is a file of the review folder, the page loads
    // nothing else (Chromium keeps no resource timing of file: loads, so the sources are
    // read from the page), and its policy forbids any other load.
    let srcs: Vec<String> = serde_json::from_value(
        js(&b, "return [...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || e.getAttribute('href'))").await,
    )
    .unwrap();
    assert!(!srcs.is_empty());
    assert!(
        srcs.iter()
            .all(|s| s.starts_with("img/") && !s.contains("..")),
        "{srcs:?}"
    );
    let csp = js(
        &b,
        "return document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]').content",
    )
    .await;
    assert!(
        csp.as_str().unwrap().contains("default-src 'none'"),
        "{csp}"
    );
    let png = b.client.screenshot().await.unwrap();
    std::fs::write(artifact("cli-plan-review.png"), png).unwrap();
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_review_of_an_approved_sync_names_what_changed_since() {
    let w = World::new("approved");
    w.run("plan", &["--save-plan", "plan.json"]);
    // bob's photo is replaced after the approval.
    w.photo("bob", 55);
    let o = w.run(
        "sync",
        &[
            "--plan",
            "plan.json",
            "--review",
            "review",
            "--report",
            "report.json",
        ],
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("review: review/index.html"));
    let Some(b) = Browser::start().await else {
        return;
    };
    let page = std::fs::canonicalize(w.path("review/index.html")).unwrap();
    b.client.goto(&file_url(&page)).await.unwrap();
    let bob = js(
        &b,
        "const c = document.querySelector('.card[data-user=\"bob\"]');
         return [c.dataset.action, c.dataset.reason, c.dataset.status, c.textContent];",
    )
    .await;
    assert_eq!(bob[0], "skip");
    assert_eq!(bob[1], "changed-since-plan");
    assert_eq!(bob[2], "skipped");
    let alice = js(
        &b,
        "const c = document.querySelector('.card[data-user=\"alice\"]');
         return [c.dataset.action, c.dataset.status];",
    )
    .await;
    assert_eq!(alice, serde_json::json!(["put", "done"]));
    assert_eq!(images_not_loaded(&b).await, Vec::<String>::new());
    let png = b.client.screenshot().await.unwrap();
    std::fs::write(artifact("cli-sync-review.png"), png).unwrap();
    b.close().await;
}

/// Graph as the sink: the card shows the photo Microsoft 365 holds today (downloaded, at
/// reduced scale) beside the new rendition; a user with no photo there says so.
#[tokio::test(flavor = "multi_thread")]
async fn the_review_shows_the_photo_graph_holds_today() {
    use userphoto_testkit::graph_server::{GraphServer, GraphServerConfig, UserSeed};
    let upn = |i: usize| format!("user{i}@contoso.onmicrosoft.com");
    let srv = GraphServer::start(
        GraphServerConfig::default().with_users([
            UserSeed::new("00000000-0000-4000-8000-000000000001", &upn(1))
                .photo(testimage::photo_jpeg(648, 648, 70)),
            UserSeed::new("00000000-0000-4000-8000-000000000002", &upn(2)),
        ]),
    )
    .await;
    let dir = common::tempdir("review", "graph");
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    for i in 1..=2 {
        std::fs::write(
            dir.join("photos").join(format!("{}.jpg", upn(i))),
            testimage::photo_jpeg(700, 800, i as u32),
        )
        .unwrap();
    }
    let mut c = common::graph_sync_with_secret(&dir, &srv, &srv.client_secret().unwrap());
    c.args(["--dry-run", "--review", "review"]);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    common::succeeded(&o);
    let Some(b) = Browser::start().await else {
        return;
    };
    let page = std::fs::canonicalize(dir.join("review/index.html")).unwrap();
    b.client.goto(&file_url(&page)).await.unwrap();
    assert_eq!(
        js(&b, "return document.querySelectorAll('.card').length").await,
        2
    );
    let current = |i: usize| {
        format!(
            "const c = document.querySelector('.card[data-user=\"{}\"]');
             return [c.querySelectorAll('img').length, c.textContent.includes('no photo')];",
            upn(i)
        )
    };
    // user1: current, new and source; user2: new and source, and "no photo".
    assert_eq!(js(&b, &current(1)).await, serde_json::json!([3, false]));
    assert_eq!(js(&b, &current(2)).await, serde_json::json!([2, true]));
    assert_eq!(images_not_loaded(&b).await, Vec::<String>::new());
    b.close().await;
}

/// A person who withdrew consent: the card says the photo is removed and shows no photo of
/// them, neither the directory's nor the source's, and no file of theirs is in the folder.
#[tokio::test(flavor = "multi_thread")]
async fn the_review_shows_no_photo_of_a_withheld_person() {
    let w = World::new("withheld");
    std::fs::write(
        w.path("photos.csv"),
        "key,path,withheld\nalice,photos/alice.jpg,\nbob,photos/bob.jpg,yes\n",
    )
    .unwrap();
    let o = cli()
        .current_dir(&w.dir)
        .args([
            "plan",
            "--source",
            "csv:photos.csv",
            "--sink",
            "ldif:export.ldif",
        ])
        .args(["--review", "review"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let Some(b) = Browser::start().await else {
        return;
    };
    let page = std::fs::canonicalize(w.path("review/index.html")).unwrap();
    b.client.goto(&file_url(&page)).await.unwrap();
    let bob = js(
        &b,
        "const c = document.querySelector('.card[data-user=\"bob\"]');
         return [c.dataset.action, c.dataset.reason, c.querySelectorAll('img, svg').length,
                 c.textContent.includes('withheld')];",
    )
    .await;
    assert_eq!(bob, serde_json::json!(["delete", "withheld", 0, true]));
    // Only alice's images are in the folder: the ones the page shows.
    let shown: std::collections::BTreeSet<String> = serde_json::from_value(
        js(
            &b,
            "return [...document.images].map(i => i.getAttribute('src'))",
        )
        .await,
    )
    .unwrap();
    let files: std::collections::BTreeSet<String> = std::fs::read_dir(w.path("review/img"))
        .unwrap()
        .map(|e| format!("img/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    assert_eq!(files, shown);
    b.close().await;
}
