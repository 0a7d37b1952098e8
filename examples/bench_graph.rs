//! How close a sync through the Graph sink gets to the per-app limit: 1,000 users against
//! the Graph fake with 100 ms per request and 4 requests in flight (a first run, then two
//! unchanged ones), a first run with `confirm_uploads(true)`, the default runs again with 5%
//! of requests throttled (`429`, `Retry-After: 1`), and JSON batching against single
//! requests.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-graph-sink cargo run --release --example bench_graph [USERS]
//! ```
//!
//! "Ideal" is the issue's yardstick, one request per user: `users × 0.1 s / 4`. By default
//! a first run makes one request per user, the PUT (the engine does not read a re-encoding
//! sink before a write it cannot skip, and the sink does not read the new etag back), and
//! the second run one, the metadata read that adopts that etag. With `confirm_uploads(true)`
//! a first run makes two requests per user (the PUT, then a read of the new etag: Graph's PUT
//! answers no etag). The bench also prints each run's own floor, `requests × 0.1 s / 4`.

use std::time::{Duration, Instant};

use userphoto::normalize::testimage::photo_jpeg;
use userphoto::normalize::Profile;
use userphoto::sink::{GraphSink, Secret};
use userphoto::source::MemorySource;
use userphoto::sync::{Engine, RetryPolicy, StateStore, Timings};
use userphoto_testkit::graph_server::*;
use userphoto_testkit::reqwest;

const LATENCY: Duration = Duration::from_millis(100);
const IN_FLIGHT: usize = 4;

fn upn(i: usize) -> String {
    format!("user{i}@contoso.onmicrosoft.com")
}

async fn start(users: usize) -> GraphServer {
    let seeds =
        (0..users).map(|i| UserSeed::new(&format!("00000000-0000-4000-8000-{i:012}"), &upn(i)));
    let srv = GraphServer::start(GraphServerConfig::default().with_users(seeds)).await;
    srv.set_latency(LATENCY);
    srv.set_max_concurrent_per_app(Some(IN_FLIGHT));
    srv
}

fn sink(srv: &GraphServer, confirm_uploads: bool) -> GraphSink {
    GraphSink::builder(
        srv.tenant_id(),
        srv.client_id(),
        Secret::new(srv.client_secret().expect("secret")),
    )
    .graph_url(srv.base_url())
    .login_url(srv.login_url())
    .max_in_flight(IN_FLIGHT)
    .confirm_uploads(confirm_uploads)
    .build()
    .expect("sink")
}

fn line(
    label: &str,
    users: usize,
    wall: Duration,
    srv: &GraphServer,
    ops_before: u64,
    t: &Timings,
) {
    let ops = srv.operation_count() - ops_before;
    let ideal = users as f64 * LATENCY.as_secs_f64() / IN_FLIGHT as f64;
    let floor = ops as f64 * LATENCY.as_secs_f64() / IN_FLIGHT as f64;
    let w = wall.as_secs_f64();
    println!(
        "{label:<48} {w:7.2} s  ratio to ideal ({ideal:.0} s) {:5.2}x  requests {ops:5} ({:.2}/user)  ratio to {floor:.1} s for those requests {:5.2}x  max in flight {}",
        w / ideal,
        ops as f64 / users as f64,
        w / floor,
        srv.max_in_flight(),
    );
    println!(
        "{:<48} stages: read {:.2} s, normalize {:.2} s, apply {:.2} s; retries {}",
        "",
        t.read_ms as f64 / 1e3,
        t.normalize_ms as f64 / 1e3,
        t.apply_ms as f64 / 1e3,
        t.retries
    );
}

/// A first run of `users` new users and, unless `confirm_uploads` (whose later runs are
/// the same as the default's), two more over the same, unchanged photos: the second adopts
/// the etags of the first's uploads, the third compares them.
async fn sync_runs(users: usize, throttled: bool, confirm_uploads: bool) {
    let srv = start(users).await;
    if throttled {
        // 5% of requests: every 20th answers 429 with Retry-After: 1.
        srv.set_throttle(Some(Throttle::every(
            20,
            Failure::TooManyRequests(RetryAfter::Seconds(1)),
        )));
    }
    let source = (0..users).fold(MemorySource::new(), |s, i| {
        s.with_photo(upn(i), photo_jpeg(96, 128, i as u32))
    });
    let dir = std::env::temp_dir().join(format!(
        "userphoto-bench-graph-{}-{throttled}-{confirm_uploads}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let engine = Engine::new(source)
        .with_sink(sink(&srv, confirm_uploads), Profile::graph())
        .with_state(StateStore::open(dir.join("state.redb")).expect("state"))
        // Users in progress; the sink keeps requests at 4. More users than requests lets a
        // user that waits out a Retry-After leave its request slot to others.
        .with_concurrency(4 * IN_FLIGHT)
        .with_retry(RetryPolicy::default().with_budget(users));
    let tag = match (throttled, confirm_uploads) {
        (false, false) => "",
        (true, false) => ", 5% throttled 1 s",
        (false, true) => ", confirm_uploads(true)",
        (true, true) => ", confirm_uploads(true), 5% throttled 1 s",
    };

    let ops = srv.operation_count();
    let t = Instant::now();
    let r = engine.run().await.expect("first run");
    assert!(r.aborted.is_none() && r.failed() == 0, "{:?}", r.aborted);
    assert_eq!(r.sinks["graph"].put, users);
    line(
        &format!("first run (all new){tag}"),
        users,
        t.elapsed(),
        &srv,
        ops,
        &r.timings,
    );

    let later: &[&str] = if confirm_uploads {
        &[]
    } else {
        &["second run (adopts the etags)", "third run (unchanged)"]
    };
    for label in later {
        let ops = srv.operation_count();
        let t = Instant::now();
        let r = engine.run().await.expect("later run");
        assert!(r.aborted.is_none() && r.failed() == 0, "{:?}", r.aborted);
        assert_eq!(r.sinks["graph"].unchanged, users);
        line(
            &format!("{label}{tag}"),
            users,
            t.elapsed(),
            &srv,
            ops,
            &r.timings,
        );
    }
    let v = srv.retry_after_violations();
    assert!(v.is_empty(), "retried before Retry-After: {}", v.len());
    let _ = std::fs::remove_dir_all(&dir);
}

/// 200 photo-metadata reads: 4 single requests in flight, against `$batch`es of 20.
async fn batching() {
    let n = 200;
    let srv = start(n).await;
    let token = srv.mint_token(&srv.client_id());
    let http = reqwest::Client::new();
    let base = srv.base_url();

    let t = Instant::now();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let singles = (0..n).map(|i| {
        let (http, sem, token, url) = (
            http.clone(),
            sem.clone(),
            token.clone(),
            format!("{base}/v1.0/users/{}/photo", upn(i)),
        );
        async move {
            let _p = sem.acquire().await.expect("sem");
            let r = http.get(url).bearer_auth(token).send().await.expect("get");
            assert_eq!(r.status(), 404);
        }
    });
    futures::future::join_all(singles).await;
    let single = t.elapsed();

    for parallel_batches in [1usize, 2] {
        let t = Instant::now();
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel_batches));
        let chunks: Vec<Vec<usize>> = (0..n)
            .collect::<Vec<_>>()
            .chunks(20)
            .map(<[usize]>::to_vec)
            .collect();
        let statuses = futures::future::join_all(chunks.into_iter().map(|c| {
            let (http, sem, token, url) = (http.clone(), sem.clone(), token.clone(), format!("{base}/v1.0/$batch"));
            async move {
                let _p = sem.acquire().await.expect("sem");
                let requests: Vec<serde_json::Value> = c
                    .iter()
                    .map(|i| serde_json::json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{}/photo", upn(*i))}))
                    .collect();
                let r = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&serde_json::json!({ "requests": requests }))
                    .send()
                    .await
                    .expect("batch");
                let v: serde_json::Value = r.json().await.expect("json");
                v["responses"]
                    .as_array()
                    .expect("responses")
                    .iter()
                    .map(|x| x["status"].as_u64().unwrap_or(0))
                    .collect::<Vec<_>>()
            }
        }))
        .await;
        let all: Vec<u64> = statuses.into_iter().flatten().collect();
        let throttled = all.iter().filter(|s| **s == 429).count();
        println!(
            "batching: {n} reads, {parallel_batches} batch(es) of 20 at a time: {:6.2} s ({throttled} items throttled by the 4-per-app limit)",
            t.elapsed().as_secs_f64()
        );
    }
    println!(
        "batching: {n} reads, single requests, 4 in flight:       {:6.2} s",
        single.as_secs_f64()
    );
}

fn main() {
    let users: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "Graph sink bench: {users} users, {} ms per request, {IN_FLIGHT} in flight",
            LATENCY.as_millis()
        );
        sync_runs(users, false, false).await;
        sync_runs(users, false, true).await;
        sync_runs(users, true, false).await;
        batching().await;
    });
}
