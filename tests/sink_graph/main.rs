//! The Microsoft Graph sink against the Graph fake (`userphoto_testkit::graph_server`):
//! conformance, both token modes, token caching and refresh, throttling through the sync
//! engine, skip-unchanged through the state store (uploads confirmed by an etag read, or not
//! and the etag adopted on the next run), addressing, lookups, run-level failures.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use userphoto::conformance::{sink_contract, SinkFixture};
use userphoto::normalize::testimage::photo_jpeg;
use userphoto::normalize::Profile;
use userphoto::sink::{
    AssertionAlgorithm, DirectorySink, GraphCertificate, GraphSink, GraphSinkBuilder, Secret,
};
use userphoto::source::MemorySource;
use userphoto::sync::{
    Action, Engine, Reason, Report, RetryPolicy, StateRecord, StateStore, Status,
};
use userphoto::{ErrorKind, MatchAttribute, UserKey};
use userphoto_testkit::graph_server::*;

const GUEST_ID: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f2a3b4c5d";
const GUEST_UPN: &str = "carol_fabrikam.com#EXT#@contoso.onmicrosoft.com";
const DOLLAR_ID: &str = "2d4f6a8c-0e1b-4c3d-a5e7-9f1b3d5e7a9c";
const DOLLAR_UPN: &str = "$dave@contoso.onmicrosoft.com";
const CERT_APP: &str = "5c2e8a1b-9d4f-4b6a-8e3c-7f1a2b3c4d5e";

fn id_of(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn upn_of(i: usize) -> String {
    format!("user{i}@contoso.onmicrosoft.com")
}

/// `n` users `user{i}@contoso…` with employee ids `E{i}`, plus a guest and a `$` UPN.
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

fn builder(srv: &GraphServer) -> GraphSinkBuilder {
    GraphSink::builder(
        srv.tenant_id(),
        srv.client_id(),
        Secret::new(srv.client_secret().expect("a secret")),
    )
    .graph_url(srv.base_url())
    .login_url(srv.login_url())
}

fn sink(srv: &GraphServer) -> GraphSink {
    builder(srv).build().expect("sink")
}

fn jpeg(seed: u32) -> Bytes {
    Bytes::from(photo_jpeg(64, 64, seed))
}

fn key(s: &str) -> UserKey {
    UserKey::new(s)
}

fn puts(srv: &GraphServer) -> usize {
    srv.operation_records()
        .iter()
        .filter(|r| r.method == "PUT" && r.status == 200)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_by_upn() {
    let srv = server(10).await;
    let s = sink(&srv);
    let fx = SinkFixture {
        users: (0..10).map(|i| key(&upn_of(i))).collect(),
        absent: key("nobody@contoso.onmicrosoft.com"),
    };
    sink_contract(&s, &fx).await;
    assert!(srv.max_in_flight() <= 4, "{}", srv.max_in_flight());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_by_employee_id_and_by_object_id() {
    let srv = server(10).await;
    let s = builder(&srv)
        .match_attribute(MatchAttribute::EmployeeId)
        .build()
        .unwrap();
    let fx = SinkFixture {
        users: (0..10).map(|i| key(&format!("E{i}"))).collect(),
        absent: key("E-none"),
    };
    sink_contract(&s, &fx).await;

    // And with the etag read after each upload.
    let s = builder(&srv)
        .match_attribute(MatchAttribute::ObjectGuid)
        .confirm_uploads(true)
        .build()
        .unwrap();
    let fx = SinkFixture {
        users: (0..10).map(|i| key(&id_of(i))).collect(),
        absent: key("ffffffff-0000-4000-8000-000000000000"),
    };
    sink_contract(&s, &fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_assertions_ps256_and_rs256() {
    let cert = TestCertificate::generate("userphoto-test");
    let srv = GraphServer::start(
        GraphServerConfig::default()
            .with_users(directory(2))
            .with_app(AppRegistration::with_certificate(CERT_APP, &cert)),
    )
    .await;
    for (alg, n) in [
        (AssertionAlgorithm::Ps256, 1),
        (AssertionAlgorithm::Rs256, 2),
    ] {
        let c =
            GraphCertificate::from_pem(cert.cert_pem.as_bytes(), cert.private_key_pem.as_bytes())
                .unwrap()
                .with_algorithm(alg);
        assert_eq!(c.thumbprint_s256(), cert.x5t_s256);
        assert!(!format!("{c:?}").contains("PRIVATE"));
        let s = GraphSink::builder(srv.tenant_id(), CERT_APP, c)
            .graph_url(srv.base_url())
            .login_url(srv.login_url())
            .build()
            .unwrap();
        s.put(&key(&upn_of(0)), &jpeg(n))
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert!(s.current(&key(&upn_of(0))).await.unwrap().is_some());
        assert_eq!(
            srv.assertion_jtis().len(),
            n as usize,
            "one assertion per token"
        );
    }
    let jtis = srv.assertion_jtis();
    assert_ne!(jtis[0], jtis[1], "a fresh jti per assertion");

    // A certificate the app does not know: Unauthenticated, with Entra's words.
    let other = TestCertificate::generate("unknown");
    let c = GraphCertificate::from_pem(other.cert_pem.as_bytes(), other.private_key_pem.as_bytes())
        .unwrap();
    let s = GraphSink::builder(srv.tenant_id(), CERT_APP, c)
        .graph_url(srv.base_url())
        .login_url(srv.login_url())
        .build()
        .unwrap();
    let e = s.current(&key(&upn_of(0))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(e.message().contains("700027"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_and_unknown_tenant() {
    let srv = server(1).await;
    let s = GraphSink::builder(
        srv.tenant_id(),
        srv.client_id(),
        Secret::new("wrong-secret"),
    )
    .graph_url(srv.base_url())
    .login_url(srv.login_url())
    .build()
    .unwrap();
    let e = s.current(&key(&upn_of(0))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(e.is_run_level() && !e.is_retryable());
    assert!(e.message().contains("invalid_client"), "{e}");
    assert!(
        e.message().contains("AADSTS7000215"),
        "Entra's description: {e}"
    );
    assert!(!e.to_string().contains("wrong-secret"), "{e}");
    assert!(!format!("{s:?}").contains("wrong-secret"));

    let s = GraphSink::builder(
        "no-such-tenant.example",
        srv.client_id(),
        Secret::new(srv.client_secret().unwrap()),
    )
    .graph_url(srv.base_url())
    .login_url(srv.login_url())
    .build()
    .unwrap();
    let e = s.current(&key(&upn_of(0))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.message().contains("90002"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_cached_and_refreshed_once_after_401() {
    let srv = server(8).await;
    let s = sink(&srv);
    let calls = (0..40).map(|i| {
        let s = s.clone();
        async move { s.current(&key(&upn_of(i % 8))).await }
    });
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(
        srv.token_request_count(),
        1,
        "one token for 40 concurrent calls"
    );

    srv.expire_all_tokens();
    srv.clear_records();
    s.put(&key(&upn_of(1)), &jpeg(1)).await.unwrap();
    assert_eq!(srv.token_request_count(), 1, "one refresh");
    let ops = srv.operation_records();
    assert_eq!(ops[0].status, 401, "{:?}", ops[0]);
    assert_eq!((ops[1].method.as_str(), ops[1].status), ("PUT", 200));
    assert_ne!(ops[0].client_request_id, ops[1].client_request_id);

    // Tokens that keep failing: one refresh, then Unauthenticated.
    srv.clear_records();
    srv.configure(|c| c.token_lifetime = Duration::ZERO);
    srv.expire_all_tokens();
    let e = s.current(&key(&upn_of(1))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert_eq!(srv.token_request_count(), 1);
    assert_eq!(srv.operation_records().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_seconds_and_http_date() {
    let srv = server(2).await;
    let s = sink(&srv);
    let u = key(&upn_of(0));
    srv.inject_failures([Failure::TooManyRequests(RetryAfter::Seconds(7))]);
    let e = s.current(&u).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert!(e.message().contains("request-id "), "{e}");

    srv.inject_failures([Failure::TooManyRequests(RetryAfter::HttpDate(5))]);
    let e = s.put(&u, &jpeg(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    let ra = e.retry_after().expect("a Retry-After");
    assert!(
        ra >= Duration::from_secs(4) && ra <= Duration::from_secs(7),
        "{ra:?}"
    );

    srv.inject_failures([Failure::ServiceUnavailable(RetryAfter::Absent)]);
    let e = s.delete(&u).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable() && e.retry_after().is_none());

    srv.inject_failures([Failure::GatewayTimeout]);
    let e = s.current(&u).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    srv.inject_failures([Failure::InternalServerError]);
    let e = s.current(&u).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
}

fn source_for(users: &[String], seed: u32) -> MemorySource {
    users
        .iter()
        .enumerate()
        .fold(MemorySource::new(), |s, (i, u)| {
            s.with_photo(u.as_str(), photo_jpeg(120, 160, seed + i as u32))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_under_throttling_waits_and_bounds_flight() {
    let srv = server(30).await;
    srv.set_latency(Duration::from_millis(20));
    srv.set_throttle(Some(Throttle::every(
        7,
        Failure::TooManyRequests(RetryAfter::Seconds(1)),
    )));
    let users: Vec<String> = (0..30).map(upn_of).collect();
    let engine = Engine::new(source_for(&users, 0))
        .with_sink(sink(&srv), Profile::graph())
        // More users in flight than the sink allows: the sink's own limit must hold.
        .with_concurrency(12)
        .with_retry(RetryPolicy::default().with_budget(1000));
    let report = engine.run().await.unwrap();
    assert!(report.aborted.is_none(), "{:?}", report.aborted);
    assert_eq!(report.sinks["graph"].put, 30, "{:?}", report.sinks);
    assert_eq!(report.failed(), 0);
    assert!(report.timings.retries > 0, "the throttle was hit");
    let v = srv.retry_after_violations();
    assert!(v.is_empty(), "retried before Retry-After: {:?}", v.first());
    assert!(srv.max_in_flight() <= 4, "{}", srv.max_in_flight());
    let records = srv.records();
    assert!(max_overlap(&srv.operation_records()) <= 4);
    let mut ids = HashSet::new();
    for r in &records {
        let id = r
            .client_request_id
            .as_deref()
            .unwrap_or_else(|| panic!("no client-request-id: {r:?}"));
        assert!(
            id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4,
            "not a GUID: {id}"
        );
        assert!(ids.insert(id.to_owned()), "client-request-id reused: {id}");
    }
    for u in &users {
        assert!(srv.user(u).unwrap().photo.is_some(), "{u}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_unchanged_through_the_state_store_with_confirmed_uploads() {
    let srv = server(6).await;
    let dir = std::env::temp_dir().join(format!("userphoto-graph-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let users: Vec<String> = (0..6).map(upn_of).collect();
    let engine = Engine::new(source_for(&users, 100))
        .with_sink(
            builder(&srv).confirm_uploads(true).build().unwrap(),
            Profile::graph(),
        )
        .with_state(StateStore::open(dir.join("state.redb")).unwrap());
    let first = engine.run().await.unwrap();
    assert_eq!(first.sinks["graph"].put, 6);
    assert_eq!(puts(&srv), 6);

    srv.clear_records();
    let second = engine.run().await.unwrap();
    assert_eq!(second.sinks["graph"].put, 0, "{:?}", second.sinks);
    assert_eq!(second.sinks["graph"].unchanged, 6);
    assert_eq!(puts(&srv), 0, "a second run PUTs nothing");

    // Someone else changes one photo (the etag moves): the next run writes it back.
    let before = srv.user(&users[2]).unwrap().photo_etag;
    sink(&srv).put(&key(&users[2]), &jpeg(999)).await.unwrap();
    assert_ne!(srv.user(&users[2]).unwrap().photo_etag, before);
    srv.clear_records();
    let third = engine.run().await.unwrap();
    assert_eq!(third.sinks["graph"].put, 1, "{:?}", third.outcomes);
    assert_eq!(puts(&srv), 1);
    let put = srv
        .operation_records()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.user_id.as_deref(), Some(id_of(2).as_str()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A state store in a fresh directory, removed when dropped.
struct StateDir(std::path::PathBuf);

impl StateDir {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("userphoto-graph-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> std::path::PathBuf {
        self.0.join("state.redb")
    }

    /// The records of `users` for the `graph` sink (the store is opened and closed again).
    fn records(&self, users: &[String]) -> Vec<StateRecord> {
        let store = StateStore::open(self.path()).unwrap();
        users
            .iter()
            .map(|u| {
                store
                    .get("graph", &key(u))
                    .unwrap()
                    .unwrap_or_else(|| panic!("no state record for {u}"))
            })
            .collect()
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One engine run of `users` (photos from seed 200) into `s` with the store in `dir`; the
/// engine, and with it the store, is closed before it returns.
async fn sync(s: &GraphSink, users: &[String], dir: &StateDir) -> Report {
    let engine = Engine::new(source_for(users, 200))
        .with_sink(s.clone(), Profile::graph())
        .with_state(StateStore::open(dir.path()).unwrap());
    let report = engine.run().await.unwrap();
    assert!(report.aborted.is_none(), "{:?}", report.aborted);
    assert_eq!(report.failed(), 0, "{:?}", report.outcomes);
    report
}

/// The photo requests (`…/photo` and `…/photo/$value`) since the records were cleared, as
/// (method, user id, path), after checking that every other request was for a token.
fn photo_requests(srv: &GraphServer) -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    for r in srv.records() {
        if r.kind == RequestKind::Token {
            continue;
        }
        assert!(
            r.path.ends_with("/photo") || r.path.ends_with("/photo/$value"),
            "not a photo request: {} {}",
            r.method,
            r.path
        );
        assert_eq!(r.status, 200, "{} {}: {}", r.method, r.path, r.status);
        v.push((
            r.method.clone(),
            r.user_id.clone().expect("a user"),
            r.path.clone(),
        ));
    }
    v
}

/// Every user of `users` appears once in `requests`, with `method` on a path ending in
/// `suffix`, and nothing else is there.
fn one_each(
    srv: &GraphServer,
    requests: &[(String, String, String)],
    users: &[String],
    method: &str,
    suffix: &str,
) {
    let mut ids: Vec<String> = requests
        .iter()
        .filter(|(m, _, p)| m == method && p.ends_with(suffix))
        .map(|(_, id, _)| id.clone())
        .collect();
    ids.sort();
    let mut want: Vec<String> = users.iter().map(|u| srv.user(u).unwrap().id).collect();
    want.sort();
    assert_eq!(ids, want, "one {method} …{suffix} per user: {requests:?}");
}

fn etags(srv: &GraphServer, users: &[String]) -> Vec<Option<String>> {
    users
        .iter()
        .map(|u| srv.user(u).unwrap().photo_etag)
        .collect()
}

fn versions(records: &[StateRecord]) -> Vec<Option<String>> {
    records.iter().map(|r| r.version.clone()).collect()
}

/// Default mode, first run: one request per user, the PUT (and one token request); the
/// state store records the uploads without an etag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_first_run_sends_one_put_per_user() {
    let srv = server(5).await;
    let users: Vec<String> = (0..5).map(upn_of).collect();
    let dir = StateDir::new("one-put");
    let s = sink(&srv);
    let first = sync(&s, &users, &dir).await;
    assert_eq!(first.sinks["graph"].put, 5, "{:?}", first.sinks);
    let requests = photo_requests(&srv);
    assert_eq!(
        requests.len(),
        5,
        "one photo request per user: {requests:?}"
    );
    one_each(&srv, &requests, &users, "PUT", "/photo/$value");
    assert_eq!(srv.token_request_count(), 1);
    assert_eq!(versions(&dir.records(&users)), vec![None; 5]);
    for u in &users {
        assert_eq!(srv.user(u).unwrap().uploads, 1, "{u}");
    }

    // The sink alone: a PUT and nothing else, no etag, even when reads would be stale.
    srv.configure(|c| c.stale_metadata_reads = 5);
    srv.clear_records();
    assert_eq!(s.put(&key(&users[0]), &jpeg(77)).await.unwrap(), None);
    let requests = photo_requests(&srv);
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].0, "PUT");
}

/// Default mode, second run: one metadata read per user, everyone unchanged, and the etags
/// read are stored in the state records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_second_run_reads_once_per_user_and_adopts_the_etags() {
    let srv = server(5).await;
    let users: Vec<String> = (0..5).map(upn_of).collect();
    let dir = StateDir::new("adopt");
    let s = sink(&srv);
    let _ = sync(&s, &users, &dir).await;

    srv.clear_records();
    let second = sync(&s, &users, &dir).await;
    assert_eq!(second.sinks["graph"].put, 0, "{:?}", second.outcomes);
    assert_eq!(second.sinks["graph"].unchanged, 5, "{:?}", second.outcomes);
    let requests = photo_requests(&srv);
    assert_eq!(requests.len(), 5, "one read per user: {requests:?}");
    one_each(&srv, &requests, &users, "GET", "/photo");
    let records = dir.records(&users);
    assert!(records.iter().all(|r| r.version.is_some()), "{records:?}");
    assert_eq!(versions(&records), etags(&srv, &users), "the etags seen");
}

/// Default mode, after the etags are adopted: a third run skips everyone again, and a photo
/// someone else changes after that is detected and written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_after_adoption_a_third_party_change_is_written_again() {
    let srv = server(5).await;
    let users: Vec<String> = (0..5).map(upn_of).collect();
    let dir = StateDir::new("detect");
    let s = sink(&srv);
    let _ = sync(&s, &users, &dir).await;
    let _ = sync(&s, &users, &dir).await;

    srv.clear_records();
    let third = sync(&s, &users, &dir).await;
    assert_eq!(third.sinks["graph"].put, 0, "{:?}", third.outcomes);
    assert_eq!(third.sinks["graph"].unchanged, 5);
    let requests = photo_requests(&srv);
    assert_eq!(requests.len(), 5, "{requests:?}");
    one_each(&srv, &requests, &users, "GET", "/photo");

    // Someone else changes user 2's photo: the next run writes ours back, to that user only.
    let theirs = photo_jpeg(64, 64, 4242);
    srv.set_photo(&users[2], theirs.clone()).unwrap();
    srv.clear_records();
    let fourth = sync(&s, &users, &dir).await;
    assert_eq!(fourth.sinks["graph"].put, 1, "{:?}", fourth.outcomes);
    assert_eq!(fourth.sinks["graph"].unchanged, 4);
    let o = fourth
        .outcomes
        .iter()
        .find(|o| o.key == key(&users[2]))
        .unwrap();
    assert_eq!(
        (o.action, o.reason),
        (Action::Put, Reason::Changed),
        "{o:?}"
    );
    let requests = photo_requests(&srv);
    assert_eq!(requests.len(), 6, "5 reads and 1 PUT: {requests:?}");
    one_each(&srv, &requests, &users[2..3], "PUT", "/photo/$value");
    let now = srv.user(&users[2]).unwrap();
    assert_ne!(now.photo.as_deref(), Some(theirs.as_slice()));
    assert_eq!(now.uploads, 2);

    // The rewrite's etag is adopted in turn.
    let fifth = sync(&s, &users, &dir).await;
    assert_eq!(fifth.sinks["graph"].unchanged, 5, "{:?}", fifth.outcomes);
    assert_eq!(versions(&dir.records(&users)), etags(&srv, &users));
}

/// The documented trade-off of the default mode: a change someone else makes between our
/// upload and the next run is adopted as ours, not written over (`confirm_uploads(true)`
/// detects it: see the next test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_adopts_a_change_made_between_the_upload_and_the_next_run() {
    let srv = server(4).await;
    let users: Vec<String> = (0..4).map(upn_of).collect();
    let dir = StateDir::new("tradeoff");
    let s = sink(&srv);
    let _ = sync(&s, &users, &dir).await;

    let theirs = photo_jpeg(64, 64, 4343);
    let their_etag = srv.set_photo(&users[1], theirs.clone()).unwrap();
    srv.clear_records();
    let second = sync(&s, &users, &dir).await;
    assert_eq!(second.sinks["graph"].put, 0, "{:?}", second.outcomes);
    assert_eq!(second.sinks["graph"].unchanged, 4);
    assert!(photo_requests(&srv).iter().all(|(m, _, _)| m == "GET"));
    let u = srv.user(&users[1]).unwrap();
    assert_eq!(u.photo.as_deref(), Some(theirs.as_slice()), "theirs stays");
    assert_eq!(
        dir.records(&users)[1].version.as_deref(),
        Some(their_etag.as_str()),
        "their etag is recorded as our upload's"
    );

    // And it stays: later runs take it for ours.
    let third = sync(&s, &users, &dir).await;
    assert_eq!(third.sinks["graph"].put, 0, "{:?}", third.outcomes);
    assert_eq!(
        srv.user(&users[1]).unwrap().photo.as_deref(),
        Some(theirs.as_slice())
    );
}

/// `confirm_uploads(true)`: a PUT and a metadata read per user on the first run, the etags
/// stored at once, and a change someone else makes before the next run is detected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_uploads_reads_each_etag_and_detects_a_change_before_the_next_run() {
    let srv = server(4).await;
    let users: Vec<String> = (0..4).map(upn_of).collect();
    let dir = StateDir::new("confirm");
    let s = builder(&srv).confirm_uploads(true).build().unwrap();
    let first = sync(&s, &users, &dir).await;
    assert_eq!(first.sinks["graph"].put, 4, "{:?}", first.sinks);
    let requests = photo_requests(&srv);
    assert_eq!(requests.len(), 8, "a PUT and a GET per user: {requests:?}");
    one_each(&srv, &requests, &users, "PUT", "/photo/$value");
    one_each(&srv, &requests, &users, "GET", "/photo");
    for u in &users {
        let id = srv.user(u).unwrap().id;
        let mine: Vec<&str> = requests
            .iter()
            .filter(|(_, i, _)| *i == id)
            .map(|(m, _, _)| m.as_str())
            .collect();
        assert_eq!(mine, ["PUT", "GET"], "the read follows the upload");
    }
    assert_eq!(versions(&dir.records(&users)), etags(&srv, &users));

    let theirs = photo_jpeg(64, 64, 4444);
    srv.set_photo(&users[1], theirs.clone()).unwrap();
    srv.clear_records();
    let second = sync(&s, &users, &dir).await;
    assert_eq!(second.sinks["graph"].put, 1, "{:?}", second.outcomes);
    assert_eq!(second.sinks["graph"].unchanged, 3);
    let o = second
        .outcomes
        .iter()
        .find(|o| o.key == key(&users[1]))
        .unwrap();
    assert_eq!(
        (o.action, o.reason),
        (Action::Put, Reason::Changed),
        "{o:?}"
    );
    assert_ne!(
        srv.user(&users[1]).unwrap().photo.as_deref(),
        Some(theirs.as_slice()),
        "ours is written back"
    );
    assert_eq!(versions(&dir.records(&users)), etags(&srv, &users));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_refused_without_a_request() {
    let srv = server(1).await;
    let s = sink(&srv);
    let big = Bytes::from(vec![0xFFu8; 4_000_001]);
    let e = s.put(&key(&upn_of(0)), &big).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PhotoTooLarge, "{e}");
    assert!(
        srv.records().is_empty(),
        "no request at all, not even a token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_and_dollar_upns_are_addressed() {
    let srv = server(1).await;
    let s = builder(&srv).confirm_uploads(true).build().unwrap();
    for (upn, id) in [(GUEST_UPN, GUEST_ID), (DOLLAR_UPN, DOLLAR_ID)] {
        let k = key(upn);
        assert!(s.current(&k).await.unwrap().is_none(), "{upn}");
        let etag = s.put(&k, &jpeg(5)).await.unwrap().expect("an etag");
        let snap = srv.user(id).unwrap();
        assert!(snap.photo.is_some(), "{upn}");
        assert_eq!(snap.photo_etag.as_deref(), Some(etag.as_str()));
        assert_eq!(
            s.current(&k).await.unwrap().unwrap().version.as_deref(),
            Some(etag.as_str())
        );
        s.delete(&k).await.unwrap();
        assert!(srv.user(id).unwrap().photo.is_none());
    }
    let paths: Vec<String> = srv
        .operation_records()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p.contains("carol_fabrikam.com%23EXT%23@")),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.contains("/users('$dave@")),
        "{paths:?}"
    );
    assert!(srv.operation_records().iter().all(|r| r.status != 400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn employee_id_lookups_batch_cache_and_escape() {
    let srv = GraphServer::start(
        GraphServerConfig::default()
            .with_users(directory(20))
            .with_user(
                UserSeed::new(
                    "11111111-0000-4000-8000-000000000001",
                    "x1@contoso.onmicrosoft.com",
                )
                .employee_id("DUP"),
            )
            .with_user(
                UserSeed::new(
                    "11111111-0000-4000-8000-000000000002",
                    "x2@contoso.onmicrosoft.com",
                )
                .employee_id("DUP"),
            )
            .with_user(
                UserSeed::new(
                    "11111111-0000-4000-8000-000000000003",
                    "x3@contoso.onmicrosoft.com",
                )
                .employee_id("O'Neil"),
            ),
    )
    .await;
    let s = builder(&srv)
        .match_attribute(MatchAttribute::EmployeeId)
        .build()
        .unwrap();
    let mut keys: Vec<UserKey> = (0..20).map(|i| key(&format!("E{i}"))).collect();
    keys.push(key("DUP"));
    keys.push(key("missing"));
    keys.push(key("O'Neil"));
    s.prefetch(&keys).await.unwrap();
    let lookups = srv
        .operation_records()
        .iter()
        .filter(|r| r.path == "/v1.0/users")
        .count();
    assert_eq!(lookups, 2, "23 keys in 2 lookups of at most 15");
    srv.clear_records();

    s.put(&key("e7"), &jpeg(7)).await.unwrap();
    assert!(srv.user(&id_of(7)).unwrap().photo.is_some());
    let e = s.current(&key("DUP")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AmbiguousMatch, "{e}");
    let e = s.put(&key("missing"), &jpeg(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UserNotFound, "{e}");
    s.put(&key("O'Neil"), &jpeg(8)).await.unwrap();
    assert!(srv
        .user("x3@contoso.onmicrosoft.com")
        .unwrap()
        .photo
        .is_some());
    assert!(
        srv.operation_records()
            .iter()
            .all(|r| r.path != "/v1.0/users"),
        "the prefetch answered every later lookup"
    );

    // Without a prefetch, a key is looked up on first use, with its quote doubled.
    let s2 = builder(&srv)
        .match_attribute(MatchAttribute::EmployeeId)
        .build()
        .unwrap();
    srv.clear_records();
    assert!(s2.current(&key("O'Neil")).await.unwrap().is_some());
    let q = srv.operation_records()[0].query.clone().unwrap_or_default();
    assert!(q.contains("%27O%27%27Neil%27"), "{q}");
}

mod later;
