//! The Graph source against the Graph fake (`userphoto_testkit::graph_server`): the source
//! conformance suite, paging, users without photos (404 and the 1x1 placeholder), keys by
//! each match attribute, throttled reads retried after `Retry-After`, a hostile next link,
//! and a sync from Graph into a memory of what the engine wrote.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;

use futures::StreamExt;
use userphoto::conformance::{source_contract, SourceFixture};
use userphoto::normalize::testimage::photo_jpeg;
use userphoto::normalize::Limits;
use userphoto::sink::Secret;
use userphoto::source::{GraphSource, GraphSourceBuilder, PhotoRef, PhotoSource};
use userphoto::sync::RetryPolicy;
use userphoto::{Error, ErrorKind, MatchAttribute, UserKey};
use userphoto_testkit::graph_server::*;

fn id_of(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn upn_of(i: usize) -> String {
    format!("user{i}@contoso.onmicrosoft.com")
}

/// Seven users; the even ones have a photo; all have mail and employeeId.
fn directory() -> Vec<UserSeed> {
    (0..7)
        .map(|i| {
            let u = UserSeed::new(&id_of(i), &upn_of(i))
                .mail(&format!("u{i}@contoso.com"))
                .employee_id(&format!("E{i}"));
            if i % 2 == 0 {
                u.photo(photo_jpeg(64, 64, i as u32))
            } else {
                u
            }
        })
        .collect()
}

fn with_photos() -> Vec<usize> {
    vec![0, 2, 4, 6]
}

async fn server(cfg: GraphServerConfig) -> GraphServer {
    GraphServer::start(cfg.with_users(directory())).await
}

fn builder(srv: &GraphServer) -> GraphSourceBuilder {
    let (base, login) = (srv.base_url(), srv.login_url());
    GraphSource::builder(
        srv.tenant_id(),
        srv.client_id(),
        Secret::new(srv.client_secret().expect("a secret")),
    )
    .connection(|c| c.graph_url(base).login_url(login))
    .retry_policy(
        RetryPolicy::default().with_delays(Duration::from_millis(5), Duration::from_millis(20)),
    )
}

async fn listing(src: &dyn PhotoSource) -> (Vec<PhotoRef>, Vec<Error>) {
    let mut ok = Vec::new();
    let mut err = Vec::new();
    let mut s = src.list();
    while let Some(item) = s.next().await {
        match item {
            Ok(r) => ok.push(r),
            Err(e) => err.push(e),
        }
    }
    (ok, err)
}

fn keys(refs: &[PhotoRef]) -> BTreeSet<String> {
    refs.iter().map(|r| r.key.as_str().to_owned()).collect()
}

fn list_requests(srv: &GraphServer) -> Vec<RequestRecord> {
    srv.operation_records()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/v1.0/users")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_over_several_pages() {
    let srv = server(GraphServerConfig::default()).await;
    let src = builder(&srv).page_size(2).build().unwrap();
    let fx = SourceFixture::new(
        with_photos().into_iter().map(|i| UserKey::new(upn_of(i))),
        Vec::<UserKey>::new(),
    );
    source_contract(&src, &fx).await;
    // 7 users at 2 per page: 4 pages per listing, each asked with $top=2 and $select.
    let pages = list_requests(&srv);
    assert!(
        pages.len() >= 4 && pages.len().is_multiple_of(4),
        "{}",
        pages.len()
    );
    for p in &pages {
        assert!(p.status == 200, "{p:?}");
    }
    let first = pages[0].query.clone().unwrap_or_default();
    assert!(first.contains("$top=2"), "{first}");
    assert!(first.contains("$select=id,userPrincipalName"), "{first}");
    // At most 4 requests in flight, as Graph allows per app for photos.
    assert!(srv.max_in_flight() <= 4, "{}", srv.max_in_flight());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_without_photos_are_neither_listed_nor_failures() {
    for legacy in [false, true] {
        let srv = server(GraphServerConfig::default().with_legacy_placeholder(legacy)).await;
        let src = builder(&srv).page_size(3).build().unwrap();
        let (ok, err) = listing(&src).await;
        assert!(err.is_empty(), "legacy {legacy}: {err:?}");
        let want: BTreeSet<String> = with_photos().into_iter().map(upn_of).collect();
        assert_eq!(keys(&ok), want, "legacy {legacy}");
        // One metadata read per user, the placeholder's 200 or the 404 alike.
        let meta = srv
            .operation_records()
            .into_iter()
            .filter(|r| r.path.ends_with("/photo"))
            .map(|r| r.status)
            .collect::<Vec<_>>();
        assert_eq!(meta.len(), 7);
        assert_eq!(
            meta.iter().filter(|s| **s == 404).count(),
            if legacy { 0 } else { 3 }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_by_each_match_attribute() {
    let srv = server(GraphServerConfig::default()).await;
    type KeyOf = fn(usize) -> String;
    let cases: [(MatchAttribute, KeyOf); 4] = [
        (MatchAttribute::UserPrincipalName, upn_of),
        (MatchAttribute::Mail, |i| format!("u{i}@contoso.com")),
        (MatchAttribute::ObjectGuid, id_of),
        (MatchAttribute::EmployeeId, |i| format!("E{i}")),
    ];
    for (m, key) in cases {
        let src = builder(&srv).match_attribute(m.clone()).build().unwrap();
        let (ok, err) = listing(&src).await;
        assert!(err.is_empty(), "{m:?}: {err:?}");
        let want: BTreeSet<String> = with_photos().into_iter().map(key).collect();
        assert_eq!(keys(&ok), want, "{m:?}");
        // Loads go by object id, whatever the key.
        let r = &ok[0];
        assert!(
            r.location.contains("/users/00000000-0000-4000-8000-"),
            "{r:?}"
        );
        let b = src.load(r, &Limits::default()).await.unwrap();
        assert!(b.starts_with(&[0xFF, 0xD8]));
    }
    let e = builder(&srv)
        .match_attribute(MatchAttribute::EmployeeNumber)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_without_the_attribute_are_skipped_and_duplicates_conflict() {
    let srv = GraphServer::start(
        GraphServerConfig::default().with_users([
            UserSeed::new(&id_of(1), &upn_of(1))
                .mail("same@contoso.com")
                .photo(photo_jpeg(64, 64, 1)),
            UserSeed::new(&id_of(2), &upn_of(2))
                .mail("SAME@contoso.com")
                .photo(photo_jpeg(64, 64, 2)),
            UserSeed::new(&id_of(3), &upn_of(3)).photo(photo_jpeg(64, 64, 3)),
            UserSeed::new(&id_of(4), &upn_of(4))
                .mail("four@contoso.com")
                .photo(photo_jpeg(64, 64, 4)),
        ]),
    )
    .await;
    let src = builder(&srv)
        .match_attribute(MatchAttribute::Mail)
        .build()
        .unwrap();
    let fx = SourceFixture::new(["four@contoso.com"], Vec::<&str>::new())
        .with_errors(["same@contoso.com"]);
    source_contract(&src, &fx).await;
    let (_, err) = listing(&src).await;
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].kind(), ErrorKind::Conflict);
    assert!(err[0].to_string().contains(&id_of(1)), "{}", err[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_reads_are_retried_after_retry_after() {
    let srv = server(GraphServerConfig::default().with_throttle(Throttle::every(
        3,
        Failure::TooManyRequests(RetryAfter::Seconds(1)),
    )))
    .await;
    let src = builder(&srv).page_size(2).build().unwrap();
    let (ok, err) = listing(&src).await;
    assert!(err.is_empty(), "{err:?}");
    let want: BTreeSet<String> = with_photos().into_iter().map(upn_of).collect();
    assert_eq!(keys(&ok), want);
    for r in &ok {
        src.load(r, &Limits::default()).await.unwrap();
    }
    let recs = srv.operation_records();
    let throttled = recs.iter().filter(|r| r.status == 429).count();
    assert!(throttled >= 4, "{throttled} throttled answers");
    // Some of them were listing pages, some photo reads.
    assert!(recs
        .iter()
        .any(|r| r.status == 429 && r.path == "/v1.0/users"));
    assert!(recs
        .iter()
        .any(|r| r.status == 429 && r.path.contains("/photo")));
    let early = srv.retry_after_violations();
    assert!(early.is_empty(), "retried too early: {early:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_that_stay_throttled_are_user_failures() {
    let srv = server(GraphServerConfig::default()).await;
    let src = builder(&srv)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    // The page, then the first photo read: throttled, and no retry allowed.
    srv.inject_failures([Failure::TooManyRequests(RetryAfter::Seconds(0))]);
    let (ok, err) = listing(&src).await;
    assert!(ok.is_empty());
    assert_eq!(err.len(), 1, "{err:?}");
    assert_eq!(err[0].kind(), ErrorKind::RateLimited);
    assert!(err[0].user().is_none(), "a page is no user's");
    assert!(!err[0].is_run_level());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_right_to_list_users_the_run_stops() {
    let srv = server(GraphServerConfig::default().with_app_roles(&["ProfilePhoto.Read.All"])).await;
    let src = builder(&srv).build().unwrap();
    let (ok, err) = listing(&src).await;
    assert!(ok.is_empty());
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].kind(), ErrorKind::PermissionDenied);
    assert!(err[0].is_run_level(), "{}", err[0]);
    // Least privilege is enough.
    let srv = server(
        GraphServerConfig::default().with_app_roles(&["User.Read.All", "ProfilePhoto.Read.All"]),
    )
    .await;
    let (ok, err) = listing(&builder(&srv).build().unwrap()).await;
    assert!(err.is_empty(), "{err:?}");
    assert_eq!(ok.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_refuses_a_location_elsewhere() {
    let srv = server(GraphServerConfig::default()).await;
    let src = builder(&srv).build().unwrap();
    let (ok, _) = listing(&src).await;
    let before = srv.operation_records().len();
    for location in [
        "https://evil.example/v1.0/users/x/photo/$value".to_owned(),
        format!("{}/v1.0/users/a/b/photo/$value", srv.base_url()),
        format!("{}/v1.0/users/x/photo", srv.base_url()),
    ] {
        let r = PhotoRef {
            location,
            ..ok[0].clone()
        };
        let e = src.load(&r, &Limits::default()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
    }
    assert_eq!(srv.operation_records().len(), before, "nothing was sent");
}

/// A Graph that answers every request with one page whose next link points at `next`.
fn hostile_graph(next: String) -> (String, std::thread::JoinHandle<usize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let body = serde_json::json!({
            "value": [{"id": id_of(1), "userPrincipalName": upn_of(1)}],
            "@odata.nextLink": next,
        })
        .to_string();
        write!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        1
    });
    (url, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_link_to_another_host_is_refused() {
    let srv = server(GraphServerConfig::default()).await;
    // Where the token would go: nothing may connect there.
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let next = format!(
        "http://{}/v1.0/users?$skiptoken=x",
        elsewhere.local_addr().unwrap()
    );
    let (graph, served) = hostile_graph(next);
    let login = srv.login_url();
    let src = builder(&srv)
        .connection(|c| c.graph_url(graph).login_url(login))
        .build()
        .unwrap();
    let (_, err) = listing(&src).await;
    assert_eq!(served.join().unwrap(), 1);
    let e = err
        .iter()
        .find(|e| e.kind() == ErrorKind::InvalidData)
        .unwrap_or_else(|| panic!("{err:?}"));
    assert!(e.is_run_level(), "{e}");
    assert!(e.to_string().contains("nextLink"), "{e}");
    assert!(elsewhere.accept().is_err(), "the token went elsewhere");
}
