//! Key -> entry resolution: the searches for users, the key cache, and the photo reads
//! that answer `current`, `fetch` and `users_with_photos`.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use ldap3::{Ldap, LdapError, Scope, SearchEntry};

use super::space::Entry;
use super::AdSink;
use crate::digest::sha256_hex;
use crate::key::{guid_from_bytes, guid_to_bytes};
use crate::ldap::{escape_filter_bytes, escape_filter_value, paged_search_with, values};
use crate::sink::CurrentPhoto;
use crate::{ErrorKind, MatchAttribute, Result, UserKey};

/// Source keys per search when resolving users in one pass.
const CHUNK: usize = 200;

/// The first value of the entry's photo attribute, if any.
fn photo_of(e: &SearchEntry, attr: &str) -> Option<Bytes> {
    values(e, attr)
        .into_iter()
        .next()
        .map(Bytes::copy_from_slice)
}

/// A photo known by its bytes and their hash.
fn photo_with_hash(b: Bytes) -> CurrentPhoto {
    let mut c = CurrentPhoto::from_bytes(b);
    c.sha256 = c.content_sha256();
    c
}

impl AdSink {
    /// The filter clause for one canonical key.
    pub(super) fn clause(&self, canonical: &str) -> Option<String> {
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
    pub(super) async fn search_users(
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

    /// Searches for keys, 200 a search, 4 searches at a time.
    pub(super) async fn search_keys(
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

    /// The one entry of `key` (its id and DN): from memory, else from a search (then with
    /// the photo's bytes).
    pub(super) async fn resolve(
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
    pub(super) fn forget(&self, key: &UserKey, id: &str) {
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

    /// `current`: from memory after a prefetch, else read.
    pub(super) async fn current_photo(&self, key: &UserKey) -> Result<Option<CurrentPhoto>> {
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

    /// `fetch`: the stored bytes, read from the directory.
    pub(super) async fn fetch_photo(&self, key: &UserKey) -> Result<Option<Bytes>> {
        let (id, dn, fresh) = self.resolve("fetch", key).await?;
        match fresh {
            Some(p) => Ok(p),
            None => self.read_photo("fetch", key, &id, &dn).await,
        }
    }

    /// `users_with_photos`: from memory after a pass over everyone, else one search.
    pub(super) async fn with_photos(&self) -> Result<Vec<UserKey>> {
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
}
