//! Photo reads: the etag (`current`) and the stored bytes (`fetch`).

use bytes::Bytes;

use super::http::{Call, Limits, Mapped};
use super::{lock, GraphSink};
use crate::sink::CurrentPhoto;
use crate::{Result, UserKey};

/// The `@odata.mediaEtag` of a `GET …/photo` answer's body; `None` for the documented 1x1
/// placeholder (an empty etag, or a 1-pixel-wide GIF), which means no photo (contract 1.3).
pub(crate) fn media_etag(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let etag = v
        .get("@odata.mediaEtag")
        .and_then(|x| x.as_str())
        .unwrap_or("");
    let placeholder = v
        .get("@odata.mediaContentType")
        .and_then(|x| x.as_str())
        .is_some_and(|t| t.eq_ignore_ascii_case("image/gif"))
        && v.get("width").and_then(|x| x.as_u64()) == Some(1);
    if etag.is_empty() || placeholder {
        return None;
    }
    Some(etag.to_owned())
}

impl GraphSink {
    /// Reads `@odata.mediaEtag`: `Ok(None)` when the user has no photo.
    pub(super) async fn read_etag(
        &self,
        key: &UserKey,
        op: &'static str,
    ) -> Result<Option<String>> {
        let url = self.user_url(key, op, "/photo").await?;
        let a = self
            .send(hyper::Method::GET, &url, None, Limits::JSON)
            .await
            .map_err(|e| self.ctx(e, op, key))?;
        if a.is_success() {
            return Ok(media_etag(&a.body));
        }
        match a.mapped(Call::ReadPhoto) {
            Mapped::NotFound => self.not_found(&a, key, op).await.map(|()| None),
            Mapped::Error { .. } => Err(self.ctx(a.to_error(Call::ReadPhoto), op, key)),
        }
    }

    /// `current`: the etag, remembered to notice a stale read after an upload.
    pub(super) async fn current_etag(&self, key: &UserKey) -> Result<Option<CurrentPhoto>> {
        let etag = self.read_etag(key, "current").await?;
        let mut seen = lock(&self.inner.seen_etag);
        match &etag {
            Some(e) => seen.insert(key.folded().to_owned(), e.clone()),
            None => seen.remove(key.folded()),
        };
        Ok(etag.map(CurrentPhoto::from_version))
    }

    /// `fetch`: the stored bytes.
    pub(super) async fn download(&self, key: &UserKey) -> Result<Option<Bytes>> {
        let url = self.user_url(key, "fetch", "/photo/$value").await?;
        let a = self
            .send(hyper::Method::GET, &url, None, Limits::PHOTO)
            .await
            .map_err(|e| self.ctx(e, "fetch", key))?;
        if a.is_success() {
            return Ok(Some(a.body));
        }
        match a.mapped(Call::ReadPhoto) {
            Mapped::NotFound => self.not_found(&a, key, "fetch").await.map(|()| None),
            Mapped::Error { .. } => Err(self.ctx(a.to_error(Call::ReadPhoto), "fetch", key)),
        }
    }
}
