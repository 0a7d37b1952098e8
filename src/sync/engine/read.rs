//! Stage 2, read: what each sink holds for the users listed (and its leavers), and what the
//! state store recorded of the last run's writes.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt, TryStreamExt};

use super::super::event::{Event, Stage};
use super::super::report::Timings;
use super::super::retry::Retrier;
use super::super::{SinkState, StateRecord};
use super::*;
use crate::{Error, ErrorKind, Result, UserKey};

/// What the sinks and the state store said.
pub(super) struct Read {
    /// Per target: the users to plan for (the source's, then the sink's leavers).
    pub(super) per_target: Vec<Vec<UserKey>>,
    /// Per target: the state store's records.
    pub(super) records: Vec<HashMap<UserKey, StateRecord>>,
    /// Per target: what the sink holds.
    pub(super) reads: Vec<HashMap<UserKey, SinkState>>,
    /// The run's retry budget, shared with the apply stage.
    pub(super) retrier: Arc<Retrier>,
}

impl Engine {
    /// Reads the sinks and the state store.
    pub(super) async fn read_sinks(&self, listed: &Listed, timings: &mut Timings) -> Result<Read> {
        let Listed {
            refs,
            source_errors,
            policy,
            ..
        } = listed;
        let t = Instant::now();
        let source_keys: Vec<UserKey> = refs
            .keys()
            .chain(source_errors.keys())
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut per_target: Vec<Vec<UserKey>> = Vec::new();
        for tg in &self.targets {
            // The sink's view from the last run, so it can read only what changed since.
            if let (Some(state), Some(inc)) = (&self.state, tg.sink.incremental()) {
                let (state, name) = (state.clone(), tg.sink.name().to_owned());
                let saved = tokio::task::spawn_blocking(move || state.snapshot(&name))
                    .await
                    .map_err(|e| {
                        Error::new(ErrorKind::Other, format!("state read failed: {e}"))
                    })??;
                if let Some(saved) = saved {
                    match inc.resume(saved).await {
                        Err(e) if e.is_run_level() => return Err(e),
                        // Anything else: the sink reads everything, as without a snapshot.
                        _ => {}
                    }
                }
            }
            tg.sink.prefetch(&source_keys).await?;
            let mut keys = source_keys.clone();
            match tg.sink.users_with_photos().await {
                Ok(holders) => {
                    let known: BTreeSet<&UserKey> = source_keys.iter().collect();
                    let leavers: BTreeSet<UserKey> =
                        holders.into_iter().filter(|k| !known.contains(k)).collect();
                    keys.extend(leavers);
                }
                Err(e) if e.kind() == ErrorKind::Unsupported => {
                    if policy.remove_leavers {
                        return Err(Self::config_err(format!(
                            "sink {} cannot list its photos, so leavers cannot be removed",
                            tg.sink.name()
                        )));
                    }
                }
                Err(e) => return Err(e),
            }
            per_target.push(keys);
        }
        let mut records: Vec<HashMap<UserKey, StateRecord>> = Vec::new();
        for tg in &self.targets {
            let mut m = HashMap::new();
            if let Some(state) = &self.state {
                let keys: Vec<UserKey> = refs.keys().cloned().collect();
                let (state, sink) = (state.clone(), tg.sink.name().to_owned());
                let got = tokio::task::spawn_blocking(move || {
                    state.get_many(&sink, &keys).map(|v| (keys, v))
                })
                .await
                .map_err(|e| Error::new(ErrorKind::Other, format!("state read failed: {e}")))??;
                for (k, r) in got.0.into_iter().zip(got.1) {
                    if let Some(r) = r {
                        m.insert(k, r);
                    }
                }
            }
            records.push(m);
        }
        let total: usize = per_target.iter().map(Vec::len).sum();
        self.emit(Event::Stage {
            stage: Stage::Read,
            total,
        });
        let retrier = Arc::new(Retrier::new(self.retry.clone()));
        let done = AtomicUsize::new(0);
        let reads =
            futures::future::try_join_all(self.targets.iter().enumerate().zip(&per_target).map(
                |((ti, tg), keys)| {
                    let retrier = &retrier;
                    let done = &done;
                    let records = &records[ti];
                    let refs = &refs;
                    let returns_bytes = tg.sink.capabilities().returns_bytes;
                    stream::iter(keys.iter().cloned())
                        .map(move |key| async move {
                            // A sink that re-encodes (Graph) cannot show whether its photo is
                            // ours; without a record of having written this very photo, the
                            // user is written whatever `current` says, so it is not read.
                            if !returns_bytes {
                                if let Some(r) = refs.get(&key).filter(|r| !r.withheld) {
                                    let fp = format!("{}:{}", tg.profile_id, r.fingerprint);
                                    if records
                                        .get(&key)
                                        .is_none_or(|rec| rec.source_fingerprint != fp)
                                    {
                                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                                        self.emit(Event::Read { done: n });
                                        return Ok((key, SinkState::Unread));
                                    }
                                }
                            }
                            let (r, _) = retrier
                                .run(
                                    || tg.sink.current(&key),
                                    |e, after| self.retrying(&key, tg.sink.name(), e, after),
                                )
                                .await;
                            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                            self.emit(Event::Read { done: n });
                            let state = match r {
                                Ok(None) => SinkState::NoPhoto,
                                Ok(Some(c)) => SinkState::Photo {
                                    sha256: c.content_sha256(),
                                    version: c.version,
                                },
                                Err(e) if e.is_run_level() => return Err(e),
                                Err(e) => match e.kind() {
                                    ErrorKind::UserNotFound => SinkState::NotFound,
                                    ErrorKind::AmbiguousMatch => SinkState::Ambiguous {
                                        message: e.message().to_owned(),
                                    },
                                    kind => SinkState::Error {
                                        kind,
                                        message: e.to_string(),
                                    },
                                },
                            };
                            Ok((key, state))
                        })
                        .buffer_unordered(self.concurrency)
                        .try_collect::<HashMap<UserKey, SinkState>>()
                },
            ))
            .await?;
        timings.read_ms = ms(t.elapsed());
        Ok(Read {
            per_target,
            records,
            reads,
            retrier,
        })
    }
}
