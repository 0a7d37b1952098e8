//! Stage 5, apply: the plan's changes, per sink with bounded concurrency, retries and the
//! circuit breaker; old photos backed up before they are replaced; state records committed as
//! writes succeed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use tokio::sync::Semaphore;

use super::super::event::{Event, Stage};
use super::super::report::{Outcome, Status};
use super::super::{Action, PlanItem, Reason, StateRecord};
use super::*;
use crate::digest::sha256_hex;
use crate::{Error, ErrorKind};

/// Whether a failed write says something about the sink or the account (and so counts
/// towards the circuit breaker) rather than about that one user or photo.
fn counts_for_breaker(kind: ErrorKind) -> bool {
    !matches!(
        kind,
        ErrorKind::UserNotFound
            | ErrorKind::AmbiguousMatch
            | ErrorKind::InvalidPhoto
            | ErrorKind::PhotoTooLarge
            | ErrorKind::LimitExceeded
            | ErrorKind::Conflict
    )
}

/// Why a change was not made.
pub(super) enum Halt {
    /// The run stopped (a run-level failure elsewhere) before the call was sent.
    Stopped,
    /// The change failed.
    Failed(Error),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

/// A sink call the apply stage makes.
#[derive(Clone, Copy)]
pub(super) enum Op<'a> {
    Fetch,
    Put(&'a Bytes),
    Delete,
}

/// What one retried sink call returns.
pub(super) enum Fetched {
    /// `fetch`: the stored photo, if any.
    Old(Option<Bytes>),
    /// `put`: the new version tag; `delete`: nothing.
    Version(Option<String>),
}

pub(super) struct Shared {
    pub(super) cancel: AtomicBool,
    pub(super) abort: Mutex<Option<Error>>,
    pub(super) pending: Mutex<Vec<RecordChange>>,
    /// Held while a batch of `pending` is committed to the state store.
    pub(super) committing: tokio::sync::Mutex<()>,
    pub(super) done: AtomicUsize,
    pub(super) state_error: Mutex<Option<Error>>,
    /// Per sink: writes that failed in a row (the circuit breaker).
    pub(super) consecutive: Vec<AtomicUsize>,
}

impl Shared {
    /// Why the run stopped, if it did: the first run-level failure, else a state store
    /// that could not be written.
    fn reason(&self) -> Option<Error> {
        let aborted = self.abort.lock().unwrap_or_else(|p| p.into_inner()).take();
        aborted.or_else(|| {
            self.state_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
        })
    }

    /// Stops the run at `e`: nothing more is sent, and the first such error is the report's
    /// reason.
    fn stop(&self, e: Error) {
        self.cancel.store(true, Ordering::SeqCst);
        self.abort
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
    }
}

impl<'e> Prepared<'e> {
    /// Applies the plan and reports. A run-level failure stops the run: the result is then
    /// a [`RunError`] whose report holds what was done (the changes not tried are
    /// [`Status::NotAttempted`], and [`Report::aborted`] says why). Users who fail are in
    /// the report, not an error.
    pub async fn apply(self) -> std::result::Result<Report, RunError> {
        let (report, stopped) = self
            .apply_all()
            .instrument(tracing::info_span!("apply"))
            .await;
        match stopped {
            Some(e) => Err(RunError::new(e, report)),
            None => Ok(report),
        }
    }

    async fn apply_all(mut self) -> (Report, Option<Error>) {
        let t = Instant::now();
        let eng = self.engine;
        if let Some(b) = &eng.backups {
            b.begin_run();
        }
        let shared = Shared {
            cancel: AtomicBool::new(false),
            abort: Mutex::new(None),
            pending: Mutex::new(std::mem::take(&mut self.refresh)),
            committing: tokio::sync::Mutex::new(()),
            done: AtomicUsize::new(0),
            state_error: Mutex::new(None),
            consecutive: eng.targets.iter().map(|_| AtomicUsize::new(0)).collect(),
        };
        // Each change with its place in the plan, where its outcome goes.
        let changes: Vec<(usize, &PlanItem)> = self
            .plan
            .items
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i.action, Action::Put | Action::Delete))
            .collect();
        eng.emit(Event::Stage {
            stage: Stage::Apply,
            total: changes.len(),
        });
        let per_target = eng.targets.iter().enumerate().map(|(ti, _)| {
            let items: Vec<(usize, &PlanItem)> = changes
                .iter()
                .copied()
                .filter(|(_, it)| it.target == ti)
                .collect();
            let sem = Semaphore::new(eng.concurrency);
            let shared = &shared;
            let this = &self;
            async move {
                let sem = &sem;
                // More items than permits in progress, so an item waiting out a retry does
                // not hold a call slot.
                stream::iter(items)
                    .map(|(at, it)| async move { (at, this.apply_one(it, sem, shared).await) })
                    .buffer_unordered(eng.concurrency * 4)
                    .collect::<Vec<(usize, Outcome)>>()
                    .await
            }
        });
        let results = futures::future::join_all(per_target).await;
        self.flush(&shared, true).await;
        self.save_snapshots().await;
        // Sinks that write a file for people (the LDIF change file) complete it now, in key
        // order; after a stopped run too, for the writes that were made.
        for tg in &eng.targets {
            if let Err(e) = tg.sink.finish().await {
                shared.stop(e.run_level());
            }
        }
        drop(changes);
        let outcomes = self.outcomes(results.into_iter().flatten().collect());
        let aborted = shared.reason();
        let mut report = self.report(outcomes, false, aborted.as_ref());
        if let Some(b) = &eng.backups {
            let _ = b.sync();
            report.backup_run = b.run_id();
        }
        report.timings.apply_ms = ms(t.elapsed());
        (report, aborted)
    }

    /// The plan's items become the report's outcomes (moved, not copied: at 100,000 users
    /// the two would otherwise be held side by side), the applied ones in their place.
    fn outcomes(&mut self, mut applied: Vec<(usize, Outcome)>) -> Vec<Outcome> {
        applied.sort_unstable_by_key(|(at, _)| *at);
        let mut applied = applied.into_iter().peekable();
        std::mem::take(&mut self.plan.items)
            .into_iter()
            .enumerate()
            .map(|(at, it)| match it.action {
                Action::Put | Action::Delete => match applied.next_if(|(a, _)| *a == at) {
                    Some((_, o)) => o,
                    None => Self::into_outcome(it, Status::NotAttempted),
                },
                Action::Skip => Self::into_outcome(it, Status::Skipped),
                Action::Fail => Self::into_outcome(it, Status::Failed),
            })
            .collect()
    }

    /// Keeps each sink's snapshot for the next run. A sink that has none, or fails to make
    /// one, leaves the stored one as it was (which the sink must still be able to use: its
    /// changes since are read again).
    pub(super) async fn save_snapshots(&self) {
        let Some(state) = &self.engine.state else {
            return;
        };
        for tg in &self.engine.targets {
            let Some(inc) = tg.sink.incremental() else {
                continue;
            };
            let Ok(Some(snap)) = inc.snapshot().await else {
                continue;
            };
            let (state, name) = (state.clone(), tg.sink.name().to_owned());
            // Best effort: without it the next run reads the whole directory again.
            let _ =
                tokio::task::spawn_blocking(move || state.put_snapshot(&name, Some(&snap))).await;
        }
    }

    /// Writes pending state records (all of them when `all`, else when enough piled up).
    pub(super) async fn flush(&self, shared: &Shared, all: bool) {
        let Some(state) = &self.engine.state else {
            return;
        };
        // One commit at a time: while one is written (and synced), the records that come in
        // wait for the next, which takes them all. Commits sent side by side would only
        // queue on the store's single writer, each holding a blocking thread meanwhile.
        let _writing = if all {
            shared.committing.lock().await
        } else {
            match shared.committing.try_lock() {
                Ok(g) => g,
                Err(_) => return,
            }
        };
        let batch = {
            let mut p = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
            if p.is_empty() || (!all && p.len() < 64) {
                return;
            }
            std::mem::take(&mut *p)
        };
        let state = state.clone();
        let r = tokio::task::spawn_blocking(move || state.commit(&batch))
            .await
            .unwrap_or_else(|e| {
                Err(Error::new(
                    ErrorKind::Other,
                    format!("state writer failed: {e}"),
                ))
            });
        if let Err(e) = r {
            // Without a state store the run cannot promise a resume: stop.
            shared.cancel.store(true, Ordering::SeqCst);
            shared
                .state_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
        }
    }

    /// Applies one change and says what became of it.
    pub(super) async fn apply_one(
        &self,
        it: &PlanItem,
        sem: &Semaphore,
        shared: &Shared,
    ) -> Outcome {
        let mut out = Self::outcome(it, Status::Done);
        if shared.cancel.load(Ordering::SeqCst) {
            out.status = Status::NotAttempted;
            return out;
        }
        let started = Instant::now();
        let span = tracing::info_span!(
            "write",
            user = %it.key,
            sink = %it.sink,
            action = ?it.action
        );
        // A deferred photo is normalized now; a failure is the photo's, as the plan would
        // have said.
        let mut render_failure = None;
        let res = async {
            match self.deferred_rendition(it).await {
                Ok(pre) => {
                    let pre = pre.map(|(b, warnings)| {
                        out.bytes = Some(b.len());
                        out.warnings = warnings;
                        b
                    });
                    self.change(it, sem, &shared.cancel, &mut out, pre).await
                }
                Err((reason, e)) => {
                    render_failure = Some(reason);
                    Err(Halt::Failed(e))
                }
            }
        }
        .instrument(span.clone())
        .await;
        let duration_ms = ms(started.elapsed());
        let n = shared.done.fetch_add(1, Ordering::Relaxed) + 1;
        let _entered = span.enter();
        match res {
            Ok(record) => {
                self.written(it, &out, record, shared, n, duration_ms);
                drop(_entered);
                self.flush(shared, false).await;
            }
            Err(Halt::Stopped) => {
                tracing::debug!(
                    target: "userphoto::sync",
                    user = %it.key,
                    sink = %it.sink,
                    outcome = "not_attempted",
                    "not written: the run was stopped"
                );
                out.status = Status::NotAttempted;
            }
            Err(Halt::Failed(e)) => {
                self.failed(it, &mut out, e, render_failure, shared, n, duration_ms);
            }
        }
        out
    }

    /// A change made: its state record waits for the next commit.
    fn written(
        &self,
        it: &PlanItem,
        out: &Outcome,
        record: Option<StateRecord>,
        shared: &Shared,
        n: usize,
        duration_ms: u64,
    ) {
        shared.consecutive[it.target].store(0, Ordering::SeqCst);
        shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((it.sink.clone(), it.key.clone(), record));
        tracing::info!(
            target: "userphoto::sync",
            user = %it.key,
            sink = %it.sink,
            action = ?it.action,
            outcome = "done",
            bytes = out.bytes,
            duration_ms,
            "written"
        );
        self.engine.emit(Event::Written {
            key: it.key.clone(),
            sink: it.sink.clone(),
            action: it.action,
            done: n,
        });
    }

    /// A change failed: the outcome says why, and a run-level failure (or the circuit
    /// breaker) stops the run.
    #[allow(clippy::too_many_arguments)]
    fn failed(
        &self,
        it: &PlanItem,
        out: &mut Outcome,
        e: Error,
        render_failure: Option<Reason>,
        shared: &Shared,
        n: usize,
        duration_ms: u64,
    ) {
        let eng = self.engine;
        let tg = &eng.targets[it.target];
        out.status = Status::Failed;
        if let Some(reason) = render_failure {
            out.reason = reason;
        } else if e.kind() == ErrorKind::UserNotFound {
            // Learnt only now (a sink that was not read first): say it as the plan would
            // have.
            out.reason = Reason::Unmatched;
        } else if e.kind() == ErrorKind::PermissionDenied {
            out.reason = Reason::Refused;
        }
        out.error_kind = Some(e.kind());
        out.message = Some(e.to_string());
        tracing::warn!(
            target: "userphoto::sync",
            user = %it.key,
            sink = %it.sink,
            action = ?it.action,
            outcome = "failed",
            kind = e.kind().as_str(),
            error = %e,
            duration_ms,
            "write failed"
        );
        eng.emit(Event::Failed {
            key: it.key.clone(),
            sink: tg.sink.name().to_owned(),
            kind: e.kind(),
            message: e.to_string(),
            done: n,
        });
        let limit = eng.max_consecutive_failures;
        let tripped = render_failure.is_none()
            && counts_for_breaker(e.kind())
            && limit > 0
            && shared.consecutive[it.target].fetch_add(1, Ordering::SeqCst) + 1 == limit;
        if e.is_run_level() {
            shared.stop(e);
        } else if tripped {
            // Every further write is most likely refused the same way.
            let stop = Error::new(
                e.kind(),
                format!(
                    "stopped after {limit} writes in a row failed; the last: {e}. \
                     The account or the directory, not the users, is the likely cause; \
                     the rest were not tried (the limit is the engine's \
                     max_consecutive_failures)"
                ),
            )
            .with_backend(tg.sink.name().to_owned())
            .with_operation("apply")
            .run_level()
            .permanent();
            shared.stop(stop);
        }
    }

    /// One sink call for `it`'s user, retried; each attempt holds a call slot only while it
    /// runs, and none is sent once the run stopped. Adds the attempts to `out`.
    async fn call(
        &self,
        it: &PlanItem,
        op: Op<'_>,
        sem: &Semaphore,
        cancel: &AtomicBool,
        out: &mut Outcome,
    ) -> std::result::Result<Fetched, Halt> {
        let sink = self.engine.targets[it.target].sink.as_ref();
        let key = &it.key;
        // Set when the run stopped before this call was sent.
        let stopped = AtomicBool::new(false);
        let (r, attempts) =
            self.retrier
                .run(
                    || async {
                        let _permit = sem
                            .acquire()
                            .await
                            .map_err(|_| Error::new(ErrorKind::Other, "engine shut down"))?;
                        // A run-level failure while this call waited for its slot: send nothing
                        // more.
                        if cancel.load(Ordering::SeqCst) {
                            stopped.store(true, Ordering::SeqCst);
                            return Err(Error::new(ErrorKind::Other, "not sent: the run stopped")
                                .permanent());
                        }
                        match op {
                            Op::Fetch => sink.fetch(key).await.map(Fetched::Old),
                            Op::Put(jpeg) => sink.put(key, jpeg).await.map(Fetched::Version),
                            Op::Delete => sink.delete(key).await.map(|()| Fetched::Version(None)),
                        }
                    },
                    |e, after| self.engine.retrying(key, sink.name(), e, after),
                )
                .await;
        out.attempts += attempts;
        match r {
            Err(_) if stopped.load(Ordering::SeqCst) => Err(Halt::Stopped),
            Err(e) => Err(Halt::Failed(e)),
            Ok(v) => Ok(v),
        }
    }

    /// One put or delete: back up what it replaces, write, and return the state record
    /// (`None` for a deletion).
    pub(super) async fn change(
        &self,
        it: &PlanItem,
        sem: &Semaphore,
        cancel: &AtomicBool,
        out: &mut Outcome,
        pre: Option<Bytes>,
    ) -> std::result::Result<Option<StateRecord>, Halt> {
        let eng = self.engine;
        let tg = &eng.targets[it.target];
        let jpeg = match (it.action, pre) {
            (Action::Put, Some(b)) => Some(b),
            (Action::Put, None) => Some(self.rendition(it).await?),
            _ => None,
        };
        // Keep what is about to be replaced or removed. A user who had no photo when the
        // plan was made (reason `New`) has nothing to keep.
        let mut had_none = it.reason == Reason::New;
        if let (Some(backups), false) = (&eng.backups, had_none) {
            let old = match self.call(it, Op::Fetch, sem, cancel, out).await? {
                Fetched::Old(old) => old,
                Fetched::Version(_) => None,
            };
            had_none = old.is_none();
            if let Some(old) = old {
                let new = it
                    .rendition_sha256
                    .clone()
                    .or_else(|| jpeg.as_ref().map(|b| sha256_hex(b)));
                let (name, key) = (tg.sink.name().to_owned(), it.key.clone());
                Self::journal(it, backups, move |b| {
                    b.save(&name, &key, &old, new.as_deref()).map(|_| ())
                })
                .await?;
            }
        }
        let Some(jpeg) = jpeg else {
            self.call(it, Op::Delete, sem, cancel, out).await?;
            return Ok(None);
        };
        let version = match self.call(it, Op::Put(&jpeg), sem, cancel, out).await? {
            Fetched::Version(v) => v,
            Fetched::Old(_) => None,
        };
        let sha = sha256_hex(&jpeg);
        // A first photo: note it, so that a restore removes it.
        if let (Some(backups), true) = (&eng.backups, had_none) {
            let (name, key, s) = (tg.sink.name().to_owned(), it.key.clone(), sha.clone());
            Self::journal(it, backups, move |b| b.note_added(&name, &key, &s)).await?;
        }
        let fingerprint = self
            .users
            .get(&it.key)
            .and_then(|u| u.photo.as_ref())
            .map(|r| r.fingerprint.as_str())
            .unwrap_or_default();
        Ok(Some(
            StateRecord::new(
                StateRecord::keyed_fingerprint(&tg.profile_id, fingerprint),
                sha,
                jpeg.len(),
            )
            .with_version(version)
            .with_time(now_secs()),
        ))
    }

    /// Runs a backup-store call on the blocking pool (the journal's lock may be held by a
    /// backup's flush).
    async fn journal(
        it: &PlanItem,
        backups: &Arc<BackupStore>,
        f: impl FnOnce(&BackupStore) -> crate::Result<()> + Send + 'static,
    ) -> std::result::Result<(), Halt> {
        let b = backups.clone();
        tokio::task::spawn_blocking(move || f(&b))
            .await
            .map_err(|e| Error::new(ErrorKind::Other, format!("backup task failed: {e}")))?
            .map_err(|e| Halt::Failed(e.with_user(it.key.clone())))
    }
}
