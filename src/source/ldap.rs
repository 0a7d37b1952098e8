//! Photos read from a directory over LDAP (`thumbnailPhoto`, `jpegPhoto`, ...).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};

use super::{PhotoRef, PhotoSource};
use crate::digest::sha256_hex;
use crate::ldap::{values, EntrySelector, LdapConfig, Pool};
use crate::normalize::Limits;
use crate::{Error, ErrorKind, MatchAttribute, Result, UserKey};
use ldap3::SearchEntry;

/// Reads people's photos from a directory: every entry below the base DN that matches the
/// user filter and has the photo attribute.
///
/// * The key is the entry's match attribute (`sAMAccountName` by default; an `objectGUID`
///   as its GUID string); entries without one are skipped. Two entries with one key are a
///   single [`Conflict`](ErrorKind::Conflict) item, and neither photo is used.
/// * The fingerprint is the SHA-256 of the photo's bytes; the location is the entry's DN.
/// * Listing reads the photos (a paged search, 1000 entries per page) and keeps them in
///   memory up to a budget (256 MiB by default), so [`load`](PhotoSource::load) usually
///   sends nothing; past the budget it reads the entry again. LDAP cannot tell a value's
///   size without sending it, so `load` checks `max_input_bytes` on the bytes received.
/// * A multi-valued attribute (`jpegPhoto`) gives its first value.
///
/// ```no_run
/// use userphoto::ldap::LdapConfig;
/// use userphoto::source::LdapSource;
/// use userphoto::Secret;
/// # fn f() -> userphoto::Result<()> {
/// let conn = LdapConfig::new("ldaps://ldap.example.com", "ou=people,dc=example,dc=com")
///     .simple_bind("cn=reader,dc=example,dc=com", Secret::from_env("LDAP_PASSWORD")?);
/// let src = LdapSource::builder(conn)
///     .attribute("jpegPhoto")
///     .match_attribute("uid".parse()?)
///     .user_filter("(objectClass=inetOrgPerson)")
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LdapSource {
    pool: Pool,
    selector: EntrySelector,
    cache_budget: usize,
    cache: Mutex<(HashMap<UserKey, Bytes>, usize)>,
}

/// Settings of an [`LdapSource`]; made by [`LdapSource::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct LdapSourceBuilder {
    conn: LdapConfig,
    selector: EntrySelector,
    cache_budget: usize,
}

impl LdapSourceBuilder {
    /// Which entries are people, their match attribute and their photo attribute, all at
    /// once (the same [`EntrySelector`] an [`AdSink`](crate::sink::AdSink) takes).
    pub fn selector(mut self, selector: EntrySelector) -> Self {
        self.selector = selector;
        self
    }

    /// The attribute that gives each entry's key (default `sAMAccountName`).
    pub fn match_attribute(mut self, m: MatchAttribute) -> Self {
        self.selector = self.selector.match_attribute(m);
        self
    }

    /// The photo attribute (default `thumbnailPhoto`).
    pub fn attribute(mut self, name: impl Into<String>) -> Self {
        self.selector = self.selector.photo_attribute(name);
        self
    }

    /// The filter that selects people (default `(&(objectCategory=person)(objectClass=user))`, AD's user
    /// accounts without computers and contacts; OpenLDAP: `(objectClass=inetOrgPerson)`).
    pub fn user_filter(mut self, filter: impl Into<String>) -> Self {
        self.selector = self.selector.user_filter(filter);
        self
    }

    /// How many bytes of photos listing keeps for `load` (default 256 MiB).
    pub fn cache_bytes(mut self, n: usize) -> Self {
        self.cache_budget = n;
        self
    }

    /// Checks the settings and makes the source (nothing is sent yet).
    pub fn build(self) -> Result<LdapSource> {
        self.selector
            .validate()
            .map_err(|e| e.with_backend("ldap"))?;
        Ok(LdapSource {
            pool: Pool::new(self.conn, "ldap")?,
            selector: self.selector,
            cache_budget: self.cache_budget,
            cache: Mutex::new((HashMap::new(), 0)),
        })
    }
}

impl LdapSource {
    /// Settings for a source reading `thumbnailPhoto` through `conn`, keyed by
    /// `sAMAccountName`.
    pub fn builder(conn: LdapConfig) -> LdapSourceBuilder {
        LdapSourceBuilder {
            conn,
            selector: EntrySelector::new(),
            cache_budget: 256 << 20,
        }
    }

    async fn scan(&self) -> Vec<Result<PhotoRef>> {
        let filter = format!(
            "(&{}({}=*))",
            self.selector.filter(),
            self.selector.attribute()
        );
        // Each entry is reduced as it arrives to its key, DN and photo hash, and its photo's
        // bytes kept only while the cache budget allows: a directory's photos are never all
        // in memory at once.
        // (A search retried after a lost connection may cache less: `load` reads the rest.)
        let cached = std::sync::atomic::AtomicUsize::new(0);
        let found = self
            .pool
            .search_map(
                "list",
                None,
                &filter,
                &[
                    self.selector.matcher().ldap_name(),
                    self.selector.attribute(),
                ],
                |e: SearchEntry| {
                    let key = values(&e, self.selector.matcher().ldap_name())
                        .first()
                        .and_then(|v| self.selector.key_of(v))?;
                    let photo = values(&e, self.selector.attribute()).first().copied()?;
                    let fingerprint = format!("sha256:{}", sha256_hex(photo));
                    let kept = cached
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                            (used + photo.len() <= self.cache_budget).then_some(used + photo.len())
                        })
                        .is_ok()
                        .then(|| Bytes::copy_from_slice(photo));
                    Some((key, e.dn, fingerprint, kept))
                },
            )
            .await;
        let found = match found {
            Ok(f) => f,
            Err(e) => return vec![Err(e)],
        };
        let mut by_key: BTreeMap<UserKey, Vec<(String, String, Option<Bytes>)>> = BTreeMap::new();
        for (key, dn, fingerprint, kept) in found {
            by_key.entry(key).or_default().push((dn, fingerprint, kept));
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        *cache = (HashMap::new(), 0);
        by_key
            .into_iter()
            .map(|(key, mut found)| {
                if found.len() > 1 {
                    let dns: Vec<String> = found.into_iter().map(|f| f.0).collect();
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "{} entries have {}={key}: {}",
                            dns.len(),
                            self.selector.matcher(),
                            dns.join(" | ")
                        ),
                    )
                    .with_backend("ldap")
                    .with_operation("list")
                    .with_user(key));
                }
                let (dn, fingerprint, kept) = found.remove(0);
                if let Some(photo) = kept {
                    cache.1 += photo.len();
                    cache.0.insert(key.clone(), photo);
                }
                Ok(PhotoRef {
                    key,
                    fingerprint,
                    location: dn,
                    withheld: false,
                })
            })
            .collect()
    }
}

#[async_trait]
impl PhotoSource for LdapSource {
    fn name(&self) -> &str {
        "ldap"
    }

    fn list(&self) -> BoxStream<'_, Result<PhotoRef>> {
        stream::once(self.scan()).flat_map(stream::iter).boxed()
    }

    async fn load(&self, photo: &PhotoRef, limits: &Limits) -> Result<Bytes> {
        let key = &photo.key;
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .get(key)
            .cloned();
        let bytes = match cached {
            Some(b) => b,
            None => {
                let entry = self
                    .pool
                    .read_entry(
                        "load",
                        Some(key),
                        &photo.location,
                        &[self.selector.attribute()],
                    )
                    .await?;
                entry
                    .as_ref()
                    .and_then(|e| {
                        values(e, self.selector.attribute())
                            .first()
                            .map(|v| Bytes::copy_from_slice(v))
                    })
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::UserNotFound,
                            format!(
                                "{} has no {} any more",
                                photo.location,
                                self.selector.attribute()
                            ),
                        )
                        .with_backend("ldap")
                        .with_operation("load")
                        .with_user(key.clone())
                    })?
            }
        };
        if bytes.len() as u64 > limits.max_input_bytes {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!(
                    "{} bytes, above the limit of {}",
                    bytes.len(),
                    limits.max_input_bytes
                ),
            )
            .with_backend("ldap")
            .with_operation("load")
            .with_user(key.clone()));
        }
        Ok(bytes)
    }
}
