//! The sync engine on the memory sink and on a probe sink that fails, throttles and counts
//! on demand: planning, skip-unchanged, leavers, withheld, retries, run-level stops,
//! backups and restore, concurrency, events and the state store.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use userphoto::normalize::Limits;
use userphoto::normalize::{testimage, Profile};
use userphoto::sink::{CurrentPhoto, DirectorySink, MemorySink, SinkCapabilities};
use userphoto::source::{MemorySource, PhotoRef, PhotoSource};
use userphoto::sync::{
    Action, BackupStore, Engine, Event, Policy, Reason, RetryPolicy, Stage, StateStore, Status,
};
use userphoto::{Error, ErrorKind, Result, UserKey};

fn photo(seed: u32) -> Vec<u8> {
    testimage::photo_jpeg(320, 400, seed)
}

/// A fresh folder, removed when the test ends.
fn tmp(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("userphoto-engine-{name}-"))
        .tempdir()
        .unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy::default().with_delays(Duration::from_millis(5), Duration::from_millis(20))
}

fn k(s: &str) -> UserKey {
    UserKey::new(s)
}

/// A sink that wraps a memory sink: it can fail calls from a queue of errors, hold calls until
/// enough are in flight, hide bytes (like Graph, which returns only a version tag), count
/// calls in flight and signal each put.
#[derive(Debug)]
struct Probe {
    inner: MemorySink,
    put_errors: Mutex<VecDeque<Error>>,
    /// Users whose writes are refused (PermissionDenied), every time.
    refused: Mutex<std::collections::HashSet<String>>,
    /// Calls wait until this many are in flight at once (then the gate stays open).
    gate_at: Option<usize>,
    gate: tokio::sync::Semaphore,
    gate_open: std::sync::atomic::AtomicBool,
    /// A permit per put made.
    put_signal: Arc<tokio::sync::Semaphore>,
    version_only: bool,
    /// `put` returns no version tag (like the Graph sink, which does not read it back).
    no_tag_on_put: bool,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    puts: AtomicUsize,
    put_times: Mutex<Vec<Instant>>,
}

impl Probe {
    fn new(inner: MemorySink) -> Self {
        Self {
            inner,
            put_errors: Mutex::new(VecDeque::new()),
            refused: Mutex::new(Default::default()),
            gate_at: None,
            gate: tokio::sync::Semaphore::new(0),
            gate_open: std::sync::atomic::AtomicBool::new(false),
            put_signal: Arc::new(tokio::sync::Semaphore::new(0)),
            version_only: false,
            no_tag_on_put: false,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            puts: AtomicUsize::new(0),
            put_times: Mutex::new(Vec::new()),
        }
    }
    fn failing(self, errors: impl IntoIterator<Item = Error>) -> Self {
        self.put_errors.lock().unwrap().extend(errors);
        self
    }
    fn refusing<'a>(self, users: impl IntoIterator<Item = &'a str>) -> Self {
        self.refused
            .lock()
            .unwrap()
            .extend(users.into_iter().map(str::to_owned));
        self
    }
    async fn enter(&self) -> impl Drop + '_ {
        struct Out<'a>(&'a AtomicUsize);
        impl Drop for Out<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(n, Ordering::SeqCst);
        let out = Out(&self.in_flight);
        if let Some(at) = self.gate_at {
            if n >= at && !self.gate_open.swap(true, Ordering::SeqCst) {
                self.gate
                    .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
            }
            drop(self.gate.acquire().await.unwrap());
        }
        out
    }
}

#[async_trait]
impl DirectorySink for Probe {
    fn name(&self) -> &str {
        "probe"
    }
    fn capabilities(&self) -> SinkCapabilities {
        let mut c = self.inner.capabilities();
        c.returns_bytes = !self.version_only;
        c
    }
    async fn current(&self, key: &UserKey) -> Result<Option<CurrentPhoto>> {
        let _g = self.enter().await;
        let c = self.inner.current(key).await?;
        Ok(c.map(|c| {
            if self.version_only {
                CurrentPhoto::from_version(c.version.unwrap())
            } else {
                c
            }
        }))
    }
    async fn fetch(&self, key: &UserKey) -> Result<Option<Bytes>> {
        let _g = self.enter().await;
        Ok(self.inner.current(key).await?.and_then(|c| c.bytes))
    }
    async fn put(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>> {
        let _g = self.enter().await;
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.put_times.lock().unwrap().push(Instant::now());
        self.put_signal.add_permits(1);
        if let Some(e) = self.put_errors.lock().unwrap().pop_front() {
            return Err(e.with_user(key.clone()));
        }
        if self.refused.lock().unwrap().contains(key.as_str()) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("no write access to the photo of {key}"),
            )
            .with_backend("probe")
            .with_operation("put")
            .with_user(key.clone()));
        }
        let tag = self.inner.put(key, jpeg).await?;
        Ok(if self.no_tag_on_put { None } else { tag })
    }
    async fn delete(&self, key: &UserKey) -> Result<()> {
        let _g = self.enter().await;
        self.inner.delete(key).await
    }
    async fn users_with_photos(&self) -> Result<Vec<UserKey>> {
        self.inner.users_with_photos().await
    }
}

fn outcome<'a>(r: &'a userphoto::sync::Report, key: &str) -> &'a userphoto::sync::Outcome {
    r.outcomes
        .iter()
        .find(|o| o.key == k(key))
        .unwrap_or_else(|| panic!("no outcome for {key}: {:#?}", r.outcomes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_writes_second_run_skips_without_decoding() {
    let tmp_dir = tmp("rerun");
    let dir = tmp_dir.path();
    let sink = Arc::new(MemorySink::new(102_400).with_users(["alice", "bob", "carol"]));
    let source = || {
        MemorySource::new()
            .with_photo("alice", photo(1))
            .with_photo("bob", photo(2))
    };
    let engine = |state: &std::path::Path| {
        Engine::new(source())
            .with_sink(sink.clone(), Profile::ad_thumbnail())
            .with_state(StateStore::open(state).unwrap())
    };
    let state = dir.join("state.redb");
    let r1 = engine(&state).run().await.unwrap();
    assert!(r1.is_success(), "{r1}");
    assert_eq!(r1.sinks["memory"].put, 2);
    assert_eq!(r1.timings.decoded, 2);
    let written = sink.photo(&k("alice")).expect("alice written");
    assert!(written.len() <= 10_000);
    assert_eq!(&written[..2], b"\xFF\xD8");
    // Carol is in the directory without a photo and not in the source: nothing to do.
    assert!(r1.outcomes.iter().all(|o| o.key != k("carol")));

    let r2 = engine(&state).run().await.unwrap();
    assert_eq!(r2.sinks["memory"].put, 0, "{r2}");
    assert_eq!(r2.sinks["memory"].unchanged, 2);
    assert_eq!(
        r2.timings.decoded, 0,
        "a re-run over unchanged sources decodes nothing"
    );
    assert_eq!(r2.timings.reused, 2);
    assert_eq!(sink.photo(&k("alice")), Some(written));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_state_store_unchanged_users_are_found_by_bytes() {
    let sink = Arc::new(MemorySink::new(102_400).with_users(["alice", "bob"]));
    let source = MemorySource::new()
        .with_photo("alice", photo(1))
        .with_photo("bob", photo(2));
    let first = Engine::new(source)
        .with_sink(sink.clone(), Profile::ad_thumbnail())
        .run()
        .await
        .unwrap();
    assert!(first.is_success(), "{first}");
    // Bob's photo changes: his is the only change.
    let changed = MemorySource::new()
        .with_photo("alice", photo(1))
        .with_photo("bob", photo(3));
    let engine = Engine::new(changed).with_sink(sink.clone(), Profile::ad_thumbnail());
    let p = engine.prepare().await.unwrap();
    let changes: Vec<_> = p.plan().changes().collect();
    assert_eq!(changes.len(), 1, "{:#?}", p.plan());
    assert_eq!(
        (&changes[0].key, changes[0].action, changes[0].reason),
        (&k("bob"), Action::Put, Reason::Changed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_is_removed_and_leavers_are_kept_unless_asked() {
    let old = Bytes::from(photo(9));
    let sink = || {
        Arc::new(
            MemorySink::new(102_400)
                .with_users(["alice"])
                .with_photo("wanda", old.clone())
                .with_photo("leo", old.clone()),
        )
    };
    let source = || {
        MemorySource::new()
            .with_photo("alice", photo(1))
            .with_withheld("wanda")
    };
    let s = sink();
    let r = Engine::new(source())
        .with_sink(s.clone(), Profile::ad_thumbnail())
        .run()
        .await
        .unwrap();
    assert_eq!(outcome(&r, "wanda").action, Action::Delete);
    assert_eq!(outcome(&r, "wanda").reason, Reason::Withheld);
    assert_eq!(s.photo(&k("wanda")), None, "withheld photo removed");
    assert_eq!(outcome(&r, "leo").reason, Reason::Leaver);
    assert_eq!(outcome(&r, "leo").action, Action::Skip);
    assert_eq!(s.photo(&k("leo")), Some(old.clone()), "leaver kept");
    assert_eq!(r.sinks["memory"].leavers_kept, 1);

    let s = sink();
    let r = Engine::new(source())
        .with_sink(s.clone(), Profile::ad_thumbnail())
        .with_policy(Policy::default().with_remove_leavers(true))
        .run()
        .await
        .unwrap();
    assert_eq!(outcome(&r, "leo").action, Action::Delete);
    assert_eq!(s.photo(&k("leo")), None, "leaver removed when asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_cannot_be_listed_whole_never_removes_leavers() {
    #[derive(Debug)]
    struct HalfBroken(MemorySource);
    #[async_trait]
    impl userphoto::source::PhotoSource for HalfBroken {
        fn name(&self) -> &str {
            "half"
        }
        fn list(&self) -> futures::stream::BoxStream<'_, Result<userphoto::source::PhotoRef>> {
            use futures::StreamExt;
            self.0
                .list()
                .chain(futures::stream::iter([Err(Error::new(
                    ErrorKind::Io,
                    "share unreachable",
                ))]))
                .boxed()
        }
        async fn load(
            &self,
            r: &userphoto::source::PhotoRef,
            l: &userphoto::normalize::Limits,
        ) -> Result<Bytes> {
            self.0.load(r, l).await
        }
    }
    let s = Arc::new(
        MemorySink::new(102_400)
            .with_users(["alice"])
            .with_photo("leo", photo(9)),
    );
    let r = Engine::new(HalfBroken(
        MemorySource::new().with_photo("alice", photo(1)),
    ))
    .with_sink(s.clone(), Profile::ad_thumbnail())
    .with_policy(Policy::default().with_remove_leavers(true))
    .run()
    .await
    .unwrap();
    assert!(s.photo(&k("leo")).is_some(), "leaver kept");
    assert_eq!(outcome(&r, "leo").action, Action::Skip);
    assert!(outcome(&r, "leo")
        .message
        .as_deref()
        .unwrap()
        .contains("not removed"));
    assert_eq!(r.source_failures.len(), 1);
    assert!(
        r.aborted.is_none() && r.failed() > 0,
        "a source failure is a failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_leavers_with_an_empty_source_is_refused() {
    let s = Arc::new(MemorySink::new(102_400).with_photo("leo", photo(9)));
    let e = Engine::new(MemorySource::new())
        .with_sink(s.clone(), Profile::ad_thumbnail())
        .with_policy(Policy::default().with_remove_leavers(true))
        .prepare()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(s.photo(&k("leo")).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_per_user_and_the_run_goes_on() {
    let s = Arc::new(MemorySink::new(102_400).with_users(["alice", "bad", "broken"]));
    let source = MemorySource::new()
        .with_photo("alice", photo(1))
        .with_photo("bad", b"not an image at all".to_vec())
        .with_broken("broken", "row 3: no path")
        .with_photo("ghost", photo(2));
    let r = Engine::new(source)
        .with_sink(s.clone(), Profile::ad_thumbnail())
        .run()
        .await
        .unwrap();
    assert_eq!(outcome(&r, "alice").status, Status::Done);
    assert_eq!(outcome(&r, "bad").reason, Reason::InvalidImage);
    assert_eq!(outcome(&r, "broken").reason, Reason::SourceError);
    assert_eq!(outcome(&r, "ghost").reason, Reason::Unmatched);
    for u in ["bad", "broken", "ghost"] {
        assert_eq!(outcome(&r, u).status, Status::Failed, "{u}");
    }
    assert!(r.aborted.is_none() && r.failed() > 0);
    assert!(s.photo(&k("alice")).is_some());
    let summary = r.to_string();
    assert!(
        summary.contains("failed: ghost in memory: unmatched"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_writes_are_retried_after_the_time_asked() {
    let probe = Arc::new(
        Probe::new(MemorySink::new(102_400).with_users(["alice"])).failing([
            Error::new(ErrorKind::RateLimited, "slow down")
                .temporary(Some(Duration::from_millis(400))),
            Error::new(ErrorKind::Unavailable, "busy"),
        ]),
    );
    let retries = Arc::new(Mutex::new(Vec::new()));
    let seen = retries.clone();
    let r = Engine::new(MemorySource::new().with_photo("alice", photo(1)))
        .with_sink(probe.clone(), Profile::ad_thumbnail())
        .with_retry(fast_retries())
        .with_events(move |e| {
            if let Event::Retrying { kind, after, .. } = e {
                seen.lock().unwrap().push((*kind, *after));
            }
        })
        .run()
        .await
        .unwrap();
    assert!(r.is_success(), "{r}");
    assert_eq!(outcome(&r, "alice").attempts, 3);
    assert_eq!(r.timings.retries, 2);
    let times = probe.put_times.lock().unwrap().clone();
    assert_eq!(times.len(), 3);
    assert!(
        times[1] - times[0] >= Duration::from_millis(400),
        "retried after {:?}, asked 400 ms",
        times[1] - times[0]
    );
    let retries = retries.lock().unwrap();
    assert_eq!(retries[0].0, ErrorKind::RateLimited);
    assert!(retries[0].1 >= Duration::from_millis(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_write_errors_fail_the_user_only() {
    let probe = Arc::new(
        Probe::new(MemorySink::new(102_400).with_users(["alice", "bob"])).failing([Error::new(
            ErrorKind::InvalidPhoto,
            "rejected by the directory",
        )]),
    );
    let r = Engine::new(
        MemorySource::new()
            .with_photo("alice", photo(1))
            .with_photo("bob", photo(2)),
    )
    .with_sink(probe.clone(), Profile::ad_thumbnail())
    .with_concurrency(1)
    .with_retry(fast_retries())
    .run()
    .await
    .unwrap();
    assert!(r.aborted.is_none() && r.failed() > 0);
    assert_eq!(r.sinks["probe"].failed, 1);
    assert_eq!(r.sinks["probe"].put, 1);
    assert_eq!(
        probe.puts.load(Ordering::SeqCst),
        2,
        "no retry of a rejection"
    );
    let failed = r
        .outcomes
        .iter()
        .find(|o| o.status == Status::Failed)
        .unwrap();
    assert_eq!(failed.error_kind, Some(ErrorKind::InvalidPhoto));
    assert_eq!(failed.attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_level_failure_stops_the_run() {
    let users: Vec<String> = (0..20).map(|i| format!("u{i:02}")).collect();
    let mut source = MemorySource::new();
    for (i, u) in users.iter().enumerate() {
        source.insert(u.as_str(), photo(i as u32));
    }
    let probe = Arc::new(
        Probe::new(MemorySink::new(102_400).with_users(users.clone())).failing([Error::new(
            ErrorKind::Unauthenticated,
            "bad credentials (49)",
        )]),
    );
    let r = Engine::new(source)
        .with_sink(probe.clone(), Profile::ad_thumbnail())
        .with_concurrency(1)
        .run()
        .await
        .expect_err("a run-level failure is the run's error")
        .into_report();
    let a = r.aborted.as_ref().expect("aborted");
    assert_eq!(a.kind, ErrorKind::Unauthenticated);
    assert!(
        r.sinks["probe"].not_attempted >= 15,
        "the run stopped early: {:?}",
        r.sinks["probe"]
    );
    assert_eq!(
        probe.puts.load(Ordering::SeqCst),
        1,
        "nothing is sent after the run-level failure, not even by users already waiting"
    );
    assert!(r.to_string().contains("STOPPED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_never_exceed_the_concurrency() {
    let users: Vec<String> = (0..24).map(|i| format!("u{i:02}")).collect();
    let mut source = MemorySource::new();
    for (i, u) in users.iter().enumerate() {
        source.insert(u.as_str(), photo(i as u32));
    }
    let mut probe = Probe::new(MemorySink::new(102_400).with_users(users.clone()));
    // Calls wait until three are in flight together: the limit is reached, and any call
    // beyond it would show in `max_in_flight`. (An engine that never sends three at once
    // would wait for ever: the timeout turns that into a failure.)
    probe.gate_at = Some(3);
    let probe = Arc::new(
        probe.failing((0..6).map(|_| Error::new(ErrorKind::Unavailable, "busy").temporary(None))),
    );
    let engine = Engine::new(source)
        .with_sink(probe.clone(), Profile::ad_thumbnail())
        .with_concurrency(3)
        .with_retry(fast_retries());
    let r = tokio::time::timeout(Duration::from_secs(60), engine.run())
        .await
        .expect("three calls were never in flight together")
        .unwrap();
    assert!(r.is_success(), "{r}");
    assert_eq!(r.sinks["probe"].put, 24);
    let max = probe.max_in_flight.load(Ordering::SeqCst);
    assert!(max <= 3, "{max} calls in flight, limit 3");
    assert_eq!(max, 3, "the limit is used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_and_removed_photos_are_backed_up_and_restored() {
    let tmp_dir = tmp("backup");
    let dir = tmp_dir.path();
    let (old_a, old_w) = (Bytes::from(photo(7)), Bytes::from(photo(8)));
    let sink = Arc::new(
        MemorySink::new(102_400)
            .with_photo("alice", old_a.clone())
            .with_photo("wanda", old_w.clone())
            .with_users(["newbie"]),
    );
    let r = Engine::new(
        MemorySource::new()
            .with_photo("alice", photo(1))
            .with_withheld("wanda")
            .with_photo("newbie", photo(2)),
    )
    .with_sink(sink.clone(), Profile::ad_thumbnail())
    .with_backups(BackupStore::open(dir.join("b")).unwrap())
    .run()
    .await
    .unwrap();
    assert!(r.is_success(), "{r}");
    assert_ne!(sink.photo(&k("alice")), Some(old_a.clone()));
    assert_eq!(sink.photo(&k("wanda")), None);

    let backups = BackupStore::open(dir.join("b")).unwrap();
    let journal = backups.journal().unwrap();
    assert_eq!(
        journal.len(),
        3,
        "alice replaced, wanda removed, newbie added: {journal:#?}"
    );
    let n = journal.iter().find(|e| e.user == k("newbie")).unwrap();
    assert_eq!(n.old_sha256, None);
    assert!(sink.photo(&k("newbie")).is_some());
    let a = journal.iter().find(|e| e.user == k("alice")).unwrap();
    let now = sink.photo(&k("alice")).unwrap();
    let hex: String = <sha2::Sha256 as sha2::Digest>::digest(&now)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(a.new_sha256.as_deref(), Some(hex.as_str()));
    assert_eq!(
        backups.load(a.old_sha256.as_deref().unwrap()).unwrap(),
        old_a
    );

    let restored = backups.restore(sink.as_ref(), None).await.unwrap();
    assert_eq!(restored.len(), 3);
    assert!(restored.iter().all(|r| r.result.is_ok()));
    assert_eq!(sink.photo(&k("alice")), Some(old_a));
    assert_eq!(sink.photo(&k("wanda")), Some(old_w));
    assert_eq!(
        sink.photo(&k("newbie")),
        None,
        "the sync's first photo is undone"
    );
}

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
