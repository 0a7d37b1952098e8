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
//!
//! # How it is tested: fakes and real servers, mocks for exact sequences
//!
//! Most of the engine's tests run it on hand-written fakes: the [`MemorySink`] and
//! [`MemorySource`], and a probe sink that wraps the memory sink to fail, throttle, slow down
//! and count on demand. A fake keeps real state, so a test asserts what the directory holds
//! after a run (the photo written, the leaver removed, the backup restored), not which calls
//! were made; refactoring the engine (batching reads, reordering stages, retrying
//! differently) then breaks no test unless the behaviour changes. The memory sink and source
//! pass the same conformance suite (`userphoto::conformance`) as the real ones, so they keep
//! the same contract, and the real sinks are tested against real servers (a Samba AD DC for
//! the AD sink, the test kit's Graph server for the Graph sink), because a mock of LDAP or
//! HTTP would only repeat our own reading of the protocol. Mocks (`mockall`, a
//! dev-dependency) serve where the call sequence is itself the behaviour under test:
//! `tests/apply_sequence.rs` requires, for one user, a read, a put refused as rate-limited,
//! then exactly one more put after the wait the sink asked for.
//!
//! [`MemorySink`]: crate::sink::MemorySink
//! [`MemorySource`]: crate::source::MemorySource

mod approved;
pub mod audit;
mod backup;
pub(crate) mod engine;
mod event;
mod plan;
mod report;
mod retry;
mod spill;
mod state;

pub use approved::{PlanSettings, PlanSummary, SavedPlan, SinkSettings, PLAN_FORMAT};
pub use audit::{Audit, AuditFailure, AuditItem, AuditState};
pub use backup::{
    BackupStore, JournalEntry, Restoration, RestoreOptions, Restored, RunInfo, UserRestored,
    UNKNOWN_RUN,
};
pub use engine::{Engine, Prepared, DEFAULT_MAX_CONSECUTIVE_FAILURES, DEFAULT_RENDITION_CACHE};
pub use event::{Event, Stage};
pub use plan::{
    plan, Action, Failure, Observation, Plan, PlanItem, Policy, Reason, Recorded, RenditionFacts,
    SinkState, SourceState,
};
pub use report::{Counts, Outcome, Report, RunError, SourceFailure, Status, Timings};
#[cfg(feature = "graph")]
pub(crate) use retry::Retrier;
pub use retry::RetryPolicy;
pub use state::{StateRecord, StateStore};

/// Now, as RFC 3339 text in UTC (`2026-12-07T10:00:00Z`).
pub(crate) fn now_rfc3339() -> String {
    backup::rfc3339(backup::now_secs())
}
