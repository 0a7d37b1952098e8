//! The renditions the apply stage needs: a deferred put's, made now (one decode for all the
//! sinks that write the user), or a planned one, from memory, the spill file, or made again.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use bytes::Bytes;

use super::super::{Action, Failure, PlanItem, Reason};
use super::users::{Kept, Made, MadeResult, Rendition, User, Waiting};
use super::*;
use crate::normalize::CropWarning;
use crate::{Error, ErrorKind, Result};

/// A deferred put's rendition and its crop warnings.
pub(super) type DeferredPut = (Bytes, Vec<CropWarning>);

/// A deferred put's failure to normalize: the reason its outcome reports, and the error.
pub(super) type RenderFailure = (Reason, Error);

fn failure(it: &PlanItem, reason: Reason, f: Failure) -> RenderFailure {
    let e = Error::new(f.kind, f.message)
        .with_operation("normalize")
        .with_user(it.key.clone());
    (reason, e)
}

impl Prepared<'_> {
    /// The rendition of a deferred put and its crop warnings (`Ok(None)` for any other
    /// item), made on the blocking pool within the engine's thread count. The error
    /// carries the reason the outcome reports.
    pub(super) async fn deferred_rendition(
        &self,
        it: &PlanItem,
    ) -> std::result::Result<Option<DeferredPut>, RenderFailure> {
        if it.action != Action::Put || it.rendition_sha256.is_some() {
            return Ok(None);
        }
        let source_failure = |f| Err(failure(it, Reason::SourceError, f));
        let Some((u, r)) = self
            .users
            .get(&it.key)
            .and_then(|u| Some((u, u.photo.as_ref()?)))
        else {
            return source_failure(Failure::new(
                ErrorKind::Other,
                "no source photo for a planned put",
            ));
        };
        let ti = it.target;
        let made = match &u.deferred {
            Some(d) if d.tis.contains(&ti) => self.take_shared(u, it).await,
            // Written to this sink only: made here, for it alone.
            _ => self.render_one(r, ti).await,
        };
        match made {
            Ok(made) => Self::deferred_bytes(it, made),
            Err(f) => source_failure(f),
        }
    }

    /// Makes `r`'s rendition for target `ti` alone.
    async fn render_one(
        &self,
        r: &crate::source::PhotoRef,
        ti: usize,
    ) -> std::result::Result<Option<MadeResult>, Failure> {
        let _slot = self.render_slots.acquire().await;
        self.deferred_decoded.fetch_add(1, Ordering::Relaxed);
        let v = self.engine.render(r, &[ti]).await?;
        Ok(v.into_iter().next().map(|(_, x)| x))
    }

    /// This item's rendition out of the user's shared one, made by whichever of the user's
    /// items gets there first; the others' wait within the rendition cache.
    async fn take_shared(
        &self,
        u: &User,
        it: &PlanItem,
    ) -> std::result::Result<Option<MadeResult>, Failure> {
        let (Some(d), Some(r)) = (&u.deferred, &u.photo) else {
            return Ok(None);
        };
        let ti = it.target;
        let made = d
            .made
            .get_or_init(|| async {
                let _slot = self.render_slots.acquire().await;
                self.deferred_decoded.fetch_add(1, Ordering::Relaxed);
                let v = self.engine.render(r, &d.tis).await?;
                Ok(v.into_iter()
                    .map(|(t, rendition)| (t, Mutex::new(Some(self.wait(t != ti, rendition)))))
                    .collect())
            })
            .await;
        let per_target = made.as_ref().map_err(Clone::clone)?;
        let waiting = per_target
            .iter()
            .find(|(t, _)| *t == ti)
            .and_then(|(_, slot)| slot.lock().unwrap_or_else(|p| p.into_inner()).take());
        let taken = waiting.map(|w| {
            if let (true, Ok(m)) = (w.reserved, &w.rendition) {
                self.deferred_budget
                    .fetch_add(m.facts.bytes, Ordering::Relaxed);
            }
            w.rendition
        });
        match taken {
            // Dropped for the budget: made again, for this sink only.
            Some(Ok(Made { bytes: None, .. })) => self.render_one(r, ti).await,
            other => Ok(other),
        }
    }

    /// A rendition made for another item than the one making it waits: within the budget
    /// with its bytes, beyond it without (that item makes it again).
    fn wait(&self, for_another: bool, mut rendition: MadeResult) -> Waiting {
        let mut reserved = false;
        if let (true, Ok(m)) = (for_another, &mut rendition) {
            let len = m.facts.bytes;
            reserved = self
                .deferred_budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(len))
                .is_ok();
            if !reserved {
                m.bytes = None;
            }
        }
        Waiting {
            rendition,
            reserved,
        }
    }

    /// A deferred put's bytes, or the reason it has none.
    fn deferred_bytes(
        it: &PlanItem,
        made: Option<MadeResult>,
    ) -> std::result::Result<Option<DeferredPut>, RenderFailure> {
        match made {
            Some(Ok(Made {
                bytes: Some(b),
                crop,
                ..
            })) => Ok(Some((b, crop.map(|c| c.warnings).unwrap_or_default()))),
            Some(Err(f)) => {
                let reason = if f.kind == ErrorKind::PhotoTooLarge {
                    Reason::CannotFit
                } else {
                    Reason::InvalidImage
                };
                Err(failure(it, reason, f))
            }
            _ => Err(failure(
                it,
                Reason::SourceError,
                Failure::new(ErrorKind::Other, "no rendition for a planned put"),
            )),
        }
    }

    /// The planned rendition: from memory, from the spill file (checked against the plan's
    /// hash), or made again and checked against the plan.
    pub(super) async fn rendition(&self, it: &PlanItem) -> Result<Bytes> {
        let user = self.users.get(&it.key);
        let kept = user
            .and_then(|u| u.slot(it.target))
            .and_then(|s| match &s.rendition {
                Rendition::Made { kept, .. } => kept.as_ref(),
                _ => None,
            });
        match kept {
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
        let fail = |f: Failure| Error::new(f.kind, f.message).with_user(it.key.clone());
        let r = user.and_then(|u| u.photo.as_ref()).ok_or_else(|| {
            fail(Failure::new(
                ErrorKind::Other,
                "no source photo for a planned put",
            ))
        })?;
        let made = self
            .engine
            .render(r, &[it.target])
            .await
            .map_err(fail)?
            .into_iter()
            .next()
            .map(|(_, x)| x)
            .unwrap_or_else(|| Err(Failure::new(ErrorKind::Other, "no rendition")))
            .map_err(fail)?;
        if Some(&made.facts.sha256) != it.rendition_sha256.as_ref() {
            return Err(Error::new(
                ErrorKind::Conflict,
                "the source photo changed after the plan was made; run again",
            )
            .with_operation("put")
            .with_user(it.key.clone()));
        }
        made.bytes
            .ok_or_else(|| Error::new(ErrorKind::Other, "rendition without bytes"))
    }
}
