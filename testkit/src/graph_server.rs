//! A local fake of Microsoft Graph v1.0 (user photos, user lookup, JSON batching) and of the
//! Microsoft identity platform token endpoint (client credentials), built to the contract in
//! `shared/reference/graph-contract.md`, for tests of the Graph sink.
//!
//! Use it as `userphoto_testkit::graph_server` (a dev-dependency) and start one server
//! per test with [`GraphServer::start`]. Clients add `/v1.0/...` to [`GraphServer::base_url`] and
//! `/{tenant}/oauth2/v2.0/token` to [`GraphServer::login_url`]. Every request is recorded
//! ([`RequestRecord`]) so tests can check waits after `Retry-After`, the concurrency the client
//! used and how often it fetched tokens.
//!
//! The managed identity endpoints of Azure resources (App Service's `/msi/token`, Azure Arc's
//! challenge, the instance metadata service) and federated credentials for workload identity
//! are in `graph_server/identity.rs` ([`GraphServer::enable_managed_identity`],
//! [`GraphServer::add_federated_credential`], [`TestIssuer`]).
//!
//! Where the contract leaves a behaviour open, the choice made here is named in the doc comment
//! of the item that implements it (search for "Contract choice").
#![allow(dead_code)]
// The internal `Reply` is the error type of a few helpers; boxing it buys nothing in a test fake.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::sha2::{Digest, Sha256};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use serde_json::{json, Map, Value};

// Managed identity endpoints and federated credentials (graph_server/identity.rs).
mod identity;
pub use identity::{
    FederatedCredential, IdentityAnswer, ManagedIdentityConfig, TestIssuer, TOKEN_EXCHANGE_AUDIENCE,
};

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/// Tenant id of [`GraphServerConfig::default`].
pub const DEFAULT_TENANT_ID: &str = "8d3c6a51-2f4b-4e7a-9c1d-5b0e7f2a6c94";
/// Tenant domain of [`GraphServerConfig::default`] (accepted in the token URL like the id).
pub const DEFAULT_TENANT_DOMAIN: &str = "contoso.onmicrosoft.com";
/// Client id of the app that [`GraphServerConfig::default`] registers.
pub const DEFAULT_CLIENT_ID: &str = "3f9e2c1a-7b4d-4c8e-a1f6-0d2b5e9c7a13";
/// Client secret of that app.
pub const DEFAULT_CLIENT_SECRET: &str = "fake~Secret.Value_0123456789abcdef";
/// The Graph resource (the part before `/.default` in `scope`).
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// Microsoft Graph's well-known application id, also accepted as `{id}/.default`.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// `client_assertion_type` of a certificate (or federated) credential.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Contract choice: "4 MB" is read as 4,000,000 bytes (domain.md: MB vs MiB is unstated, stay at
/// or below 4,000,000), so a client that only respects 4 MiB is caught. Configurable.
pub const MAX_PHOTO_BYTES: usize = 4_000_000;
/// The square sizes Graph serves (`/photos`).
pub const STANDARD_SIZES: [u32; 9] = [48, 64, 96, 120, 240, 360, 432, 504, 648];
/// App roles an app gets unless told otherwise: least privilege for writing photos and finding
/// users by attribute.
pub const DEFAULT_APP_ROLES: [&str; 2] = ["ProfilePhoto.ReadWrite.All", "User.Read.All"];
/// Roles any one of which allows writing or deleting a user's photo (contract 1.6).
pub const PHOTO_WRITE_ROLES: [&str; 2] = ["ProfilePhoto.ReadWrite.All", "User.ReadWrite.All"];
/// Roles any one of which allows reading a user's photo (contract 1.6).
pub const PHOTO_READ_ROLES: [&str; 4] = [
    "ProfilePhoto.Read.All",
    "ProfilePhoto.ReadWrite.All",
    "User.Read.All",
    "User.ReadWrite.All",
];
/// Roles any one of which allows reading users (`/users`, `/users/{id}`).
pub const DIRECTORY_READ_ROLES: [&str; 5] = [
    "User.Read.All",
    "User.ReadWrite.All",
    "User.ReadBasic.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// Content type of Graph's JSON success bodies (clients must accept the parameters).
pub const ODATA_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

const MAX_BODY: usize = 64 * 1024 * 1024;

/// The Graph `error.code` values the fake emits (table-driven, contract 1.8). Clients should
/// branch on the status and, at most, on these codes, never on messages.
pub mod codes {
    /// 401: missing, unknown, revoked or expired bearer token.
    pub const INVALID_AUTHENTICATION_TOKEN: &str = "InvalidAuthenticationToken";
    /// 404: the user exists but has no photo (and `DELETE` of an absent photo).
    pub const IMAGE_NOT_FOUND: &str = "ImageNotFound";
    /// 404: a photo endpoint addressed a user that does not exist. Contract choice: the
    /// contract says both codes are seen for both cases; the fake keeps them apart.
    pub const ENTITY_NOT_FOUND: &str = "ErrorEntityNotFound";
    /// 404: `/users/{id}` (not a photo endpoint) for a user that does not exist.
    pub const RESOURCE_NOT_FOUND: &str = "Request_ResourceNotFound";
    /// 429 (every kind: throttle knob, injected, concurrency limit).
    pub const TOO_MANY_REQUESTS: &str = "TooManyRequests";
    /// 403 on a photo endpoint without a photo role, or when cloud updates are disabled.
    pub const ACCESS_DENIED: &str = "ErrorAccessDenied";
    /// 403 on a directory endpoint without a directory role.
    pub const AUTHORIZATION_REQUEST_DENIED: &str = "Authorization_RequestDenied";
    /// 413: photo over the limit, or batch body over its limit. Contract choice: the real
    /// code is undocumented.
    pub const REQUEST_ENTITY_TOO_LARGE: &str = "RequestEntityTooLarge";
    /// 400: malformed request, bad image, bad batch, unknown segment.
    pub const BAD_REQUEST: &str = "BadRequest";
    /// 400: a `$filter` the fake (or Graph) does not support.
    pub const UNSUPPORTED_QUERY: &str = "Request_UnsupportedQuery";
    /// 400: image narrower than `min_photo_width`.
    pub const WIDTH_TOO_SMALL: &str = "ValidationWidthTooSmall";
    /// 405: wrong method, or `DELETE` in `delete_not_supported` (pre-Nov-2023) mode.
    pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
    /// 424: batch item whose dependency failed.
    pub const FAILED_DEPENDENCY: &str = "FailedDependency";
    /// 500 (injected).
    pub const INTERNAL_SERVER_ERROR: &str = "ErrorStoreInternalServerError";
    /// 503 (throttle knob or injected).
    pub const SERVICE_UNAVAILABLE: &str = "serviceNotAvailable";
    /// 504 (throttle knob or injected).
    pub const GATEWAY_TIMEOUT: &str = "UnknownError";
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Everything the fake does, set before [`GraphServer::start`] and changeable later through
/// [`GraphServer::configure`] (except `users`, which only seed the directory at start).
#[derive(Clone, Debug)]
pub struct GraphServerConfig {
    /// The tenant's GUID.
    pub tenant_id: String,
    /// Domain names that address the same tenant in the token URL.
    pub tenant_domains: Vec<String>,
    /// `scope` must be `{graph_resource}/.default` (or `00000003-…/.default`).
    pub graph_resource: String,
    /// Registered apps (client credentials).
    pub apps: Vec<AppRegistration>,
    /// The directory at start.
    pub users: Vec<UserSeed>,
    /// `expires_in` of issued tokens; the token stops working after exactly this long.
    pub token_lifetime: Duration,
    /// At most this many Graph operations of one app at once; the next gets 429. `None`: no limit.
    pub max_concurrent_per_app: Option<usize>,
    /// `Retry-After` of a 429 caused by the concurrency limit.
    pub concurrency_retry_after: RetryAfter,
    /// Time each admitted Graph operation takes, spent while holding its concurrency slot.
    pub latency: Duration,
    /// Every Nth Graph operation fails this way.
    pub throttle: Option<Throttle>,
    /// Larger photo bodies get 413.
    pub max_photo_bytes: usize,
    /// Larger batches get 400 (Graph: 20).
    pub max_batch_requests: usize,
    /// Larger batch bodies get 413. Contract choice: the contract infers a 4 MB limit on the
    /// whole REST request (inferred), so base64 photos in a batch must total about 3 MB.
    pub max_batch_body_bytes: usize,
    /// Batch items without pending dependencies run this many at a time (Outlook: 4).
    pub batch_parallelism: usize,
    /// Require the app roles of contract 1.6; 403 otherwise.
    pub enforce_roles: bool,
    /// Contract choice: off by default, as the real service is lenient about `Content-Type`
    /// (the record keeps the header and the detected type so tests can compare). On: uploads
    /// must say `image/jpeg` or `image/png`, matching the bytes, or get 400.
    pub strict_content_type: bool,
    /// Narrower uploads get 400 `ValidationWidthTooSmall` (the real floor is undocumented).
    pub min_photo_width: Option<u32>,
    /// After each upload or delete, this many metadata reads still show the previous photo
    /// (read-your-write delay, contract 1.9).
    pub stale_metadata_reads: u32,
    /// No photo: `GET /photo` answers the documented 200 1x1 GIF placeholder instead of 404.
    pub legacy_placeholder: bool,
    /// `DELETE …/photo/$value` answers 405 as before Nov 2023.
    pub delete_not_supported: bool,
    /// Hybrid `photoUpdateSettings.source = onPremises`: photo writes get 403.
    pub cloud_updates_disabled: bool,
    /// Users (ids or UPNs, case-insensitive) whose photo may not be written or deleted: a
    /// `PUT` or `DELETE` of their photo gets 403 `ErrorAccessDenied`, as when
    /// `photoUpdateSettings.allowedRoles` or a policy keeps the app off some accounts. Reads
    /// still work. Contract choice: the real code for a per-user refusal is undocumented;
    /// [`Self::denied_code`] picks it.
    pub photo_write_denied: Vec<String>,
    /// The `error.code` of a [`Self::photo_write_denied`] refusal (default
    /// `ErrorAccessDenied`; `Authorization_RequestDenied` is seen too).
    pub denied_code: String,
    /// Clock skew allowed on a client assertion's `exp` and `nbf`.
    pub assertion_clock_skew: Duration,
    /// Issue opaque tokens (`fakegraph.<hex>`) instead of the RS256-signed JWTs that Entra
    /// issues (for clients that must cope with a token they cannot read). Default `false`.
    pub opaque_tokens: bool,
}

impl Default for GraphServerConfig {
    fn default() -> Self {
        Self {
            tenant_id: DEFAULT_TENANT_ID.to_string(),
            tenant_domains: vec![DEFAULT_TENANT_DOMAIN.to_string()],
            graph_resource: GRAPH_RESOURCE.to_string(),
            apps: vec![AppRegistration::with_secret(
                DEFAULT_CLIENT_ID,
                DEFAULT_CLIENT_SECRET,
            )],
            users: Vec::new(),
            token_lifetime: Duration::from_secs(3599),
            max_concurrent_per_app: Some(4),
            concurrency_retry_after: RetryAfter::Seconds(1),
            latency: Duration::ZERO,
            throttle: None,
            max_photo_bytes: MAX_PHOTO_BYTES,
            max_batch_requests: 20,
            max_batch_body_bytes: 4_000_000,
            batch_parallelism: 4,
            enforce_roles: true,
            strict_content_type: false,
            min_photo_width: None,
            stale_metadata_reads: 0,
            legacy_placeholder: false,
            delete_not_supported: false,
            cloud_updates_disabled: false,
            photo_write_denied: Vec::new(),
            denied_code: codes::ACCESS_DENIED.to_string(),
            assertion_clock_skew: Duration::from_secs(5),
            opaque_tokens: false,
        }
    }
}

impl GraphServerConfig {
    /// Adds a user to the initial directory.
    pub fn with_user(mut self, user: UserSeed) -> Self {
        self.users.push(user);
        self
    }

    /// Adds users to the initial directory.
    pub fn with_users(mut self, users: impl IntoIterator<Item = UserSeed>) -> Self {
        self.users.extend(users);
        self
    }

    /// Registers another app.
    pub fn with_app(mut self, app: AppRegistration) -> Self {
        self.apps.push(app);
        self
    }

    /// Grants these app roles (instead of [`DEFAULT_APP_ROLES`]) to every app registered so
    /// far; they appear in the `roles` claim of its tokens (none: no `roles` claim at all,
    /// as Entra omits it).
    pub fn with_app_roles(mut self, roles: &[&str]) -> Self {
        for a in &mut self.apps {
            a.roles = roles.iter().map(|r| r.to_string()).collect();
        }
        self
    }

    /// Issues opaque tokens instead of JWTs ([`Self::opaque_tokens`]).
    pub fn with_opaque_tokens(mut self) -> Self {
        self.opaque_tokens = true;
        self
    }
}

/// An app registration: its credentials and the application permissions (app roles) granted.
#[derive(Clone, Debug)]
pub struct AppRegistration {
    /// The application (client) id.
    pub client_id: String,
    /// The client secret, if it has one.
    pub client_secret: Option<String>,
    /// Uploaded certificates (public parts).
    pub certificates: Vec<RegisteredCertificate>,
    /// Granted app roles, copied into each token at issue time.
    pub roles: Vec<String>,
}

impl AppRegistration {
    /// An app with a secret and [`DEFAULT_APP_ROLES`].
    pub fn with_secret(client_id: &str, secret: &str) -> Self {
        Self {
            client_id: client_id.to_string(),
            client_secret: Some(secret.to_string()),
            certificates: Vec::new(),
            roles: DEFAULT_APP_ROLES.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// An app with one certificate and [`DEFAULT_APP_ROLES`].
    pub fn with_certificate(client_id: &str, cert: &TestCertificate) -> Self {
        Self {
            client_id: client_id.to_string(),
            client_secret: None,
            certificates: vec![cert.registered()],
            roles: DEFAULT_APP_ROLES.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// Adds a certificate.
    pub fn certificate(mut self, cert: &TestCertificate) -> Self {
        self.certificates.push(cert.registered());
        self
    }

    /// Replaces the granted roles.
    pub fn roles(mut self, roles: &[&str]) -> Self {
        self.roles = roles.iter().map(|r| r.to_string()).collect();
        self
    }
}

/// The public part of a certificate credential, as uploaded to an app registration.
#[derive(Clone, Debug)]
pub struct RegisteredCertificate {
    /// DER of the X.509 certificate.
    pub der: Vec<u8>,
    /// Its SubjectPublicKeyInfo as PEM (`-----BEGIN PUBLIC KEY-----`).
    pub public_key_pem: String,
    /// base64url(SHA-256(DER)), matched against the assertion header's `x5t#S256`.
    pub x5t_s256: String,
    /// base64url(SHA-1(DER)), matched against the legacy `x5t` header.
    pub x5t_sha1: Option<String>,
}

/// A user to seed the directory with.
#[derive(Clone, Debug)]
pub struct UserSeed {
    /// Object id (GUID).
    pub id: String,
    /// `userPrincipalName` (matched case-insensitively).
    pub user_principal_name: String,
    /// `employeeId`.
    pub employee_id: Option<String>,
    /// `mail`.
    pub mail: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// Photo bytes already stored.
    pub photo: Option<Vec<u8>>,
    /// Its `@odata.mediaEtag` (generated when `None`).
    pub photo_etag: Option<String>,
}

impl UserSeed {
    /// A user with an id and a UPN only.
    pub fn new(id: &str, upn: &str) -> Self {
        Self {
            id: id.to_string(),
            user_principal_name: upn.to_string(),
            employee_id: None,
            mail: None,
            display_name: None,
            photo: None,
            photo_etag: None,
        }
    }

    /// Sets `employeeId`.
    pub fn employee_id(mut self, v: &str) -> Self {
        self.employee_id = Some(v.to_string());
        self
    }

    /// Sets `mail`.
    pub fn mail(mut self, v: &str) -> Self {
        self.mail = Some(v.to_string());
        self
    }

    /// Sets `displayName`.
    pub fn display_name(mut self, v: &str) -> Self {
        self.display_name = Some(v.to_string());
        self
    }

    /// Gives the user a photo (etag generated).
    pub fn photo(mut self, bytes: Vec<u8>) -> Self {
        self.photo = Some(bytes);
        self
    }

    /// Gives the user a photo with a chosen etag (e.g. `"\"BA09D118\""`).
    pub fn photo_with_etag(mut self, bytes: Vec<u8>, etag: &str) -> Self {
        self.photo = Some(bytes);
        self.photo_etag = Some(etag.to_string());
        self
    }
}

/// How a `Retry-After` header is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <n>` (delta-seconds).
    Seconds(u64),
    /// `Retry-After: <HTTP-date>` at least this many seconds ahead (the date is rounded up to a
    /// whole second, so the wait it asks for is between n and n+1 seconds).
    HttpDate(u64),
    /// No `Retry-After` header.
    Absent,
}

/// A failure the fake answers instead of doing the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 429 `TooManyRequests` with the contract's body.
    TooManyRequests(RetryAfter),
    /// 503 `serviceNotAvailable`, optionally with `Retry-After`.
    ServiceUnavailable(RetryAfter),
    /// 504.
    GatewayTimeout,
    /// 500 `ErrorStoreInternalServerError` (transient).
    InternalServerError,
}

/// Every `every_nth` Graph operation (the 1st op is number 1) fails with `failure`.
/// Contract choice: operations are direct Graph requests and batch items; a `$batch` envelope
/// is not one, and neither are requests refused with 401 or by the concurrency limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// N.
    pub every_nth: u64,
    /// What the Nth request gets.
    pub failure: Failure,
}

impl Throttle {
    /// Every Nth operation gets 429 with `Retry-After: <seconds>`.
    pub fn every(n: u64, failure: Failure) -> Self {
        Self {
            every_nth: n,
            failure,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// What a recorded request was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// `POST /{tenant}/oauth2/v2.0/token`.
    Token,
    /// A direct request under `/v1.0` (other than `$batch`).
    Graph,
    /// A `POST /v1.0/$batch` envelope.
    Batch,
    /// One item of a batch (recorded separately from its envelope).
    BatchItem {
        /// `request-id` of the envelope.
        batch_request_id: String,
        /// The item's `id`.
        item_id: String,
    },
}

/// Why a request was answered by a failure knob instead of the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleCause {
    /// [`GraphServerConfig::throttle`] (every Nth).
    EveryNth,
    /// [`GraphServer::inject_failures`].
    Injected,
    /// [`GraphServerConfig::max_concurrent_per_app`].
    Concurrency,
}

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// Order of answering (1-based).
    pub seq: u64,
    /// Token, Graph, Batch or BatchItem.
    pub kind: RequestKind,
    /// When it arrived (for a batch item: when the item started).
    pub received_at: Instant,
    /// When its answer was ready.
    pub answered_at: Instant,
    /// `received_at` on the wall clock (for HTTP-date `Retry-After`).
    pub received_wall: SystemTime,
    /// `answered_at` on the wall clock.
    pub answered_wall: SystemTime,
    /// Upper-case method.
    pub method: String,
    /// Raw path as sent (still percent-encoded); for a batch item `/v1.0` + its `url` path.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Request headers, names lower-cased (a batch item: the item's `headers`).
    pub headers: Vec<(String, String)>,
    /// An `Authorization` header was sent (a batch item inherits its envelope's).
    pub authorization_present: bool,
    /// The `client-request-id` the client sent.
    pub client_request_id: Option<String>,
    /// The `request-id` the fake answered with.
    pub request_id: String,
    /// The app (client id) of the bearer token, or the `client_id` of a token request.
    pub app_id: Option<String>,
    /// The addressed user's object id, when the path named an existing user.
    pub user_id: Option<String>,
    /// Response status.
    pub status: u16,
    /// `error.code` (Graph) or `AADSTSnnn` (token endpoint) of an error answer.
    pub error_code: Option<String>,
    /// Request body length (a batch item: decoded body).
    pub request_body_len: usize,
    /// Response body length (a batch item: before base64).
    pub response_body_len: usize,
    /// Answered by a failure knob rather than by the operation.
    pub throttled: Option<ThrottleCause>,
    /// The `Retry-After` value sent.
    pub retry_after: Option<String>,
    /// Request `Content-Type`.
    pub content_type: Option<String>,
    /// For uploads: the image type the bytes really are (`image/jpeg`, `image/png`).
    pub detected_image: Option<&'static str>,
    /// Graph operations of any app in the fake, this one included, when it arrived.
    pub in_flight_at_arrival: Option<usize>,
}

impl RequestRecord {
    /// A request header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A Graph operation (direct or batch item), not a token request or batch envelope.
    pub fn is_operation(&self) -> bool {
        matches!(
            self.kind,
            RequestKind::Graph | RequestKind::BatchItem { .. }
        )
    }

    /// When the client may retry, from the `Retry-After` this answer carried.
    pub fn retry_not_before(&self) -> Option<SystemTime> {
        let v = self.retry_after.as_deref()?.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(self.answered_wall + Duration::from_secs(secs));
        }
        httpdate::parse_http_date(v).ok()
    }

    /// Time spent answering.
    pub fn duration(&self) -> Duration {
        self.answered_at.saturating_duration_since(self.received_at)
    }

    fn target_key(&self) -> String {
        match &self.user_id {
            Some(id) => id.to_ascii_lowercase(),
            None => format!("{} {}", self.method, self.path),
        }
    }
}

/// A request for a user that arrived before the `Retry-After` of an earlier answer for that
/// user had passed.
#[derive(Clone, Debug)]
pub struct RetryViolation {
    /// The 429/503 answer that carried `Retry-After`.
    pub throttled: RequestRecord,
    /// The first later request for the same user.
    pub retry: RequestRecord,
    /// When `retry` would have been allowed.
    pub not_before: SystemTime,
}

/// The largest number of records whose `[received_at, answered_at)` intervals overlap: an
/// independent measure of concurrency, computed from the records alone.
pub fn max_overlap(records: &[RequestRecord]) -> usize {
    let mut events: Vec<(Instant, i32)> = Vec::with_capacity(records.len() * 2);
    for r in records {
        events.push((r.received_at, 1));
        events.push((r.answered_at, -1));
    }
    // At equal instants the end comes first, so touching intervals do not overlap.
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    max as usize
}

/// A snapshot of one directory user.
#[derive(Clone, Debug)]
pub struct UserSnapshot {
    /// Object id.
    pub id: String,
    /// `userPrincipalName`.
    pub user_principal_name: String,
    /// `employeeId`.
    pub employee_id: Option<String>,
    /// `mail`.
    pub mail: Option<String>,
    /// Stored photo bytes (exactly as uploaded).
    pub photo: Option<Vec<u8>>,
    /// Current `@odata.mediaEtag`.
    pub photo_etag: Option<String>,
    /// `@odata.mediaContentType` of the stored photo.
    pub photo_content_type: Option<String>,
    /// Pixel size of the stored photo, when it parses.
    pub photo_size: Option<(u32, u32)>,
    /// Successful uploads (PUT or PATCH, direct or batched).
    pub uploads: u64,
    /// Successful deletes.
    pub deletes: u64,
}

// ---------------------------------------------------------------------------------------------
// Internal state
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Photo {
    bytes: Arc<Vec<u8>>,
    etag: String,
    content_type: &'static str,
    size: Option<(u32, u32)>,
}

#[derive(Debug)]
struct UserEntry {
    id: String,
    upn: String,
    employee_id: Option<String>,
    mail: Option<String>,
    display_name: Option<String>,
    photo: Option<Photo>,
    /// What metadata reads still show, and for how many more reads.
    stale: Option<(Option<Photo>, u32)>,
    uploads: u64,
    deletes: u64,
}

#[derive(Clone, Debug)]
struct TokenInfo {
    app_id: String,
    roles: Vec<String>,
    expires_at: Instant,
}

struct ServerState {
    cfg: GraphServerConfig,
    users: Vec<UserEntry>,
    tokens: HashMap<String, TokenInfo>,
    records: Vec<RequestRecord>,
    next_seq: u64,
    ops: u64,
    injected: VecDeque<Failure>,
    in_flight: HashMap<String, usize>,
    raw_in_flight: usize,
    max_raw_in_flight: usize,
    max_admitted: usize,
    etag_counter: u64,
    tokens_issued: u64,
    assertion_jtis: Vec<String>,
    identity: identity::IdentityState,
}

impl ServerState {
    fn new_etag(&mut self, bytes: &[u8], previous: Option<&str>) -> String {
        loop {
            self.etag_counter += 1;
            let mut h = Sha256::new();
            h.update(self.etag_counter.to_le_bytes());
            h.update(bytes);
            let d = h.finalize();
            let etag = format!("\"{:02X}{:02X}{:02X}{:02X}\"", d[0], d[1], d[2], d[3]);
            if previous != Some(etag.as_str()) {
                return etag;
            }
        }
    }

    fn find_user(&self, key: &str) -> Option<usize> {
        let lower = key.to_lowercase();
        self.users
            .iter()
            .position(|u| u.id.to_lowercase() == lower || u.upn.to_lowercase() == lower)
    }
}

struct Inner {
    base_url: String,
    started: Instant,
    state: Mutex<ServerState>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, op: &Op, corr: &Corr, reply: &Reply) {
        let answered_at = Instant::now();
        let answered_wall = SystemTime::now();
        let mut st = self.lock();
        st.next_seq += 1;
        let rec = RequestRecord {
            seq: st.next_seq,
            kind: op.kind.clone(),
            received_at: op.received_at,
            answered_at,
            received_wall: op.received_wall,
            answered_wall,
            method: op.method.clone(),
            path: op.path.clone(),
            query: op.query.clone(),
            headers: op.headers.clone(),
            authorization_present: op.authorization_present,
            client_request_id: corr.sent.clone(),
            request_id: corr.request_id.clone(),
            app_id: reply.app_id.clone(),
            user_id: reply.user_id.clone(),
            status: reply.status,
            error_code: reply.error_code.clone(),
            request_body_len: op.body.len(),
            response_body_len: reply.payload.len(),
            throttled: reply.throttled,
            retry_after: reply.retry_after.clone(),
            content_type: op.header("content-type").map(str::to_string),
            detected_image: reply.detected_image,
            in_flight_at_arrival: reply.in_flight_at_arrival,
        };
        st.records.push(rec);
    }
}

/// A request (direct or batch item) as the handlers see it.
#[derive(Clone, Debug)]
struct Op {
    kind: RequestKind,
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    authorization_present: bool,
    received_at: Instant,
    received_wall: SystemTime,
}

impl Op {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Correlation ids of one answer.
#[derive(Clone, Debug)]
struct Corr {
    request_id: String,
    /// What `client-request-id` echoes: the client's value, or `request_id` when none was sent.
    client_request_id: String,
    sent: Option<String>,
}

impl Corr {
    fn new(sent: Option<&str>) -> Self {
        let request_id = new_guid();
        Self {
            client_request_id: sent
                .map(str::to_string)
                .unwrap_or_else(|| request_id.clone()),
            request_id,
            sent: sent.map(str::to_string),
        }
    }
}

#[derive(Clone, Debug)]
enum Payload {
    Empty,
    Json(Value, &'static str),
    Bytes(Arc<Vec<u8>>, &'static str),
}

impl Payload {
    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Payload::Empty => Vec::new(),
            Payload::Json(v, _) => serde_json::to_vec(v).unwrap_or_default(),
            Payload::Bytes(b, _) => b.as_ref().clone(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Payload::Empty => 0,
            Payload::Json(v, _) => serde_json::to_vec(v).map(|v| v.len()).unwrap_or(0),
            Payload::Bytes(b, _) => b.len(),
        }
    }

    fn content_type(&self) -> Option<&'static str> {
        match self {
            Payload::Empty => None,
            Payload::Json(_, ct) | Payload::Bytes(_, ct) => Some(ct),
        }
    }
}

#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    payload: Payload,
    error_code: Option<String>,
    throttled: Option<ThrottleCause>,
    retry_after: Option<String>,
    app_id: Option<String>,
    user_id: Option<String>,
    detected_image: Option<&'static str>,
    in_flight_at_arrival: Option<usize>,
}

impl Reply {
    fn new(status: u16, payload: Payload) -> Self {
        Self {
            status,
            headers: Vec::new(),
            payload,
            error_code: None,
            throttled: None,
            retry_after: None,
            app_id: None,
            user_id: None,
            detected_image: None,
            in_flight_at_arrival: None,
        }
    }

    fn empty(status: u16) -> Self {
        Self::new(status, Payload::Empty)
    }

    fn odata(status: u16, v: Value) -> Self {
        Self::new(status, Payload::Json(v, ODATA_JSON))
    }

    fn header(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_string(), value));
        self
    }

    fn retry_after(mut self, ra: RetryAfter) -> Self {
        if let Some(v) = retry_after_value(ra) {
            self.retry_after = Some(v.clone());
            self.headers.push(("retry-after".to_string(), v));
        }
        self
    }
}

// ---------------------------------------------------------------------------------------------
// The server handle
// ---------------------------------------------------------------------------------------------

/// A running fake; it stops accepting connections when dropped.
pub struct GraphServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl GraphServer {
    /// Binds 127.0.0.1 on an ephemeral port and serves until dropped. Needs a Tokio runtime.
    pub async fn start(config: GraphServerConfig) -> Self {
        Self::start_on(config, None).await
    }

    /// Like [`Self::start`], over HTTPS with `cert` (see [`TestCa`]); [`Self::base_url`] is
    /// `https://{host}:{port}` (`host` should be a name `cert` is for, such as `localhost`,
    /// or another name for testing a name mismatch; it must resolve to 127.0.0.1).
    pub async fn start_tls(config: GraphServerConfig, cert: &ServerCert, host: &str) -> Self {
        Self::start_on(config, Some((cert, host))).await
    }

    async fn start_on(mut config: GraphServerConfig, tls: Option<(&ServerCert, &str)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Graph fake on 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let base_url = match tls {
            None => format!("http://{addr}"),
            Some((_, host)) => format!("https://{host}:{}", addr.port()),
        };
        let seeds = std::mem::take(&mut config.users);
        let mut state = ServerState {
            cfg: config,
            users: Vec::new(),
            tokens: HashMap::new(),
            records: Vec::new(),
            next_seq: 0,
            ops: 0,
            injected: VecDeque::new(),
            in_flight: HashMap::new(),
            raw_in_flight: 0,
            max_raw_in_flight: 0,
            max_admitted: 0,
            etag_counter: 0,
            tokens_issued: 0,
            assertion_jtis: Vec::new(),
            identity: Default::default(),
        };
        for seed in seeds {
            add_user(&mut state, seed);
        }
        let inner = Arc::new(Inner {
            base_url,
            started: Instant::now(),
            state: Mutex::new(state),
        });
        let app = Router::new().fallback(entry).with_state(inner.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        match tls {
            None => {
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.await;
                        })
                        .await;
                });
            }
            Some((cert, _)) => {
                let listener = TlsListener {
                    tcp: listener,
                    acceptor: cert.acceptor(),
                };
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.await;
                        })
                        .await;
                });
            }
        }
        Self {
            inner,
            addr,
            shutdown: Some(tx),
        }
    }

    /// Service root, e.g. `http://127.0.0.1:PORT` (clients add `/v1.0/...`).
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// Authority root (clients add `/{tenant}/oauth2/v2.0/token`); the same listener.
    pub fn login_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// `base_url() + "/v1.0" + path` (`path` starts with `/`).
    pub fn graph_url(&self, path: &str) -> String {
        format!("{}/v1.0{path}", self.inner.base_url)
    }

    /// The token endpoint for the tenant id; also the `aud` a client assertion must carry.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.inner.base_url,
            self.tenant_id()
        )
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> String {
        self.inner.lock().cfg.tenant_id.clone()
    }

    /// The first registered app's client id.
    pub fn client_id(&self) -> String {
        self.inner
            .lock()
            .cfg
            .apps
            .first()
            .map(|a| a.client_id.clone())
            .expect("no app registered")
    }

    /// The first registered app's secret.
    pub fn client_secret(&self) -> Option<String> {
        self.inner
            .lock()
            .cfg
            .apps
            .first()
            .and_then(|a| a.client_secret.clone())
    }

    /// The `scope` a token request must send: `{graph_resource}/.default`.
    pub fn scope(&self) -> String {
        format!(
            "{}/.default",
            self.inner.lock().cfg.graph_resource.trim_end_matches('/')
        )
    }

    /// Issues a token for a registered app without going through the token endpoint (not
    /// recorded, not counted in [`Self::tokens_issued`]): an RS256 JWT with the app's roles
    /// (see [`token_signer`]), or an opaque string under
    /// [`GraphServerConfig::opaque_tokens`].
    pub fn mint_token(&self, client_id: &str) -> String {
        let mut st = self.inner.lock();
        let app = st
            .cfg
            .apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
            .cloned()
            .expect("mint_token: unknown app");
        issue_token(&mut st, &app)
    }

    /// Every issued token expires now (the next Graph call with one gets 401 "expired").
    pub fn expire_all_tokens(&self) {
        let now = Instant::now();
        for t in self.inner.lock().tokens.values_mut() {
            t.expires_at = now;
        }
    }

    /// Every issued token is forgotten (the next Graph call with one gets 401 "invalid").
    pub fn revoke_all_tokens(&self) {
        self.inner.lock().tokens.clear();
    }

    /// Changes the configuration while running (`users` is ignored: use [`Self::add_user`]).
    pub fn configure(&self, f: impl FnOnce(&mut GraphServerConfig)) {
        f(&mut self.inner.lock().cfg);
    }

    /// Sets the per-operation latency.
    pub fn set_latency(&self, latency: Duration) {
        self.configure(|c| c.latency = latency);
    }

    /// Sets or clears the every-Nth failure (the operation counter keeps running).
    pub fn set_throttle(&self, throttle: Option<Throttle>) {
        self.configure(|c| c.throttle = throttle);
    }

    /// Sets the per-app concurrency limit.
    pub fn set_max_concurrent_per_app(&self, n: Option<usize>) {
        self.configure(|c| c.max_concurrent_per_app = n);
    }

    /// The next Graph operations (after authentication and admission) fail with these, in order.
    pub fn inject_failures(&self, failures: impl IntoIterator<Item = Failure>) {
        self.inner.lock().injected.extend(failures);
    }

    /// Adds a user to the directory.
    pub fn add_user(&self, user: UserSeed) {
        add_user(&mut self.inner.lock(), user);
    }

    /// Replaces a user's photo (id or UPN, case-insensitive) the way another client would (the
    /// user in Outlook or Teams, an admin), without a request: a new `@odata.mediaEtag`, no
    /// read-your-write delay, not counted in [`UserSnapshot::uploads`]. Returns the new etag,
    /// or `None` for an unknown user.
    pub fn set_photo(&self, key: &str, bytes: Vec<u8>) -> Option<String> {
        let mut st = self.inner.lock();
        let idx = st.find_user(key)?;
        let previous = st.users[idx].photo.as_ref().map(|p| p.etag.clone());
        let etag = st.new_etag(&bytes, previous.as_deref());
        let content_type = detect_image(&bytes).unwrap_or("application/octet-stream");
        let size = image_size(&bytes);
        let user = &mut st.users[idx];
        user.photo = Some(Photo {
            bytes: Arc::new(bytes),
            etag: etag.clone(),
            content_type,
            size,
        });
        user.stale = None;
        Some(etag)
    }

    /// A user by id or UPN (case-insensitive).
    pub fn user(&self, key: &str) -> Option<UserSnapshot> {
        let st = self.inner.lock();
        let u = &st.users[st.find_user(key)?];
        Some(UserSnapshot {
            id: u.id.clone(),
            user_principal_name: u.upn.clone(),
            employee_id: u.employee_id.clone(),
            mail: u.mail.clone(),
            photo: u.photo.as_ref().map(|p| p.bytes.as_ref().clone()),
            photo_etag: u.photo.as_ref().map(|p| p.etag.clone()),
            photo_content_type: u.photo.as_ref().map(|p| p.content_type.to_string()),
            photo_size: u.photo.as_ref().and_then(|p| p.size),
            uploads: u.uploads,
            deletes: u.deletes,
        })
    }

    /// Every request answered so far, in answer order.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.inner.lock().records.clone()
    }

    /// Only Graph operations (direct requests and batch items).
    pub fn operation_records(&self) -> Vec<RequestRecord> {
        self.records()
            .into_iter()
            .filter(RequestRecord::is_operation)
            .collect()
    }

    /// Forgets the records (not the counters below).
    pub fn clear_records(&self) {
        self.inner.lock().records.clear();
    }

    /// Requests to the token endpoint, answered with success or error.
    pub fn token_request_count(&self) -> usize {
        self.inner
            .lock()
            .records
            .iter()
            .filter(|r| r.kind == RequestKind::Token)
            .count()
    }

    /// Tokens issued by the token endpoint.
    pub fn tokens_issued(&self) -> u64 {
        self.inner.lock().tokens_issued
    }

    /// The most Graph operations that were in the fake at once, counted on arrival, including
    /// those then refused by the concurrency limit: a client that never exceeds the limit
    /// keeps this at or below it.
    pub fn max_in_flight(&self) -> usize {
        self.inner.lock().max_raw_in_flight
    }

    /// The most operations of one app that held a concurrency slot at once.
    pub fn max_admitted_in_flight(&self) -> usize {
        self.inner.lock().max_admitted
    }

    /// Resets both maxima to the current counts.
    pub fn reset_max_in_flight(&self) {
        let mut st = self.inner.lock();
        st.max_raw_in_flight = st.raw_in_flight;
        st.max_admitted = st.in_flight.values().copied().max().unwrap_or(0);
    }

    /// Graph operations counted so far (the every-Nth counter).
    pub fn operation_count(&self) -> u64 {
        self.inner.lock().ops
    }

    /// `jti` values of every client assertion accepted.
    pub fn assertion_jtis(&self) -> Vec<String> {
        self.inner.lock().assertion_jtis.clone()
    }

    /// Requests for a user that came before the `Retry-After` of the previous 429/503 answer
    /// for that user (any method; a request not naming a known user is keyed by method + path).
    pub fn retry_after_violations(&self) -> Vec<RetryViolation> {
        let records = self.records();
        let mut out = Vec::new();
        for r in records.iter().filter(|r| r.is_operation()) {
            if !matches!(r.status, 429 | 503) {
                continue;
            }
            let Some(not_before) = r.retry_not_before() else {
                continue;
            };
            let key = r.target_key();
            let next = records
                .iter()
                .filter(|q| {
                    q.is_operation()
                        && q.seq != r.seq
                        && q.received_wall >= r.answered_wall
                        && q.target_key() == key
                })
                .min_by_key(|q| q.received_wall);
            if let Some(q) = next {
                if q.received_wall < not_before {
                    out.push(RetryViolation {
                        throttled: r.clone(),
                        retry: q.clone(),
                        not_before,
                    });
                }
            }
        }
        out
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}

impl Drop for GraphServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn add_user(st: &mut ServerState, seed: UserSeed) {
    let photo = seed.photo.map(|bytes| {
        let etag = match seed.photo_etag {
            Some(e) => e,
            None => st.new_etag(&bytes, None),
        };
        let content_type = detect_image(&bytes).unwrap_or("application/octet-stream");
        let size = image_size(&bytes);
        Photo {
            bytes: Arc::new(bytes),
            etag,
            content_type,
            size,
        }
    });
    st.users.push(UserEntry {
        id: seed.id,
        upn: seed.user_principal_name,
        employee_id: seed.employee_id,
        mail: seed.mail,
        display_name: seed.display_name,
        photo,
        stale: None,
        uploads: 0,
        deletes: 0,
    });
}

/// The key that signs the fake's access tokens: one self-signed certificate per process
/// (made on first use with the `openssl` tool, as [`TestCertificate::generate`] does).
pub fn token_signer() -> &'static TestCertificate {
    static SIGNER: std::sync::LazyLock<TestCertificate> =
        std::sync::LazyLock::new(|| TestCertificate::generate("graph-fake-token-signer"));
    &SIGNER
}

/// An access token as Entra issues one for the client credentials flow (a v1.0 app-only
/// token for Graph): an RS256 JWT, `x5t` and `kid` naming [`token_signer`]'s certificate,
/// with `aud`, `iss`, `appid`, `tid`, `idtyp: app`, `iat`/`nbf`/`exp` and, when the app has
/// any, `roles`. Clients must treat it as opaque; a preflight may read its claims.
fn jwt_token(st: &ServerState, app: &AppRegistration) -> String {
    let signer = token_signer();
    let now = unix_secs(SystemTime::now());
    let tid = st.cfg.tenant_id.clone();
    let header = json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5t": signer.x5t_sha1,
        "kid": signer.x5t_sha1,
    });
    let mut claims = json!({
        "aud": st.cfg.graph_resource.trim_end_matches('/'),
        "iss": format!("https://sts.windows.net/{tid}/"),
        "iat": now,
        "nbf": now,
        "exp": now + st.cfg.token_lifetime.as_secs(),
        "appid": app.client_id,
        "appidacr": if app.client_secret.is_some() { "1" } else { "2" },
        "idp": format!("https://sts.windows.net/{tid}/"),
        "idtyp": "app",
        "oid": new_guid(),
        "sub": new_guid(),
        "tid": tid,
        "uti": uuid::Uuid::new_v4().simple().to_string(),
        "ver": "1.0",
    });
    if !app.roles.is_empty() {
        claims["roles"] = json!(app.roles);
    }
    sign_jwt(&header, &claims, &signer.private_key_pem)
}

fn issue_token(st: &mut ServerState, app: &AppRegistration) -> String {
    let token = if st.cfg.opaque_tokens {
        format!(
            "fakegraph.{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )
    } else {
        jwt_token(st, app)
    };
    let info = TokenInfo {
        app_id: app.client_id.clone(),
        roles: app.roles.clone(),
        expires_at: Instant::now() + st.cfg.token_lifetime,
    };
    st.tokens.insert(token.clone(), info);
    token
}

// ---------------------------------------------------------------------------------------------
// HTTP entry
// ---------------------------------------------------------------------------------------------

async fn entry(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let received_at = Instant::now();
    let received_wall = SystemTime::now();
    let (parts, body) = req.into_parts();
    let (body, body_too_large) = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => (b.to_vec(), false),
        Err(_) => (Vec::new(), true),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let authorization_present = parts.headers.contains_key("authorization");
    let path = parts.uri.path().to_string();
    let segs = decoded_segments(&path);
    let token_tenant = token_path_tenant(&segs);
    let is_batch = segs.len() == 2 && segs[0] == "v1.0" && segs[1].eq_ignore_ascii_case("$batch");
    let identity_route = identity::route(&path);
    let kind = if token_tenant.is_some() || identity_route.is_some() {
        RequestKind::Token
    } else if is_batch {
        RequestKind::Batch
    } else {
        RequestKind::Graph
    };
    let op = Op {
        kind,
        method: parts.method.as_str().to_ascii_uppercase(),
        path,
        query: parts.uri.query().map(str::to_string),
        headers,
        body,
        authorization_present,
        received_at,
        received_wall,
    };
    let corr = Corr::new(op.header("client-request-id"));
    let reply = if let Some(route) = identity_route {
        identity::handle(&inner, &op, &corr, route)
    } else if let Some(tenant) = token_tenant {
        token_endpoint(&inner, &op, &tenant, &corr)
    } else if body_too_large {
        graph_error(
            413,
            codes::REQUEST_ENTITY_TOO_LARGE,
            "The request body is too large.",
            &corr,
        )
    } else {
        match authenticate(&inner, &op, &corr) {
            Err(r) => r,
            Ok(token) => {
                let mut r = if is_batch {
                    batch(&inner, &op, &token, &corr).await
                } else {
                    gated(&inner, &op, &token, &corr).await
                };
                r.app_id = Some(token.app_id.clone());
                r
            }
        }
    };
    let response = to_http(&reply, &corr, op.kind == RequestKind::Token);
    inner.record(&op, &corr, &reply);
    response
}

fn to_http(reply: &Reply, corr: &Corr, token_endpoint: bool) -> Response {
    let mut resp = Response::new(Body::from(reply.payload.to_bytes()));
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    let mut push = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    };
    push("request-id", &corr.request_id);
    push("client-request-id", &corr.client_request_id);
    if !token_endpoint {
        push(
            "x-ms-ags-diagnostic",
            r#"{"ServerInfo":{"DataCenter":"Local","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"GRAPH-FAKE"}}"#,
        );
        push("strict-transport-security", "max-age=31536000");
        if reply.status >= 400 {
            push("cache-control", "no-store");
        }
    }
    if let Some(ct) = reply.payload.content_type() {
        push("content-type", ct);
    }
    for (k, v) in &reply.headers {
        push(k, v);
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// Graph: errors, authentication, admission
// ---------------------------------------------------------------------------------------------

fn graph_error(status: u16, code: &str, message: &str, corr: &Corr) -> Reply {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": iso_datetime(SystemTime::now()),
                "request-id": corr.request_id,
                "client-request-id": corr.client_request_id,
            }
        }
    });
    let mut r = Reply::new(status, Payload::Json(body, "application/json"));
    r.error_code = Some(code.to_string());
    r
}

/// The 429 body of contract section 5, plus `client-request-id` in `innerError`.
fn too_many_requests(corr: &Corr) -> Reply {
    let body = json!({
        "error": {
            "code": codes::TOO_MANY_REQUESTS,
            "message": "Please retry again later.",
            "innerError": {
                "code": "429",
                "date": iso_datetime(SystemTime::now()),
                "message": "Please retry after",
                "request-id": corr.request_id,
                "client-request-id": corr.client_request_id,
                "status": "429",
            }
        }
    });
    let mut r = Reply::new(429, Payload::Json(body, "application/json"));
    r.error_code = Some(codes::TOO_MANY_REQUESTS.to_string());
    r
}

fn failure_reply(f: &Failure, corr: &Corr) -> Reply {
    match f {
        Failure::TooManyRequests(ra) => too_many_requests(corr).retry_after(*ra),
        Failure::ServiceUnavailable(ra) => graph_error(
            503,
            codes::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            corr,
        )
        .retry_after(*ra),
        Failure::GatewayTimeout => graph_error(504, codes::GATEWAY_TIMEOUT, "Gateway Timeout", corr),
        Failure::InternalServerError => graph_error(
            500,
            codes::INTERNAL_SERVER_ERROR,
            "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ProfileStorageUnexpectedException' was thrown.",
            corr,
        ),
    }
}

fn retry_after_value(ra: RetryAfter) -> Option<String> {
    match ra {
        RetryAfter::Seconds(n) => Some(n.to_string()),
        RetryAfter::HttpDate(n) => {
            let now = unix_secs(SystemTime::now());
            let at = UNIX_EPOCH + Duration::from_secs(now + 1 + n);
            Some(httpdate::fmt_http_date(at))
        }
        RetryAfter::Absent => None,
    }
}

/// Messages of 401 `InvalidAuthenticationToken`. Contract choice: the contract gives only the
/// "expired" message; the other two are what Graph says for an empty or non-JWT token.
pub mod auth_messages {
    /// No `Authorization: Bearer` token.
    pub const EMPTY: &str = "Access token is empty.";
    /// A token the fake never issued or has revoked.
    pub const INVALID: &str = "CompactToken parsing failed with error code: 80049217";
    /// An issued token past its lifetime.
    pub const EXPIRED: &str = "Access token has expired or is not yet valid.";
}

fn authenticate(inner: &Inner, op: &Op, corr: &Corr) -> Result<TokenInfo, Reply> {
    let message = match op.header("authorization").map(str::trim) {
        None => auth_messages::EMPTY,
        Some(v) => {
            let token = match (v.get(..7), v.get(7..)) {
                (Some(scheme), Some(rest)) if scheme.eq_ignore_ascii_case("bearer ") => rest.trim(),
                _ if v.eq_ignore_ascii_case("bearer") => "",
                _ => v,
            };
            if token.is_empty() {
                auth_messages::EMPTY
            } else {
                let st = inner.lock();
                match st.tokens.get(token) {
                    None => auth_messages::INVALID,
                    Some(t) if Instant::now() >= t.expires_at => auth_messages::EXPIRED,
                    Some(t) => return Ok(t.clone()),
                }
            }
        }
    };
    let www = format!(
        "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"{GRAPH_APP_ID}\"",
        inner.base_url
    );
    Err(
        graph_error(401, codes::INVALID_AUTHENTICATION_TOKEN, message, corr)
            .header("www-authenticate", www),
    )
}

/// Releases a concurrency slot when dropped (also when the client goes away mid-request).
struct Slot {
    inner: Arc<Inner>,
    app: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        if let Some(n) = st.in_flight.get_mut(&self.app) {
            *n = n.saturating_sub(1);
        }
        st.raw_in_flight = st.raw_in_flight.saturating_sub(1);
    }
}

enum Admission {
    Refused(RetryAfter),
    Admitted(Option<(Failure, ThrottleCause)>),
}

/// Admission (per-app concurrency), the failure knobs, then latency and the operation itself.
async fn gated(inner: &Arc<Inner>, op: &Op, token: &TokenInfo, corr: &Corr) -> Reply {
    let (admission, latency, raw_now, user_id) = {
        let mut st = inner.lock();
        let user_id = path_user(&st, &op.path);
        st.raw_in_flight += 1;
        st.max_raw_in_flight = st.max_raw_in_flight.max(st.raw_in_flight);
        let raw_now = st.raw_in_flight;
        let current = st.in_flight.get(&token.app_id).copied().unwrap_or(0);
        let limit = st.cfg.max_concurrent_per_app;
        let admission = if limit.is_some_and(|n| current >= n) {
            st.raw_in_flight -= 1;
            Admission::Refused(st.cfg.concurrency_retry_after)
        } else {
            *st.in_flight.entry(token.app_id.clone()).or_insert(0) += 1;
            st.max_admitted = st.max_admitted.max(current + 1);
            st.ops += 1;
            let ops = st.ops;
            let failure = match st.injected.pop_front() {
                Some(f) => Some((f, ThrottleCause::Injected)),
                None => st
                    .cfg
                    .throttle
                    .as_ref()
                    .filter(|t| t.every_nth > 0 && ops.is_multiple_of(t.every_nth))
                    .map(|t| (t.failure.clone(), ThrottleCause::EveryNth)),
            };
            Admission::Admitted(failure)
        };
        (admission, st.cfg.latency, raw_now, user_id)
    };
    let mut reply = match admission {
        Admission::Refused(ra) => {
            let mut r = too_many_requests(corr).retry_after(ra);
            r.throttled = Some(ThrottleCause::Concurrency);
            r
        }
        Admission::Admitted(failure) => {
            let _slot = Slot {
                inner: inner.clone(),
                app: token.app_id.clone(),
            };
            match failure {
                Some((f, cause)) => {
                    let mut r = failure_reply(&f, corr);
                    r.throttled = Some(cause);
                    r
                }
                None => {
                    if !latency.is_zero() {
                        tokio::time::sleep(latency).await;
                    }
                    operation(inner, op, token, corr)
                }
            }
        }
    };
    reply.in_flight_at_arrival = Some(raw_now);
    if reply.user_id.is_none() {
        reply.user_id = user_id;
    }
    reply
}

// ---------------------------------------------------------------------------------------------
// Graph: routing and the operations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum Target {
    User,
    Photo,
    PhotoValue,
    Photos,
    PhotoSize(String),
    PhotoSizeValue(String),
}

enum Route {
    ListUsers,
    OneUser(String, Target),
}

fn is_value_segment(s: &str) -> bool {
    s.eq_ignore_ascii_case("$value")
}

fn segment_not_found(seg: &str, corr: &Corr) -> Reply {
    graph_error(
        400,
        codes::BAD_REQUEST,
        &format!("Resource not found for the segment '{seg}'."),
        corr,
    )
}

/// Parses `/v1.0/users…` paths (segments already percent-decoded, so `%24value` is `$value`
/// and `%23EXT%23` is `#EXT#`).
fn route(path: &str, corr: &Corr) -> Result<Route, Reply> {
    let segs = decoded_segments(path);
    let version = segs.first().map(String::as_str).unwrap_or("");
    if version != "v1.0" {
        return Err(graph_error(
            400,
            codes::BAD_REQUEST,
            &format!("Invalid version: {version}"),
            corr,
        ));
    }
    let rest = &segs[1..];
    let Some(first) = rest.first() else {
        return Err(segment_not_found("", corr));
    };
    if first.eq_ignore_ascii_case("me") {
        return Err(graph_error(
            400,
            codes::BAD_REQUEST,
            "/me request is only valid with delegated authentication flow.",
            corr,
        ));
    }
    let (key, remainder) = if let Some(k) = key_form(first) {
        match k {
            Some(k) => (k, &rest[1..]),
            None => return Err(segment_not_found(first, corr)),
        }
    } else if first.eq_ignore_ascii_case("users") {
        match rest.get(1) {
            None => return Ok(Route::ListUsers),
            // Contract 1.1: OData reads a segment starting with `$` as a system segment, so a
            // UPN that starts with `$` only works in the `users('…')` key form.
            Some(k) if k.starts_with('$') || k.is_empty() => {
                return Err(segment_not_found(k, corr))
            }
            Some(k) => (k.clone(), &rest[2..]),
        }
    } else {
        return Err(segment_not_found(first, corr));
    };
    let lower: Vec<String> = remainder.iter().map(|s| s.to_ascii_lowercase()).collect();
    let target = match lower
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => Target::User,
        ["photo"] => Target::Photo,
        ["photo", v] if is_value_segment(v) => Target::PhotoValue,
        ["photos"] => Target::Photos,
        ["photos", s] => Target::PhotoSize(s.to_string()),
        ["photos", s, v] if is_value_segment(v) => Target::PhotoSizeValue(s.to_string()),
        _ => {
            let bad = remainder
                .iter()
                .find(|seg| {
                    !["photo", "photos", "$value"]
                        .iter()
                        .any(|k| seg.eq_ignore_ascii_case(k))
                })
                .or(remainder.last())
                .map(String::as_str)
                .unwrap_or("");
            return Err(segment_not_found(bad, corr));
        }
    };
    Ok(Route::OneUser(key, target))
}

/// `users('key')` → `Some(Some(key))`; `users(…)` malformed → `Some(None)`; other → `None`.
fn key_form(seg: &str) -> Option<Option<String>> {
    let lower = seg.to_ascii_lowercase();
    if !lower.starts_with("users(") {
        return None;
    }
    if !seg.ends_with(')') || seg.len() < 8 {
        return Some(None);
    }
    let inner = &seg[6..seg.len() - 1];
    if inner.len() >= 2 && inner.starts_with('\'') && inner.ends_with('\'') {
        Some(Some(inner[1..inner.len() - 1].replace("''", "'")))
    } else if !inner.is_empty() && !inner.contains('\'') {
        Some(Some(inner.to_string()))
    } else {
        Some(None)
    }
}

/// The object id of the user a path names, if any (for records, whatever the answer).
fn path_user(st: &ServerState, path: &str) -> Option<String> {
    let corr = Corr {
        request_id: String::new(),
        client_request_id: String::new(),
        sent: None,
    };
    match route(path, &corr) {
        Ok(Route::OneUser(key, _)) => st.find_user(&key).map(|i| st.users[i].id.clone()),
        _ => None,
    }
}

fn has_role(token: &TokenInfo, allowed: &[&str]) -> bool {
    token
        .roles
        .iter()
        .any(|r| allowed.iter().any(|a| a.eq_ignore_ascii_case(r)))
}

fn method_not_allowed(corr: &Corr) -> Reply {
    graph_error(
        405,
        codes::METHOD_NOT_ALLOWED,
        "Specified HTTP method is not allowed for the request target.",
        corr,
    )
}

fn image_not_found(corr: &Corr) -> Reply {
    graph_error(
        404,
        codes::IMAGE_NOT_FOUND,
        "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
        corr,
    )
}

fn operation(inner: &Inner, op: &Op, token: &TokenInfo, corr: &Corr) -> Reply {
    let route = match route(&op.path, corr) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut st = inner.lock();
    let enforce = st.cfg.enforce_roles;
    let (key, target) = match route {
        Route::ListUsers => {
            if op.method != "GET" {
                return method_not_allowed(corr);
            }
            if enforce && !has_role(token, &DIRECTORY_READ_ROLES) {
                return directory_denied(corr);
            }
            return list_users(&st, &inner.base_url, op.query.as_deref(), corr);
        }
        Route::OneUser(key, target) => (key, target),
    };
    let method_ok = matches!(
        (&target, op.method.as_str()),
        (Target::User, "GET")
            | (Target::Photo, "GET" | "DELETE")
            | (Target::PhotoValue, "GET" | "PUT" | "PATCH" | "DELETE")
            | (
                Target::Photos | Target::PhotoSize(_) | Target::PhotoSizeValue(_),
                "GET"
            )
    );
    if !method_ok {
        return method_not_allowed(corr);
    }
    let writing = matches!(op.method.as_str(), "PUT" | "PATCH" | "DELETE");
    if enforce {
        let ok = match (&target, writing) {
            (Target::User, _) => has_role(token, &DIRECTORY_READ_ROLES),
            (_, true) => has_role(token, &PHOTO_WRITE_ROLES),
            (_, false) => has_role(token, &PHOTO_READ_ROLES),
        };
        if !ok {
            return if target == Target::User {
                directory_denied(corr)
            } else {
                graph_error(
                    403,
                    codes::ACCESS_DENIED,
                    "Access is denied. Check credentials and try again.",
                    corr,
                )
            };
        }
    }
    let Some(idx) = st.find_user(&key) else {
        return if target == Target::User {
            graph_error(
                404,
                codes::RESOURCE_NOT_FOUND,
                &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."),
                corr,
            )
        } else {
            graph_error(
                404,
                codes::ENTITY_NOT_FOUND,
                "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
                corr,
            )
        };
    };
    let mut reply = match (target, op.method.as_str()) {
        (Target::User, _) => get_user(&st, idx, &inner.base_url, op.query.as_deref(), corr),
        (Target::Photo | Target::PhotoValue, "DELETE") => delete_photo(&mut st, idx, corr),
        (Target::Photo, _) => photo_metadata(&mut st, idx, &inner.base_url, corr),
        (Target::PhotoValue, "GET") => match &st.users[idx].photo {
            Some(p) => Reply::new(200, Payload::Bytes(p.bytes.clone(), p.content_type)),
            None => image_not_found(corr),
        },
        (Target::PhotoValue, _) => upload_photo(&mut st, idx, op, corr),
        (Target::Photos, _) => photo_list(&st, idx, &inner.base_url),
        (Target::PhotoSize(s), _) => photo_size(&st, idx, &s, &inner.base_url, false, corr),
        (Target::PhotoSizeValue(s), _) => photo_size(&st, idx, &s, &inner.base_url, true, corr),
    };
    reply.user_id = Some(st.users[idx].id.clone());
    reply
}

fn directory_denied(corr: &Corr) -> Reply {
    graph_error(
        403,
        codes::AUTHORIZATION_REQUEST_DENIED,
        "Insufficient privileges to complete the operation.",
        corr,
    )
}

fn upload_photo(st: &mut ServerState, idx: usize, op: &Op, corr: &Corr) -> Reply {
    let body = &op.body;
    let detected = detect_image(body);
    let with_detected = |mut r: Reply| {
        r.detected_image = detected;
        r
    };
    if st.cfg.cloud_updates_disabled {
        return with_detected(photo_updates_disabled(corr));
    }
    if write_denied(st, idx) {
        return with_detected(photo_write_denied(st, corr));
    }
    if body.len() > st.cfg.max_photo_bytes {
        let msg = format!(
            "The photo is {} bytes; the limit is {} bytes (4 MB).",
            body.len(),
            st.cfg.max_photo_bytes
        );
        return with_detected(graph_error(
            413,
            codes::REQUEST_ENTITY_TOO_LARGE,
            &msg,
            corr,
        ));
    }
    if body.is_empty() {
        return graph_error(400, codes::BAD_REQUEST, "The photo is empty.", corr);
    }
    let Some(kind) = detected else {
        return graph_error(
            400,
            codes::BAD_REQUEST,
            "The photo is not a JPEG or PNG image.",
            corr,
        );
    };
    if st.cfg.strict_content_type {
        let sent = op.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        if sent.as_deref() != Some(kind) {
            let msg = format!(
                "Content-Type {:?} does not match the image data ({kind}).",
                sent.unwrap_or_default()
            );
            return with_detected(graph_error(400, codes::BAD_REQUEST, &msg, corr));
        }
    }
    let size = image_size(body);
    if let (Some(min), Some((w, _))) = (st.cfg.min_photo_width, size) {
        if w < min {
            return with_detected(graph_error(
                400,
                codes::WIDTH_TOO_SMALL,
                "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ProfileBadRequestException' was thrown.",
                corr,
            ));
        }
    }
    let previous = st.users[idx].photo.clone();
    let etag = st.new_etag(body, previous.as_ref().map(|p| p.etag.as_str()));
    let stale_reads = st.cfg.stale_metadata_reads;
    let user = &mut st.users[idx];
    user.photo = Some(Photo {
        bytes: Arc::new(body.clone()),
        etag,
        content_type: kind,
        size,
    });
    user.uploads += 1;
    user.stale = (stale_reads > 0).then_some((previous, stale_reads));
    with_detected(Reply::empty(200))
}

fn photo_updates_disabled(corr: &Corr) -> Reply {
    graph_error(
        403,
        codes::ACCESS_DENIED,
        "Photo updates through cloud services are disabled for this tenant (photoUpdateSettings source is onPremises).",
        corr,
    )
}

/// Whether [`GraphServerConfig::photo_write_denied`] names this user.
fn write_denied(st: &ServerState, idx: usize) -> bool {
    let u = &st.users[idx];
    st.cfg
        .photo_write_denied
        .iter()
        .any(|k| k.eq_ignore_ascii_case(&u.id) || k.eq_ignore_ascii_case(&u.upn))
}

fn photo_write_denied(st: &ServerState, corr: &Corr) -> Reply {
    graph_error(
        403,
        &st.cfg.denied_code,
        "Access is denied. Check credentials and try again.",
        corr,
    )
}

fn delete_photo(st: &mut ServerState, idx: usize, corr: &Corr) -> Reply {
    if st.cfg.delete_not_supported {
        return graph_error(
            405,
            codes::METHOD_NOT_ALLOWED,
            "Method is not allowed",
            corr,
        );
    }
    if st.cfg.cloud_updates_disabled {
        return photo_updates_disabled(corr);
    }
    if write_denied(st, idx) {
        return photo_write_denied(st, corr);
    }
    let stale_reads = st.cfg.stale_metadata_reads;
    let user = &mut st.users[idx];
    // Contract choice: the contract does not say what deleting an absent photo answers; the
    // photo service throws ImageNotFoundException for absent photos, so 404 ImageNotFound.
    let Some(previous) = user.photo.take() else {
        return image_not_found(corr);
    };
    user.deletes += 1;
    user.stale = (stale_reads > 0).then_some((Some(previous), stale_reads));
    Reply::empty(200)
}

/// Sizes Graph would serve for a photo: the standard sizes up to the smaller side.
fn available_sizes(p: &Photo) -> Vec<u32> {
    match p.size {
        Some((w, h)) => STANDARD_SIZES
            .iter()
            .copied()
            .filter(|s| *s <= w.min(h))
            .collect(),
        None => Vec::new(),
    }
}

/// Contract choice: `/photo` describes "the largest available size": the largest standard size
/// not above the smaller side of the upload, or the upload's own size when it is below 48 px.
/// `$value` always returns the stored bytes (the fake does not resize).
fn photo_entity(p: &Photo, base: &str, user_id: &str, size: Option<u32>) -> Value {
    let (id, w, h) = match (size, available_sizes(p).last(), p.size) {
        (Some(s), _, _) | (None, Some(&s), _) => (format!("{s}X{s}"), json!(s), json!(s)),
        (None, None, Some((w, h))) => (format!("{w}X{h}"), json!(w), json!(h)),
        (None, None, None) => ("0X0".to_string(), Value::Null, Value::Null),
    };
    let (context, odata_id) = match size {
        None => (
            format!("{base}/v1.0/$metadata#users('{user_id}')/photo/$entity"),
            format!("{base}/v1.0/users('{user_id}')/photo"),
        ),
        Some(_) => (
            format!("{base}/v1.0/$metadata#users('{user_id}')/photos/$entity"),
            format!("{base}/v1.0/users('{user_id}')/photos('{id}')"),
        ),
    };
    json!({
        "@odata.context": context,
        "@odata.id": odata_id,
        "@odata.mediaContentType": p.content_type,
        "@odata.mediaEtag": p.etag,
        "id": id,
        "width": w,
        "height": h,
    })
}

fn photo_metadata(st: &mut ServerState, idx: usize, base: &str, corr: &Corr) -> Reply {
    let legacy = st.cfg.legacy_placeholder;
    let user = &mut st.users[idx];
    let mut shown = user.photo.clone();
    if let Some((previous, left)) = &mut user.stale {
        if *left > 0 {
            *left -= 1;
            shown = previous.clone();
        }
    }
    match shown {
        Some(p) => Reply::odata(200, photo_entity(&p, base, &user.id, None)),
        None if legacy => Reply::odata(
            200,
            json!({
                "@odata.context": format!("{base}/v1.0/$metadata#users('{}')/photo/$entity", user.id),
                "@odata.id": format!("{base}/v1.0/users('{}')/photo", user.id),
                "@odata.mediaContentType": "image/gif",
                "@odata.mediaEtag": "",
                "id": "1X1",
                "width": 1,
                "height": 1,
            }),
        ),
        None => image_not_found(corr),
    }
}

fn photo_list(st: &ServerState, idx: usize, base: &str) -> Reply {
    let user = &st.users[idx];
    let value: Vec<Value> = match &user.photo {
        Some(p) => available_sizes(p)
            .into_iter()
            .map(|s| photo_entity(p, base, &user.id, Some(s)))
            .collect(),
        None => Vec::new(),
    };
    Reply::odata(
        200,
        json!({
            "@odata.context": format!("{base}/v1.0/$metadata#users('{}')/photos", user.id),
            "value": value,
        }),
    )
}

fn photo_size(
    st: &ServerState,
    idx: usize,
    size_id: &str,
    base: &str,
    bytes: bool,
    corr: &Corr,
) -> Reply {
    let user = &st.users[idx];
    let Some(p) = &user.photo else {
        return image_not_found(corr);
    };
    let wanted = size_id
        .to_ascii_lowercase()
        .split_once('x')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    match wanted {
        Some((a, b)) if a == b && available_sizes(p).contains(&a) => {
            if bytes {
                Reply::new(200, Payload::Bytes(p.bytes.clone(), p.content_type))
            } else {
                Reply::odata(200, photo_entity(p, base, &user.id, Some(a)))
            }
        }
        _ => image_not_found(corr),
    }
}

const USER_PROPERTIES: [&str; 5] = [
    "id",
    "userPrincipalName",
    "displayName",
    "mail",
    "employeeId",
];
const DEFAULT_SELECT: [&str; 4] = ["id", "displayName", "mail", "userPrincipalName"];

fn user_value(u: &UserEntry, prop: &str) -> Value {
    match prop {
        "id" => json!(u.id),
        "userPrincipalName" => json!(u.upn),
        "displayName" => json!(u.display_name),
        "mail" => json!(u.mail),
        "employeeId" => json!(u.employee_id),
        _ => Value::Null,
    }
}

fn canonical_property(name: &str) -> Option<&'static str> {
    USER_PROPERTIES
        .iter()
        .copied()
        .find(|p| p.eq_ignore_ascii_case(name.trim()))
}

fn parse_select(
    query: &[(String, String)],
    corr: &Corr,
) -> Result<Option<Vec<&'static str>>, Reply> {
    let Some((_, sel)) = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("$select"))
    else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in sel.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match canonical_property(name) {
            Some(p) => out.push(p),
            None => {
                return Err(graph_error(
                    400,
                    codes::BAD_REQUEST,
                    &format!("Parsing OData Select and Expand failed: Could not find a property named '{name}' on type 'microsoft.graph.user'."),
                    corr,
                ))
            }
        }
    }
    Ok(Some(out))
}

fn user_object(u: &UserEntry, select: &Option<Vec<&'static str>>) -> Value {
    let props: Vec<&str> = match select {
        Some(s) => s.clone(),
        None => DEFAULT_SELECT.to_vec(),
    };
    let mut m = Map::new();
    for p in props {
        m.insert(p.to_string(), user_value(u, p));
    }
    Value::Object(m)
}

fn context_suffix(select: &Option<Vec<&'static str>>) -> String {
    match select {
        Some(s) => format!("users({})", s.join(",")),
        None => "users".to_string(),
    }
}

fn get_user(st: &ServerState, idx: usize, base: &str, query: Option<&str>, corr: &Corr) -> Reply {
    let q = parse_query(query.unwrap_or(""));
    let select = match parse_select(&q, corr) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut v = user_object(&st.users[idx], &select);
    if let Value::Object(m) = &mut v {
        m.insert(
            "@odata.context".to_string(),
            json!(format!(
                "{base}/v1.0/$metadata#{}/$entity",
                context_suffix(&select)
            )),
        );
    }
    Reply::odata(200, v)
}

/// `GET /v1.0/users[?$filter=…][&$select=…]`: `eq` and `in (…)` on `id`,
/// `userPrincipalName`, `mail`, `employeeId`, `displayName`, joined with `or`; string
/// comparison is case-insensitive, as in the directory.
fn list_users(st: &ServerState, base: &str, query: Option<&str>, corr: &Corr) -> Reply {
    let q = parse_query(query.unwrap_or(""));
    let select = match parse_select(&q, corr) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let filter = match q.iter().find(|(k, _)| k.eq_ignore_ascii_case("$filter")) {
        None => None,
        Some((_, f)) => match parse_filter(f) {
            Ok(clauses) => Some(clauses),
            Err(FilterError::Syntax(m)) => {
                return graph_error(400, codes::BAD_REQUEST, &format!("Invalid filter clause: {m}"), corr)
            }
            Err(FilterError::Property(p)) => {
                return graph_error(
                    400,
                    codes::UNSUPPORTED_QUERY,
                    &format!("Unsupported or invalid query filter clause specified for property '{p}' of resource 'User'."),
                    corr,
                )
            }
        },
    };
    let value: Vec<Value> = st
        .users
        .iter()
        .filter(|u| match &filter {
            None => true,
            Some(clauses) => clauses.iter().any(|(prop, values)| {
                let have = user_value(u, prop);
                have.as_str()
                    .is_some_and(|h| values.iter().any(|v| v.to_lowercase() == h.to_lowercase()))
            }),
        })
        .map(|u| user_object(u, &select))
        .collect();
    Reply::odata(
        200,
        json!({
            "@odata.context": format!("{base}/v1.0/$metadata#{}", context_suffix(&select)),
            "value": value,
        }),
    )
}

enum FilterError {
    Syntax(String),
    Property(String),
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    Comma,
}

fn lex_filter(s: &str) -> Result<Vec<Tok>, FilterError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else if c == ',' {
            out.push(Tok::Comma);
            i += 1;
        } else if c == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(FilterError::Syntax("unterminated string".into())),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        v.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        v.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(v));
        } else if c.is_alphanumeric() || c == '_' || c == '.' || c == '/' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_./".contains(chars[i])) {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            return Err(FilterError::Syntax(format!("unexpected character '{c}'")));
        }
    }
    Ok(out)
}

fn parse_filter(s: &str) -> Result<Vec<(&'static str, Vec<String>)>, FilterError> {
    let toks = lex_filter(s)?;
    let mut it = toks.into_iter().peekable();
    let mut clauses = Vec::new();
    loop {
        let prop = match it.next() {
            Some(Tok::Word(w)) => w,
            other => {
                return Err(FilterError::Syntax(format!(
                    "expected a property, got {other:?}"
                )))
            }
        };
        let op = match it.next() {
            Some(Tok::Word(w)) => w.to_ascii_lowercase(),
            other => {
                return Err(FilterError::Syntax(format!(
                    "expected an operator, got {other:?}"
                )))
            }
        };
        let canonical = canonical_property(&prop).ok_or(FilterError::Property(prop.clone()));
        let values = match op.as_str() {
            "eq" => match it.next() {
                Some(Tok::Str(v)) => vec![v],
                other => {
                    return Err(FilterError::Syntax(format!(
                        "expected a string, got {other:?}"
                    )))
                }
            },
            "in" => {
                if it.next() != Some(Tok::Open) {
                    return Err(FilterError::Syntax("expected '(' after 'in'".into()));
                }
                let mut vals = Vec::new();
                loop {
                    match it.next() {
                        Some(Tok::Str(v)) => vals.push(v),
                        other => {
                            return Err(FilterError::Syntax(format!(
                                "expected a string, got {other:?}"
                            )))
                        }
                    }
                    match it.next() {
                        Some(Tok::Comma) => continue,
                        Some(Tok::Close) => break,
                        other => {
                            return Err(FilterError::Syntax(format!(
                                "expected ',' or ')', got {other:?}"
                            )))
                        }
                    }
                }
                vals
            }
            _ => return Err(FilterError::Property(prop)),
        };
        clauses.push((canonical?, values));
        match it.next() {
            None => break,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("or") => continue,
            Some(other) => return Err(FilterError::Syntax(format!("unsupported {other:?}"))),
        }
    }
    Ok(clauses)
}

// ---------------------------------------------------------------------------------------------
// Graph: JSON batching
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct BatchItem {
    id: String,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn batch_bad_request(message: &str, corr: &Corr) -> Reply {
    graph_error(400, codes::BAD_REQUEST, message, corr)
}

fn parse_batch(v: &Value, max: usize, corr: &Corr) -> Result<Vec<BatchItem>, Reply> {
    let invalid = || batch_bad_request("Invalid batch payload format.", corr);
    let reqs = v
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(invalid)?;
    if reqs.is_empty() {
        return Err(invalid());
    }
    if reqs.len() > max {
        return Err(batch_bad_request(
            "Number of requests inside batch exceeds the limit.",
            corr,
        ));
    }
    let mut items: Vec<BatchItem> = Vec::new();
    for r in reqs {
        let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(id), Some(method), Some(url)) = (s("id"), s("method"), s("url")) else {
            return Err(batch_bad_request(
                "Each request in a batch needs string 'id', 'method' and 'url'.",
                corr,
            ));
        };
        if items.iter().any(|i| i.id.eq_ignore_ascii_case(&id)) {
            return Err(batch_bad_request(
                &format!("Batch request contains duplicate request id '{id}'."),
                corr,
            ));
        }
        let mut headers = Vec::new();
        match r.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let Some(v) = v.as_str() else {
                        return Err(invalid());
                    };
                    headers.push((k.to_ascii_lowercase(), v.to_string()));
                }
            }
            Some(_) => return Err(invalid()),
        }
        let body = r.get("body").filter(|b| !b.is_null()).cloned();
        if body.is_some() && !headers.iter().any(|(k, _)| k == "content-type") {
            return Err(batch_bad_request(
                &format!("Write request id : {id} does not contain Content-Type header or body."),
                corr,
            ));
        }
        let depends_on = match r.get("dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => {
                let mut d = Vec::new();
                for x in a {
                    d.push(x.as_str().ok_or_else(invalid)?.to_string());
                }
                d
            }
            Some(_) => return Err(invalid()),
        };
        if url.to_ascii_lowercase().starts_with("http") {
            return Err(batch_bad_request(
                &format!("Request id {id}: the url must be relative to the version root."),
                corr,
            ));
        }
        items.push(BatchItem {
            id,
            method: method.to_ascii_uppercase(),
            url,
            headers,
            body,
            depends_on,
        });
    }
    for it in &items {
        for d in &it.depends_on {
            if d.eq_ignore_ascii_case(&it.id) || !items.iter().any(|x| x.id.eq_ignore_ascii_case(d))
            {
                return Err(batch_bad_request(
                    &format!("Request id {} depends on '{d}', which is not another request of this batch.", it.id),
                    corr,
                ));
            }
        }
    }
    Ok(items)
}

/// Dependency depth of each item (0: no dependencies); `None` on a cycle.
fn batch_levels(items: &[BatchItem]) -> Option<Vec<usize>> {
    let n = items.len();
    let idx = |id: &str| items.iter().position(|x| x.id.eq_ignore_ascii_case(id));
    let mut level: Vec<Option<usize>> = vec![None; n];
    for _round in 0..=n {
        let mut changed = false;
        for i in 0..n {
            if level[i].is_some() {
                continue;
            }
            let deps: Option<Vec<usize>> = items[i]
                .depends_on
                .iter()
                .map(|d| idx(d).and_then(|j| level[j]))
                .collect();
            if let Some(deps) = deps {
                level[i] = Some(deps.into_iter().map(|l| l + 1).max().unwrap_or(0));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    level.into_iter().collect()
}

fn decode_base64_any(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .ok()
}

async fn batch(inner: &Arc<Inner>, op: &Op, token: &TokenInfo, corr: &Corr) -> Reply {
    if op.method != "POST" {
        return method_not_allowed(corr);
    }
    let (max_body, max_items, parallelism) = {
        let st = inner.lock();
        (
            st.cfg.max_batch_body_bytes,
            st.cfg.max_batch_requests,
            st.cfg.batch_parallelism.max(1),
        )
    };
    if op.body.len() > max_body {
        return graph_error(
            413,
            codes::REQUEST_ENTITY_TOO_LARGE,
            &format!(
                "The batch body is {} bytes; the limit is {max_body} bytes.",
                op.body.len()
            ),
            corr,
        );
    }
    let Ok(v) = serde_json::from_slice::<Value>(&op.body) else {
        return batch_bad_request("Invalid batch payload format.", corr);
    };
    let items = match parse_batch(&v, max_items, corr) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let Some(levels) = batch_levels(&items) else {
        return batch_bad_request("The dependsOn of this batch form a cycle.", corr);
    };
    let envelope_crid = op.header("client-request-id").map(str::to_string);
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut responses: Vec<Value> = Vec::new();
    let max_level = levels.iter().copied().max().unwrap_or(0);
    for level in 0..=max_level {
        let sem = Arc::new(tokio::sync::Semaphore::new(parallelism));
        let mut set = tokio::task::JoinSet::new();
        for (item, _) in items.iter().zip(&levels).filter(|(_, l)| **l == level) {
            let failed_dep = item.depends_on.iter().find(|d| {
                statuses
                    .get(&d.to_ascii_lowercase())
                    .is_none_or(|s| !(200..300).contains(s))
            });
            let item_op = batch_item_op(item, &corr.request_id);
            let item_corr = Corr::new(
                item_op
                    .header("client-request-id")
                    .or(envelope_crid.as_deref()),
            );
            if let Some(d) = failed_dep {
                let mut reply = graph_error(
                    424,
                    codes::FAILED_DEPENDENCY,
                    &format!("Dependent request '{d}' failed."),
                    &item_corr,
                );
                reply.app_id = Some(token.app_id.clone());
                inner.record(&item_op, &item_corr, &reply);
                statuses.insert(item.id.to_ascii_lowercase(), 424);
                responses.push(item_response(&item.id, &reply));
                continue;
            }
            let inner = inner.clone();
            let token = token.clone();
            let sem = sem.clone();
            let item = item.clone();
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let reply = run_batch_item(&inner, &item, item_op, &token, &item_corr).await;
                (item.id.clone(), reply)
            });
        }
        while let Some(joined) = set.join_next().await {
            let Ok((id, reply)) = joined else { continue };
            statuses.insert(id.to_ascii_lowercase(), reply.status);
            responses.push(item_response(&id, &reply));
        }
    }
    Reply::new(
        200,
        Payload::Json(json!({ "responses": responses }), "application/json"),
    )
}

fn batch_item_op(item: &BatchItem, batch_request_id: &str) -> Op {
    let url = if item.url.starts_with('/') {
        item.url.clone()
    } else {
        format!("/{}", item.url)
    };
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (url, None),
    };
    Op {
        kind: RequestKind::BatchItem {
            batch_request_id: batch_request_id.to_string(),
            item_id: item.id.clone(),
        },
        method: item.method.clone(),
        path: format!("/v1.0{path}"),
        query,
        headers: item.headers.clone(),
        body: Vec::new(),
        authorization_present: true,
        received_at: Instant::now(),
        received_wall: SystemTime::now(),
    }
}

async fn run_batch_item(
    inner: &Arc<Inner>,
    item: &BatchItem,
    mut op: Op,
    token: &TokenInfo,
    corr: &Corr,
) -> Reply {
    op.received_at = Instant::now();
    op.received_wall = SystemTime::now();
    let is_json = op
        .header("content-type")
        .is_some_and(|c| c.to_ascii_lowercase().contains("json"));
    let body = match &item.body {
        None => Ok(Vec::new()),
        Some(Value::String(s)) if !is_json => decode_base64_any(s).ok_or("not base64"),
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(v) if is_json => Ok(serde_json::to_vec(v).unwrap_or_default()),
        Some(_) => Err("a JSON body needs a JSON Content-Type"),
    };
    let segs = decoded_segments(&op.path);
    let mut reply = match body {
        Err(why) => graph_error(
            400,
            codes::BAD_REQUEST,
            &format!("Invalid body of request id {}: {why}.", item.id),
            corr,
        ),
        Ok(_)
            if segs
                .get(1)
                .is_some_and(|s| s.eq_ignore_ascii_case("$batch")) =>
        {
            graph_error(
                400,
                codes::BAD_REQUEST,
                "A batch cannot contain a batch.",
                corr,
            )
        }
        Ok(b) => {
            op.body = b;
            gated(inner, &op, token, corr).await
        }
    };
    reply.app_id = Some(token.app_id.clone());
    inner.record(&op, corr, &reply);
    reply
}

fn item_response(id: &str, reply: &Reply) -> Value {
    let mut headers = Map::new();
    if let Some(ct) = reply.payload.content_type() {
        headers.insert("Content-Type".to_string(), json!(ct));
    }
    for (k, v) in &reply.headers {
        let name = if k == "retry-after" {
            "Retry-After"
        } else {
            k.as_str()
        };
        headers.insert(name.to_string(), json!(v));
    }
    let mut m = Map::new();
    m.insert("id".to_string(), json!(id));
    m.insert("status".to_string(), json!(reply.status));
    m.insert("headers".to_string(), Value::Object(headers));
    match &reply.payload {
        Payload::Empty => {}
        Payload::Json(v, _) => {
            m.insert("body".to_string(), v.clone());
        }
        Payload::Bytes(b, _) => {
            m.insert("body".to_string(), json!(STANDARD.encode(b.as_slice())));
        }
    }
    Value::Object(m)
}

// ---------------------------------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------------------------------

/// `/{tenant}/oauth2/v2.0/token` → the tenant.
fn token_path_tenant(segs: &[String]) -> Option<String> {
    match segs {
        [tenant, a, b, c]
            if !tenant.is_empty()
                && tenant != "v1.0"
                && a.eq_ignore_ascii_case("oauth2")
                && b.eq_ignore_ascii_case("v2.0")
                && c.eq_ignore_ascii_case("token") =>
        {
            Some(tenant.clone())
        }
        _ => None,
    }
}

/// An Entra error (contract 4.3): `error`, `error_description` ending in trace/correlation ids
/// and timestamp, `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`.
fn entra_error(
    login: &str,
    corr: &Corr,
    status: u16,
    error: &str,
    code: u32,
    message: &str,
) -> Reply {
    let ts = entra_timestamp(SystemTime::now());
    let trace = corr.request_id.clone();
    let correlation = corr.sent.clone().unwrap_or_else(new_guid);
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {message} \r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}"
        ),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("{login}/error?code={code}"),
    });
    let mut r = Reply::new(
        status,
        Payload::Json(body, "application/json; charset=utf-8"),
    )
    .header("x-ms-request-id", trace)
    .header("cache-control", "no-store, no-cache".to_string())
    .header("pragma", "no-cache".to_string());
    r.error_code = Some(format!("AADSTS{code}"));
    r
}

fn token_endpoint(inner: &Inner, op: &Op, tenant: &str, corr: &Corr) -> Reply {
    let login = inner.base_url.as_str();
    let err = |status: u16, error: &str, code: u32, msg: &str| {
        entra_error(login, corr, status, error, code, msg)
    };
    if op.method != "POST" {
        return err(
            400,
            "invalid_request",
            900561,
            &format!(
                "The endpoint only accepts POST requests. Received a {} request.",
                op.method
            ),
        );
    }
    let mut st = inner.lock();
    let known_tenant = st.cfg.tenant_id.eq_ignore_ascii_case(tenant)
        || st
            .cfg
            .tenant_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(tenant));
    if !known_tenant {
        return err(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."),
        );
    }
    let form = parse_query(&String::from_utf8_lossy(&op.body));
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    // RFC 6749 2.3.1: client_id:client_secret in HTTP Basic, each form-urlencoded.
    let basic = op
        .header("authorization")
        .and_then(|v| {
            v.get(..6)
                .filter(|s| s.eq_ignore_ascii_case("basic "))
                .map(|_| &v[6..])
        })
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (form_decode(u), form_decode(p)))
        });
    let missing = |name: &str| {
        err(
            400,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{name}'."),
        )
    };
    let Some(grant) = field("grant_type") else {
        return missing("grant_type");
    };
    if grant != "client_credentials" {
        return err(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let Some(client_id) = field("client_id").or_else(|| basic.as_ref().map(|b| b.0.clone())) else {
        return missing("client_id");
    };
    let Some(scope) = field("scope") else {
        return missing("scope");
    };
    let Some(app) = st
        .cfg
        .apps
        .iter()
        .find(|a| a.client_id.eq_ignore_ascii_case(&client_id))
        .cloned()
    else {
        let mut r = err(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."),
        );
        r.app_id = Some(client_id);
        return r;
    };
    let with_app = |mut r: Reply| {
        r.app_id = Some(app.client_id.clone());
        r
    };
    let secret = field("client_secret").or_else(|| basic.as_ref().map(|b| b.1.clone()));
    let assertion = field("client_assertion");
    match (secret, assertion) {
        (Some(_), Some(_)) => {
            return with_app(err(
                400,
                "invalid_request",
                9002313,
                "Invalid request. Request is malformed or invalid. Send either 'client_secret' or 'client_assertion', not both.",
            ))
        }
        (None, None) => {
            return with_app(err(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ))
        }
        (Some(secret), None) => {
            if app.client_secret.as_deref() != Some(secret.as_str()) {
                return with_app(err(
                    401,
                    "invalid_client",
                    7000215,
                    &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", app.client_id),
                ));
            }
        }
        (None, Some(assertion)) => {
            match field("client_assertion_type") {
                None => return with_app(missing("client_assertion_type")),
                Some(t) if t != CLIENT_ASSERTION_TYPE => {
                    return with_app(err(
                        400,
                        "invalid_request",
                        9002313,
                        &format!("Invalid request. Request is malformed or invalid. Unsupported client_assertion_type '{t}'."),
                    ))
                }
                Some(_) => {}
            }
            let mut audiences = vec![tenant.to_string(), st.cfg.tenant_id.clone()];
            audiences.extend(st.cfg.tenant_domains.iter().cloned());
            let audiences: Vec<String> = audiences
                .iter()
                .map(|t| format!("{login}/{t}/oauth2/v2.0/token"))
                .collect();
            let checked = identity::verify_federated(&st.identity, &app, &assertion)
                .unwrap_or_else(|| {
                    verify_assertion(&assertion, &app, &audiences, st.cfg.assertion_clock_skew)
                });
            match checked {
                Ok(jti) => st.assertion_jtis.push(jti),
                Err((code, msg)) => return with_app(err(401, "invalid_client", code, &msg)),
            }
        }
    }
    let resource = st
        .cfg
        .graph_resource
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let scope_ok = {
        let s = scope.trim().to_ascii_lowercase();
        s == format!("{resource}/.default") || s == format!("{GRAPH_APP_ID}/.default")
    };
    if !scope_ok {
        return with_app(err(
            400,
            "invalid_scope",
            70011,
            &format!("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        ));
    }
    let token = issue_token(&mut st, &app);
    st.tokens_issued += 1;
    let secs = st.cfg.token_lifetime.as_secs();
    let body = json!({
        "token_type": "Bearer",
        "expires_in": secs,
        "ext_expires_in": secs,
        "access_token": token,
    });
    let mut r = Reply::new(200, Payload::Json(body, "application/json; charset=utf-8"))
        .header("x-ms-request-id", corr.request_id.clone())
        .header("cache-control", "no-store, no-cache".to_string())
        .header("pragma", "no-cache".to_string());
    r.app_id = Some(app.client_id.clone());
    r
}

const ASSERTION_DOC: &str = "Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .";

/// Checks a client assertion (contract 4.2): compact JWS, `alg` RS256 or PS256, `x5t#S256` (or
/// legacy `x5t`) naming a registered certificate, a valid signature by that certificate's key,
/// `iss` = `sub` = client id, `aud` = the token endpoint, `exp`/`nbf` around now, `jti` present.
/// Returns the `jti`, or the AADSTS code and message.
fn verify_assertion(
    jwt: &str,
    app: &AppRegistration,
    audiences: &[String],
    skew: Duration,
) -> Result<String, (u32, String)> {
    let malformed = |why: &str| (50027, format!("JWT token is invalid or malformed. {why}"));
    let parts: Vec<&str> = jwt.trim().split('.').collect();
    if parts.len() != 3 {
        return Err(malformed("It is not a compact JWS."));
    }
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p.trim_end_matches('='));
    let header: Value = decode(parts[0])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| malformed("The header is not base64url JSON."))?;
    let claims: Value = decode(parts[1])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| malformed("The payload is not base64url JSON."))?;
    let signature = decode(parts[2]).map_err(|_| malformed("The signature is not base64url."))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let s256 = header.get("x5t#S256").and_then(Value::as_str);
    let sha1 = header.get("x5t").and_then(Value::as_str);
    let cert = app.certificates.iter().find(|c| {
        s256.is_some_and(|t| t == c.x5t_s256)
            || sha1.is_some_and(|t| c.x5t_sha1.as_deref() == Some(t))
    });
    let Some(cert) = cert else {
        let thumb = s256
            .or(sha1)
            .and_then(|t| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')).ok())
            .map(|b| hex_upper(&b))
            .unwrap_or_default();
        return Err((
            700027,
            format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumb}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]", app.client_id),
        ));
    };
    let key = rsa::PublicKey::from_public_key_pem(&cert.public_key_pem)
        .map_err(|_| malformed("The registered certificate has no RSA key."))?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    let valid = match alg {
        "RS256" => rsa::pkcs1v15::Signature::try_from(signature.as_slice())
            .map(|s| {
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key)
                    .verify(signed.as_bytes(), &s)
                    .is_ok()
            })
            .unwrap_or(false),
        "PS256" => rsa::pss::Signature::try_from(signature.as_slice())
            .map(|s| {
                rsa::pss::VerifyingKey::<Sha256>::new(key)
                    .verify(signed.as_bytes(), &s)
                    .is_ok()
            })
            .unwrap_or(false),
        other => {
            return Err(malformed(&format!(
                "Unsupported signing algorithm '{other}'."
            )))
        }
    };
    if !valid {
        return Err((
            700027,
            "Client assertion failed signature validation.".to_string(),
        ));
    }
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let number = |k: &str| claims.get(k).and_then(Value::as_f64);
    let mut missing = Vec::new();
    for k in ["aud", "iss", "sub", "jti"] {
        if text(k).is_none_or(|v| v.is_empty()) {
            missing.push(k);
        }
    }
    for k in ["exp", "nbf"] {
        if number(k).is_none() {
            missing.push(k);
        }
    }
    if !missing.is_empty() {
        return Err(malformed(&format!(
            "Missing claim(s): {}.",
            missing.join(", ")
        )));
    }
    let (aud, iss, sub) = (
        text("aud").unwrap_or_default(),
        text("iss").unwrap_or_default(),
        text("sub").unwrap_or_default(),
    );
    if !iss.eq_ignore_ascii_case(&app.client_id) || !sub.eq_ignore_ascii_case(&app.client_id) {
        return Err((
            700021,
            format!("Client assertion application identifier doesn't match 'client_id' parameter. {ASSERTION_DOC}"),
        ));
    }
    if !audiences.iter().any(|a| a.eq_ignore_ascii_case(&aud)) {
        return Err((
            700023,
            format!("Client assertion audience claim does not match Realm issuer. {ASSERTION_DOC}"),
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let (exp, nbf) = (number("exp").unwrap_or(0.0), number("nbf").unwrap_or(0.0));
    let skew = skew.as_secs_f64();
    if now >= exp + skew || now + skew < nbf {
        let at = |t: f64| iso_datetime(UNIX_EPOCH + Duration::from_secs(t.max(0.0) as u64));
        return Err((
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. {ASSERTION_DOC}",
                at(now),
                at(nbf),
                at(exp)
            ),
        ));
    }
    Ok(text("jti").unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Test helpers: certificates, assertions, images
// ---------------------------------------------------------------------------------------------

/// A self-signed RSA-2048 certificate and its key, made with the `openssl` command-line tool
/// (present wherever `ca-certificates` is, and with no crate to build; `rcgen` cannot generate
/// RSA keys and the `rsa` crate cannot write X.509).
#[derive(Clone, Debug)]
pub struct TestCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_key_pem: String,
    /// The public key, SPKI PEM.
    pub public_key_pem: String,
    /// base64url(SHA-256(DER)), computed here.
    pub x5t_s256: String,
    /// base64url(SHA-1(DER)), from openssl's fingerprint.
    pub x5t_sha1: String,
    /// openssl's own SHA-256 fingerprint, upper-case hex without colons (to cross-check
    /// `x5t_s256`).
    pub openssl_sha256_hex: String,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run the openssl command-line tool (Debian package `openssl`)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn fingerprint_hex(cert: &str, digest: &str) -> String {
    let out = String::from_utf8(openssl(&[
        "x509",
        "-in",
        cert,
        "-noout",
        "-fingerprint",
        digest,
    ]))
    .expect("utf-8 fingerprint");
    out.trim()
        .split_once('=')
        .map(|(_, h)| h.replace(':', "").to_ascii_uppercase())
        .expect("openssl fingerprint output")
}

impl TestCertificate {
    /// Generates a fresh key and certificate (`CN=<common_name>`, valid 2 days).
    pub fn generate(common_name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("graph-fake-cert-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let key = dir.join("key.pem");
        let cert = dir.join("cert.pem");
        let (key_s, cert_s) = (
            key.to_str().expect("utf-8 path"),
            cert.to_str().expect("utf-8 path"),
        );
        let subject = format!("/CN={common_name}");
        openssl(&[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2", "-subj",
            &subject, "-keyout", key_s, "-out", cert_s,
        ]);
        let cert_der = openssl(&["x509", "-in", cert_s, "-outform", "DER"]);
        let public_key_pem =
            String::from_utf8(openssl(&["x509", "-in", cert_s, "-pubkey", "-noout"])).expect("pem");
        let sha1_hex = fingerprint_hex(cert_s, "-sha1");
        let openssl_sha256_hex = fingerprint_hex(cert_s, "-sha256");
        let cert_pem = std::fs::read_to_string(&cert).expect("cert.pem");
        let private_key_pem = std::fs::read_to_string(&key).expect("key.pem");
        let _ = std::fs::remove_dir_all(&dir);
        Self {
            x5t_s256: x5t_s256(&cert_der),
            x5t_sha1: x5t_from_hex(&sha1_hex),
            cert_pem,
            cert_der,
            private_key_pem,
            public_key_pem,
            openssl_sha256_hex,
        }
    }

    /// What an app registration stores of this certificate.
    pub fn registered(&self) -> RegisteredCertificate {
        RegisteredCertificate {
            der: self.cert_der.clone(),
            public_key_pem: self.public_key_pem.clone(),
            x5t_s256: self.x5t_s256.clone(),
            x5t_sha1: Some(self.x5t_sha1.clone()),
        }
    }
}

/// `x5t#S256` of a DER certificate: base64url (no padding) of its SHA-256.
pub fn x5t_s256(cert_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(cert_der))
}

/// A hex thumbprint (as the portal shows it) in `x5t` form: base64url of the bytes.
pub fn x5t_from_hex(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex thumbprint"))
        .collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signature algorithm of a client assertion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssertionAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (older doc, many clients).
    Rs256,
    /// RSASSA-PSS with SHA-256, salt = 32 bytes (current doc).
    Ps256,
}

/// Which thumbprint the assertion header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThumbprintHeader {
    /// `x5t#S256` (current doc).
    S256,
    /// `x5t` (SHA-1, older doc).
    Sha1,
    /// Neither.
    None,
}

/// The JOSE header of a client assertion for `cert`.
pub fn assertion_header(
    cert: &TestCertificate,
    alg: AssertionAlg,
    thumb: ThumbprintHeader,
) -> Value {
    let mut h = Map::new();
    h.insert(
        "alg".into(),
        json!(match alg {
            AssertionAlg::Rs256 => "RS256",
            AssertionAlg::Ps256 => "PS256",
        }),
    );
    h.insert("typ".into(), json!("JWT"));
    match thumb {
        ThumbprintHeader::S256 => {
            h.insert("x5t#S256".into(), json!(cert.x5t_s256));
        }
        ThumbprintHeader::Sha1 => {
            h.insert("x5t".into(), json!(cert.x5t_sha1));
        }
        ThumbprintHeader::None => {}
    }
    Value::Object(h)
}

/// Standard assertion claims: `aud`, `iss` = `sub` = client id, a fresh `jti`, `nbf` = `iat` =
/// now, `exp` = now + 10 min.
pub fn assertion_claims(client_id: &str, audience: &str) -> Value {
    let now = unix_secs(SystemTime::now());
    json!({
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": new_guid(),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    })
}

/// Signs `header.claims` with a PKCS#8 PEM RSA key, by the header's `alg` (RS256 or PS256).
pub fn sign_jwt(header: &Value, claims: &Value, private_key_pem: &str) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));
    let input = format!("{}.{}", enc(header), enc(claims));
    let key = rsa::PrivateKey::from_pkcs8_pem(private_key_pem).expect("PKCS#8 RSA key");
    let sig: Vec<u8> = match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => rsa::pkcs1v15::SigningKey::<Sha256>::new(key)
            .sign(input.as_bytes())
            .to_vec(),
        Some("PS256") => rsa::pss::SigningKey::<Sha256>::new(key)
            .sign(input.as_bytes())
            .to_vec(),
        other => panic!("sign_jwt: unsupported alg {other:?}"),
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// A valid client assertion for `client_id` at `token_url`, signed by `cert`'s key.
pub fn client_assertion(
    cert: &TestCertificate,
    client_id: &str,
    token_url: &str,
    alg: AssertionAlg,
) -> String {
    sign_jwt(
        &assertion_header(cert, alg, ThumbprintHeader::S256),
        &assertion_claims(client_id, token_url),
        &cert.private_key_pem,
    )
}

/// A real JPEG of `w`×`h` (made by the `image` crate, independent of the library).
pub fn test_jpeg(w: u32, h: u32) -> Vec<u8> {
    encode_test_image(w, h, image::ImageFormat::Jpeg)
}

/// A real PNG of `w`×`h`.
pub fn test_png(w: u32, h: u32) -> Vec<u8> {
    encode_test_image(w, h, image::ImageFormat::Png)
}

fn encode_test_image(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 96])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

// ---------------------------------------------------------------------------------------------
// Small parsers and formatters
// ---------------------------------------------------------------------------------------------

/// `image/jpeg` or `image/png` from the magic bytes.
pub fn detect_image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else {
        None
    }
}

/// Width and height from a JPEG SOFn or a PNG IHDR.
pub fn image_size(b: &[u8]) -> Option<(u32, u32)> {
    if b.starts_with(&[0x89, b'P', b'N', b'G']) {
        if b.len() < 24 {
            return None;
        }
        let w = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
        let h = u32::from_be_bytes([b[20], b[21], b[22], b[23]]);
        return Some((w, h));
    }
    if !b.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    while i + 4 <= b.len() {
        if b[i] != 0xFF {
            return None;
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if marker == 0x01 || (0xD0..=0xD8).contains(&marker) {
            i += 2;
            continue;
        }
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        let is_sof = (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker);
        if is_sof {
            if i + 9 > b.len() {
                return None;
            }
            let h = u16::from_be_bytes([b[i + 5], b[i + 6]]) as u32;
            let w = u16::from_be_bytes([b[i + 7], b[i + 8]]) as u32;
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_decode(s: &str) -> String {
    pct_decode(&s.replace('+', " "))
}

/// `a=b&c=d` (form or query encoding) → decoded pairs.
fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (form_decode(k), form_decode(v)),
            None => (form_decode(p), String::new()),
        })
        .collect()
}

/// Path segments after the leading `/`, each percent-decoded on its own.
fn decoded_segments(path: &str) -> Vec<String> {
    path.strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(pct_decode)
        .collect()
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// (year, month, day, hour, minute, second) in UTC.
fn civil(t: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let secs = unix_secs(t);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `2020-08-18T12:51:51`, as in Graph's `innerError.date`.
pub fn iso_datetime(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
}

/// `2020-08-18 12:51:51Z`, as in Entra's `timestamp`.
pub fn entra_timestamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}Z")
}

// ---------------------------------------------------------------------------------------------
// HTTPS: a test CA made with the `openssl` command, and a TLS listener
// ---------------------------------------------------------------------------------------------

/// A throwaway certificate authority in a temporary folder, made with the `openssl` command
/// (EC P-256 keys, valid two days): its certificate is what a client is told to trust.
pub struct TestCa {
    dir: std::path::PathBuf,
    /// The CA certificate file (PEM).
    pub cert_path: std::path::PathBuf,
    key_path: std::path::PathBuf,
    serial: std::sync::atomic::AtomicU32,
}

/// A server certificate and its key (PEM), issued by a [`TestCa`].
#[derive(Clone)]
pub struct ServerCert {
    /// The certificate chain (leaf first, then the CA).
    pub chain_pem: Vec<u8>,
    /// The private key.
    pub key_pem: Vec<u8>,
}

impl TestCa {
    /// A new CA named `name`, in a fresh folder under the system's temporary folder.
    pub fn new(name: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "userphoto-test-ca-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("CA folder");
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let subj = format!("/CN={name}");
        let _ = openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key_path.to_str().unwrap(),
            "-out",
            cert_path.to_str().unwrap(),
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        Self {
            dir,
            cert_path,
            key_path,
            serial: std::sync::atomic::AtomicU32::new(1),
        }
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(&self.cert_path).expect("CA certificate")
    }

    /// A server certificate for these DNS names and IP addresses (subjectAltName).
    pub fn issue(&self, dns: &[&str], ips: &[&str]) -> ServerCert {
        let n = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = self.dir.join(format!("leaf{n}.key"));
        let csr = self.dir.join(format!("leaf{n}.csr"));
        let crt = self.dir.join(format!("leaf{n}.pem"));
        let ext = self.dir.join(format!("leaf{n}.ext"));
        let mut san: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
        san.extend(ips.iter().map(|i| format!("IP:{i}")));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
                san.join(",")
            ),
        )
        .unwrap();
        let cn = format!("/CN={}", dns.first().or(ips.first()).unwrap_or(&"server"));
        let _ = openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
            "-subj",
            &cn,
        ]);
        let _ = openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            self.cert_path.to_str().unwrap(),
            "-CAkey",
            self.key_path.to_str().unwrap(),
            "-set_serial",
            &n.to_string(),
            "-days",
            "2",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            crt.to_str().unwrap(),
        ]);
        let mut chain_pem = std::fs::read(&crt).unwrap();
        chain_pem.extend(self.cert_pem());
        ServerCert {
            chain_pem,
            key_pem: std::fs::read(&key).unwrap(),
        }
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ServerCert {
    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&self.chain_pem)
            .collect::<Result<_, _>>()
            .expect("certificate chain PEM");
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).expect("key PEM");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
    }
}

/// Accepts TCP connections and completes the TLS handshake (a client that refuses the
/// certificate only ends its own connection).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let hs = tokio::time::timeout(Duration::from_secs(10), self.acceptor.accept(tcp));
            if let Ok(Ok(tls)) = hs.await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
