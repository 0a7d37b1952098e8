//! Where photos go: the [`DirectorySink`] trait and its implementations.
//!
//! * [`MemorySink`]: a directory in memory (tests, examples, dry runs).
//! * [`LdifSink`]: an LDIF export in, an LDIF change file out (offline, no credentials).
//! * [`AdSink`]: Active Directory's `thumbnailPhoto` over LDAP (ldaps://, StartTLS; simple
//!   or Kerberos bind), configured with an [`LdapConfig`].
//! * [`GraphSink`]: Microsoft 365 profile photos through Microsoft Graph (client secret or
//!   certificate, national clouds, `Retry-After`, at most 4 requests in flight); the
//!   [`graph`] module explains its etag handling, batching and throughput.

#[cfg(feature = "ad")]
mod ad;
#[cfg(feature = "graph")]
#[cfg_attr(docsrs, doc(cfg(feature = "graph")))]
pub mod graph;
mod ldif;
mod memory;

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;

/// Moved: the canonical path is [`crate::ldap::LdapConfig`]; this one stays for existing code.
#[cfg(feature = "ad")]
#[cfg_attr(docsrs, doc(cfg(feature = "ad")))]
#[doc(no_inline)]
pub use crate::ldap::LdapConfig;
/// Moved: the canonical path is [`crate::Secret`]; this one stays for existing code.
#[doc(no_inline)]
pub use crate::Secret;
#[cfg(feature = "ad")]
#[cfg_attr(docsrs, doc(cfg(feature = "ad")))]
pub use ad::{AdSink, AdSinkBuilder, ReadStats, AD_MAX_BYTES, GSSAPI_PLAIN_MAX_BYTES};
#[cfg(feature = "graph")]
#[cfg_attr(docsrs, doc(cfg(feature = "graph")))]
pub use graph::{
    AssertionAlgorithm, GraphCertificate, GraphCloud, GraphCredential, GraphSink, GraphSinkBuilder,
    GRAPH_DEFAULT_MAX_IN_FLIGHT, GRAPH_MAX_BYTES,
};
pub use ldif::LdifSink;
pub use memory::MemorySink;

use crate::{Result, UserKey};

/// What a sink can do, so the engine can plan for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SinkCapabilities {
    /// The largest photo the directory accepts, in bytes (AD: 102,400; Graph: 4,000,000).
    pub max_bytes: usize,
    /// The profile this sink is usually written with (`ad-thumbnail`, `graph`).
    pub default_profile: String,
    /// Whether [`DirectorySink::current`] shows the stored bytes, as their value or their
    /// SHA-256 (AD does: it keeps the bytes it is given; Graph returns only a version tag,
    /// because it re-encodes uploads).
    pub returns_bytes: bool,
}

impl SinkCapabilities {
    /// Capabilities with the given byte limit and default profile, returning bytes.
    pub fn new(max_bytes: usize, default_profile: impl Into<String>) -> Self {
        Self {
            max_bytes,
            default_profile: default_profile.into(),
            returns_bytes: true,
        }
    }
}

/// The photo a directory holds for a user now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CurrentPhoto {
    /// The stored bytes, when the sink has them at hand.
    pub bytes: Option<Bytes>,
    /// The SHA-256 (hex) of the stored bytes, when the sink knows it without the bytes (a
    /// sink answering from a snapshot of an earlier run). The engine uses it, or else the
    /// hash of [`bytes`](Self::bytes), to tell whether the photo is the one it would write.
    pub sha256: Option<String>,
    /// A version tag (Graph's `@odata.mediaEtag`), when the sink has one.
    pub version: Option<String>,
}

impl CurrentPhoto {
    /// A photo known by its bytes.
    pub fn from_bytes(bytes: Bytes) -> Self {
        Self {
            bytes: Some(bytes),
            sha256: None,
            version: None,
        }
    }

    /// A photo known by the SHA-256 (hex) of its bytes.
    pub fn from_sha256(sha256: impl Into<String>) -> Self {
        Self {
            bytes: None,
            sha256: Some(sha256.into()),
            version: None,
        }
    }

    /// The SHA-256 (hex, lower case) of the photo: [`sha256`](Self::sha256), or the hash of
    /// [`bytes`](Self::bytes).
    pub fn content_sha256(&self) -> Option<String> {
        match (&self.sha256, &self.bytes) {
            (Some(s), _) => Some(s.to_ascii_lowercase()),
            (None, Some(b)) => Some(crate::digest::sha256_hex(b)),
            (None, None) => None,
        }
    }

    /// A photo known only by a version tag.
    pub fn from_version(version: impl Into<String>) -> Self {
        Self {
            bytes: None,
            sha256: None,
            version: Some(version.into()),
        }
    }
}

/// A directory that shows people's photos.
///
/// # Contract
///
/// * [`current`](Self::current) returns `Ok(None)` for a user who exists without a photo and
///   an error of kind [`UserNotFound`](crate::ErrorKind::UserNotFound) (not retryable) for a
///   user the directory does not know: the two are never confused.
/// * [`put`](Self::put) replaces the user's photo and is idempotent: putting the same bytes
///   twice leaves the same state; put A then B leaves B. A photo larger than
///   [`SinkCapabilities::max_bytes`] fails with
///   [`PhotoTooLarge`](crate::ErrorKind::PhotoTooLarge) *before* anything is sent, and
///   changes nothing. It returns the directory's new version tag, if it has one.
/// * [`delete`](Self::delete) removes the photo and is idempotent: deleting when there is no
///   photo is `Ok`.
/// * Errors carry the operation, the backend's name and the user
///   ([`Error::with_operation`](crate::Error::with_operation) and friends), and say whether a
///   retry may help.
/// * Calls for different users may run concurrently, and all land.
/// * Implementations are `Send + Sync` and object-safe: `Arc<dyn DirectorySink>` works.
#[async_trait]
pub trait DirectorySink: Send + Sync + Debug {
    /// A short name for logs, errors, the state store and reports (`ad`, `graph`, `ldif`).
    fn name(&self) -> &str;

    /// What the sink can do.
    fn capabilities(&self) -> SinkCapabilities;

    /// The user's photo now: `Ok(None)` when the user has none.
    async fn current(&self, key: &UserKey) -> Result<Option<CurrentPhoto>>;

    /// Replaces the user's photo with `jpeg`; returns the new version tag, if any.
    async fn put(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>>;

    /// Removes the user's photo (Ok when there is none).
    async fn delete(&self, key: &UserKey) -> Result<()>;

    /// The bytes of the user's stored photo, for backups taken before a replace or delete:
    /// `Ok(None)` when the user has none. The default takes them from
    /// [`current`](Self::current); a sink whose `current` returns only a version tag (Graph)
    /// downloads them here.
    async fn fetch(&self, key: &UserKey) -> Result<Option<Bytes>> {
        Ok(self.current(key).await?.and_then(|c| c.bytes))
    }

    /// A hint that the engine is about to ask about these users. A sink that can resolve
    /// many users in one pass (one paged directory search instead of one search per user)
    /// does it here; errors are run-level (a user the sink cannot find is not an error
    /// here but a [`UserNotFound`](crate::ErrorKind::UserNotFound) from
    /// [`current`](Self::current) later). The default does nothing.
    async fn prefetch(&self, keys: &[UserKey]) -> Result<()> {
        let _ = keys;
        Ok(())
    }

    /// Every user who has a photo in this sink, as keys in the sink's match attribute, so
    /// the engine can find leavers (a photo in the directory, nobody in the source). The
    /// default is [`Unsupported`](crate::ErrorKind::Unsupported): the engine then lists no
    /// leavers, and refuses a policy that removes them.
    async fn users_with_photos(&self) -> Result<Vec<UserKey>> {
        Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            "this sink cannot list the users who have a photo",
        )
        .with_backend(self.name().to_owned())
        .with_operation("users_with_photos"))
    }

    /// What the sink learnt about the directory this run, for the next run to start from:
    /// a connector space. (The AD sink keeps every user's DN and photo hash with the
    /// server's update sequence number, so the next run reads only the entries changed
    /// since.) The engine stores it in the state store after the apply stage and gives it
    /// back through [`resume`](Self::resume) before the next run's
    /// [`prefetch`](Self::prefetch). Return only what is certain: a write whose outcome is
    /// unknown is not a write done. An error or `None` leaves the stored snapshot as it
    /// was, so a snapshot must stay usable when a later run could not replace it. The
    /// default keeps nothing.
    async fn snapshot(&self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Gives back what [`snapshot`](Self::snapshot) returned on an earlier run, before
    /// [`prefetch`](Self::prefetch). The sink checks that it still applies (the same server,
    /// scope and settings) and ignores it otherwise; a snapshot it cannot read is ignored as
    /// well. Only a run-level error (the directory cannot be reached) stops the run. The
    /// default ignores it.
    async fn resume(&self, saved: Vec<u8>) -> Result<()> {
        let _ = saved;
        Ok(())
    }
}

/// Forwards the trait through smart pointers, so `Arc<dyn DirectorySink>` and
/// `Box<dyn DirectorySink>` are sinks too.
macro_rules! forward_sink {
    ($($ptr:ident)::+) => {
        #[async_trait]
        impl<T: DirectorySink + ?Sized> DirectorySink for $($ptr)::+<T> {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn capabilities(&self) -> SinkCapabilities {
                (**self).capabilities()
            }
            async fn current(&self, key: &UserKey) -> Result<Option<CurrentPhoto>> {
                (**self).current(key).await
            }
            async fn put(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>> {
                (**self).put(key, jpeg).await
            }
            async fn delete(&self, key: &UserKey) -> Result<()> {
                (**self).delete(key).await
            }
            async fn fetch(&self, key: &UserKey) -> Result<Option<Bytes>> {
                (**self).fetch(key).await
            }
            async fn prefetch(&self, keys: &[UserKey]) -> Result<()> {
                (**self).prefetch(keys).await
            }
            async fn users_with_photos(&self) -> Result<Vec<UserKey>> {
                (**self).users_with_photos().await
            }
            async fn snapshot(&self) -> Result<Option<Vec<u8>>> {
                (**self).snapshot().await
            }
            async fn resume(&self, saved: Vec<u8>) -> Result<()> {
                (**self).resume(saved).await
            }
        }
    };
}

forward_sink!(std::sync::Arc);
forward_sink!(Box);

/// Compile-time proof that the trait is object-safe.
#[allow(dead_code)]
fn _object_safe(_: &dyn DirectorySink, _: std::sync::Arc<dyn DirectorySink>) {}
