//! The audit ([`Engine::audit`]): the source listed, every sink read, each user's photo
//! judged against the source's rendition; nothing written. One user at a time per slot of
//! concurrency: a user's rendition and directory photos are dropped once judged, so memory
//! grows with the users (one small item each), never with the photos.

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use tokio::sync::Semaphore;

use super::super::audit::{Audit, AuditFailure, AuditItem, AuditState};
use super::super::report::Timings;
use super::super::retry::Retrier;
use super::super::{Failure, StateRecord};
use super::users::User;
use super::*;
use crate::normalize::Signature;
use crate::sink::CurrentPhoto;
use crate::source::PhotoRef;
use crate::{Error, ErrorKind, Result, UserKey};

/// What a sink shows for one user, read once.
enum Shown {
    /// The user has no photo there.
    Nothing,
    /// The user has this photo.
    Photo(CurrentPhoto),
    /// The sink does not know the user.
    Unknown,
    /// The sink failed for this user.
    Failed(Failure),
}

/// One user's judgement in one sink, before or after its rendition is made.
enum Judged {
    Done(AuditItem),
    Failed(AuditFailure),
    /// The rendition decides (its hash, or the picture).
    NeedsRendition {
        item: AuditItem,
        photo: CurrentPhoto,
        /// The directory shows the write the state store recorded.
        shows_record: bool,
    },
}

/// What one user contributes to the audit.
type UserResult = (Vec<AuditItem>, Vec<AuditFailure>);

impl Engine {
    /// Audits what every sink shows against what the source would give, writing nothing:
    /// no photo, no state record, no backup. One [`AuditItem`] per user the source lists
    /// and sink, sorted by user then sink; the states and how they are judged are in
    /// [`audit`](crate::sync::audit).
    ///
    /// It reads what a sync reads (the source's list and photos, each sink's photo, the
    /// state store's records) with the engine's concurrency and retries, and downloads a
    /// directory's photo only when its hash or version tag cannot decide. The error is for
    /// run-level failures: bad configuration, refused credentials, and a directory still
    /// unavailable (or throttling) after the retries, which leaves nothing to audit.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use userphoto::normalize::{testimage, Profile};
    /// use userphoto::sink::MemorySink;
    /// use userphoto::source::MemorySource;
    /// use userphoto::sync::{AuditState, Engine};
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let source = MemorySource::new()
    ///     .with_photo("alice", testimage::gradient_jpeg(300, 400))
    ///     .with_photo("carol", testimage::gradient_jpeg(400, 300));
    /// let sink = Arc::new(MemorySink::new(102_400).with_users(["alice", "bob"]));
    /// let engine = Engine::new(source).with_sink(sink.clone(), Profile::ad_thumbnail());
    ///
    /// let audit = engine.audit().await?;
    /// let states: Vec<_> = audit.items.iter().map(|i| (i.key.as_str(), i.state)).collect();
    /// assert_eq!(states, [("alice", AuditState::Missing), ("carol", AuditState::NotInDirectory)]);
    ///
    /// engine.run().await?;
    /// let audit = engine.audit().await?;
    /// assert_eq!(audit.items[0].state, AuditState::InSync);
    /// # Ok::<(), userphoto::Error>(()) }).unwrap();
    /// ```
    pub async fn audit(&self) -> Result<Audit> {
        self.check()?;
        let mut timings = Timings::default();
        let listed = self.list(&mut timings).await?;
        let keys: Vec<UserKey> = listed.users.keys().cloned().collect();
        for tg in &self.targets {
            tg.sink.prefetch(&keys).await?;
        }
        // Per target, the state store's record of each user (aligned with `keys`).
        let mut records: Vec<Vec<Option<StateRecord>>> = Vec::with_capacity(self.targets.len());
        for tg in &self.targets {
            records.push(self.audit_records(tg, &keys).await?);
        }
        let retrier = Retrier::new(self.retry.clone());
        let decoding = Semaphore::new(self.threads);
        let (retrier, decoding, records) = (&retrier, &decoding, &records);
        let results: Vec<Result<UserResult>> = stream::iter(listed.users.iter().enumerate())
            .map(|(i, (key, u))| async move {
                let recs: Vec<Option<&StateRecord>> = records
                    .iter()
                    .map(|r| r.get(i).and_then(|x| x.as_ref()))
                    .collect();
                self.audit_user(key, u, &recs, retrier, decoding).await
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut audit = Audit {
            source_failures: listed.failures,
            ..Audit::default()
        };
        for r in results {
            let (items, failures) = r?;
            audit.items.extend(items);
            audit.failures.extend(failures);
        }
        audit.sort();
        Ok(audit)
    }

    async fn audit_records(
        &self,
        tg: &Target,
        keys: &[UserKey],
    ) -> Result<Vec<Option<StateRecord>>> {
        let Some(state) = &self.state else {
            return Ok(vec![None; keys.len()]);
        };
        let (state, sink, keys) = (state.clone(), tg.sink.name().to_owned(), keys.to_vec());
        tokio::task::spawn_blocking(move || state.get_many(&sink, &keys))
            .await
            .map_err(|e| Error::new(ErrorKind::Other, format!("state read failed: {e}")))?
    }

    /// One user in every sink.
    async fn audit_user(
        &self,
        key: &UserKey,
        u: &User,
        records: &[Option<&StateRecord>],
        retrier: &Retrier,
        decoding: &Semaphore,
    ) -> Result<UserResult> {
        let (mut items, mut failures) = (Vec::new(), Vec::new());
        let photo = match (&u.photo, &u.source_error) {
            (Some(p), None) => p,
            (_, Some(f)) => {
                failures.push(AuditFailure {
                    key: key.clone(),
                    sink: None,
                    kind: f.kind,
                    message: f.message.clone(),
                });
                return Ok((items, failures));
            }
            (None, None) => return Ok((items, failures)),
        };
        let mut pending: Vec<(usize, AuditItem, CurrentPhoto, bool)> = Vec::new();
        for (ti, tg) in self.targets.iter().enumerate() {
            // A user the sink's configuration leaves out (a synced user of a Graph sink that
            // writes cloud-only users) is not that sink's to audit: another sink, or Entra
            // Connect, puts the photo there.
            if tg.sink.excluded(key).is_some() {
                continue;
            }
            let shown = self.audit_read(tg, key, retrier).await?;
            let record = records.get(ti).copied().flatten();
            match self.judge_quick(tg, key, photo, shown, record) {
                Judged::Done(it) => items.push(it),
                Judged::Failed(f) => failures.push(f),
                Judged::NeedsRendition {
                    item,
                    photo,
                    shows_record,
                } => pending.push((ti, item, photo, shows_record)),
            }
        }
        if pending.is_empty() {
            return Ok((items, failures));
        }
        let tis: Vec<usize> = pending.iter().map(|p| p.0).collect();
        let made = {
            let _slot = decoding.acquire().await;
            self.render(photo, &tis).await
        };
        let made = match made {
            Ok(m) => m,
            Err(f) => {
                failures.push(AuditFailure {
                    key: key.clone(),
                    sink: None,
                    kind: f.kind,
                    message: f.message,
                });
                return Ok((items, failures));
            }
        };
        for ((ti, item, current, shows_record), (_, rendition)) in pending.into_iter().zip(made) {
            let tg = &self.targets[ti];
            let m = match rendition {
                Ok(m) => m,
                Err(f) => {
                    failures.push(AuditFailure {
                        key: key.clone(),
                        sink: Some(tg.sink.name().to_owned()),
                        kind: f.kind,
                        message: f.message,
                    });
                    continue;
                }
            };
            let record = records.get(ti).copied().flatten();
            match self
                .judge_picture(
                    tg,
                    key,
                    item,
                    current,
                    shows_record,
                    record,
                    m,
                    retrier,
                    decoding,
                )
                .await?
            {
                Ok(it) => items.push(it),
                Err(f) => failures.push(f),
            }
        }
        Ok((items, failures))
    }

    /// What sink `tg` shows for `key`; a run-level failure is the error.
    async fn audit_read(&self, tg: &Target, key: &UserKey, retrier: &Retrier) -> Result<Shown> {
        let (r, _) = retrier
            .run(
                || tg.sink.current(key),
                |e, after| self.retrying(key, tg.sink.name(), e, after),
            )
            .await;
        Ok(match r {
            Ok(None) => Shown::Nothing,
            Ok(Some(c)) => Shown::Photo(c),
            // A directory still unavailable after the retries cannot be audited at all.
            Err(e) if e.is_run_level() || e.is_retryable() => return Err(e),
            Err(e) if e.kind() == ErrorKind::UserNotFound => Shown::Unknown,
            Err(e) => Shown::Failed(Failure::new(e.kind(), e.to_string())),
        })
    }

    /// The states that need no rendition: withheld, missing, unknown users, and a directory
    /// still showing the recorded write of this very photo.
    fn judge_quick(
        &self,
        tg: &Target,
        key: &UserKey,
        photo: &PhotoRef,
        shown: Shown,
        record: Option<&StateRecord>,
    ) -> Judged {
        let sink = tg.sink.name().to_owned();
        let mut item = AuditItem::new(
            key.clone(),
            sink.clone(),
            AuditState::InSync,
            tg.profile.width,
        );
        item.recorded = record.is_some_and(|r| !r.rendition_sha256.is_empty());
        let current = match shown {
            Shown::Unknown => {
                item.state = AuditState::NotInDirectory;
                return Judged::Done(item);
            }
            Shown::Failed(f) => {
                return Judged::Failed(AuditFailure {
                    key: key.clone(),
                    sink: Some(sink),
                    kind: f.kind,
                    message: f.message,
                })
            }
            Shown::Nothing => {
                item.state = if photo.withheld {
                    AuditState::InSync
                } else {
                    AuditState::Missing
                };
                return Judged::Done(item);
            }
            Shown::Photo(c) => c,
        };
        item.etag = current.version.clone();
        if photo.withheld {
            item.state = AuditState::Withheld;
            return Judged::Done(item);
        }
        let returns_bytes = tg.sink.capabilities().returns_bytes;
        // Whether the directory still shows the write the state store recorded.
        let shows_record = record
            .filter(|r| !r.rendition_sha256.is_empty())
            .is_some_and(
                |r| match (current.content_sha256(), &current.version, &r.version) {
                    (Some(sha), _, _) if returns_bytes => {
                        sha.eq_ignore_ascii_case(&r.rendition_sha256)
                    }
                    (_, Some(now), Some(then)) => now == then,
                    _ => false,
                },
            );
        let fp = StateRecord::keyed_fingerprint(&tg.profile_id, &photo.fingerprint);
        if shows_record && record.is_some_and(|r| r.is_of(&fp)) {
            return Judged::Done(item);
        }
        Judged::NeedsRendition {
            item,
            photo: current,
            shows_record,
        }
    }

    /// The states the rendition decides: by hash, else by the picture.
    #[allow(clippy::too_many_arguments)]
    async fn judge_picture(
        &self,
        tg: &Target,
        key: &UserKey,
        mut item: AuditItem,
        current: CurrentPhoto,
        shows_record: bool,
        record: Option<&StateRecord>,
        made: super::users::Made,
        retrier: &Retrier,
        decoding: &Semaphore,
    ) -> Result<std::result::Result<AuditItem, AuditFailure>> {
        let sink = tg.sink.name();
        let fail = |kind: ErrorKind, message: String| AuditFailure {
            key: key.clone(),
            sink: Some(sink.to_owned()),
            kind,
            message,
        };
        // Our last write is still there, and the source changed since: the same rendition
        // again (a file touched, not changed) is in sync, another is outdated.
        if shows_record {
            let same =
                record.is_some_and(|r| r.rendition_sha256.eq_ignore_ascii_case(&made.facts.sha256));
            item.state = if same {
                AuditState::InSync
            } else {
                AuditState::Outdated
            };
            return Ok(Ok(item));
        }
        if tg.sink.capabilities().returns_bytes
            && current
                .content_sha256()
                .is_some_and(|s| s.eq_ignore_ascii_case(&made.facts.sha256))
        {
            return Ok(Ok(item));
        }
        // The picture decides: the directory's bytes, downloaded if `current` has none.
        let theirs: Option<Bytes> = match current.bytes {
            Some(b) => Some(b),
            None => {
                let (r, _) = retrier
                    .run(
                        || tg.sink.fetch(key),
                        |e, after| self.retrying(key, sink, e, after),
                    )
                    .await;
                match r {
                    Ok(b) => b,
                    Err(e) if e.is_run_level() || e.is_retryable() => return Err(e),
                    Err(e) => return Ok(Err(fail(e.kind(), e.to_string()))),
                }
            }
        };
        let Some(theirs) = theirs else {
            // Removed between the two reads.
            item.state = AuditState::Missing;
            return Ok(Ok(item));
        };
        // Whether our recorded write is of another rendition than the source gives now:
        // the source (or the profile) changed since we wrote.
        let source_moved = record.is_some_and(|r| {
            !r.rendition_sha256.is_empty()
                && !r.rendition_sha256.eq_ignore_ascii_case(&made.facts.sha256)
        });
        // A re-encoding sink (Graph) whose etag was not recorded after our upload (the
        // default: it is learnt by the next sync) cannot show whether the picture there is
        // still ours.
        let etag_unknown =
            !tg.sink.capabilities().returns_bytes && record.is_some_and(|r| r.version.is_none());
        let Some(ours) = made.bytes else {
            return Ok(Err(fail(
                ErrorKind::Other,
                "the rendition's bytes were not kept".into(),
            )));
        };
        let normalizer = self.normalizer.clone();
        let compared = {
            let _slot = decoding.acquire().await;
            tokio::task::spawn_blocking(move || {
                let ours: Signature = normalizer.signature(&ours)?;
                let theirs = normalizer.signature(&theirs);
                Ok::<_, crate::normalize::NormalizeError>((ours, theirs))
            })
            .await
        };
        let (ours, theirs) = match compared {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => return Ok(Err(fail(ErrorKind::Other, format!("our rendition: {e}")))),
            Err(e) => {
                return Ok(Err(fail(
                    ErrorKind::Other,
                    format!("comparison failed: {e}"),
                )))
            }
        };
        let same = match theirs {
            Ok(t) => {
                let s = ours.similarity(&t);
                item.width = Some(t.width);
                item.height = Some(t.height);
                item.similarity = Some((s * 1000.0).round() / 1000.0);
                if s >= crate::normalize::SAME_PICTURE {
                    Some(t)
                } else {
                    None
                }
            }
            // Not an image we can read: not our picture.
            Err(_) => None,
        };
        item.state = match same {
            Some(t) if (t.width.max(t.height) as u64) * 2 < tg.profile.width as u64 => {
                AuditState::LowRes
            }
            Some(_) => AuditState::InSync,
            // Without the etag, a source that changed since our write decides: a sync would
            // write it, whether or not someone else changed the picture meanwhile.
            None if item.recorded && etag_unknown && source_moved => AuditState::Outdated,
            None if item.recorded => AuditState::ChangedElsewhere,
            None => AuditState::Differs,
        };
        Ok(Ok(item))
    }
}
