//! Microsoft 365 profile photos through Microsoft Graph v1.0.
//!
//! The exact HTTP contract this follows is `reference/graph-contract.md`; the numbers below
//! (sections) refer to it.
//!
//! * **Token** (4.1–4.3): OAuth2 client credentials at `{login}/{tenant}/oauth2/v2.0/token`
//!   with a client secret or a certificate (a PS256/RS256 JWT client assertion with
//!   `x5t#S256`), scope `{graph resource}/.default`. The token is cached until shortly before
//!   it expires (10% of its lifetime, at most 5 minutes) and fetched by one call at a time.
//!   A 401 from Graph refreshes it once and repeats that one request once.
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
//! * **HTTP**: hyper with rustls (ring provider, the system's roots or
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
//! Not used: it does not beat single requests under the 4-in-flight limit. Measured with
//! `examples/bench_graph.rs` against the test server (100 ms per operation, 4 operations of
//! an app at a time): 200 photo reads took 5.09 s as single requests 4 in flight and 5.08 s
//! as `$batch`es of 20 sent one at a time, because batch items count against the same
//! per-app concurrency (Graph runs at most 4 items of a batch to the photo service in
//! parallel, contract 2 and 3); two batches at a time got 180 of 200 items throttled.
//! Batching only saves round trips, which are not the bottleneck, and would add base64
//! (+33%) to upload bodies under a ~4 MB request limit.
//!
//! # Throughput
//!
//! Same bench, 1,000 users, default settings: a first run makes 1 request per user (the PUT;
//! the engine does not read a re-encoding sink before a write the state store cannot vouch
//! for) and took 25.5 s, 1.02x the issue's 1,000 × 0.1 s / 4 = 25 s; the second run (1 read
//! per user, adopting the etags) and the third (1 read per user, comparing them) took 25.5 s
//! and 25.6 s. With [`confirm_uploads(true)`](GraphSinkBuilder::confirm_uploads) a first
//! run makes 2 requests per user and took 51.1 s (1.02x its floor of 50 s). With 5% of
//! requests throttled for 1 s: 26.4 s, 26.5 s and 26.2 s (1.06x of 25 s; 1.01x of the
//! ~1,052-request floor).
//! Give the engine more users in flight than the sink has requests (e.g. 16 for 4) so a user
//! waiting out a `Retry-After` does not idle a request slot.

mod auth;
mod http;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use tokio::sync::Semaphore;

pub use auth::{AssertionAlgorithm, GraphCertificate, GraphCloud, GraphCredential};

use self::auth::TokenSource;
use self::http::{parse_retry_after, Answer, Call, Limits, Mapped};
use super::{CurrentPhoto, DirectorySink, SinkCapabilities};
use crate::normalize::BuiltinProfile;
use crate::{Error, ErrorKind, MatchAttribute, Result, UserKey};

/// Graph's upload limit: "4 MB", read as 4,000,000 bytes (`reference/domain.md`: MB or MiB
/// is unstated, so stay at or below 4,000,000).
pub const GRAPH_MAX_BYTES: usize = 4_000_000;

/// Requests in flight per sink by default: Graph's documented per-app limit for photos.
pub const GRAPH_DEFAULT_MAX_IN_FLIGHT: usize = 4;

/// Keys per `$filter=… in (…)` lookup (Graph allows 15 values in an `in`).
const LOOKUP_CHUNK: usize = 15;

/// Characters percent-encoded in a path segment: everything but RFC 3986 `pchar`
/// (unreserved, sub-delims, `:` and `@`), so `#`, `/`, `?`, `%` and spaces are encoded while
/// `@`, `$` and `'` stay readable.
const PATH: &AsciiSet = &CONTROLS
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

/// Characters percent-encoded in a query value: all but unreserved.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How keys find users.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Addressing {
    /// The key is the object id or the UPN: it goes in the path.
    Path,
    /// The key is the value of this Graph property: found with `$filter`.
    Filter(String),
}

#[derive(Debug, Clone)]
enum Resolved {
    Id(String),
    Absent,
    Ambiguous(Vec<String>),
}

/// Builds a [`GraphSink`]: tenant, app, credential, then optional settings.
///
/// ```no_run
/// use userphoto::sink::{GraphCloud, GraphSink};
/// use userphoto::Secret;
/// use userphoto::MatchAttribute;
/// let sink = GraphSink::builder(
///     "contoso.onmicrosoft.com",
///     "3f9e2c1a-7b4d-4c8e-a1f6-0d2b5e9c7a13",
///     Secret::from_env("GRAPH_CLIENT_SECRET")?,
/// )
/// .cloud(GraphCloud::Global)
/// .match_attribute(MatchAttribute::EmployeeId)
/// .build()?;
/// # Ok::<(), userphoto::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GraphSinkBuilder {
    tenant: String,
    client_id: String,
    credential: GraphCredential,
    cloud: GraphCloud,
    graph_url: Option<String>,
    login_url: Option<String>,
    scope: Option<String>,
    match_attribute: MatchAttribute,
    max_in_flight: usize,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_bytes: usize,
    name: String,
    default_profile: BuiltinProfile,
    confirm_uploads: bool,
    ca_file: Option<std::path::PathBuf>,
    allow_insecure_http: bool,
}

impl GraphSinkBuilder {
    /// The national cloud (global by default): sets Graph's URL, the login URL and the scope.
    pub fn cloud(mut self, cloud: GraphCloud) -> Self {
        self.cloud = cloud;
        self
    }

    /// Graph's service root instead of the cloud's, as in `https://graph.microsoft.com` (the
    /// sink adds `/v1.0/…`): a proxy or a test server. The scope stays the cloud's.
    pub fn graph_url(mut self, url: impl Into<String>) -> Self {
        self.graph_url = Some(url.into());
        self
    }

    /// The login authority root instead of the cloud's, as in
    /// `https://login.microsoftonline.com` (the sink adds `/{tenant}/oauth2/v2.0/token`).
    pub fn login_url(mut self, url: impl Into<String>) -> Self {
        self.login_url = Some(url.into());
        self
    }

    /// The token scope (default: `{cloud's Graph URL}/.default`).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// What keys are: [`UserPrincipalName`](MatchAttribute::UserPrincipalName) (the
    /// default) or [`ObjectGuid`](MatchAttribute::ObjectGuid) (the object id) go in the path;
    /// [`EmployeeId`](MatchAttribute::EmployeeId), [`Mail`](MatchAttribute::Mail),
    /// [`SamAccountName`](MatchAttribute::SamAccountName) (`onPremisesSamAccountName`) and
    /// [`Other`](MatchAttribute::Other) (a Graph property name) are looked up with `$filter`.
    /// `EmployeeNumber` has no Graph property: [`build`](Self::build) refuses it.
    pub fn match_attribute(mut self, m: MatchAttribute) -> Self {
        self.match_attribute = m;
        self
    }

    /// At most this many Graph requests in flight (default 4; at least 1).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Time to connect (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Time for one whole request and answer (default 100 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// The largest photo sent (default and most [`GRAPH_MAX_BYTES`]).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n.min(GRAPH_MAX_BYTES);
        self
    }

    /// The sink's name in errors, reports and the state store (default `graph`): give two
    /// sinks for two tenants different names.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The profile this sink is written with by default ([`BuiltinProfile::Graph`]).
    pub fn default_profile(mut self, profile: BuiltinProfile) -> Self {
        self.default_profile = profile;
        self
    }

    /// Whether [`put`](DirectorySink::put) reads the new `@odata.mediaEtag` back after each
    /// upload (default `false`).
    ///
    /// * `false` (the default): one request per upload, the `PUT`. `put` returns no etag
    ///   (unless Graph's answer to the `PUT` carries one), so the state store records the
    ///   upload without a version; the next run reads the photo's metadata as it does for
    ///   every user it has a record of, and when the source photo and the rendition still
    ///   match the record it counts the user as unchanged and adopts the etag it sees. Later
    ///   runs compare etags as usual. This halves the requests of a bulk upload (Graph
    ///   allows 4 photo requests in flight per app, so requests are what a run takes time
    ///   for) and never reads a photo right after writing it, which Graph does not promise
    ///   to show at once (contract 1.9).
    ///   The trade-off: a change someone else makes (in Outlook, Teams, the admin center)
    ///   between our upload and the next run is adopted as ours and not written over; a
    ///   change made after that next run is detected.
    /// * `true`: `put` reads `GET …/photo` after a successful `PUT` and returns its etag
    ///   (see [the module docs](self#the-etag-after-an-upload)), so any later change by
    ///   someone else is detected, at the cost of one more request per upload.
    pub fn confirm_uploads(mut self, yes: bool) -> Self {
        self.confirm_uploads = yes;
        self
    }

    /// Trusts only the CA certificates in this PEM file, instead of the system's roots, for
    /// Graph and the login endpoint: a TLS-inspecting proxy's CA, or a private test CA.
    /// (Without it the system's trust store is used, which `SSL_CERT_FILE` can point
    /// elsewhere.)
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Allows `http://` Graph and login URLs to hosts that are not loopback. Insecure: the
    /// client secret, the client assertion and every bearer token then cross the network in
    /// clear. Without it `http://` is refused except to `127.0.0.0/8`, `::1` and
    /// `localhost` (test servers, a local proxy).
    pub fn allow_insecure_http(mut self, yes: bool) -> Self {
        self.allow_insecure_http = yes;
        self
    }

    /// Checks the settings and builds the HTTP client (no request is made yet).
    pub fn build(self) -> Result<GraphSink> {
        let cfg = |m: String| {
            Error::new(ErrorKind::Config, m)
                .with_backend(self.name.clone())
                .with_operation("build")
        };
        if self.tenant.trim().is_empty() {
            return Err(cfg("the Graph sink needs a tenant (id or domain)".into()));
        }
        if self.client_id.trim().is_empty() {
            return Err(cfg("the Graph sink needs a client (application) id".into()));
        }
        let addressing = match &self.match_attribute {
            MatchAttribute::UserPrincipalName | MatchAttribute::ObjectGuid => Addressing::Path,
            MatchAttribute::EmployeeId => Addressing::Filter("employeeId".into()),
            MatchAttribute::Mail => Addressing::Filter("mail".into()),
            MatchAttribute::SamAccountName => Addressing::Filter("onPremisesSamAccountName".into()),
            MatchAttribute::EmployeeNumber => {
                return Err(cfg(
                    "Graph users have no employeeNumber; match on employeeId, mail, upn or id"
                        .into(),
                ))
            }
            MatchAttribute::Other(p)
                if !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Addressing::Filter(p.clone())
            }
            MatchAttribute::Other(p) => {
                return Err(cfg(format!("{p:?} is not a Graph user property name")))
            }
        };
        let insecure = self.allow_insecure_http;
        let url = |u: &str, what: &str| -> Result<String> {
            let u = u.trim().trim_end_matches('/');
            http::check_url(u, insecure).map_err(|why| cfg(format!("the {what} URL {why}")))?;
            Ok(u.to_owned())
        };
        let graph_root = url(
            self.graph_url.as_deref().unwrap_or(self.cloud.graph_url()),
            "Graph",
        )?;
        let login_root = url(
            self.login_url.as_deref().unwrap_or(self.cloud.login_url()),
            "login",
        )?;
        let scope = self
            .scope
            .clone()
            .unwrap_or_else(|| format!("{}/.default", self.cloud.graph_url()));
        let token_url = format!(
            "{login_root}/{}/oauth2/v2.0/token",
            utf8_percent_encode(self.tenant.trim(), PATH)
        );
        let ca = match &self.ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| {
                cfg(format!(
                    "cannot read the Graph CA file {}: {e}",
                    p.display()
                ))
            })?),
            None => None,
        };
        let client = http::Http::new(self.connect_timeout, self.request_timeout, ca.as_deref())
            .map_err(|e| match &self.ca_file {
                Some(p) => cfg(format!("the Graph CA file {}: {e}", p.display())),
                None => cfg(format!("cannot build the HTTP client: {e}")),
            })?;
        let token = TokenSource::new(
            client.clone(),
            token_url,
            self.client_id.trim().to_owned(),
            scope,
            self.credential.clone(),
            self.name.clone(),
        );
        Ok(GraphSink {
            inner: Arc::new(Inner {
                http: client,
                api: format!("{graph_root}/v1.0"),
                token,
                sem: Semaphore::new(self.max_in_flight),
                max_in_flight: self.max_in_flight,
                addressing,
                resolved: Mutex::new(HashMap::new()),
                seen_etag: Mutex::new(HashMap::new()),
                max_bytes: self.max_bytes,
                name: self.name,
                default_profile: self.default_profile,
                confirm_uploads: self.confirm_uploads,
            }),
        })
    }
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
            .finish_non_exhaustive()
    }
}

impl GraphSink {
    /// A builder for `tenant` (GUID or domain) and the app `client_id`, with a credential: a
    /// [`Secret`](crate::Secret) or a [`GraphCertificate`].
    pub fn builder(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        credential: impl Into<GraphCredential>,
    ) -> GraphSinkBuilder {
        GraphSinkBuilder {
            tenant: tenant.into(),
            client_id: client_id.into(),
            credential: credential.into(),
            cloud: GraphCloud::Global,
            graph_url: None,
            login_url: None,
            scope: None,
            match_attribute: MatchAttribute::UserPrincipalName,
            max_in_flight: GRAPH_DEFAULT_MAX_IN_FLIGHT,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(100),
            max_bytes: GRAPH_MAX_BYTES,
            name: "graph".into(),
            default_profile: BuiltinProfile::Graph,
            confirm_uploads: false,
            ca_file: None,
            allow_insecure_http: false,
        }
    }

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

    /// One Graph request: the token, a slot, a fresh `client-request-id`; on 401 the token
    /// is refreshed once and the request sent once more.
    async fn send(
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

    /// The URL of `/users/{key}` (with `suffix`) for `key`, resolving it first when keys are
    /// found with `$filter`.
    async fn user_url(&self, key: &UserKey, op: &'static str, suffix: &str) -> Result<String> {
        let seg = match &self.inner.addressing {
            Addressing::Path => path_segment(key.as_str()),
            Addressing::Filter(prop) => {
                let cached = self.cached(key);
                let r = match cached {
                    Some(r) => r,
                    None => {
                        self.lookup(prop, std::slice::from_ref(key))
                            .await
                            .map_err(|e| self.ctx(e, op, key))?;
                        self.cached(key).unwrap_or(Resolved::Absent)
                    }
                };
                match r {
                    Resolved::Id(id) => path_segment(&id),
                    Resolved::Absent => {
                        return Err(self.err(
                            ErrorKind::UserNotFound,
                            op,
                            key,
                            format!("no Graph user has {prop} {:?}", key.as_str()),
                        ))
                    }
                    Resolved::Ambiguous(ids) => {
                        return Err(self.err(
                            ErrorKind::AmbiguousMatch,
                            op,
                            key,
                            format!(
                                "{} Graph users have {prop} {:?}: {}",
                                ids.len(),
                                key.as_str(),
                                ids.join(", ")
                            ),
                        ))
                    }
                }
            }
        };
        Ok(format!("{}/{seg}{suffix}", self.inner.api))
    }

    fn cached(&self, key: &UserKey) -> Option<Resolved> {
        lock(&self.inner.resolved).get(key.folded()).cloned()
    }

    /// Finds `keys` by `prop` in one `$filter` request (at most [`LOOKUP_CHUNK`] keys) and
    /// caches what it finds, absent and ambiguous keys included.
    async fn lookup(&self, prop: &str, keys: &[UserKey]) -> Result<()> {
        let values: Vec<String> = keys
            .iter()
            .map(|k| format!("'{}'", k.as_str().replace('\'', "''")))
            .collect();
        let filter = if values.len() == 1 {
            format!("{prop} eq {}", values[0])
        } else {
            format!("{prop} in ({})", values.join(","))
        };
        let url = format!(
            "{}/users?$filter={}&$select=id,{prop}",
            self.inner.api,
            utf8_percent_encode(&filter, QUERY)
        );
        let a = self
            .send(hyper::Method::GET, &url, None, Limits::JSON)
            .await?;
        if !a.is_success() {
            return Err(a.to_error(Call::Lookup));
        }
        let v: serde_json::Value = serde_json::from_slice(&a.body).map_err(|e| {
            Error::new(
                ErrorKind::InvalidData,
                format!("Graph's user list is not JSON: {e}"),
            )
        })?;
        let mut found: HashMap<String, Vec<String>> = HashMap::new();
        for u in v
            .get("value")
            .and_then(|x| x.as_array())
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(val)) = (
                u.get("id").and_then(|x| x.as_str()),
                u.get(prop).and_then(|x| x.as_str()),
            ) else {
                continue;
            };
            found
                .entry(UserKey::new(val).folded().to_owned())
                .or_default()
                .push(id.to_owned());
        }
        // A next page would only happen with more than 100 matches for 15 keys: ambiguous
        // anyway; the keys already seen are ambiguous or found, the rest absent.
        let mut cache = lock(&self.inner.resolved);
        for k in keys {
            let r = match found.remove(k.folded()) {
                None => Resolved::Absent,
                Some(mut ids) if ids.len() == 1 => Resolved::Id(ids.remove(0)),
                Some(ids) => Resolved::Ambiguous(ids),
            };
            cache.insert(k.folded().to_owned(), r);
        }
        Ok(())
    }

    /// A 404 from a photo endpoint: "no photo" (`Ok(())`) or "no such user".
    /// `ImageNotFound` means no photo; any other code (Graph has been seen to answer
    /// `ErrorEntityNotFound` for both, contract 1.3) is settled by looking the user up.
    async fn not_found(&self, a: &Answer, key: &UserKey, op: &'static str) -> Result<()> {
        let code = a.error_body().code.unwrap_or_default();
        if code.eq_ignore_ascii_case("ImageNotFound") {
            return Ok(());
        }
        self.confirm_user(key, op, a).await
    }

    /// `GET /users/{key}?$select=id`: `Ok` when the user exists, else `UserNotFound`.
    async fn confirm_user(&self, key: &UserKey, op: &'static str, first: &Answer) -> Result<()> {
        let url = self.user_url(key, op, "?$select=id").await?;
        let a = self
            .send(hyper::Method::GET, &url, None, Limits::JSON)
            .await
            .map_err(|e| self.ctx(e, op, key))?;
        match a.status {
            200..=299 => Ok(()),
            404 => {
                if let Addressing::Filter(_) = self.inner.addressing {
                    lock(&self.inner.resolved).insert(key.folded().to_owned(), Resolved::Absent);
                }
                Err(self.err(
                    ErrorKind::UserNotFound,
                    op,
                    key,
                    format!("no such Graph user: {}", first.describe()),
                ))
            }
            // Without the right to read users the code must do: only `ImageNotFound` is
            // known to mean "no photo".
            403 => Err(self.err(
                ErrorKind::UserNotFound,
                op,
                key,
                format!("Graph answered {}", first.describe()),
            )),
            _ => Err(self.ctx(a.to_error(Call::Lookup), op, key)),
        }
    }

    /// Reads `@odata.mediaEtag`: `Ok(None)` when the user has no photo.
    async fn read_etag(&self, key: &UserKey, op: &'static str) -> Result<Option<String>> {
        let url = self.user_url(key, op, "/photo").await?;
        let a = self
            .send(hyper::Method::GET, &url, None, Limits::JSON)
            .await
            .map_err(|e| self.ctx(e, op, key))?;
        if a.is_success() {
            let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
            let etag = v
                .get("@odata.mediaEtag")
                .and_then(|x| x.as_str())
                .unwrap_or("");
            let placeholder = v
                .get("@odata.mediaContentType")
                .and_then(|x| x.as_str())
                .is_some_and(|t| t.eq_ignore_ascii_case("image/gif"))
                && v.get("width").and_then(|x| x.as_u64()) == Some(1);
            // The documented 1x1 placeholder (empty etag) means no photo (contract 1.3).
            if etag.is_empty() || placeholder {
                return Ok(None);
            }
            return Ok(Some(etag.to_owned()));
        }
        match a.mapped(Call::ReadPhoto) {
            Mapped::NotFound => self.not_found(&a, key, op).await.map(|()| None),
            Mapped::Error { .. } => Err(self.ctx(a.to_error(Call::ReadPhoto), op, key)),
        }
    }

    /// The etag after our upload: one read, waiting out `Retry-After` (at most 3 reads)
    /// and a read-your-write delay (the etag from before the upload) for up to ~3.5 s.
    async fn etag_after_put(&self, key: &UserKey, before: Option<String>) -> Option<String> {
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
}

/// `/users/{key}` for an id or UPN: percent-encoded; a key starting with `$` in the
/// `users('…')` form (contract 1.1), which the caller's `/users/` prefix is dropped for.
fn path_segment(key: &str) -> String {
    if key.starts_with('$') {
        format!(
            "users('{}')",
            utf8_percent_encode(&key.replace('\'', "''"), PATH)
        )
    } else {
        format!("users/{}", utf8_percent_encode(key, PATH))
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
        let etag = self.read_etag(key, "current").await?;
        let mut seen = lock(&self.inner.seen_etag);
        match &etag {
            Some(e) => seen.insert(key.folded().to_owned(), e.clone()),
            None => seen.remove(key.folded()),
        };
        Ok(etag.map(CurrentPhoto::from_version))
    }

    /// `PUT …/photo/$value`; with [`confirm_uploads`](GraphSinkBuilder::confirm_uploads), then
    /// the new etag (see the module docs).
    async fn put(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>> {
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
                Mapped::Error { .. } => Err(self.ctx(a.to_error(Call::PutPhoto), "put", key)),
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

    /// `DELETE …/photo/$value`; `Ok` when there was no photo.
    async fn delete(&self, key: &UserKey) -> Result<()> {
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
            Mapped::Error { .. } => Err(self.ctx(a.to_error(Call::DeletePhoto), "delete", key)),
        }
    }

    /// `GET …/photo/$value`: the stored bytes (Graph's re-encoding), for backups.
    async fn fetch(&self, key: &UserKey) -> Result<Option<Bytes>> {
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

    /// With a `$filter` match attribute: finds the keys not yet known, 15 per request,
    /// requests in flight up to the sink's limit. Keys that are ids or UPNs need no lookup.
    /// Only run-level failures (credentials, rights, a property Graph cannot filter on) are
    /// errors; others leave the keys to be looked up one by one later.
    async fn prefetch(&self, keys: &[UserKey]) -> Result<()> {
        let Addressing::Filter(prop) = &self.inner.addressing else {
            return Ok(());
        };
        let todo: Vec<UserKey> = {
            let cache = lock(&self.inner.resolved);
            let mut seen = std::collections::HashSet::new();
            keys.iter()
                .filter(|k| !k.is_empty() && !cache.contains_key(k.folded()))
                .filter(|k| seen.insert(k.folded().to_owned()))
                .cloned()
                .collect()
        };
        let results = futures::future::join_all(
            todo.chunks(LOOKUP_CHUNK)
                .map(|chunk| self.lookup(prop, chunk)),
        )
        .await;
        for r in results {
            if let Err(e) = r {
                if e.is_run_level() {
                    return Err(e
                        .with_backend(self.inner.name.clone())
                        .with_operation("prefetch"));
                }
            }
        }
        Ok(())
    }

    // `users_with_photos` keeps the default (Unsupported): Graph cannot filter users on
    // having a photo, so listing them would take one photo request per user in the tenant
    // (100k users at 4 in flight is hours). Leavers are found from a source listing instead.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments() {
        assert_eq!(path_segment("alice@contoso.com"), "users/alice@contoso.com");
        assert_eq!(
            path_segment("bob_fabrikam.com#EXT#@contoso.onmicrosoft.com"),
            "users/bob_fabrikam.com%23EXT%23@contoso.onmicrosoft.com"
        );
        assert_eq!(
            path_segment("$admin@contoso.com"),
            "users('$admin@contoso.com')"
        );
        assert_eq!(
            path_segment("$o'brien@contoso.com"),
            "users('$o''brien@contoso.com')"
        );
        assert_eq!(path_segment("a/b?c d%"), "users/a%2Fb%3Fc%20d%25");
    }

    #[test]
    fn build_checks() {
        let b = || GraphSink::builder("t", "c", crate::Secret::new("x"));
        assert_eq!(
            b().match_attribute(MatchAttribute::EmployeeNumber)
                .build()
                .unwrap_err()
                .kind(),
            ErrorKind::Config
        );
        assert_eq!(
            b().graph_url("ftp://x").build().unwrap_err().kind(),
            ErrorKind::Config
        );
        assert_eq!(
            GraphSink::builder("", "c", crate::Secret::new("x"))
                .build()
                .unwrap_err()
                .kind(),
            ErrorKind::Config
        );
        let s = b().cloud(GraphCloud::China).build().unwrap();
        assert_eq!(s.inner.api, "https://microsoftgraph.chinacloudapi.cn/v1.0");
        assert_eq!(
            s.inner.token.token_url,
            "https://login.chinacloudapi.cn/t/oauth2/v2.0/token"
        );
        assert_eq!(
            s.inner.token.scope,
            "https://microsoftgraph.chinacloudapi.cn/.default"
        );
        assert!(!s.capabilities().returns_bytes);
        assert_eq!(s.capabilities().max_bytes, 4_000_000);
    }
}
