//! The test suite every [`crate::source::PhotoSource`] and [`crate::sink::DirectorySink`]
//! implementation must pass (feature `conformance`; not covered by semver).
//!
//! Add `userphoto = { version = "...", features = ["conformance"] }` to your
//! dev-dependencies and call the checks from an async test with a source prepared as the
//! fixture describes. Each check panics with a message naming the clause it broke.
//!
//! ```no_run
//! # async fn t() {
//! use userphoto::conformance::{source_contract, SourceFixture};
//! use userphoto::source::MemorySource;
//! let photo = userphoto::normalize::testimage::gradient_jpeg(64, 64);
//! let src = MemorySource::new().with_photo("alice", photo.clone()).with_photo("bob", photo).with_withheld("carol");
//! source_contract(&src, &SourceFixture::new(["alice", "bob"], ["carol"])).await;
//! # }
//! ```

use std::collections::BTreeSet;

use futures::StreamExt;

use crate::normalize::Limits;
use crate::source::{PhotoRef, PhotoSource};
use crate::{ErrorKind, UserKey};

/// What a source under test is expected to hold.
#[derive(Debug, Clone, Default)]
pub struct SourceFixture {
    /// Keys listed with a loadable photo.
    pub photos: BTreeSet<UserKey>,
    /// Keys listed as withheld.
    pub withheld: BTreeSet<UserKey>,
    /// Keys that must appear as error items (conflicts, broken rows...).
    pub errors: BTreeSet<UserKey>,
}

impl SourceFixture {
    /// A fixture with photos and withheld keys.
    pub fn new<P, W>(photos: P, withheld: W) -> Self
    where
        P: IntoIterator,
        P::Item: Into<UserKey>,
        W: IntoIterator,
        W::Item: Into<UserKey>,
    {
        Self {
            photos: photos.into_iter().map(Into::into).collect(),
            withheld: withheld.into_iter().map(Into::into).collect(),
            errors: BTreeSet::new(),
        }
    }

    /// Adds keys expected as error items.
    pub fn with_errors<E>(mut self, errors: E) -> Self
    where
        E: IntoIterator,
        E::Item: Into<UserKey>,
    {
        self.errors = errors.into_iter().map(Into::into).collect();
        self
    }
}

async fn listing(src: &dyn PhotoSource) -> (Vec<PhotoRef>, Vec<crate::Error>) {
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

/// Runs every source clause.
pub async fn source_contract(src: &dyn PhotoSource, fx: &SourceFixture) {
    source_lists_the_fixture(src, fx).await;
    source_keys_are_unique(src).await;
    source_listing_is_stable(src).await;
    source_load_returns_images(src, fx).await;
    source_load_honours_the_size_limit(src, fx).await;
    assert!(!src.name().is_empty(), "name() must not be empty");
}

/// Every fixture key is listed: photos and withheld ones as `Ok`, the rest as `Err` items
/// that name their user; nothing else is listed.
pub async fn source_lists_the_fixture(src: &dyn PhotoSource, fx: &SourceFixture) {
    let (ok, err) = listing(src).await;
    let photos: BTreeSet<UserKey> = ok
        .iter()
        .filter(|r| !r.withheld)
        .map(|r| r.key.clone())
        .collect();
    let withheld: BTreeSet<UserKey> = ok
        .iter()
        .filter(|r| r.withheld)
        .map(|r| r.key.clone())
        .collect();
    let errors: BTreeSet<UserKey> = err.iter().filter_map(|e| e.user().cloned()).collect();
    assert_eq!(photos, fx.photos, "listed photos differ from the fixture");
    assert_eq!(
        withheld, fx.withheld,
        "listed withheld keys differ from the fixture"
    );
    assert_eq!(errors, fx.errors, "error items differ from the fixture");
}

/// No key is listed twice as `Ok`, and no key is both `Ok` and an error.
pub async fn source_keys_are_unique(src: &dyn PhotoSource) {
    let (ok, err) = listing(src).await;
    let mut seen = BTreeSet::new();
    for r in &ok {
        assert!(seen.insert(r.key.clone()), "key {} listed twice", r.key);
    }
    for e in &err {
        if let Some(u) = e.user() {
            assert!(
                !seen.contains(u),
                "key {u} listed both as a photo and as an error"
            );
        }
    }
}

/// Two listings give the same keys and fingerprints.
pub async fn source_listing_is_stable(src: &dyn PhotoSource) {
    let (a, _) = listing(src).await;
    let (b, _) = listing(src).await;
    let fa: BTreeSet<(UserKey, String)> = a.into_iter().map(|r| (r.key, r.fingerprint)).collect();
    let fb: BTreeSet<(UserKey, String)> = b.into_iter().map(|r| (r.key, r.fingerprint)).collect();
    assert_eq!(fa, fb, "two listings differ");
}

/// Every listed photo loads, and its bytes are an image.
pub async fn source_load_returns_images(src: &dyn PhotoSource, fx: &SourceFixture) {
    let (ok, _) = listing(src).await;
    for r in ok
        .iter()
        .filter(|r| !r.withheld && fx.photos.contains(&r.key))
    {
        let b = src
            .load(r, &Limits::default())
            .await
            .unwrap_or_else(|e| panic!("load {} failed: {e}", r.key));
        assert!(
            crate::normalize::ImageFormat::detect(&b).is_some(),
            "load {} returned no image",
            r.key
        );
    }
}

/// `load` refuses a photo above `max_input_bytes` with `LimitExceeded`.
pub async fn source_load_honours_the_size_limit(src: &dyn PhotoSource, fx: &SourceFixture) {
    let (ok, _) = listing(src).await;
    let tiny = Limits {
        max_input_bytes: 8,
        ..Limits::default()
    };
    for r in ok
        .iter()
        .filter(|r| !r.withheld && fx.photos.contains(&r.key))
    {
        match src.load(r, &tiny).await {
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::LimitExceeded,
                "load {} over the limit: {e}",
                r.key
            ),
            Ok(b) => panic!(
                "load {} returned {} bytes above an 8-byte limit",
                r.key,
                b.len()
            ),
        }
    }
}

/// What a sink under test holds: users without photos, and a key it does not know.
#[derive(Debug, Clone)]
pub struct SinkFixture {
    /// At least eight existing users with no photo when the suite starts; the suite leaves
    /// them without photos again.
    pub users: Vec<UserKey>,
    /// A key that matches no user.
    pub absent: UserKey,
}

/// A small valid JPEG of about `len` bytes (a real one, for sinks that check content).
fn jpeg_of(seed: u32) -> bytes::Bytes {
    bytes::Bytes::from(crate::normalize::testimage::gradient_jpeg(
        40 + seed % 7,
        40,
    ))
}

/// Runs every sink clause; the users end without photos.
pub async fn sink_contract(sink: &dyn crate::sink::DirectorySink, fx: &SinkFixture) {
    assert!(
        fx.users.len() >= 8,
        "the sink fixture needs at least eight users"
    );
    assert!(!sink.name().is_empty(), "name() must not be empty");
    sink_no_photo_is_none(sink, fx).await;
    sink_unknown_user_is_user_not_found(sink, fx).await;
    sink_put_then_current(sink, fx).await;
    sink_put_is_idempotent_and_last_wins(sink, fx).await;
    sink_delete_is_idempotent(sink, fx).await;
    sink_oversize_put_changes_nothing(sink, fx).await;
    sink_concurrent_puts_all_land(sink, fx).await;
    sink_lists_users_with_photos(sink, fx).await;
    sink_incremental_is_safe(sink, fx).await;
}

/// A user without a photo is `Ok(None)`.
pub async fn sink_no_photo_is_none(sink: &dyn crate::sink::DirectorySink, fx: &SinkFixture) {
    let c = sink
        .current(&fx.users[0])
        .await
        .unwrap_or_else(|e| panic!("current of an existing user failed: {e}"));
    assert!(c.is_none(), "a user without a photo must be Ok(None)");
}

/// An unknown user is `UserNotFound`, not retryable, with the operation, backend and user.
pub async fn sink_unknown_user_is_user_not_found(
    sink: &dyn crate::sink::DirectorySink,
    fx: &SinkFixture,
) {
    for (op, r) in [
        ("current", sink.current(&fx.absent).await.map(|_| ())),
        ("put", sink.put(&fx.absent, &jpeg_of(1)).await.map(|_| ())),
        ("delete", sink.delete(&fx.absent).await),
    ] {
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{op} of an unknown user succeeded"));
        assert_eq!(
            e.kind(),
            ErrorKind::UserNotFound,
            "{op} of an unknown user: {e}"
        );
        assert!(!e.is_retryable(), "UserNotFound must not be retryable");
        assert_eq!(
            e.user(),
            Some(&fx.absent),
            "{op}: the error must name the user"
        );
        assert_eq!(e.operation(), op, "the error must name the operation");
        assert_eq!(e.backend(), sink.name(), "the error must name the backend");
    }
}

/// Whether `current` shows exactly `photo` (by its bytes, or by the hash of its bytes).
fn shows(c: &crate::sink::CurrentPhoto, photo: &bytes::Bytes) -> bool {
    c.content_sha256().as_deref() == Some(crate::digest::sha256_hex(photo).as_str())
}

/// After a put, `current` shows a photo (the same bytes when the sink returns bytes).
pub async fn sink_put_then_current(sink: &dyn crate::sink::DirectorySink, fx: &SinkFixture) {
    let u = &fx.users[1];
    let photo = jpeg_of(2);
    sink.put(u, &photo)
        .await
        .unwrap_or_else(|e| panic!("put failed: {e}"));
    let c = sink.current(u).await.unwrap().expect("a photo after put");
    if sink.capabilities().returns_bytes {
        assert!(shows(&c, &photo), "current must return the bytes put");
    }
    sink.delete(u).await.unwrap();
}

/// Putting twice is idempotent; put A then B leaves B.
pub async fn sink_put_is_idempotent_and_last_wins(
    sink: &dyn crate::sink::DirectorySink,
    fx: &SinkFixture,
) {
    let u = &fx.users[2];
    let (a, b) = (jpeg_of(3), jpeg_of(4));
    sink.put(u, &a).await.unwrap();
    sink.put(u, &a)
        .await
        .unwrap_or_else(|e| panic!("a second identical put failed: {e}"));
    sink.put(u, &b).await.unwrap();
    let c = sink.current(u).await.unwrap().expect("a photo");
    if sink.capabilities().returns_bytes {
        assert!(shows(&c, &b), "the last put wins");
    }
    sink.delete(u).await.unwrap();
}

/// Delete removes the photo; deleting again is `Ok`.
pub async fn sink_delete_is_idempotent(sink: &dyn crate::sink::DirectorySink, fx: &SinkFixture) {
    let u = &fx.users[3];
    sink.put(u, &jpeg_of(5)).await.unwrap();
    sink.delete(u).await.unwrap();
    assert!(
        sink.current(u).await.unwrap().is_none(),
        "no photo after delete"
    );
    sink.delete(u)
        .await
        .unwrap_or_else(|e| panic!("deleting nothing must be Ok: {e}"));
}

/// A put above `max_bytes` is `PhotoTooLarge` and leaves the old photo.
pub async fn sink_oversize_put_changes_nothing(
    sink: &dyn crate::sink::DirectorySink,
    fx: &SinkFixture,
) {
    let u = &fx.users[4];
    let keep = jpeg_of(6);
    sink.put(u, &keep).await.unwrap();
    let max = sink.capabilities().max_bytes;
    let mut big = keep.to_vec();
    big.resize(max + 1, 0);
    let e = sink
        .put(u, &bytes::Bytes::from(big))
        .await
        .expect_err("an oversize put must fail");
    assert_eq!(e.kind(), ErrorKind::PhotoTooLarge, "{e}");
    let c = sink.current(u).await.unwrap().expect("the old photo stays");
    if sink.capabilities().returns_bytes {
        assert!(shows(&c, &keep), "an oversize put must change nothing");
    }
    sink.delete(u).await.unwrap();
}

/// Concurrent puts to different users all land.
pub async fn sink_concurrent_puts_all_land(
    sink: &dyn crate::sink::DirectorySink,
    fx: &SinkFixture,
) {
    let users = &fx.users[..8];
    let photos: Vec<bytes::Bytes> = (0..8).map(|i| jpeg_of(10 + i)).collect();
    let results =
        futures::future::join_all(users.iter().zip(&photos).map(|(u, p)| sink.put(u, p))).await;
    for (u, r) in users.iter().zip(results) {
        r.unwrap_or_else(|e| panic!("concurrent put for {u} failed: {e}"));
    }
    for (u, p) in users.iter().zip(&photos) {
        let c = sink
            .current(u)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{u} has no photo after a concurrent put"));
        if sink.capabilities().returns_bytes {
            assert!(shows(&c, p), "{u} has another user's photo");
        }
        sink.delete(u).await.unwrap();
    }
}

/// `prefetch` of known and unknown users is `Ok`; when the sink can list the users who
/// have a photo, a user appears after a put (under an equal key) and is gone after a delete.
pub async fn sink_lists_users_with_photos(sink: &dyn crate::sink::DirectorySink, fx: &SinkFixture) {
    let mut keys = fx.users.clone();
    keys.push(fx.absent.clone());
    sink.prefetch(&keys)
        .await
        .unwrap_or_else(|e| panic!("prefetch with an unknown user among them failed: {e}"));
    let u = &fx.users[5];
    sink.put(u, &jpeg_of(30)).await.unwrap();
    match sink.users_with_photos().await {
        Err(e) => {
            assert_eq!(
                e.kind(),
                ErrorKind::Unsupported,
                "users_with_photos may only fail as Unsupported here: {e}"
            );
            sink.delete(u).await.unwrap();
        }
        Ok(listed) => {
            assert!(
                listed.contains(u),
                "{u} has a photo but users_with_photos does not list it: {listed:?}"
            );
            sink.delete(u).await.unwrap();
            let listed = sink.users_with_photos().await.unwrap();
            assert!(
                !listed.contains(u),
                "{u} is still listed after its photo was deleted"
            );
            for k in &fx.users {
                assert!(
                    !listed.contains(k),
                    "{k} is listed but the suite left it without a photo"
                );
            }
        }
    }
}

/// For a sink with the [`Incremental`](crate::sink::Incremental) extension (a sink without
/// one passes): `resume` ignores a snapshot it cannot read (it is not an error, and the sink
/// then works as without one), and `snapshot` after a prefetch does not fail; a snapshot it
/// returns is accepted back by `resume`, after which the sink still shows the same photos.
pub async fn sink_incremental_is_safe(sink: &dyn crate::sink::DirectorySink, fx: &SinkFixture) {
    let Some(inc) = sink.incremental() else {
        return;
    };
    inc.resume(b"\x00 not a snapshot of any sink \xff".to_vec())
        .await
        .unwrap_or_else(|e| panic!("resume must ignore an unreadable snapshot: {e}"));
    let u = &fx.users[5];
    let photo = jpeg_of(20);
    sink.prefetch(&fx.users).await.unwrap();
    sink.put(u, &photo).await.unwrap();
    let before = sink.current(u).await.unwrap().expect("a photo after put");
    let saved = inc
        .snapshot()
        .await
        .unwrap_or_else(|e| panic!("snapshot after a prefetch failed: {e}"));
    if let Some(saved) = saved {
        inc.resume(saved)
            .await
            .unwrap_or_else(|e| panic!("resume of the sink's own snapshot failed: {e}"));
        sink.prefetch(&fx.users).await.unwrap();
        let after = sink
            .current(u)
            .await
            .unwrap()
            .expect("the photo after resuming the snapshot");
        if sink.capabilities().returns_bytes {
            assert!(
                shows(&after, &photo),
                "a resumed snapshot shows another photo"
            );
        } else {
            assert_eq!(before.version, after.version);
        }
    }
    sink.delete(u).await.unwrap();
}
