//! The review page (`userphoto::review`) in a real browser: headless Chromium through
//! chromedriver (`userphoto_testkit::browser`), opened from disk as an admin would open it.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt install chromium chromium-driver`), found
//! through `CHROMIUM`/`CHROMEDRIVER` or the `PATH`; without them the tests skip, which fails
//! under `USERPHOTO_REQUIRE_TOOLS=1` (`scripts/test.sh`).
//!
//! Writes a screenshot to `target/test-artifacts/review-page.png` under the workspace root.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use userphoto::normalize::testimage;
use userphoto::review::{
    write_page, Card, ImageFile, PageInfo, Picture, Rect, SinkInfo, SourceView,
};
use userphoto_testkit::browser::{file_url, Browser};

const TITLE: &str = "userphoto plan";
const HOSTILE_KEY: &str = "<img src=x onerror=\"document.title='pwned'\">";
const HOSTILE_DN: &str = "CN=<script>document.title='pwned2'</script>,OU=Staff,DC=example,DC=org";
const HOSTILE_DETAIL: &str = "\"><svg onload=\"document.title='pwned3'\"></svg> and 'quotes' & <b>";

/// How long anything in the page may take to happen.
const DEADLINE: Duration = Duration::from_secs(30);

/// Writes a generated JPEG of `w` x `h` to `dir/img/name` and describes it.
fn jpeg(dir: &Path, name: &str, w: u32, h: u32, seed: u32) -> ImageFile {
    let img = dir.join("img");
    std::fs::create_dir_all(&img).unwrap();
    std::fs::write(img.join(name), testimage::photo_jpeg(w, h, seed)).unwrap();
    ImageFile::new(format!("img/{name}"), w, h)
}

fn info() -> PageInfo {
    PageInfo::new(TITLE, "folder:/srv/photos", "face", "2025-06-01T12:00:00Z")
        .with_sink(SinkInfo::new("ad", "ad-thumbnail", 96, 96, 10_000))
        .with_sink(SinkInfo::new("graph", "graph", 648, 648, 500_000))
        .with_note("1 withheld user: photos not shown")
}

/// Seven cards of every kind, hostile strings included, and their images in `dir/img`.
fn fixture(dir: &Path) -> Vec<Card> {
    let source = |name: &str, seed: u32| {
        SourceView::new(
            jpeg(dir, name, 120, 160, seed),
            300,
            400,
            Rect::new(30, 60, 240, 240),
        )
        .with_face(Rect::new(90, 110, 120, 130))
    };
    vec![
        Card::new("alice", "ad", "put", "new")
            .with_entry("CN=Alice Archer,OU=Staff,DC=example,DC=org")
            .with_current(Picture::missing("no photo"))
            .with_new(Picture::File(jpeg(dir, "000001-new.jpg", 96, 96, 1)))
            .with_bytes(3_912)
            .with_source(source("000001-src.jpg", 1))
            .with_warning("low-resolution"),
        Card::new(HOSTILE_KEY, "graph", "put", "changed")
            .with_entry(HOSTILE_DN)
            .with_current(Picture::File(jpeg(dir, "000002-cur.jpg", 300, 300, 2)))
            .with_new(Picture::File(jpeg(dir, "000002-new.jpg", 300, 300, 3)))
            .with_bytes(41_000)
            .with_source(source("000002-src.jpg", 3))
            .with_warning("several-faces")
            .with_warning("face-at-edge"),
        Card::new("bob", "ad", "skip", "unchanged")
            .with_entry("bob@example.org")
            .with_current(Picture::File(jpeg(dir, "000003-cur.jpg", 96, 96, 4)))
            .with_new(Picture::File(jpeg(dir, "000003-new.jpg", 96, 96, 4))),
        Card::new("carol", "ad", "fail", "invalid-image")
            .with_entry("CN=Carol,OU=Staff,DC=example,DC=org")
            .with_detail(HOSTILE_DETAIL)
            .with_current(Picture::missing("not read: timeout"))
            .with_new(Picture::missing("no rendition")),
        Card::new("dave", "ad", "delete", "leaver")
            .with_current(Picture::File(jpeg(dir, "000005-cur.jpg", 96, 96, 5)))
            .with_new(Picture::missing("removed")),
        Card::new("erin", "graph", "put", "not-recorded")
            .with_entry("erin@example.org")
            .with_new(Picture::File(jpeg(dir, "000006-new.jpg", 240, 240, 6)))
            .with_source(source("000006-src.jpg", 6))
            .with_warning("no-face"),
        Card::new("frank", "ad", "skip", "withheld")
            .with_current(Picture::missing("withheld: not shown"))
            .with_new(Picture::missing("withheld: not shown")),
    ]
}

/// Runs `script` (a function body) until it returns something other than `null` or
/// `false`, polling until [`DEADLINE`].
async fn eventually(client: &Client, script: &str, what: &str) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let v = client.execute(script, vec![]).await.expect(what);
        if !matches!(v, Value::Null | Value::Bool(false)) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn js(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.expect(script)
}

/// Waits until the page has loaded and its script has run (the script's hash in the policy
/// is right, or nothing would set `data-ready`).
async fn wait_ready(client: &Client) {
    eventually(
        client,
        "return document.readyState === 'complete' \
         && document.documentElement.getAttribute('data-ready') === '1';",
        "the page's load and its script",
    )
    .await;
}

/// The visible cards, three ways that must agree: laid out (`offsetParent`), not `hidden`,
/// and the page's own "N of M cards shown".
async fn visible(client: &Client) -> usize {
    let v = js(
        client,
        "const cards = [...document.querySelectorAll('.card')];\
         return [cards.filter(c => c.offsetParent !== null).length,\
                 cards.filter(c => !c.hidden).length, cards.length,\
                 document.getElementById('shown').textContent];",
    )
    .await;
    let laid_out = v[0].as_u64().unwrap() as usize;
    assert_eq!(laid_out, v[1].as_u64().unwrap() as usize, "{v}");
    assert_eq!(
        v[3].as_str().unwrap(),
        format!("{laid_out} of {} cards shown", v[2]),
        "{v}"
    );
    laid_out
}

async fn select(client: &Client, id: &str, value: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .select_by_value(value)
        .await
        .unwrap();
}

async fn reset(client: &Client) {
    client
        .find(Locator::Id("reset"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(visible(client).await, 7);
}

/// The workspace's `target/test-artifacts` (whatever `CARGO_TARGET_DIR` says).
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback HTTP server that answers every request with a JPEG and counts connections.
fn image_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let body = testimage::photo_jpeg(8, 8, 1);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (port, hits)
}

/// Loads an image from `url` in the current page; "load" or "error".
async fn load_image(client: &Client, url: &str) -> String {
    let script = "const [url, done] = arguments; const img = new Image();\
                  img.onload = () => done('load'); img.onerror = () => done('error');\
                  img.src = url; document.body.appendChild(img);";
    let v = client
        .execute_async(script, vec![json!(url)])
        .await
        .expect("image load");
    v.as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_page_in_chromium() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let client = &browser.client;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("review");
    let cards = fixture(&dir);
    write_page(&dir, &info(), &cards).unwrap();
    let url = file_url(&dir.join("index.html"));
    client.goto(&url).await.unwrap();
    wait_ready(client).await;

    // One card per Card, in order, with its data-* exactly (the hostile key included).
    let read = js(
        client,
        "return [...document.querySelectorAll('.card')].map(c => ['data-user', 'data-sink',\
         'data-action', 'data-reason', 'data-warnings'].map(a => c.getAttribute(a)));",
    )
    .await;
    let expected: Vec<Value> = cards
        .iter()
        .map(|c| json!([c.key, c.sink, c.action, c.reason, c.warnings.join(" ")]))
        .collect();
    assert_eq!(read, Value::Array(expected));
    assert_eq!(visible(client).await, 7);

    // The hostile strings are text, and ran nothing.
    let hostile = js(
        client,
        "const c = document.querySelectorAll('.card');\
         return [document.title, c[1].querySelector('.k').textContent,\
                 c[1].querySelector('.e').textContent, c[3].querySelector('.d').textContent,\
                 document.images.length, document.querySelectorAll('script').length,\
                 document.querySelectorAll('svg').length, document.querySelectorAll('b').length,\
                 c[1].querySelector('img').alt];",
    )
    .await;
    assert_eq!(hostile[0], TITLE, "document.title changed: something ran");
    assert_eq!(hostile[1], HOSTILE_KEY);
    assert_eq!(hostile[2], HOSTILE_DN);
    assert_eq!(hostile[3], HOSTILE_DETAIL);
    // 10 images (new+source, 3, 2, 0, 1, 2, 0), the page's one script, three overlays, and
    // the <b> of the two sinks in the header and the sink of each card.
    assert_eq!(hostile[4], 10, "img elements");
    assert_eq!(hostile[5], 1, "script elements");
    assert_eq!(hostile[6], 3, "svg elements");
    assert_eq!(hostile[7], 2 + 7, "b elements");
    assert_eq!(
        hostile[8],
        format!("current photo of {HOSTILE_KEY} in graph"),
        "alt text"
    );

    // Every image loads: scrolled into view (they are lazy), polled until complete.
    let count = hostile[4].as_u64().unwrap();
    for i in 0..count {
        let script = format!(
            "const img = document.images[{i}]; img.scrollIntoView({{block: 'center'}});\
             return img.complete ? [img.getAttribute('src'), img.naturalWidth,\
             img.naturalHeight] : null;"
        );
        let got = eventually(client, &script, &format!("image {i}")).await;
        let src = got[0].as_str().unwrap().to_owned();
        let file = image::image_dimensions(dir.join(&src)).unwrap();
        assert_eq!(
            (got[1].as_u64().unwrap(), got[2].as_u64().unwrap()),
            (u64::from(file.0), u64::from(file.1)),
            "{src} did not load"
        );
    }
    // Nothing was requested from anywhere but file:. (Chromium keeps no resource timing of
    // file: loads, so the list is usually empty; an http: load would be in it. The refusal
    // of the network itself is checked below, with a server that counts connections.)
    let resources = js(
        client,
        "return performance.getEntriesByType('resource').map(e => e.name);",
    )
    .await;
    for name in resources.as_array().unwrap() {
        assert!(name.as_str().unwrap().starts_with("file://"), "{name}");
    }

    // The stylesheet applied (its hash is right), and the photos have the profile's size.
    let style = js(
        client,
        "const c = document.querySelector('.card');\
         const img = document.querySelector('img[alt=\"new photo of alice in ad\"]');\
         const big = document.querySelectorAll('.card')[1].querySelector('img.ph');\
         return [getComputedStyle(c).contentVisibility, img.getBoundingClientRect().width,\
                 img.getBoundingClientRect().height, big.getBoundingClientRect().width];",
    )
    .await;
    assert_eq!(style, json!(["auto", 96, 96, 240]));
    // The crop square sits over the source photo at its place: upright 300x400 shown at
    // 120x160, so the crop (30,60)+240 is at (12,24)+96 in CSS pixels.
    let overlay = js(
        client,
        "const fig = document.querySelector('figure.source');\
         fig.scrollIntoView({block: 'center'});\
         const img = fig.querySelector('img').getBoundingClientRect();\
         const svg = fig.querySelector('svg').getBoundingClientRect();\
         const crop = fig.querySelector('rect.crop').getBoundingClientRect();\
         return [svg.left - img.left, svg.top - img.top, svg.width, svg.height,\
                 crop.left - img.left, crop.top - img.top, crop.width, crop.height]\
                .map(v => Math.round(v));",
    )
    .await;
    assert_eq!(overlay, json!([0, 0, 120, 160, 12, 24, 96, 96]));

    // The filters and the search box, through the real controls.
    select(client, "f-action", "put").await;
    assert_eq!(visible(client).await, 3);
    select(client, "f-reason", "changed").await;
    assert_eq!(visible(client).await, 1);
    reset(client).await;
    select(client, "f-action", "skip").await;
    assert_eq!(visible(client).await, 2);
    reset(client).await;
    let warnings = client.find(Locator::Id("f-warning")).await.unwrap();
    warnings.select_by_label("any warning (3)").await.unwrap();
    assert_eq!(visible(client).await, 3);
    warnings.select_by_label("no face found (1)").await.unwrap();
    assert_eq!(visible(client).await, 1);
    warnings.select_by_label("no warning (4)").await.unwrap();
    assert_eq!(visible(client).await, 4);
    reset(client).await;
    let search = client.find(Locator::Id("q")).await.unwrap();
    search.send_keys("PWNED2").await.unwrap(); // the DN, case-insensitive
    assert_eq!(visible(client).await, 1);
    reset(client).await;
    search.send_keys("pwned3").await.unwrap(); // the detail
    assert_eq!(visible(client).await, 1);
    reset(client).await;
    search.send_keys("onerror").await.unwrap(); // the key
    assert_eq!(visible(client).await, 1);
    reset(client).await;
    search.send_keys("DC=Example").await.unwrap(); // the DNs (not the UPNs)
    assert_eq!(visible(client).await, 3);
    select(client, "f-action", "put").await; // and together with a filter
    assert_eq!(visible(client).await, 2);
    reset(client).await;
    search.send_keys("timeout").await.unwrap(); // a missing picture's text is not searched
    assert_eq!(visible(client).await, 0);
    reset(client).await;

    // The artifact: the top of the page, every image loaded.
    js(client, "window.scrollTo(0, 0); return null;").await;
    let png = client.screenshot().await.unwrap();
    std::fs::write(artifacts().join("review-page.png"), png).unwrap();

    // The policy is there, first in <head>.
    let first = js(
        client,
        "const m = document.head.firstElementChild;\
         return [m.httpEquiv, m.content];",
    )
    .await;
    assert_eq!(first[0], "Content-Security-Policy");
    let policy = first[1].as_str().unwrap();
    assert!(
        policy.starts_with("default-src 'none'; img-src file:;"),
        "{policy}"
    );

    // An inline event handler added to the page does not run (the policy), while a listener
    // registered after it does: the handler would have run first.
    let title = client
        .execute_async(
            "const done = arguments[0]; const img = document.createElement('img');\
             img.setAttribute('onload', \"document.title = 'inline handler ran'\");\
             img.addEventListener('load', () => done(document.title));\
             img.addEventListener('error', () => done('error'));\
             img.src = document.images[0].src; document.body.appendChild(img);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(title, TITLE);

    // An image from the network is refused without a connection; the same image on a file:
    // page without the policy loads, so the server and the check work (and nothing else,
    // such as Chromium's own rules for file: pages, is what refused it).
    let (port, hits) = image_server();
    let remote = format!("http://127.0.0.1:{port}/x.jpg");
    assert_eq!(load_image(client, &remote).await, "error");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the page reached the network"
    );
    let plain = tmp.path().join("plain.html");
    std::fs::write(&plain, "<!DOCTYPE html><title>no policy</title><p>plain").unwrap();
    client.goto(&file_url(&plain)).await.unwrap();
    assert_eq!(load_image(client, &remote).await, "load");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // An outcome page: statuses on the cards, and their filter. One more card names the
    // server's image as its path: the page keeps it a relative file path.
    let statuses = [
        "done",
        "done",
        "skipped",
        "failed",
        "done",
        "not-attempted",
        "skipped",
        "planned",
    ];
    let mut outcome = cards.clone();
    outcome.push(
        Card::new("mallory", "ad", "put", "new").with_new(Picture::file(remote.clone(), 8, 8)),
    );
    let outcome: Vec<Card> = outcome
        .into_iter()
        .zip(statuses)
        .map(|(c, s)| c.with_status(s))
        .collect();
    write_page(&dir, &info().with_outcome(true), &outcome).unwrap();
    client.goto(&url).await.unwrap();
    wait_ready(client).await;
    let read = js(
        client,
        "return [...document.querySelectorAll('.card')].map(c => c.getAttribute('data-status'));",
    )
    .await;
    assert_eq!(read, json!(statuses));
    let remote_img = eventually(
        client,
        "const img = document.querySelector('.card[data-user=\"mallory\"] img');\
         img.scrollIntoView({block: 'center'});\
         return img.complete ? [img.getAttribute('src'), img.src, img.naturalWidth] : null;",
        "mallory's image",
    )
    .await;
    assert_eq!(remote_img[0], format!("http%3A//127.0.0.1%3A{port}/x.jpg"));
    assert!(
        remote_img[1].as_str().unwrap().starts_with("file:///"),
        "{remote_img}"
    );
    assert_eq!(remote_img[2], 0, "a file that is not there");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the page reached the network"
    );
    select(client, "f-status", "done").await;
    assert_eq!(visible(client).await, 3);
    select(client, "f-status", "skipped").await;
    assert_eq!(visible(client).await, 2);
    assert_eq!(js(client, "return document.title;").await, TITLE);

    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_cards_load() {
    const N: usize = 2_000;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let client = &browser.client;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("review");
    let current = jpeg(&dir, "cur.jpg", 96, 96, 1);
    let new = jpeg(&dir, "new.jpg", 96, 96, 2);
    let src = jpeg(&dir, "src.jpg", 120, 160, 3);
    let actions = ["put", "put", "put", "skip", "delete", "fail"];
    let reasons = [
        "new",
        "changed",
        "not-recorded",
        "unchanged",
        "leaver",
        "invalid-image",
    ];
    let cards: Vec<Card> = (0..N)
        .map(|i| {
            let k = i % actions.len();
            let mut card = Card::new(format!("user{i:05}"), "ad", actions[k], reasons[k])
                .with_entry(format!("CN=User {i},OU=Staff,DC=example,DC=org"))
                .with_current(Picture::File(current.clone()))
                .with_new(Picture::File(new.clone()))
                .with_bytes(4_000 + i)
                .with_source(
                    SourceView::new(src.clone(), 300, 400, Rect::new(30, 60, 240, 240))
                        .with_face(Rect::new(90, 110, 120, 130)),
                );
            if i % 7 == 0 {
                card = card.with_warning("no-face");
            }
            if actions[k] == "fail" {
                card = card.with_detail(format!("error {i}: not a JPEG"));
            }
            card
        })
        .collect();
    write_page(&dir, &info(), &cards).unwrap();
    let bytes = std::fs::metadata(dir.join("index.html")).unwrap().len();

    let started = Instant::now();
    client
        .goto(&file_url(&dir.join("index.html")))
        .await
        .unwrap();
    wait_ready(client).await;
    let counted = js(client, "return document.querySelectorAll('.card').length;").await;
    let loaded = started.elapsed();
    assert_eq!(counted, N);

    // A filter over all of them, through the real control.
    let started = Instant::now();
    select(client, "f-action", "delete").await;
    let shown = eventually(
        client,
        "const t = document.getElementById('shown').textContent;\
         return t.startsWith('2000 of') ? null : t;",
        "the filter",
    )
    .await;
    let filtered = started.elapsed();
    let deletes = cards.iter().filter(|c| c.action == "delete").count();
    assert_eq!(shown, format!("{deletes} of {N} cards shown"));
    let search = client.find(Locator::Id("q")).await.unwrap();
    search.send_keys("user01999").await.unwrap();
    assert_eq!(
        js(
            client,
            "return document.getElementById('shown').textContent;"
        )
        .await,
        format!("0 of {N} cards shown") // user01999 is a "put" card: filtered out
    );
    // (Timings are reported, not asserted: they belong to benchmarks.)
    eprintln!(
        "review page with {N} cards ({} KB): loaded and counted in {loaded:?}; \
         action filter in {filtered:?} (including the WebDriver round trips)",
        bytes / 1024
    );
    browser.close().await;
}
