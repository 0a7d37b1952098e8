//! Photos held in memory.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};

use super::{PhotoRef, PhotoSource};
use crate::digest::sha256_hex;
use crate::normalize::Limits;
use crate::{Error, ErrorKind, Result, UserKey};

/// A source whose photos are in memory: for tests, examples, and adapters that fetch
/// everything up front. The fingerprint is the SHA-256 of the bytes.
///
/// ```
/// use userphoto::source::{MemorySource, PhotoSource};
/// use futures::StreamExt;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let src = MemorySource::new().with_photo("alice", vec![0xFF, 0xD8]).with_withheld("bob");
/// let refs: Vec<_> = src.list().collect().await;
/// assert_eq!(refs.len(), 2);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    photos: BTreeMap<UserKey, Entry>,
}

#[derive(Debug, Clone)]
enum Entry {
    Photo(Bytes),
    Withheld,
    Broken(String),
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a person's photo.
    pub fn with_photo(mut self, key: impl Into<UserKey>, bytes: impl Into<Bytes>) -> Self {
        self.insert(key, bytes);
        self
    }

    /// Marks a person as having withdrawn consent.
    pub fn with_withheld(mut self, key: impl Into<UserKey>) -> Self {
        self.photos.insert(key.into(), Entry::Withheld);
        self
    }

    /// Adds an item that lists as an error (to test how consumers handle broken rows).
    pub fn with_broken(mut self, key: impl Into<UserKey>, message: impl Into<String>) -> Self {
        self.photos
            .insert(key.into(), Entry::Broken(message.into()));
        self
    }

    /// Adds (or replaces) a person's photo in place.
    pub fn insert(&mut self, key: impl Into<UserKey>, bytes: impl Into<Bytes>) {
        self.photos.insert(key.into(), Entry::Photo(bytes.into()));
    }

    /// Removes a person.
    pub fn remove(&mut self, key: &UserKey) {
        self.photos.remove(key);
    }
}

#[async_trait]
impl PhotoSource for MemorySource {
    fn name(&self) -> &str {
        "memory"
    }

    fn list(&self) -> BoxStream<'_, Result<PhotoRef>> {
        stream::iter(self.photos.iter().map(|(k, e)| {
            match e {
                Entry::Photo(b) => Ok(PhotoRef {
                    key: k.clone(),
                    fingerprint: format!("sha256:{}", sha256_hex(b)),
                    location: format!("memory:{k}"),
                    withheld: false,
                }),
                Entry::Withheld => Ok(PhotoRef {
                    key: k.clone(),
                    fingerprint: "withheld".into(),
                    location: format!("memory:{k}"),
                    withheld: true,
                }),
                Entry::Broken(m) => Err(Error::new(ErrorKind::InvalidData, m.clone())
                    .with_backend("memory")
                    .with_operation("list")
                    .with_user(k.clone())),
            }
        }))
        .boxed()
    }

    async fn load(&self, photo: &PhotoRef, limits: &Limits) -> Result<Bytes> {
        let err = |kind, m: String| {
            Err(Error::new(kind, m)
                .with_backend("memory")
                .with_operation("load")
                .with_user(photo.key.clone()))
        };
        match self.photos.get(&photo.key) {
            Some(Entry::Photo(b)) if b.len() as u64 > limits.max_input_bytes => err(
                ErrorKind::LimitExceeded,
                format!(
                    "{} bytes, above the limit of {}",
                    b.len(),
                    limits.max_input_bytes
                ),
            ),
            Some(Entry::Photo(b)) => Ok(b.clone()),
            Some(Entry::Withheld) => err(ErrorKind::Config, "the photo is withheld".into()),
            Some(Entry::Broken(m)) => err(ErrorKind::InvalidData, m.clone()),
            None => err(ErrorKind::UserNotFound, "no such photo".into()),
        }
    }
}
