//! Stage 1, list: every photo the source has, one per user, and what it could not list.

use std::time::Instant;

use futures::stream::StreamExt;

use super::super::event::{Event, Stage};
use super::super::report::{SourceFailure, Timings};
use super::super::{Failure, Policy};
use super::users::Users;
use super::*;
use crate::{ErrorKind, Result};

/// What the source listed.
pub(super) struct Listed {
    /// One record per user the source named: its photo, or why it failed.
    pub(super) users: Users,
    /// Items the source could not tie to a user.
    pub(super) failures: Vec<SourceFailure>,
    /// The policy for this run (leavers are kept when the listing was not whole).
    pub(super) policy: Policy,
    /// Why leavers are kept this run, if they are against the policy.
    pub(super) leaver_note: Option<String>,
}

impl Engine {
    /// Lists the source.
    pub(super) async fn list(&self, timings: &mut Timings) -> Result<Listed> {
        self.emit(Event::Stage {
            stage: Stage::List,
            total: 0,
        });
        let t = Instant::now();
        let mut users = Users::new();
        let mut failures = Vec::new();
        let mut listing = self.source.list();
        while let Some(item) = listing.next().await {
            match item {
                Ok(r) => {
                    let u = users.entry(r.key.clone()).or_default();
                    if u.photo.is_some() || u.source_error.is_some() {
                        // The source broke its contract; be safe: neither is used.
                        u.photo = None;
                        u.source_error = Some(Failure::new(
                            ErrorKind::Conflict,
                            format!("{} is listed twice", r.key),
                        ));
                    } else {
                        u.photo = Some(r);
                    }
                }
                Err(e) if e.is_run_level() => return Err(e),
                Err(e) => match e.user().cloned() {
                    Some(k) => {
                        let u = users.entry(k).or_default();
                        u.photo = None;
                        u.source_error = Some(Failure::new(e.kind(), e.to_string()));
                    }
                    None => failures.push(SourceFailure {
                        kind: e.kind(),
                        message: e.to_string(),
                    }),
                },
            }
        }
        drop(listing);
        let photos = users.values().filter(|u| u.photo.is_some()).count();
        self.emit(Event::Listed {
            photos,
            failures: failures.len() + (users.len() - photos),
        });
        let mut policy = self.policy;
        let mut leaver_note = None;
        if policy.remove_leavers && !failures.is_empty() {
            policy.remove_leavers = false;
            leaver_note = Some(
                "kept: the source could not be listed whole this run, so leavers are not removed"
                    .to_owned(),
            );
        }
        if policy.remove_leavers && users.is_empty() {
            return Err(Self::config_err(
                "the source lists nobody; refusing to remove every photo as a leaver".into(),
            ));
        }
        timings.list_ms = ms(t.elapsed());
        Ok(Listed {
            users,
            failures,
            policy,
            leaver_note,
        })
    }
}
