//! The Active Directory sink: `thumbnailPhoto` over LDAP (`ldap3` on tokio).

mod codes;
pub(crate) mod conn;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use ldap3::{Mod, SearchEntry};

use self::codes::OpClass;
pub(crate) use self::conn::Pool;
use self::conn::{
    escape_filter_bytes, escape_filter_value, guid_from_bytes, guid_to_bytes, values,
};
pub use self::conn::{LdapConfig, Secret};
use super::{CurrentPhoto, DirectorySink, SinkCapabilities};
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

/// Writes photos to Active Directory (or any LDAP directory) over LDAP.
///
/// ```no_run
/// use userphoto::sink::{AdSink, DirectorySink, LdapConfig, Secret};
/// use userphoto::MatchAttribute;
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
///   search of every user below the base DN (1000 entries per page, AD's page limit); it
///   reads their photos in the same pass, so [`current`](DirectorySink::current) (and,
///   after a pass over everyone, [`users_with_photos`](DirectorySink::users_with_photos))
///   answers from memory; a put or delete updates that memory. Search references are ignored. A
///   key that matches two entries is [`AmbiguousMatch`](ErrorKind::AmbiguousMatch) and
///   nothing is written.
/// * **Writes**: [`put`](DirectorySink::put) replaces the photo attribute (default
///   `thumbnailPhoto`); [`delete`](DirectorySink::delete) replaces it with no value (so an
///   absent photo is no error). A photo above `max_bytes` (102,400 by default) is
///   [`PhotoTooLarge`](ErrorKind::PhotoTooLarge) before anything is sent.
/// * **Errors** follow one table of LDAP result codes: 19, 20 and 21 on a write are a
///   rejected photo ([`InvalidPhoto`](ErrorKind::InvalidPhoto), permanent); 49 is
///   [`Unauthenticated`](ErrorKind::Unauthenticated) and 50
///   [`PermissionDenied`](ErrorKind::PermissionDenied) (both stop a run); 51 and 52 are
///   [`Unavailable`](ErrorKind::Unavailable) and retried by the engine; 8 says that AD wants
///   TLS for a simple bind. A dropped connection is re-made and the operation (every one
///   here is idempotent) tried once more; then it is `Unavailable`.
/// * **Connections**: [`LdapConfig::connections`] connections (one by default), each with
///   any number of operations in flight; the engine's concurrency bounds them.
#[derive(Debug)]
pub struct AdSink {
    name: String,
    pool: Pool,
    matcher: MatchAttribute,
    attribute: String,
    max_bytes: usize,
    user_filter: String,
    profile: String,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    /// Canonical key -> the DNs that matched it.
    dns: HashMap<String, Vec<String>>,
    /// DN -> its photo as last read or written.
    photos: HashMap<String, Option<Bytes>>,
    /// After a prefetch that read every user below the base DN: DN -> key of each of them,
    /// so `users_with_photos` answers without another search.
    everyone: Option<Vec<(String, UserKey)>>,
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
    profile: String,
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

    /// The filter that selects user entries (default `(objectClass=user)`), combined with
    /// the match attribute's.
    pub fn user_filter(mut self, filter: impl Into<String>) -> Self {
        self.user_filter = filter.into();
        self
    }

    /// The profile the engine uses by default (`ad-thumbnail`; `ad-large` for 648 px in
    /// 102,400 bytes).
    pub fn default_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = profile.into();
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
            cache: Mutex::new(Cache::default()),
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
            user_filter: "(objectClass=user)".into(),
            profile: "ad-thumbnail".into(),
        }
    }

    /// Connects and binds now (otherwise the first call does): a quick check of the URL,
    /// TLS and credentials before a run.
    pub async fn check(&self) -> Result<()> {
        self.pool.handle("bind", None).await.map(|_| ())
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

    /// The key of an entry for `users_with_photos` (GUIDs as strings).
    fn key_of(&self, e: &SearchEntry) -> Option<UserKey> {
        let v = *values(e, self.matcher.ldap_name()).first()?;
        if self.matcher == MatchAttribute::ObjectGuid {
            guid_from_bytes(v).map(UserKey::new)
        } else {
            std::str::from_utf8(v).ok().map(UserKey::new)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The one DN of `key`: from the cache, else from a search (cached for the run).
    async fn resolve(&self, op: &'static str, key: &UserKey) -> Result<String> {
        let canon = self.matcher.canonical(key.as_str()).ok_or_else(|| {
            self.fail(
                ErrorKind::UserNotFound,
                op,
                key,
                format!("not a valid {} value", self.matcher),
            )
        })?;
        let cached = self.lock().dns.get(&canon).cloned();
        let dns = match cached {
            Some(d) => d,
            None => {
                let clause = self.clause(&canon).ok_or_else(|| {
                    self.fail(
                        ErrorKind::UserNotFound,
                        op,
                        key,
                        format!("not a valid {} value", self.matcher),
                    )
                })?;
                let filter = format!("(&{}{clause})", self.user_filter);
                let entries = self
                    .pool
                    .search(
                        op,
                        Some(key),
                        &filter,
                        &[self.matcher.ldap_name(), &self.attribute],
                    )
                    .await
                    .map_err(|e| self.named(e))?;
                let mut c = self.lock();
                let dns: Vec<String> = entries.iter().map(|e| e.dn.clone()).collect();
                for e in &entries {
                    c.photos.insert(e.dn.clone(), photo_of(e, &self.attribute));
                }
                c.dns.insert(canon, dns.clone());
                dns
            }
        };
        match dns.as_slice() {
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
            [dn] => Ok(dn.clone()),
            many => Err(self.fail(
                ErrorKind::AmbiguousMatch,
                op,
                key,
                format!(
                    "{} entries have {}={key}, nothing written: {}",
                    many.len(),
                    self.matcher,
                    many.join(" | ")
                ),
            )),
        }
    }

    /// Forgets what the cache knows about `dn`'s photo (after a write whose outcome is
    /// unknown), or about the whole key (after the entry vanished).
    fn forget(&self, key: &UserKey, dn: &str, entry_gone: bool) {
        let mut c = self.lock();
        c.photos.remove(dn);
        if entry_gone {
            if let Some(canon) = self.matcher.canonical(key.as_str()) {
                c.dns.remove(&canon);
            }
        }
    }

    async fn write(&self, op: &'static str, key: &UserKey, jpeg: Option<&Bytes>) -> Result<()> {
        let dn = self.resolve(op, key).await?;
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
                self.lock().photos.insert(dn, jpeg.cloned());
                Ok(())
            }
            Err(e) => {
                self.forget(key, &dn, e.kind() == ErrorKind::UserNotFound);
                let e = self.named(e);
                Err(if e.kind() == ErrorKind::UserNotFound {
                    self.fail(
                        ErrorKind::UserNotFound,
                        op,
                        key,
                        format!("{dn}: {}", e.message()),
                    )
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
        SinkCapabilities::new(self.max_bytes, self.profile.clone())
    }

    async fn current(&self, key: &UserKey) -> Result<Option<CurrentPhoto>> {
        let dn = self.resolve("current", key).await?;
        let known = self.lock().photos.get(&dn).cloned();
        let photo = match known {
            Some(p) => p,
            None => {
                let e = self
                    .pool
                    .read_entry("current", Some(key), &dn, &[&self.attribute])
                    .await
                    .map_err(|e| self.named(e))?;
                let Some(e) = e else {
                    self.forget(key, &dn, true);
                    return Err(self.fail(
                        ErrorKind::UserNotFound,
                        "current",
                        key,
                        format!("{dn} is gone"),
                    ));
                };
                let p = photo_of(&e, &self.attribute);
                self.lock().photos.insert(dn, p.clone());
                p
            }
        };
        Ok(photo.map(CurrentPhoto::from_bytes))
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

    async fn prefetch(&self, keys: &[UserKey]) -> Result<()> {
        // A new run: forget what an earlier one learned.
        *self.lock() = Cache::default();
        let mut canon: Vec<String> = keys
            .iter()
            .filter_map(|k| self.matcher.canonical(k.as_str()))
            .filter(|c| self.clause(c).is_some())
            .collect();
        canon.sort();
        canon.dedup();
        let attrs = [self.matcher.ldap_name(), self.attribute.as_str()];
        let found: Vec<(HashSet<String>, Vec<SearchEntry>)> = if canon.len() >= SCAN_FROM {
            // Many keys: one paged pass over every user who has the match attribute.
            let filter = format!("(&{}({}=*))", self.user_filter, self.matcher.ldap_name());
            let entries = self
                .pool
                .search("prefetch", None, &filter, &attrs)
                .await
                .map_err(|e| self.named(e))?;
            let everyone: Vec<(String, UserKey)> = entries
                .iter()
                .filter_map(|e| Some((e.dn.clone(), self.key_of(e)?)))
                .collect();
            let mut c = self.lock();
            for e in &entries {
                c.photos.insert(e.dn.clone(), photo_of(e, &self.attribute));
            }
            c.everyone = Some(everyone);
            drop(c);
            vec![(canon.into_iter().collect(), entries)]
        } else {
            let chunks: Vec<Vec<String>> = canon.chunks(CHUNK).map(<[String]>::to_vec).collect();
            let attrs = &attrs;
            stream::iter(chunks)
                .map(|chunk: Vec<String>| async move {
                    let clauses: String = chunk.iter().filter_map(|c| self.clause(c)).collect();
                    let filter = format!("(&{}(|{clauses}))", self.user_filter);
                    let entries = self
                        .pool
                        .search("prefetch", None, &filter, attrs)
                        .await
                        .map_err(|e| self.named(e))?;
                    Ok::<_, Error>((chunk.into_iter().collect::<HashSet<_>>(), entries))
                })
                .buffer_unordered(4)
                .try_collect()
                .await?
        };
        let mut c = self.lock();
        for (wanted, entries) in found {
            for e in entries {
                let mut matched = false;
                for v in self.canonical_values(&e) {
                    if wanted.contains(&v) {
                        let dns = c.dns.entry(v).or_default();
                        if !dns.contains(&e.dn) {
                            dns.push(e.dn.clone());
                        }
                        matched = true;
                    }
                }
                if matched {
                    c.photos.insert(e.dn.clone(), photo_of(&e, &self.attribute));
                }
            }
        }
        // Keys that matched nothing are left out: `current` searches them one by one, so a
        // value the directory matches by its own rules (not ours) is still found.
        Ok(())
    }

    async fn users_with_photos(&self) -> Result<Vec<UserKey>> {
        // The prefetch read everyone (and writes since kept the photos current): no search.
        {
            let c = self.lock();
            if let Some(everyone) = &c.everyone {
                let mut seen = HashSet::new();
                return Ok(everyone
                    .iter()
                    .filter(|(dn, _)| matches!(c.photos.get(dn), Some(Some(_))))
                    .map(|(_, k)| k.clone())
                    .filter(|k| seen.insert(k.clone()))
                    .collect());
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
            .filter_map(|e| self.key_of(e))
            .filter(|k| seen.insert(k.clone()))
            .collect())
    }
}
