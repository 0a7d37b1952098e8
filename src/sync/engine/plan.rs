//! Stage 4, plan: one observation per user and sink, each decided as it is made by the pure
//! planner ([`crate::sync::plan`]); the renditions the plan does not write are dropped, and
//! the state records of users found unchanged are refreshed.

use std::time::Instant;

use super::super::event::Event;
use super::super::report::Timings;
use super::super::{
    Action, Failure, Observation, Plan, Reason, RenditionFacts, SinkState, SourceState, StateRecord,
};
use super::users::{Rendition, Slot, User};
use super::*;
use crate::{ErrorKind, UserKey};

/// A state record to write: the sink, the user, the record (`None` removes it).
pub(super) type RecordChange = (String, UserKey, Option<StateRecord>);

impl Engine {
    /// Plans; returns the plan and the state records to refresh for users found unchanged
    /// (so the next run does not decode them).
    pub(super) fn plan_all(
        &self,
        listed: &mut Listed,
        timings: &mut Timings,
    ) -> (Plan, Vec<RecordChange>) {
        let t = Instant::now();
        // One observation at a time, each decided as it is made: the plan holds a small
        // item per user and sink, and no list of observations is ever kept whole.
        let observations = listed.users.iter().flat_map(|(key, u)| {
            u.targets
                .iter()
                .enumerate()
                .filter_map(move |(ti, slot)| Some(self.observe(key, u, ti, slot.as_ref()?)))
        });
        let mut plan = super::super::plan(observations, listed.policy);
        if let Some(note) = &listed.leaver_note {
            for it in &mut plan.items {
                if it.reason == Reason::Leaver && it.action == Action::Skip {
                    it.detail = Some(note.clone());
                }
            }
        }
        let mut refresh = Vec::new();
        for it in &plan.items {
            let Some(u) = listed.users.get_mut(&it.key) else {
                continue;
            };
            let fp = u.photo.as_ref().map(|r| r.fingerprint.clone());
            let Some(Some(slot)) = u.targets.get_mut(it.target) else {
                continue;
            };
            match (it.action, it.reason) {
                (Action::Put, _) => {}
                (Action::Skip, Reason::Unchanged) => {
                    if let (Some(fp), true) = (fp, self.state.is_some()) {
                        let tg = &self.targets[it.target];
                        let fp = StateRecord::keyed_fingerprint(&tg.profile_id, &fp);
                        refresh.extend(
                            Self::refreshed(slot, fp)
                                .map(|r| (it.sink.clone(), it.key.clone(), Some(r))),
                        );
                    }
                    Self::drop_bytes(slot);
                }
                // Nothing to write: its bytes, if any were kept, are not needed.
                _ => Self::drop_bytes(slot),
            }
            slot.shed();
        }
        timings.plan_ms = ms(t.elapsed());
        self.emit(Event::Planned {
            changes: plan.changes().count(),
            items: plan.items.len(),
        });
        (plan, refresh)
    }

    /// What is known of `key` in target `ti`.
    fn observe(&self, key: &UserKey, u: &User, ti: usize, slot: &Slot) -> Observation {
        let tg = &self.targets[ti];
        let source = if let Some(f) = &u.source_error {
            SourceState::Error {
                kind: f.kind,
                message: f.message.clone(),
            }
        } else if let Some(r) = &u.photo {
            let fingerprint = r.fingerprint.clone();
            let photo = |rendition| SourceState::Photo {
                fingerprint: fingerprint.clone(),
                rendition,
            };
            match &slot.rendition {
                _ if r.withheld => SourceState::Withheld,
                Rendition::Deferred => SourceState::Deferred {
                    fingerprint: fingerprint.clone(),
                },
                Rendition::Known(f) => photo(Ok(f.clone())),
                Rendition::Made { facts, .. } => photo(Ok(facts.clone())),
                Rendition::Failed(f) => photo(Err(f.clone())),
                // Not rendered because the sink cannot take it anyway (the planner fails
                // the user on the sink side first).
                Rendition::None => photo(Err(Failure::new(ErrorKind::Other, "not rendered"))),
            }
        } else {
            SourceState::Absent
        };
        let crop = match &slot.rendition {
            Rendition::Made { crop, .. } => crop.clone(),
            _ => None,
        };
        let mut o = Observation::new(
            key.clone(),
            tg.sink.name(),
            tg.sink.capabilities().max_bytes,
            source,
            // (every slot is read before planning; an unread one plans as not found)
            slot.current.clone().unwrap_or(SinkState::NotFound),
        )
        .with_recorded(slot.record.as_ref().map(StateRecord::recorded))
        .with_crop(crop);
        o.target = ti;
        o
    }

    /// The state record to write for a user found unchanged, if the stored one is out of
    /// date: a record of another photo (the rendition made now is the one the sink shows),
    /// or a write recorded without a version tag (the sink did not read one back after the
    /// upload), which adopts the tag seen now.
    fn refreshed(slot: &Slot, fp: String) -> Option<StateRecord> {
        let version = match &slot.current {
            Some(SinkState::Photo { version, .. }) => version.clone(),
            _ => None,
        };
        match (&slot.record, &slot.rendition) {
            (Some(rec), _) if rec.is_of(&fp) => match (&rec.version, version) {
                (None, Some(v)) => Some(StateRecord {
                    version: Some(v),
                    time: now_secs(),
                    ..rec.clone()
                }),
                _ => None,
            },
            (
                _,
                Rendition::Made {
                    facts: RenditionFacts { sha256, bytes },
                    ..
                },
            ) => Some(
                StateRecord::new(fp, sha256.clone(), *bytes)
                    .with_version(version)
                    .with_time(now_secs()),
            ),
            _ => None,
        }
    }

    /// Drops a rendition's bytes that no change will write.
    fn drop_bytes(slot: &mut Slot) {
        if let Rendition::Made { kept, .. } = &mut slot.rendition {
            *kept = None;
        }
    }
}
