//! Measures the review page on the offline LDIF path: what `plan --review` adds to a plan of
//! CHANGES users, and how long headless Chromium takes to open a page of PAGE_CARDS changes.
//!
//! ```text
//! cargo run --release --example bench_review -- [CHANGES] [PAGE_CARDS] [WORK_DIR]
//! ```
//!
//! Generates CHANGES photos (10,000 by default; 240x300 JPEGs) and a directory export
//! listing their users, every other one with a 96 px photo already (so half the cards show
//! the directory's photo, decoded at reduced scale, and half say "no photo"). Then, each in
//! a child process of its own: a plan (list, read, normalize, plan) without a review, and
//! one with the review (previews made with the renditions, images and page written). Both
//! print their stage times; the summary gives what the review added. Last, a review of the
//! first PAGE_CARDS users (2,000 by default) is opened from disk in headless Chromium
//! (chromium and chromedriver from the PATH, or `CHROMIUM`/`CHROMEDRIVER`): the time until
//! the page's load event, and until every card is counted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::json;
use userphoto::normalize::{testimage, Profile};
use userphoto::review::{Review, ReviewOptions, SOURCE_PREVIEW_SIDE};
use userphoto::sink::LdifSink;
use userphoto::source::FolderSource;
use userphoto::sync::Engine;
use userphoto::MatchAttribute;
use userphoto_testkit::browser::{file_url, Browser};
use userphoto_testkit::ldif;

/// One plan of the world in `dir`, with or without its review; its JSON line.
fn one_run(dir: &Path, review: bool) -> serde_json::Value {
    let t = Instant::now();
    let sink = LdifSink::open(dir.join("export.ldif"), MatchAttribute::SamAccountName)
        .expect("open the export");
    let mut engine =
        Engine::new(FolderSource::new(dir.join("photos"))).with_sink(sink, Profile::ad_thumbnail());
    if review {
        engine = engine.with_previews(SOURCE_PREVIEW_SIDE);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let prepared = engine.prepare().await.expect("plan");
        let planned = t.elapsed().as_secs_f64();
        let changes = prepared.plan().changes().count();
        let mut review_s = 0.0;
        if review {
            let t2 = Instant::now();
            let r = Review::collect(&dir.join("review"), &prepared, &ReviewOptions::default())
                .await
                .expect("review");
            r.write().expect("page");
            review_s = t2.elapsed().as_secs_f64();
        }
        let report = prepared.dry_run();
        json!({"run": if review { "plan+review" } else { "plan" }, "changes": changes,
               "plan_s": round(planned), "review_s": round(review_s),
               "total_s": round(t.elapsed().as_secs_f64()),
               "normalize_ms": report.timings.normalize_ms})
    })
}

fn round(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

fn child(dir: &Path, review: bool) -> serde_json::Value {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .arg("--one-run")
        .arg(dir)
        .arg(if review { "review" } else { "plain" })
        .output()
        .expect("run the child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    println!("{}", text.trim());
    serde_json::from_str(text.trim()).expect("one JSON line")
}

/// CHANGES users: photos, and an export where every other user has a photo already.
fn generate(dir: &Path, users: usize) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("photos")).expect("work dir");
    let old = testimage::photo_jpeg(96, 96, 1_000_000);
    let mut entries = Vec::with_capacity(users);
    for i in 0..users {
        let name = format!("user{i:05}");
        std::fs::write(
            dir.join("photos").join(format!("{name}.jpg")),
            testimage::photo_jpeg(240, 300, i as u32),
        )
        .expect("write photo");
        let mut e = ldif::Entry::new(&format!("CN={name},OU=Staff,DC=example,DC=test"))
            .with("objectClass", "user")
            .with("sAMAccountName", name.as_str());
        if i % 2 == 1 {
            e = e.with("thumbnailPhoto", old.clone());
        }
        entries.push(e);
    }
    std::fs::write(dir.join("export.ldif"), ldif::write_export(&entries)).expect("export");
}

async fn open_page(page: &Path, cards: usize) -> Option<serde_json::Value> {
    let browser = Browser::start().await?;
    let t = Instant::now();
    browser
        .client
        .goto(&file_url(page))
        .await
        .expect("open the page");
    let loaded = t.elapsed().as_secs_f64();
    let counted: u64 = browser
        .client
        .execute("return document.querySelectorAll('.card').length", vec![])
        .await
        .expect("count")
        .as_u64()
        .unwrap_or(0);
    let all = t.elapsed().as_secs_f64();
    let load_event: f64 = browser
        .client
        .execute(
            "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd;",
            vec![],
        )
        .await
        .expect("timing")
        .as_f64()
        .unwrap_or(f64::NAN);
    browser.close().await;
    assert_eq!(counted as usize, cards, "cards on the page");
    Some(json!({"page": {"cards": counted, "goto_s": round(loaded),
                "load_event_ms": load_event.round(), "counted_s": round(all)}}))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--one-run") {
        let line = one_run(Path::new(&args[1]), args[2] == "review");
        println!("{line}");
        return;
    }
    let changes: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let page_cards: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2_000);
    let work = args
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("userphoto-bench-review"));
    let t = Instant::now();
    let big = work.join("changes");
    generate(&big, changes);
    let small = work.join("page");
    generate(&small, page_cards);
    eprintln!(
        "bench_review: {changes} + {page_cards} users generated in {:.1} s in {}",
        t.elapsed().as_secs_f64(),
        work.display()
    );
    let plain = child(&big, false);
    let review = child(&big, true);
    let _ = child(&small, true);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let page = rt.block_on(open_page(
        &small.join("review").join("index.html"),
        page_cards,
    ));
    let s = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let added = s(&review, "total_s") - s(&plain, "total_s");
    let summary = json!({"summary": {
        "changes": plain["changes"], "plan_s": s(&plain, "total_s"),
        "plan_with_review_s": s(&review, "total_s"), "review_added_s": round(added),
        "review_stage_s": s(&review, "review_s"),
        "page_cards": page_cards, "page": page,
    }});
    println!("{summary}");
    eprintln!(
        "bench_review: plan of {} changes {:.2} s, with the review {:.2} s (+{:.2} s; writing the review {:.2} s); page of {page_cards} cards: {}",
        plain["changes"],
        s(&plain, "total_s"),
        s(&review, "total_s"),
        added,
        s(&review, "review_s"),
        page.map(|p| format!("load {} s", p["page"]["goto_s"])).unwrap_or_else(|| "no browser".into())
    );
}
