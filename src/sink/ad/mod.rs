//! The Active Directory sink: `thumbnailPhoto` over LDAP (`ldap3` on tokio).

mod space;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapError, Mod, Scope, SearchEntry};

use self::space::{Entry, ScopeId, ServerId, Snap, Space};
use super::{CurrentPhoto, DirectorySink, Incremental, SinkCapabilities};
use crate::digest::sha256_hex;
use crate::key::{guid_from_bytes, guid_to_bytes};
use crate::ldap::{
    dn_within, entry_of_result, escape_filter_bytes, escape_filter_value, paged_search,
    paged_search_with, values, LdapConfig, OpClass, Pool,
};
use crate::normalize::BuiltinProfile;
use crate::{Error, ErrorKind, MatchAttribute, Result, UserKey};

/// AD's `thumbnailPhoto` limit (`rangeUpper` 102,400 bytes, MS-ADA3 2.307).
pub const AD_MAX_BYTES: usize = 102_400;

/// The largest photo sent over a GSSAPI bind without TLS: `ldap3` 0.12 cannot send a request
/// larger than the server's SASL buffer (about 64 KiB on AD and Samba), and the request holds
/// the DN and some framing besides the photo.
pub const GSSAPI_PLAIN_MAX_BYTES: usize = 63 * 1024;

/// Source keys per search when resolving users in one pass.
const CHUNK: usize = 200;

/// From this many keys on, `prefetch` reads every user below the base DN in one paged
/// search instead of searching for the keys 200 at a time.
const SCAN_FROM: usize = 1000;

/// The Show Deleted control (MS-ADTS 3.1.1.3.4.1.14): searches also return tombstones.
const SHOW_DELETED: &str = "1.2.840.113556.1.4.417";

/// The well-known GUID of a naming context's Deleted Objects container.
const DELETED_OBJECTS_WKGUID: &str = "18e2ea80684f11d2b9aa00c04f79f805";

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

/// What `snapshot` needs to set the watermark (see `space::next_watermark`).
#[derive(Debug)]
struct Run {
    server: ServerId,
    /// `highestCommittedUSN`, read before the prefetch's first search.
    h0: u64,
    /// When the prefetch started (Unix seconds): the snapshot's age counts from here.
    t0: u64,
    /// Successful modifies of ours that had to raise the USN by one each.
    mods: u64,
    /// False once a successful modify may have raised it by nothing.
    exact: bool,
}

/// What the rootDSE and friends say about the DC, for an AD.
#[derive(Debug)]
struct Root {
    /// `highestCommittedUSN`.
    usn: u64,
    /// The DC and its database instance, when its `invocationId` is readable.
    server: Option<ServerId>,
    /// `defaultNamingContext`.
    nc: Option<String>,
    /// The base DN as the server writes it (`None`: no such entry).
    base: Option<String>,
    /// Whether this account sees deleted objects.
    tombstones: bool,
    /// How old a snapshot may be (seconds), given how long the DC keeps tombstones.
    max_age: u64,
}

impl Root {
    /// The DC's identity when the sink can read it incrementally, else why not.
    fn incremental(&self) -> std::result::Result<&ServerId, String> {
        let server = self
            .server
            .as_ref()
            .ok_or("the DC's invocationId cannot be read")?;
        let (Some(nc), Some(base)) = (&self.nc, &self.base) else {
            return Err("the base DN or the default naming context cannot be read".into());
        };
        if !dn_within(base, nc) {
            return Err(format!("the base DN is not in the naming context {nc}"));
        }
        if !self.tombstones {
            return Err("this account cannot see deleted objects (CN=Deleted Objects)".into());
        }
        Ok(server)
    }
}

/// How a prefetch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// Every user below the base DN.
    Everyone,
    /// The run's keys.
    Keys,
    /// The changes since the snapshot's watermark.
    Changes(u64),
}

/// What one pass over the directory returned.
struct Pass {
    root: Option<Root>,
    how: How,
    reason: String,
    /// Everyone (`How::Everyone`), or the users changed below the base DN: each entry made
    /// its id and [`Entry`] (the photo's hash, no bytes) as it arrived.
    users: Vec<(String, Entry)>,
    /// The GUIDs of the objects of the naming context changed since the watermark.
    changed: Vec<String>,
    /// What the searches for keys found (as `users`).
    keyed: Vec<(String, Entry)>,
    /// The keys searched.
    searched: Vec<String>,
}

/// Settings of an [`AdSink`]; made by [`AdSink::builder`].
#[derive(Debug, Clone)]
pub struct AdSinkBuilder {
    conn: LdapConfig,
    name: String,
    matcher: MatchAttribute,
    attribute: String,
    max_bytes: usize,
    user_filter: String,
    profile: BuiltinProfile,
}

impl AdSinkBuilder {
    /// The sink's name in reports, the state store and backups (default `ad`; give each of
    /// two AD sinks its own).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The attribute that keys are matched against (default `sAMAccountName`).
    pub fn match_attribute(mut self, m: MatchAttribute) -> Self {
        self.matcher = m;
        self
    }

    /// The photo attribute (default `thumbnailPhoto`; `jpegPhoto`, `thumbnailLogo`...).
    pub fn attribute(mut self, name: impl Into<String>) -> Self {
        self.attribute = name.into();
        self
    }

    /// The largest photo sent (default 102,400 bytes, AD's limit for `thumbnailPhoto`).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// The filter that selects user entries, combined with the match attribute's. The
    /// default, `(&(objectCategory=person)(objectClass=user))`, is AD's idiom for people: user accounts, not
    /// computers (whose `objectClass` is `user` too) nor contacts; indexed, it is also
    /// cheaper for the DC to evaluate than `(objectClass=user)` (a quarter less time for a
    /// paged pass over 2,000 users on the Samba test DC).
    pub fn user_filter(mut self, filter: impl Into<String>) -> Self {
        self.user_filter = filter.into();
        self
    }

    /// The profile the engine uses by default ([`BuiltinProfile::AdThumbnail`];
    /// [`BuiltinProfile::AdLarge`] for 648 px in 102,400 bytes).
    pub fn default_profile(mut self, profile: BuiltinProfile) -> Self {
        self.profile = profile;
        self
    }

    /// Checks the settings and makes the sink. Nothing is sent until the first call; a bad
    /// password shows at the first call (a run-level error from `prefetch`).
    pub fn build(self) -> Result<AdSink> {
        let cfg_err = |m: String| {
            Error::new(ErrorKind::Config, m)
                .with_backend(self.name.clone())
                .with_operation("build")
        };
        if !valid_attribute(&self.attribute) {
            return Err(cfg_err(format!(
                "{:?} is not an LDAP attribute name",
                self.attribute
            )));
        }
        if !valid_attribute(self.matcher.ldap_name()) {
            return Err(cfg_err(format!(
                "{:?} is not an LDAP attribute name",
                self.matcher.ldap_name()
            )));
        }
        let f = self.user_filter.trim();
        if !(f.starts_with('(') && f.ends_with(')')) {
            return Err(cfg_err(format!("user filter {f:?} must be in parentheses")));
        }
        if self.max_bytes == 0 {
            return Err(cfg_err("max_bytes must be above 0".into()));
        }
        let pool = Pool::new(self.conn, "ad")?;
        let mut max_bytes = self.max_bytes;
        if pool.config().gssapi_without_tls() {
            max_bytes = max_bytes.min(GSSAPI_PLAIN_MAX_BYTES);
        }
        Ok(AdSink {
            name: self.name,
            pool,
            matcher: self.matcher,
            attribute: self.attribute,
            max_bytes,
            user_filter: f.to_owned(),
            profile: self.profile,
            state: Mutex::new(State::default()),
        })
    }
}

fn valid_attribute(a: &str) -> bool {
    a.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The first value of the entry's photo attribute, if any.
fn photo_of(e: &SearchEntry, attr: &str) -> Option<Bytes> {
    values(e, attr)
        .into_iter()
        .next()
        .map(Bytes::copy_from_slice)
}

/// The first value of `attr` as text.
fn text_of(e: &SearchEntry, attr: &str) -> Option<String> {
    values(e, attr)
        .first()
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
}

/// A photo known by its bytes and their hash.
fn photo_with_hash(b: Bytes) -> CurrentPhoto {
    let mut c = CurrentPhoto::from_bytes(b);
    c.sha256 = c.content_sha256();
    c
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn show_deleted() -> RawControl {
    RawControl {
        ctype: SHOW_DELETED.into(),
        crit: true,
        val: None,
    }
}

/// A base-scope read on `ldap`: `None` when the server answers anything but success (32
/// for a DN that does not exist, or no entry for one the account may not see).
async fn read_base(
    ldap: &Ldap,
    dn: &str,
    attrs: &[&str],
    timeout: std::time::Duration,
    controls: Vec<RawControl>,
) -> std::result::Result<Option<SearchEntry>, LdapError> {
    let mut l = ldap.clone();
    l.with_timeout(timeout);
    if !controls.is_empty() {
        l.with_controls(controls);
    }
    let res = l
        .search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
        .await?;
    if res.1.rc != 0 {
        return Ok(None);
    }
    res.0
        .into_iter()
        .find(|e| !e.is_ref() && !e.is_intermediate())
        .map(entry_of_result)
        .transpose()
}

impl AdSink {
    /// Settings for a sink writing through `conn`: matching on `sAMAccountName`, writing
    /// `thumbnailPhoto`, at most 102,400 bytes.
    pub fn builder(conn: LdapConfig) -> AdSinkBuilder {
        AdSinkBuilder {
            conn,
            name: "ad".into(),
            matcher: MatchAttribute::default(),
            attribute: "thumbnailPhoto".into(),
            max_bytes: AD_MAX_BYTES,
            user_filter: "(&(objectCategory=person)(objectClass=user))".into(),
            profile: BuiltinProfile::AdThumbnail,
        }
    }

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

    fn scope_id(&self) -> ScopeId {
        ScopeId {
            base_dn: self.pool.config().base_dn().trim().to_lowercase(),
            user_filter: self.user_filter.clone(),
            match_attribute: self.matcher.ldap_name().to_ascii_lowercase(),
            photo_attribute: self.attribute.to_ascii_lowercase(),
        }
    }

    fn fail(&self, kind: ErrorKind, op: &'static str, key: &UserKey, msg: String) -> Error {
        Error::new(kind, msg)
            .with_backend(self.name.clone())
            .with_operation(op)
            .with_user(key.clone())
    }

    /// A write refused for one user (50 or 53): that user's failure, with what to do.
    fn refused(&self, op: &'static str, key: &UserKey, dn: &str, server: &str) -> Error {
        self.fail(
            ErrorKind::PermissionDenied,
            op,
            key,
            format!(
                "no write access to {} on {dn}: {server}; as for protected admin accounts (AdminSDHolder keeps delegated rights off them): delegate on AdminSDHolder or leave them out",
                self.attribute
            ),
        )
        .user_level()
        .permanent()
    }

    /// Our errors name this sink (the pool names the backend `ad`).
    fn named(&self, e: Error) -> Error {
        if e.backend() == self.name {
            e
        } else {
            e.with_backend(self.name.clone())
        }
    }

    /// The filter clause for one canonical key.
    fn clause(&self, canonical: &str) -> Option<String> {
        let attr = self.matcher.ldap_name();
        let value = if self.matcher == MatchAttribute::ObjectGuid {
            escape_filter_bytes(&guid_to_bytes(canonical)?)
        } else {
            escape_filter_value(canonical)
        };
        Some(format!("({attr}={value})"))
    }

    /// The canonical forms of an entry's match-attribute values.
    fn canonical_values(&self, e: &SearchEntry) -> Vec<String> {
        values(e, self.matcher.ldap_name())
            .into_iter()
            .filter_map(|v| {
                if self.matcher == MatchAttribute::ObjectGuid {
                    guid_from_bytes(v)
                } else {
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| self.matcher.canonical(s))
                }
            })
            .collect()
    }

    /// The first match value of an entry as the directory holds it (GUIDs as strings).
    fn raw_key(&self, e: &SearchEntry) -> Option<String> {
        let v = *values(e, self.matcher.ldap_name()).first()?;
        if self.matcher == MatchAttribute::ObjectGuid {
            guid_from_bytes(v)
        } else {
            std::str::from_utf8(v).ok().map(str::to_owned)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The attributes read for each user.
    fn user_attrs(&self) -> Vec<String> {
        let mut a = vec!["objectGUID".to_owned()];
        for x in [self.matcher.ldap_name(), self.attribute.as_str()] {
            if !a.iter().any(|y| y.eq_ignore_ascii_case(x)) {
                a.push(x.to_owned());
            }
        }
        a
    }

    /// A search result as an entry of the space (its id, the entry, the photo's bytes).
    fn entry_of(&self, e: &SearchEntry) -> (String, Entry, Option<Bytes>) {
        let (id, entry) = self.entry_only(e);
        (id, entry, photo_of(e, &self.attribute))
    }

    /// A search result as an entry of the space, keeping the photo's hash and not its bytes.
    fn entry_only(&self, e: &SearchEntry) -> (String, Entry) {
        let id = values(e, "objectGUID")
            .first()
            .and_then(|g| guid_from_bytes(g))
            .unwrap_or_else(|| format!("dn:{}", e.dn.to_lowercase()));
        let entry = Entry {
            dn: e.dn.clone(),
            key: self.raw_key(e).unwrap_or_default(),
            values: self.canonical_values(e),
            sha256: values(e, &self.attribute).first().map(|p| sha256_hex(p)),
        };
        (id, entry)
    }

    /// A paged subtree search of users on `ldap`, each entry reduced to its id and
    /// [`Entry`] as it arrives: the photos' bytes are never kept past their entry.
    async fn search_users(
        &self,
        ldap: &Ldap,
        base: &str,
        filter: &str,
    ) -> std::result::Result<Vec<(String, Entry)>, LdapError> {
        let mut l = ldap.clone();
        paged_search_with(
            &mut l,
            base,
            Scope::Subtree,
            filter,
            self.user_attrs(),
            self.pool.page_size(),
            self.pool.timeout(),
            Vec::new(),
            |e| Some(self.entry_only(&e)),
        )
        .await
    }

    /// A paged subtree search on `ldap`.
    async fn search_on(
        &self,
        ldap: &Ldap,
        base: &str,
        filter: &str,
        attrs: Vec<String>,
        controls: Vec<RawControl>,
    ) -> std::result::Result<Vec<SearchEntry>, LdapError> {
        let mut l = ldap.clone();
        paged_search(
            &mut l,
            base,
            Scope::Subtree,
            filter,
            attrs,
            self.pool.page_size(),
            self.pool.timeout(),
            controls,
        )
        .await
    }

    /// The DC's rootDSE facts, its identity, the server's form of the base DN, and
    /// whether this account sees deleted objects; `None` for a directory without USNs.
    async fn read_root(&self, ldap: &Ldap) -> std::result::Result<Option<Root>, LdapError> {
        let t = self.pool.timeout();
        let attrs = [
            "highestCommittedUSN",
            "dsServiceName",
            "defaultNamingContext",
            "configurationNamingContext",
        ];
        let Some(dse) = read_base(ldap, "", &attrs, t, Vec::new()).await? else {
            return Ok(None);
        };
        let Some(usn) = text_of(&dse, "highestCommittedUSN").and_then(|u| u.trim().parse().ok())
        else {
            return Ok(None);
        };
        let service = text_of(&dse, "dsServiceName");
        let nc = text_of(&dse, "defaultNamingContext");
        let config = text_of(&dse, "configurationNamingContext");
        let lifetimes = async {
            match &config {
                Some(c) => {
                    let dn = format!("CN=Directory Service,CN=Windows NT,CN=Services,{c}");
                    let attrs = ["tombstoneLifetime", "msDS-deletedObjectLifetime"];
                    read_base(ldap, &dn, &attrs, t, Vec::new()).await
                }
                None => Ok(None),
            }
        };
        let ntds = async {
            match &service {
                Some(s) => read_base(ldap, s, &["invocationId"], t, Vec::new()).await,
                None => Ok(None),
            }
        };
        let base = read_base(ldap, self.pool.config().base_dn(), &["1.1"], t, Vec::new());
        // Reading the container's own attributes needs the rights that listing its
        // tombstones needs (by default both are granted to administrators only).
        let deleted = async {
            match &nc {
                Some(nc) => {
                    let dn = format!("<WKGUID={DELETED_OBJECTS_WKGUID},{nc}>");
                    read_base(ldap, &dn, &["objectGUID"], t, vec![show_deleted()]).await
                }
                None => Ok(None),
            }
        };
        let (ntds, base, deleted, lifetimes) = futures::try_join!(ntds, base, deleted, lifetimes)?;
        let days = |a: &str| {
            lifetimes
                .as_ref()
                .and_then(|e| text_of(e, a))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let max_age = space::max_age_secs(
            lifetimes.is_some(),
            days("tombstoneLifetime"),
            days("msDS-deletedObjectLifetime"),
        );
        let invocation = ntds.and_then(|e| {
            values(&e, "invocationId")
                .first()
                .and_then(|v| guid_from_bytes(v))
        });
        let server = match (service, invocation) {
            (Some(service), Some(invocation_id)) => Some(ServerId {
                service,
                invocation_id,
            }),
            _ => None,
        };
        Ok(Some(Root {
            usn,
            server,
            nc,
            base: base.map(|e| e.dn),
            tombstones: deleted.is_some_and(|e| !values(&e, "objectGUID").is_empty()),
            max_age,
        }))
    }

    /// Searches for keys, 200 a search, 4 searches at a time.
    async fn search_keys(
        &self,
        ldap: &Ldap,
        keys: &[String],
    ) -> std::result::Result<Vec<(String, Entry)>, LdapError> {
        let base = self.pool.config().base_dn();
        let chunks: Vec<Vec<String>> = keys.chunks(CHUNK).map(<[String]>::to_vec).collect();
        let found: Vec<Vec<(String, Entry)>> = stream::iter(chunks)
            .map(|chunk: Vec<String>| async move {
                let clauses: String = chunk.iter().filter_map(|c| self.clause(c)).collect();
                let filter = format!("(&{}(|{clauses}))", self.user_filter);
                self.search_users(ldap, base, &filter).await
            })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// One pass over the directory on one connection (so from one DC): the rootDSE, then
    /// everyone, the keys, or what changed since the snapshot `resumed`.
    async fn read_pass(
        &self,
        ldap: Ldap,
        canon: &[String],
        resumed: Option<&Snap>,
    ) -> std::result::Result<Pass, LdapError> {
        let root = self.read_root(&ldap).await?;
        let mut reason = String::new();
        let mut from: Option<(&Snap, &Root)> = None;
        if let Some(s) = resumed {
            match &root {
                None => {
                    reason =
                        "the directory has no update sequence numbers (not Active Directory)".into()
                }
                Some(r) => match r.incremental() {
                    Err(why) => reason = why,
                    Ok(server) if *server != s.server => {
                        reason = "the saved snapshot is from another domain controller or database instance".into()
                    }
                    Ok(_) if now_secs().saturating_sub(s.made) > r.max_age => {
                        reason = format!(
                            "the saved snapshot is over {} days old: deletions since may be forgotten by the DC",
                            r.max_age / 86_400
                        )
                    }
                    Ok(_) if r.usn < s.watermark => {
                        reason = format!(
                            "the DC's highestCommittedUSN {} is below the snapshot's {} (a restored database?)",
                            r.usn, s.watermark
                        )
                    }
                    Ok(_) if space::full_pass_is_cheaper(
                        r.usn.saturating_sub(s.watermark),
                        s.all.then_some(s.entries.len()),
                        canon.len(),
                    ) =>
                    {
                        reason = format!(
                            "{} changes on the DC since the saved snapshot of {} users: reading everyone is cheaper",
                            r.usn.saturating_sub(s.watermark),
                            s.entries.len()
                        )
                    }
                    Ok(_) => from = Some((s, r)),
                },
            }
        }
        let mut searched: Vec<String> = match from {
            Some((s, _)) if !s.all => canon
                .iter()
                .filter(|k| !s.covered.contains(*k))
                .cloned()
                .collect(),
            Some(_) => Vec::new(),
            None => canon.to_vec(),
        };
        if from.is_some() && searched.len() >= SCAN_FROM {
            reason = format!("{} keys are not in the saved snapshot", searched.len());
            from = None;
            searched = canon.to_vec();
        }
        let base_dn = self.pool.config().base_dn();
        let mut pass = Pass {
            root: None,
            how: How::Keys,
            reason,
            users: Vec::new(),
            changed: Vec::new(),
            keyed: Vec::new(),
            searched: Vec::new(),
        };
        match from {
            None if canon.len() >= SCAN_FROM => {
                // Many keys: one paged pass over every user who has the match attribute.
                pass.how = How::Everyone;
                let filter = format!("(&{}({}=*))", self.user_filter, self.matcher.ldap_name());
                pass.users = self.search_users(&ldap, base_dn, &filter).await?;
                searched.clear();
            }
            None => {}
            Some((s, r)) => {
                let w = s.watermark;
                pass.how = How::Changes(w);
                // An unmoved highestCommittedUSN: nothing changed anywhere on this DC.
                if r.usn > w {
                    let nc = r.nc.as_deref().unwrap_or_default();
                    let base = r.base.as_deref().unwrap_or_default();
                    // Everything changed in the naming context, tombstones included: an
                    // entry of the snapshot among them that is not among the changed
                    // users below the base DN is gone, moved out or no longer a user.
                    let changed = self
                        .search_on(
                            &ldap,
                            nc,
                            &format!("(uSNChanged>={})", w.saturating_add(1)),
                            vec!["objectGUID".into(), "isDeleted".into()],
                            vec![show_deleted()],
                        )
                        .await?;
                    let deleted = |e: &SearchEntry| {
                        text_of(e, "isDeleted").is_some_and(|v| v.eq_ignore_ascii_case("TRUE"))
                    };
                    let below = changed
                        .iter()
                        .any(|e| !deleted(e) && dn_within(&e.dn, base));
                    pass.changed = changed
                        .iter()
                        .filter_map(|e| guid_from_bytes(values(e, "objectGUID").first()?))
                        .collect();
                    if below {
                        let filter = format!(
                            "(&{}({}=*)(uSNChanged>={}))",
                            self.user_filter,
                            self.matcher.ldap_name(),
                            w.saturating_add(1)
                        );
                        pass.users = self.search_users(&ldap, base_dn, &filter).await?;
                    }
                }
            }
        }
        if !searched.is_empty() {
            pass.keyed = self.search_keys(&ldap, &searched).await?;
        }
        pass.searched = searched;
        pass.root = root;
        Ok(pass)
    }

    /// The one entry of `key` (its id and DN): from memory, else from a search (then with
    /// the photo's bytes).
    async fn resolve(
        &self,
        op: &'static str,
        key: &UserKey,
    ) -> Result<(String, String, Option<Option<Bytes>>)> {
        let invalid = || {
            self.fail(
                ErrorKind::UserNotFound,
                op,
                key,
                format!("not a valid {} value", self.matcher),
            )
        };
        let canon = self.matcher.canonical(key.as_str()).ok_or_else(invalid)?;
        let known: Option<Vec<(String, String)>> = {
            let st = self.lock();
            st.resolved.get(&canon).and_then(|ids| {
                let found: Option<Vec<(String, String)>> = ids
                    .iter()
                    .map(|id| st.space.entries.get(id).map(|e| (id.clone(), e.dn.clone())))
                    .collect();
                // Two entries known from a snapshot: ask the directory before calling the
                // key ambiguous.
                found.filter(|f| f.len() < 2 || !st.from_snapshot || st.checked.contains(&canon))
            })
        };
        let (found, mut fresh) = match known {
            Some(f) => (f, None),
            None => {
                let clause = self.clause(&canon).ok_or_else(invalid)?;
                let filter = format!("(&{}{clause})", self.user_filter);
                let attrs = self.user_attrs();
                let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
                let entries = self
                    .pool
                    .search(op, Some(key), &filter, &attrs)
                    .await
                    .map_err(|e| self.named(e))?;
                let parsed: Vec<_> = entries.iter().map(|e| self.entry_of(e)).collect();
                let mut found = Vec::new();
                let mut photos = HashMap::new();
                let mut st = self.lock();
                for (id, e, p) in parsed {
                    found.push((id.clone(), e.dn.clone()));
                    photos.insert(id.clone(), p);
                    st.space.entries.insert(id, e);
                }
                st.resolved
                    .insert(canon.clone(), found.iter().map(|f| f.0.clone()).collect());
                st.checked.insert(canon);
                (found, Some(photos))
            }
        };
        match found.as_slice() {
            [] => Err(self.fail(
                ErrorKind::UserNotFound,
                op,
                key,
                format!(
                    "no entry with {}={} below {}",
                    self.matcher,
                    key,
                    self.pool.config().base_dn()
                ),
            )),
            [(id, dn)] => {
                let photo = fresh.as_mut().and_then(|p| p.remove(id));
                Ok((id.clone(), dn.clone(), photo))
            }
            many => Err(self.fail(
                ErrorKind::AmbiguousMatch,
                op,
                key,
                format!(
                    "{} entries have {}={key}, nothing written: {}",
                    many.len(),
                    self.matcher,
                    many.iter()
                        .map(|f| f.1.as_str())
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
            )),
        }
    }

    /// Forgets an entry that is gone (or no longer at its DN), so its key is searched again.
    fn forget(&self, key: &UserKey, id: &str) {
        let mut st = self.lock();
        st.space.entries.remove(id);
        st.unsure.remove(id);
        if let Some(canon) = self.matcher.canonical(key.as_str()) {
            st.resolved.remove(&canon);
        }
    }

    /// Reads the entry's photo from the directory (and keeps its hash).
    async fn read_photo(
        &self,
        op: &'static str,
        key: &UserKey,
        id: &str,
        dn: &str,
    ) -> Result<Option<Bytes>> {
        let e = self
            .pool
            .read_entry(op, Some(key), dn, &[&self.attribute])
            .await
            .map_err(|e| self.named(e))?;
        let Some(e) = e else {
            self.forget(key, id);
            return Err(self.fail(ErrorKind::UserNotFound, op, key, format!("{dn} is gone")));
        };
        let p = photo_of(&e, &self.attribute);
        let mut st = self.lock();
        if let Some(entry) = st.space.entries.get_mut(id) {
            entry.sha256 = p.as_deref().map(sha256_hex);
        }
        st.unsure.remove(id);
        Ok(p)
    }

    async fn write(&self, op: &'static str, key: &UserKey, jpeg: Option<&Bytes>) -> Result<()> {
        let (id, dn, _) = self.resolve(op, key).await?;
        let new_sha = jpeg.map(|j| sha256_hex(j));
        // The photo the sink knows for the entry before this write (see `snapshot`).
        let before = self.lock().space.entries.get(&id).map(|e| e.sha256.clone());
        let attr = Bytes::from(self.attribute.clone().into_bytes());
        let t = self.pool.timeout();
        let r = self
            .pool
            .run(OpClass::Write, op, Some(key), |mut ldap| {
                let values: HashSet<Bytes> = jpeg.into_iter().cloned().collect();
                let m = vec![Mod::Replace(attr.clone(), values)];
                let dn = dn.as_str();
                async move {
                    let r = ldap.with_timeout(t).modify(dn, m).await?;
                    // A delete of an absent value is done already.
                    if r.rc == 16 && jpeg.is_none() {
                        return Ok(());
                    }
                    r.success().map(|_| ())
                }
            })
            .await;
        match r {
            Ok(()) => {
                let mut st = self.lock();
                let st = &mut *st;
                if let Some(e) = st.space.entries.get_mut(&id) {
                    e.sha256 = new_sha.clone();
                }
                st.unsure.remove(&id);
                if let Some(run) = &mut st.run {
                    match before {
                        // It changed the photo the sink knew: one USN, unless somebody
                        // wrote these very bytes in between (and raised it for us).
                        Some(b) if b != new_sha => run.mods += 1,
                        // It may have changed nothing at all: the watermark stays put.
                        _ => run.exact = false,
                    }
                }
                Ok(())
            }
            Err(e) => {
                let gone = e.kind() == ErrorKind::UserNotFound;
                if gone {
                    self.forget(key, &id);
                } else {
                    // It may have landed or not: `current` reads the photo again; the
                    // snapshot keeps what was certain (the USNs tell the next run).
                    self.lock().unsure.insert(id);
                }
                let e = self.named(e);
                Err(if gone {
                    self.fail(
                        ErrorKind::UserNotFound,
                        op,
                        key,
                        format!("{dn}: {}", e.message()),
                    )
                    .user_level()
                } else if e.kind() == ErrorKind::PermissionDenied && !e.is_run_level() {
                    self.refused(op, key, &dn, e.message())
                } else {
                    e
                })
            }
        }
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
        let (id, dn, fresh) = self.resolve("current", key).await?;
        if let Some(p) = fresh {
            return Ok(p.map(photo_with_hash));
        }
        let known = {
            let st = self.lock();
            st.space
                .entries
                .get(&id)
                .filter(|_| !st.unsure.contains(&id))
                .map(|e| e.sha256.clone())
        };
        match known {
            Some(sha) => Ok(sha.map(CurrentPhoto::from_sha256)),
            None => Ok(self
                .read_photo("current", key, &id, &dn)
                .await?
                .map(photo_with_hash)),
        }
    }

    async fn put(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>> {
        if jpeg.len() > self.max_bytes {
            let why = if self.pool.config().gssapi_without_tls() && self.max_bytes < AD_MAX_BYTES {
                " (Kerberos without TLS: ldap3 cannot send a request above the SASL buffer; use ldaps:// or StartTLS for larger photos)"
            } else {
                ""
            };
            return Err(self.fail(
                ErrorKind::PhotoTooLarge,
                "put",
                key,
                format!(
                    "{} bytes, above the limit of {}{why}; nothing sent",
                    jpeg.len(),
                    self.max_bytes
                ),
            ));
        }
        if jpeg.is_empty() {
            return Err(self.fail(
                ErrorKind::InvalidPhoto,
                "put",
                key,
                "an empty photo; nothing sent".into(),
            ));
        }
        self.write("put", key, Some(jpeg)).await?;
        Ok(None)
    }

    async fn delete(&self, key: &UserKey) -> Result<()> {
        self.write("delete", key, None).await
    }

    /// The stored bytes, read from the directory (a base-scope read of the user's DN).
    async fn fetch(&self, key: &UserKey) -> Result<Option<Bytes>> {
        let (id, dn, fresh) = self.resolve("fetch", key).await?;
        match fresh {
            Some(p) => Ok(p),
            None => self.read_photo("fetch", key, &id, &dn).await,
        }
    }

    async fn prefetch(&self, keys: &[UserKey]) -> Result<()> {
        // A new run: what this one learns starts from the resumed snapshot, if any.
        let resumed = {
            let mut st = self.lock();
            st.resolved.clear();
            st.unsure.clear();
            st.checked.clear();
            st.run = None;
            st.last_read = None;
            st.resumed.take()
        };
        let started = now_secs();
        let (snap, why) = match resumed {
            None => (None, "no snapshot".to_owned()),
            Some(Err(why)) => (None, why),
            Some(Ok(s)) => (Some(s), String::new()),
        };
        let mut canon: Vec<String> = keys
            .iter()
            .filter_map(|k| self.matcher.canonical(k.as_str()))
            .filter(|c| self.clause(c).is_some())
            .collect();
        canon.sort();
        canon.dedup();
        let pass = self
            .pool
            .run(OpClass::Search, "prefetch", None, |ldap| {
                self.read_pass(ldap, &canon, snap.as_ref())
            })
            .await
            .map_err(|e| self.named(e))?;

        // The photos were hashed as they arrived; no bytes are kept.
        let entries = pass.users.len() + pass.changed.len() + pass.keyed.len();
        let (users, keyed) = (pass.users, pass.keyed);
        let mut space = match (pass.how, snap) {
            (How::Changes(_), Some(s)) => s.into_space(),
            (How::Everyone, _) => Space {
                all: true,
                ..Space::default()
            },
            _ => Space::default(),
        };
        if let How::Changes(_) = pass.how {
            let fresh: HashSet<&str> = users.iter().map(|(id, _)| id.as_str()).collect();
            for g in &pass.changed {
                if !fresh.contains(g.as_str()) {
                    space.entries.remove(g);
                }
            }
        }
        if !space.all {
            space.covered.extend(pass.searched.iter().cloned());
        }
        for (id, e) in users {
            // A space of some keys keeps only the changed users it needs.
            let wanted = space.all
                || space.entries.contains_key(&id)
                || e.values.iter().any(|v| space.covered.contains(v));
            if wanted {
                space.entries.insert(id, e);
            }
        }
        for (id, e) in keyed {
            space.entries.insert(id, e);
        }
        let capable = pass.root.as_ref().map(|r| r.incremental());
        let run = match (&pass.root, &capable) {
            (Some(r), Some(Ok(server))) => Some(Run {
                server: (*server).clone(),
                h0: r.usn,
                t0: started,
                mods: 0,
                exact: true,
            }),
            _ => None,
        };
        let mut reason = match pass.how {
            How::Changes(w) if entries == 0 => format!("nothing changed since USN {w}"),
            How::Changes(w) => format!("changes since USN {w}"),
            _ if !pass.reason.is_empty() => pass.reason.clone(),
            _ => why,
        };
        match capable {
            None => reason.push_str("; no snapshot: the directory has no update sequence numbers"),
            Some(Err(e)) => reason.push_str(&format!("; no snapshot: {e}")),
            Some(Ok(_)) => {}
        }
        let stats = ReadStats {
            full: !matches!(pass.how, How::Changes(_)),
            entries,
            since_usn: match pass.how {
                How::Changes(w) => Some(w),
                _ => None,
            },
            reason,
        };
        let mut st = self.lock();
        st.resolved = space.index();
        st.space = space;
        st.from_snapshot = matches!(pass.how, How::Changes(_));
        st.run = run;
        st.last_read = Some(stats);
        // Keys that matched nothing are left out: `current` searches them one by one, so a
        // value the directory matches by its own rules (not ours) is still found.
        Ok(())
    }

    async fn users_with_photos(&self) -> Result<Vec<UserKey>> {
        // The prefetch read everyone (and writes since kept the hashes current): no search.
        {
            let st = self.lock();
            if st.space.all {
                let mut seen = HashSet::new();
                let mut keys: Vec<UserKey> = st
                    .space
                    .entries
                    .values()
                    .filter(|e| e.sha256.is_some() && !e.key.is_empty())
                    .map(|e| UserKey::new(&e.key))
                    .filter(|k| seen.insert(k.clone()))
                    .collect();
                keys.sort();
                return Ok(keys);
            }
        }
        let filter = format!("(&{}({}=*))", self.user_filter, self.attribute);
        let entries = self
            .pool
            .search(
                "users_with_photos",
                None,
                &filter,
                &[self.matcher.ldap_name()],
            )
            .await
            .map_err(|e| self.named(e))?;
        let mut seen = HashSet::new();
        Ok(entries
            .iter()
            .filter_map(|e| self.raw_key(e).map(UserKey::new))
            .filter(|k| seen.insert(k.clone()))
            .collect())
    }

    /// The connector space: see [`Incremental`].
    fn incremental(&self) -> Option<&dyn Incremental> {
        Some(self)
    }
}

/// The AD sink's incremental runs (see the type's docs): the connector space it keeps and
/// the update sequence number from which it is certain.
#[async_trait]
impl Incremental for AdSink {
    /// The connector space for the next run, with the watermark from which it is certain.
    /// `None` when no prefetch ran or the directory cannot be read incrementally.
    async fn snapshot(&self) -> Result<Option<Vec<u8>>> {
        let service = match &self.lock().run {
            Some(r) => r.server.service.clone(),
            None => return Ok(None),
        };
        let t = self.pool.timeout();
        let dse = self
            .pool
            .run(OpClass::Search, "snapshot", None, |ldap| async move {
                let attrs = ["highestCommittedUSN", "dsServiceName"];
                read_base(&ldap, "", &attrs, t, Vec::new()).await
            })
            .await
            .map_err(|e| self.named(e))?;
        // Only a USN of the DC the prefetch read from means anything here.
        let h_end: Option<u64> = dse
            .filter(|e| text_of(e, "dsServiceName").as_deref() == Some(service.as_str()))
            .and_then(|e| text_of(&e, "highestCommittedUSN"))
            .and_then(|u| u.trim().parse().ok());
        let st = self.lock();
        let Some(run) = &st.run else {
            return Ok(None);
        };
        // Why this is safe: `space::next_watermark`.
        let w = match h_end {
            Some(h) => space::next_watermark(run.h0, h, run.mods, run.exact),
            None => run.h0,
        };
        Ok(Some(space::encode(
            &run.server,
            &self.scope_id(),
            w,
            &st.space,
            run.t0,
        )))
    }

    /// Keeps a snapshot of an earlier run for the next prefetch; one it cannot read, or made
    /// for another base DN, user filter, match or photo attribute, is ignored (the next
    /// prefetch says why in [`AdSink::last_read`]).
    async fn resume(&self, saved: Vec<u8>) -> Result<()> {
        let r = space::decode(&saved, &self.scope_id());
        self.lock().resumed = Some(r);
        Ok(())
    }
}
