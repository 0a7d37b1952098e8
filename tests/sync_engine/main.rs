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

mod later;
