//! A directory in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use super::{CurrentPhoto, DirectorySink, SinkCapabilities};
use crate::normalize::BuiltinProfile;
use crate::{Error, ErrorKind, Result, UserKey};

/// A directory held in memory: a set of users, each with or without a photo. Returns the
/// bytes it stores and a version tag that changes on every write.
///
/// ```
/// use userphoto::sink::{DirectorySink, MemorySink};
/// use userphoto::UserKey;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sink = MemorySink::new(10_000).with_users(["alice", "bob"]);
/// sink.put(&UserKey::new("alice"), &bytes::Bytes::from_static(b"\xFF\xD8jpeg")).await?;
/// assert!(sink.current(&UserKey::new("alice")).await?.is_some());
/// assert!(sink.current(&UserKey::new("bob")).await?.is_none());
/// assert!(sink.current(&UserKey::new("carol")).await.is_err());
/// # Ok::<(), userphoto::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct MemorySink {
    max_bytes: usize,
    users: Mutex<BTreeMap<UserKey, Option<(Bytes, u64)>>>,
    counter: Mutex<u64>,
}

impl MemorySink {
    /// An empty directory accepting photos up to `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            users: Mutex::new(BTreeMap::new()),
            counter: Mutex::new(0),
        }
    }

    /// Adds users without photos.
    pub fn with_users<I>(self, keys: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<UserKey>,
    {
        {
            let mut u = self.users.lock().unwrap_or_else(|p| p.into_inner());
            for k in keys {
                u.entry(k.into()).or_insert(None);
            }
        }
        self
    }

    /// Adds a user with a photo.
    pub fn with_photo(self, key: impl Into<UserKey>, jpeg: impl Into<Bytes>) -> Self {
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.into(), Some((jpeg.into(), 0)));
        self
    }

    /// The photo stored for a user (for assertions).
    pub fn photo(&self, key: &UserKey) -> Option<Bytes> {
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
            .flatten()
            .map(|p| p.0)
    }

    /// Every user and whether they have a photo.
    pub fn users(&self) -> Vec<(UserKey, bool)> {
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.is_some()))
            .collect()
    }

    fn not_found(op: &'static str, key: &UserKey) -> Error {
        Error::new(ErrorKind::UserNotFound, "no such user")
            .with_backend("memory")
            .with_operation(op)
            .with_user(key.clone())
    }
}

#[async_trait]
impl DirectorySink for MemorySink {
    fn name(&self) -> &str {
        "memory"
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::new(self.max_bytes, BuiltinProfile::AdThumbnail)
    }

    async fn current(&self, key: &UserKey) -> Result<Option<CurrentPhoto>> {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        match users.get(key) {
            None => Err(Self::not_found("current", key)),
            Some(None) => Ok(None),
            Some(Some((b, v))) => Ok(Some(CurrentPhoto {
                bytes: Some(b.clone()),
                sha256: None,
                version: Some(v.to_string()),
            })),
        }
    }

    async fn put(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>> {
        if jpeg.len() > self.max_bytes {
            return Err(Error::new(
                ErrorKind::PhotoTooLarge,
                format!(
                    "{} bytes, above the limit of {}",
                    jpeg.len(),
                    self.max_bytes
                ),
            )
            .with_backend("memory")
            .with_operation("put")
            .with_user(key.clone()));
        }
        let version = {
            let mut c = self.counter.lock().unwrap_or_else(|p| p.into_inner());
            *c += 1;
            *c
        };
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        match users.get_mut(key) {
            None => Err(Self::not_found("put", key)),
            Some(slot) => {
                *slot = Some((jpeg.clone(), version));
                Ok(Some(version.to_string()))
            }
        }
    }

    async fn delete(&self, key: &UserKey) -> Result<()> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        match users.get_mut(key) {
            None => Err(Self::not_found("delete", key)),
            Some(slot) => {
                *slot = None;
                Ok(())
            }
        }
    }

    async fn users_with_photos(&self) -> Result<Vec<UserKey>> {
        Ok(self
            .users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.clone())
            .collect())
    }
}
