//! What a run did: counts, per-user outcomes, timings; JSON and a human summary.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Action, Reason};
use crate::{Error, ErrorKind, UserKey};

/// What became of one plan item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// The change was applied.
    Done,
    /// Nothing needed doing (the plan said skip).
    Skipped,
    /// The change is planned but this was a dry run.
    Planned,
    /// The user failed: in the plan (unmatched, invalid image, ...) or while applying.
    Failed,
    /// The run stopped (a run-level failure) before this change was tried.
    NotAttempted,
}

/// One user in one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Outcome {
    /// The user.
    pub key: UserKey,
    /// The sink.
    pub sink: String,
    /// What the plan said.
    pub action: Action,
    /// Why: the plan's reason, except that a user the sink turned out not to know when
    /// written (a sink that is not read first) is [`Reason::Unmatched`].
    pub reason: Reason,
    /// What happened.
    pub status: Status,
    /// The rendition's size, for puts.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<usize>,
    /// Attempts made (0 when nothing was sent).
    #[serde(default)]
    pub attempts: u32,
    /// The error's kind, for failures.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_kind: Option<ErrorKind>,
    /// The error or the plan's detail.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
    /// The crop's warnings for the photo written (no face found, several faces, ...).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub warnings: Vec<crate::normalize::CropWarning>,
}

/// A source item that could not be tied to a user (a broken manifest row, an unreadable
/// file whose key is unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFailure {
    /// The error's kind.
    pub kind: ErrorKind,
    /// The error.
    pub message: String,
}

/// Counts for one sink.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Counts {
    /// Photos written (or, in a dry run, to be written).
    pub put: usize,
    /// Photos removed (or to be removed).
    pub deleted: usize,
    /// Users left as they were, because nothing changed.
    pub unchanged: usize,
    /// Leavers whose photo was kept.
    pub leavers_kept: usize,
    /// Withheld users with nothing to remove, or kept by policy.
    pub withheld_kept: usize,
    /// Users who failed.
    pub failed: usize,
    /// Changes not tried because the run stopped.
    pub not_attempted: usize,
    /// Changes not made because they differ from the approved plan
    /// ([`Reason::ChangedSincePlan`]).
    #[serde(default)]
    pub changed_since_plan: usize,
    /// Changes not made because the approved plan does not have them
    /// ([`Reason::NotInPlan`]).
    #[serde(default)]
    pub not_in_plan: usize,
    /// Synced users the sink leaves to Entra Connect ([`Reason::SyncedUser`]).
    #[serde(default)]
    pub synced_users: usize,
    /// Cloud-only users the sink leaves out ([`Reason::CloudOnlyUser`]).
    #[serde(default)]
    pub cloud_only_users: usize,
}

/// Wall-clock time per stage, in milliseconds, and how much decoding the run needed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Timings {
    /// Listing the source.
    pub list_ms: u64,
    /// Reading the sinks' current photos (and leavers).
    pub read_ms: u64,
    /// Loading and normalizing photos before planning. (The photos of users the sinks hold
    /// no photo for are normalized during the apply stage instead, when the run was made
    /// with [`Engine::run`](crate::sync::Engine::run) or
    /// [`prepare_to_apply`](crate::sync::Engine::prepare_to_apply).)
    pub normalize_ms: u64,
    /// Planning.
    pub plan_ms: u64,
    /// Applying changes (with the normalizing left to it).
    pub apply_ms: u64,
    /// The whole run.
    pub total_ms: u64,
    /// Photos decoded and normalized, in either stage.
    pub decoded: usize,
    /// Renditions taken from the state store instead (the source and the sink unchanged).
    pub reused: usize,
    /// Retries made.
    pub retries: usize,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[must_use]
pub struct Report {
    /// Whether nothing was applied.
    pub dry_run: bool,
    /// The source's name.
    pub source: String,
    /// Counts per sink.
    pub sinks: BTreeMap<String, Counts>,
    /// Every plan item and what became of it, in plan order.
    pub outcomes: Vec<Outcome>,
    /// Source items without a user.
    pub source_failures: Vec<SourceFailure>,
    /// Timings.
    pub timings: Timings,
    /// The run-level failure that stopped the run, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub aborted: Option<SourceFailure>,
    /// The run's id in the backup journal, when it kept backups and changed something
    /// ([`BackupStore::run_id`](crate::sync::BackupStore::run_id)): what a restore undoes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub backup_run: Option<String>,
}

impl Report {
    /// Users (per sink) that failed, plus source items without a user.
    pub fn failed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.status == Status::Failed)
            .count()
            + self.source_failures.len()
    }

    /// Whether the run did everything it planned: it was not stopped, and no user and no
    /// source item failed.
    pub fn is_success(&self) -> bool {
        self.aborted.is_none() && self.failed() == 0
    }

    pub(crate) fn recount(&mut self) {
        let mut sinks: BTreeMap<String, Counts> = self
            .sinks
            .keys()
            .map(|k| (k.clone(), Counts::default()))
            .collect();
        for o in &self.outcomes {
            let c = sinks.entry(o.sink.clone()).or_default();
            match (o.status, o.action, o.reason) {
                (Status::Failed, _, _) => c.failed += 1,
                (Status::NotAttempted, _, _) => c.not_attempted += 1,
                (_, Action::Put, _) => c.put += 1,
                (_, Action::Delete, _) => c.deleted += 1,
                (_, _, Reason::Leaver) => c.leavers_kept += 1,
                (_, _, Reason::Withheld) => c.withheld_kept += 1,
                (_, _, Reason::ChangedSincePlan) => c.changed_since_plan += 1,
                (_, _, Reason::NotInPlan) => c.not_in_plan += 1,
                (_, _, Reason::SyncedUser) => c.synced_users += 1,
                (_, _, Reason::CloudOnlyUser) => c.cloud_only_users += 1,
                _ => c.unchanged += 1,
            }
        }
        self.sinks = sinks;
    }
}

impl fmt::Display for Report {
    /// The human summary: one line per sink, the failures, the timings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = |done: &str, planned: &str| if self.dry_run { planned } else { done }.to_owned();
        // Users, not items: a user in two sinks counts once; a user whose every item is a
        // leaver's is in the directory only.
        let mut users: BTreeMap<&UserKey, bool> = BTreeMap::new();
        for o in &self.outcomes {
            let only_dir = users.entry(&o.key).or_insert(true);
            *only_dir &= o.reason == Reason::Leaver;
        }
        let dir_only = users.values().filter(|d| **d).count();
        writeln!(
            f,
            "{}{} users from {}, {} only in the directory: {} in the plan",
            if self.dry_run { "dry run: " } else { "" },
            users.len() - dir_only,
            self.source,
            dir_only,
            users.len()
        )?;
        for (sink, c) in &self.sinks {
            write!(
                f,
                "  {sink}: {} {}, {} {}, {} unchanged, {} failed",
                c.put,
                verb("written", "to write"),
                c.deleted,
                verb("removed", "to remove"),
                c.unchanged,
                c.failed
            )?;
            if c.leavers_kept > 0 {
                write!(f, ", {} leavers kept", c.leavers_kept)?;
            }
            if c.withheld_kept > 0 {
                write!(f, ", {} withheld with nothing to remove", c.withheld_kept)?;
            }
            if c.not_attempted > 0 {
                write!(f, ", {} not attempted", c.not_attempted)?;
            }
            if c.changed_since_plan > 0 {
                write!(f, ", {} not made: changed-since-plan", c.changed_since_plan)?;
            }
            if c.not_in_plan > 0 {
                write!(f, ", {} not made: not-in-plan", c.not_in_plan)?;
            }
            if c.synced_users > 0 {
                write!(f, ", {} left out: synced-user", c.synced_users)?;
            }
            if c.cloud_only_users > 0 {
                write!(f, ", {} left out: cloud-only-user", c.cloud_only_users)?;
            }
            writeln!(f)?;
        }
        let failures: Vec<&Outcome> = self
            .outcomes
            .iter()
            .filter(|o| o.status == Status::Failed)
            .collect();
        for o in failures.iter().take(20) {
            writeln!(
                f,
                "  failed: {} in {}: {}{}",
                o.key,
                o.sink,
                serde_json::to_value(o.reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
                    .replace('_', " "),
                o.message
                    .as_deref()
                    .map(|m| format!(": {}", crate::error::human_message(m)))
                    .unwrap_or_default()
            )?;
        }
        if failures.len() > 20 {
            writeln!(f, "  ... and {} more failures", failures.len() - 20)?;
        }
        // The changes an approved plan held back, by name: a reviewer looks for them.
        let held: Vec<&Outcome> = self
            .outcomes
            .iter()
            .filter(|o| matches!(o.reason, Reason::ChangedSincePlan | Reason::NotInPlan))
            .collect();
        for o in held.iter().take(20) {
            writeln!(
                f,
                "  not made: {} in {}: {}{}",
                o.key,
                o.sink,
                o.reason.as_kebab(),
                o.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )?;
        }
        if held.len() > 20 {
            writeln!(f, "  ... and {} more not made", held.len() - 20)?;
        }
        for s in self.source_failures.iter().take(20) {
            writeln!(
                f,
                "  source failure: {}",
                crate::error::human_message(&s.message)
            )?;
        }
        if self.source_failures.len() > 20 {
            writeln!(
                f,
                "  ... and {} more source failures",
                self.source_failures.len() - 20
            )?;
        }
        if let Some(a) = &self.aborted {
            writeln!(f, "  STOPPED: {}", crate::error::human_message(&a.message))?;
        }
        if let Some(run) = &self.backup_run {
            writeln!(f, "  backup run: {run} (a restore undoes it)")?;
        }
        let t = &self.timings;
        write!(
            f,
            "  time: list {} ms, read {} ms, normalize {} ms ({} decoded, {} reused), plan {} ms, apply {} ms ({} retries), total {} ms",
            t.list_ms, t.read_ms, t.normalize_ms, t.decoded, t.reused, t.plan_ms, t.apply_ms, t.retries, t.total_ms
        )
    }
}

/// A run that stopped on a run-level failure ([`Error::is_run_level`]): bad configuration,
/// refused credentials, a directory lost halfway, a state store that cannot be written.
///
/// It carries the failure and the report of what the run did until then (the writes made,
/// the changes [`NotAttempted`](Status::NotAttempted)), the same whether the run stopped
/// before the apply stage (a report with no outcomes) or during it, so `engine.run().await?`
/// never mistakes a stopped run for a finished one. It converts into the [`Error`] for `?`.
#[derive(Debug)]
#[non_exhaustive]
#[must_use]
pub struct RunError {
    error: Error,
    report: Box<Report>,
}

impl RunError {
    pub(crate) fn new(error: Error, report: Report) -> Self {
        Self {
            error,
            report: Box::new(report),
        }
    }

    /// What stopped the run.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// What the run did until it stopped ([`Report::aborted`] says why).
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The report of what the run did until it stopped.
    pub fn into_report(self) -> Report {
        *self.report
    }

    /// The failure and the report.
    pub fn into_parts(self) -> (Error, Report) {
        (self.error, *self.report)
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the run stopped: {}", self.error)
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<RunError> for Error {
    fn from(e: RunError) -> Self {
        e.error
    }
}
