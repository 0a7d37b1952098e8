//! Microsoft 365 profile photos read through Microsoft Graph (`--source graph`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use percent_encoding::utf8_percent_encode;

use super::{PhotoRef, PhotoSource};
use crate::normalize::Limits;
use crate::sink::graph::http::{Answer, Call, Limits as HttpLimits, Mapped};
use crate::sink::graph::read::media_etag;
use crate::sink::graph::PATH;
use crate::sink::{GraphCredential, GraphSink, GraphSinkBuilder};
use crate::sync::{Retrier, RetryPolicy};
use crate::{Error, ErrorKind, MatchAttribute, Result, UserKey};

/// Users per page of the listing by default: the most Graph gives (`$top=999`).
pub const GRAPH_SOURCE_PAGE_SIZE: usize = 999;

/// Reads people's profile photos from Microsoft 365 through Microsoft Graph v1.0, with the
/// Graph sink's connection and identity settings (secret, certificate, managed identity,
/// workload identity; cloud, URLs, CA file, timeouts): see [`GraphSinkBuilder`].
///
/// * **Listing**: `GET /users?$select=id,{match property}&$top=999`, page after page along
///   `@odata.nextLink`; a next link must stay below the configured Graph URL (`{root}/v1.0/`),
///   anything else stops the listing with a run-level
///   [`InvalidData`](ErrorKind::InvalidData) error and sends nothing there (the bearer token
///   would go with it). One small record per user is kept while listing (its id and key),
///   never a photo.
/// * **Keys** come from the match attribute: [`UserPrincipalName`](MatchAttribute::UserPrincipalName)
///   (the default), [`Mail`](MatchAttribute::Mail), [`ObjectGuid`](MatchAttribute::ObjectGuid)
///   (the object id), [`EmployeeId`](MatchAttribute::EmployeeId),
///   [`SamAccountName`](MatchAttribute::SamAccountName) (`onPremisesSamAccountName`) or
///   [`Other`](MatchAttribute::Other) (a Graph property). Users without a value (rooms,
///   service accounts without `employeeId`...) cannot be matched and are skipped, not
///   reported. Two users with one key are a single [`Conflict`](ErrorKind::Conflict) item.
/// * **Photos**: each listed user's `GET /users/{id}/photo` (its `@odata.mediaEtag` is the
///   fingerprint), at most [`max_in_flight`](GraphSinkBuilder::max_in_flight) (default 4)
///   requests at once. No photo (404, or the 200 1x1 placeholder of contract 1.3) is no
///   item at all, not a failure. [`load`](PhotoSource::load) downloads
///   `GET /users/{id}/photo/$value`, refusing more than `max_input_bytes` without reading it.
///   Graph serves a re-encoded JPEG, never the bytes once uploaded.
/// * **Throttling**: 429, 503 and 504 are retried by the source itself under its
///   [`RetryPolicy`] (the engine's default unless set), never earlier than `Retry-After`;
///   the retry budget is per listing.
/// * **Rights**: `User.Read.All` to list users and `ProfilePhoto.Read.All` to read photos
///   (application permissions).
///
/// Requests: one per 999 users to list, one per user for the metadata, one per photo the
/// engine loads.
///
/// ```no_run
/// use userphoto::source::GraphSource;
/// use userphoto::{MatchAttribute, Secret};
/// let src = GraphSource::builder(
///     "contoso.onmicrosoft.com",
///     "3f9e2c1a-7b4d-4c8e-a1f6-0d2b5e9c7a13",
///     Secret::from_env("GRAPH_CLIENT_SECRET")?,
/// )
/// .match_attribute(MatchAttribute::EmployeeId)
/// .build()?;
/// # Ok::<(), userphoto::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GraphSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The connection: token, HTTP client, requests in flight.
    graph: GraphSink,
    /// The Graph property keys come from.
    property: String,
    page_size: usize,
    retry: RetryPolicy,
    /// The retries of the current listing (and the loads that follow it).
    retrier: Mutex<Arc<Retrier>>,
}

/// Settings of a [`GraphSource`]; made by [`GraphSource::builder`],
/// [`GraphSource::builder_for`] or [`GraphSource::with_connection`].
#[derive(Debug, Clone)]
#[must_use]
pub struct GraphSourceBuilder {
    conn: GraphSinkBuilder,
    matcher: MatchAttribute,
    page_size: usize,
    retry: RetryPolicy,
}

impl GraphSourceBuilder {
    /// The attribute keys come from (default `userPrincipalName`).
    pub fn match_attribute(mut self, m: MatchAttribute) -> Self {
        self.matcher = m;
        self
    }

    /// Users per listing page, 1 to 999 (default [`GRAPH_SOURCE_PAGE_SIZE`]).
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, 999);
        self
    }

    /// How throttled and failed requests are retried (default [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, p: RetryPolicy) -> Self {
        self.retry = p;
        self
    }

    /// Changes the connection settings (cloud, URLs, CA file, timeouts, requests in flight,
    /// name) with the [`GraphSinkBuilder`] methods.
    pub fn connection(mut self, f: impl FnOnce(GraphSinkBuilder) -> GraphSinkBuilder) -> Self {
        self.conn = f(self.conn);
        self
    }

    /// Checks the settings and makes the source (nothing is sent yet).
    pub fn build(self) -> Result<GraphSource> {
        let property = match &self.matcher {
            MatchAttribute::UserPrincipalName => "userPrincipalName".to_owned(),
            MatchAttribute::ObjectGuid => "id".to_owned(),
            MatchAttribute::Mail => "mail".to_owned(),
            MatchAttribute::EmployeeId => "employeeId".to_owned(),
            MatchAttribute::SamAccountName => "onPremisesSamAccountName".to_owned(),
            MatchAttribute::Other(p)
                if p.as_str()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                p.as_str().to_owned()
            }
            other => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "Graph users have no {:?}; match on upn, mail, id or employeeId",
                        other.ldap_name()
                    ),
                )
                .with_backend("graph")
                .with_operation("build"))
            }
        };
        // Keys are read from the listing, so the connection's own addressing never matters.
        let graph = self
            .conn
            .match_attribute(MatchAttribute::UserPrincipalName)
            .build()?;
        let retrier = Mutex::new(Arc::new(Retrier::new(self.retry.clone())));
        Ok(GraphSource {
            inner: Arc::new(Inner {
                graph,
                property,
                page_size: self.page_size,
                retry: self.retry,
                retrier,
            }),
        })
    }
}

impl GraphSource {
    /// Settings for `tenant` (GUID or domain) and the app `client_id`, with a
    /// [`Secret`](crate::Secret) or a [`GraphCertificate`](crate::sink::GraphCertificate).
    pub fn builder(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        credential: impl Into<GraphCredential>,
    ) -> GraphSourceBuilder {
        Self::with_connection(GraphSink::builder(tenant, client_id, credential))
    }

    /// Settings whose tenant and app come from the credential (a managed identity or a
    /// workload identity).
    pub fn builder_for(credential: impl Into<GraphCredential>) -> GraphSourceBuilder {
        Self::with_connection(GraphSink::builder_for(credential))
    }

    /// Settings with the connection and identity of a Graph sink's builder (tenant, app,
    /// credential, cloud, URLs, scope, CA file, timeouts, requests in flight, name). Its
    /// sink-only settings (match attribute, largest photo, profile, confirmed uploads) do
    /// not apply.
    pub fn with_connection(conn: GraphSinkBuilder) -> GraphSourceBuilder {
        GraphSourceBuilder {
            conn,
            matcher: MatchAttribute::UserPrincipalName,
            page_size: GRAPH_SOURCE_PAGE_SIZE,
            retry: RetryPolicy::default(),
        }
    }

    fn err(&self, kind: ErrorKind, op: &'static str, msg: impl Into<String>) -> Error {
        Error::new(kind, msg)
            .with_backend(self.backend())
            .with_operation(op)
    }

    fn backend(&self) -> String {
        crate::sink::DirectorySink::name(&self.inner.graph).to_owned()
    }

    fn retrier(&self) -> Arc<Retrier> {
        self.inner
            .retrier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One `GET`, retried under the policy while Graph answers a retryable status (429,
    /// 503, 504, other 5xx) or the transport fails temporarily. The answer is any other:
    /// success, 404, or an error for the caller to map.
    async fn get(
        &self,
        retrier: &Retrier,
        url: &str,
        call: Call,
        limits: HttpLimits,
    ) -> Result<Answer> {
        let op = || async {
            let a = self
                .inner
                .graph
                .send(hyper::Method::GET, url, None, limits)
                .await?;
            if !a.is_success() {
                if let Mapped::Error { retry: true, .. } = a.mapped(call) {
                    return Err(a.to_error(call));
                }
            }
            Ok(a)
        };
        let shown = url.split('?').next().unwrap_or(url).to_owned();
        retrier
            .run(op, |e: &Error, wait: Duration| {
                tracing::info!(
                    target: "userphoto::graph",
                    url = %shown,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    error = %e,
                    "graph source retrying"
                );
            })
            .await
            .0
    }

    /// Every user with a value of the match property, page after page: `(key, id)`, and the
    /// error that ended the listing early, if any.
    async fn users(&self, retrier: &Retrier) -> (Vec<(UserKey, String)>, Option<Error>) {
        let api = self.inner.graph.api().to_owned();
        let prop = &self.inner.property;
        let select = if prop == "id" {
            "id".to_owned()
        } else {
            format!("id,{prop}")
        };
        let mut url = format!("{api}/users?$select={select}&$top={}", self.inner.page_size);
        let mut found = Vec::new();
        let mut skipped = 0usize;
        let mut pages = 0usize;
        loop {
            let a = match self
                .get(retrier, &url, Call::Lookup, HttpLimits::JSON)
                .await
            {
                Ok(a) => a,
                Err(e) => return (found, Some(self.page_error(e, pages))),
            };
            if !a.is_success() {
                // 404 on `/users` is no listing at all; the rest by the status table.
                let e = a.to_error(Call::Lookup);
                return (found, Some(self.page_error(e, pages)));
            }
            pages += 1;
            let v: serde_json::Value = match serde_json::from_slice(&a.body) {
                Ok(v) => v,
                Err(e) => {
                    let e = self.err(
                        ErrorKind::InvalidData,
                        "list",
                        format!("Graph's user list is not JSON: {e}"),
                    );
                    return (found, Some(e));
                }
            };
            for u in v
                .get("value")
                .and_then(|x| x.as_array())
                .into_iter()
                .flatten()
            {
                let id = u.get("id").and_then(|x| x.as_str()).unwrap_or("");
                let key = u
                    .get(prop.as_str())
                    .and_then(|x| x.as_str())
                    .map(str::trim)
                    .unwrap_or("");
                if id.is_empty() || key.is_empty() {
                    skipped += 1;
                    continue;
                }
                found.push((UserKey::new(key), id.to_owned()));
            }
            match v.get("@odata.nextLink") {
                None | Some(serde_json::Value::Null) => break,
                Some(next) => match next.as_str().filter(|n| self.own_link(n)) {
                    Some(n) => url = n.to_owned(),
                    None => {
                        let e = self
                            .err(
                                ErrorKind::InvalidData,
                                "list",
                                format!(
                                    "Graph's @odata.nextLink does not start with {api}/users; \
                                     refusing to send the token there, the listing stops \
                                     after {pages} pages"
                                ),
                            )
                            .permanent()
                            .run_level();
                        return (found, Some(e));
                    }
                },
            }
        }
        if skipped > 0 {
            tracing::info!(
                target: "userphoto::graph",
                skipped,
                property = %prop,
                "graph source: users without the match property are not listed"
            );
        }
        (found, None)
    }

    /// Whether a next link stays on this source's Graph URL (`{api}/users?…`).
    fn own_link(&self, link: &str) -> bool {
        crate::sink::graph::own_users_link(self.inner.graph.api(), link)
    }

    /// A page that could not be read: the first page's failure is the run's (nothing at all
    /// could be listed); a later one is a source failure without a user (leavers are then
    /// kept).
    fn page_error(&self, e: Error, pages: usize) -> Error {
        let e = e.with_backend(self.backend()).with_operation("list");
        if pages == 0 && !e.is_retryable() {
            e.run_level()
        } else {
            e
        }
    }

    /// One user's photo metadata: `Ok(None)` without a photo.
    async fn photo_ref(
        &self,
        retrier: &Retrier,
        key: UserKey,
        id: &str,
    ) -> Result<Option<PhotoRef>> {
        let user = format!(
            "{}/users/{}",
            self.inner.graph.api(),
            utf8_percent_encode(id, PATH)
        );
        let ctx = |e: Error| {
            e.with_backend(self.backend())
                .with_operation("list")
                .with_user(key.clone())
        };
        let a = self
            .get(
                retrier,
                &format!("{user}/photo"),
                Call::ReadPhoto,
                HttpLimits::JSON,
            )
            .await
            .map_err(ctx)?;
        if a.status == 404 {
            return Ok(None);
        }
        if !a.is_success() {
            return Err(ctx(a.to_error(Call::ReadPhoto)));
        }
        Ok(media_etag(&a.body).map(|etag| PhotoRef {
            key: key.clone(),
            fingerprint: format!("graph-etag:{etag}"),
            location: format!("{user}/photo/$value"),
            withheld: false,
        }))
    }

    async fn scan(&self, retrier: Arc<Retrier>) -> Vec<Result<(UserKey, String)>> {
        let (users, stopped) = self.users(&retrier).await;
        let mut by_key: BTreeMap<String, Vec<(UserKey, String)>> = BTreeMap::new();
        for (key, id) in users {
            by_key
                .entry(key.folded().to_owned())
                .or_default()
                .push((key, id));
        }
        let mut out: Vec<Result<(UserKey, String)>> = by_key
            .into_values()
            .map(|mut same| {
                if same.len() == 1 {
                    return Ok(same.remove(0));
                }
                let key = same[0].0.clone();
                let ids: Vec<String> = same.into_iter().map(|(_, id)| id).collect();
                Err(self
                    .err(
                        ErrorKind::Conflict,
                        "list",
                        format!(
                            "{} Graph users have {} {:?}: {}",
                            ids.len(),
                            self.inner.property,
                            key.as_str(),
                            ids.join(", ")
                        ),
                    )
                    .with_user(key))
            })
            .collect();
        if let Some(e) = stopped {
            out.push(Err(e));
        }
        out
    }
}

#[async_trait]
impl PhotoSource for GraphSource {
    fn name(&self) -> &str {
        "graph"
    }

    fn list(&self) -> BoxStream<'_, Result<PhotoRef>> {
        let retrier = Arc::new(Retrier::new(self.inner.retry.clone()));
        *self.inner.retrier.lock().unwrap_or_else(|p| p.into_inner()) = retrier.clone();
        let in_flight = self.inner.graph.max_in_flight();
        let r = retrier.clone();
        stream::once(async move { self.scan(r).await })
            .flat_map(stream::iter)
            .map(move |item| {
                let retrier = retrier.clone();
                async move {
                    match item {
                        Err(e) => Some(Err(e)),
                        Ok((key, id)) => self.photo_ref(&retrier, key, &id).await.transpose(),
                    }
                }
            })
            .buffered(in_flight)
            .filter_map(|x| async move { x })
            .boxed()
    }

    async fn load(&self, photo: &PhotoRef, limits: &Limits) -> Result<Bytes> {
        let key = &photo.key;
        let ctx = |e: Error| {
            e.with_backend(self.backend())
                .with_operation("load")
                .with_user(key.clone())
        };
        // Only a location this source made: a plan file's location must not send the token
        // anywhere else.
        let api = self.inner.graph.api();
        let ok = photo
            .location
            .strip_prefix(api)
            .and_then(|r| r.strip_prefix("/users/"))
            .and_then(|r| r.strip_suffix("/photo/$value"))
            .is_some_and(|id| !id.is_empty() && !id.contains(['/', '?', '#', '\\', ' ']));
        if !ok {
            return Err(ctx(Error::new(
                ErrorKind::InvalidData,
                format!("{:?} is not a photo of this Graph source", photo.location),
            )));
        }
        let max = usize::try_from(limits.max_input_bytes).unwrap_or(usize::MAX);
        let http = HttpLimits {
            ok: max,
            error: HttpLimits::JSON.error,
        };
        let a = self
            .get(&self.retrier(), &photo.location, Call::ReadPhoto, http)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::LimitExceeded => ctx(Error::new(
                    ErrorKind::LimitExceeded,
                    format!("the photo is above the limit of {max} bytes"),
                )),
                _ => ctx(e),
            })?;
        if a.status == 404 {
            return Err(ctx(Error::new(
                ErrorKind::UserNotFound,
                format!("{} has no photo any more", photo.location),
            )));
        }
        if !a.is_success() {
            return Err(ctx(a.to_error(Call::ReadPhoto)));
        }
        Ok(a.body)
    }
}
