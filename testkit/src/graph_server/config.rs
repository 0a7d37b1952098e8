//! What the fake does, set before [`GraphServer::start`](super::GraphServer::start): the
//! default tenant and app, the role lists of contract 1.6, the table of `error.code` values, the
//! configuration, app registrations, directory seeds and the failure knobs.

use std::time::Duration;

use super::certs::{RegisteredCertificate, TestCertificate};

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

/// Everything the fake does, set before [`GraphServer::start`](super::GraphServer::start) and
/// changeable later through [`GraphServer::configure`](super::GraphServer::configure) (except
/// `users`, which only seed the directory at start).
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
    /// Users per page of `GET /users` without `$top` (Graph: 100); a longer listing ends
    /// with an `@odata.nextLink` to the next page. `$top` (1 to 999) overrides it.
    pub page_size: usize,
    /// Uploads are stored re-encoded, as Graph does: the picture decoded and written again
    /// as a JPEG (other bytes, the same picture), so a download never equals the upload.
    /// Default `false` (the stored bytes are the uploaded ones).
    pub reencode_uploads: bool,
    /// `allowedRoles` of `GET /beta/admin/people/photoUpdateSettings` (its `source` is
    /// `onPremises` under [`Self::cloud_updates_disabled`], else `cloud`).
    pub photo_update_allowed_roles: Vec<String>,
    /// `GET /beta/admin/people/photoUpdateSettings` answers 403 (the app may not read the
    /// tenant's people settings).
    pub photo_update_settings_denied: bool,
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
            page_size: 100,
            reencode_uploads: false,
            photo_update_allowed_roles: Vec::new(),
            photo_update_settings_denied: false,
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

    /// Lists users `n` per page ([`Self::page_size`], at least 1).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// Stores uploads re-encoded ([`Self::reencode_uploads`]).
    pub fn with_reencode(mut self, yes: bool) -> Self {
        self.reencode_uploads = yes;
        self
    }

    /// Users without a photo answer `GET …/photo` with the 200 1x1 placeholder
    /// ([`Self::legacy_placeholder`]) instead of 404.
    pub fn with_legacy_placeholder(mut self, yes: bool) -> Self {
        self.legacy_placeholder = yes;
        self
    }

    /// Every Nth Graph operation fails ([`Self::throttle`]).
    pub fn with_throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = Some(throttle);
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
    /// `onPremisesSyncEnabled`: `Some(true)` synced from AD, `Some(false)` no longer synced,
    /// `None` never synced (shown as `null`, and only when `$select` names it).
    pub on_premises_sync_enabled: Option<bool>,
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
            on_premises_sync_enabled: None,
        }
    }

    /// Sets `onPremisesSyncEnabled` (`None`: never synced).
    pub fn on_premises_sync_enabled(mut self, v: Option<bool>) -> Self {
        self.on_premises_sync_enabled = v;
        self
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
