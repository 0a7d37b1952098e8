//! Stage 3, render: normalize the photos that may need writing (those whose sink holds a
//! photo, to compare) and keep their renditions for the apply stage, in memory up to the
//! rendition cache and beyond it in the spill file. Photos whose sinks hold none are
//! rendered while applying ([`Prepared::deferred_rendition`]), so a first sync writes at once.

use crate::normalize::CropWarning;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use super::super::event::{Event, Stage};
use super::super::report::Timings;
use super::super::spill::{Spill, Spilled};
use super::super::{Action, PlanItem, Reason, SinkState};
use super::*;
use crate::normalize::Profile;
use crate::source::PhotoRef;
use crate::{Error, ErrorKind, Result, UserKey};

/// A deferred put's failure to normalize: the reason its outcome reports, and the error.
fn normalize_failure(
    it: &PlanItem,
    reason: Reason,
    kind: ErrorKind,
    msg: String,
) -> (Reason, Error) {
    let e = Error::new(kind, msg)
        .with_operation("normalize")
        .with_user(it.key.clone());
    (reason, e)
}

/// Per (user, target): where its rendition went in the spill file, if it went.
type SpillNotes = Vec<((UserKey, usize), Option<Spilled>)>;

/// The renditions made, and what is left to make while applying.
pub(super) struct Rendered {
    /// Per (user, target): a rendition known from the state store (hash, size).
    pub(super) reused: HashMap<(UserKey, usize), (String, usize)>,
    /// Per user rendered at apply time: the targets.
    pub(super) deferred_tis: HashMap<UserKey, Vec<usize>>,
    /// Users rendered at apply time for several sinks: their shared rendition.
    pub(super) deferred: HashMap<UserKey, Arc<Deferred>>,
    /// Per (user, target): the rendition made, or why none could be.
    pub(super) made: HashMap<(UserKey, usize), RenditionResult>,
    /// Users whose photo could not be loaded.
    pub(super) load_errors: HashMap<UserKey, (ErrorKind, String)>,
    /// The renditions beyond the memory cache.
    pub(super) spill: Spill,
    /// Where they are in it.
    pub(super) spilled: SpillNotes,
    /// What is left of the rendition cache.
    pub(super) cache_left: usize,
}

impl Engine {
    /// Normalizes what may need writing.
    pub(super) async fn render_needed(
        &self,
        listed: &Listed,
        read: &Read,
        defer: bool,
        timings: &mut Timings,
    ) -> Rendered {
        let refs = &listed.refs;
        let Read { records, reads, .. } = read;
        let t = Instant::now();
        // Per user: the targets whose rendition must be made; per (user, target): a
        // rendition known from the state store.
        let mut need: BTreeMap<UserKey, Vec<usize>> = BTreeMap::new();
        let mut reused: HashMap<(UserKey, usize), (String, usize)> = HashMap::new();
        for (ti, tg) in self.targets.iter().enumerate() {
            for (key, r) in refs {
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
        // Per deferred user: its targets. Only users written to several sinks need a shared
        // rendition at apply time (one decode for all of them); a user with one is rendered
        // by its item alone, so it costs nothing to keep.
        let mut deferred_tis: HashMap<UserKey, Vec<usize>> = HashMap::new();
        if defer {
            need.retain(|key, tis| {
                let free = tis
                    .iter()
                    .all(|&ti| matches!(reads[ti][key], SinkState::NoPhoto | SinkState::Unread));
                if free {
                    deferred_tis.insert(key.clone(), std::mem::take(tis));
                }
                !free
            });
        }
        let deferred: HashMap<UserKey, Arc<Deferred>> = deferred_tis
            .iter()
            .filter(|(_, tis)| tis.len() > 1)
            .map(|(key, tis)| {
                let d = Deferred {
                    tis: tis.clone(),
                    made: tokio::sync::OnceCell::new(),
                };
                (key.clone(), Arc::new(d))
            })
            .collect();
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
        type RenderedUser = (
            UserKey,
            std::result::Result<Vec<(usize, RenditionResult)>, (ErrorKind, String)>,
        );
        let rendered: Vec<RenderedUser> = stream::iter(need.iter())
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
                    let mut to_spill: Vec<(usize, Bytes)> = Vec::new();
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
                                            to_spill.push((ti, b));
                                        }
                                    }
                                    rend
                                });
                                (ti, x)
                            })
                            .collect()
                    });
                    for (ti, b) in to_spill {
                        let at = spill.put_blocking(b).await;
                        spilled
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(((key.clone(), ti), at));
                    }
                    (key.clone(), res)
                }
            })
            .buffer_unordered(self.threads)
            .collect()
            .await;
        timings.decoded = rendered.len();
        timings.normalize_ms = ms(t.elapsed());
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
        Rendered {
            reused,
            deferred_tis,
            deferred,
            made,
            load_errors,
            spill,
            spilled: spilled.into_inner().unwrap_or_else(|p| p.into_inner()),
            cache_left: cache_left.into_inner(),
        }
    }

    /// Loads `r` and makes its renditions for the targets `tis` (one decode per DCT scale
    /// for all of them), on the blocking pool. The outer error is the source's.
    pub(super) async fn render(
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
                        crop: Some(rend.crop),
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
}

#[derive(Clone)]
pub(super) struct Rend {
    pub(super) sha256: String,
    pub(super) len: usize,
    pub(super) bytes: Option<Bytes>,
    pub(super) crop: Option<crate::normalize::CropReport>,
}

/// Where a planned put's rendition waits for the apply stage.
pub(super) enum Kept {
    Memory(Bytes),
    Spilled(Spilled),
}

/// A deferred put's rendition and its crop warnings.
pub(super) type DeferredPut = (Bytes, Vec<CropWarning>);

pub(super) type RenditionResult = std::result::Result<Rend, (ErrorKind, String)>;

/// A user normalized at apply time: one decode for all the sinks that write them, made by
/// whichever of their items gets there first; each item takes its own rendition out. The
/// renditions waiting for the other sinks' items count against the rendition cache (a slow
/// sink's items can lag far behind a fast one's); beyond it their bytes are dropped, and
/// those items make their rendition again.
pub(super) struct Deferred {
    pub(super) tis: Vec<usize>,
    #[allow(clippy::type_complexity)]
    pub(super) made: tokio::sync::OnceCell<
        std::result::Result<Vec<(usize, Mutex<Option<Waiting>>)>, (ErrorKind, String)>,
    >,
}

/// A deferred rendition waiting for its item, and whether its bytes hold cache budget.
pub(super) struct Waiting {
    pub(super) rendition: RenditionResult,
    pub(super) reserved: bool,
}

impl Prepared<'_> {
    /// The rendition of a deferred put and its crop warnings (`Ok(None)` for any other
    /// item), made on the
    /// blocking pool within the engine's thread count. The error carries the reason the
    /// outcome reports.
    pub(super) async fn deferred_rendition(
        &self,
        it: &PlanItem,
        ti: usize,
    ) -> std::result::Result<Option<DeferredPut>, (Reason, Error)> {
        if it.action != Action::Put || it.rendition_sha256.is_some() {
            return Ok(None);
        }
        let fail = |reason, kind, msg| Err(normalize_failure(it, reason, kind, msg));
        let Some(r) = self.refs.get(&it.key) else {
            return fail(
                Reason::SourceError,
                ErrorKind::Other,
                "no source photo for a planned put".into(),
            );
        };
        let Some(d) = self.deferred.get(&it.key) else {
            // Written to this sink only: made here, for it alone.
            let _slot = self.render_slots.acquire().await;
            self.deferred_decoded.fetch_add(1, Ordering::Relaxed);
            let made = match self.engine.render(r, &[ti]).await {
                Ok(v) => v.into_iter().next().map(|(_, x)| x),
                Err((kind, msg)) => return fail(Reason::SourceError, kind, msg),
            };
            return Self::deferred_bytes(it, made);
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
        Self::deferred_bytes(it, taken)
    }

    /// A deferred put's bytes, or the reason it has none.
    pub(super) fn deferred_bytes(
        it: &PlanItem,
        made: Option<RenditionResult>,
    ) -> std::result::Result<Option<DeferredPut>, (Reason, Error)> {
        let fail = |reason, kind, msg| Err(normalize_failure(it, reason, kind, msg));
        match made {
            Some(Ok(Rend {
                bytes: Some(b),
                crop,
                ..
            })) => Ok(Some((b, crop.map(|c| c.warnings).unwrap_or_default()))),
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
    pub(super) async fn rendition(&self, it: &PlanItem, ti: usize) -> Result<Bytes> {
        match self.renditions.get(&(it.key.clone(), ti)) {
            Some(Kept::Memory(b)) => return Ok(b.clone()),
            Some(Kept::Spilled(at)) => {
                if let Some(sha) = &it.rendition_sha256 {
                    if let Some(b) = self.spill.get_blocking(*at, sha.clone()).await {
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
