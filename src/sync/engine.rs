//! The engine: list the source, read the sinks, normalize what may need writing, plan, apply.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use tokio::sync::Semaphore;

use super::event::{Event, Stage};
use super::report::{Outcome, Report, SourceFailure, Status, Timings};
use super::retry::{Retrier, RetryPolicy};
use super::spill::{Spill, Spilled};
use super::{
    plan, Action, BackupStore, Observation, Plan, PlanItem, Policy, Reason, SinkState, SourceState,
    StateRecord, StateStore,
};
use crate::digest::sha256_hex;
use crate::normalize::{Normalizer, Profile};
use crate::sink::DirectorySink;
use crate::source::{PhotoRef, PhotoSource};
use crate::{Error, ErrorKind, Result, UserKey};

type EventFn = Arc<dyn Fn(&Event) + Send + Sync>;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
/// let report = prepared.apply().await;
/// assert_eq!(report.exit_code(), 0);
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
        "{}|{normalizer:?}|{}|{}",
        serde_json::to_string(profile).unwrap_or_default(),
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
        if let Some(f) = &self.events {
            f(&e);
        }
    }

    fn config_err(msg: String) -> Error {
        Error::new(ErrorKind::Config, msg)
            .with_backend("engine")
            .with_operation("prepare")
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
    /// not normalized yet. Their plan items are puts of a [`SourceState::Deferred`] photo
    /// (no rendition hash or size), made by [`Prepared::apply`] while it writes the others,
    /// so a first sync starts writing at once; a photo that turns out invalid fails then,
    /// with the reason the plan would have given. Use [`prepare`](Self::prepare) for a plan
    /// to show or a dry run.
    pub async fn prepare_to_apply(&self) -> Result<Prepared<'_>> {
        self.prepare_with(true).await
    }

    /// [`prepare`](Self::prepare); with `defer`, users whose decision does not depend on
    /// their rendition (every sink that needs it holds no photo, or was not read) are
    /// planned as [`SourceState::Deferred`] and normalized during the apply stage.
    async fn prepare_with(&self, defer: bool) -> Result<Prepared<'_>> {
        let started = Instant::now();
        self.check()?;
        let mut timings = Timings::default();

        // 1. List.
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

        // 2. Read the sinks.
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

        // 3. Normalize what may need writing.
        let t = Instant::now();
        // Per user: the targets whose rendition must be made; per (user, target): a
        // rendition known from the state store.
        let mut need: BTreeMap<UserKey, Vec<usize>> = BTreeMap::new();
        let mut reused: HashMap<(UserKey, usize), (String, usize)> = HashMap::new();
        for (ti, tg) in self.targets.iter().enumerate() {
            for (key, r) in &refs {
                if r.withheld {
                    continue;
                }
                let current = &reads[ti][key];
                if !matches!(
                    current,
                    SinkState::NoPhoto | SinkState::Photo { .. } | SinkState::Unread
                ) {
                    continue;
                }
                let fp = format!("{}:{}", tg.profile_id, r.fingerprint);
                let known = records[ti].get(key).filter(|rec| {
                    rec.source_fingerprint == fp
                        && match current {
                            SinkState::Photo {
                                sha256: Some(s), ..
                            } => s.eq_ignore_ascii_case(&rec.rendition_sha256),
                            SinkState::Photo {
                                sha256: None,
                                version: Some(v),
                            } => rec.version.as_ref().is_none_or(|r| r == v),
                            _ => false,
                        }
                });
                match known {
                    Some(rec) => {
                        reused.insert((key.clone(), ti), (rec.rendition_sha256.clone(), rec.bytes));
                    }
                    None => need.entry(key.clone()).or_default().push(ti),
                }
            }
        }
        timings.reused = reused.len();
        // Users whose every needed sink holds no photo (or was not read) get a put whatever
        // the rendition is: normalize them while applying, so the first writes start now.
        let mut deferred: HashMap<UserKey, Arc<Deferred>> = HashMap::new();
        if defer {
            need.retain(|key, tis| {
                let free = tis
                    .iter()
                    .all(|&ti| matches!(reads[ti][key], SinkState::NoPhoto | SinkState::Unread));
                if free {
                    deferred.insert(
                        key.clone(),
                        Arc::new(Deferred {
                            tis: tis.clone(),
                            made: tokio::sync::OnceCell::new(),
                        }),
                    );
                }
                !free
            });
        }
        self.emit(Event::Stage {
            stage: Stage::Normalize,
            total: need.len(),
        });
        let done = AtomicUsize::new(0);
        let cache_left = AtomicUsize::new(self.cache_bytes);
        let spill = Spill::new();
        // Per (user, target): where its rendition went in the spill file, if it went.
        type SpillNotes = Vec<((UserKey, usize), Option<Spilled>)>;
        let spilled: Mutex<SpillNotes> = Mutex::new(Vec::new());
        type Rendered = (
            UserKey,
            std::result::Result<Vec<(usize, RenditionResult)>, (ErrorKind, String)>,
        );
        let rendered: Vec<Rendered> = stream::iter(need.iter())
            .map(|(key, tis)| {
                let r = &refs[key];
                let done = &done;
                let cache_left = &cache_left;
                let reads = &reads;
                let (spill, spilled) = (&spill, &spilled);
                async move {
                    let res = self.render(r, tis).await;
                    let ok = matches!(&res, Ok(v) if v.iter().all(|(_, x)| x.is_ok()));
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    self.emit(Event::Normalized {
                        key: key.clone(),
                        ok,
                        done: n,
                    });
                    // Keep the bytes while the cache has room, and spill the others to the
                    // temporary file (the apply stage reads them back, or makes them again
                    // if that failed). A rendition the sink already shows is not written,
                    // so its bytes are never kept.
                    let res = res.map(|v| {
                        v.into_iter()
                            .map(|(ti, x)| {
                                let x = x.map(|mut rend| {
                                    let shown = matches!(
                                        reads[ti].get(key),
                                        Some(SinkState::Photo { sha256: Some(s), .. })
                                            if s.eq_ignore_ascii_case(&rend.sha256)
                                    );
                                    let len = rend.len;
                                    let kept = !shown
                                        && cache_left
                                            .fetch_update(
                                                Ordering::Relaxed,
                                                Ordering::Relaxed,
                                                |l| l.checked_sub(len),
                                            )
                                            .is_ok();
                                    if !kept {
                                        if let (false, Some(b)) = (shown, rend.bytes.take()) {
                                            spilled
                                                .lock()
                                                .unwrap_or_else(|p| p.into_inner())
                                                .push(((key.clone(), ti), spill.put(&b)));
                                        }
                                    }
                                    rend
                                });
                                (ti, x)
                            })
                            .collect()
                    });
                    (key.clone(), res)
                }
            })
            .buffer_unordered(self.threads)
            .collect()
            .await;
        timings.decoded = rendered.len();
        timings.normalize_ms = ms(t.elapsed());

        // 4. Plan.
        let t = Instant::now();
        let mut made: HashMap<(UserKey, usize), RenditionResult> = HashMap::new();
        let mut load_errors: HashMap<UserKey, (ErrorKind, String)> = HashMap::new();
        for (key, res) in rendered {
            match res {
                Ok(v) => {
                    for (ti, x) in v {
                        made.insert((key.clone(), ti), x);
                    }
                }
                Err(e) => {
                    load_errors.insert(key, e);
                }
            }
        }
        // One observation at a time, each decided as it is made: the plan holds a small
        // item per user and sink, and no list of observations is ever kept whole.
        let (reused, made_ref, load_errors) = (&reused, &made, &load_errors);
        let (refs_ref, source_errors, deferred_ref) = (&refs, &source_errors, &deferred);
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
                    } else if deferred.get(key).is_some_and(|d| d.tis.contains(&ti)) {
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
                Observation {
                    key: key.clone(),
                    sink: tg.sink.name().to_owned(),
                    max_bytes: tg.sink.capabilities().max_bytes,
                    source,
                    current: reads[ti][key].clone(),
                    recorded: records[ti].get(key).map(StateRecord::recorded),
                }
            })
        });
        let mut the_plan = plan(observations, policy);
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
        let mut spilled: HashMap<(UserKey, usize), Spilled> = spilled
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
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
        Ok(Prepared {
            engine: self,
            plan: the_plan,
            refs,
            renditions,
            spill,
            deferred,
            deferred_budget: AtomicUsize::new(cache_left.load(Ordering::Relaxed)),
            render_slots: Semaphore::new(self.threads),
            deferred_decoded: AtomicUsize::new(0),
            refresh,
            failures,
            timings,
            retrier,
            started,
        })
    }

    fn retrying(&self, key: &UserKey, sink: &str, e: &Error, after: Duration) {
        self.emit(Event::Retrying {
            key: key.clone(),
            sink: sink.to_owned(),
            kind: e.kind(),
            after,
        });
    }

    /// Loads `r` and makes its renditions for the targets `tis` (one decode per DCT scale
    /// for all of them), on the blocking pool. The outer error is the source's.
    async fn render(
        &self,
        r: &PhotoRef,
        tis: &[usize],
    ) -> std::result::Result<Vec<(usize, RenditionResult)>, (ErrorKind, String)> {
        let bytes = match self.source.load(r, self.normalizer.limits()).await {
            Ok(b) => b,
            // Too big to read is the photo's problem (an invalid image), not the source's.
            Err(e) if e.kind() == ErrorKind::LimitExceeded => {
                let x = Err((e.kind(), e.to_string()));
                return Ok(tis.iter().map(|&ti| (ti, x.clone())).collect());
            }
            Err(e) => return Err((e.kind(), e.to_string())),
        };
        let mut profiles: Vec<Profile> = Vec::new();
        let mut slot = Vec::new();
        for &ti in tis {
            let p = &self.targets[ti].profile;
            let i = match profiles.iter().position(|q| q == p) {
                Some(i) => i,
                None => {
                    profiles.push(p.clone());
                    profiles.len() - 1
                }
            };
            slot.push((ti, i));
        }
        let normalizer = self.normalizer.clone();
        let res =
            tokio::task::spawn_blocking(move || normalizer.normalize_many(&bytes, &profiles)).await;
        let per_profile: Vec<RenditionResult> = match res {
            Err(e) => {
                let x = Err((ErrorKind::Other, format!("normalizer task failed: {e}")));
                return Ok(tis.iter().map(|&ti| (ti, x.clone())).collect());
            }
            Ok(Err(e)) => {
                let e = Error::from(e);
                let x = Err((e.kind(), e.message().to_owned()));
                return Ok(tis.iter().map(|&ti| (ti, x.clone())).collect());
            }
            Ok(Ok(v)) => v
                .into_iter()
                .map(|x| match x {
                    Ok(rend) => Ok(Rend {
                        sha256: rend.sha256_hex(),
                        len: rend.bytes.len(),
                        bytes: Some(rend.bytes),
                    }),
                    Err(e) => {
                        let e = Error::from(e);
                        Err((e.kind(), e.message().to_owned()))
                    }
                })
                .collect(),
        };
        Ok(slot
            .into_iter()
            .map(|(ti, i)| (ti, per_profile[i].clone()))
            .collect())
    }

    /// Prepares, then applies the plan, and reports what was done.
    ///
    /// It is [`prepare_to_apply`](Self::prepare_to_apply) then [`Prepared::apply`]: it
    /// normalizes the photos of users the sinks hold no photo for while it writes, so a
    /// first sync starts writing at once. [`dry_run`](Self::dry_run) plans without writing.
    pub async fn run(&self) -> Result<Report> {
        Ok(self.prepare_to_apply().await?.apply().await)
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
    pub async fn dry_run(&self) -> Result<Report> {
        Ok(self.prepare().await?.dry_run())
    }
}

#[derive(Clone)]
struct Rend {
    sha256: String,
    len: usize,
    bytes: Option<Bytes>,
}

/// Where a planned put's rendition waits for the apply stage.
enum Kept {
    Memory(Bytes),
    Spilled(Spilled),
}

type RenditionResult = std::result::Result<Rend, (ErrorKind, String)>;

/// A user normalized at apply time: one decode for all the sinks that write them, made by
/// whichever of their items gets there first; each item takes its own rendition out. The
/// renditions waiting for the other sinks' items count against the rendition cache (a slow
/// sink's items can lag far behind a fast one's); beyond it their bytes are dropped, and
/// those items make their rendition again.
struct Deferred {
    tis: Vec<usize>,
    #[allow(clippy::type_complexity)]
    made: tokio::sync::OnceCell<
        std::result::Result<Vec<(usize, Mutex<Option<Waiting>>)>, (ErrorKind, String)>,
    >,
}

/// A deferred rendition waiting for its item, and whether its bytes hold cache budget.
struct Waiting {
    rendition: RenditionResult,
    reserved: bool,
}

/// [`Engine::with_rendition_cache`]'s default: 16 MiB of renditions in memory (some 2,000
/// AD thumbnails), the rest in the temporary file.
pub const DEFAULT_RENDITION_CACHE: usize = 16 << 20;

/// [`Engine::with_max_consecutive_failures`]'s default.
pub const DEFAULT_MAX_CONSECUTIVE_FAILURES: usize = 50;

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

/// The message of the error a call gets when the run stopped before it was sent.
const STOPPED: &str = "not sent: the run stopped";

/// A sink call the apply stage makes.
#[derive(Clone, Copy)]
enum Op {
    Fetch,
    Put,
    Delete,
}

/// What one retried sink call returns.
enum Fetched {
    /// `fetch`: the stored photo, if any.
    Old(Option<Bytes>),
    /// `put`: the new version tag; `delete`: nothing.
    Version(Option<String>),
}

/// A run that is planned and not yet applied: look at [`plan`](Self::plan), then
/// [`apply`](Self::apply) it or turn it into a [`dry_run`](Self::dry_run) report.
pub struct Prepared<'e> {
    engine: &'e Engine,
    plan: Plan,
    refs: BTreeMap<UserKey, PhotoRef>,
    renditions: HashMap<(UserKey, usize), Kept>,
    spill: Spill,
    deferred: HashMap<UserKey, Arc<Deferred>>,
    /// What is left of the rendition cache for deferred renditions waiting for their item.
    deferred_budget: AtomicUsize,
    /// Bounds the normalizing done at apply time to the engine's threads.
    render_slots: Semaphore,
    deferred_decoded: AtomicUsize,
    refresh: Vec<(String, UserKey, Option<StateRecord>)>,
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

struct Shared {
    cancel: AtomicBool,
    abort: Mutex<Option<Error>>,
    pending: Mutex<Vec<(String, UserKey, Option<StateRecord>)>>,
    done: AtomicUsize,
    state_error: Mutex<Option<Error>>,
    /// Per sink: writes that failed in a row (the circuit breaker).
    consecutive: Vec<AtomicUsize>,
}

impl Shared {
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
    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Source items that could not be tied to a user.
    pub fn source_failures(&self) -> &[SourceFailure] {
        &self.failures
    }

    fn into_outcome(item: PlanItem, status: Status) -> Outcome {
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
        }
    }

    fn outcome(item: &PlanItem, status: Status) -> Outcome {
        Outcome {
            key: item.key.clone(),
            sink: item.sink.clone(),
            action: item.action,
            reason: item.reason,
            status,
            bytes: item.bytes,
            attempts: 0,
            error_kind: None,
            message: item.detail.clone(),
        }
    }

    fn report(&self, outcomes: Vec<Outcome>, dry_run: bool, aborted: Option<Error>) -> Report {
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

    /// Applies the plan and reports. Never fails as a whole: a run-level failure stops the
    /// run and is in [`Report::aborted`]; the changes not tried are
    /// [`Status::NotAttempted`].
    pub async fn apply(mut self) -> Report {
        let t = Instant::now();
        let eng = self.engine;
        if let Some(b) = &eng.backups {
            b.begin_run();
        }
        let shared = Shared {
            cancel: AtomicBool::new(false),
            abort: Mutex::new(None),
            pending: Mutex::new(std::mem::take(&mut self.refresh)),
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
        let index: HashMap<&str, usize> = eng
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.sink.name(), i))
            .collect();
        let per_target = eng.targets.iter().enumerate().map(|(ti, _)| {
            let items: Vec<(usize, &PlanItem)> = changes
                .iter()
                .copied()
                .filter(|(_, it)| index[it.sink.as_str()] == ti)
                .collect();
            let sem = Semaphore::new(eng.concurrency);
            let shared = &shared;
            let this = &self;
            async move {
                let sem = &sem;
                // More items than permits in progress, so an item waiting out a retry does
                // not hold a call slot.
                stream::iter(items)
                    .map(|(at, it)| async move { (at, this.apply_one(it, ti, sem, shared).await) })
                    .buffer_unordered(eng.concurrency * 4)
                    .collect::<Vec<(usize, Outcome)>>()
                    .await
            }
        });
        let results = futures::future::join_all(per_target).await;
        self.flush(&shared, true).await;
        self.save_snapshots().await;
        let mut applied: Vec<(usize, Outcome)> = results.into_iter().flatten().collect();
        applied.sort_unstable_by_key(|(at, _)| *at);
        let mut applied = applied.into_iter().peekable();
        // The plan's items become the report's outcomes (moved, not copied: at 100,000 users
        // the two would otherwise be held side by side), the applied ones in their place.
        drop(changes);
        let outcomes = std::mem::take(&mut self.plan.items)
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
            .collect();
        let mut aborted = shared
            .abort
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if aborted.is_none() {
            aborted = shared
                .state_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
        }
        let mut report = self.report(outcomes, false, aborted);
        if let Some(b) = &eng.backups {
            let _ = b.sync();
            report.backup_run = b.run_id();
        }
        report.timings.apply_ms = ms(t.elapsed());
        report
    }

    /// Keeps each sink's snapshot for the next run. A sink that has none, or fails to make
    /// one, leaves the stored one as it was (which the sink must still be able to use: its
    /// changes since are read again).
    async fn save_snapshots(&self) {
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
    async fn flush(&self, shared: &Shared, all: bool) {
        let Some(state) = &self.engine.state else {
            return;
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

    async fn apply_one(
        &self,
        it: &PlanItem,
        ti: usize,
        sem: &Semaphore,
        shared: &Shared,
    ) -> Outcome {
        let eng = self.engine;
        let tg = &eng.targets[ti];
        let mut out = Self::outcome(it, Status::Done);
        let finish = |out: Outcome| out;
        if shared.cancel.load(Ordering::SeqCst) {
            out.status = Status::NotAttempted;
            return finish(out);
        }
        // A deferred photo is normalized now; a failure is the photo's, as the plan would
        // have said.
        let mut render_failure = None;
        let res = match self.deferred_rendition(it, ti).await {
            Ok(pre) => {
                if let Some(b) = &pre {
                    out.bytes = Some(b.len());
                }
                self.change(it, ti, sem, &shared.cancel, &mut out, pre)
                    .await
            }
            Err((reason, e)) => {
                render_failure = Some(reason);
                Err(e)
            }
        };
        let n = shared.done.fetch_add(1, Ordering::Relaxed) + 1;
        match res {
            Ok(record) => {
                shared.consecutive[ti].store(0, Ordering::SeqCst);
                shared
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((it.sink.clone(), it.key.clone(), record));
                eng.emit(Event::Written {
                    key: it.key.clone(),
                    sink: it.sink.clone(),
                    action: it.action,
                    done: n,
                });
                self.flush(shared, false).await;
            }
            Err(e) if e.message() == STOPPED && shared.cancel.load(Ordering::SeqCst) => {
                out.status = Status::NotAttempted;
            }
            Err(e) => {
                out.status = Status::Failed;
                if let Some(reason) = render_failure {
                    out.reason = reason;
                } else if e.kind() == ErrorKind::UserNotFound {
                    // Learnt only now (a sink that was not read first): say it as the plan
                    // would have.
                    out.reason = Reason::Unmatched;
                } else if e.kind() == ErrorKind::PermissionDenied {
                    out.reason = Reason::Refused;
                }
                out.error_kind = Some(e.kind());
                out.message = Some(e.to_string());
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
                    && shared.consecutive[ti].fetch_add(1, Ordering::SeqCst) + 1 == limit;
                if e.is_run_level() {
                    shared.stop(e);
                } else if tripped {
                    // Every further write is most likely refused the same way.
                    let stop = Error::new(
                        e.kind(),
                        format!(
                            "stopped after {limit} writes in a row failed; the last: {e}. \
                             The account or the directory, not the users, is the likely cause; \
                             the rest were not tried (the limit is max_consecutive_failures, \
                             --max-consecutive-failures on the command line)"
                        ),
                    )
                    .with_backend(tg.sink.name().to_owned())
                    .with_operation("apply")
                    .run_level()
                    .permanent();
                    shared.stop(stop);
                }
            }
        }
        finish(out)
    }

    /// One put or delete: back up what it replaces, write, and return the state record
    /// (`None` for a deletion).
    async fn change(
        &self,
        it: &PlanItem,
        ti: usize,
        sem: &Semaphore,
        cancel: &AtomicBool,
        out: &mut Outcome,
        pre: Option<Bytes>,
    ) -> Result<Option<StateRecord>> {
        let eng = self.engine;
        let tg = &eng.targets[ti];
        let key = &it.key;
        let sink = tg.sink.as_ref();
        let jpeg_slot: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
        // One sink call, retried; each attempt holds a call slot only while it runs.
        let retried = |op: Op| {
            let jpeg_for_put = &jpeg_slot;
            async move {
                let (r, attempts) =
                    self.retrier
                        .run(
                            || async {
                                let _permit = sem.acquire().await.map_err(|_| {
                                    Error::new(ErrorKind::Other, "engine shut down")
                                })?;
                                // A run-level failure while this call waited for its slot:
                                // send nothing more.
                                if cancel.load(Ordering::SeqCst) {
                                    return Err(Error::new(ErrorKind::Other, STOPPED).permanent());
                                }
                                match op {
                                    Op::Fetch => sink.fetch(key).await.map(Fetched::Old),
                                    Op::Put => {
                                        let jpeg = jpeg_for_put.get().cloned().unwrap_or_default();
                                        sink.put(key, &jpeg).await.map(Fetched::Version)
                                    }
                                    Op::Delete => {
                                        sink.delete(key).await.map(|()| Fetched::Version(None))
                                    }
                                }
                            },
                            |e, after| eng.retrying(key, sink.name(), e, after),
                        )
                        .await;
                (r, attempts)
            }
        };
        if it.action == Action::Put {
            let jpeg = match pre {
                Some(b) => b,
                None => self.rendition(it, ti).await?,
            };
            let _ = jpeg_slot.set(jpeg);
        }
        // Keep what is about to be replaced or removed. A user who had no photo when the
        // plan was made (reason `New`) has nothing to keep.
        let mut had_none = it.reason == Reason::New;
        if let (Some(backups), false) = (&eng.backups, had_none) {
            let (old, attempts) = retried(Op::Fetch).await;
            out.attempts += attempts;
            let old = old?;
            had_none = matches!(old, Fetched::Old(None));
            if let Fetched::Old(Some(old)) = old {
                let (b, name, k, new) = (
                    backups.clone(),
                    sink.name().to_owned(),
                    key.clone(),
                    it.rendition_sha256
                        .clone()
                        .or_else(|| jpeg_slot.get().map(|b| sha256_hex(b))),
                );
                tokio::task::spawn_blocking(move || {
                    b.save(&name, &k, &old, new.as_deref()).map(|_| ())
                })
                .await
                .map_err(|e| Error::new(ErrorKind::Other, format!("backup task failed: {e}")))?
                .map_err(|e| e.with_user(key.clone()))?;
            }
        }
        let Some(jpeg) = jpeg_slot.get() else {
            let (r, attempts) = retried(Op::Delete).await;
            out.attempts += attempts;
            return r.map(|_| None);
        };
        let (r, attempts) = retried(Op::Put).await;
        out.attempts += attempts;
        let version = match r? {
            Fetched::Version(v) => v,
            Fetched::Old(_) => None,
        };
        let sha = sha256_hex(jpeg);
        // A first photo: note it, so that a restore removes it.
        if let (Some(backups), true) = (&eng.backups, had_none) {
            // On the blocking pool: the journal's lock may be held by a backup's flush.
            let (b, name, k, s) = (
                backups.clone(),
                sink.name().to_owned(),
                key.clone(),
                sha.clone(),
            );
            tokio::task::spawn_blocking(move || b.note_added(&name, &k, &s))
                .await
                .map_err(|e| Error::new(ErrorKind::Other, format!("backup task failed: {e}")))?
                .map_err(|e| e.with_user(key.clone()))?;
        }
        let fingerprint = self
            .refs
            .get(key)
            .map(|r| r.fingerprint.as_str())
            .unwrap_or_default();
        Ok(Some(StateRecord {
            source_fingerprint: format!("{}:{fingerprint}", tg.profile_id),
            rendition_sha256: sha,
            bytes: jpeg.len(),
            version,
            time: now_secs(),
        }))
    }

    /// The rendition of a deferred put (`Ok(None)` for any other item), made on the
    /// blocking pool within the engine's thread count. The error carries the reason the
    /// outcome reports.
    async fn deferred_rendition(
        &self,
        it: &PlanItem,
        ti: usize,
    ) -> std::result::Result<Option<Bytes>, (Reason, Error)> {
        if it.action != Action::Put || it.rendition_sha256.is_some() {
            return Ok(None);
        }
        let fail = |reason, kind, msg: String| {
            Err((
                reason,
                Error::new(kind, msg)
                    .with_operation("normalize")
                    .with_user(it.key.clone()),
            ))
        };
        let (Some(d), Some(r)) = (self.deferred.get(&it.key), self.refs.get(&it.key)) else {
            return fail(
                Reason::SourceError,
                ErrorKind::Other,
                "no source photo for a planned put".into(),
            );
        };
        let made = d
            .made
            .get_or_init(|| async {
                let _slot = self.render_slots.acquire().await;
                self.deferred_decoded.fetch_add(1, Ordering::Relaxed);
                self.engine.render(r, &d.tis).await.map(|v| {
                    v.into_iter()
                        .map(|(t, mut rendition)| {
                            // This item's own rendition is used at once; the others wait
                            // within the budget.
                            let mut reserved = false;
                            if let (true, Ok(rend)) = (t != ti, &mut rendition) {
                                let len = rend.len;
                                reserved = self
                                    .deferred_budget
                                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                                        l.checked_sub(len)
                                    })
                                    .is_ok();
                                if !reserved {
                                    rend.bytes = None;
                                }
                            }
                            (
                                t,
                                Mutex::new(Some(Waiting {
                                    rendition,
                                    reserved,
                                })),
                            )
                        })
                        .collect()
                })
            })
            .await;
        let per_target = match made {
            Ok(v) => v,
            Err((kind, msg)) => return fail(Reason::SourceError, *kind, msg.clone()),
        };
        let waiting = per_target
            .iter()
            .find(|(t, _)| *t == ti)
            .and_then(|(_, slot)| slot.lock().unwrap_or_else(|p| p.into_inner()).take());
        let mut taken = waiting.map(|w| {
            if let (true, Ok(rend)) = (w.reserved, &w.rendition) {
                self.deferred_budget.fetch_add(rend.len, Ordering::Relaxed);
            }
            w.rendition
        });
        if let Some(Ok(Rend { bytes: None, .. })) = taken {
            // Dropped for the budget: made again, for this sink only.
            let _slot = self.render_slots.acquire().await;
            self.deferred_decoded.fetch_add(1, Ordering::Relaxed);
            taken = match self.engine.render(r, &[ti]).await {
                Ok(v) => v.into_iter().next().map(|(_, x)| x),
                Err((kind, msg)) => return fail(Reason::SourceError, kind, msg),
            };
        }
        match taken {
            Some(Ok(Rend { bytes: Some(b), .. })) => Ok(Some(b)),
            Some(Err((kind, msg))) => {
                let reason = if kind == ErrorKind::PhotoTooLarge {
                    Reason::CannotFit
                } else {
                    Reason::InvalidImage
                };
                fail(reason, kind, msg)
            }
            _ => fail(
                Reason::SourceError,
                ErrorKind::Other,
                "no rendition for a planned put".into(),
            ),
        }
    }

    /// The planned rendition: from memory, from the spill file (checked against the plan's
    /// hash), or made again and checked against the plan.
    async fn rendition(&self, it: &PlanItem, ti: usize) -> Result<Bytes> {
        match self.renditions.get(&(it.key.clone(), ti)) {
            Some(Kept::Memory(b)) => return Ok(b.clone()),
            Some(Kept::Spilled(at)) => {
                if let Some(b) = self.spill.get(*at) {
                    if Some(&sha256_hex(&b)) == it.rendition_sha256.as_ref() {
                        return Ok(b);
                    }
                }
            }
            None => {}
        }
        let r = self.refs.get(&it.key).ok_or_else(|| {
            Error::new(ErrorKind::Other, "no source photo for a planned put")
                .with_user(it.key.clone())
        })?;
        let made = self
            .engine
            .render(r, &[ti])
            .await
            .map_err(|(k, m)| Error::new(k, m).with_user(it.key.clone()))?;
        let rend = made
            .into_iter()
            .next()
            .map(|(_, x)| x)
            .unwrap_or_else(|| Err((ErrorKind::Other, "no rendition".into())))
            .map_err(|(k, m)| Error::new(k, m).with_user(it.key.clone()))?;
        if Some(&rend.sha256) != it.rendition_sha256.as_ref() {
            return Err(Error::new(
                ErrorKind::Conflict,
                "the source photo changed after the plan was made; run again",
            )
            .with_operation("put")
            .with_user(it.key.clone()));
        }
        rend.bytes
            .ok_or_else(|| Error::new(ErrorKind::Other, "rendition without bytes"))
    }
}
