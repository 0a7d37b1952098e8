//! The Active Directory sink and the LDAP source against a real AD: Samba's AD DC on
//! loopback (`scripts/samba-dc.sh start`, then `eval "$(scripts/samba-dc.sh env)"`).
//!
//! Without the `USERPHOTO_AD_*` variables every test prints why it skipped and passes,
//! unless `USERPHOTO_REQUIRE_AD=1` (CI), which turns the skip into a failure. The tests
//! share one DC and run in parallel: each makes its own OU below `USERPHOTO_AD_TEST_OU`
//! with uniquely named users (through `ldap3` directly, not through the code under test)
//! and deletes it at the end. The tests of incremental runs count the DC's update sequence
//! numbers, so they need it to themselves: they hold the DC for writing
//! (`Ou::exclusive`), every other test holds it for reading (through its `Ou`). The DC's
//! settings, admin connections and OUs are the test kit's (`userphoto_testkit::ad`); the
//! CLI's runs against the DC are in `cli/tests/ad.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use userphoto::conformance::{sink_contract, source_contract, SinkFixture, SourceFixture};
use userphoto::normalize::{testimage, Profile};
use userphoto::sink::{AdSink, CurrentPhoto, DirectorySink, Incremental, LdapConfig, Secret};
use userphoto::source::{LdapSource, MemorySource, PhotoSource};
use userphoto::sync::{Action, Engine, Event, Reason, Report, RetryPolicy, StateStore, Status};
use userphoto::{ErrorKind, MatchAttribute, UserKey};
use userphoto_testkit::ad::{admin, delegate, delegated_fixture, run_id, Env, NewUser, Ou};
use userphoto_testkit::need_env;

// ---------------------------------------------------------------------------------------
// The sink's settings for the DC.

fn sink_config(env: &Env, base: &str) -> LdapConfig {
    // Generous timeouts: the test DC is one LDAP process, which another test's bulk work
    // can keep busy for seconds.
    LdapConfig::new(&env.ldaps_url, base)
        .ca_file(&env.ca)
        .simple_bind(
            &env.admin_dn,
            Secret::from_file(&env.admin_pw_file).unwrap(),
        )
        .connect_timeout(Duration::from_secs(60))
        .operation_timeout(Duration::from_secs(60))
}

fn jpeg(seed: u32) -> Bytes {
    Bytes::from(testimage::photo_jpeg(64, 80, seed))
}

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Whether `current` shows exactly `photo` (by its bytes or by their hash).
fn shows(c: &Option<CurrentPhoto>, photo: &[u8]) -> bool {
    c.as_ref().and_then(CurrentPhoto::content_sha256) == Some(sha_hex(photo))
}

// ---------------------------------------------------------------------------------------
// A TCP proxy in front of LDAPS that a test can cut and restore.

struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    tx: tokio::sync::watch::Sender<u64>,
    frozen: tokio::sync::watch::Sender<bool>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        let (frozen, frz) = tokio::sync::watch::channel(false);
        let (c, a) = (cut.clone(), accepted.clone());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut down, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                if *frz.borrow() {
                    // Frozen: accept and never answer.
                    held.push(down);
                    continue;
                }
                a.fetch_add(1, Ordering::SeqCst);
                let mut rx = rx.clone();
                let mut frz = frz.clone();
                let epoch = *rx.borrow();
                tokio::spawn(async move {
                    let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let frozen = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => false,
                        _ = rx.wait_for(|e| *e != epoch) => false,
                        _ = frz.wait_for(|f| *f) => true,
                    };
                    if frozen {
                        // Keep both ends open (they live in this task), forward nothing.
                        std::future::pending::<()>().await;
                    }
                });
            }
        });
        Self {
            addr,
            cut,
            tx,
            frozen,
            accepted,
        }
    }

    /// Drops every open connection and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.tx.send_modify(|e| *e += 1);
    }

    /// Keeps every connection open but forwards nothing more, and accepts new ones
    /// without ever answering: a hung server.
    fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    fn url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.addr.port())
    }
}

fn ldaps_addr(env: &Env) -> SocketAddr {
    let hostport = env
        .ldaps_url
        .trim_start_matches("ldaps://")
        .trim_end_matches('/');
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:636")
    };
    std::net::ToSocketAddrs::to_socket_addrs(&hostport)
        .unwrap()
        .next()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_sink_contract_by_sam_account_name_and_by_guid() {
    let env = need_env!();
    let ou = Ou::new(&env, "conf").await;
    let id = run_id();
    let users: Vec<NewUser> = (0..8)
        .map(|i| NewUser::new(format!("conf {id} {i}"), format!("cf{id}{i}")))
        .collect();
    let dns = ou.add_users(users, 8).await;
    // Searched from the domain root: the DC's search references come back and are ignored.
    let sink = AdSink::builder(sink_config(&env, &env.base_dn))
        .build()
        .unwrap();
    let fx = SinkFixture {
        users: (0..8).map(|i| UserKey::new(format!("cf{id}{i}"))).collect(),
        absent: UserKey::new(format!("nobody{id}")),
    };
    sink_contract(&sink, &fx).await;

    // The same with objectGUID keys (searched by their 16 escaped bytes).
    let mut guids = Vec::new();
    for dn in &dns {
        guids.push(UserKey::new(ou.guid(dn).await));
    }
    let sink = AdSink::builder(sink_config(&env, &ou.dn))
        .match_attribute(MatchAttribute::ObjectGuid)
        .build()
        .unwrap();
    let fx = SinkFixture {
        users: guids.clone(),
        absent: UserKey::new("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
    };
    sink_contract(&sink, &fx).await;
    let braces = UserKey::new(format!("{{{}}}", guids[0].as_str().to_uppercase()));
    sink.put(&braces, &jpeg(1)).await.unwrap();
    assert_eq!(ou.photo(&dns[0]).await.as_deref(), Some(&jpeg(1)[..]));
    assert_eq!(
        sink.users_with_photos().await.unwrap(),
        vec![guids[0].clone()]
    );
    sink.delete(&guids[0]).await.unwrap();
    ou.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_ldap_source_contract() {
    let env = need_env!();
    let ou = Ou::new(&env, "src").await;
    let id = run_id();
    let dns = ou
        .add_users(
            (0..4)
                .map(|i| NewUser::new(format!("src {id} {i}"), format!("sr{id}{i}")))
                .collect(),
            4,
        )
        .await;
    // Three with photos, one without (not listed).
    for (i, dn) in dns.iter().take(3).enumerate() {
        ou.set_photo(dn, &jpeg(i as u32 + 1)).await;
    }
    let src = LdapSource::builder(sink_config(&env, &ou.dn))
        .build()
        .unwrap();
    let keys: Vec<String> = (0..3).map(|i| format!("sr{id}{i}")).collect();
    source_contract(
        &src,
        &SourceFixture::new(keys.clone(), Vec::<String>::new()),
    )
    .await;
    // Fingerprints are the SHA-256 of the bytes; load gives the bytes.
    let listed: Vec<_> = src.list().collect().await;
    let first = listed
        .iter()
        .flatten()
        .find(|r| r.key == UserKey::new(&keys[0]))
        .unwrap();
    let b = src
        .load(first, &userphoto::normalize::Limits::default())
        .await
        .unwrap();
    assert_eq!(b, jpeg(1));
    assert!(first.fingerprint.starts_with("sha256:"));
    // With no room to keep the listed photos, `load` reads each entry again: same bytes,
    // same fingerprints.
    let lean = LdapSource::builder(sink_config(&env, &ou.dn))
        .cache_bytes(0)
        .build()
        .unwrap();
    let lean_listed: Vec<_> = lean.list().collect().await;
    for (i, k) in keys.iter().enumerate() {
        let key = UserKey::new(k);
        let r = lean_listed.iter().flatten().find(|r| r.key == key).unwrap();
        let full = listed.iter().flatten().find(|r| r.key == key).unwrap();
        assert_eq!(r.fingerprint, full.fingerprint);
        let b = lean
            .load(r, &userphoto::normalize::Limits::default())
            .await
            .unwrap();
        assert_eq!(b, jpeg(i as u32 + 1));
    }
    ou.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_whose_names_need_escaping_are_written_to_themselves() {
    let env = need_env!();
    let ou = Ou::new(&env, "esc").await;
    let id = run_id();
    // Matched on employeeNumber (sAMAccountName forbids several of these characters); the
    // CN is the same value, so the DNs need escaping too (`Doe\, John`, `a\5cb`).
    let names = [
        "o'brien",
        "ann*",
        "j(doe)",
        "a\\b",
        "Müller",
        "Doe, John",
        "annabel",
        "jdoe",
        "ab",
    ];
    let users: Vec<NewUser> = names
        .iter()
        .enumerate()
        .map(|(i, n)| NewUser::new(*n, format!("es{id}{i}")).with("employeeNumber", *n))
        .collect();
    let dns = ou.add_users(users, 8).await;
    let by_name: HashMap<&str, &String> = names.iter().copied().zip(dns.iter()).collect();
    let written = &names[..6];
    for prefetch in [true, false] {
        let sink = AdSink::builder(sink_config(&env, &ou.dn))
            .match_attribute(MatchAttribute::EmployeeNumber)
            .build()
            .unwrap();
        let injection = [
            "*",
            "x)(employeeNumber=*",
            "(",
            "ann\\2a",
            "*)(objectClass=*",
        ];
        if prefetch {
            let mut keys: Vec<UserKey> = written.iter().map(UserKey::new).collect();
            keys.extend(injection.iter().map(UserKey::new));
            sink.prefetch(&keys).await.unwrap();
        }
        for (i, n) in written.iter().enumerate() {
            let photo = jpeg(100 + i as u32 + if prefetch { 0 } else { 50 });
            sink.put(&UserKey::new(n), &photo)
                .await
                .unwrap_or_else(|e| panic!("put {n}: {e}"));
            assert_eq!(
                ou.photo(by_name[n]).await.as_deref(),
                Some(&photo[..]),
                "{n} (prefetch {prefetch}) has another photo"
            );
            let cur = sink.current(&UserKey::new(n.to_uppercase())).await.unwrap();
            assert!(shows(&cur, &photo), "{n}: {cur:?}");
        }
        for decoy in &names[6..] {
            assert_eq!(ou.photo(by_name[decoy]).await, None, "{decoy} was written");
        }
        for k in injection {
            let e = sink.put(&UserKey::new(k), &jpeg(9)).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UserNotFound, "{k}: {e}");
            let e = sink.current(&UserKey::new(k)).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UserNotFound, "{k}: {e}");
        }
        let mut with: Vec<String> = sink
            .users_with_photos()
            .await
            .unwrap()
            .into_iter()
            .map(String::from)
            .collect();
        with.sort();
        let mut want: Vec<String> = written.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(with, want);
    }
    ou.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_resolves_1200_users_through_paging() {
    let env = need_env!();
    let ou = Ou::exclusive_with_connections(&env, "page", 4).await;
    let id = run_id();
    let n = 1200;
    let t = Instant::now();
    let users: Vec<NewUser> = (0..n)
        .map(|i| NewUser::new(format!("pg{id}{i:04}"), format!("pg{id}{i:04}")))
        .collect();
    let dns = ou.add_users(users, 16).await;
    let setup = t.elapsed();
    // A few have photos already.
    for (i, dn) in dns.iter().enumerate().step_by(300) {
        ou.set_photo(dn, &jpeg(i as u32)).await;
    }
    // Through a proxy that is cut after the prefetch: every answer then comes from the one
    // paged pass.
    let proxy = Proxy::start(ldaps_addr(&env)).await;
    let cfg = LdapConfig::new(proxy.url(), &ou.dn)
        .ca_file(&env.ca)
        .simple_bind(
            &env.admin_upn,
            Secret::from_file(&env.admin_pw_file).unwrap(),
        );
    let sink = AdSink::builder(cfg).build().unwrap();
    let keys: Vec<UserKey> = (0..n)
        .map(|i| UserKey::new(format!("pg{id}{i:04}")))
        .collect();
    let t = Instant::now();
    sink.prefetch(&keys).await.unwrap();
    let prefetch = t.elapsed();
    proxy.cut();
    let t = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        let c = sink
            .current(k)
            .await
            .unwrap_or_else(|e| panic!("{k} not from the prefetch: {e}"));
        assert_eq!(c.is_some(), i % 300 == 0, "{k}");
    }
    let reads = t.elapsed();
    // The one pass read everyone: the leavers' list needs no search either.
    let mut with = sink.users_with_photos().await.unwrap();
    with.sort();
    let want: Vec<UserKey> = (0..n).step_by(300).map(|i| keys[i].clone()).collect();
    assert_eq!(with, want);
    eprintln!(
        "1200 users: created in {setup:.1?} (16 adds in flight over 4 connections), prefetched in {prefetch:.1?} over {} connection(s), 1200 current() from memory in {reads:.1?}",
        proxy.accepted.load(Ordering::SeqCst)
    );
    assert!(sink.last_read().unwrap().full);
    // The snapshot of that pass lets the next run read only the changes: here one photo
    // set by someone else (other tests may change the DC meanwhile, so no exact count).
    proxy.restore();
    let saved = sink.snapshot().await.unwrap().expect("a snapshot");
    drop(proxy);
    ou.set_photo(&dns[7], &jpeg(7)).await;
    let next = AdSink::builder(sink_config(&env, &ou.dn)).build().unwrap();
    next.resume(saved).await.unwrap();
    let t = Instant::now();
    next.prefetch(&keys).await.unwrap();
    let incremental = t.elapsed();
    let read = next.last_read().unwrap();
    assert!(!read.full, "{read:?}");
    assert!(read.entries >= 1 && read.entries < n, "{read:?}");
    assert!(shows(&next.current(&keys[7]).await.unwrap(), &jpeg(7)));
    assert!(next.current(&keys[8]).await.unwrap().is_none());
    let mut with = next.users_with_photos().await.unwrap();
    with.sort();
    let mut want = want;
    want.insert(1, keys[7].clone());
    assert_eq!(with, want);
    eprintln!(
        "then an incremental prefetch in {incremental:.1?}: {} entries read",
        read.entries
    );
    ou.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_102400_bytes_and_refuses_102401_before_sending() {
    let env = need_env!();
    let ou = Ou::new(&env, "size").await;
    let id = run_id();
    let dns = ou
        .add_users(
            vec![NewUser::new(format!("size {id}"), format!("sz{id}"))],
            1,
        )
        .await;
    let key = UserKey::new(format!("sz{id}"));
    let sink = AdSink::builder(sink_config(&env, &ou.dn)).build().unwrap();
    let mut max = jpeg(7).to_vec();
    max.resize(102_400, 0x5a);
    let max = Bytes::from(max);
    sink.put(&key, &max).await.unwrap();
    assert_eq!(ou.photo(&dns[0]).await.as_deref(), Some(&max[..]));
    assert!(shows(&sink.current(&key).await.unwrap(), &max));

    let mut over = max.to_vec();
    over.push(0x5b);
    let e = sink
        .put(&key, &Bytes::from(over.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PhotoTooLarge, "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("nothing sent"), "{e}");
    assert_eq!(
        ou.photo(&dns[0]).await.as_deref(),
        Some(&max[..]),
        "old value kept"
    );

    // Sent anyway (a sink told to allow more), the DC rejects it: a permanent photo error.
    let lax = AdSink::builder(sink_config(&env, &ou.dn))
        .max_bytes(200_000)
        .build()
        .unwrap();
    let e = lax.put(&key, &Bytes::from(over)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidPhoto, "{e}");
    assert!(!e.is_retryable());
    assert!(e.message().contains("photo rejected"), "{e}");
    assert_eq!(
        ou.photo(&dns[0]).await.as_deref(),
        Some(&max[..]),
        "old value kept"
    );
    ou.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_by_dn_upn_and_down_level_name_and_refuses_a_wrong_password() {
    let env = need_env!();
    let ou = Ou::new(&env, "bind").await;
    let id = run_id();
    ou.add_users(
        vec![NewUser::new(format!("bind {id}"), format!("bd{id}"))],
        1,
    )
    .await;
    let key = UserKey::new(format!("bd{id}"));
    let pw = Secret::from_file(&env.admin_pw_file).unwrap();
    let domain = env.realm.split('.').next().unwrap().to_owned();
    for who in [
        env.admin_dn.clone(),
        env.admin_upn.clone(),
        format!("{domain}\\Administrator"),
    ] {
        let cfg = LdapConfig::new(&env.ldaps_url, &ou.dn)
            .ca_file(&env.ca)
            .simple_bind(&who, pw.clone());
        let sink = AdSink::builder(cfg).build().unwrap();
        sink.check()
            .await
            .unwrap_or_else(|e| panic!("bind as {who}: {e}"));
        assert!(sink.current(&key).await.unwrap().is_none());
    }

    let wrong = "Not-the-Passw0rd!";
    let cfg = LdapConfig::new(&env.ldaps_url, &ou.dn)
        .ca_file(&env.ca)
        .simple_bind(&env.admin_upn, Secret::new(wrong));
    let sink = AdSink::builder(cfg).build().unwrap();
    let e = sink.current(&key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(e.kind().is_run_level());
    assert_eq!(e.backend(), "ad");
    assert_eq!(e.user(), Some(&key));
    assert!(e.to_string().contains("invalidCredentials (49)"), "{e}");
    assert!(
        e.to_string().contains("52e"),
        "AD's data code passes through: {e}"
    );
    assert!(!e.to_string().contains(wrong) && !format!("{e:?}").contains(wrong));
    // Remembered: later calls fail the same way without binding again.
    let e2 = sink.put(&key, &jpeg(1)).await.unwrap_err();
    assert_eq!(e2.kind(), ErrorKind::Unauthenticated);
    assert_eq!(e2.operation(), "put");
    let e3 = sink.prefetch(std::slice::from_ref(&key)).await.unwrap_err();
    assert_eq!(e3.kind(), ErrorKind::Unauthenticated);
    ou.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_ldap_is_refused_and_starttls_works() {
    let env = need_env!();
    let ou = Ou::new(&env, "tls").await;
    let id = run_id();
    let dns = ou
        .add_users(
            vec![NewUser::new(format!("tls {id}"), format!("tl{id}"))],
            1,
        )
        .await;
    let key = UserKey::new(format!("tl{id}"));
    let pw = Secret::from_file(&env.admin_pw_file).unwrap();
    let plain = LdapConfig::new(&env.ldap_url, &ou.dn).simple_bind(&env.admin_upn, pw.clone());

    // Not even attempted without allow_plain.
    let e = AdSink::builder(plain.clone()).build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("ldaps://"), "{e}");

    // Allowed, AD refuses the simple bind with 8 and the error says what to do.
    let sink = AdSink::builder(plain.allow_plain(true)).build().unwrap();
    let e = sink.current(&key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("strongerAuthRequired (8)"), "{e}");
    assert!(e.to_string().contains("use ldaps:// or StartTLS"), "{e}");

    // StartTLS on the same port works.
    let cfg = LdapConfig::new(&env.ldap_url, &ou.dn)
        .starttls(true)
        .ca_file(&env.ca)
        .simple_bind(&env.admin_upn, pw.clone());
    let sink = AdSink::builder(cfg).build().unwrap();
    sink.put(&key, &jpeg(3)).await.unwrap();
    assert_eq!(ou.photo(&dns[0]).await.as_deref(), Some(&jpeg(3)[..]));

    // The DC's certificate is not trusted by the system roots: a clear config error. Only
    // the option that says so skips verification.
    let untrusted = LdapConfig::new(&env.ldaps_url, &ou.dn).simple_bind(&env.admin_upn, pw.clone());
    match AdSink::builder(untrusted.clone()).build() {
        Ok(sink) => {
            let e = sink.current(&key).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
            assert!(e.to_string().contains("TLS"), "{e}");
        }
        // A machine without any system roots says so at build time.
        Err(e) => assert_eq!(e.kind(), ErrorKind::Config, "{e}"),
    }
    let sink = AdSink::builder(untrusted.insecure_skip_tls_verify(true))
        .build()
        .unwrap();
    assert_eq!(
        sink.current(&key).await.unwrap().and_then(|c| c.bytes),
        Some(jpeg(3))
    );
    sink.delete(&key).await.unwrap();
    ou.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_write_access_is_permission_denied() {
    let env = need_env!();
    let ou = Ou::new(&env, "acl").await;
    let id = run_id();
    let dns = ou
        .add_users(
            vec![NewUser::new(format!("acl {id}"), format!("ac{id}"))],
            1,
        )
        .await;
    ou.set_photo(&dns[0], &jpeg(4)).await;
    let key = UserKey::new(format!("ac{id}"));
    let cfg = LdapConfig::new(&env.ldaps_url, &ou.dn)
        .ca_file(&env.ca)
        .simple_bind(
            &env.reader_dn,
            Secret::from_file(&env.reader_pw_file).unwrap(),
        );
    let sink = AdSink::builder(cfg).build().unwrap();
    assert_eq!(
        sink.current(&key).await.unwrap().and_then(|c| c.bytes),
        Some(jpeg(4)),
        "the reader can read"
    );
    for r in [
        sink.put(&key, &jpeg(5)).await.map(|_| ()),
        sink.delete(&key).await,
    ] {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        // One user's failure: the run goes on with the others.
        assert!(!e.is_run_level() && !e.is_retryable(), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("insufficientAccessRights (50)"), "{e}");
        assert!(
            msg.contains(&format!("no write access to thumbnailPhoto on {}", dns[0])),
            "{e}"
        );
        assert!(msg.contains("AdminSDHolder"), "{e}");
    }
    assert_eq!(ou.photo(&dns[0]).await.as_deref(), Some(&jpeg(4)[..]));
    // The reader cannot see deleted objects, so a snapshot would miss deletions: none.
    sink.prefetch(std::slice::from_ref(&key)).await.unwrap();
    let read = sink.last_read().unwrap();
    assert!(read.full, "{read:?}");
    assert!(read.reason.contains("deleted objects"), "{read:?}");
    assert!(sink.snapshot().await.unwrap().is_none());
    ou.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computer_accounts_are_not_people_by_default() {
    let env = need_env!();
    let ou = Ou::new(&env, "computers").await;
    let id = run_id();
    let person = format!("pc{id}");
    let dns = ou
        .add_users(vec![NewUser::new(format!("pc {id} person"), &person)], 1)
        .await;
    // A computer account: its objectClass is `user` too (computer derives from user).
    let machine = format!("ws{id}$");
    let computer_dn = ou.user_dn(&format!("ws{id}"));
    let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
        (
            b"objectClass".to_vec(),
            ["top", "person", "organizationalPerson", "user", "computer"]
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        ),
        (
            b"sAMAccountName".to_vec(),
            HashSet::from([machine.clone().into_bytes()]),
        ),
    ];
    ou.conns[0]
        .clone()
        .add(&computer_dn, attrs)
        .await
        .unwrap()
        .success()
        .unwrap_or_else(|e| panic!("create {computer_dn}: {e}"));
    let keys = [UserKey::new(&person), UserKey::new(&machine)];
    for prefetch in [true, false] {
        let sink = AdSink::builder(sink_config(&env, &ou.dn)).build().unwrap();
        if prefetch {
            sink.prefetch(&keys).await.unwrap();
        }
        let e = sink.put(&keys[1], &jpeg(1)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UserNotFound, "{e}");
        sink.put(&keys[0], &jpeg(2)).await.unwrap();
    }
    assert_eq!(ou.photo(&computer_dn).await, None);
    assert_eq!(ou.photo(&dns[0]).await.as_deref(), Some(&jpeg(2)[..]));
    // The filter is what leaves it out: the broader one finds it.
    let broad = AdSink::builder(sink_config(&env, &ou.dn))
        .user_filter("(objectClass=user)")
        .build()
        .unwrap();
    assert!(broad.current(&keys[1]).await.unwrap().is_none());
    ou.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_key_is_reported_and_never_written() {
    let env = need_env!();
    let ou = Ou::new(&env, "amb").await;
    let id = run_id();
    let shared = format!("E{id}");
    let dns = ou
        .add_users(
            vec![
                NewUser::new(format!("amb {id} a"), format!("am{id}a"))
                    .with("employeeID", shared.as_str()),
                NewUser::new(format!("amb {id} b"), format!("am{id}b"))
                    .with("employeeID", shared.as_str()),
                NewUser::new(format!("amb {id} c"), format!("am{id}c"))
                    .with("employeeID", format!("F{id}").as_str()),
            ],
            3,
        )
        .await;
    for prefetch in [true, false] {
        let sink = AdSink::builder(sink_config(&env, &ou.dn))
            .match_attribute(MatchAttribute::EmployeeId)
            .build()
            .unwrap();
        let key = UserKey::new(&shared);
        if prefetch {
            sink.prefetch(&[key.clone(), UserKey::new(format!("F{id}"))])
                .await
                .unwrap();
        }
        for e in [
            sink.current(&key).await.map(|_| ()).unwrap_err(),
            sink.put(&key, &jpeg(1)).await.map(|_| ()).unwrap_err(),
            sink.delete(&key).await.unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::AmbiguousMatch, "{e}");
            assert!(
                e.message().contains(&dns[0]) && e.message().contains(&dns[1]),
                "{e}"
            );
        }
        sink.put(&UserKey::new(format!("F{id}")), &jpeg(2))
            .await
            .unwrap();
    }
    assert_eq!(ou.photo(&dns[0]).await, None);
    assert_eq!(ou.photo(&dns[1]).await, None);
    assert_eq!(ou.photo(&dns[2]).await.as_deref(), Some(&jpeg(2)[..]));
    ou.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_lost_mid_run_leaves_nothing_half_written_and_a_rerun_completes() {
    let env = need_env!();
    let ou = Ou::new(&env, "drop").await;
    let id = run_id();
    let n = 40;
    let sams: Vec<String> = (0..n).map(|i| format!("dr{id}{i:02}")).collect();
    let dns = ou
        .add_users(
            sams.iter()
                .map(|s| NewUser::new(s.clone(), s.clone()))
                .collect(),
            8,
        )
        .await;
    // Half of them have an old photo.
    let mut old: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    for (i, dn) in dns.iter().enumerate() {
        let p = (i % 2 == 0).then(|| jpeg(1000 + i as u32).to_vec());
        if let Some(p) = &p {
            ou.set_photo(dn, p).await;
        }
        old.insert(dn.clone(), p);
    }
    let mut source = MemorySource::new();
    for (i, s) in sams.iter().enumerate() {
        source.insert(s.as_str(), testimage::photo_jpeg(200, 240, i as u32 + 1));
    }
    let proxy = Arc::new(Proxy::start(ldaps_addr(&env)).await);
    let cfg = LdapConfig::new(proxy.url(), &ou.dn)
        .ca_file(&env.ca)
        .simple_bind(
            &env.admin_upn,
            Secret::from_file(&env.admin_pw_file).unwrap(),
        )
        .connect_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(5));
    let sink = Arc::new(AdSink::builder(cfg).build().unwrap());
    let written = Arc::new(AtomicUsize::new(0));
    let (w, p) = (written.clone(), proxy.clone());
    let retry = RetryPolicy::default()
        .with_max_retries(1)
        .with_delays(Duration::from_millis(20), Duration::from_millis(100));
    let engine = Engine::new(source.clone())
        .with_sink(sink.clone(), Profile::ad_thumbnail())
        .with_concurrency(4)
        .with_retry(retry.clone())
        .with_events(move |e| {
            if let Event::Written { .. } = e {
                if w.fetch_add(1, Ordering::SeqCst) + 1 == 10 {
                    p.cut();
                }
            }
        });
    let t = Instant::now();
    let report = engine
        .prepare()
        .await
        .unwrap()
        .apply()
        .await
        .expect_err("the run stops")
        .into_report();
    let first = t.elapsed();
    // The connection dropped and cannot be made again: the run stops, saying so.
    let aborted = report.aborted.as_ref().expect("the run stops");
    assert!(
        aborted.message.contains("reconnecting failed"),
        "{aborted:?}"
    );
    assert!(first < Duration::from_secs(20), "{first:?}");
    let done: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Done)
        .collect();
    let failed: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .collect();
    assert!(done.len() >= 10, "{} done", done.len());
    assert!(!failed.is_empty(), "the cut failed nobody");
    for f in &failed {
        assert_eq!(f.error_kind, Some(ErrorKind::Unavailable), "{f:?}");
    }
    assert!(!report.is_success());

    // Mid-run state, read directly: every photo is the old one or a whole new one.
    let mut mid = BTreeMap::new();
    for dn in &dns {
        mid.insert(dn.clone(), ou.photo(dn).await);
    }
    // A re-run through the restored proxy completes.
    proxy.restore();
    let engine = Engine::new(source)
        .with_sink(sink.clone(), Profile::ad_thumbnail())
        .with_concurrency(4)
        .with_retry(retry);
    let report2 = engine.prepare().await.unwrap().apply().await.unwrap();
    assert!(report2.is_success(), "{report2}");
    let fixed = report2
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Done)
        .count();
    assert!(
        fixed <= n - done.len(),
        "the re-run writes at most what the first did not"
    );
    for dn in &dns {
        let now = ou.photo(dn).await.expect("a photo after the re-run");
        assert!(now.starts_with(&[0xFF, 0xD8]) && now.len() <= 10_000);
        let then = &mid[dn];
        assert!(
            then.as_ref() == Some(&now) || *then == old[dn],
            "{dn}: mid-run photo is neither the old nor the new one"
        );
    }
    eprintln!(
        "drop test: first run {first:.1?}: {} done, {} failed (Unavailable); re-run wrote {fixed}",
        done.len(),
        failed.len()
    );
    ou.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// Incremental runs: the snapshot (connector space) and the DC's update sequence numbers.

/// One run of the engine with a state store, through a new sink (as a new process would).
async fn sync_once(
    env: &Env,
    base: &str,
    source: &MemorySource,
    state: &std::path::Path,
) -> (Report, Arc<AdSink>) {
    let sink = Arc::new(AdSink::builder(sink_config(env, base)).build().unwrap());
    let engine = Engine::new(source.clone())
        .with_sink(sink.clone(), Profile::ad_thumbnail())
        .with_state(StateStore::open(state).unwrap())
        .with_concurrency(4);
    let report = engine.run().await.unwrap();
    (report, sink)
}

fn outcome<'r>(r: &'r Report, key: &str) -> &'r userphoto::sync::Outcome {
    r.outcomes
        .iter()
        .find(|o| o.key == UserKey::new(key))
        .unwrap_or_else(|| panic!("no outcome for {key}: {r}"))
}

fn state_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("userphoto-ad-{name}-{}.redb", run_id()));
    let _ = std::fs::remove_file(&p);
    p
}

mod later;
