//! The test suite every [`crate::source::PhotoSource`] implementation must pass
//! (feature `conformance`; not covered by semver).
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
