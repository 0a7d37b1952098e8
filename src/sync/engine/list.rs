//! Stage 1, list: every photo the source has, one per user, and what it could not list.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::stream::StreamExt;

use super::super::event::{Event, Stage};
use super::super::report::{SourceFailure, Timings};
use super::super::Policy;
use super::*;
use crate::source::PhotoRef;
use crate::{ErrorKind, Result, UserKey};

/// What the source listed.
pub(super) struct Listed {
    /// One photo per user.
    pub(super) refs: BTreeMap<UserKey, PhotoRef>,
    /// Users whose photo could not be listed (or was listed twice), with why.
    pub(super) source_errors: BTreeMap<UserKey, (ErrorKind, String)>,
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
        let mut refs: BTreeMap<UserKey, PhotoRef> = BTreeMap::new();
        let mut source_errors: BTreeMap<UserKey, (ErrorKind, String)> = BTreeMap::new();
        let mut failures = Vec::new();
        let mut listing = self.source.list();
        while let Some(item) = listing.next().await {
            match item {
                Ok(r) => {
                    if refs.contains_key(&r.key) || source_errors.contains_key(&r.key) {
                        // The source broke its contract; be safe: neither is used.
                        refs.remove(&r.key);
                        source_errors.insert(
                            r.key.clone(),
                            (ErrorKind::Conflict, format!("{} is listed twice", r.key)),
                        );
                    } else {
                        refs.insert(r.key.clone(), r);
                    }
                }
                Err(e) if e.is_run_level() => return Err(e),
                Err(e) => match e.user().cloned() {
                    Some(k) => {
                        refs.remove(&k);
                        source_errors.insert(k, (e.kind(), e.to_string()));
                    }
                    None => failures.push(SourceFailure {
                        kind: e.kind(),
                        message: e.to_string(),
                    }),
                },
            }
        }
        drop(listing);
        self.emit(Event::Listed {
            photos: refs.len(),
            failures: failures.len() + source_errors.len(),
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
        if policy.remove_leavers && refs.is_empty() && source_errors.is_empty() {
            return Err(Self::config_err(
                "the source lists nobody; refusing to remove every photo as a leaver".into(),
            ));
        }
        timings.list_ms = ms(t.elapsed());
        Ok(Listed {
            refs,
            source_errors,
            failures,
            policy,
            leaver_note,
        })
    }
}
