//! The sync engine: match users, plan, apply, report.
//!
//! This release has the planner: [`plan`] turns what was observed about each user (the
//! source's photo and its rendition, the sink's current photo, what the state store
//! recorded) into a deterministic, serializable [`Plan`], and the [`BackupStore`] keeps
//! every photo a sync replaces or deletes and puts them back on request, and the
//! [`StateStore`] records what was written where in one crash-safe file. Gathering the
//! observations, applying plans with retries, and reports follow.

mod backup;
mod plan;
mod state;

pub use backup::{BackupStore, JournalEntry};
pub use plan::{
    plan, Action, Observation, Plan, PlanItem, Policy, Reason, Recorded, SinkState, SourceState,
};
pub use state::{StateRecord, StateStore};
