//! The AD sink's connector space: what it knows of the directory's users between runs, and
//! the update sequence number (USN) from which that knowledge is certain.
//!
//! A snapshot (serde JSON, [`FORMAT`]) names the domain controller it was read from (its
//! `dsServiceName` and that NTDS Settings object's `invocationId`: USNs are per DC and per
//! database instance), the sink's scope (base DN, user filter, match and photo attribute),
//! the watermark `W`, and per entry (keyed by `objectGUID`) its DN, its match values and the
//! SHA-256 of its photo. No photo bytes.
//!
//! The invariant: every entry in scope whose `uSNChanged` is at most `W` is in the snapshot
//! as it was at `W` (all of them when `all`, else at least every entry holding a value of
//! `covered`); whatever changed after `W` has a `uSNChanged` above `W`, so a search for
//! `uSNChanged>=W+1` finds it.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// From this many keys on, `prefetch` reads every user below the base DN in one paged
/// search instead of searching for the keys 200 at a time (and a snapshot is weighed
/// against such a pass: [`full_pass_is_cheaper`]).
pub(super) const SCAN_FROM: usize = 1000;

/// The snapshot format; a snapshot in another one is ignored (the next run reads everyone).
pub(super) const FORMAT: u32 = 1;

/// Which directory database a snapshot was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ServerId {
    /// The rootDSE's `dsServiceName`: the DC's NTDS Settings object.
    pub(super) service: String,
    /// That object's `invocationId` (a GUID string): it changes when the DC's database is
    /// restored, after which old USNs may be used again.
    pub(super) invocation_id: String,
}

/// What the sink reads: a snapshot made with other settings is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ScopeId {
    /// The base DN as configured, lower case.
    pub(super) base_dn: String,
    /// The user filter as configured.
    pub(super) user_filter: String,
    /// The match attribute, lower case.
    pub(super) match_attribute: String,
    /// The photo attribute, lower case.
    pub(super) photo_attribute: String,
}

/// One user entry as the sink last knew it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Entry {
    /// Its DN.
    pub(super) dn: String,
    /// Its first match value as the directory holds it (the key `users_with_photos` gives).
    pub(super) key: String,
    /// The canonical forms of all its match values.
    pub(super) values: Vec<String>,
    /// The SHA-256 (hex) of its photo; `None` when it has none.
    pub(super) sha256: Option<String>,
}

/// The users the sink knows, by `objectGUID` (or `dn:<dn>` in a directory without GUIDs).
#[derive(Debug, Clone, Default)]
pub(super) struct Space {
    pub(super) entries: HashMap<String, Entry>,
    /// Whether `entries` holds every user in scope (after a paged search of all of them),
    /// or only those of the `covered` keys (after searches for a run's keys).
    pub(super) all: bool,
    /// The canonical keys whose entries are all in `entries` (when not `all`).
    pub(super) covered: BTreeSet<String>,
}

impl Space {
    /// Canonical key -> the entries holding it, for the keys this space answers for.
    pub(super) fn index(&self) -> HashMap<String, Vec<String>> {
        let mut ix: HashMap<String, Vec<String>> = HashMap::new();
        for (id, e) in &self.entries {
            for v in &e.values {
                if self.all || self.covered.contains(v) {
                    let ids = ix.entry(v.clone()).or_default();
                    if !ids.contains(id) {
                        ids.push(id.clone());
                    }
                }
            }
        }
        for ids in ix.values_mut() {
            ids.sort();
        }
        ix
    }
}

/// A snapshot as stored (its `format` is checked first, by `decode`).
#[derive(Debug, Deserialize)]
pub(super) struct Snap {
    /// When it was made (Unix seconds).
    pub(super) made: u64,
    pub(super) server: ServerId,
    pub(super) scope: ScopeId,
    pub(super) watermark: u64,
    pub(super) all: bool,
    #[serde(default)]
    pub(super) covered: BTreeSet<String>,
    pub(super) entries: HashMap<String, Entry>,
}

impl Snap {
    pub(super) fn into_space(self) -> Space {
        Space {
            entries: self.entries,
            all: self.all,
            covered: self.covered,
        }
    }
}

/// The same, borrowed, for writing without a copy.
#[derive(Serialize)]
struct SnapOut<'a> {
    format: u32,
    made: u64,
    server: &'a ServerId,
    scope: &'a ScopeId,
    watermark: u64,
    all: bool,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    covered: &'a BTreeSet<String>,
    entries: &'a HashMap<String, Entry>,
}

/// The bytes of a snapshot.
pub(super) fn encode(
    server: &ServerId,
    scope: &ScopeId,
    watermark: u64,
    space: &Space,
    made: u64,
) -> Vec<u8> {
    let out = SnapOut {
        format: FORMAT,
        made,
        server,
        scope,
        watermark,
        all: space.all,
        covered: &space.covered,
        entries: &space.entries,
    };
    // Strings and numbers only: serializing cannot fail.
    serde_json::to_vec(&out).unwrap_or_default()
}

/// A stored snapshot, if it is readable, in this format and for this scope; else why it
/// is not used.
pub(super) fn decode(bytes: &[u8], scope: &ScopeId) -> Result<Snap, String> {
    #[derive(Deserialize)]
    struct Head {
        format: u32,
    }
    let head: Head = serde_json::from_slice(bytes)
        .map_err(|e| format!("the saved snapshot is unreadable ({e})"))?;
    if head.format != FORMAT {
        return Err(format!(
            "the saved snapshot is in format {}, not {FORMAT}",
            head.format
        ));
    }
    let snap: Snap = serde_json::from_slice(bytes)
        .map_err(|e| format!("the saved snapshot is unreadable ({e})"))?;
    if snap.scope != *scope {
        let what = if snap.scope.base_dn != scope.base_dn {
            "base DN"
        } else if snap.scope.user_filter != scope.user_filter {
            "user filter"
        } else if snap.scope.match_attribute != scope.match_attribute {
            "match attribute"
        } else {
            "photo attribute"
        };
        return Err(format!("the saved snapshot was made for another {what}"));
    }
    Ok(snap)
}

/// The watermark to store after a run: the USN from which the next run reads the changes.
///
/// `h0` is the DC's `highestCommittedUSN` read before this run's first search, `h_end` the
/// same read after the run's last write, `mods` the number of our successful modifies that
/// each had to raise it by one, and `exact` false when some successful modify of ours may
/// have raised it by nothing (below).
///
/// Everything the snapshot holds is true as of `h0` plus our own writes, which the sink
/// applied to it as they succeeded. If nobody else changed anything on this DC during the
/// run, every USN in `(h0, h_end]` is one of our modifies, so the snapshot is true as of
/// `h_end`, and the next run need read only what changed after it. We cannot see who made
/// the changes, only count them: a modify that changes a value raises `highestCommittedUSN`
/// by exactly one, and one that writes the values the entry already holds raises it by
/// nothing. So when `h_end - h0` equals `mods`, no third party's change can hide in the
/// interval, and the watermark moves to `h_end`; otherwise it stays at `h0`, and the next
/// run reads again everything changed since this run started (ours included): always
/// correct, only slower.
///
/// A no-op modify of ours (0 USNs) could in principle let one foreign change (1 USN) pass
/// for it. It cannot hide a change, for two reasons. (1) A write is counted in `mods` only
/// when the photo the sink knew for the entry (read at or after `h0`, or written by us since)
/// differs from the one written; a write of the photo the sink already knew sets `exact` to
/// false, and the watermark stays at `h0`. (2) A counted write can then only be a no-op if,
/// after the sink learnt the old photo, somebody (or an earlier attempt of ours whose answer
/// was lost) wrote these very bytes to this very entry: a change with its own USN above
/// `h0`, which has to be that write's one USN for the count to come out equal. The
/// snapshot then records exactly those bytes for that entry, as the directory holds them.
/// Each no-op needs its own such change, so the sum still equals `mods` only when every
/// change after `h0` is one of our writes or one of these. (The one thing such a change
/// could carry unseen is another attribute of the same entry written in the same modify as
/// the identical photo bytes, racing our write of those bytes; a tool writing our photos
/// does not do that.) Changes replicated in from other DCs get local USNs too, so they
/// count as foreign changes here: the watermark stays at `h0`.
pub(super) fn next_watermark(h0: u64, h_end: u64, mods: u64, exact: bool) -> u64 {
    if exact && h_end.checked_sub(h0) == Some(mods) {
        h_end
    } else {
        h0
    }
}

/// Whether a full pass over the users beats reading the changes since the snapshot: when
/// the DC made more changes since the snapshot (`usn_delta`, every change on the DC) than the
/// snapshot holds users (`entries`, `None` for a snapshot of only some keys), and the run
/// would read everyone anyway without a snapshot (`keys` at least [`SCAN_FROM`]). Reading
/// the changes costs a search of the naming context for every changed object (to find the
/// deleted ones) and then one for the changed users, so it is about twice a full pass when
/// nearly everyone changed, as after a first run on a busy DC, whose own writes the next run
/// reads again (see [`next_watermark`]). A full pass needs no deletion search: whoever it
/// does not find is gone.
pub(super) fn full_pass_is_cheaper(usn_delta: u64, entries: Option<usize>, keys: usize) -> bool {
    match entries {
        Some(n) => keys >= SCAN_FROM && usn_delta > n as u64,
        None => false,
    }
}

/// How old a snapshot may be, in seconds, given the forest's `tombstoneLifetime` and
/// `msDS-deletedObjectLifetime` (days; `None` when not set or not readable): half the
/// shorter one. A deleted object's tombstone (or, with the Recycle Bin, its deleted state,
/// after which only the Show Recycled control shows it) lasts that long; a snapshot older
/// than that could miss a deletion. Without the configuration to read: 30 days.
pub(super) fn max_age_secs(
    readable: bool,
    tombstone_days: Option<u64>,
    deleted_days: Option<u64>,
) -> u64 {
    const DAY: u64 = 86_400;
    if !readable {
        return 30 * DAY;
    }
    // Unset, the tombstone lifetime is 60 days (180 in forests made since 2003 SP1, which
    // set it); the deleted-object lifetime is the tombstone lifetime.
    let tombstone = tombstone_days.unwrap_or(60);
    let life = deleted_days.unwrap_or(tombstone).min(tombstone);
    // A server's value can be anything up to u64::MAX: saturate, never overflow.
    (life.saturating_mul(DAY) / 2).max(DAY / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pass_replaces_reading_more_changes_than_users() {
        let many = SCAN_FROM;
        assert!(!full_pass_is_cheaper(0, Some(2_000), many));
        assert!(!full_pass_is_cheaper(2_000, Some(2_000), many));
        assert!(full_pass_is_cheaper(2_001, Some(2_000), many));
        assert!(
            !full_pass_is_cheaper(2_001, Some(2_000), many - 1),
            "few keys are searched one chunk at a time, not by a full pass"
        );
        assert!(
            !full_pass_is_cheaper(u64::MAX, None, many),
            "a snapshot of some keys only is never replaced by a pass over everyone"
        );
    }

    fn scope() -> ScopeId {
        ScopeId {
            base_dn: "ou=people,dc=example,dc=test".into(),
            user_filter: "(objectClass=user)".into(),
            match_attribute: "samaccountname".into(),
            photo_attribute: "thumbnailphoto".into(),
        }
    }

    fn server() -> ServerId {
        ServerId {
            service: "CN=NTDS Settings,CN=DC1,...".into(),
            invocation_id: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into(),
        }
    }

    fn space() -> Space {
        let mut s = Space {
            all: true,
            ..Space::default()
        };
        s.entries.insert(
            "g1".into(),
            Entry {
                dn: "CN=Ann,OU=People,DC=example,DC=test".into(),
                key: "Ann".into(),
                values: vec!["ann".into()],
                sha256: Some("ab".repeat(32)),
            },
        );
        s.entries.insert(
            "g2".into(),
            Entry {
                dn: "CN=Bob,OU=People,DC=example,DC=test".into(),
                key: "bob".into(),
                values: vec!["bob".into()],
                sha256: None,
            },
        );
        s
    }

    #[test]
    fn snapshots_round_trip_without_photo_bytes() {
        let bytes = encode(&server(), &scope(), 4711, &space(), 1_700_000_000);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"format\":1"), "{text}");
        let snap = decode(&bytes, &scope()).unwrap();
        assert_eq!(snap.watermark, 4711);
        assert_eq!(snap.made, 1_700_000_000);
        assert_eq!(snap.server, server());
        assert!(snap.all);
        let sp = snap.into_space();
        assert_eq!(sp.entries, space().entries);
        assert_eq!(sp.index()["ann"], vec!["g1".to_owned()]);
    }

    #[test]
    fn other_scopes_formats_and_garbage_are_refused_with_a_reason() {
        let bytes = encode(&server(), &scope(), 1, &space(), 0);
        let mut other = scope();
        other.base_dn = "ou=other,dc=example,dc=test".into();
        assert!(decode(&bytes, &other).unwrap_err().contains("base DN"));
        let mut other = scope();
        other.photo_attribute = "jpegphoto".into();
        assert!(decode(&bytes, &other)
            .unwrap_err()
            .contains("photo attribute"));
        let mut other = scope();
        other.match_attribute = "mail".into();
        assert!(decode(&bytes, &other)
            .unwrap_err()
            .contains("match attribute"));
        let mut other = scope();
        other.user_filter = "(objectClass=person)".into();
        assert!(decode(&bytes, &other).unwrap_err().contains("user filter"));
        assert!(decode(b"\x00garbage", &scope())
            .unwrap_err()
            .contains("unreadable"));
        assert!(decode(br#"{"format":99}"#, &scope())
            .unwrap_err()
            .contains("format 99"));
        assert!(decode(br#"{"format":1}"#, &scope())
            .unwrap_err()
            .contains("unreadable"));
    }

    #[test]
    fn a_partial_space_answers_only_for_its_covered_keys() {
        let mut s = space();
        s.all = false;
        s.covered.insert("bob".into());
        let ix = s.index();
        assert!(!ix.contains_key("ann"));
        assert_eq!(ix["bob"], vec!["g2".to_owned()]);
    }

    #[test]
    fn the_watermark_moves_only_when_every_change_is_ours() {
        // Ten writes of ours, nothing else: the end.
        assert_eq!(next_watermark(100, 110, 10, true), 110);
        // Someone else changed something (or a write whose answer was lost landed).
        assert_eq!(next_watermark(100, 111, 10, true), 100);
        // One of ours was a no-op nobody made up for (a concurrent double write).
        assert_eq!(next_watermark(100, 109, 10, true), 100);
        // A write of the photo the sink already knew: it may have changed nothing.
        assert_eq!(next_watermark(100, 110, 10, false), 100);
        // Nothing happened at all.
        assert_eq!(next_watermark(100, 100, 0, true), 100);
        // Another DC or a restored database (a lower USN): the start.
        assert_eq!(next_watermark(100, 90, 0, true), 100);
    }

    #[test]
    fn snapshots_expire_well_before_tombstones() {
        let day = 86_400;
        assert_eq!(max_age_secs(true, Some(180), None), 90 * day);
        assert_eq!(max_age_secs(true, Some(180), Some(30)), 15 * day);
        assert_eq!(max_age_secs(true, None, None), 30 * day);
        assert_eq!(max_age_secs(true, Some(0), None), day / 2);
        assert_eq!(max_age_secs(false, None, None), 30 * day);
        // A hostile tombstoneLifetime: no overflow, the longest age there is.
        assert_eq!(max_age_secs(true, Some(u64::MAX), None), u64::MAX / 2);
        assert_eq!(
            max_age_secs(true, Some(u64::MAX), Some(u64::MAX - 1)),
            u64::MAX / 2
        );
        assert_eq!(next_watermark(u64::MAX, 0, u64::MAX, true), u64::MAX);
        assert_eq!(next_watermark(0, u64::MAX, u64::MAX, true), u64::MAX);
    }
}
