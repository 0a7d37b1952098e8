//! Stage 3, render: normalize the photos that may need writing (those whose sink holds a
//! photo, to compare) and keep their renditions for the apply stage, in memory up to the
//! rendition cache and beyond it in the spill file. Photos whose sinks hold none are
//! rendered while applying ([`Prepared::deferred_rendition`]), so a first sync writes at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures::stream::{self, StreamExt};

use super::super::event::{Event, Stage};
use super::super::report::Timings;
use super::super::spill::Spill;
use super::super::{Failure, RenditionFacts, SinkState, StateRecord};
use super::users::{Deferred, Kept, KeptPreview, Made, MadeResult, Rendition, Users};
use super::*;
use crate::normalize::{Preview, Profile};
use crate::source::PhotoRef;
use crate::{Error, ErrorKind, UserKey};

/// What the render stage leaves for the apply stage besides the users' records.
pub(super) struct Rendered {
    /// The renditions beyond the memory cache.
    pub(super) spill: Spill,
    /// What is left of the rendition cache.
    pub(super) cache_left: usize,
}

/// One user's renditions (per target) as the render stage leaves them, or the source's
/// failure to load the photo.
type RenderedUser = (
    UserKey,
    std::result::Result<Vec<(usize, Rendition)>, Failure>,
    Option<KeptPreview>,
);

/// Per user (in key order): the photo and the targets whose rendition must be made now.
type Needed = Vec<(UserKey, PhotoRef, Vec<usize>)>;

impl Engine {
    /// Normalizes what may need writing, into the users' records.
    pub(super) async fn render_needed(
        &self,
        users: &mut Users,
        defer: bool,
        timings: &mut Timings,
    ) -> Rendered {
        let t = Instant::now();
        let need = self.select(users, defer, timings);
        self.emit(Event::Stage {
            stage: Stage::Normalize,
            total: need.len(),
        });
        let done = AtomicUsize::new(0);
        let cache_left = AtomicUsize::new(self.cache_bytes);
        let spill = Spill::new();
        let shared_users: &Users = users;
        let made: Vec<RenderedUser> = stream::iter(need.iter())
            .map(|(key, photo, tis)| {
                let (done, cache_left, spill) = (&done, &cache_left, &spill);
                async move {
                    let (res, preview) = match self.render_with_preview(photo, tis).await {
                        Ok((v, p)) => (Ok(v), p),
                        Err(f) => (Err(f), None),
                    };
                    let preview = match preview {
                        Some(p) => KeptPreview::keep(p, spill).await,
                        None => None,
                    };
                    let ok = matches!(&res, Ok(v) if v.iter().all(|(_, x)| x.is_ok()));
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    self.emit(Event::Normalized {
                        key: key.clone(),
                        ok,
                        done: n,
                    });
                    let res = match res {
                        Ok(v) => {
                            let mut kept = Vec::with_capacity(v.len());
                            for (ti, x) in v {
                                let current = shared_users
                                    .get(key)
                                    .and_then(|u| u.slot(ti))
                                    .and_then(|s| s.current.as_ref());
                                kept.push((ti, Self::keep(x, current, cache_left, spill).await));
                            }
                            Ok(kept)
                        }
                        Err(f) => Err(f),
                    };
                    (key.clone(), res, preview)
                }
            })
            .buffer_unordered(self.threads)
            .collect()
            .await;
        timings.decoded = made.len();
        timings.normalize_ms = ms(t.elapsed());
        let n = self.targets.len();
        for (key, res, preview) in made {
            let Some(u) = users.get_mut(&key) else {
                continue;
            };
            u.preview = preview;
            match res {
                Ok(v) => {
                    for (ti, r) in v {
                        u.slot_mut(ti, n).rendition = r;
                    }
                }
                // The photo could not be loaded: the source's failure for this user.
                Err(f) => u.source_error = Some(f),
            }
        }
        Rendered {
            spill,
            cache_left: cache_left.into_inner(),
        }
    }

    /// Marks what the state store already knows and what is left to the apply stage, and
    /// returns what must be made now.
    fn select(&self, users: &mut Users, defer: bool, timings: &mut Timings) -> Needed {
        let mut need = Needed::new();
        let mut reused = 0;
        for (key, u) in users.iter_mut() {
            let Some(r) = u.writable().cloned() else {
                continue;
            };
            let mut tis = Vec::new();
            for (ti, tg) in self.targets.iter().enumerate() {
                let Some(Some(slot)) = u.targets.get_mut(ti) else {
                    continue;
                };
                let Some(
                    current @ (SinkState::NoPhoto | SinkState::Photo { .. } | SinkState::Unread),
                ) = &slot.current
                else {
                    continue;
                };
                let fp = StateRecord::keyed_fingerprint(&tg.profile_id, &r.fingerprint);
                match slot.record.as_ref() {
                    Some(rec) if rec.still_current(&fp, current) => {
                        slot.rendition = Rendition::Known(RenditionFacts::new(
                            rec.rendition_sha256.clone(),
                            rec.bytes,
                        ));
                        reused += 1;
                    }
                    _ => tis.push(ti),
                }
            }
            if tis.is_empty() {
                continue;
            }
            // A user whose every such sink holds no photo (or was not read) gets a put
            // whatever the rendition is: it is made while applying, so the first writes
            // start now. Several sinks share one decode then.
            let free = tis.iter().all(|&ti| {
                matches!(
                    u.slot(ti).and_then(|s| s.current.as_ref()),
                    Some(SinkState::NoPhoto | SinkState::Unread)
                )
            });
            if defer && free {
                for &ti in &tis {
                    if let Some(Some(slot)) = u.targets.get_mut(ti) {
                        slot.rendition = Rendition::Deferred;
                    }
                }
                if tis.len() > 1 {
                    u.deferred = Some(Deferred {
                        tis,
                        made: tokio::sync::OnceCell::new(),
                    });
                }
            } else {
                need.push((key.clone(), r, tis));
            }
        }
        timings.reused = reused;
        need
    }

    /// Where a rendition made while planning waits: its bytes in memory while the cache has
    /// room, else in the spill file (the apply stage reads them back, or makes them again if
    /// that failed). A rendition the sink already shows is not written, so its bytes are
    /// never kept.
    async fn keep(
        made: MadeResult,
        current: Option<&SinkState>,
        cache_left: &AtomicUsize,
        spill: &Spill,
    ) -> Rendition {
        let m = match made {
            Ok(m) => m,
            Err(f) => return Rendition::Failed(f),
        };
        let shown = matches!(
            current,
            Some(SinkState::Photo { sha256: Some(s), .. }) if s.eq_ignore_ascii_case(&m.facts.sha256)
        );
        let kept = match m.bytes {
            Some(b) if !shown => {
                let len = b.len();
                let room = cache_left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(len))
                    .is_ok();
                if room {
                    Some(Kept::Memory(b))
                } else {
                    spill.put_blocking(b).await.map(Kept::Spilled)
                }
            }
            _ => None,
        };
        Rendition::Made {
            facts: m.facts,
            crop: m.crop,
            kept,
        }
    }

    /// Loads `r` and makes its renditions for the targets `tis` (one decode per DCT scale
    /// for all of them), on the blocking pool. The outer error is the source's.
    pub(super) async fn render(
        &self,
        r: &PhotoRef,
        tis: &[usize],
    ) -> std::result::Result<Vec<(usize, MadeResult)>, Failure> {
        self.render_inner(r, tis, None).await.map(|(v, _)| v)
    }

    /// [`render`](Self::render), with the photo's preview when the engine makes them
    /// ([`Engine::with_previews`]).
    async fn render_with_preview(
        &self,
        r: &PhotoRef,
        tis: &[usize],
    ) -> std::result::Result<(Vec<(usize, MadeResult)>, Option<Preview>), Failure> {
        self.render_inner(r, tis, self.previews).await
    }

    async fn render_inner(
        &self,
        r: &PhotoRef,
        tis: &[usize],
        preview: Option<u32>,
    ) -> std::result::Result<(Vec<(usize, MadeResult)>, Option<Preview>), Failure> {
        let all = |x: MadeResult| (tis.iter().map(|&ti| (ti, x.clone())).collect(), None);
        let bytes = match self.source.load(r, self.normalizer.limits()).await {
            Ok(b) => b,
            // Too big to read is the photo's problem (an invalid image), not the source's.
            Err(e) if e.kind() == ErrorKind::LimitExceeded => {
                return Ok(all(Err(Failure::new(e.kind(), e.to_string()))))
            }
            Err(e) => return Err(Failure::new(e.kind(), e.to_string())),
        };
        // One rendition per distinct profile, shared by the targets that use it.
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
        let res = tokio::task::spawn_blocking(move || match preview {
            Some(side) => normalizer.normalize_with_preview(&bytes, &profiles, side),
            None => normalizer
                .normalize_many(&bytes, &profiles)
                .map(|v| (v, None)),
        })
        .await;
        let (res, preview) = match res {
            Ok(Ok((v, p))) => (Ok(Ok(v)), p),
            Ok(Err(e)) => (Ok(Err(e)), None),
            Err(e) => (Err(e), None),
        };
        let per_profile: Vec<MadeResult> = match res {
            Err(e) => {
                let f = Failure::new(ErrorKind::Other, format!("normalizer task failed: {e}"));
                return Ok(all(Err(f)));
            }
            Ok(Err(e)) => return Ok(all(Err(Failure::from(&Error::from(e))))),
            Ok(Ok(v)) => v
                .into_iter()
                .map(|x| match x {
                    Ok(rend) => Ok(Made {
                        facts: RenditionFacts::new(rend.sha256_hex(), rend.bytes.len()),
                        bytes: Some(rend.bytes),
                        crop: Some(rend.crop),
                    }),
                    Err(e) => Err(Failure::from(&Error::from(e))),
                })
                .collect(),
        };
        Ok((
            slot.into_iter()
                .map(|(ti, i)| (ti, per_profile[i].clone()))
                .collect(),
            preview,
        ))
    }
}
