//! Stage 2, read: what each sink holds for the users listed (and its leavers), and what the
//! state store recorded of the last run's writes, into each user's record.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt, TryStreamExt};

use super::super::event::{Event, Stage};
use super::super::report::Timings;
use super::super::retry::Retrier;
use super::super::{Policy, SinkState, StateRecord};
use super::users::Users;
use super::*;
use crate::{Error, ErrorKind, Result, UserKey};

impl Engine {
    /// Reads the sinks and the state store into `users` (adding each sink's leavers), and
    /// returns the run's retry budget, shared with the apply stage.
    pub(super) async fn read_sinks(
        &self,
        listed: &mut Listed,
        timings: &mut Timings,
    ) -> Result<Arc<Retrier>> {
        let t = Instant::now();
        let users = &mut listed.users;
        // The source's users (sorted); each sink's leavers join the records as they are found.
        let source_keys: Vec<UserKey> = users.keys().cloned().collect();
        let n = self.targets.len();
        for (ti, tg) in self.targets.iter().enumerate() {
            self.resume_snapshot(tg).await?;
            tg.sink.prefetch(&source_keys).await?;
            let leavers = self.leavers(tg, &source_keys, listed.policy).await?;
            for key in &source_keys {
                if let Some(u) = users.get_mut(key) {
                    u.slot_mut(ti, n);
                }
            }
            for key in leavers {
                users.entry(key).or_default().slot_mut(ti, n);
            }
            self.load_records(ti, tg, users).await?;
        }
        let total: usize = users
            .values()
            .map(|u| u.targets.iter().flatten().count())
            .sum();
        self.emit(Event::Stage {
            stage: Stage::Read,
            total,
        });
        let retrier = Arc::new(Retrier::new(self.retry.clone()));
        let done = AtomicUsize::new(0);
        let read = futures::future::try_join_all(
            (0..n).map(|ti| self.read_target(ti, users, &retrier, &done)),
        )
        .await?;
        for (ti, states) in read.into_iter().enumerate() {
            for (key, state) in states {
                if let Some(u) = users.get_mut(&key) {
                    u.slot_mut(ti, n).current = Some(state);
                }
            }
        }
        timings.read_ms = ms(t.elapsed());
        Ok(retrier)
    }

    /// Gives the sink its view from the last run, so it can read only what changed since.
    async fn resume_snapshot(&self, tg: &Target) -> Result<()> {
        let (Some(state), Some(inc)) = (&self.state, tg.sink.incremental()) else {
            return Ok(());
        };
        let (state, name) = (state.clone(), tg.sink.name().to_owned());
        let saved = tokio::task::spawn_blocking(move || state.snapshot(&name))
            .await
            .map_err(|e| Error::new(ErrorKind::Other, format!("state read failed: {e}")))??;
        if let Some(saved) = saved {
            match inc.resume(saved).await {
                Err(e) if e.is_run_level() => return Err(e),
                // Anything else: the sink reads everything, as without a snapshot.
                _ => {}
            }
        }
        Ok(())
    }

    /// The users with a photo in the sink whom the source does not list.
    async fn leavers(
        &self,
        tg: &Target,
        source_keys: &[UserKey],
        policy: Policy,
    ) -> Result<Vec<UserKey>> {
        match tg.sink.users_with_photos().await {
            Ok(holders) => Ok(holders
                .into_iter()
                .filter(|k| source_keys.binary_search(k).is_err())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()),
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                if policy.remove_leavers {
                    return Err(Self::config_err(format!(
                        "sink {} cannot list its photos, so leavers cannot be removed",
                        tg.sink.name()
                    )));
                }
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// The state store's records for the users with a photo, into their slots of `ti`.
    async fn load_records(&self, ti: usize, tg: &Target, users: &mut Users) -> Result<()> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        let keys: Vec<UserKey> = users
            .iter()
            .filter(|(_, u)| u.photo.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        let (state, sink) = (state.clone(), tg.sink.name().to_owned());
        let (keys, got) =
            tokio::task::spawn_blocking(move || state.get_many(&sink, &keys).map(|v| (keys, v)))
                .await
                .map_err(|e| Error::new(ErrorKind::Other, format!("state read failed: {e}")))??;
        let n = self.targets.len();
        for (k, r) in keys.into_iter().zip(got) {
            if let (Some(r), Some(u)) = (r, users.get_mut(&k)) {
                u.slot_mut(ti, n).record = Some(r);
            }
        }
        Ok(())
    }

    /// What sink `ti` holds for each of its users, `concurrency` calls at a time.
    async fn read_target(
        &self,
        ti: usize,
        users: &Users,
        retrier: &Retrier,
        done: &AtomicUsize,
    ) -> Result<Vec<(UserKey, SinkState)>> {
        let tg = &self.targets[ti];
        let returns_bytes = tg.sink.capabilities().returns_bytes;
        // Per user: whether to read it. A sink that re-encodes (Graph) cannot show whether
        // its photo is ours; without a record of having written this very photo, the user
        // is written whatever `current` says, so it is not read.
        let work: Vec<(UserKey, bool)> = users
            .iter()
            .filter_map(|(key, u)| {
                let slot = u.slot(ti)?;
                if tg.sink.excluded(key).is_some() {
                    // Settled below without a read.
                    return Some((key.clone(), false));
                }
                let unread = !returns_bytes
                    && u.photo.as_ref().filter(|r| !r.withheld).is_some_and(|r| {
                        let fp = StateRecord::keyed_fingerprint(&tg.profile_id, &r.fingerprint);
                        slot.record.as_ref().is_none_or(|rec| !rec.is_of(&fp))
                    });
                Some((key.clone(), !unread))
            })
            .collect();
        stream::iter(work)
            .map(|(key, read)| async move {
                let state = if let Some(excluded) = tg.sink.excluded(&key) {
                    SinkState::Excluded { excluded }
                } else if read {
                    self.read_one(tg, &key, retrier).await?
                } else {
                    SinkState::Unread
                };
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                self.emit(Event::Read { done: n });
                Ok((key, state))
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await
    }

    /// What the sink holds for one user; a run-level failure is the error.
    async fn read_one(&self, tg: &Target, key: &UserKey, retrier: &Retrier) -> Result<SinkState> {
        let (r, _) = retrier
            .run(
                || tg.sink.current(key),
                |e, after| self.retrying(key, tg.sink.name(), e, after),
            )
            .await;
        Ok(match r {
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
        })
    }
}
