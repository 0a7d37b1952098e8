//! Writes: the upload (and reading its etag back when asked to) and the delete.

use std::time::Duration;

use bytes::Bytes;

use super::http::{Call, Limits, Mapped};
use super::{lock, GraphSink};
use crate::{ErrorKind, Result, UserKey};

impl GraphSink {
    /// The etag after our upload: one read, waiting out `Retry-After` (at most 3 reads)
    /// and a read-your-write delay (the etag from before the upload) for up to ~3.5 s.
    pub(super) async fn etag_after_put(
        &self,
        key: &UserKey,
        before: Option<String>,
    ) -> Option<String> {
        let mut throttled = 0;
        let mut stale = 0;
        loop {
            match self.read_etag(key, "put").await {
                Ok(Some(e)) if Some(&e) != before.as_ref() => return Some(e),
                Ok(_) if stale < 3 => {
                    stale += 1;
                    tokio::time::sleep(Duration::from_millis(250 << stale)).await;
                }
                Ok(_) => return None,
                Err(e) if e.is_retryable() && throttled < 2 => {
                    throttled += 1;
                    let wait = e
                        .retry_after()
                        .unwrap_or(Duration::from_secs(1))
                        .min(Duration::from_secs(60));
                    tokio::time::sleep(wait).await;
                }
                Err(_) => return None,
            }
        }
    }

    /// `put`: the size check, the `PUT`, then the etag.
    pub(super) async fn upload(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>> {
        if jpeg.len() > self.inner.max_bytes {
            return Err(self
                .err(
                    ErrorKind::PhotoTooLarge,
                    "put",
                    key,
                    format!(
                        "the photo is {} bytes; Graph accepts at most {}",
                        jpeg.len(),
                        self.inner.max_bytes
                    ),
                )
                .permanent());
        }
        let url = self.user_url(key, "put", "/photo/$value").await?;
        let a = self
            .send(
                hyper::Method::PUT,
                &url,
                Some(("image/jpeg", jpeg.clone())),
                Limits::JSON,
            )
            .await
            .map_err(|e| self.ctx(e, "put", key))?;
        if !a.is_success() {
            return match a.mapped(Call::PutPhoto) {
                Mapped::NotFound => {
                    // ImageNotFound on a PUT is no "no photo": a user without a mailbox
                    // (contract 1.7) or a missing user; the lookup tells which.
                    self.confirm_user(key, "put", &a).await?;
                    Err(self
                        .err(
                            ErrorKind::Other,
                            "put",
                            key,
                            format!(
                                "Graph refused the upload for an existing user (no mailbox \
                                 or photo store for them?): {}",
                                a.describe()
                            ),
                        )
                        .permanent()
                        .user_level())
                }
                Mapped::Error { .. } => {
                    let e = self.refusal(&a, Call::PutPhoto).await;
                    Err(self.ctx(e, "put", key))
                }
            };
        }
        // An etag in the answer saves the read (Graph documents none today).
        let from_body = serde_json::from_slice::<serde_json::Value>(&a.body)
            .ok()
            .and_then(|v| v.get("@odata.mediaEtag")?.as_str().map(str::to_owned))
            .filter(|e| !e.is_empty());
        if let Some(e) = from_body.or(a.etag.clone()) {
            lock(&self.inner.seen_etag).insert(key.folded().to_owned(), e.clone());
            return Ok(Some(e));
        }
        if !self.inner.confirm_uploads {
            // The etag `current` saw is no longer the photo's; the next run learns the new one.
            lock(&self.inner.seen_etag).remove(key.folded());
            return Ok(None);
        }
        let before = lock(&self.inner.seen_etag).get(key.folded()).cloned();
        let etag = self.etag_after_put(key, before).await;
        let mut seen = lock(&self.inner.seen_etag);
        match &etag {
            Some(e) => seen.insert(key.folded().to_owned(), e.clone()),
            None => seen.remove(key.folded()),
        };
        Ok(etag)
    }

    /// The error for a refused write. A 403 under the tenant's `onPremises` photo policy
    /// (read once, when the first write is refused) says so: it is that user's failure
    /// like any 403, and the message names the policy and what to do.
    async fn refusal(&self, a: &super::http::Answer, call: Call) -> crate::Error {
        let e = a.to_error(call);
        if a.status != 403 {
            return e;
        }
        match self.cached_policy().await {
            Some(p) if p.is_on_premises() => super::http::rewrap(
                &e,
                ErrorKind::PermissionDenied,
                format!(
                    "Graph refused the change: the tenant's photo policy (photoUpdateSettings) \
                     has source onPremises, so Microsoft 365 takes photos from on-premises AD \
                     only and updates through cloud services are disabled; write this user's \
                     photo to AD (--sink ad, Entra Connect carries it), keep Graph to \
                     cloud-only users (--graph-users cloud-only), or have an admin set the \
                     policy's source to cloud ({})",
                    a.describe()
                ),
            ),
            _ => e,
        }
    }

    /// `delete`: the `DELETE`.
    pub(super) async fn remove(&self, key: &UserKey) -> Result<()> {
        let url = self.user_url(key, "delete", "/photo/$value").await?;
        let a = self
            .send(hyper::Method::DELETE, &url, None, Limits::JSON)
            .await
            .map_err(|e| self.ctx(e, "delete", key))?;
        if a.is_success() {
            lock(&self.inner.seen_etag).remove(key.folded());
            return Ok(());
        }
        match a.mapped(Call::DeletePhoto) {
            Mapped::NotFound => self.not_found(&a, key, "delete").await,
            Mapped::Error { .. } => {
                let e = self.refusal(&a, Call::DeletePhoto).await;
                Err(self.ctx(e, "delete", key))
            }
        }
    }
}
