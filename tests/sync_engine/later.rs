//! The engine, continued: the rendition cache and spill file, version-only sinks, events,
//! bad configurations, dry runs, shared decodes, writing while normalizing, the circuit
//! breaker.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renditions_beyond_the_cache_are_made_again_identically() {
    let users: Vec<String> = (0..6).map(|i| format!("u{i}")).collect();
    let source = || {
        let mut s = MemorySource::new();
        for (i, u) in users.iter().enumerate() {
            s.insert(u.as_str(), photo(i as u32));
        }
        s
    };
    let cached = Arc::new(MemorySink::new(102_400).with_users(users.clone()));
    let uncached = Arc::new(MemorySink::new(102_400).with_users(users.clone()));
    let first = Engine::new(source())
        .with_sink(cached.clone(), Profile::ad_thumbnail())
        .run()
        .await
        .unwrap();
    assert!(first.is_success(), "{first}");
    let r = Engine::new(source())
        .with_sink(uncached.clone(), Profile::ad_thumbnail())
        .with_rendition_cache(0)
        .run()
        .await
        .unwrap();
    assert!(r.is_success(), "{r}");
    for u in &users {
        assert_eq!(cached.photo(&k(u)), uncached.photo(&k(u)), "{u}");
        assert!(cached.photo(&k(u)).is_some());
    }
}

/// Users whose sink holds another photo are normalized while planning (to compare); with no
/// room in the memory cache their renditions wait in the temporary file, so each photo is
/// decoded once, and what is written is what a run with the cache writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renditions_beyond_the_cache_wait_on_disk_and_are_decoded_once() {
    let users: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    let source = || {
        let mut s = MemorySource::new();
        for (i, u) in users.iter().enumerate() {
            s.insert(u.as_str(), photo(i as u32));
        }
        s
    };
    let holding = || {
        let mut sink = MemorySink::new(102_400);
        for u in &users {
            sink = sink.with_photo(u.as_str(), Bytes::from_static(b"an older photo"));
        }
        Arc::new(sink)
    };
    let (cached, spilled) = (holding(), holding());
    let r = Engine::new(source())
        .with_sink(cached.clone(), Profile::ad_thumbnail())
        .run()
        .await
        .unwrap();
    assert_eq!(r.sinks["memory"].put, 6, "{r}");
    let r = Engine::new(source())
        .with_sink(spilled.clone(), Profile::ad_thumbnail())
        .with_rendition_cache(0)
        .run()
        .await
        .unwrap();
    assert!(r.is_success(), "{r}");
    assert_eq!(r.sinks["memory"].put, 6, "{r}");
    assert_eq!(r.timings.decoded, 6, "decoded once each: {:?}", r.timings);
    for u in &users {
        assert!(cached.photo(&k(u)).is_some());
        assert_eq!(cached.photo(&k(u)), spilled.photo(&k(u)), "{u}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_only_sink_is_skipped_through_the_state_store() {
    let tmp_dir = tmp("version");
    let dir = tmp_dir.path();
    let state = dir.join("s.redb");
    let mut probe = Probe::new(MemorySink::new(4_000_000).with_users(["alice"]));
    probe.version_only = true;
    let probe = Arc::new(probe);
    let run = || async {
        Engine::new(MemorySource::new().with_photo("alice", photo(1)))
            .with_sink(probe.clone(), Profile::graph())
            .with_state(StateStore::open(&state).unwrap())
            .run()
            .await
            .unwrap()
    };
    let r1 = run().await;
    assert_eq!(r1.sinks["probe"].put, 1);
    assert_eq!(
        outcome(&r1, "alice").reason,
        Reason::NotRecorded,
        "without a record, a re-encoding sink is written without being read first"
    );
    let r2 = run().await;
    assert_eq!(r2.sinks["probe"].put, 0, "{r2}");
    assert_eq!(r2.timings.decoded, 0);
    // Someone else changes the photo in the directory: its version moves, so it is ours no
    // more and the next run writes it again.
    probe
        .inner
        .put(&k("alice"), &Bytes::from(photo(5)))
        .await
        .unwrap();
    let r3 = run().await;
    assert_eq!(outcome(&r3, "alice").reason, Reason::Changed);
    assert_eq!(r3.sinks["probe"].put, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_the_stages_and_count_every_change() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e2 = events.clone();
    let sink = Arc::new(MemorySink::new(102_400).with_users(["a", "b", "c"]));
    let r = Engine::new(
        MemorySource::new()
            .with_photo("a", photo(1))
            .with_photo("b", photo(2))
            .with_photo("c", photo(3)),
    )
    .with_sink(sink, Profile::ad_thumbnail())
    .with_events(move |e| e2.lock().unwrap().push(e.clone()))
    .run()
    .await
    .unwrap();
    assert!(r.is_success());
    let ev = events.lock().unwrap();
    let stages: Vec<Stage> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Stage { stage, .. } => Some(*stage),
            _ => None,
        })
        .collect();
    assert_eq!(
        stages,
        [Stage::List, Stage::Read, Stage::Normalize, Stage::Apply]
    );
    let written: Vec<usize> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Written { done, .. } => Some(*done),
            _ => None,
        })
        .collect();
    assert_eq!(written.len(), 3);
    assert_eq!(*written.iter().max().unwrap(), 3);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Planned {
            changes: 3,
            items: 3
        }
    )));
    // Events serialize (for tools that log them as JSON lines).
    assert!(serde_json::to_string(&ev[0])
        .unwrap()
        .contains("\"event\":\"stage\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configurations_are_refused_before_anything_happens() {
    let sink = Arc::new(MemorySink::new(102_400).with_users(["a"]));
    let e = Engine::new(MemorySource::new())
        .prepare()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let e = Engine::new(MemorySource::new())
        .with_sink(sink.clone(), Profile::graph())
        .prepare()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("500000"), "{e}");
    let e = Engine::new(MemorySource::new())
        .with_sink(sink.clone(), Profile::ad_thumbnail())
        .with_sink(sink.clone(), Profile::ad_large())
        .prepare()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_change_nothing_and_report_the_plan() {
    let sink = Arc::new(MemorySink::new(102_400).with_users(["a"]));
    let r = Engine::new(MemorySource::new().with_photo("a", photo(1)))
        .with_sink(sink.clone(), Profile::ad_thumbnail())
        .dry_run()
        .await
        .unwrap();
    assert!(r.dry_run);
    assert_eq!(outcome(&r, "a").status, Status::Planned);
    assert_eq!(sink.photo(&k("a")), None);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["outcomes"][0]["status"], "planned");
    assert_eq!(json["sinks"]["memory"]["put"], 1);
    assert!(json["timings"]["normalize_ms"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_decode_serves_two_sinks() {
    let ad = Arc::new(MemorySink::new(102_400).with_users(["a"]));
    #[derive(Debug)]
    struct Named(MemorySink);
    #[async_trait]
    impl DirectorySink for Named {
        fn name(&self) -> &str {
            "graph-like"
        }
        fn capabilities(&self) -> SinkCapabilities {
            self.0.capabilities()
        }
        async fn current(&self, key: &UserKey) -> Result<Option<CurrentPhoto>> {
            self.0.current(key).await
        }
        async fn put(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>> {
            self.0.put(key, jpeg).await
        }
        async fn delete(&self, key: &UserKey) -> Result<()> {
            self.0.delete(key).await
        }
    }
    let big = Arc::new(Named(MemorySink::new(4_000_000).with_users(["a"])));
    let r = Engine::new(MemorySource::new().with_photo("a", photo(1)))
        .with_sink(ad.clone(), Profile::ad_thumbnail())
        .with_sink(big.clone(), Profile::graph())
        .run()
        .await
        .unwrap();
    assert!(r.is_success(), "{r}");
    assert_eq!(
        r.timings.decoded, 1,
        "one load and decode for both profiles"
    );
    assert!(ad.photo(&k("a")).unwrap().len() <= 10_000);
    assert!(big.0.photo(&k("a")).unwrap().len() > ad.photo(&k("a")).unwrap().len());

    // Without room to keep the second sink's rendition until its write, that sink makes it
    // again: two decodes, the same bytes.
    let (ad2, big2) = (
        Arc::new(MemorySink::new(102_400).with_users(["a"])),
        Arc::new(Named(MemorySink::new(4_000_000).with_users(["a"]))),
    );
    let r = Engine::new(MemorySource::new().with_photo("a", photo(1)))
        .with_sink(ad2.clone(), Profile::ad_thumbnail())
        .with_sink(big2.clone(), Profile::graph())
        .with_rendition_cache(0)
        .run()
        .await
        .unwrap();
    assert!(r.is_success(), "{r}");
    assert_eq!(r.timings.decoded, 2, "{:?}", r.timings);
    assert_eq!(ad2.photo(&k("a")), ad.photo(&k("a")));
    assert_eq!(big2.0.photo(&k("a")), big.0.photo(&k("a")));
}

/// A source that notes when each load ended; once `hold_last` is set, the load of the last
/// key waits until a put has been made.
#[derive(Debug)]
struct SlowSource {
    inner: MemorySource,
    last: UserKey,
    hold_last: std::sync::OnceLock<Arc<tokio::sync::Semaphore>>,
    loaded: Mutex<Vec<Instant>>,
}

#[async_trait]
impl PhotoSource for SlowSource {
    fn name(&self) -> &str {
        "slow"
    }
    fn list(&self) -> futures::stream::BoxStream<'_, Result<PhotoRef>> {
        self.inner.list()
    }
    async fn load(&self, photo: &PhotoRef, limits: &Limits) -> Result<Bytes> {
        if let (true, Some(puts)) = (photo.key == self.last, self.hold_last.get()) {
            puts.acquire().await.unwrap().forget();
        }
        let b = self.inner.load(photo, limits).await;
        self.loaded.lock().unwrap().push(Instant::now());
        b
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_writes_while_it_normalizes_and_a_prepared_plan_is_complete() {
    let users: Vec<String> = (0..24).map(|i| format!("u{i:02}")).collect();
    let mut src = MemorySource::new().with_photo("zz-bad", b"not an image".to_vec());
    for (i, u) in users.iter().enumerate() {
        src = src.with_photo(u.as_str(), photo(i as u32));
    }
    let all: Vec<&str> = users.iter().map(String::as_str).chain(["zz-bad"]).collect();
    let source = Arc::new(SlowSource {
        inner: src,
        last: k("zz-bad"),
        hold_last: std::sync::OnceLock::new(),
        loaded: Mutex::new(Vec::new()),
    });
    let probe = Arc::new(Probe::new(
        MemorySink::new(102_400).with_users(all.iter().copied()),
    ));
    let engine = Engine::new(source.clone())
        .with_sink(probe.clone(), Profile::ad_thumbnail())
        .with_threads(1);

    // `prepare` normalizes everything first: its plan names every rendition and fails the
    // invalid photo.
    let prepared = engine.prepare().await.unwrap();
    let puts: Vec<_> = prepared
        .plan()
        .items
        .iter()
        .filter(|i| i.action == Action::Put)
        .collect();
    assert_eq!(puts.len(), 24);
    assert!(puts.iter().all(|i| i.rendition_sha256.is_some()));
    let bad = prepared
        .plan()
        .items
        .iter()
        .find(|i| i.key == k("zz-bad"))
        .unwrap();
    assert_eq!(
        (bad.action, bad.reason),
        (Action::Fail, Reason::InvalidImage)
    );
    drop(prepared);
    assert_eq!(probe.puts.load(Ordering::SeqCst), 0);
    source.loaded.lock().unwrap().clear();

    // `run` starts writing before the last photo is loaded, and reports the same outcomes:
    // the last photo's load now waits for a put (an engine that normalized every photo
    // before writing would wait for ever: the timeout makes that a failure).
    source.hold_last.set(probe.put_signal.clone()).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(60), engine.run())
        .await
        .expect("no write was made before the last photo was normalized")
        .unwrap();
    let first_put = *probe.put_times.lock().unwrap().iter().min().unwrap();
    let last_load = *source.loaded.lock().unwrap().iter().max().unwrap();
    assert!(
        first_put < last_load,
        "the first write waited for every photo to be normalized"
    );
    assert_eq!(r.sinks["probe"].put, 24, "{r}");
    assert_eq!(
        r.timings.decoded, 25,
        "each photo decoded once: {:?}",
        r.timings
    );
    let bad = outcome(&r, "zz-bad");
    assert_eq!(
        (bad.status, bad.reason),
        (Status::Failed, Reason::InvalidImage)
    );
    for u in &users {
        let o = outcome(&r, u);
        assert_eq!((o.status, o.reason), (Status::Done, Reason::New), "{u}");
        let stored = probe.inner.photo(&k(u)).unwrap();
        assert_eq!(o.bytes, Some(stored.len()), "{u}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_recorded_without_a_tag_adopts_the_tag_seen_next() {
    let tmp_dir = tmp("adopt");
    let dir = tmp_dir.path();
    let state = dir.join("s.redb");
    let mut probe = Probe::new(MemorySink::new(4_000_000).with_users(["alice", "bob"]));
    probe.version_only = true;
    probe.no_tag_on_put = true;
    let probe = Arc::new(probe);
    let run = || async {
        Engine::new(
            MemorySource::new()
                .with_photo("alice", photo(1))
                .with_photo("bob", photo(2)),
        )
        .with_sink(probe.clone(), Profile::graph())
        .with_state(StateStore::open(&state).unwrap())
        .run()
        .await
        .unwrap()
    };
    let r1 = run().await;
    assert_eq!(r1.sinks["probe"].put, 2);
    let rec = |u: &str| {
        StateStore::open(&state)
            .unwrap()
            .get("probe", &k(u))
            .unwrap()
            .unwrap()
    };
    assert_eq!(rec("alice").version, None, "no tag was read after the put");

    // The documented trade-off: a change made by someone else before the next run is
    // adopted with the tag (bob), like our own upload (alice).
    probe
        .inner
        .put(&k("bob"), &Bytes::from(photo(9)))
        .await
        .unwrap();
    let r2 = run().await;
    assert_eq!(r2.sinks["probe"].put, 0, "{r2}");
    assert_eq!(outcome(&r2, "alice").reason, Reason::Unchanged);
    assert_eq!(r2.timings.decoded, 0);
    let seen = probe.inner.current(&k("alice")).await.unwrap().unwrap();
    assert_eq!(
        rec("alice").version,
        seen.version,
        "the tag seen is recorded"
    );

    // From then on the tag is compared: a later change is found and written again.
    probe
        .inner
        .put(&k("alice"), &Bytes::from(photo(7)))
        .await
        .unwrap();
    let r3 = run().await;
    assert_eq!(outcome(&r3, "alice").reason, Reason::Changed);
    assert_eq!(outcome(&r3, "bob").reason, Reason::Unchanged);
    assert_eq!(r3.sinks["probe"].put, 1);
}

/// A run writing one user at a time through `probe`, stopping after `limit` failures in a
/// row, with quick retries.
async fn run_one_at_a_time(
    source: MemorySource,
    probe: &Arc<Probe>,
    limit: usize,
) -> Result<userphoto::sync::Report, userphoto::sync::RunError> {
    Engine::new(source)
        .with_sink(probe.clone(), Profile::ad_thumbnail())
        .with_concurrency(1)
        .with_max_consecutive_failures(limit)
        .with_retry(fast_retries())
        .run()
        .await
}

fn users_source(n: usize) -> (Vec<String>, MemorySource) {
    let users: Vec<String> = (0..n).map(|i| format!("u{i:03}")).collect();
    let mut source = MemorySource::new();
    for (i, u) in users.iter().enumerate() {
        source.insert(u.as_str(), photo(i as u32));
    }
    (users, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_for_one_user_fails_that_user_and_the_run_goes_on() {
    let (users, source) = users_source(30);
    let probe = Arc::new(
        Probe::new(MemorySink::new(102_400).with_users(users.clone())).refusing(["u003", "u017"]),
    );
    let r = Engine::new(source)
        .with_sink(probe.clone(), Profile::ad_thumbnail())
        .with_concurrency(2)
        .with_retry(fast_retries())
        .run()
        .await
        .unwrap();
    assert!(r.aborted.is_none(), "{:?}", r.aborted);
    assert!(r.aborted.is_none() && r.failed() > 0);
    assert_eq!(r.sinks["probe"].put, 28);
    assert_eq!(r.sinks["probe"].failed, 2);
    for u in ["u003", "u017"] {
        let o = outcome(&r, u);
        assert_eq!(o.status, Status::Failed);
        assert_eq!(o.reason, Reason::Refused);
        assert_eq!(o.error_kind, Some(ErrorKind::PermissionDenied));
        assert_eq!(o.attempts, 1, "a refusal is not retried");
    }
    let summary = r.to_string();
    assert!(
        summary.contains("u003") && summary.contains("u017") && summary.contains("no write access"),
        "{summary}"
    );
    for u in &users {
        let written = probe.inner.photo(&u.as_str().into()).is_some();
        assert_eq!(written, u != "u003" && u != "u017", "{u}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_stops_a_run_whose_writes_all_fail() {
    let (users, source) = users_source(60);
    let probe = Arc::new(
        Probe::new(MemorySink::new(102_400).with_users(users.clone()))
            .refusing(users.iter().map(String::as_str)),
    );
    let r = run_one_at_a_time(source, &probe, 10)
        .await
        .expect_err("the breaker stops the run")
        .into_report();
    let a = r.aborted.as_ref().expect("the breaker stops the run");
    assert_eq!(a.kind, ErrorKind::PermissionDenied);
    assert!(
        a.message.contains("10 writes in a row failed") && a.message.contains("no write access"),
        "the message says what it saw: {}",
        a.message
    );
    assert_eq!(
        probe.puts.load(Ordering::SeqCst),
        10,
        "nothing sent after the 10th"
    );
    assert_eq!(r.sinks["probe"].failed, 10);
    assert_eq!(r.sinks["probe"].not_attempted, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_resets_the_circuit_breaker_and_zero_turns_it_off() {
    // Every third user refused: in key order never two in a row; writes finish out of key
    // order (a few are prepared at once), but never six refusals in a row.
    let (users, source) = users_source(42);
    let odd: Vec<&str> = users
        .iter()
        .skip(2)
        .step_by(3)
        .map(String::as_str)
        .collect();
    let probe = Arc::new(
        Probe::new(MemorySink::new(102_400).with_users(users.clone())).refusing(odd.clone()),
    );
    let r = run_one_at_a_time(source, &probe, 6).await.unwrap();
    assert!(r.aborted.is_none(), "{:?}", r.aborted);
    assert_eq!((r.sinks["probe"].put, r.sinks["probe"].failed), (28, 14));

    // With the breaker off, a sink that refuses everyone is tried for everyone.
    let (users, source) = users_source(70);
    let probe = Arc::new(
        Probe::new(MemorySink::new(102_400).with_users(users.clone()))
            .refusing(users.iter().map(String::as_str)),
    );
    let r = run_one_at_a_time(source, &probe, 0).await.unwrap();
    assert!(r.aborted.is_none());
    assert_eq!(probe.puts.load(Ordering::SeqCst), 70);
    assert!(r.aborted.is_none() && r.failed() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_and_rejected_photos_do_not_trip_the_breaker() {
    let (users, source) = users_source(12);
    let probe = Arc::new(
        Probe::new(MemorySink::new(102_400).with_users(users.clone())).failing(
            (0..8).map(|_| Error::new(ErrorKind::InvalidPhoto, "constraintViolation (19)")),
        ),
    );
    let r = run_one_at_a_time(source, &probe, 3).await.unwrap();
    assert!(r.aborted.is_none(), "{:?}", r.aborted);
    assert_eq!((r.sinks["probe"].put, r.sinks["probe"].failed), (4, 8));
}
