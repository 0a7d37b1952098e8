//! The planner: pure, deterministic and serializable.

use serde::{Deserialize, Serialize};

use crate::normalize::{CropReport, CropWarning};
use crate::{ErrorKind, UserKey};

/// What the plan does for one user in one sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Write the rendition.
    Put,
    /// Remove the photo.
    Delete,
    /// Leave the sink as it is.
    Skip,
    /// Nothing can be done for this user; the reason says why.
    Fail,
}

/// Why the plan does what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The user has no photo in the sink yet.
    New,
    /// The sink's photo differs from the rendition.
    Changed,
    /// The sink re-encodes photos and the state store has no record of this one being
    /// written there: it is written (see [`SinkState::Unread`]).
    NotRecorded,
    /// The sink already shows this rendition.
    Unchanged,
    /// The person withdrew consent.
    Withheld,
    /// The sink has a photo for a user the source no longer lists.
    Leaver,
    /// The sink does not know the user.
    Unmatched,
    /// The key matches several directory entries.
    AmbiguousMatch,
    /// Several source photos claim the user.
    Conflict,
    /// The source photo is not a usable image.
    InvalidImage,
    /// The photo cannot be made to fit the profile's byte budget.
    CannotFit,
    /// The rendition is larger than the sink accepts.
    TooLarge,
    /// The source failed for this user.
    SourceError,
    /// The sink failed for this user while planning.
    SinkError,
    /// The directory refused to write this user's photo (no write access for this user, as
    /// on AD's protected admin accounts, or a per-user 403 from Graph); the run went on.
    Refused,
    /// Applying an approved plan ([`SavedPlan`](crate::sync::SavedPlan)): the source's
    /// photo, the rendition or the directory's photo differs from what the plan was made
    /// with, so the change is not the one approved and is not made. (Written
    /// `changed-since-plan`, as the command line names it.)
    #[serde(rename = "changed-since-plan", alias = "changed_since_plan")]
    ChangedSincePlan,
    /// Applying an approved plan: the change is not in it (a user added since), so it is
    /// not made. (Written `not-in-plan`.)
    #[serde(rename = "not-in-plan", alias = "not_in_plan")]
    NotInPlan,
    /// The user is synced from on-premises AD and the sink writes only cloud-only users
    /// (`--graph-users cloud-only`): Entra Connect carries the AD photo there. (Written
    /// `synced-user`.)
    #[serde(rename = "synced-user", alias = "synced_user")]
    SyncedUser,
    /// The user is cloud-only and the sink writes only synced users
    /// (`--graph-users synced`). (Written `cloud-only-user`.)
    #[serde(rename = "cloud-only-user", alias = "cloud_only_user")]
    CloudOnlyUser,
}

impl Reason {
    /// The reason's name as the command line, the review page and plan files write it:
    /// `not_recorded` in JSON reports is `not-recorded` here.
    pub fn as_kebab(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(|s| s.replace('_', "-")))
            .unwrap_or_default()
    }
}

/// A rendition the planner knows by its hash and size (its bytes wait elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RenditionFacts {
    /// The rendition's SHA-256, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: usize,
}

impl RenditionFacts {
    /// A rendition of `bytes` bytes whose SHA-256 is `sha256` (hex).
    pub fn new(sha256: impl Into<String>, bytes: usize) -> Self {
        Self {
            sha256: sha256.into(),
            bytes,
        }
    }
}

/// Why there is no rendition, or why a side failed: the error's kind and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Failure {
    /// The error's kind.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
}

impl Failure {
    /// A failure of `kind`, saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl From<&crate::Error> for Failure {
    fn from(e: &crate::Error) -> Self {
        Self::new(e.kind(), e.message())
    }
}

/// What the source says about a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SourceState {
    /// A photo, normalized for this sink's profile.
    Photo {
        /// The source's fingerprint of the photo.
        fingerprint: String,
        /// The rendition's hash and size, or why there is none.
        rendition: Result<RenditionFacts, Failure>,
    },
    /// A photo whose rendition is made only when it is written, because the decision does
    /// not depend on it: the sink holds no photo for the user, or was not read (the engine
    /// does this in [`Engine::run`](crate::sync::Engine::run), so writing starts before
    /// every photo is normalized; a photo that turns out invalid then fails at apply time).
    Deferred {
        /// The source's fingerprint of the photo.
        fingerprint: String,
    },
    /// The person withdrew consent.
    Withheld,
    /// The source does not list the user (a leaver, seen in the sink only).
    Absent,
    /// Listing or loading failed for this user.
    Error {
        /// The error's kind (`Conflict` for two photos for one key).
        kind: ErrorKind,
        /// The message.
        message: String,
    },
}

/// What the sink says about a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SinkState {
    /// The user exists without a photo.
    NoPhoto,
    /// The user has a photo, known by the SHA-256 (hex) of its bytes and/or a version tag.
    Photo {
        /// SHA-256 of the stored bytes, when the sink returns bytes.
        sha256: Option<String>,
        /// The sink's version tag, when it has one.
        version: Option<String>,
    },
    /// The sink does not know the user.
    NotFound,
    /// The key matches several entries.
    Ambiguous {
        /// Which ones.
        message: String,
    },
    /// Not read: the sink re-encodes photos (it returns only a version tag) and the state
    /// store has no record of this photo being written there, so the user is written
    /// whatever the sink holds, and reading it first would only cost a request.
    Unread,
    /// The sink failed.
    Error {
        /// The error's kind.
        kind: ErrorKind,
        /// The message.
        message: String,
    },
    /// Not read: the sink's configuration leaves the user out
    /// ([`DirectorySink::excluded`](crate::sink::DirectorySink::excluded)).
    Excluded {
        /// Why.
        excluded: crate::sink::Excluded,
    },
}

impl SinkState {
    /// The sink's photo as a short text that changes when the photo does, for plan files:
    /// `none` (no photo), `sha256:<hex>` (known by its bytes), `version:<tag>` (Graph's
    /// etag), `unread` (not read); `None` for a user the sink does not know or failed on.
    pub fn version_text(&self) -> Option<String> {
        match self {
            SinkState::NoPhoto => Some("none".into()),
            SinkState::Photo {
                sha256: Some(s), ..
            } => Some(format!("sha256:{}", s.to_ascii_lowercase())),
            SinkState::Photo {
                sha256: None,
                version: Some(v),
            } => Some(format!("version:{v}")),
            SinkState::Photo {
                sha256: None,
                version: None,
            } => Some("photo".into()),
            SinkState::Unread => Some("unread".into()),
            _ => None,
        }
    }
}

/// What the state store recorded after the last successful write for a user and sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Recorded {
    /// The rendition written (hex SHA-256).
    pub rendition_sha256: String,
    /// The sink's version tag seen after that write (Graph re-encodes photos, so its etag,
    /// not the bytes, says whether the photo is still ours). `None` when the sink did not
    /// read it back: the next run adopts the tag it sees, if the rendition still matches.
    pub version: Option<String>,
}

/// Everything known about one user for one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Observation {
    /// The user.
    pub key: UserKey,
    /// The sink's name.
    pub sink: String,
    /// The sink's byte limit.
    pub max_bytes: usize,
    /// The source side.
    pub source: SourceState,
    /// The sink side.
    pub current: SinkState,
    /// The state store's record, if any.
    pub recorded: Option<Recorded>,
    /// How the source's rendition for this sink was cropped, when it was made.
    pub crop: Option<CropReport>,
    /// The engine's index of the sink, passed on to the plan item.
    #[serde(skip)]
    pub(crate) target: usize,
}

impl Observation {
    /// What is known of `key` in the sink named `sink` (whose byte limit is `max_bytes`):
    /// the source side and the sink side, with no state store record (add one with
    /// [`with_recorded`](Self::with_recorded)).
    pub fn new(
        key: UserKey,
        sink: impl Into<String>,
        max_bytes: usize,
        source: SourceState,
        current: SinkState,
    ) -> Self {
        Self {
            key,
            sink: sink.into(),
            max_bytes,
            source,
            current,
            recorded: None,
            crop: None,
            target: 0,
        }
    }

    /// The same observation with the rendition's crop report.
    pub fn with_crop(mut self, crop: Option<CropReport>) -> Self {
        self.crop = crop;
        self
    }

    /// The same observation with the state store's record.
    pub fn with_recorded(mut self, recorded: Option<Recorded>) -> Self {
        self.recorded = recorded;
        self
    }
}

/// Rules the planner follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[must_use]
pub struct Policy {
    /// Remove the photos of users the source no longer lists (off by default: leavers are
    /// kept and listed).
    pub remove_leavers: bool,
    /// Remove the photos of people who withdrew consent (on by default).
    pub remove_withheld: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            remove_leavers: false,
            remove_withheld: true,
        }
    }
}

impl Policy {
    /// The same policy, removing (or keeping) the photos of leavers.
    pub fn with_remove_leavers(mut self, remove: bool) -> Self {
        self.remove_leavers = remove;
        self
    }

    /// The same policy, removing (or keeping) the photos of people who withdrew consent.
    pub fn with_remove_withheld(mut self, remove: bool) -> Self {
        self.remove_withheld = remove;
        self
    }
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlanItem {
    /// The user.
    pub key: UserKey,
    /// The sink.
    pub sink: String,
    /// What to do.
    pub action: Action,
    /// Why.
    pub reason: Reason,
    /// The rendition to write (hex SHA-256), for puts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendition_sha256: Option<String>,
    /// Its size in bytes, for puts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<usize>,
    /// Details for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How the rendition was cropped (strategy, square, faces, warnings), when it was made
    /// while planning.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crop: Option<CropReport>,
    /// What the plan was based on, source side: the source's fingerprint of the photo
    /// (none for leavers and source failures).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_fingerprint: Option<String>,
    /// What the plan was based on, sink side: the directory's photo as the sink knew it
    /// ([`SinkState::version_text`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub current_version: Option<String>,
    /// The engine's index of the sink (its place among the engine's sinks).
    #[serde(skip)]
    pub(crate) target: usize,
}

impl PlanItem {
    /// The crop's warnings (none when the rendition was not made while planning).
    pub fn warnings(&self) -> &[CropWarning] {
        self.crop.as_ref().map_or(&[], |c| &c.warnings)
    }
}

/// The decisions for a run, sorted by user key, then sink.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[must_use]
pub struct Plan {
    /// One item per user and sink.
    pub items: Vec<PlanItem>,
}

impl Plan {
    /// How many items take `action`.
    pub fn count(&self, action: Action) -> usize {
        self.items.iter().filter(|i| i.action == action).count()
    }

    /// The items that change a sink (puts and deletes), which a dry run lists.
    pub fn changes(&self) -> impl Iterator<Item = &PlanItem> {
        self.items
            .iter()
            .filter(|i| matches!(i.action, Action::Put | Action::Delete))
    }
}

/// Decides what to do for every observation. Pure and deterministic: the same observations
/// in any order give the same plan, sorted by key (case-insensitively) and sink.
///
/// ```
/// use userphoto::sync::{
///     plan, Action, Observation, Policy, Reason, RenditionFacts, SinkState, SourceState,
/// };
/// use userphoto::UserKey;
/// let obs = Observation::new(
///     UserKey::new("alice"),
///     "ad",
///     102_400,
///     SourceState::Photo { fingerprint: "f1".into(), rendition: Ok(RenditionFacts::new("ab12", 3_000)) },
///     SinkState::NoPhoto,
/// );
/// let p = plan(vec![obs], Policy::default());
/// assert_eq!((p.items[0].action, p.items[0].reason), (Action::Put, Reason::New));
/// ```
pub fn plan(observations: impl IntoIterator<Item = Observation>, policy: Policy) -> Plan {
    let mut items: Vec<PlanItem> = observations
        .into_iter()
        .map(|o| {
            let crop = o.crop.clone();
            let mut it = decide(o, policy);
            it.crop = crop;
            it
        })
        .collect();
    items.sort_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then_with(|| a.key.as_str().cmp(b.key.as_str()))
            .then_with(|| a.sink.cmp(&b.sink))
    });
    Plan { items }
}

fn decide(o: Observation, policy: Policy) -> PlanItem {
    let item = |action, reason, detail: Option<String>| PlanItem {
        key: o.key.clone(),
        sink: o.sink.clone(),
        action,
        reason,
        rendition_sha256: None,
        bytes: None,
        detail,
        crop: None,
        source_fingerprint: match &o.source {
            SourceState::Photo { fingerprint, .. } | SourceState::Deferred { fingerprint } => {
                Some(fingerprint.clone())
            }
            _ => None,
        },
        current_version: o.current.version_text(),
        target: o.target,
    };
    // Source-side failures first: nothing is known about what to write.
    if let SourceState::Error { kind, message } = &o.source {
        let reason = if *kind == ErrorKind::Conflict {
            Reason::Conflict
        } else {
            Reason::SourceError
        };
        return item(Action::Fail, reason, Some(message.clone()));
    }
    let has_photo = match &o.current {
        SinkState::Excluded { excluded } => {
            let reason = match excluded {
                crate::sink::Excluded::SyncedUser => Reason::SyncedUser,
                crate::sink::Excluded::CloudOnlyUser => Reason::CloudOnlyUser,
            };
            return item(Action::Skip, reason, None);
        }
        SinkState::NotFound => {
            // A leaver the sink no longer knows has nothing to remove either.
            let action = if o.source == SourceState::Absent {
                Action::Skip
            } else {
                Action::Fail
            };
            return item(action, Reason::Unmatched, None);
        }
        SinkState::Ambiguous { message } => {
            return item(Action::Fail, Reason::AmbiguousMatch, Some(message.clone()))
        }
        SinkState::Error { kind, message } => {
            return item(
                Action::Fail,
                Reason::SinkError,
                Some(format!("{kind}: {message}")),
            )
        }
        SinkState::NoPhoto => false,
        SinkState::Photo { .. } => true,
        SinkState::Unread => {
            if let SourceState::Deferred { .. } = &o.source {
                return item(Action::Put, Reason::NotRecorded, None);
            }
            if let SourceState::Photo {
                rendition: Ok(r), ..
            } = &o.source
            {
                if r.bytes <= o.max_bytes {
                    let mut it = item(Action::Put, Reason::NotRecorded, None);
                    it.rendition_sha256 = Some(r.sha256.clone());
                    it.bytes = Some(r.bytes);
                    return it;
                }
            }
            // Anything else is decided as if a photo might be there (deletes are
            // idempotent).
            true
        }
    };
    match &o.source {
        SourceState::Withheld => {
            let action = if has_photo && policy.remove_withheld {
                Action::Delete
            } else {
                Action::Skip
            };
            item(action, Reason::Withheld, None)
        }
        SourceState::Absent => {
            let action = if has_photo && policy.remove_leavers {
                Action::Delete
            } else {
                Action::Skip
            };
            item(action, Reason::Leaver, None)
        }
        SourceState::Deferred { .. } => {
            let reason = if has_photo {
                Reason::Changed
            } else {
                Reason::New
            };
            item(Action::Put, reason, None)
        }
        SourceState::Photo {
            rendition: Err(Failure { kind, message }),
            ..
        } => {
            let reason = match kind {
                ErrorKind::PhotoTooLarge => Reason::CannotFit,
                _ => Reason::InvalidImage,
            };
            item(Action::Fail, reason, Some(message.clone()))
        }
        SourceState::Photo {
            rendition:
                Ok(RenditionFacts {
                    sha256: sha,
                    bytes: len,
                }),
            ..
        } => {
            if *len > o.max_bytes {
                return item(
                    Action::Fail,
                    Reason::TooLarge,
                    Some(format!(
                        "{len} bytes, the sink takes at most {}",
                        o.max_bytes
                    )),
                );
            }
            let unchanged = match &o.current {
                SinkState::Photo {
                    sha256: Some(current),
                    ..
                } => current.eq_ignore_ascii_case(sha),
                // A sink that re-encodes (Graph): ours only if the state store saw this very
                // rendition written and the sink's version has not moved since.
                // A record without a version (the sink did not read its tag back after the
                // upload) adopts the tag seen now: the photo counts as ours.
                SinkState::Photo {
                    sha256: None,
                    version: Some(v),
                } => {
                    matches!(&o.recorded, Some(r) if r.rendition_sha256.eq_ignore_ascii_case(sha) && r.version.as_ref().is_none_or(|r| r == v))
                }
                _ => false,
            };
            let (action, reason) = match (has_photo, unchanged) {
                (false, _) => (Action::Put, Reason::New),
                (true, true) => (Action::Skip, Reason::Unchanged),
                (true, false) => (Action::Put, Reason::Changed),
            };
            let mut it = item(action, reason, None);
            if action == Action::Put {
                it.rendition_sha256 = Some(sha.clone());
                it.bytes = Some(*len);
            }
            it
        }
        SourceState::Error { .. } => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(key: &str, source: SourceState, current: SinkState) -> Observation {
        Observation {
            key: UserKey::new(key),
            sink: "ad".into(),
            max_bytes: 10_000,
            source,
            current,
            recorded: None,
            crop: None,
            target: 0,
        }
    }

    fn photo(sha: &str, len: usize) -> SourceState {
        SourceState::Photo {
            fingerprint: "fp".into(),
            rendition: Ok(RenditionFacts::new(sha, len)),
        }
    }

    fn stored(sha: &str) -> SinkState {
        SinkState::Photo {
            sha256: Some(sha.into()),
            version: None,
        }
    }

    fn decided(o: Observation, p: Policy) -> (Action, Reason) {
        let it = decide(o, p);
        (it.action, it.reason)
    }

    #[test]
    fn the_decision_table() {
        let p = Policy::default();
        use Action::*;
        use Reason::*;
        assert_eq!(
            decided(obs("a", photo("aa", 10), SinkState::NoPhoto), p),
            (Put, New)
        );
        assert_eq!(
            decided(obs("a", photo("aa", 10), stored("AA")), p),
            (Skip, Unchanged)
        );
        assert_eq!(
            decided(obs("a", photo("aa", 10), stored("bb")), p),
            (Put, Changed)
        );
        assert_eq!(
            decided(obs("a", photo("aa", 20_000), SinkState::NoPhoto), p),
            (Fail, TooLarge)
        );
        assert_eq!(
            decided(obs("a", photo("aa", 10), SinkState::NotFound), p),
            (Fail, Unmatched)
        );
        assert_eq!(
            decided(
                obs(
                    "a",
                    photo("aa", 10),
                    SinkState::Ambiguous {
                        message: "2".into()
                    }
                ),
                p
            ),
            (Fail, AmbiguousMatch)
        );
        assert_eq!(
            decided(
                obs(
                    "a",
                    photo("aa", 10),
                    SinkState::Error {
                        kind: ErrorKind::Unavailable,
                        message: "x".into()
                    }
                ),
                p
            ),
            (Fail, SinkError)
        );
        let bad = SourceState::Photo {
            fingerprint: "f".into(),
            rendition: Err(Failure::new(ErrorKind::InvalidPhoto, "corrupt")),
        };
        assert_eq!(
            decided(obs("a", bad, SinkState::NoPhoto), p),
            (Fail, InvalidImage)
        );
        let nofit = SourceState::Photo {
            fingerprint: "f".into(),
            rendition: Err(Failure::new(ErrorKind::PhotoTooLarge, "cannot fit")),
        };
        assert_eq!(
            decided(obs("a", nofit, SinkState::NoPhoto), p),
            (Fail, CannotFit)
        );
        let conflict = SourceState::Error {
            kind: ErrorKind::Conflict,
            message: "a.jpg, A.png".into(),
        };
        assert_eq!(
            decided(obs("a", conflict, stored("x")), p),
            (Fail, Conflict)
        );
        // Withheld: removed by default, kept when the policy says so, nothing to do without a photo.
        assert_eq!(
            decided(obs("a", SourceState::Withheld, stored("x")), p),
            (Delete, Withheld)
        );
        assert_eq!(
            decided(obs("a", SourceState::Withheld, SinkState::NoPhoto), p),
            (Skip, Withheld)
        );
        let keep_withheld = Policy {
            remove_withheld: false,
            ..p
        };
        assert_eq!(
            decided(obs("a", SourceState::Withheld, stored("x")), keep_withheld),
            (Skip, Withheld)
        );
        // Leavers: kept unless asked.
        assert_eq!(
            decided(obs("a", SourceState::Absent, stored("x")), p),
            (Skip, Leaver)
        );
        let remove = Policy {
            remove_leavers: true,
            ..p
        };
        assert_eq!(
            decided(obs("a", SourceState::Absent, stored("x")), remove),
            (Delete, Leaver)
        );
        assert_eq!(
            decided(obs("a", SourceState::Absent, SinkState::NotFound), remove),
            (Skip, Unmatched)
        );
        // Users the sink's configuration leaves out: skipped, whatever the source says
        // (withheld and leavers included: the sink does not touch them).
        use crate::sink::Excluded;
        for (ex, reason) in [
            (Excluded::SyncedUser, SyncedUser),
            (Excluded::CloudOnlyUser, CloudOnlyUser),
        ] {
            for src in [photo("aa", 10), SourceState::Withheld, SourceState::Absent] {
                assert_eq!(
                    decided(obs("a", src, SinkState::Excluded { excluded: ex }), remove),
                    (Skip, reason)
                );
            }
        }
        assert_eq!(SyncedUser.as_kebab(), "synced-user");
        assert_eq!(
            serde_json::to_value(CloudOnlyUser).unwrap(),
            "cloud-only-user"
        );
    }

    #[test]
    fn deferred_renditions_are_written_without_a_hash() {
        let p = Policy::default();
        let deferred = SourceState::Deferred {
            fingerprint: "fp".into(),
        };
        for (current, reason) in [
            (SinkState::NoPhoto, Reason::New),
            (SinkState::Unread, Reason::NotRecorded),
            (stored("aa"), Reason::Changed),
        ] {
            let it = decide(obs("a", deferred.clone(), current), p);
            assert_eq!((it.action, it.reason), (Action::Put, reason));
            assert_eq!((it.rendition_sha256, it.bytes), (None, None));
        }
        assert_eq!(
            decided(obs("a", deferred, SinkState::NotFound), p),
            (Action::Fail, Reason::Unmatched)
        );
    }

    #[test]
    fn version_only_sinks_use_the_state_store() {
        let p = Policy::default();
        let graph = |version: &str, recorded: Option<Recorded>| Observation {
            recorded,
            ..obs(
                "a",
                photo("aa", 10),
                SinkState::Photo {
                    sha256: None,
                    version: Some(version.into()),
                },
            )
        };
        let rec = |sha: &str, v: &str| {
            Some(Recorded {
                rendition_sha256: sha.into(),
                version: Some(v.into()),
            })
        };
        assert_eq!(
            decided(graph("e1", rec("aa", "e1")), p),
            (Action::Skip, Reason::Unchanged)
        );
        assert_eq!(
            decided(graph("e2", rec("aa", "e1")), p),
            (Action::Put, Reason::Changed),
            "someone else uploaded since"
        );
        assert_eq!(
            decided(graph("e1", rec("bb", "e1")), p),
            (Action::Put, Reason::Changed),
            "the source photo changed"
        );
        assert_eq!(
            decided(graph("e1", None), p),
            (Action::Put, Reason::Changed),
            "never written by us"
        );
        let pending = |sha: &str| {
            Some(Recorded {
                rendition_sha256: sha.into(),
                version: None,
            })
        };
        assert_eq!(
            decided(graph("e9", pending("aa")), p),
            (Action::Skip, Reason::Unchanged),
            "a write recorded without its tag adopts the tag seen now"
        );
        assert_eq!(
            decided(graph("e9", pending("bb")), p),
            (Action::Put, Reason::Changed),
            "but not for another rendition"
        );
        let no_tag = Observation {
            recorded: pending("aa"),
            ..obs(
                "a",
                photo("aa", 10),
                SinkState::Photo {
                    sha256: None,
                    version: None,
                },
            )
        };
        assert_eq!(
            decided(no_tag, p),
            (Action::Put, Reason::Changed),
            "a sink showing neither bytes nor a tag never counts as unchanged"
        );
    }

    #[test]
    fn plans_are_sorted_deterministic_and_serializable() {
        let a = vec![
            obs("bob", photo("b", 1), SinkState::NoPhoto),
            obs("Alice", photo("a", 1), stored("a")),
            Observation {
                sink: "graph".into(),
                ..obs("alice", photo("a", 1), SinkState::NoPhoto)
            },
            obs("carol", SourceState::Withheld, stored("c")),
        ];
        let mut b = a.clone();
        b.reverse();
        let pa = plan(a, Policy::default());
        let pb = plan(b, Policy::default());
        assert_eq!(pa, pb);
        let order: Vec<(String, String)> = pa
            .items
            .iter()
            .map(|i| (i.key.to_string(), i.sink.clone()))
            .collect();
        assert_eq!(
            order,
            [
                ("Alice".into(), "ad".into()),
                ("alice".into(), "graph".into()),
                ("bob".into(), "ad".into()),
                ("carol".into(), "ad".into())
            ]
        );
        assert_eq!(
            (
                pa.count(Action::Put),
                pa.count(Action::Skip),
                pa.count(Action::Delete)
            ),
            (2, 1, 1)
        );
        let json = serde_json::to_string(&pa).unwrap();
        assert!(json.contains(r#""action":"put","reason":"new""#), "{json}");
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, pa);
    }
}
