//! The sync engine: match users, plan, apply, report.
//!
//! * [`Engine`] runs a sync: it lists a [`PhotoSource`](crate::source::PhotoSource), reads
//!   each [`DirectorySink`](crate::sink::DirectorySink), normalizes what may need writing,
//!   makes a [`Plan`], and applies it with bounded concurrency and retries, reporting
//!   [`Event`]s on the way and a [`Report`] at the end.
//! * [`plan`] is the pure planner: observations in, a deterministic, serializable plan out.
//! * [`StateStore`] records what was written where in one crash-safe file, so a re-run over
//!   unchanged sources decodes nothing and an interrupted run resumes.
//! * [`BackupStore`] keeps every photo a sync replaces or removes and notes every first
//!   photo it adds, so a restore undoes the run.

mod backup;
pub(crate) mod engine;
mod event;
mod plan;
mod report;
mod retry;
mod spill;
mod state;

pub use backup::{
    BackupStore, JournalEntry, Restoration, RestoreOptions, Restored, RunInfo, UNKNOWN_RUN,
};
pub use engine::{Engine, Prepared, DEFAULT_MAX_CONSECUTIVE_FAILURES, DEFAULT_RENDITION_CACHE};
pub use event::{Event, Stage};
pub use plan::{
    plan, Action, Observation, Plan, PlanItem, Policy, Reason, Recorded, SinkState, SourceState,
};
pub use report::{Counts, Outcome, Report, SourceFailure, Status, Timings};
pub use retry::RetryPolicy;
pub use state::{StateRecord, StateStore};
