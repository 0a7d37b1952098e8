//! The engine: list the source, read the sinks, normalize what may need writing, plan, apply.
//!
//! One module per stage, in the order the data flows: [`list`] (the source) -> [`read`] (the
//! sinks and the state store) -> [`render`] (normalize) -> [`plan`] -> [`apply`], with the
//! renditions made while applying in [`deferred`]. Each stage fills in one record per user
//! ([`users`]); the plan's items name their user and target. This module holds the engine's
//! configuration and runs the first four in [`Engine::prepare`]; the last is
//! [`Prepared::apply`].

mod apply;
mod audit;
mod deferred;
mod list;
mod plan;
mod read;
mod render;
mod reviewing;
mod users;

use list::Listed;
use plan::RecordChange;
use users::Users;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use tracing::Instrument;

use super::approved::{PlanSettings, SavedPlan, SinkSettings};
use super::event::Event;
use super::report::{Outcome, Report, RunError, SourceFailure, Status, Timings};
use super::retry::{Retrier, RetryPolicy};
use super::spill::Spill;
use super::{Action, BackupStore, Plan, PlanItem, Policy, StateStore};
use crate::digest::sha256_hex;
use crate::normalize::{Normalizer, Profile};
use crate::sink::DirectorySink;
use crate::source::PhotoSource;
use crate::{Error, ErrorKind, Result, UserKey};

type EventFn = Arc<dyn Fn(&Event) + Send + Sync>;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The engine's events as `tracing` events (target `userphoto::sync`): stages, counts and
/// per-user progress. Writes, failures and retries are logged where they happen, with
/// their durations and reasons.
fn log_event(e: &Event) {
    match e {
        Event::Stage { stage, total } => {
            tracing::info!(target: "userphoto::sync", stage = ?stage, total, "stage")
        }
        Event::Listed { photos, failures } => {
            tracing::info!(target: "userphoto::sync", photos, failures, "listed")
        }
        Event::Read { done } => tracing::trace!(target: "userphoto::sync", done, "read"),
        Event::Normalized { key, ok, done } => {
            tracing::debug!(target: "userphoto::sync", user = %key, ok, done, "normalized")
        }
        Event::Planned { changes, items } => {
            tracing::info!(target: "userphoto::sync", changes, items, "planned")
        }
        Event::Finished { applied, failed } => {
            tracing::info!(target: "userphoto::sync", applied, failed, "finished")
        }
        Event::Written { .. } | Event::Failed { .. } | Event::Retrying { .. } => {}
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

struct Target {
    sink: Arc<dyn DirectorySink>,
    profile: Profile,
    /// Names the profile, the normalizer's settings, the codec and this crate's version:
    /// a rendition recorded under another id may differ, so it is made again.
    profile_id: String,
}

/// Syncs one source into one or more sinks.
///
/// ```
/// use std::sync::Arc;
/// use userphoto::normalize::{testimage, Profile};
/// use userphoto::sink::MemorySink;
/// use userphoto::source::MemorySource;
/// use userphoto::sync::Engine;
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let source = MemorySource::new().with_photo("alice", testimage::gradient_jpeg(300, 400));
/// let sink = Arc::new(MemorySink::new(102_400).with_users(["alice", "bob"]));
/// let engine = Engine::new(source).with_sink(sink.clone(), Profile::ad_thumbnail());
///
/// let prepared = engine.prepare().await?;          // list, read, normalize, plan
/// assert_eq!(prepared.plan().changes().count(), 1); // alice: put (new)
/// let report = prepared.apply().await?;             // Err: a run that stopped
/// assert!(report.is_success());
/// assert!(sink.photo(&"alice".into()).is_some());
///
/// // A second run finds nothing to do.
/// let again = engine.prepare().await?;
/// assert_eq!(again.plan().changes().count(), 0);
/// # Ok::<(), userphoto::Error>(()) }).unwrap();
/// ```
///
/// What a run does, in order:
///
/// 1. **List** the source (cheap: keys and fingerprints). Keyed failures become failed
///    users; failures without a key are reported, and turn leaver removal off for the run
///    (a source that could not be read whole must not empty a directory).
/// 2. **Read** each sink: the snapshot it left in the [`StateStore`] on the last run
///    ([`Incremental::resume`](crate::sink::Incremental::resume), for a sink that has the
///    extension), [`DirectorySink::prefetch`] with every key, the leavers
///    ([`DirectorySink::users_with_photos`]), then [`DirectorySink::current`] per user,
///    `concurrency` at a time per sink.
/// 3. **Normalize** what may need writing, on the blocking thread pool (`threads` at a
///    time), one decode per photo for all its profiles. With a [`StateStore`], a user whose
///    source fingerprint and sink photo are what the store recorded is not decoded at all.
///    A run that writes ([`run`](Self::run)) leaves the users whose sinks hold no photo to
///    the apply stage, which normalizes them while it writes the others.
/// 4. **Plan** ([`plan`](super::plan)): pure, sorted, serializable.
/// 5. **Apply** ([`Prepared::apply`]): at most `concurrency` calls in flight per sink,
///    retries per the [`RetryPolicy`]; the old photo goes to the [`BackupStore`] before
///    anything replaces or removes it (and a first photo is noted there, so a restore
///    removes it); the state store records each write, and each sink's new snapshot
///    ([`Incremental::snapshot`](crate::sink::Incremental::snapshot)). A run-level failure
///    ([`Error::is_run_level`]) stops the run; other failures are per user.
#[must_use]
pub struct Engine {
    source: Arc<dyn PhotoSource>,
    targets: Vec<Target>,
    normalizer: Normalizer,
    policy: Policy,
    state: Option<Arc<StateStore>>,
    backups: Option<Arc<BackupStore>>,
    concurrency: usize,
    threads: usize,
    retry: RetryPolicy,
    cache_bytes: usize,
    max_consecutive_failures: usize,
    events: Option<EventFn>,
    /// The longer side of the source previews to make, if any ([`Engine::with_previews`]).
    previews: Option<u32>,
    /// The approved plan that bounds what is written ([`Engine::with_approved_plan`]).
    approved: Option<Arc<SavedPlan>>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("source", &self.source.name())
            .field(
                "sinks",
                &self
                    .targets
                    .iter()
                    .map(|t| (t.sink.name(), t.profile.name.as_str()))
                    .collect::<Vec<_>>(),
            )
            .field("policy", &self.policy)
            .field("state", &self.state.is_some())
            .field("backups", &self.backups.is_some())
            .field("concurrency", &self.concurrency)
            .field("threads", &self.threads)
            .field("retry", &self.retry)
            .finish()
    }
}

fn profile_id(normalizer: &Normalizer, profile: &Profile) -> String {
    let text = format!(
        "{}|{}|{}|{}",
        serde_json::to_string(profile).unwrap_or_default(),
        normalizer.cache_key(),
        Normalizer::codec_name(),
        env!("CARGO_PKG_VERSION")
    );
    sha256_hex(text.as_bytes())[..16].to_owned()
}

impl Engine {
    /// An engine reading from `source`, with no sinks yet, the default [`Policy`],
    /// [`RetryPolicy`] and [`Normalizer`], 4 calls in flight per sink, one normalizing
    /// thread per core, no state store and no backups.
    pub fn new(source: impl PhotoSource + 'static) -> Self {
        Self {
            source: Arc::new(source),
            targets: Vec::new(),
            normalizer: Normalizer::new(),
            policy: Policy::default(),
            state: None,
            backups: None,
            concurrency: 4,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            retry: RetryPolicy::default(),
            cache_bytes: DEFAULT_RENDITION_CACHE,
            previews: None,
            approved: None,
            max_consecutive_failures: DEFAULT_MAX_CONSECUTIVE_FAILURES,
            events: None,
        }
    }

    /// Adds a sink, written with `profile`. Sink names must differ (the state store and the
    /// backups are keyed by them).
    pub fn with_sink(mut self, sink: impl DirectorySink + 'static, profile: Profile) -> Self {
        let profile_id = profile_id(&self.normalizer, &profile);
        self.targets.push(Target {
            sink: Arc::new(sink),
            profile,
            profile_id,
        });
        self
    }

    /// The normalizer (limits, crop strategy). Set it before adding sinks or after: the
    /// profile ids are recomputed.
    pub fn with_normalizer(mut self, normalizer: Normalizer) -> Self {
        self.normalizer = normalizer;
        for t in &mut self.targets {
            t.profile_id = profile_id(&self.normalizer, &t.profile);
        }
        self
    }

    /// What to do with leavers and withheld photos.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Records what was written, so unchanged users are not decoded again and an
    /// interrupted run resumes where it stopped.
    pub fn with_state(mut self, state: StateStore) -> Self {
        self.state = Some(Arc::new(state));
        self
    }

    /// Keeps every photo the run replaces or removes (when the sink can return it), and
    /// notes every first photo it gives a user, so [`BackupStore::restore`] undoes the run.
    pub fn with_backups(mut self, backups: BackupStore) -> Self {
        self.backups = Some(Arc::new(backups));
        self
    }

    /// Calls in flight per sink (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Photos normalized at once (at least 1).
    pub fn with_threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// How failed calls are retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How many bytes of renditions the plan keeps in memory for the apply stage
    /// ([`DEFAULT_RENDITION_CACHE`]). Renditions beyond it wait in an anonymous temporary
    /// file, read back (and checked against the planned hash) when applied; where no
    /// temporary file can be written, they are made again from the same source bytes, and
    /// checked against the planned hash. So the run's memory does not grow with the photos.
    pub fn with_rendition_cache(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// The circuit breaker: after `n` writes in a row to one sink failed for reasons that are
    /// not the user's own (refused, unavailable after retries, ...), the run stops instead of
    /// trying every remaining user (an account with no write rights at all, a directory gone
    /// for good). A success resets the count; users the sink does not know, ambiguous keys
    /// and photos it rejects are the users' own and do not count. 50 by default; 0 never
    /// stops.
    ///
    /// One user's refusal (AD's protected admin accounts, a per-user 403) never stops a run
    /// by itself: it is that user's failure, and the run goes on.
    pub fn with_max_consecutive_failures(mut self, n: usize) -> Self {
        self.max_consecutive_failures = n;
        self
    }

    /// Calls `f` with every [`Event`] (for progress bars and logs).
    pub fn with_events(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.events = Some(Arc::new(f));
        self
    }

    fn emit(&self, e: Event) {
        log_event(&e);
        if let Some(f) = &self.events {
            f(&e);
        }
    }

    fn config_err(msg: String) -> Error {
        Error::new(ErrorKind::Config, msg)
            .with_backend("engine")
            .with_operation("prepare")
    }

    /// Makes a preview of every source photo it normalizes (the whole photo, upright, at
    /// most `side` pixels on its longer side: see [`Normalizer::normalize_with_preview`]),
    /// for a review page ([`Prepared::preview`]). Previews wait in the engine's temporary
    /// file, not in memory. An engine that makes previews normalizes every photo while
    /// planning (none is left to the apply stage), so each planned put has its preview.
    pub fn with_previews(mut self, side: u32) -> Self {
        self.previews = Some(side.max(1));
        self
    }

    /// Applies only the approved `plan` (a [`SavedPlan`] read back from its file): a run
    /// whose settings differ from the plan's (sinks, profiles, crop) stops before it lists
    /// anything, with a [`Config`](ErrorKind::Config) error naming each difference; a
    /// change that is not in the plan is skipped as [`Reason::NotInPlan`](super::Reason),
    /// and one whose source photo, rendition or directory photo moved since the plan as
    /// [`Reason::ChangedSincePlan`](super::Reason) (see [`SavedPlan::restrict`]). Every
    /// photo is normalized while planning, so each rendition is compared with the
    /// approved one before anything is written.
    pub fn with_approved_plan(mut self, plan: SavedPlan) -> Self {
        self.approved = Some(Arc::new(plan));
        self
    }

    /// The settings that shape what this engine writes, as a plan file records them.
    pub fn settings(&self) -> PlanSettings {
        PlanSettings {
            source: self.source.name().to_owned(),
            normalizer: self.normalizer.cache_key(),
            sinks: self
                .targets
                .iter()
                .map(|t| SinkSettings {
                    name: t.sink.name().to_owned(),
                    profile: t.profile.clone(),
                })
                .collect(),
            policy: self.policy,
        }
    }

    fn check(&self) -> Result<()> {
        if self.targets.is_empty() {
            return Err(Self::config_err("no sink to write to".into()));
        }
        let mut names = BTreeSet::new();
        for t in &self.targets {
            if !names.insert(t.sink.name().to_owned()) {
                return Err(Self::config_err(format!(
                    "two sinks are named {:?}; names must differ",
                    t.sink.name()
                )));
            }
            t.profile
                .validate()
                .map_err(|e| Self::config_err(e.to_string()))?;
            let max = t.sink.capabilities().max_bytes;
            if t.profile.max_bytes > max {
                return Err(Self::config_err(format!(
                    "profile {} allows {} bytes but sink {} takes at most {max}",
                    t.profile.name,
                    t.profile.max_bytes,
                    t.sink.name()
                )));
            }
        }
        if let Some(a) = &self.approved {
            a.check_settings(&self.settings())?;
        }
        Ok(())
    }

    /// Lists, reads, normalizes and plans; changes nothing. The error is for run-level
    /// failures (bad configuration, refused credentials, an unreadable state store).
    ///
    /// Every photo that may be written is normalized here, so the plan is complete: it
    /// names each rendition and fails invalid photos. [`run`](Self::run) instead leaves the
    /// photos of users a sink holds no photo for to the apply stage, which then writes
    /// while it normalizes.
    pub async fn prepare(&self) -> Result<Prepared<'_>> {
        self.prepare_with(false).await
    }

    /// Prepares a run that is going to be applied: like [`prepare`](Self::prepare), but the
    /// photos of users whose every sink that needs them holds no photo (or was not read) are
    /// not normalized yet. Their plan items are puts of a
    /// [`SourceState::Deferred`] photo
    /// (no rendition hash or size), made by [`Prepared::apply`] while it writes the others,
    /// so a first sync starts writing at once; a photo that turns out invalid fails then,
    /// with the reason the plan would have given. Use [`prepare`](Self::prepare) for a plan
    /// to show or a dry run.
    ///
    /// [`SourceState::Deferred`]: crate::sync::SourceState::Deferred
    pub async fn prepare_to_apply(&self) -> Result<Prepared<'_>> {
        self.prepare_with(true).await
    }

    /// [`prepare`](Self::prepare); with `defer`, users whose decision does not depend on
    /// their rendition (every sink that needs it holds no photo, or was not read) are
    /// planned as [`SourceState::Deferred`] and normalized during the apply stage.
    ///
    /// [`SourceState::Deferred`]: crate::sync::SourceState::Deferred
    async fn prepare_with(&self, defer: bool) -> Result<Prepared<'_>> {
        let started = Instant::now();
        self.check()?;
        // A review needs every put's preview, and an approved plan every put's rendition
        // hash: nothing is left to the apply stage then.
        let defer = defer && self.previews.is_none() && self.approved.is_none();
        let mut timings = Timings::default();
        let mut listed = self
            .list(&mut timings)
            .instrument(tracing::info_span!("list"))
            .await?;
        let retrier = self
            .read_sinks(&mut listed, &mut timings)
            .instrument(tracing::info_span!("read"))
            .await?;
        let rendered = self
            .render_needed(&mut listed.users, defer, &mut timings)
            .instrument(tracing::info_span!("normalize", deferred = defer))
            .await;
        let (mut plan, refresh) =
            tracing::info_span!("plan").in_scope(|| self.plan_all(&mut listed, &mut timings));
        if let Some(a) = &self.approved {
            let held = a.restrict(&mut plan);
            tracing::info!(held, "changes not in the approved plan are not made");
        }
        Ok(Prepared {
            engine: self,
            plan,
            users: listed.users,
            spill: rendered.spill,
            deferred_budget: AtomicUsize::new(rendered.cache_left),
            render_slots: Semaphore::new(self.threads),
            deferred_decoded: AtomicUsize::new(0),
            refresh,
            failures: listed.failures,
            timings,
            retrier,
            started,
        })
    }

    /// The report of a run that stopped before it had a plan: no outcomes.
    fn stopped_early(&self, error: Error, dry_run: bool) -> RunError {
        let report = Report {
            dry_run,
            source: self.source.name().to_owned(),
            sinks: self
                .targets
                .iter()
                .map(|t| (t.sink.name().to_owned(), Default::default()))
                .collect(),
            outcomes: Vec::new(),
            source_failures: Vec::new(),
            timings: Timings::default(),
            aborted: Some(SourceFailure {
                kind: error.kind(),
                message: error.to_string(),
            }),
            backup_run: None,
        };
        RunError::new(error, report)
    }

    fn retrying(&self, key: &UserKey, sink: &str, e: &Error, after: Duration) {
        tracing::warn!(
            user = %key,
            sink,
            kind = e.kind().as_str(),
            wait_ms = ms(after),
            reason = %e,
            "retrying"
        );
        self.emit(Event::Retrying {
            key: key.clone(),
            sink: sink.to_owned(),
            kind: e.kind(),
            after,
        });
    }

    /// Prepares, then applies the plan, and reports what was done.
    ///
    /// It is [`prepare_to_apply`](Self::prepare_to_apply) then [`Prepared::apply`]: it
    /// normalizes the photos of users the sinks hold no photo for while it writes, so a
    /// first sync starts writing at once. [`dry_run`](Self::dry_run) plans without writing.
    ///
    /// A run that stops on a run-level failure, before the apply stage or during it, is a
    /// [`RunError`] carrying the report of what was done until then. Users who fail are in
    /// the report ([`Report::failed`]), not an error.
    pub async fn run(&self) -> std::result::Result<Report, RunError> {
        async {
            match self.prepare_to_apply().await {
                Ok(prepared) => prepared.apply().await,
                Err(e) => Err(self.stopped_early(e, false)),
            }
        }
        .instrument(tracing::info_span!("run", dry_run = false))
        .await
    }

    /// Prepares and reports the plan, changing nothing: no sink is written, and no backup,
    /// state record or snapshot is stored. It is [`prepare`](Self::prepare) then
    /// [`Prepared::dry_run`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use userphoto::normalize::{testimage, Profile};
    /// use userphoto::sink::MemorySink;
    /// use userphoto::source::MemorySource;
    /// use userphoto::sync::{Engine, Status};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let source = MemorySource::new().with_photo("alice", testimage::gradient_jpeg(300, 400));
    /// let sink = Arc::new(MemorySink::new(102_400).with_users(["alice"]));
    /// let engine = Engine::new(source).with_sink(sink.clone(), Profile::ad_thumbnail());
    ///
    /// let preview = engine.dry_run().await?;
    /// assert_eq!(preview.outcomes[0].status, Status::Planned);
    /// assert!(sink.photo(&"alice".into()).is_none()); // nothing written
    ///
    /// let report = engine.run().await?;
    /// assert_eq!(report.outcomes[0].status, Status::Done);
    /// assert!(sink.photo(&"alice".into()).is_some());
    /// # Ok::<(), userphoto::Error>(()) }).unwrap();
    /// ```
    pub async fn dry_run(&self) -> std::result::Result<Report, RunError> {
        async {
            match self.prepare().await {
                Ok(prepared) => Ok(prepared.dry_run()),
                Err(e) => Err(self.stopped_early(e, true)),
            }
        }
        .instrument(tracing::info_span!("run", dry_run = true))
        .await
    }
}

/// [`Engine::with_rendition_cache`]'s default: 16 MiB of renditions in memory (some 2,000
/// AD thumbnails), the rest in the temporary file.
pub const DEFAULT_RENDITION_CACHE: usize = 16 << 20;

/// [`Engine::with_max_consecutive_failures`]'s default.
pub const DEFAULT_MAX_CONSECUTIVE_FAILURES: usize = 50;

/// A run that is planned and not yet applied: look at [`plan`](Self::plan), then
/// [`apply`](Self::apply) it or turn it into a [`dry_run`](Self::dry_run) report.
#[must_use]
pub struct Prepared<'e> {
    engine: &'e Engine,
    plan: Plan,
    /// One record per user: the photo, and per target the rendition kept for the apply
    /// stage.
    users: Users,
    spill: Spill,
    /// What is left of the rendition cache for deferred renditions waiting for their item.
    deferred_budget: AtomicUsize,
    /// Bounds the normalizing done at apply time to the engine's threads.
    render_slots: Semaphore,
    deferred_decoded: AtomicUsize,
    refresh: Vec<RecordChange>,
    failures: Vec<SourceFailure>,
    timings: Timings,
    retrier: Arc<Retrier>,
    started: Instant,
}

impl fmt::Debug for Prepared<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("plan", &self.plan)
            .field("source_failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl<'e> Prepared<'e> {
    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Source items that could not be tied to a user.
    pub fn source_failures(&self) -> &[SourceFailure] {
        &self.failures
    }

    fn into_outcome(item: PlanItem, status: Status) -> Outcome {
        let warnings = item.warnings().to_vec();
        Outcome {
            key: item.key,
            sink: item.sink,
            action: item.action,
            reason: item.reason,
            status,
            bytes: item.bytes,
            attempts: 0,
            error_kind: None,
            message: item.detail,
            warnings,
        }
    }

    fn outcome(item: &PlanItem, status: Status) -> Outcome {
        Self::into_outcome(item.clone(), status)
    }

    fn report(&self, outcomes: Vec<Outcome>, dry_run: bool, aborted: Option<&Error>) -> Report {
        let mut r = Report {
            dry_run,
            source: self.engine.source.name().to_owned(),
            sinks: self
                .engine
                .targets
                .iter()
                .map(|t| (t.sink.name().to_owned(), Default::default()))
                .collect(),
            outcomes,
            source_failures: self.failures.clone(),
            timings: self.timings.clone(),
            aborted: aborted.map(|e| SourceFailure {
                kind: e.kind(),
                message: e.to_string(),
            }),
            backup_run: None,
        };
        r.timings.retries = self.retrier.used();
        r.timings.decoded += self.deferred_decoded.load(Ordering::Relaxed);
        r.timings.total_ms = ms(self.started.elapsed());
        r.recount();
        self.engine.emit(Event::Finished {
            applied: r
                .outcomes
                .iter()
                .filter(|o| o.status == Status::Done && o.action != Action::Skip)
                .count(),
            failed: r.failed(),
        });
        r
    }

    /// The report of a dry run: what would be done, nothing applied, nothing recorded.
    pub fn dry_run(mut self) -> Report {
        let outcomes = std::mem::take(&mut self.plan.items)
            .into_iter()
            .map(|it| {
                let status = match it.action {
                    Action::Put | Action::Delete => Status::Planned,
                    Action::Skip => Status::Skipped,
                    Action::Fail => Status::Failed,
                };
                Self::into_outcome(it, status)
            })
            .collect();
        self.report(outcomes, true, None)
    }
}
