//! Stage 4, plan: one observation per user and sink, each decided as it is made by the pure
//! planner ([`crate::sync::plan`]); the renditions the plan writes are kept, and the state
//! records of users found unchanged are refreshed.

use std::collections::HashMap;
use std::time::Instant;

use super::super::event::Event;
use super::super::report::Timings;
use super::super::spill::Spilled;
use super::super::{Action, Observation, Plan, Reason, SinkState, SourceState, StateRecord};
use super::*;
use crate::{ErrorKind, UserKey};

/// The plan and what its apply stage needs.
pub(super) struct Planned {
    /// The plan.
    pub(super) plan: Plan,
    /// Per (user, target) written: its rendition, in memory or in the spill file.
    pub(super) renditions: HashMap<(UserKey, usize), Kept>,
    /// State records to write for users found unchanged.
    pub(super) refresh: Vec<(String, UserKey, Option<StateRecord>)>,
}

impl Engine {
    /// Plans.
    pub(super) fn plan_all(
        &self,
        listed: &Listed,
        read: &Read,
        rendered: &mut Rendered,
        timings: &mut Timings,
    ) -> Planned {
        let t = Instant::now();
        let Listed {
            refs,
            source_errors,
            policy,
            leaver_note,
            ..
        } = listed;
        let Read {
            per_target,
            records,
            reads,
            ..
        } = read;
        let Rendered {
            reused,
            deferred_tis,
            made,
            load_errors,
            spilled,
            ..
        } = rendered;
        // One observation at a time, each decided as it is made: the plan holds a small
        // item per user and sink, and no list of observations is ever kept whole.
        let (reused, made_ref, load_errors) = (&reused, &made, &load_errors);
        let (refs_ref, source_errors, deferred_ref) = (&refs, &source_errors, &deferred_tis);
        let (reads_ref, records_ref) = (&reads, &records);
        let observations = self.targets.iter().enumerate().flat_map(|(ti, tg)| {
            per_target[ti].iter().map(move |key| {
                let (reused, made, load_errors) = (reused, made_ref, load_errors);
                let (refs, deferred) = (refs_ref, deferred_ref);
                let (reads, records) = (reads_ref, records_ref);
                let source = if let Some((kind, message)) = source_errors.get(key) {
                    SourceState::Error {
                        kind: *kind,
                        message: message.clone(),
                    }
                } else if let Some(r) = refs.get(key) {
                    if r.withheld {
                        SourceState::Withheld
                    } else if deferred.get(key).is_some_and(|tis| tis.contains(&ti)) {
                        SourceState::Deferred {
                            fingerprint: r.fingerprint.clone(),
                        }
                    } else if let Some((kind, message)) = load_errors.get(key) {
                        SourceState::Error {
                            kind: *kind,
                            message: message.clone(),
                        }
                    } else {
                        let rendition = if let Some((sha, len)) = reused.get(&(key.clone(), ti)) {
                            Ok((sha.clone(), *len))
                        } else {
                            match made.get(&(key.clone(), ti)) {
                                Some(Ok(x)) => Ok((x.sha256.clone(), x.len)),
                                Some(Err(e)) => Err(e.clone()),
                                // Not rendered because the sink cannot take it anyway (the
                                // planner fails the user on the sink side first).
                                None => Err((ErrorKind::Other, "not rendered".to_owned())),
                            }
                        };
                        SourceState::Photo {
                            fingerprint: r.fingerprint.clone(),
                            rendition,
                        }
                    }
                } else {
                    SourceState::Absent
                };
                let crop = match made.get(&(key.clone(), ti)) {
                    Some(Ok(x)) => x.crop.clone(),
                    _ => None,
                };
                Observation {
                    key: key.clone(),
                    sink: tg.sink.name().to_owned(),
                    max_bytes: tg.sink.capabilities().max_bytes,
                    source,
                    current: reads[ti][key].clone(),
                    recorded: records[ti].get(key).map(StateRecord::recorded),
                    crop,
                }
            })
        });
        let mut the_plan = super::super::plan(observations, *policy);
        if let Some(note) = leaver_note {
            for it in &mut the_plan.items {
                if it.reason == Reason::Leaver && it.action == Action::Skip {
                    it.detail = Some(note.clone());
                }
            }
        }
        // Keep only the renditions the plan writes; note the records to refresh for users
        // found unchanged (so the next run does not decode them).
        let index: HashMap<&str, usize> = self
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.sink.name(), i))
            .collect();
        let mut renditions = HashMap::new();
        let mut spilled: HashMap<(UserKey, usize), Spilled> = std::mem::take(spilled)
            .into_iter()
            .filter_map(|(k, at)| Some((k, at?)))
            .collect();
        let mut refresh = Vec::new();
        for it in &the_plan.items {
            let ti = index[it.sink.as_str()];
            let k = (it.key.clone(), ti);
            match (it.action, it.reason) {
                (Action::Put, _) => match made.remove(&k) {
                    Some(Ok(Rend { bytes: Some(b), .. })) => {
                        renditions.insert(k, Kept::Memory(b));
                    }
                    _ => {
                        if let Some(at) = spilled.remove(&k) {
                            renditions.insert(k, Kept::Spilled(at));
                        }
                    }
                },
                (Action::Skip, Reason::Unchanged) if self.state.is_some() => {
                    let r = &refs[&it.key];
                    let fp = format!("{}:{}", self.targets[ti].profile_id, r.fingerprint);
                    let rec = records[ti].get(&it.key);
                    let stale = rec.is_none_or(|rec| rec.source_fingerprint != fp);
                    let version = match &reads[ti][&it.key] {
                        SinkState::Photo { version, .. } => version.clone(),
                        _ => None,
                    };
                    // A write recorded without a version tag (the sink did not read one back
                    // after the upload): the tag seen now becomes the record's.
                    if let (false, Some(rec), Some(_)) = (stale, rec, &version) {
                        if rec.version.is_none() {
                            refresh.push((
                                it.sink.clone(),
                                it.key.clone(),
                                Some(StateRecord {
                                    version: version.clone(),
                                    time: now_secs(),
                                    ..rec.clone()
                                }),
                            ));
                        }
                    }
                    if let (true, Some(Ok(x))) = (stale, made.get(&k)) {
                        refresh.push((
                            it.sink.clone(),
                            it.key.clone(),
                            Some(StateRecord {
                                source_fingerprint: fp,
                                rendition_sha256: x.sha256.clone(),
                                bytes: x.len,
                                version,
                                time: now_secs(),
                            }),
                        ));
                    }
                }
                _ => {}
            }
        }
        timings.plan_ms = ms(t.elapsed());
        self.emit(Event::Planned {
            changes: the_plan.changes().count(),
            items: the_plan.items.len(),
        });
        Planned {
            plan: the_plan,
            renditions,
            refresh,
        }
    }
}
