//! Progress events, for progress bars and logs.

use std::time::Duration;

use super::Action;
use crate::{ErrorKind, UserKey};

/// A stage of a run, announced with [`Event::Stage`] before its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Stage {
    /// Listing the source.
    List,
    /// Reading what the sinks hold now.
    Read,
    /// Loading and normalizing the photos that may need writing.
    Normalize,
    /// Writing to the sinks.
    Apply,
}

/// What the engine reports while it runs. Delivered in order from one task at a time to the
/// callback given to [`Engine::with_events`](super::Engine::with_events), which should return
/// quickly (forward to a channel for anything slow).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A stage starts with `total` items.
    Stage {
        /// Which one.
        stage: Stage,
        /// How many items it has.
        total: usize,
    },
    /// The source was listed.
    Listed {
        /// Photos listed (withheld ones included).
        photos: usize,
        /// Items the source could not list.
        failures: usize,
    },
    /// One sink was read for one user.
    Read {
        /// Items done in this stage.
        done: usize,
    },
    /// One user's photo was loaded and normalized (or failed to be).
    Normalized {
        /// The user.
        key: UserKey,
        /// Whether every rendition was made.
        ok: bool,
        /// Items done in this stage.
        done: usize,
    },
    /// The plan is made.
    Planned {
        /// Puts and deletes to apply.
        changes: usize,
        /// Items in the plan.
        items: usize,
    },
    /// A change was applied.
    Written {
        /// The user.
        key: UserKey,
        /// The sink.
        sink: String,
        /// `Put` or `Delete`.
        action: Action,
        /// Changes done in this stage (applied, failed or not attempted).
        done: usize,
    },
    /// A change failed for good.
    Failed {
        /// The user.
        key: UserKey,
        /// The sink.
        sink: String,
        /// The error's kind.
        kind: ErrorKind,
        /// The error, as text.
        message: String,
        /// Changes done in this stage.
        done: usize,
    },
    /// The run is over (applied, or reported as a dry run).
    Finished {
        /// Changes applied.
        applied: usize,
        /// Users that failed (plan and apply), plus source items without a user.
        failed: usize,
    },
    /// An operation failed in a way that may pass, and will be tried again.
    Retrying {
        /// The user.
        key: UserKey,
        /// The sink.
        sink: String,
        /// The error's kind.
        kind: ErrorKind,
        /// How long the engine waits first.
        after: Duration,
    },
}
