//! Microsoft 365 profile photos through Microsoft Graph v1.0.
//!
//! The exact HTTP contract this follows is `reference/graph-contract.md`; the numbers below
//! (sections) refer to it.
//!
//! * **Token** (4.1–4.3): OAuth2 client credentials at `{login}/{tenant}/oauth2/v2.0/token`
//!   with a client secret or a certificate (a PS256/RS256 JWT client assertion with
//!   `x5t#S256`), scope `{graph resource}/.default`. The token is cached until shortly before
//!   it expires (10% of its lifetime, at most 5 minutes) and fetched by one call at a time.
//!   A 401 from Graph refreshes it once and repeats that one request once. Without a stored
//!   secret: a managed identity's endpoint (App Service, Azure Arc, the instance metadata
//!   service) or a federated token file (workload identity), see [`ManagedIdentity`] and
//!   [`WorkloadIdentity`].
//! * **Photos** (1.2–1.5): `PUT …/photo/$value` (`Content-Type: image/jpeg`, at most
//!   4,000,000 bytes, refused before sending), `GET …/photo` for `@odata.mediaEtag`,
//!   `GET …/photo/$value` for backups, `DELETE …/photo/$value`. Any 2xx is success.
//! * **Users** (1.1): addressed by object id or `userPrincipalName` in the path
//!   (percent-encoded, so the `#` of guest UPNs is `%23`; a UPN that starts with `$` uses the
//!   `/users('…')` form), or found by another property (`employeeId`, `mail`, …) with
//!   `$filter` (quotes doubled), 15 keys per request in [`prefetch`](DirectorySink::prefetch),
//!   cached for the sink's life.
//! * **Throttling** (2): 429/503/504 become retryable errors carrying `Retry-After`
//!   (seconds or HTTP date); the sync engine waits and retries, never earlier than asked.
//!   The sink itself never loops on them, with one exception: reading the new etag right
//!   after a successful upload when it is asked to (below). At most 4 requests are in
//!   flight per sink by default (the documented per-app limit for photos), whoever calls it.
//! * **Correlation** (5): a fresh GUID `client-request-id` on every request; the answer's
//!   `request-id` is kept in every error message.
//! * **Failures** (one table in `http.rs`, by status, request and `error.code`; one for the
//!   token endpoint's `AADSTS` codes in `auth.rs`): a 403, 400 or 404 on one user's photo is
//!   that user's failure ([`Error::user_level`]), with Graph's code and what to check; a
//!   refused token (wrong or expired secret, unknown tenant or app), a 401 that outlives a
//!   token refresh, a `$filter` lookup the app may not make, and a TLS failure are
//!   run-level ([`Error::run_level`]) and never retried.
//! * **Network values are bounded**: `Retry-After` (seconds, fractions or an HTTP date) is
//!   read without panicking and capped at a day; `expires_in` at a day; bodies are read
//!   through a limit (4 MiB of JSON, 5 MiB of photo, 64 KiB of error body) and a larger
//!   `Content-Length` is refused before reading.
//! * **HTTP**: hyper with rustls (aws-lc-rs provider, the system's roots or
//!   [`ca_file`](GraphSinkBuilder::ca_file); TLS always verified; `http://` only to a
//!   loopback address unless [`allow_insecure_http`](GraphSinkBuilder::allow_insecure_http)),
//!   connect and request timeouts, on tokio. Not reqwest: its rustls build brings aws-lc, and its provider-less build, once
//!   Cargo unifies the feature into an application's own reqwest, leaves that application's
//!   clients without a crypto provider (this crate's own tests hit it). The sink needs only
//!   HTTP/1.1 requests with bodies it already holds.
//!
//! # The etag after an upload
//!
//! Graph re-encodes uploads and gives every upload a new `@odata.mediaEtag`, and the state
//! store skips a user only when both the rendition hash and the etag recorded for our upload
//! still match. The PUT answers `200` with no body (1.2), so the etag is learnt by reading
//! the metadata (`put` would use an `ETag` header or a `@odata.mediaEtag` in the PUT's
//! answer if Graph ever sent one). When it is read depends on
//! [`confirm_uploads`](GraphSinkBuilder::confirm_uploads):
//!
//! * **Off (the default): on the next run.** [`GraphSink::put`] sends the `PUT` only and
//!   returns no etag. The engine records the upload without a version, reads `current` for
//!   that user on the next run like for any user it has a record of, and when the source
//!   photo and the rendition still match the record, counts the user as unchanged and
//!   stores the etag it saw. One request per upload, and no read right after a write (which
//!   contract 1.9 does not promise to be consistent). A change someone else makes between
//!   our upload and that next run is taken for ours; a change made later is detected. (Were
//!   that next read still to show the photo from before our upload, its etag would be
//!   adopted and the run after would write the user once more: one extra upload, no harm.)
//! * **On: right after the upload.** `put` reads `GET …/photo` once more and returns its
//!   etag. If that read is throttled the upload has already landed, so the sink waits out
//!   `Retry-After` itself (at most 3 reads) rather than fail and make the engine upload
//!   again; if it still cannot tell, or the metadata still shows the etag from before the
//!   upload (read-your-write delay, 1.9, waited out for up to ~3.5 s), `put` returns no etag
//!   and the next run adopts the etag as above. Two requests per upload; any later change by
//!   someone else is detected.
//!
//! # JSON batching
//!
//! Not used: batch items count against the same per-app concurrency as single requests
//! (Graph runs at most 4 items of a batch to the photo service in parallel, contract 2 and
//! 3), so under the 4-in-flight limit a batch saves round trips, which are not the
//! bottleneck, and no time; two batches at a time get their items throttled. It would
//! also add base64 (+33%) to upload bodies under a ~4 MB request limit.
//!
//! # Requests per run
//!
//! A first run makes 1 request per user (the PUT; the engine does not read a re-encoding
//! sink before a write the state store cannot vouch for); the next runs make 1 read per
//! user (adopting the etags, then comparing them). With
//! [`confirm_uploads(true)`](GraphSinkBuilder::confirm_uploads) a first run makes 2
//! requests per user. The timings are in the README.
//!
//! Give the engine more users in flight than the sink has requests (e.g. 16 for 4) so a user
//! waiting out a `Retry-After` does not idle a request slot.

mod auth;
mod builder;
mod choice;
pub(crate) mod http;
mod identity;
mod preflight;
pub(crate) mod read;
mod resolve;
mod routing;
mod token;
mod write;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::{AsciiSet, CONTROLS};
use tokio::sync::Semaphore;

pub use auth::{AssertionAlgorithm, GraphCertificate, GraphCloud, GraphCredential};
pub use builder::GraphSinkBuilder;
pub use choice::{
    GraphAuthMode, GraphCredentialChoice, GraphCredentialError, GraphSetting,
    ResolvedGraphCredential,
};
pub use identity::{ManagedIdentity, ManagedIdentityKind, WorkloadIdentity, IMDS_DEFAULT_HOST};
pub use preflight::{GraphPreflight, GRAPH_PHOTO_WRITE_ROLES};
pub(crate) use routing::own_users_link;
pub use routing::{GraphUsers, PhotoPolicy, SyncSplit};

use self::auth::TokenSource;
use self::http::{parse_retry_after, Answer, Limits};
use self::resolve::Resolved;
use super::{CurrentPhoto, DirectorySink, Excluded, SinkCapabilities};
use crate::normalize::BuiltinProfile;
use crate::{Error, ErrorKind, Result, UserKey};

/// Graph's upload limit: "4 MB", read as 4,000,000 bytes (`reference/domain.md`: MB or MiB
/// is unstated, so stay at or below 4,000,000).
pub const GRAPH_MAX_BYTES: usize = 4_000_000;

/// Requests in flight per sink by default: Graph's documented per-app limit for photos.
pub const GRAPH_DEFAULT_MAX_IN_FLIGHT: usize = 4;

/// Characters percent-encoded in a path segment: everything but RFC 3986 `pchar`
/// (unreserved, sub-delims, `:` and `@`), so `#`, `/`, `?`, `%` and spaces are encoded while
/// `@`, `$` and `'` stay readable.
pub(crate) const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// How keys find users.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Addressing {
    /// The key is the object id or the UPN: it goes in the path.
    Path,
    /// The key is the value of this Graph property: found with `$filter`.
    Filter(String),
}

/// Microsoft 365 profile photos through Microsoft Graph (see the [module docs](self)).
///
/// Cheap to clone (shared state); `Debug` never shows the secret or the key.
#[derive(Clone)]
pub struct GraphSink {
    inner: Arc<Inner>,
}

struct Inner {
    http: http::Http,
    /// `{graph root}/v1.0`.
    api: String,
    token: TokenSource,
    sem: Semaphore,
    max_in_flight: usize,
    addressing: Addressing,
    /// Keys resolved to object ids (or known absent/ambiguous), by folded key.
    resolved: Mutex<HashMap<String, Resolved>>,
    /// The etag `current` last saw per user, to notice a stale read after an upload.
    seen_etag: Mutex<HashMap<String, String>>,
    max_bytes: usize,
    name: String,
    default_profile: BuiltinProfile,
    /// Read the etag back after an upload ([`GraphSinkBuilder::confirm_uploads`]).
    confirm_uploads: bool,
    /// Which users are written ([`GraphSinkBuilder::users`]).
    users: GraphUsers,
    /// Sync states by folded key, read once when [`Self::users`] is not `All`.
    sync_states: tokio::sync::OnceCell<routing::SyncStates>,
    /// The tenant's photo policy, read once after a refused write (`None`: unreadable).
    policy: tokio::sync::OnceCell<Option<PhotoPolicy>>,
}

impl fmt::Debug for GraphSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphSink")
            .field("name", &self.inner.name)
            .field("api", &self.inner.api)
            .field("token", &self.inner.token)
            .field("addressing", &self.inner.addressing)
            .field("max_in_flight", &self.inner.max_in_flight)
            .field("confirm_uploads", &self.inner.confirm_uploads)
            .field("users", &self.inner.users)
            .finish_non_exhaustive()
    }
}

impl GraphSink {
    /// The most requests this sink has in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight
    }

    fn err(
        &self,
        kind: ErrorKind,
        op: &'static str,
        key: &UserKey,
        msg: impl Into<String>,
    ) -> Error {
        Error::new(kind, msg)
            .with_backend(self.inner.name.clone())
            .with_operation(op)
            .with_user(key.clone())
    }

    /// Adds the sink's context to an error from a lower layer.
    fn ctx(&self, e: Error, op: &'static str, key: &UserKey) -> Error {
        e.with_backend(self.inner.name.clone())
            .with_operation(op)
            .with_user(key.clone())
    }

    /// `{graph root}/v1.0`, the prefix of every request this sink makes.
    pub(crate) fn api(&self) -> &str {
        &self.inner.api
    }

    /// One Graph request: the token, a slot, a fresh `client-request-id`; on 401 the token
    /// is refreshed once and the request sent once more.
    pub(crate) async fn send(
        &self,
        method: hyper::Method,
        url: &str,
        body: Option<(&'static str, Bytes)>,
        limits: Limits,
    ) -> Result<Answer> {
        let mut refreshed = false;
        loop {
            let token = self.inner.token.token().await?;
            let crid = http::new_guid();
            let auth = format!("Bearer {token}");
            let mut headers = vec![
                ("authorization", auth.as_str()),
                ("client-request-id", crid.as_str()),
                ("accept", "application/json"),
            ];
            if let Some((ct, _)) = &body {
                headers.push(("content-type", ct));
            }
            let raw =
                {
                    let _permit =
                        self.inner.sem.acquire().await.map_err(|_| {
                            Error::new(ErrorKind::Other, "the Graph sink is closed")
                        })?;
                    self.inner
                        .http
                        .send(
                            method.clone(),
                            url,
                            &headers,
                            body.as_ref().map(|(_, b)| b.clone()),
                            limits,
                        )
                        .await
                        .map_err(|e| {
                            let m = format!("{} (client-request-id {crid})", e.message());
                            http::rewrap(&e, e.kind(), m)
                        })?
                };
            let answer = Answer {
                status: raw.status,
                request_id: raw.header("request-id"),
                retry_after: raw
                    .header("retry-after")
                    .and_then(|v| parse_retry_after(&v, SystemTime::now())),
                etag: raw.header("etag"),
                body: raw.body,
                client_request_id: crid,
            };
            if answer.status == 401 && !refreshed {
                self.inner.token.invalidate(&token).await;
                refreshed = true;
                continue;
            }
            return Ok(answer);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl DirectorySink for GraphSink {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn capabilities(&self) -> SinkCapabilities {
        let mut c = SinkCapabilities::new(self.inner.max_bytes, self.inner.default_profile);
        c.returns_bytes = false;
        c
    }

    /// `GET …/photo`: the `@odata.mediaEtag` as the version; `Ok(None)` without a photo.
    async fn current(&self, key: &UserKey) -> Result<Option<CurrentPhoto>> {
        self.current_etag(key).await
    }

    /// `PUT …/photo/$value`; with [`confirm_uploads`](GraphSinkBuilder::confirm_uploads), then
    /// the new etag (see the module docs).
    async fn put(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>> {
        self.upload(key, jpeg).await
    }

    /// `DELETE …/photo/$value`; `Ok` when there was no photo.
    async fn delete(&self, key: &UserKey) -> Result<()> {
        self.remove(key).await
    }

    /// `GET …/photo/$value`: the stored bytes (Graph's re-encoding), for backups.
    async fn fetch(&self, key: &UserKey) -> Result<Option<Bytes>> {
        self.download(key).await
    }

    /// With a `$filter` match attribute: finds the keys not yet known, 15 per request,
    /// requests in flight up to the sink's limit. Keys that are ids or UPNs need no lookup.
    /// Only run-level failures (credentials, rights, a property Graph cannot filter on) are
    /// errors; others leave the keys to be looked up one by one later.
    ///
    /// With [`GraphSinkBuilder::users`] other than `All`, first reads every user's
    /// `onPremisesSyncEnabled` (once per sink; a failure stops the run).
    async fn prefetch(&self, keys: &[UserKey]) -> Result<()> {
        self.load_sync_states().await?;
        self.resolve_all(keys).await
    }

    /// A synced user when the sink writes cloud-only users, and the reverse.
    fn excluded(&self, key: &UserKey) -> Option<Excluded> {
        self.excluded_by_route(key)
    }

    // `users_with_photos` keeps the default (Unsupported): Graph cannot filter users on
    // having a photo, so listing them would take one photo request per user in the tenant
    // (100k users at 4 in flight is hours). Leavers are found from a source listing instead.
}
