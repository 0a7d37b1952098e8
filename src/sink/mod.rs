//! Where photos go: the [`DirectorySink`] trait and its implementations.
//!
//! * [`MemorySink`]: a directory in memory (tests, examples, dry runs).
//! * [`LdifSink`]: an LDIF export in, an LDIF change file out (offline, no credentials).
//! * [`FolderSink`]: a folder of `<key>.jpg` files with a manifest (offline), the photo
//!   export that badge systems and intranets read.
//! * [`AdSink`]: Active Directory's `thumbnailPhoto` over LDAP (ldaps://, StartTLS; simple
//!   or Kerberos bind), configured with an [`LdapConfig`].
//! * [`GraphSink`]: Microsoft 365 profile photos through Microsoft Graph (client secret or
//!   certificate, national clouds, `Retry-After`, at most 4 requests in flight); the
//!   [`graph`] module explains its etag handling, batching and requests per run.
//!
//! A sink that can carry a snapshot of the directory from one run to the next (the AD sink)
//! offers the optional [`Incremental`] extension.

#[cfg(feature = "ad")]
mod ad;
mod folder;
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
pub use ad::{AdPreflight, AdSink, AdSinkBuilder, ReadStats, AD_MAX_BYTES, GSSAPI_PLAIN_MAX_BYTES};
pub use folder::{FolderSink, FOLDER_MAX_KEY_BYTES};
#[cfg(feature = "graph")]
#[cfg_attr(docsrs, doc(cfg(feature = "graph")))]
pub use graph::{
    AssertionAlgorithm, GraphAuthMode, GraphCertificate, GraphCloud, GraphCredential,
    GraphCredentialChoice, GraphCredentialError, GraphPreflight, GraphSetting, GraphSink,
    GraphSinkBuilder, GraphUsers, ManagedIdentity, ManagedIdentityKind, PhotoPolicy,
    ResolvedGraphCredential, SyncSplit, WorkloadIdentity, GRAPH_DEFAULT_MAX_IN_FLIGHT,
    GRAPH_MAX_BYTES, GRAPH_PHOTO_WRITE_ROLES,
};
pub use ldif::{LdifSink, LdifSummary};
pub use memory::MemorySink;

use crate::normalize::BuiltinProfile;
use crate::{Result, UserKey};

/// What a sink can do, so the engine can plan for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SinkCapabilities {
    /// The largest photo the directory accepts, in bytes (AD: 102,400; Graph: 4,000,000).
    pub max_bytes: usize,
    /// The profile this sink is usually written with (AD and LDIF:
    /// [`AdThumbnail`](BuiltinProfile::AdThumbnail); Graph and folders:
    /// [`Graph`](BuiltinProfile::Graph)).
    /// Serialized as its name (`"ad-thumbnail"`, `"graph"`).
    pub default_profile: BuiltinProfile,
    /// Whether [`DirectorySink::current`] shows the stored bytes, as their value or their
    /// SHA-256 (AD does: it keeps the bytes it is given; Graph returns only a version tag,
    /// because it re-encodes uploads).
    pub returns_bytes: bool,
}

impl SinkCapabilities {
    /// Capabilities with the given byte limit and default profile, returning bytes.
    pub fn new(max_bytes: usize, default_profile: BuiltinProfile) -> Self {
        Self {
            max_bytes,
            default_profile,
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
/// A sink implements five methods: [`name`](Self::name), [`capabilities`](Self::capabilities),
/// [`current`](Self::current), [`put`](Self::put) and [`delete`](Self::delete). The others are
/// optional hooks whose defaults work for any sink:
///
/// * [`fetch`](Self::fetch) (the stored bytes, for backups): by default the bytes that
///   `current` returns.
/// * [`prefetch`](Self::prefetch) (resolve a run's users in one pass): by default nothing.
/// * [`users_with_photos`](Self::users_with_photos) (find leavers): by default
///   [`Unsupported`](crate::ErrorKind::Unsupported), and the engine then lists no leavers.
/// * [`incremental`](Self::incremental) (carry a snapshot from run to run, see
///   [`Incremental`]): by default `None`, and every run reads the directory afresh.
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

    /// The sink's incremental extension, when it has one: `None` (the default) for a sink
    /// that reads the directory afresh every run. See [`Incremental`].
    fn incremental(&self) -> Option<&dyn Incremental> {
        None
    }

    /// Completes what the writes so far produced, for a sink that writes a file for people
    /// to read: the [`LdifSink`] writes its change file here, sorted by user key, so the same
    /// run gives the same file whatever order the concurrent writes finished in. The sync
    /// engine calls it once its apply stage is over (also after a stopped run, for the
    /// writes that were made), and [`BackupStore::restore`](crate::sync::BackupStore::restore)
    /// after a restore. The default does nothing: a directory is written as each call lands.
    async fn finish(&self) -> Result<()> {
        Ok(())
    }

    /// The directory's own name for the user (a DN, a UPN), for people reading a plan or a
    /// review page; `None` when the sink has none at hand (it is never looked up for this
    /// alone). The default is `None`.
    async fn entry_name(&self, key: &UserKey) -> Option<String> {
        let _ = key;
        None
    }

    /// Whether the sink's own configuration leaves `key` out, and why: a Graph sink that
    /// writes only cloud-only users (`GraphUsers`) leaves synced ones out. Asked after
    /// [`prefetch`](Self::prefetch) and before [`current`](Self::current); such a user is
    /// neither read nor written and is planned as skipped with the matching
    /// [`Reason`](crate::sync::Reason). The default is `None`: every user is the sink's.
    fn excluded(&self, key: &UserKey) -> Option<Excluded> {
        let _ = key;
        None
    }
}

/// Why a sink leaves a user out by its own configuration: [`DirectorySink::excluded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Excluded {
    /// The user is synced from on-premises AD and the sink writes cloud-only users.
    SyncedUser,
    /// The user is cloud-only and the sink writes synced users.
    CloudOnlyUser,
}

/// An optional extension of a [`DirectorySink`]: a sink that can carry what it learnt about
/// the directory from one run to the next, so the next run reads only what changed.
///
/// A sink offers it through [`DirectorySink::incremental`]; the sync engine asks for it and,
/// when it is there, stores the [`snapshot`](Self::snapshot) in its
/// [`StateStore`](crate::sync::StateStore) after the apply stage and gives it back through
/// [`resume`](Self::resume) before the next run's [`prefetch`](DirectorySink::prefetch).
///
/// Why an extension and not two more methods of every sink: only a directory with a change
/// counter can say "nothing changed since" (Active Directory's update sequence numbers: the
/// [`AdSink`] keeps a connector space of every user's DN and photo hash with the USN from
/// which it is certain). Graph, LDIF and memory sinks have nothing to save, so nothing
/// imposes a snapshot lifecycle on them; the sink that has one owns it, and the engine only
/// asks.
///
/// The AD sink implements it, so with this trait in scope `ad.snapshot()` and
/// `ad.resume(saved)` work on an [`AdSink`] directly.
#[async_trait]
pub trait Incremental: Send + Sync {
    /// What the sink learnt about the directory this run, for the next run to start from.
    /// Return only what is certain: a write whose outcome is unknown is not a write done.
    /// An error or `None` leaves the stored snapshot as it was, so a snapshot must stay
    /// usable when a later run could not replace it.
    async fn snapshot(&self) -> Result<Option<Vec<u8>>>;

    /// Gives back what [`snapshot`](Self::snapshot) returned on an earlier run, before
    /// [`prefetch`](DirectorySink::prefetch). The sink checks that it still applies (the
    /// same server, scope and settings) and ignores it otherwise; a snapshot it cannot read
    /// is ignored as well. Only a run-level error (the directory cannot be reached) stops
    /// the run.
    async fn resume(&self, saved: Vec<u8>) -> Result<()>;
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
            fn incremental(&self) -> Option<&dyn Incremental> {
                (**self).incremental()
            }
            async fn finish(&self) -> Result<()> {
                (**self).finish().await
            }
            async fn entry_name(&self, key: &UserKey) -> Option<String> {
                (**self).entry_name(key).await
            }
            fn excluded(&self, key: &UserKey) -> Option<Excluded> {
                (**self).excluded(key)
            }
        }
    };
}

forward_sink!(std::sync::Arc);
forward_sink!(Box);

/// Compile-time proof that the traits are object-safe.
#[allow(dead_code)]
fn _object_safe(_: &dyn DirectorySink, _: std::sync::Arc<dyn DirectorySink>, _: &dyn Incremental) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink with the extension, to check that the pointer impls pass it on.
    #[derive(Debug)]
    struct Counting(MemorySink);

    #[async_trait]
    impl DirectorySink for Counting {
        fn name(&self) -> &str {
            "counting"
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
        fn incremental(&self) -> Option<&dyn Incremental> {
            Some(self)
        }
    }

    #[async_trait]
    impl Incremental for Counting {
        async fn snapshot(&self) -> Result<Option<Vec<u8>>> {
            Ok(Some(b"counting".to_vec()))
        }
        async fn resume(&self, _: Vec<u8>) -> Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn pointers_pass_the_extension_on_and_plain_sinks_have_none() {
        let arc: std::sync::Arc<dyn DirectorySink> =
            std::sync::Arc::new(Counting(MemorySink::new(100)));
        let boxed: Box<dyn DirectorySink> = Box::new(arc.clone());
        for s in [&arc as &dyn DirectorySink, &boxed] {
            let inc = s.incremental().expect("the wrapped sink's extension");
            assert_eq!(
                inc.snapshot().await.unwrap().as_deref(),
                Some(&b"counting"[..])
            );
        }
        assert!(MemorySink::new(100).incremental().is_none());
        assert!(std::sync::Arc::new(MemorySink::new(100))
            .incremental()
            .is_none());
    }

    #[test]
    fn capabilities_serialize_the_profile_by_name() {
        let c = SinkCapabilities::new(102_400, BuiltinProfile::AdThumbnail);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["default_profile"], "ad-thumbnail");
        let back: SinkCapabilities = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }
}
