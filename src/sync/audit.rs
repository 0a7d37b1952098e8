//! The audit: what each directory shows against what the source would give, per user and
//! sink, changing nothing ([`Engine::audit`](super::Engine::audit)).
//!
//! # The states
//!
//! | state | meaning |
//! |---|---|
//! | [`in-sync`](AuditState::InSync) | the directory shows the source's current rendition |
//! | [`missing`](AuditState::Missing) | the source has a photo, the directory none |
//! | [`low-res`](AuditState::LowRes) | the same picture, far below the profile's size |
//! | [`changed-elsewhere`](AuditState::ChangedElsewhere) | our write is recorded, and another picture is there now |
//! | [`differs`](AuditState::Differs) | another picture, and no record of ours |
//! | [`outdated`](AuditState::Outdated) | the directory shows our last write; the source changed since |
//! | [`withheld`](AuditState::Withheld) | the person withdrew consent and the directory still shows a photo |
//! | [`not-in-directory`](AuditState::NotInDirectory) | the directory does not know the source's user |
//!
//! # How a photo is judged
//!
//! A directory that keeps the bytes it is given (AD, LDIF, folders) shows our rendition when
//! the hashes are equal. Microsoft Graph re-encodes every upload, so its bytes never equal
//! ours: with a [`StateStore`](super::StateStore) record of our write, its photo is ours
//! while its `@odata.mediaEtag` is the one recorded after the write; when the etag moved (or
//! without a record) the photo is downloaded and compared perceptually with our rendition
//! ([`Normalizer::signature`](crate::normalize::Normalizer::signature): the same picture
//! survives re-encoding and rescaling, another crop or another photo does not). The same
//! comparison judges bytes that differ in the other directories. The same picture less
//! than half the profile's side wide is `low-res`: Entra Connect's copy of a 96-pixel AD
//! thumbnail where a 648-pixel Graph photo is wanted.
//!
//! A recorded write whose directory photo is still ours, but whose source photo changed
//! since, is `outdated` when the new rendition differs from the one written (a source file
//! touched without a change stays `in-sync`). A Graph upload whose etag was not recorded
//! (a sync without [`confirm_uploads`](crate::sink::GraphSinkBuilder::confirm_uploads)
//! learns it on the next run) cannot show whether the picture there is still ours: another
//! picture is then `outdated` when the source gives another rendition than the one
//! recorded, and `changed-elsewhere` when it gives the same.
//!
//! # What is not an item
//!
//! * **Leavers** (a photo in the directory for a user the source does not list) are left
//!   out: the audit compares what the directory shows with what the source would give, and
//!   for a leaver the source gives nothing to compare with. Whether their photos go is the
//!   leaver policy's business, and `plan` lists them.
//! * A user a sink's configuration leaves out
//!   ([`DirectorySink::excluded`](crate::sink::DirectorySink::excluded): a synced user of a
//!   Graph sink that writes only cloud-only users) is not that sink's to audit.
//! * A user the audit could not judge (the source photo cannot be read or normalized, the
//!   key matches several directory entries, the directory failed for this user after its
//!   retries) is an [`AuditFailure`], not a state: nobody can say what the directory shows
//!   against the source. A failure makes [`Audit::all_in_sync`] false.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::report::SourceFailure;
use crate::{ErrorKind, UserKey};

/// What a directory shows for one user against the source (see the [module](self)).
/// Written in kebab case (`in-sync`, `low-res`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AuditState {
    /// The directory shows the source's current rendition.
    InSync,
    /// The source has a photo, the directory has none.
    Missing,
    /// The directory shows the same picture far below the profile's size.
    LowRes,
    /// The state store records our write, and another picture is there now.
    ChangedElsewhere,
    /// Another picture, and no record of ours.
    Differs,
    /// The directory shows our last write, and the source changed since (a sync would
    /// write it).
    Outdated,
    /// The source withholds the photo and the directory still shows one.
    Withheld,
    /// A source user the directory does not know.
    NotInDirectory,
}

impl AuditState {
    /// Every state, in this order (the summary's).
    pub const ALL: [AuditState; 8] = [
        AuditState::InSync,
        AuditState::Missing,
        AuditState::LowRes,
        AuditState::ChangedElsewhere,
        AuditState::Differs,
        AuditState::Outdated,
        AuditState::Withheld,
        AuditState::NotInDirectory,
    ];

    /// The state's name as JSON writes it (`in-sync`, `changed-elsewhere`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditState::InSync => "in-sync",
            AuditState::Missing => "missing",
            AuditState::LowRes => "low-res",
            AuditState::ChangedElsewhere => "changed-elsewhere",
            AuditState::Differs => "differs",
            AuditState::Outdated => "outdated",
            AuditState::Withheld => "withheld",
            AuditState::NotInDirectory => "not-in-directory",
        }
    }
}

impl fmt::Display for AuditState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One user in one sink: the [state](AuditState) and what it was judged on. In JSON the
/// key is `user`; details that are not known are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditItem {
    /// The user.
    #[serde(rename = "user")]
    pub key: UserKey,
    /// The sink's name.
    pub sink: String,
    /// What the directory shows against the source.
    pub state: AuditState,
    /// The directory photo's width in pixels, when it was decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// The directory photo's height in pixels, when it was decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// The side the sink's profile asks for (96 for AD thumbnails, 648 for Graph).
    pub expected_side: u32,
    /// How alike the directory's picture and our rendition are (see
    /// [`Signature::similarity`](crate::normalize::Signature::similarity)), when they
    /// were compared perceptually.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f64>,
    /// The directory's version tag of the photo (Graph's `@odata.mediaEtag`), when it has
    /// one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Whether the state store holds a record of our write for this user and sink.
    pub recorded: bool,
}

impl AuditItem {
    /// The state in a sentence with what it was judged on, for people (a review page's card,
    /// a log line): "the same picture at 96x96, where 648 px is wanted (similarity 0.991)".
    pub fn explain(&self) -> String {
        let size = match (self.width, self.height) {
            (Some(w), Some(h)) => format!(" at {w}x{h}"),
            _ => String::new(),
        };
        let similarity = self
            .similarity
            .map(|s| format!(" (similarity {s:.3})"))
            .unwrap_or_default();
        match self.state {
            AuditState::InSync => format!("in sync: the directory shows the source's photo{size}"),
            AuditState::Missing => "missing: the source has a photo, the directory none".into(),
            AuditState::LowRes => format!(
                "low-res: the same picture{size}, where {} px is wanted{similarity}",
                self.expected_side
            ),
            AuditState::ChangedElsewhere => format!(
                "changed elsewhere: our last write was replaced by another picture{size}{similarity}"
            ),
            AuditState::Differs => format!(
                "differs: another picture{size}{similarity}, and no record of a write of ours"
            ),
            AuditState::Outdated => {
                "outdated: the directory shows our last write; the source changed since".into()
            }
            AuditState::Withheld => {
                "withheld: the person withdrew consent, and the directory still shows a photo".into()
            }
            AuditState::NotInDirectory => "not in the directory: it has no such user".into(),
        }
    }

    pub(crate) fn new(key: UserKey, sink: String, state: AuditState, expected_side: u32) -> Self {
        Self {
            key,
            sink,
            state,
            width: None,
            height: None,
            expected_side,
            similarity: None,
            etag: None,
            recorded: false,
        }
    }
}

/// A user the audit could not judge in a sink (or in every sink, when `sink` is `None`: the
/// source failed for the user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditFailure {
    /// The user.
    #[serde(rename = "user")]
    pub key: UserKey,
    /// The sink, or `None` when the source failed for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    /// The error's kind.
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
}

/// What an [audit](super::Engine::audit) found: one item per user the source lists and sink,
/// sorted by user then sink name, and what could not be judged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Audit {
    /// One item per (user, sink), sorted by user, then sink name.
    pub items: Vec<AuditItem>,
    /// Users the audit could not judge, sorted by user, then sink.
    pub failures: Vec<AuditFailure>,
    /// Source items that could not be tied to a user.
    pub source_failures: Vec<SourceFailure>,
}

impl Audit {
    /// How many items are in each state (every state present, zero or not).
    pub fn counts(&self) -> BTreeMap<AuditState, usize> {
        let mut c: BTreeMap<AuditState, usize> = AuditState::ALL.iter().map(|&s| (s, 0)).collect();
        for it in &self.items {
            *c.entry(it.state).or_default() += 1;
        }
        c
    }

    /// Whether every item is [`in-sync`](AuditState::InSync) and nothing failed.
    pub fn all_in_sync(&self) -> bool {
        self.failures.is_empty()
            && self.source_failures.is_empty()
            && self.items.iter().all(|i| i.state == AuditState::InSync)
    }

    pub(crate) fn sort(&mut self) {
        self.items
            .sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.sink.cmp(&b.sink)));
        self.failures
            .sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.sink.cmp(&b.sink)));
    }
}

impl fmt::Display for Audit {
    /// The summary: the count per state, then failures.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .counts()
            .into_iter()
            .filter(|(s, n)| *n > 0 || *s == AuditState::InSync)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        write!(
            f,
            "audit: {} item(s): {}",
            self.items.len(),
            parts.join(", ")
        )?;
        let failed = self.failures.len() + self.source_failures.len();
        if failed > 0 {
            write!(f, "; {failed} could not be checked")?;
        }
        Ok(())
    }
}
