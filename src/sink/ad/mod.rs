//! The Active Directory sink: `thumbnailPhoto` over LDAP (`ldap3` on tokio).
//!
//! By concern: `builder` (the settings), `resolve` (key -> entry resolution and the photo
//! reads), `incremental` (the USN-based read and the snapshot), `write` (put and delete),
//! `space` (the connector space and its snapshot format).

mod builder;
mod incremental;
mod preflight;
mod resolve;
mod space;
mod write;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use self::incremental::Run;
use self::space::{Snap, Space};
use super::{CurrentPhoto, DirectorySink, Incremental, SinkCapabilities};
#[cfg(doc)]
use crate::ldap::LdapConfig;
use crate::ldap::Pool;
use crate::normalize::BuiltinProfile;
use crate::{Error, ErrorKind, MatchAttribute, Result, UserKey};

/// AD's `thumbnailPhoto` limit (`rangeUpper` 102,400 bytes, MS-ADA3 2.307).
pub const AD_MAX_BYTES: usize = 102_400;

/// The largest photo sent over a GSSAPI bind without TLS: `ldap3` 0.12 cannot send a request
/// larger than the server's SASL buffer (about 64 KiB on AD and Samba), and the request holds
/// the DN and some framing besides the photo.
pub const GSSAPI_PLAIN_MAX_BYTES: usize = 63 * 1024;

/// Writes photos to Active Directory (or any LDAP directory) over LDAP.
///
/// ```no_run
/// use userphoto::ldap::LdapConfig;
/// use userphoto::sink::{AdSink, DirectorySink};
/// use userphoto::{MatchAttribute, Secret};
/// # async fn f() -> userphoto::Result<()> {
/// let conn = LdapConfig::new("ldaps://dc1.example.com", "DC=example,DC=com")
///     .simple_bind("svc-photos@example.com", Secret::from_env("AD_PASSWORD")?);
/// let sink = AdSink::builder(conn).match_attribute(MatchAttribute::Mail).build()?;
/// let now = sink.current(&"ann@example.com".into()).await?;
/// # Ok(()) }
/// ```
///
/// * **Users** are found by a subtree search below the base DN on the match attribute
///   (`sAMAccountName` by default), every value escaped per RFC 4515; an `objectGUID` key
///   is searched by its 16 bytes. [`prefetch`](DirectorySink::prefetch) resolves a whole
///   run's keys in one pass: searches of 200 keys each, or from 1000 keys on one paged
///   search of every user below the base DN (1000 entries per page, AD's page limit). It
///   keeps each user's DN, match values and the SHA-256 of the photo (not the photo), so
///   [`current`](DirectorySink::current) answers from memory (with
///   [`CurrentPhoto::sha256`]; a user searched one by one comes with the bytes too), and,
///   after a pass over everyone, so does
///   [`users_with_photos`](DirectorySink::users_with_photos); a put or delete updates that
///   memory. [`fetch`](DirectorySink::fetch) reads the stored bytes from the directory
///   (for backups). Search references are ignored. A key that matches two entries is
///   [`AmbiguousMatch`](ErrorKind::AmbiguousMatch) and nothing is written.
/// * **Incremental runs** (the sink's [`Incremental`] extension, through
///   [`incremental`](DirectorySink::incremental)). [`snapshot`](Incremental::snapshot) returns what the sink
///   knows (a connector space: per `objectGUID` the DN, the match values and the photo's
///   hash, with the domain controller's update sequence number (USN) from which it is
///   certain), and [`resume`](Incremental::resume) takes it back on the next run (the
///   sync engine does both through its [`StateStore`](crate::sync::StateStore)). The next
///   `prefetch` then reads only what changed since: nothing when the DC's
///   `highestCommittedUSN` has not moved; else one search of the naming context for the
///   objects changed since (`uSNChanged`, with the Show Deleted control, so deletions and
///   moves out of the base DN show), and, when some of them are below the base DN, one
///   search of the changed users there. A snapshot from another DC or database instance
///   (`dsServiceName`, `invocationId`), for another base DN, user filter, match or photo
///   attribute, or that cannot be read, is ignored: the sink reads everyone, as without
///   one. So is one an account cannot use because it cannot see deleted objects (reading
///   the Deleted Objects container needs administrator rights, or `LIST_CONTENTS` and
///   `READ_PROPERTY` delegated on it): it would miss deletions. A directory without
///   USNs (not AD) gets no snapshot. [`AdSink::last_read`] says how the last `prefetch` read.
/// * **Writes**: [`put`](DirectorySink::put) replaces the photo attribute (default
///   `thumbnailPhoto`); [`delete`](DirectorySink::delete) replaces it with no value (so an
///   absent photo is no error). A photo above `max_bytes` (102,400 by default) is
///   [`PhotoTooLarge`](ErrorKind::PhotoTooLarge) before anything is sent.
/// * **Errors** follow one table of LDAP result codes: 19, 20 and 21 on a write are a
///   rejected photo ([`InvalidPhoto`](ErrorKind::InvalidPhoto), permanent); 49 is
///   [`Unauthenticated`](ErrorKind::Unauthenticated) (it stops a run); 50 and 53 on a write
///   are [`PermissionDenied`](ErrorKind::PermissionDenied) for that user alone (as AD
///   refuses delegated rights on protected admin accounts), and the run goes on; 50 on a
///   search of the base DN, 32 for a missing base DN and a connection that cannot be made
///   again after it dropped stop the run; 51 and 52 are
///   [`Unavailable`](ErrorKind::Unavailable) and retried by the engine; 8 says that AD wants
///   TLS for a simple bind. A dropped connection is re-made and the operation (every one
///   here is idempotent) tried once more; then it is `Unavailable`.
/// * **Connections**: [`LdapConfig::connections`] connections (one by default), each with
///   any number of operations in flight; the engine's concurrency bounds them. A prefetch
///   reads over one of them, so from one DC; with several connections to a name that
///   several DCs answer, the writes may land on others, and the next run then reads again
///   what changed since this one started (see [`snapshot`](Incremental::snapshot)).
#[derive(Debug)]
pub struct AdSink {
    name: String,
    pool: Pool,
    matcher: MatchAttribute,
    attribute: String,
    max_bytes: usize,
    user_filter: String,
    profile: BuiltinProfile,
    state: Mutex<State>,
}

/// How the last [`prefetch`](DirectorySink::prefetch) of an [`AdSink`] read the directory
/// ([`AdSink::last_read`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadStats {
    /// Whether it read without a snapshot (a paged search of every user below the base DN,
    /// or searches for the run's keys); `false` when it read only what changed since the
    /// snapshot given to [`resume`](Incremental::resume).
    pub full: bool,
    /// How many entries the directory returned.
    pub entries: usize,
    /// For an incremental read: the snapshot's watermark, the update sequence number after
    /// which it read the changes.
    pub since_usn: Option<u64>,
    /// Why it read that way, in words (`no snapshot`, `the saved snapshot was made for
    /// another base DN`, `changes since USN 4711`, ...).
    pub reason: String,
}

/// What the sink knows, and the bookkeeping of the current run.
#[derive(Debug, Default)]
struct State {
    /// From `resume`: the snapshot for the next prefetch, or why it is not used.
    resumed: Option<std::result::Result<Snap, String>>,
    /// The users the sink knows (the connector space).
    space: Space,
    /// Canonical key -> ids of its entries in `space`, this run. Keys searched one by one
    /// are here too (an empty list: searched, nobody).
    resolved: HashMap<String, Vec<String>>,
    /// Entries a failed write may have changed: `current` reads them again.
    unsure: HashSet<String>,
    /// Whether the space came from a snapshot (so it may hold an entry gone since that
    /// this account could not see go).
    from_snapshot: bool,
    /// Keys searched one by one this run.
    checked: HashSet<String>,
    /// The watermark bookkeeping, after a prefetch that can make a snapshot.
    run: Option<Run>,
    last_read: Option<ReadStats>,
}

pub use builder::AdSinkBuilder;
pub use preflight::AdPreflight;

impl AdSink {
    /// Connects and binds now (otherwise the first call does): a quick check of the URL,
    /// TLS and credentials before a run.
    pub async fn check(&self) -> Result<()> {
        self.pool.handle("bind", None).await.map(|_| ())
    }

    /// How the last [`prefetch`](DirectorySink::prefetch) read the directory: everyone, the
    /// run's keys, or only what changed since a [`resume`](Incremental::resume)d
    /// snapshot, how many entries came back, and why. `None` before the first prefetch.
    ///
    /// ```no_run
    /// # use userphoto::sink::{AdSink, DirectorySink, Incremental, LdapConfig, Secret};
    /// # async fn f(sink: AdSink, saved: Vec<u8>) -> userphoto::Result<()> {
    /// sink.resume(saved).await?;
    /// sink.prefetch(&["ann".into(), "bob".into()]).await?;
    /// let read = sink.last_read().unwrap();
    /// println!("{} entries read ({})", read.entries, read.reason);
    /// # Ok(()) }
    /// ```
    pub fn last_read(&self) -> Option<ReadStats> {
        self.lock().last_read.clone()
    }

    fn fail(&self, kind: ErrorKind, op: &'static str, key: &UserKey, msg: String) -> Error {
        Error::new(kind, msg)
            .with_backend(self.name.clone())
            .with_operation(op)
            .with_user(key.clone())
    }

    /// Our errors name this sink (the pool names the backend `ad`).
    fn named(&self, e: Error) -> Error {
        if e.backend() == self.name {
            e
        } else {
            e.with_backend(self.name.clone())
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl DirectorySink for AdSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::new(self.max_bytes, self.profile)
    }

    /// From memory after a prefetch (the photo's SHA-256, no bytes); a user searched one by
    /// one comes with the bytes.
    async fn current(&self, key: &UserKey) -> Result<Option<CurrentPhoto>> {
        self.current_photo(key).await
    }

    async fn put(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>> {
        self.put_photo(key, jpeg).await
    }

    async fn delete(&self, key: &UserKey) -> Result<()> {
        self.write("delete", key, None).await
    }

    /// The stored bytes, read from the directory (a base-scope read of the user's DN).
    async fn fetch(&self, key: &UserKey) -> Result<Option<Bytes>> {
        self.fetch_photo(key).await
    }

    async fn prefetch(&self, keys: &[UserKey]) -> Result<()> {
        self.read(keys).await
    }

    /// The user's DN, when this run resolved the key to exactly one entry.
    async fn entry_name(&self, key: &UserKey) -> Option<String> {
        let canon = self.matcher.canonical(key.as_str())?;
        let st = self.lock();
        match st.resolved.get(&canon).map(Vec::as_slice) {
            Some([id]) => st.space.entries.get(id).map(|e| e.dn.clone()),
            _ => None,
        }
    }

    async fn users_with_photos(&self) -> Result<Vec<UserKey>> {
        self.with_photos().await
    }

    /// The connector space: see [`Incremental`].
    fn incremental(&self) -> Option<&dyn Incremental> {
        Some(self)
    }
}
