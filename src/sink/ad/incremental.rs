//! The incremental read: one pass over the directory per `prefetch` (everyone, the run's
//! keys, or what changed since the snapshot's update sequence number), and the
//! [`Incremental`] impl that saves and resumes the connector space.

use std::collections::HashSet;

use async_trait::async_trait;
use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapError, Scope, SearchEntry};

use super::space::{self, Entry, ScopeId, ServerId, Snap, Space, SCAN_FROM};
use super::{AdSink, ReadStats};
use crate::key::guid_from_bytes;
use crate::ldap::{dn_within, entry_of_result, paged_search, values, OpClass};
use crate::sink::Incremental;
use crate::{Result, UserKey};

/// The Show Deleted control (MS-ADTS 3.1.1.3.4.1.14): searches also return tombstones.
const SHOW_DELETED: &str = "1.2.840.113556.1.4.417";

/// The well-known GUID of a naming context's Deleted Objects container.
const DELETED_OBJECTS_WKGUID: &str = "18e2ea80684f11d2b9aa00c04f79f805";

/// What `snapshot` needs to set the watermark (see `space::next_watermark`).
#[derive(Debug)]
pub(super) struct Run {
    server: ServerId,
    /// `highestCommittedUSN`, read before the prefetch's first search.
    h0: u64,
    /// When the prefetch started (Unix seconds): the snapshot's age counts from here.
    t0: u64,
    /// Successful modifies of ours that had to raise the USN by one each.
    pub(super) mods: u64,
    /// False once a successful modify may have raised it by nothing.
    pub(super) exact: bool,
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

/// The first value of `attr` as text.
fn text_of(e: &SearchEntry, attr: &str) -> Option<String> {
    values(e, attr)
        .first()
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
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
    fn scope_id(&self) -> ScopeId {
        ScopeId {
            base_dn: self.pool.config().base_dn().trim().to_lowercase(),
            user_filter: self.user_filter.clone(),
            match_attribute: self.matcher.ldap_name().to_ascii_lowercase(),
            photo_attribute: self.attribute.to_ascii_lowercase(),
        }
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

    /// `prefetch`: one pass over the directory, then the space and the run's bookkeeping.
    pub(super) async fn read(&self, keys: &[UserKey]) -> Result<()> {
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
