//! The apply stage against a mocked sink that must see an exact sequence of calls for one
//! user: the read, a put refused as rate-limited (with a `retry_after`), then a put that
//! lands. `mockall`'s `Sequence` enforces the order and `times(1)` the count; any other
//! call (a third put, a delete) fails the test. Why the rest of the suite uses hand-written
//! fakes and real servers instead is said in the `userphoto::sync` module docs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use mockall::{mock, Sequence};
use userphoto::normalize::{testimage, BuiltinProfile, Profile};
use userphoto::sink::{CurrentPhoto, DirectorySink, SinkCapabilities};
use userphoto::source::MemorySource;
use userphoto::sync::{Action, Engine, Event, Reason, RetryPolicy, Status};
use userphoto::{Error, ErrorKind, Result, UserKey};

mock! {
    /// A sink whose every call is an expectation. The optional hooks (`fetch`, `prefetch`,
    /// `users_with_photos`, `incremental`) keep the trait's defaults.
    pub Sink {}

    #[async_trait]
    impl DirectorySink for Sink {
        fn name(&self) -> &str;
        fn capabilities(&self) -> SinkCapabilities;
        async fn current(&self, key: &UserKey) -> Result<Option<CurrentPhoto>>;
        async fn put(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>>;
        async fn delete(&self, key: &UserKey) -> Result<()>;
    }
}

// `DirectorySink` requires `Debug`, which `mock!` does not derive.
impl std::fmt::Debug for MockSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockSink")
    }
}

const RETRY_AFTER: Duration = Duration::from_millis(150);

fn is_alice(key: &UserKey) -> bool {
    key.as_str() == "alice"
}

/// A baseline JPEG within AD's thumbnail budget.
fn is_thumbnail(jpeg: &Bytes) -> bool {
    jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.len() <= 10_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_put_is_retried_once_after_the_time_asked_then_lands() {
    let mut sink = MockSink::new();
    sink.expect_name().return_const("mock".to_owned());
    sink.expect_capabilities()
        .returning(|| SinkCapabilities::new(102_400, BuiltinProfile::AdThumbnail));
    sink.expect_delete().never();

    // When each put arrived, and what it carried.
    let puts: Arc<Mutex<Vec<(Instant, Bytes)>>> = Arc::default();
    let mut seq = Sequence::new();
    sink.expect_current()
        .withf(is_alice)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(None));
    let seen = puts.clone();
    sink.expect_put()
        .withf(|key, jpeg| is_alice(key) && is_thumbnail(jpeg))
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |key, jpeg| {
            seen.lock().unwrap().push((Instant::now(), jpeg.clone()));
            Err(Error::new(ErrorKind::RateLimited, "too many requests")
                .temporary(Some(RETRY_AFTER))
                .with_backend("mock")
                .with_operation("put")
                .with_user(key.clone()))
        });
    let seen = puts.clone();
    sink.expect_put()
        .withf(|key, jpeg| is_alice(key) && is_thumbnail(jpeg))
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, jpeg| {
            seen.lock().unwrap().push((Instant::now(), jpeg.clone()));
            Ok(Some("v2".to_owned()))
        });
    let sink = Arc::new(sink);

    let retries: Arc<Mutex<Vec<(ErrorKind, Duration)>>> = Arc::default();
    let seen = retries.clone();
    let engine =
        Engine::new(MemorySource::new().with_photo("alice", testimage::photo_jpeg(320, 400, 7)))
            .with_sink(sink.clone(), Profile::ad_thumbnail())
            // Fast backoff, so only the sink's `retry_after` sets the pace.
            .with_retry(
                RetryPolicy::default()
                    .with_max_retries(3)
                    .with_delays(Duration::from_millis(1), Duration::from_millis(5)),
            )
            .with_events(move |e| {
                if let Event::Retrying { kind, after, .. } = e {
                    seen.lock().unwrap().push((*kind, *after));
                }
            });
    let report = engine.run().await.unwrap();

    assert!(report.is_success(), "{report}");
    assert_eq!(report.outcomes.len(), 1);
    let o = &report.outcomes[0];
    assert_eq!(o.key, UserKey::new("alice"));
    assert_eq!(o.sink, "mock");
    assert_eq!(
        (o.action, o.reason, o.status),
        (Action::Put, Reason::New, Status::Done)
    );
    assert_eq!(o.attempts, 2, "one refused put, one that landed");
    assert_eq!(o.error_kind, None);
    let counts = &report.sinks["mock"];
    assert_eq!((counts.put, counts.failed, counts.not_attempted), (1, 0, 0));
    assert_eq!(report.timings.retries, 1);

    let puts = puts.lock().unwrap().clone();
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[0].1, puts[1].1, "the retry sends the same rendition");
    assert_eq!(Some(puts[1].1.len()), o.bytes);
    assert!(
        puts[1].0 - puts[0].0 >= RETRY_AFTER,
        "retried after {:?}, the sink asked for {RETRY_AFTER:?}",
        puts[1].0 - puts[0].0
    );
    // One retry, announced with the sink's wait (plus at most a tenth of it as jitter).
    let retries = retries.lock().unwrap().clone();
    assert_eq!(retries.len(), 1, "{retries:?}");
    let (kind, after) = retries[0];
    assert_eq!(kind, ErrorKind::RateLimited);
    assert!(
        (RETRY_AFTER..=RETRY_AFTER + RETRY_AFTER / 10).contains(&after),
        "waited {after:?}, the sink asked for {RETRY_AFTER:?}"
    );

    // Every expectation met exactly (times(1) each, in order, no delete).
    drop(engine);
    Arc::into_inner(sink)
        .expect("the engine let go of the sink")
        .checkpoint();
}
