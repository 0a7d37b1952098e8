//! The AD sink against the DC, continued: incremental re-runs from snapshots, the delegated
//! account, and servers that never answer, stop answering or stop mid-run.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_reads_only_what_changed_since_the_last_run() {
    let env = need_env!();
    let ou = Ou::exclusive(&env, "incr").await;
    let id = run_id();
    let base = ou.sub_ou("in").await;
    let outside = ou.sub_ou("out").await;
    let sams: Vec<String> = (0..7).map(|i| format!("in{id}{i}")).collect();
    let mut dns = Vec::new();
    for s in &sams[..6] {
        dns.push(
            ou.add_user_in(&base, NewUser::new(s.clone(), s.clone()))
                .await,
        );
    }
    let mut source = MemorySource::new();
    for (i, s) in sams[..6].iter().enumerate() {
        source.insert(s.as_str(), testimage::photo_jpeg(120, 150, i as u32 + 1));
    }
    let state = state_path("incr");

    // Run 1: no snapshot, the sink reads the run's keys; everyone is written.
    let (r1, sink) = sync_once(&env, &base, &source, &state).await;
    assert!(r1.is_success(), "{r1}");
    assert!(
        r1.outcomes
            .iter()
            .all(|o| o.action == Action::Put && o.status == Status::Done),
        "{r1}"
    );
    let read = sink.last_read().unwrap();
    assert!(read.full, "{read:?}");
    assert_eq!(read.entries, 6, "{read:?}");
    let written: Vec<Vec<u8>> = {
        let mut v = Vec::new();
        for dn in &dns {
            v.push(ou.photo(dn).await.expect("a photo after run 1"));
        }
        v
    };

    // Run 2: nothing changed; only our own writes happened since run 1 read, so the
    // snapshot's watermark is the end of run 1: nothing to read, everyone skipped.
    let (r2, sink) = sync_once(&env, &base, &source, &state).await;
    let read = sink.last_read().unwrap();
    assert!(!read.full, "{read:?}");
    assert_eq!(read.entries, 0, "{read:?}");
    assert!(read.since_usn.is_some(), "{read:?}");
    assert!(
        r2.outcomes
            .iter()
            .all(|o| o.status == Status::Skipped && o.reason == Reason::Unchanged),
        "{r2}"
    );

    // Between the runs, others change the directory:
    // u0's photo is replaced by someone else;
    ou.set_photo(&dns[0], &jpeg(4242)).await;
    // u1 is deleted; u2 moves out of the base DN;
    ou.delete_entry(&dns[1]).await;
    let moved_out = ou
        .move_entry(&dns[2], &format!("CN={}", sams[2]), &outside)
        .await;
    // u3 is renamed inside the base DN, and gets a new photo in the source;
    let renamed = ou
        .move_entry(&dns[3], &format!("CN=renamed {id}"), &base)
        .await;
    source.insert(sams[3].as_str(), testimage::photo_jpeg(120, 150, 333));
    // u6 is a new user, with a photo in the source.
    let new_dn = ou
        .add_user_in(&base, NewUser::new(sams[6].clone(), sams[6].clone()))
        .await;
    source.insert(sams[6].as_str(), testimage::photo_jpeg(120, 150, 7));

    // Run 3 reads only the changes, and acts on each.
    let (r3, sink) = sync_once(&env, &base, &source, &state).await;
    let read = sink.last_read().unwrap();
    assert!(!read.full, "{read:?}");
    assert!(read.entries > 0 && read.entries < 20, "{read:?}");
    let o = outcome(&r3, &sams[0]);
    assert_eq!(
        (o.action, o.reason, o.status),
        (Action::Put, Reason::Changed, Status::Done),
        "{o:?}"
    );
    assert_eq!(
        ou.photo(&dns[0]).await.as_deref(),
        Some(&written[0][..]),
        "u0 has our photo again"
    );
    for k in [&sams[1], &sams[2]] {
        let o = outcome(&r3, k);
        assert_eq!(o.reason, Reason::Unmatched, "{o:?}");
        assert_ne!(o.status, Status::Skipped, "{o:?}");
    }
    assert_eq!(
        ou.photo(&moved_out).await.as_deref(),
        Some(&written[2][..]),
        "the moved user is left alone"
    );
    let o = outcome(&r3, &sams[3]);
    assert_eq!((o.action, o.status), (Action::Put, Status::Done), "{o:?}");
    let at_new_dn = ou.photo(&renamed).await.expect("a photo at the new DN");
    assert_ne!(at_new_dn, written[3], "the renamed user got the new photo");
    let o = outcome(&r3, &sams[6]);
    assert_eq!(
        (o.action, o.reason, o.status),
        (Action::Put, Reason::New, Status::Done),
        "{o:?}"
    );
    assert!(ou.photo(&new_dn).await.is_some());
    for k in [&sams[4], &sams[5]] {
        assert_eq!(outcome(&r3, k).status, Status::Skipped, "{r3}");
    }

    // Run 4: nothing changed again: nothing read; the deleted and moved users are still
    // unmatched (not skipped from a stale snapshot).
    let (r4, sink) = sync_once(&env, &base, &source, &state).await;
    let read = sink.last_read().unwrap();
    assert!(!read.full, "{read:?}");
    assert_eq!(read.entries, 0, "{read:?}");
    for o in &r4.outcomes {
        if o.key == UserKey::new(&sams[1]) || o.key == UserKey::new(&sams[2]) {
            assert_eq!(o.reason, Reason::Unmatched, "{o:?}");
        } else {
            assert_eq!(o.status, Status::Skipped, "{o:?}");
        }
    }
    let _ = std::fs::remove_file(&state);
    ou.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_for_another_scope_or_unreadable_is_ignored() {
    let env = need_env!();
    let ou = Ou::exclusive(&env, "scope").await;
    let id = run_id();
    let inner = ou.sub_ou("inner").await;
    let sams: Vec<String> = (0..3).map(|i| format!("sc{id}{i}")).collect();
    for s in &sams {
        ou.add_user_in(
            &inner,
            NewUser::new(s.clone(), s.clone()).with("employeeID", format!("E{s}").as_str()),
        )
        .await;
    }
    let keys: Vec<UserKey> = sams.iter().map(UserKey::new).collect();
    let sink = AdSink::builder(sink_config(&env, &ou.dn)).build().unwrap();
    assert!(
        sink.snapshot().await.unwrap().is_none(),
        "no snapshot before a prefetch"
    );
    sink.prefetch(&keys).await.unwrap();
    sink.put(&keys[0], &jpeg(1)).await.unwrap();
    let saved = sink.snapshot().await.unwrap().expect("a snapshot");
    let text = String::from_utf8(saved.clone()).unwrap();
    assert!(
        text.contains("\"format\":1") && text.contains(&sha_hex(&jpeg(1))),
        "{text}"
    );
    assert!(
        text.len() < 4000,
        "no photo bytes in the snapshot: {} bytes",
        text.len()
    );

    // The same settings: used.
    let same = AdSink::builder(sink_config(&env, &ou.dn)).build().unwrap();
    same.resume(saved.clone()).await.unwrap();
    same.prefetch(&keys).await.unwrap();
    let read = same.last_read().unwrap();
    assert!(!read.full && read.entries == 0, "{read:?}");
    assert!(shows(&same.current(&keys[0]).await.unwrap(), &jpeg(1)));

    // Another base DN, photo attribute or match attribute; bytes that are no snapshot; one
    // from another DC (or a restored database), one too old to trust for deletions.
    let edited = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_slice(&saved).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let other_dc =
        edited(&|v| v["server"]["invocation_id"] = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into());
    let old = edited(&|v| v["made"] = 1_000_000_000u64.into());
    let plain = || AdSink::builder(sink_config(&env, &ou.dn)).build().unwrap();
    let cases: Vec<(AdSink, Vec<u8>, &str)> = vec![
        (plain(), other_dc, "another domain controller"),
        (plain(), old, "days old"),
        (
            AdSink::builder(sink_config(&env, &inner)).build().unwrap(),
            saved.clone(),
            "base DN",
        ),
        (
            AdSink::builder(sink_config(&env, &ou.dn))
                .attribute("jpegPhoto")
                .build()
                .unwrap(),
            saved.clone(),
            "photo attribute",
        ),
        (
            AdSink::builder(sink_config(&env, &ou.dn))
                .match_attribute(MatchAttribute::EmployeeId)
                .build()
                .unwrap(),
            saved.clone(),
            "match attribute",
        ),
        (
            AdSink::builder(sink_config(&env, &ou.dn))
                .user_filter("(objectCategory=person)")
                .build()
                .unwrap(),
            saved.clone(),
            "user filter",
        ),
        (
            AdSink::builder(sink_config(&env, &ou.dn)).build().unwrap(),
            b"\xffnot json".to_vec(),
            "unreadable",
        ),
        (
            AdSink::builder(sink_config(&env, &ou.dn)).build().unwrap(),
            saved[..saved.len() / 2].to_vec(),
            "unreadable",
        ),
    ];
    for (sink, bytes, why) in cases {
        sink.resume(bytes).await.unwrap();
        let k = if why == "match attribute" {
            vec![UserKey::new(format!("E{}", sams[0]))]
        } else {
            keys.clone()
        };
        sink.prefetch(&k).await.unwrap();
        let read = sink.last_read().unwrap();
        assert!(read.full, "{why}: {read:?}");
        assert!(read.reason.contains(why), "{why}: {read:?}");
        assert!(read.entries > 0, "{why}: {read:?}");
        // And it answers from what it read.
        if why != "photo attribute" {
            assert!(
                shows(&sink.current(&k[0]).await.unwrap(), &jpeg(1)),
                "{why}"
            );
        }
    }

    // Through the engine: a corrupt snapshot in the state store is read past.
    let state = state_path("scope");
    StateStore::open(&state)
        .unwrap()
        .put_snapshot("ad", Some(b"{\"format\":1,"))
        .unwrap();
    let mut source = MemorySource::new();
    for (i, s) in sams.iter().enumerate() {
        source.insert(s.as_str(), testimage::photo_jpeg(120, 150, i as u32 + 50));
    }
    let (r, sink) = sync_once(&env, &ou.dn, &source, &state).await;
    assert!(r.is_success(), "{r}");
    assert!(sink.last_read().unwrap().full);
    let (_, sink) = sync_once(&env, &ou.dn, &source, &state).await;
    let read = sink.last_read().unwrap();
    assert!(
        !read.full && read.entries == 0,
        "the run stored a good one: {read:?}"
    );
    let _ = std::fs::remove_file(&state);
    ou.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_by_someone_else_during_a_run_is_read_by_the_next() {
    let env = need_env!();
    let ou = Ou::exclusive(&env, "race").await;
    let id = run_id();
    let sams: Vec<String> = (0..3).map(|i| format!("rc{id}{i}")).collect();
    let dns = ou
        .add_users(
            sams.iter()
                .map(|s| NewUser::new(s.clone(), s.clone()))
                .collect(),
            3,
        )
        .await;
    let keys: Vec<UserKey> = sams.iter().map(UserKey::new).collect();
    let snapshot_after = |saved: Vec<u8>| {
        let env = env.clone();
        let base = ou.dn.clone();
        let keys = keys.clone();
        async move {
            let s = AdSink::builder(sink_config(&env, &base)).build().unwrap();
            s.resume(saved).await.unwrap();
            s.prefetch(&keys).await.unwrap();
            s
        }
    };

    // Ours, then someone else's, between the prefetch and the snapshot.
    let sink = AdSink::builder(sink_config(&env, &ou.dn)).build().unwrap();
    sink.prefetch(&keys).await.unwrap();
    sink.put(&keys[0], &jpeg(1)).await.unwrap();
    ou.set_photo(&dns[1], &jpeg(2)).await;
    let saved = sink.snapshot().await.unwrap().unwrap();
    let next = snapshot_after(saved).await;
    let read = next.last_read().unwrap();
    assert!(!read.full, "{read:?}");
    assert!(
        read.entries >= 2,
        "it reads both changes since the run started: {read:?}"
    );
    assert!(shows(&next.current(&keys[0]).await.unwrap(), &jpeg(1)));
    assert!(
        shows(&next.current(&keys[1]).await.unwrap(), &jpeg(2)),
        "the other change is seen"
    );
    assert_eq!(next.current(&keys[2]).await.unwrap(), None);

    // Only ours: the next run reads nothing.
    next.put(&keys[2], &jpeg(3)).await.unwrap();
    next.delete(&keys[0]).await.unwrap();
    let saved = next.snapshot().await.unwrap().unwrap();
    let after = snapshot_after(saved).await;
    let read = after.last_read().unwrap();
    assert_eq!((read.full, read.entries), (false, 0), "{read:?}");
    assert!(shows(&after.current(&keys[2]).await.unwrap(), &jpeg(3)));
    assert_eq!(after.current(&keys[0]).await.unwrap(), None);

    // A write of the photo the sink already knows may change nothing on the DC (no USN):
    // it cannot vouch for the interval, so the next run reads it again.
    after.put(&keys[2], &jpeg(3)).await.unwrap();
    let saved = after.snapshot().await.unwrap().unwrap();
    let again = snapshot_after(saved).await;
    let read = again.last_read().unwrap();
    assert!(!read.full, "{read:?}");
    assert!(shows(&again.current(&keys[2]).await.unwrap(), &jpeg(3)));

    // A write the DC refuses changes nothing in the snapshot.
    let saved = again.snapshot().await.unwrap().unwrap();
    let lax = AdSink::builder(sink_config(&env, &ou.dn))
        .max_bytes(200_000)
        .build()
        .unwrap();
    lax.resume(saved).await.unwrap();
    lax.prefetch(&keys).await.unwrap();
    let e = lax
        .put(&keys[1], &Bytes::from(vec![0xFFu8; 102_401]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidPhoto, "{e}");
    assert!(shows(&lax.current(&keys[1]).await.unwrap(), &jpeg(2)));
    let next = snapshot_after(lax.snapshot().await.unwrap().unwrap()).await;
    assert!(!next.last_read().unwrap().full);
    assert!(shows(&next.current(&keys[1]).await.unwrap(), &jpeg(2)));
    ou.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// Per-user refusals: a least-privilege account delegated "write thumbnailPhoto" on an OU.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegated_account_writes_everyone_but_the_two_it_may_not() {
    let env = need_env!();
    let Some(d) = delegate(&env) else { return };
    let (ou, sams, dns) = delegated_fixture(&env, &d, "dlg", 6).await;
    let mut source = MemorySource::new();
    for (i, s) in sams.iter().chain(&d.denied).enumerate() {
        source.insert(s.as_str(), testimage::photo_jpeg(120, 150, 300 + i as u32));
    }
    // The sink searches the whole delegated OU: the denied users are there.
    let cfg = LdapConfig::new(&env.ldaps_url, &d.ou)
        .ca_file(&env.ca)
        .simple_bind(&d.dn, Secret::from_file(&d.pw_file).unwrap())
        .operation_timeout(Duration::from_secs(60));
    let sink = Arc::new(AdSink::builder(cfg).build().unwrap());
    let report = Engine::new(source)
        .with_sink(sink, Profile::ad_thumbnail())
        .with_concurrency(4)
        .run()
        .await
        .unwrap();
    assert!(report.aborted.is_none(), "{report}");
    assert!(report.aborted.is_none() && report.failed() > 0, "{report}");
    for s in &sams {
        assert_eq!(outcome(&report, s).status, Status::Done, "{report}");
    }
    for dn in &dns {
        let p = ou
            .photo(dn)
            .await
            .unwrap_or_else(|| panic!("{dn}: no photo"));
        assert!(p.starts_with(&[0xFF, 0xD8]), "{dn}");
    }
    for u in &d.denied {
        let o = outcome(&report, u);
        assert_eq!(o.status, Status::Failed, "{o:?}");
        assert_eq!(o.error_kind, Some(ErrorKind::PermissionDenied), "{o:?}");
        let msg = o.message.as_deref().unwrap_or_default();
        assert!(
            msg.contains(&format!("no write access to thumbnailPhoto on CN={u},")),
            "{msg}"
        );
        assert!(msg.contains("AdminSDHolder"), "{msg}");
        assert!(ou.photo(&format!("CN={u},{}", d.ou)).await.is_none(), "{u}");
    }
    let summary = report.to_string();
    for u in &d.denied {
        assert!(summary.contains(u.as_str()), "{summary}");
    }
    ou.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// Faults: a server that never answers, a DC that goes down mid-run.

/// A TCP server that accepts every connection and never sends a byte.
async fn black_hole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_ends_bind_search_and_the_run_with_a_timeout() {
    let (addr, task) = black_hole().await;
    let url = format!("ldap://{addr}");
    let t = Duration::from_millis(700);
    let bounded = Duration::from_secs(5);
    let key = UserKey::new("ann");
    // A bind that gets no answer.
    let cfg = LdapConfig::new(&url, "DC=example,DC=test")
        .allow_plain(true)
        .simple_bind("CN=x,DC=example,DC=test", Secret::new("pw"))
        .connect_timeout(t)
        .operation_timeout(t);
    let sink = AdSink::builder(cfg.clone()).build().unwrap();
    let t0 = Instant::now();
    let e = sink.check().await.unwrap_err();
    assert!(t0.elapsed() < bounded, "{:?}", t0.elapsed());
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("no answer within"), "{e}");
    // A search (anonymous: no bind before it) that gets no answer.
    let anon = LdapConfig::new(&url, "DC=example,DC=test")
        .allow_plain(true)
        .connect_timeout(t)
        .operation_timeout(t);
    let sink = AdSink::builder(anon.clone()).build().unwrap();
    let t0 = Instant::now();
    let e = sink.current(&key).await.unwrap_err();
    assert!(t0.elapsed() < bounded, "{:?}", t0.elapsed());
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("no answer from"), "{e}");
    // TLS to it: the handshake gets no answer.
    let tls = LdapConfig::new(format!("ldaps://{addr}"), "DC=example,DC=test")
        .connect_timeout(t)
        .operation_timeout(t);
    let t0 = Instant::now();
    let e = AdSink::builder(tls)
        .build()
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert!(t0.elapsed() < bounded, "{:?}", t0.elapsed());
    assert!(e.to_string().contains("within"), "{e}");
    // A whole run: it stops at the prefetch with that message, in bounded time.
    let mut source = MemorySource::new();
    source.insert("ann", testimage::photo_jpeg(64, 80, 1));
    let sink = Arc::new(AdSink::builder(cfg).build().unwrap());
    let t0 = Instant::now();
    let e = Engine::new(source)
        .with_sink(sink, Profile::ad_thumbnail())
        .with_retry(RetryPolicy::default().with_max_retries(1))
        .run()
        .await
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(e.to_string().contains("no answer"), "{e}");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_mid_run_times_out_the_writes_and_stops_the_run() {
    let env = need_env!();
    let ou = Ou::new(&env, "hang").await;
    let id = run_id();
    let sams: Vec<String> = (0..16).map(|i| format!("hg{id}{i:02}")).collect();
    ou.add_users(
        sams.iter()
            .map(|s| NewUser::new(s.clone(), s.clone()))
            .collect(),
        4,
    )
    .await;
    let mut source = MemorySource::new();
    for (i, s) in sams.iter().enumerate() {
        source.insert(s.as_str(), testimage::photo_jpeg(100, 120, 500 + i as u32));
    }
    let proxy = Arc::new(Proxy::start(ldaps_addr(&env)).await);
    let t = Duration::from_secs(2);
    let cfg = LdapConfig::new(proxy.url(), &ou.dn)
        .ca_file(&env.ca)
        .simple_bind(
            &env.admin_upn,
            Secret::from_file(&env.admin_pw_file).unwrap(),
        )
        .connect_timeout(t)
        .operation_timeout(t);
    let sink = Arc::new(AdSink::builder(cfg).build().unwrap());
    let (w, p) = (Arc::new(AtomicUsize::new(0)), proxy.clone());
    let frozen_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let f = frozen_at.clone();
    let engine = Engine::new(source)
        .with_sink(sink, Profile::ad_thumbnail())
        .with_concurrency(2)
        .with_retry(
            RetryPolicy::default()
                .with_max_retries(2)
                .with_delays(Duration::from_millis(20), Duration::from_millis(100)),
        )
        .with_events(move |e| {
            if let Event::Written { .. } = e {
                if w.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                    *f.lock().unwrap() = Some(Instant::now());
                    p.freeze();
                }
            }
        });
    let report = engine
        .prepare()
        .await
        .unwrap()
        .apply()
        .await
        .expect_err("the run stops")
        .into_report();
    let since = frozen_at.lock().unwrap().expect("frozen").elapsed();
    // One operation timeout for the write in flight, one connect timeout for the reconnect.
    assert!(since < 3 * t + Duration::from_secs(2), "{since:?}");
    let aborted = report.aborted.as_ref().expect("the run stops");
    assert!(
        aborted.message.contains("reconnecting failed") && aborted.message.contains("within"),
        "{aborted:?}"
    );
    let timed_out = report
        .outcomes
        .iter()
        .filter(|o| o.error_kind == Some(ErrorKind::Timeout))
        .count();
    let modify_timeouts = report
        .outcomes
        .iter()
        .filter(|o| {
            o.message
                .as_deref()
                .is_some_and(|m| m.contains("no answer from"))
        })
        .count();
    assert!(
        timed_out + modify_timeouts > 0 || aborted.message.contains("no answer"),
        "{report}"
    );
    eprintln!(
        "hang test: the run stopped {since:.1?} after the server froze: {}",
        aborted.message
    );
    ou.cleanup().await;
}

/// Runs `scripts/samba-dc.sh CMD` on the tests' DC.
fn samba_dc(env: &Env, cmd: &str) -> std::process::Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/samba-dc.sh");
    let dir = env.samba_dir.as_deref().expect("USERPHOTO_AD_SAMBA_DIR");
    let out = Command::new(script)
        .arg(cmd)
        .env("USERPHOTO_SAMBA_DIR", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "samba-dc.sh {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Starts the DC again when dropped (so a failing test leaves it running for the others).
struct RestartDc<'a>(&'a Env);

impl Drop for RestartDc<'_> {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/samba-dc.sh");
        let ok = Command::new(script)
            .arg("start")
            .env(
                "USERPHOTO_SAMBA_DIR",
                self.0.samba_dir.as_deref().unwrap_or_default(),
            )
            .status()
            .is_ok_and(|s| s.success());
        if !ok && !std::thread::panicking() {
            panic!("samba-dc.sh start failed after the test stopped the DC");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dc_stopped_mid_2000_user_sync_stops_the_run_and_a_rerun_keeps_every_photo() {
    let env = need_env!();
    if env.samba_dir.is_none() {
        let msg = "no USERPHOTO_AD_SAMBA_DIR: cannot stop and start the DC";
        assert!(
            std::env::var("USERPHOTO_REQUIRE_AD").as_deref() != Ok("1"),
            "{msg}"
        );
        eprintln!("skipped: {msg}");
        return;
    }
    // It stops the DC: nobody else may use it meanwhile.
    let mut ou = Ou::exclusive_with_connections(&env, "kill", 4).await;
    let n = 2000;
    let id = run_id();
    let sams: Vec<String> = (0..n).map(|i| format!("k{id}{i:04}")).collect();
    // Everyone has an old photo: every write replaces one.
    let old: Vec<Vec<u8>> = (0..n)
        .map(|i| testimage::photo_jpeg(48, 60, 7000 + i as u32))
        .collect();
    let dns = ou
        .add_users(
            sams.iter()
                .zip(&old)
                .map(|(s, p)| NewUser::new(s.clone(), s.clone()).with("thumbnailPhoto", p.clone()))
                .collect(),
            16,
        )
        .await;
    let mut source = MemorySource::new();
    for (i, s) in sams.iter().enumerate() {
        source.insert(s.as_str(), testimage::photo_jpeg(96, 120, 9000 + i as u32));
    }
    let backup_dir = std::env::temp_dir().join(format!("userphoto-ad-kill-{id}"));
    let _ = std::fs::remove_dir_all(&backup_dir);
    let timeout = Duration::from_secs(10);
    let cfg = sink_config(&env, &ou.dn)
        .connect_timeout(timeout)
        .operation_timeout(timeout);
    let engine = |sink: Arc<AdSink>| {
        Engine::new(source.clone())
            .with_sink(sink, Profile::ad_thumbnail())
            .with_concurrency(4)
            .with_backups(userphoto::sync::BackupStore::open(&backup_dir).unwrap())
            .with_retry(
                RetryPolicy::default()
                    .with_max_retries(2)
                    .with_delays(Duration::from_millis(50), Duration::from_millis(200)),
            )
    };
    let stopped_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let (s, e2, w) = (
        stopped_at.clone(),
        env.clone(),
        Arc::new(AtomicUsize::new(0)),
    );
    let sink = Arc::new(AdSink::builder(cfg.clone()).build().unwrap());
    let first = engine(sink).with_events(move |e| {
        if let Event::Written { .. } = e {
            if w.fetch_add(1, Ordering::SeqCst) + 1 == 300 {
                *s.lock().unwrap() = Some(Instant::now());
                let env = e2.clone();
                std::thread::spawn(move || samba_dc(&env, "stop"));
            }
        }
    });
    let plan = first.prepare().await.unwrap();
    let restart = RestartDc(&env);
    let report = plan.apply().await.expect_err("the run stops").into_report();
    let since = stopped_at.lock().unwrap().expect("stopped").elapsed();
    // Give the stop its own time to finish before checking and starting again.
    while samba_dc_running(&env) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let aborted = report.aborted.as_ref().expect("the run stops");
    assert!(
        aborted.message.contains("reconnecting failed"),
        "{aborted:?}"
    );
    // samba's SIGTERM takes up to ~2 s; then the run ends within the LDAP timeout.
    assert!(since < timeout + Duration::from_secs(5), "{since:?}");
    let done1 = report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Done)
        .count();
    assert!((300..n).contains(&done1), "{done1} done before the stop");
    drop(restart);
    // The DC is back; new admin connections (the old ones died with it).
    ou.conns = vec![admin(&env).await];
    let sink = Arc::new(AdSink::builder(cfg).build().unwrap());
    let report2 = engine(sink).run().await.unwrap();
    assert!(
        report2.is_success(),
        "{}",
        report2
            .aborted
            .as_ref()
            .map(|a| a.message.clone())
            .unwrap_or_default()
    );
    let done2 = report2
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Done)
        .count();
    // A write in flight when the DC went down may have landed unanswered: the re-run then
    // finds that photo current. The photos themselves are checked below.
    assert!(done1 + done2 <= n, "{done1} + {done2} written of {n}");
    // Every photo is a new one now, and every old one it replaced is in the backups.
    let store = userphoto::sync::BackupStore::open(&backup_dir).unwrap();
    let journal = store.journal().unwrap();
    let kept: HashMap<String, Vec<String>> = journal.iter().fold(HashMap::new(), |mut m, j| {
        if let Some(o) = &j.old_sha256 {
            m.entry(j.user.as_str().to_owned())
                .or_default()
                .push(o.clone());
        }
        m
    });
    for (i, dn) in dns.iter().enumerate() {
        let now = ou
            .photo(dn)
            .await
            .unwrap_or_else(|| panic!("{dn}: no photo"));
        assert_ne!(now, old[i], "{dn} still has its old photo");
        let want = sha_hex(&old[i]);
        let shas = kept
            .get(&sams[i])
            .unwrap_or_else(|| panic!("{}: no backup", sams[i]));
        assert!(shas.contains(&want), "{}: old photo not backed up", sams[i]);
        assert_eq!(store.load(&want).unwrap(), old[i], "{}", sams[i]);
    }
    eprintln!(
        "kill test: the run stopped {since:.1?} after the stop began ({done1} written); the re-run wrote {done2}"
    );
    let _ = std::fs::remove_dir_all(&backup_dir);
    ou.cleanup().await;
}

fn samba_dc_running(env: &Env) -> bool {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/samba-dc.sh");
    Command::new(script)
        .arg("status")
        .env(
            "USERPHOTO_SAMBA_DIR",
            env.samba_dir.as_deref().unwrap_or_default(),
        )
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[cfg(feature = "gssapi")]
mod gssapi {
    use super::*;

    /// A ticket for the admin from the DC's keytab, in a cache of this test's own.
    fn kinit(env: &Env, name: &str) -> Option<String> {
        let cache = std::env::temp_dir().join(format!("userphoto-krb5cc-{name}-{}", run_id()));
        let ccname = format!("FILE:{}", cache.display());
        let st = Command::new("kinit")
            .args([
                "-k",
                "-t",
                &env.keytab,
                &format!("administrator@{}", env.realm),
            ])
            .env("KRB5_CONFIG", &env.krb5_config)
            .env("KRB5CCNAME", &ccname)
            .status();
        match st {
            Ok(s) if s.success() => Some(ccname),
            other => {
                if std::env::var("USERPHOTO_REQUIRE_AD").as_deref() == Ok("1") {
                    panic!("kinit with the DC's keytab failed: {other:?}");
                }
                eprintln!("skipped: kinit with the DC's keytab failed: {other:?}");
                None
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gssapi_over_tls_writes_102400_bytes_and_plain_refuses_large_photos() {
        let env = need_env!();
        let Some(cc) = kinit(&env, "gss") else { return };
        // The GSSAPI library reads these from the process environment.
        std::env::set_var("KRB5_CONFIG", &env.krb5_config);
        std::env::set_var("KRB5CCNAME", &cc);
        let ou = Ou::new(&env, "gss").await;
        let id = run_id();
        let dns = ou
            .add_users(
                vec![NewUser::new(format!("gss {id}"), format!("gs{id}"))],
                1,
            )
            .await;
        let key = UserKey::new(format!("gs{id}"));
        let mut big = jpeg(8).to_vec();
        big.resize(102_400, 0x11);
        let big = Bytes::from(big);

        for starttls in [false, true] {
            let url = if starttls {
                &env.ldap_url
            } else {
                &env.ldaps_url
            };
            let cfg = LdapConfig::new(url, &ou.dn)
                .starttls(starttls)
                .ca_file(&env.ca)
                .gssapi_service_host("localhost");
            let sink = AdSink::builder(cfg).build().unwrap();
            assert_eq!(sink.capabilities().max_bytes, 102_400);
            sink.put(&key, &big)
                .await
                .unwrap_or_else(|e| panic!("GSSAPI over TLS: {e}"));
            assert_eq!(ou.photo(&dns[0]).await.as_deref(), Some(&big[..]));
            sink.delete(&key).await.unwrap();
        }

        // Without TLS (SASL-sealed): photos above the SASL buffer are refused up front,
        // with the reason; small ones go through.
        let cfg = LdapConfig::new(&env.ldap_url, &ou.dn)
            .allow_plain(true)
            .gssapi_service_host("localhost");
        let sink = AdSink::builder(cfg).build().unwrap();
        assert_eq!(
            sink.capabilities().max_bytes,
            userphoto::sink::GSSAPI_PLAIN_MAX_BYTES
        );
        let e = sink.put(&key, &big).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PhotoTooLarge, "{e}");
        assert!(e.to_string().contains("SASL"), "{e}");
        match sink.put(&key, &jpeg(9)).await {
            Ok(_) => assert_eq!(ou.photo(&dns[0]).await.as_deref(), Some(&jpeg(9)[..])),
            // Samba as configured here wants TLS under a SASL bind; say what it said.
            Err(e) => eprintln!("GSSAPI without TLS refused by this DC: {e}"),
        }
        ou.cleanup().await;
    }
}
