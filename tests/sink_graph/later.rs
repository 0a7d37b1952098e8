//! The Graph sink against the test kit's server, continued: per-user and tenant-wide
//! refusals, stale etags, hostile answers from a raw server (Retry-After, expires_in, sizes,
//! silence, 5xx storms), secrets in Debug, plain HTTP and HTTPS trust.

use super::*;

/// Issue 10 point 1: a 403 on two users' photos (the server's per-user deny knob, one named
/// by UPN, one by object id) fails those two, with Graph's code and what to check, each
/// tried once; everyone else is written and the run is not stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_403_fails_those_users_and_writes_everyone_else() {
    let srv = server(12).await;
    srv.configure(|c| c.photo_write_denied = vec![upn_of(3), id_of(7).to_uppercase()]);
    let users: Vec<String> = (0..12).map(upn_of).collect();
    let report = Engine::new(source_for(&users, 0))
        .with_sink(sink(&srv), Profile::graph())
        .run()
        .await
        .unwrap();
    assert!(report.aborted.is_none(), "{:?}", report.aborted);
    assert_eq!(report.sinks["graph"].put, 10);
    assert_eq!(report.sinks["graph"].failed, 2);
    assert_eq!(puts(&srv), 10);
    for o in &report.outcomes {
        let denied = o.key == key(&upn_of(3)) || o.key == key(&upn_of(7));
        if denied {
            assert_eq!(o.status, Status::Failed, "{o:?}");
            assert_eq!(o.error_kind, Some(ErrorKind::PermissionDenied), "{o:?}");
            let m = o.message.clone().unwrap_or_default();
            assert!(m.contains("ErrorAccessDenied"), "{m}");
            assert!(m.contains("ProfilePhoto.ReadWrite.All"), "{m}");
            assert_eq!(o.attempts, 1, "a refusal is not retried: {o:?}");
        } else {
            assert_eq!(o.status, Status::Done, "{o:?}");
        }
    }

    // The other code seen for it, on a delete too: the user's failure, not the run's.
    srv.configure(|c| c.denied_code = "Authorization_RequestDenied".into());
    let s = sink(&srv);
    for e in [
        s.put(&key(&upn_of(3)), &jpeg(9)).await.unwrap_err(),
        s.delete(&key(&upn_of(7))).await.unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(!e.is_run_level() && !e.is_retryable(), "{e}");
        assert!(e.message().contains("Authorization_RequestDenied"), "{e}");
    }
    // Reading the denied users still works.
    assert!(s.current(&key(&upn_of(3))).await.unwrap().is_none());
}

/// Per-user 400s (an image Graph refuses) fail that user only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_400_fails_that_user_alone() {
    let srv = server(3).await;
    srv.configure(|c| c.min_photo_width = Some(100));
    let s = sink(&srv);
    let e = s.put(&key(&upn_of(0)), &jpeg(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidPhoto, "{e}");
    assert!(e.message().contains("ValidationWidthTooSmall"), "{e}");
    assert!(!e.is_run_level() && !e.is_retryable(), "{e}");
    let wide = Bytes::from(photo_jpeg(200, 200, 1));
    s.put(&key(&upn_of(1)), &wide).await.unwrap();
}

/// A tenant-wide refusal (hybrid `photoUpdateSettings` on premises, or no photo role) is
/// answered per user, so the sink reports it per user; stopping after N refusals in a row
/// is the engine's circuit breaker. Without the right to read users at all, `$filter`
/// lookups are impossible for everyone: that stops the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_wide_refusals_and_no_directory_read_right() {
    let srv = server(6).await;
    srv.configure(|c| c.cloud_updates_disabled = true);
    let users: Vec<String> = (0..6).map(upn_of).collect();
    let report = Engine::new(source_for(&users, 0))
        .with_sink(sink(&srv), Profile::graph())
        .run()
        .await
        .unwrap();
    assert_eq!(puts(&srv), 0);
    assert_eq!(report.sinks["graph"].failed, 6, "{:?}", report.sinks);
    assert!(report
        .outcomes
        .iter()
        .all(|o| o.error_kind == Some(ErrorKind::PermissionDenied)));

    // Without the photo roles the reads are refused too, per user, naming the role.
    let srv = GraphServer::start(
        GraphServerConfig {
            apps: vec![
                AppRegistration::with_secret(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).roles(&[]),
            ],
            ..GraphServerConfig::default()
        }
        .with_users(directory(2)),
    )
    .await;
    let e = sink(&srv).current(&key(&upn_of(0))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.message().contains("ProfilePhoto.Read"), "{e}");

    // Photo roles but no User.Read.All: a `$filter` lookup is refused, run-level.
    let srv = GraphServer::start(
        GraphServerConfig {
            apps: vec![
                AppRegistration::with_secret(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
                    .roles(&["ProfilePhoto.ReadWrite.All"]),
            ],
            ..GraphServerConfig::default()
        }
        .with_users(directory(2)),
    )
    .await;
    let s = builder(&srv)
        .match_attribute(MatchAttribute::EmployeeId)
        .build()
        .unwrap();
    let e = s.current(&key("E0")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.is_run_level(), "{e}");
    assert!(e.message().contains("User.Read.All"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_not_in_the_directory_fails_alone() {
    let srv = server(3).await;
    let mut users: Vec<String> = (0..3).map(upn_of).collect();
    users.push("gone@contoso.onmicrosoft.com".into());
    let s = sink(&srv);
    let e = s
        .put(&key("gone@contoso.onmicrosoft.com"), &jpeg(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UserNotFound, "{e}");
    let e = s
        .delete(&key("gone@contoso.onmicrosoft.com"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UserNotFound, "{e}");
    let report = Engine::new(source_for(&users, 0))
        .with_sink(s, Profile::graph())
        .run()
        .await
        .unwrap();
    assert!(report.aborted.is_none());
    assert_eq!(report.sinks["graph"].put, 3);
    let gone = report
        .outcomes
        .iter()
        .find(|o| o.key == key("gone@contoso.onmicrosoft.com"))
        .unwrap();
    assert_eq!(gone.status, Status::Failed);
    assert_eq!(gone.reason, Reason::Unmatched);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_etag_after_upload_is_not_recorded() {
    let srv = server(2).await;
    let s = builder(&srv).confirm_uploads(true).build().unwrap();
    let u = key(&upn_of(0));
    s.put(&u, &jpeg(1)).await.unwrap();
    assert!(s.current(&u).await.unwrap().is_some());
    // The next metadata reads after an upload still show the old photo.
    srv.configure(|c| c.stale_metadata_reads = 1);
    let etag = s.put(&u, &jpeg(2)).await.unwrap();
    assert_eq!(
        etag,
        srv.user(&upn_of(0)).unwrap().photo_etag,
        "waited out one stale read"
    );
    srv.configure(|c| c.stale_metadata_reads = 50);
    let etag = s.put(&u, &jpeg(3)).await.unwrap();
    assert_eq!(
        etag, None,
        "an etag that may be the old one is not returned"
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile and broken servers (issue 10 points 4 and 7)
// ---------------------------------------------------------------------------------------------

/// A hand-written HTTP/1.1 server on loopback, for answers the fake never gives: the token
/// endpoint answers `token_body` with 200, every other request gets `graph` byte for byte
/// (then the connection closes). With `graph: None` it accepts connections and never answers
/// anything, token requests included.
struct RawServer {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn raw_server(token_body: String, graph: Option<Vec<u8>>) -> RawServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let Some(graph) = graph.clone() else {
                held.push(conn);
                continue;
            };
            let token_body = token_body.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = conn.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let answer = if head.contains("/oauth2/v2.0/token") {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{token_body}",
                        token_body.len()
                    )
                    .into_bytes()
                } else {
                    graph
                };
                let _ = conn.write_all(&answer).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    RawServer { addr, task }
}

fn token_with(expires_in: &str) -> String {
    format!(r#"{{"token_type":"Bearer","expires_in":{expires_in},"access_token":"raw-token-1"}}"#)
}

/// An HTTP/1.1 answer with these headers and body (no content-length added).
fn answer(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut v = format!("HTTP/1.1 {status}\r\nconnection: close\r\n").into_bytes();
    for (k, val) in headers {
        v.extend_from_slice(format!("{k}: {val}\r\n").as_bytes());
    }
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(body);
    v
}

/// A chunked body of `n` bytes.
fn chunked(n: usize) -> Vec<u8> {
    let mut v = format!("{n:x}\r\n").into_bytes();
    v.extend(std::iter::repeat_n(b'x', n));
    v.extend_from_slice(b"\r\n0\r\n\r\n");
    v
}

fn raw_sink(srv: &RawServer) -> GraphSink {
    let url = format!("http://{}", srv.addr);
    GraphSink::builder(
        DEFAULT_TENANT_ID,
        DEFAULT_CLIENT_ID,
        Secret::new("raw-secret"),
    )
    .graph_url(&url)
    .login_url(&url)
    .connect_timeout(Duration::from_secs(1))
    .request_timeout(Duration::from_secs(2))
    .build()
    .unwrap()
}

/// `Retry-After` values no service should send: no panic, a retryable rate limit whose
/// wait is at most a day (the engine gives up on one over its own limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_retry_after_values_never_panic() {
    for v in [
        "1e20",
        "1e400",
        "inf",
        "-5",
        "NaN",
        "18446744073709551616",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "soon",
    ] {
        let body = br#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#;
        let len = body.len().to_string();
        let srv = raw_server(
            token_with("3599"),
            Some(answer(
                "429 Too Many Requests",
                &[("retry-after", v), ("content-length", &len)],
                body,
            )),
        )
        .await;
        let e = raw_sink(&srv)
            .current(&key("a@contoso.com"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimited, "{v}: {e}");
        assert!(e.is_retryable(), "{v}: {e}");
        assert!(
            e.retry_after()
                .is_none_or(|d| d <= Duration::from_secs(24 * 3600)),
            "{v}: {:?}",
            e.retry_after()
        );
    }
    // Through the engine, a wait over the policy's limit fails the user at once.
    let body = br#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#;
    let srv = raw_server(
        token_with("3599"),
        Some(answer(
            "429 Too Many Requests",
            &[
                ("retry-after", "1e20"),
                ("content-length", &body.len().to_string()),
            ],
            body,
        )),
    )
    .await;
    let started = std::time::Instant::now();
    let report = Engine::new(source_for(&["a@contoso.com".into()], 0))
        .with_sink(raw_sink(&srv), Profile::graph())
        .run()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        report.outcomes[0].error_kind,
        Some(ErrorKind::RateLimited),
        "{:?}",
        report.outcomes
    );
}

/// `expires_in` values no token endpoint should send: the token is used, no panic, and the
/// cache's arithmetic holds on the next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_expires_in_values_never_panic() {
    let meta = br#"{"@odata.mediaEtag":"\"E1\"","@odata.mediaContentType":"image/jpeg","width":648,"height":648}"#;
    for v in [
        "1e300",
        "18446744073709551615",
        "-1",
        "-1e300",
        r#""1e20""#,
        r#""abc""#,
        "null",
        r#"{"x":1}"#,
        "0",
    ] {
        let srv = raw_server(
            token_with(v),
            Some(answer(
                "200 OK",
                &[
                    ("content-type", "application/json"),
                    ("content-length", &meta.len().to_string()),
                ],
                meta,
            )),
        )
        .await;
        let s = raw_sink(&srv);
        for _ in 0..2 {
            let c = s.current(&key("a@contoso.com")).await.unwrap();
            assert_eq!(c.and_then(|c| c.version).as_deref(), Some("\"E1\""), "{v}");
        }
    }
}

/// Bodies are read through a limit: a huge `Content-Length` is refused before reading, a
/// chunked body over the limit is cut off, an error answer's oversized body is dropped
/// while its status still counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_read_through_a_size_limit() {
    let u = key("a@contoso.com");
    // Content-Length of 100 TB, two bytes sent.
    let srv = raw_server(
        token_with("3599"),
        Some(answer(
            "200 OK",
            &[
                ("content-length", "99999999999999"),
                ("content-type", "application/json"),
            ],
            b"{}",
        )),
    )
    .await;
    let started = std::time::Instant::now();
    let e = raw_sink(&srv).current(&u).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    assert!(!e.is_retryable() && !e.is_run_level(), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused before reading"
    );
    // A Content-Length beyond any integer: hyper refuses to parse the answer, which is a
    // failed request (retryable, this user's), never a panic.
    let srv = raw_server(
        token_with("3599"),
        Some(answer(
            "200 OK",
            &[("content-length", "999999999999999999999999999999")],
            b"{}",
        )),
    )
    .await;
    let e = raw_sink(&srv).current(&u).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable() && !e.is_run_level(), "{e}");
    // A photo of 6 MB, chunked (no length announced): over the 4 MB + margin limit.
    let srv = raw_server(
        token_with("3599"),
        Some(answer(
            "200 OK",
            &[
                ("transfer-encoding", "chunked"),
                ("content-type", "image/jpeg"),
            ],
            &chunked(6 << 20),
        )),
    )
    .await;
    let e = raw_sink(&srv).fetch(&u).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    // Metadata JSON of 5 MB: over the JSON limit.
    let srv = raw_server(
        token_with("3599"),
        Some(answer(
            "200 OK",
            &[
                ("transfer-encoding", "chunked"),
                ("content-type", "application/json"),
            ],
            &chunked(5 << 20),
        )),
    )
    .await;
    let e = raw_sink(&srv).current(&u).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    // A 403 with a 1 MB body: still this user's refusal.
    let srv = raw_server(
        token_with("3599"),
        Some(answer(
            "403 Forbidden",
            &[("transfer-encoding", "chunked")],
            &chunked(1 << 20),
        )),
    )
    .await;
    let e = raw_sink(&srv).put(&u, &jpeg(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(!e.is_run_level(), "{e}");
    // A token answer of 5 MB.
    let srv = raw_server(format!("\"{}\"", "x".repeat(5 << 20)), Some(Vec::new())).await;
    let e = raw_sink(&srv).current(&u).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
}

/// A server that accepts TCP and never answers: each call ends with a timeout after the
/// request timeout, and a run over it ends in bounded time with every user failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_in_bounded_time() {
    let srv = raw_server(String::new(), None).await;
    let url = format!("http://{}", srv.addr);
    let s = GraphSink::builder(DEFAULT_TENANT_ID, DEFAULT_CLIENT_ID, Secret::new("s"))
        .graph_url(&url)
        .login_url(&url)
        .connect_timeout(Duration::from_millis(300))
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let e = s.current(&key("a@contoso.com")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("timed out"), "{e}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );

    let users: Vec<String> = (0..3).map(upn_of).collect();
    let started = std::time::Instant::now();
    let report = Engine::new(source_for(&users, 0))
        .with_sink(s, Profile::graph())
        .with_retry(
            RetryPolicy::default()
                .with_max_retries(1)
                .with_delays(Duration::from_millis(20), Duration::from_millis(50)),
        )
        .run()
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(report.sinks["graph"].put, 0);
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| o.error_kind == Some(ErrorKind::Timeout) && o.attempts <= 2),
        "{:?}",
        report.outcomes
    );
}

/// Graph answering nothing but 503s, then nothing but 500s: retried within the run's
/// budget, then each user failed as unavailable; the run ends in bounded time and its
/// counts say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_of_503_and_500_end_in_bounded_time() {
    for failure in [
        Failure::ServiceUnavailable(RetryAfter::Seconds(0)),
        Failure::InternalServerError,
    ] {
        let srv = server(8).await;
        srv.set_throttle(Some(Throttle::every(1, failure.clone())));
        let users: Vec<String> = (0..8).map(upn_of).collect();
        let started = std::time::Instant::now();
        let report = Engine::new(source_for(&users, 0))
            .with_sink(sink(&srv), Profile::graph())
            .with_retry(
                RetryPolicy::default()
                    .with_max_retries(3)
                    .with_delays(Duration::from_millis(10), Duration::from_millis(40))
                    .with_max_retry_after(Duration::from_secs(5))
                    .with_budget(6),
            )
            .run()
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(20), "{failure:?}");
        assert_eq!(puts(&srv), 0);
        assert!(report.timings.retries <= 6, "{:?}", report.timings);
        let failed = report
            .outcomes
            .iter()
            .filter(|o| o.error_kind == Some(ErrorKind::Unavailable))
            .count();
        assert_eq!(
            failed + report.sinks["graph"].not_attempted,
            8,
            "{failure:?}: {:?}",
            report.outcomes
        );
        assert!(failed >= 1);
        // At most the first try per user plus the budget.
        assert!(
            srv.operation_records().len() <= 8 + 6,
            "{}",
            srv.operation_records().len()
        );
    }
}

/// Issue 10: `debug_redacts` never fetched a token. This one does (a call against the
/// server), then checks that `Debug` shows neither the secret nor the bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_never_shows_the_secret_or_the_token() {
    let srv = server(1).await;
    let s = sink(&srv);
    s.current(&key(&upn_of(0))).await.unwrap();
    let token = srv
        .operation_records()
        .iter()
        .find_map(|r| r.header("authorization").map(str::to_owned))
        .and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned))
        .expect("the sink sent a token");
    assert!(token.len() > 20);
    let secret = srv.client_secret().unwrap();
    for d in [format!("{s:?}"), format!("{s:#?}")] {
        assert!(!d.contains(&token), "the token shows: {d}");
        assert!(!d.contains(&secret), "the secret shows: {d}");
        assert!(d.contains("127.0.0.1"), "{d}");
    }
}

// ---------------------------------------------------------------------------------------------
// TLS or loopback (issue 10 point 5)
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_http_only_to_loopback_or_when_named_insecure() {
    let b = || GraphSink::builder("t", "c", Secret::new("x"));
    let e = b()
        .graph_url("http://graph.example.com")
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.message().contains("the Graph URL"), "{e}");
    assert!(e.message().contains("loopback"), "{e}");
    // The setting by the library's name, and no application's flag.
    assert!(
        e.message()
            .contains(userphoto::cited::GRAPH_ALLOW_INSECURE_HTTP),
        "{e}"
    );
    assert!(!e.message().contains("--"), "{e}");
    let e = b()
        .login_url("http://login.example.com")
        .build()
        .unwrap_err();
    assert!(e.message().contains("the login URL"), "{e}");
    assert!(b().graph_url("http://127.0.0.1:1").build().is_ok());
    assert!(b().graph_url("http://localhost:1").build().is_ok());
    assert!(b().graph_url("http://[::1]:1").build().is_ok());
    assert!(b()
        .graph_url("http://graph.example.com")
        .allow_insecure_http(true)
        .build()
        .is_ok());
    let e = b().ca_file("/nonexistent/ca.pem").build().unwrap_err();
    assert!(e.message().contains("/nonexistent/ca.pem"), "{e}");
    let not_pem = std::env::temp_dir().join(format!("userphoto-not-pem-{}", std::process::id()));
    std::fs::write(&not_pem, "hello").unwrap();
    let e = b().ca_file(&not_pem).build().unwrap_err();
    assert!(e.message().contains("no certificate"), "{e}");
    let _ = std::fs::remove_file(&not_pem);
}

fn tls_builder(srv: &GraphServer) -> GraphSinkBuilder {
    builder(srv)
        .connect_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(5))
}

/// The sink over HTTPS, trusting the server's CA through `ca_file` (`--graph-ca-cert`):
/// the conformance suite passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_trusted_through_the_ca_file() {
    let ca = TestCa::new("userphoto test CA");
    let cert = ca.issue(&["localhost"], &["127.0.0.1"]);
    let srv = GraphServer::start_tls(
        GraphServerConfig::default().with_users(directory(10)),
        &cert,
        "localhost",
    )
    .await;
    assert!(srv.base_url().starts_with("https://localhost:"));
    let s = tls_builder(&srv).ca_file(&ca.cert_path).build().unwrap();
    s.put(&key(&upn_of(0)), &jpeg(1)).await.unwrap();
    assert!(srv.user(&upn_of(0)).unwrap().photo.is_some());
    assert!(s.current(&key(&upn_of(0))).await.unwrap().is_some());
    let fixture = SinkFixture {
        users: (1..10).map(|i| key(&upn_of(i))).collect(),
        absent: key("nobody@contoso.onmicrosoft.com"),
    };
    sink_contract(&s, &fixture).await;
}

/// A certificate from another CA and a certificate for another name: the first call fails
/// at once, run-level and not retried, in one line naming the host, the reason and what
/// to do; a run over it stops at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_refused_for_another_ca_and_a_wrong_name() {
    let ca = TestCa::new("userphoto test CA");
    let other = TestCa::new("some other CA");
    let cert = ca.issue(&["localhost"], &["127.0.0.1"]);
    let srv = GraphServer::start_tls(
        GraphServerConfig::default().with_users(directory(4)),
        &cert,
        "localhost",
    )
    .await;
    let host = srv.base_url().trim_start_matches("https://").to_owned();
    let s = tls_builder(&srv).ca_file(&other.cert_path).build().unwrap();
    let started = std::time::Instant::now();
    let e = s.current(&key(&upn_of(0))).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(e.is_run_level() && !e.is_retryable(), "{e}");
    let line = e.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    for want in [
        host.as_str(),
        "not trusted",
        userphoto::cited::GRAPH_CA_FILE,
        "SSL_CERT_FILE",
    ] {
        assert!(line.contains(want), "{want:?} in {line}");
    }
    assert!(!line.contains("--"), "no application's flag: {line}");
    assert!(srv.records().is_empty(), "nothing got through");

    let users: Vec<String> = (0..4).map(upn_of).collect();
    let started = std::time::Instant::now();
    let stopped = match Engine::new(source_for(&users, 0))
        .with_sink(s, Profile::graph())
        .run()
        .await
    {
        Err(e) => e.to_string(),
        Ok(report) => {
            assert_eq!(report.timings.retries, 0);
            assert_eq!(report.sinks["graph"].put, 0);
            report.aborted.expect("the run stops").message
        }
    };
    assert!(started.elapsed() < Duration::from_secs(5), "no retries");
    assert!(stopped.contains("not trusted"), "{stopped}");
    // The cited setting reaches the report's abort message, for an application's advice.
    assert!(
        stopped.contains(userphoto::cited::GRAPH_CA_FILE),
        "{stopped}"
    );

    // The right CA, but the certificate is for another name.
    let wrong = ca.issue(&["graph.other.example"], &[]);
    let srv = GraphServer::start_tls(
        GraphServerConfig::default().with_users(directory(1)),
        &wrong,
        "localhost",
    )
    .await;
    let e = tls_builder(&srv)
        .ca_file(&ca.cert_path)
        .build()
        .unwrap()
        .current(&key(&upn_of(0)))
        .await
        .unwrap_err();
    assert!(e.is_run_level() && !e.is_retryable(), "{e}");
    assert!(
        e.to_string().contains("not valid for this host name"),
        "{e}"
    );
}
