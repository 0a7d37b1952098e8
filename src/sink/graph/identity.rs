//! Credentials without a stored secret: Azure managed identity ([`ManagedIdentity`]) and
//! workload identity federation ([`WorkloadIdentity`]).
//!
//! * **Managed identity** asks a local endpoint of the Azure resource the program runs on
//!   for a Graph token (`resource=https://graph.microsoft.com`, no scope):
//!   - App Service, Functions, Container Apps, Automation: `IDENTITY_ENDPOINT` with the
//!     `X-IDENTITY-HEADER: {IDENTITY_HEADER}` header, `api-version=2019-08-01`; the answer's
//!     `expires_on` is epoch seconds (a string); a user-assigned identity by `client_id`.
//!   - Azure Arc servers: `IDENTITY_ENDPOINT` (with `IMDS_ENDPOINT` set),
//!     `api-version=2020-06-01`, `Metadata: true`. The first request is refused with
//!     `401` and `WWW-Authenticate: Basic realm={path of a .key file}`; the file, which only
//!     an administrator or the `himds` group may read, is read (only inside the agent's token
//!     folder, at most 4096 bytes) and the request is sent again with
//!     `Authorization: Basic {its contents}`. Arc has no user-assigned identities.
//!   - Azure VMs and scale sets: the instance metadata service,
//!     `http://169.254.169.254/metadata/identity/oauth2/token`, `api-version=2018-02-01`,
//!     `Metadata: true`, `client_id` for a user-assigned identity. Its host can be replaced
//!     as Azure's SDKs allow (`AZURE_POD_IDENTITY_AUTHORITY_HOST`, or
//!     [`ManagedIdentity::imds_url`]). 404, 410 (the service is being updated), 429 and 5xx
//!     are retried with an exponential backoff, a bounded number of times.
//! * **Workload identity federation** (Kubernetes' Azure workload identity, GitHub Actions'
//!   OIDC token, any federated credential): a JWT that another issuer gave this workload,
//!   read from `AZURE_FEDERATED_TOKEN_FILE` **on every token request** (the kubelet rotates
//!   it), is sent as the `client_assertion` of a client-credentials request at the normal
//!   v2.0 token endpoint (`AZURE_AUTHORITY_HOST`/`{AZURE_TENANT_ID}/oauth2/v2.0/token`) for
//!   the app `AZURE_CLIENT_ID`.
//!
//! Tokens from both go through the sink's token cache (refreshed before they expire, one
//! request at a time), like those of a secret or a certificate.
//!
//! The answers of these endpoints are untrusted: a body over 64 KiB, a body that is not
//! JSON, a missing `access_token` or lifetime become typed errors, never a panic. Plain
//! `http://` (these endpoints are plain HTTP by design) is accepted only to loopback and
//! link-local (169.254.0.0/16) addresses, unless the sink allows insecure HTTP.
//!
//! Not the `azure_identity` crate: it brings reqwest, where this crate uses hyper and rustls
//! (see `http.rs` for why not reqwest); its instance metadata endpoint is a constant, so it
//! cannot be pointed at a test server; its Arc key folder is fixed; and it is configured
//! from the environment only. These protocols are a few GET requests on the client this
//! sink already has.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use percent_encoding::utf8_percent_encode;

use super::http::{new_guid, parse_retry_after, rewrap, Http, Limits, Raw};
use super::token::{token_lifetime, FORM};
use crate::{Error, ErrorKind, Result, Secret};

/// The instance metadata service's default host.
pub const IMDS_DEFAULT_HOST: &str = "http://169.254.169.254";

/// The path of the token endpoint of the instance metadata service (and of Azure Arc).
const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// The most read of an Arc key file (Azure's SDKs refuse larger ones too).
const ARC_KEY_MAX_BYTES: u64 = 4096;

/// The most read of a federated token file.
const TOKEN_FILE_MAX_BYTES: u64 = 64 << 10;

/// Body limits of a managed identity endpoint's answers.
const IDENTITY_LIMITS: Limits = Limits {
    ok: 64 << 10,
    error: 16 << 10,
};

/// Which managed identity endpoint a [`ManagedIdentity`] asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManagedIdentityKind {
    /// App Service, Functions, Container Apps, Automation (`IDENTITY_ENDPOINT` +
    /// `IDENTITY_HEADER`).
    AppService,
    /// An Azure Arc-enabled server (`IDENTITY_ENDPOINT` + `IMDS_ENDPOINT`).
    AzureArc,
    /// The instance metadata service of an Azure VM or scale set.
    Imds,
}

#[derive(Clone, Debug)]
enum Endpoint {
    AppService { url: String, header: Secret },
    Arc { url: String },
    Imds { host: Option<String> },
}

/// An Azure managed identity, system-assigned or user-assigned
/// ([`client_id`](Self::client_id)), as the Graph sink's credential.
///
/// ```no_run
/// use userphoto::sink::{GraphSink, ManagedIdentity};
/// // On an Azure VM, App Service or Arc server: the endpoint is found from the environment.
/// let mi = ManagedIdentity::from_env()?.client_id("6e3c1f0a-2b4d-4e8f-9a1c-3d5e7f9b1c2d");
/// let sink = GraphSink::builder_for(mi).build()?;
/// # Ok::<(), userphoto::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ManagedIdentity {
    endpoint: Endpoint,
    client_id: Option<String>,
    arc_key_dir: Option<PathBuf>,
    retries: u32,
    retry_delay: Duration,
}

impl ManagedIdentity {
    fn with(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            client_id: None,
            arc_key_dir: None,
            retries: 5,
            retry_delay: Duration::from_millis(800),
        }
    }

    /// The instance metadata service of an Azure VM or scale set, at
    /// [`IMDS_DEFAULT_HOST`] (see [`imds_url`](Self::imds_url)).
    pub fn imds() -> Self {
        Self::with(Endpoint::Imds { host: None })
    }

    /// App Service, Functions, Container Apps or Automation: the `IDENTITY_ENDPOINT` URL and
    /// the `IDENTITY_HEADER` value (a secret: sent as `X-IDENTITY-HEADER`, never shown).
    pub fn app_service(endpoint: impl Into<String>, header: Secret) -> Self {
        Self::with(Endpoint::AppService {
            url: endpoint.into(),
            header,
        })
    }

    /// An Azure Arc-enabled server: its `IDENTITY_ENDPOINT` URL (as in
    /// `http://localhost:40342/metadata/identity/oauth2/token`).
    pub fn azure_arc(endpoint: impl Into<String>) -> Self {
        Self::with(Endpoint::Arc {
            url: endpoint.into(),
        })
    }

    /// The endpoint the environment names, as Azure's SDKs pick it: `IDENTITY_ENDPOINT` with
    /// `IDENTITY_HEADER` is App Service; `IDENTITY_ENDPOINT` with `IMDS_ENDPOINT` is Azure
    /// Arc; otherwise the instance metadata service, at `AZURE_POD_IDENTITY_AUTHORITY_HOST`
    /// when that is set. [`Config`](ErrorKind::Config) when `IDENTITY_ENDPOINT` is set with
    /// neither of the other two.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) with `lookup` as the environment.
    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        match (
            var("IDENTITY_ENDPOINT"),
            var("IDENTITY_HEADER"),
            var("IMDS_ENDPOINT"),
        ) {
            (Some(url), Some(header), _) => Ok(Self::app_service(url, Secret::new(header))),
            (Some(url), None, Some(_)) => Ok(Self::azure_arc(url)),
            (Some(_), None, None) => Err(Error::new(
                ErrorKind::Config,
                "IDENTITY_ENDPOINT is set without IDENTITY_HEADER (App Service) or \
                 IMDS_ENDPOINT (Azure Arc): this managed identity environment is not supported",
            )),
            (None, _, _) => {
                let mut mi = Self::imds();
                if let Some(h) = var("AZURE_POD_IDENTITY_AUTHORITY_HOST") {
                    mi = mi.imds_url(h);
                }
                Ok(mi)
            }
        }
    }

    /// A user-assigned identity, by its client id (without it: the system-assigned one).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.client_id = Some(id.trim().to_owned()).filter(|s| !s.is_empty());
        self
    }

    /// The instance metadata service at this host root instead of [`IMDS_DEFAULT_HOST`], as
    /// in `http://127.0.0.1:8080` (the client adds `/metadata/identity/oauth2/token`): a
    /// test server, or a pod identity proxy. Makes this an instance metadata identity.
    pub fn imds_url(mut self, host: impl Into<String>) -> Self {
        self.endpoint = Endpoint::Imds {
            host: Some(host.into()),
        };
        self
    }

    /// Where the Azure Arc agent writes its key files, instead of its documented folder
    /// (`/var/opt/azcmagent/tokens`, or `%ProgramData%\AzureConnectedMachineAgent\Tokens` on
    /// Windows): a key file named by the challenge anywhere else is refused.
    pub fn arc_key_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.arc_key_dir = Some(dir.into());
        self
    }

    /// How many times the instance metadata service is asked again after a 404, 410, 429 or
    /// 5xx (default 5), and the first wait (default 0.8 s; it doubles each time, at most
    /// 30 s, or the answer's `Retry-After` when that is longer, at most 60 s).
    pub fn imds_retries(mut self, retries: u32, first_delay: Duration) -> Self {
        self.retries = retries.min(20);
        self.retry_delay = first_delay;
        self
    }

    /// Which endpoint this identity asks.
    pub fn kind(&self) -> ManagedIdentityKind {
        match self.endpoint {
            Endpoint::AppService { .. } => ManagedIdentityKind::AppService,
            Endpoint::Arc { .. } => ManagedIdentityKind::AzureArc,
            Endpoint::Imds { .. } => ManagedIdentityKind::Imds,
        }
    }

    /// The user-assigned identity's client id, if one was chosen.
    pub fn user_assigned_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The URL asked, without its query.
    pub fn endpoint_url(&self) -> String {
        match &self.endpoint {
            Endpoint::AppService { url, .. } | Endpoint::Arc { url } => url.trim().to_owned(),
            Endpoint::Imds { host } => format!(
                "{}{IMDS_TOKEN_PATH}",
                host.as_deref()
                    .unwrap_or(IMDS_DEFAULT_HOST)
                    .trim()
                    .trim_end_matches('/')
            ),
        }
    }

    /// Checks the endpoint URL: `https://` anywhere, `http://` to loopback or link-local
    /// addresses only unless `insecure`.
    pub(crate) fn check(&self, insecure: bool) -> std::result::Result<(), String> {
        let u = self.endpoint_url();
        let uri: hyper::Uri = u
            .parse()
            .map_err(|e| format!("the managed identity endpoint {u:?} is not a URL: {e}"))?;
        let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
        let host = uri.host().unwrap_or("");
        if host.is_empty() || !(scheme == "http" || scheme == "https") {
            return Err(format!(
                "the managed identity endpoint {u:?} must be an http:// or https:// URL with a host"
            ));
        }
        if scheme == "https" || insecure || is_local(host) {
            return Ok(());
        }
        Err(format!(
            "the managed identity endpoint {u:?} is plain http:// to a host that is neither \
             loopback nor link-local (169.254.0.0/16): the token would cross the network in \
             clear, which only {} allows",
            crate::cited::GRAPH_ALLOW_INSECURE_HTTP
        ))
    }

    fn arc_dir(&self) -> PathBuf {
        if let Some(d) = &self.arc_key_dir {
            return d.clone();
        }
        if cfg!(windows) {
            let base = std::env::var_os("ProgramData")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
            base.join("AzureConnectedMachineAgent").join("Tokens")
        } else {
            PathBuf::from("/var/opt/azcmagent/tokens")
        }
    }
}

/// Loopback or link-local (the instance metadata service's 169.254.169.254).
fn is_local(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match h.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// Workload identity federation: an app registration (or user-assigned identity) that trusts
/// another issuer's tokens, and the file where that issuer's current token is.
///
/// ```no_run
/// use userphoto::sink::{GraphSink, WorkloadIdentity};
/// // In a pod with the Azure workload identity webhook, or with the same variables set.
/// let sink = GraphSink::builder_for(WorkloadIdentity::from_env()?).build()?;
/// # Ok::<(), userphoto::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct WorkloadIdentity {
    tenant: String,
    client_id: String,
    token_file: PathBuf,
    authority_host: Option<String>,
}

impl WorkloadIdentity {
    /// The tenant (id or domain), the app's client id, and the token file.
    pub fn new(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        token_file: impl Into<PathBuf>,
    ) -> Self {
        Self {
            tenant: tenant.into().trim().to_owned(),
            client_id: client_id.into().trim().to_owned(),
            token_file: token_file.into(),
            authority_host: None,
        }
    }

    /// From `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE` (all needed)
    /// and `AZURE_AUTHORITY_HOST` (optional), the variables the Azure workload identity
    /// webhook sets in a pod. [`Config`](ErrorKind::Config) names a missing one.
    pub fn from_env() -> Result<Self> {
        let var = |k: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Config,
                        format!("workload identity needs the environment variable {k}"),
                    )
                })
        };
        let mut w = Self::new(
            var("AZURE_TENANT_ID")?,
            var("AZURE_CLIENT_ID")?,
            var("AZURE_FEDERATED_TOKEN_FILE")?,
        );
        if let Ok(h) = var("AZURE_AUTHORITY_HOST") {
            w = w.authority_host(h);
        }
        Ok(w)
    }

    /// The login authority root, as in `https://login.microsoftonline.com/` (the client adds
    /// `{tenant}/oauth2/v2.0/token`); without it the sink's login URL or its cloud's.
    pub fn authority_host(mut self, url: impl Into<String>) -> Self {
        self.authority_host = Some(url.into());
        self
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The app's client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The federated token file.
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    /// The authority host, if one was given.
    pub fn authority(&self) -> Option<&str> {
        self.authority_host.as_deref()
    }

    /// The file's current token (read now: it rotates). Never shown in errors.
    pub(crate) fn assertion(&self) -> Result<String> {
        let p = &self.token_file;
        let cfg = |m: String| Error::new(ErrorKind::Config, m).permanent().run_level();
        let meta = std::fs::metadata(p).map_err(|e| {
            cfg(format!(
                "cannot read the federated token file {}: {e}",
                p.display()
            ))
        })?;
        if meta.len() > TOKEN_FILE_MAX_BYTES {
            return Err(cfg(format!(
                "the federated token file {} is {} bytes, over the {TOKEN_FILE_MAX_BYTES} read",
                p.display(),
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(p).map_err(|e| {
            cfg(format!(
                "cannot read the federated token file {}: {e}",
                p.display()
            ))
        })?;
        let t = text.trim();
        if t.is_empty() {
            return Err(cfg(format!(
                "the federated token file {} is empty",
                p.display()
            )));
        }
        if t.split('.').count() != 3 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(cfg(format!(
                "the federated token file {} does not hold a JWT",
                p.display()
            )));
        }
        Ok(t.to_owned())
    }
}

impl fmt::Display for ManagedIdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AppService => "App Service",
            Self::AzureArc => "Azure Arc",
            Self::Imds => "instance metadata service",
        })
    }
}

/// A token from a managed identity endpoint for `resource`, and its lifetime.
pub(crate) async fn managed_token(
    http: &Http,
    mi: &ManagedIdentity,
    resource: &str,
    backend: &str,
) -> Result<(String, Duration)> {
    let err = |kind: ErrorKind, msg: String| {
        Error::new(kind, msg)
            .with_backend(backend.to_owned())
            .with_operation("token")
    };
    let base = mi.endpoint_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let enc = |v: &str| utf8_percent_encode(v, FORM).to_string();
    let api = match mi.kind() {
        ManagedIdentityKind::AppService => "2019-08-01",
        ManagedIdentityKind::AzureArc => "2020-06-01",
        ManagedIdentityKind::Imds => "2018-02-01",
    };
    let mut url = format!("{base}{sep}api-version={api}&resource={}", enc(resource));
    if let Some(id) = &mi.client_id {
        if mi.kind() == ManagedIdentityKind::AzureArc {
            return Err(err(
                ErrorKind::Config,
                format!(
                    "Azure Arc has no user-assigned managed identities, but a client id was \
                     given ({}: {id})",
                    crate::cited::MANAGED_IDENTITY_CLIENT_ID
                ),
            )
            .permanent()
            .run_level());
        }
        url.push_str(&format!("&client_id={}", enc(id)));
    }
    let shown = format!("the {} endpoint {base}", mi.kind());
    let crid = new_guid();
    let send = |extra: Option<(&'static str, String)>| {
        let url = url.clone();
        let crid = crid.clone();
        let shown = shown.clone();
        async move {
            let mut headers: Vec<(&str, String)> = vec![
                ("accept", "application/json".to_owned()),
                ("client-request-id", crid),
            ];
            match &mi.endpoint {
                Endpoint::AppService { header, .. } => {
                    headers.push(("x-identity-header", header.expose().to_owned()))
                }
                Endpoint::Arc { .. } | Endpoint::Imds { .. } => {
                    headers.push(("metadata", "true".to_owned()))
                }
            }
            if let Some(h) = extra {
                headers.push(h);
            }
            let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            http.send(hyper::Method::GET, &url, &refs, None, IDENTITY_LIMITS)
                .await
                .map_err(|e| {
                    rewrap(
                        &e,
                        e.kind(),
                        format!("token request to {shown}: {}", e.message()),
                    )
                    .with_backend(backend.to_owned())
                    .with_operation("token")
                })
        }
    };
    let mut raw = send(None).await?;
    match mi.kind() {
        ManagedIdentityKind::AzureArc if raw.status == 401 => {
            let key = arc_key(mi, raw.header("www-authenticate").as_deref())
                .map_err(|m| err(ErrorKind::Unauthenticated, format!("{shown}: {m}")))
                .map_err(|e| e.permanent().run_level())?;
            raw = send(Some(("authorization", format!("Basic {}", key.expose())))).await?;
        }
        ManagedIdentityKind::Imds => raw = imds_retry(mi, raw, || send(None)).await?,
        _ => {}
    }
    let status = raw.status;
    let v: Option<serde_json::Value> = serde_json::from_slice(&raw.body).ok();
    if (200..300).contains(&status) {
        let bad = |what: &str| {
            err(
                ErrorKind::InvalidData,
                format!("{shown} answered {status} {what}"),
            )
            .permanent()
            .run_level()
        };
        let Some(v) = v.filter(|v| v.is_object()) else {
            return Err(bad("with a body that is not a JSON object"));
        };
        let token = match v.get("access_token").and_then(|t| t.as_str()) {
            Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()) => t.to_owned(),
            Some(_) => return Err(bad("with an access_token that is not a token")),
            None => return Err(bad("without an access_token")),
        };
        let lifetime = match (v.get("expires_in"), v.get("expires_on")) {
            (Some(x), _) if number(x).is_some() => token_lifetime(Some(x)),
            (_, Some(on)) => match number(on) {
                Some(at) => {
                    let now = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs_f64();
                    token_lifetime(Some(&serde_json::json!((at - now).max(0.0))))
                }
                None => return Err(bad("with an expires_on that is not epoch seconds")),
            },
            _ => return Err(bad("without expires_in or expires_on")),
        };
        return Ok((token, lifetime));
    }
    let retry_after = raw
        .header("retry-after")
        .and_then(|v| parse_retry_after(&v, SystemTime::now()));
    let detail = v.as_ref().map(describe).unwrap_or_default();
    let (kind, hint) = match (status, &mi.client_id) {
        (400, Some(id)) => (
            ErrorKind::Config,
            format!(
                "is the user-assigned identity {id} ({}) assigned to this resource?",
                crate::cited::MANAGED_IDENTITY_CLIENT_ID
            ),
        ),
        (400, None) => (
            ErrorKind::Config,
            "is a system-assigned managed identity enabled on this resource?".to_owned(),
        ),
        (401 | 403, _) => (
            ErrorKind::Unauthenticated,
            "the managed identity endpoint refused this process".to_owned(),
        ),
        (429, _) => (ErrorKind::RateLimited, String::new()),
        (404 | 410 | 500..=599, _) => (ErrorKind::Unavailable, String::new()),
        _ => (ErrorKind::Unauthenticated, String::new()),
    };
    let mut msg = format!("{shown} refused the token request: HTTP {status}");
    if !detail.is_empty() {
        msg.push_str(": ");
        msg.push_str(&detail);
    }
    if !hint.is_empty() {
        msg.push_str("; ");
        msg.push_str(&hint);
    }
    let e = err(kind, msg);
    Err(if kind.is_temporary() {
        e.temporary(retry_after)
    } else {
        e.permanent().run_level()
    })
}

/// The instance metadata service's answers that are asked again: 404 and 410 (the service
/// is being updated), 429 and 5xx.
fn imds_retryable(status: u16) -> bool {
    matches!(status, 404 | 410 | 429 | 500..=599)
}

/// One try of [`imds_retry`]: a transport failure is not retried, a retryable answer is.
enum ImdsTry {
    Failed(Error),
    Again(Raw),
}

/// `first`, the instance metadata service's answer, or, when that is retryable, the answer
/// of asking again up to [`ManagedIdentity::imds_retries`] times: the first wait
/// `retry_delay`, doubling, at most 30 s, or the answer's `Retry-After` (at most 60 s) when
/// that is longer. The last answer when the retries run out; a transport failure at once.
async fn imds_retry<F, Fut>(mi: &ManagedIdentity, first: Raw, mut send: F) -> Result<Raw>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Raw>>,
{
    use backon::{ExponentialBuilder, Retryable};
    use futures::future::{ready, Either};
    let mut first = Some(first);
    let attempt = || {
        // The first try is the answer already in hand; the later ones ask again.
        let sent = match first.take() {
            Some(raw) => Either::Left(ready(Ok(raw))),
            None => Either::Right(send()),
        };
        async move {
            match sent.await {
                Ok(raw) if imds_retryable(raw.status) => Err(ImdsTry::Again(raw)),
                Ok(raw) => Ok(raw),
                Err(e) => Err(ImdsTry::Failed(e)),
            }
        }
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(mi.retry_delay)
        .with_factor(2.0)
        .with_max_delay(Duration::from_secs(30))
        .with_max_times(mi.retries as usize);
    let asked = |t: &ImdsTry| match t {
        ImdsTry::Again(raw) => raw
            .header("retry-after")
            .and_then(|v| parse_retry_after(&v, SystemTime::now()))
            .map(|d| d.min(Duration::from_secs(60)))
            .unwrap_or_default(),
        ImdsTry::Failed(_) => Duration::ZERO,
    };
    match attempt
        .retry(backoff)
        .when(|t| matches!(t, ImdsTry::Again(_)))
        .adjust(|t, next| next.map(|d| d.max(asked(t))))
        .await
    {
        Ok(raw) | Err(ImdsTry::Again(raw)) => Ok(raw),
        Err(ImdsTry::Failed(e)) => Err(e),
    }
}

/// A number, or a string of one.
fn number(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
        .filter(|f| f.is_finite())
}

/// What an error body says (`error`/`error_description`, `message`, `error.message`), one
/// line of printable characters, at most 300 of them.
fn describe(v: &serde_json::Value) -> String {
    let s = |x: Option<&serde_json::Value>| x.and_then(|x| x.as_str()).unwrap_or("").to_owned();
    let mut parts = vec![];
    let error = v.get("error");
    if let Some(e) = error.and_then(|e| e.as_str()) {
        parts.push(e.to_owned());
    }
    for d in [
        s(v.get("error_description")),
        s(v.get("message")),
        s(error.and_then(|e| e.get("message"))),
    ] {
        if !d.is_empty() {
            parts.push(d);
        }
    }
    let line: String = parts
        .join(": ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    line.trim().to_owned()
}

/// The key of an Arc challenge: `Basic realm={path}`; the file must be a `.key` file directly
/// in the agent's folder, at most [`ARC_KEY_MAX_BYTES`].
fn arc_key(mi: &ManagedIdentity, challenge: Option<&str>) -> std::result::Result<Secret, String> {
    let c = challenge
        .ok_or("it answered 401 without a WWW-Authenticate challenge")?
        .trim();
    let realm = c
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("basic "))
        .and_then(|_| c[6..].trim().strip_prefix("realm="))
        .map(|r| r.trim().trim_matches('"'))
        .filter(|r| !r.is_empty())
        .ok_or("its 401 challenge is not `Basic realm=<key file>`")?;
    let path = Path::new(realm);
    if path.extension().and_then(|e| e.to_str()) != Some("key") {
        return Err("the challenge's key file does not end in .key".into());
    }
    let dir = mi.arc_dir();
    let want = dir
        .canonicalize()
        .map_err(|e| format!("the Arc key folder {}: {e}", dir.display()))?;
    let real = path
        .canonicalize()
        .map_err(|e| format!("cannot read the challenge's key file: {e}"))?;
    if real.parent() != Some(want.as_path()) {
        return Err(format!(
            "the challenge's key file is not in the Arc agent's folder {}",
            dir.display()
        ));
    }
    let meta = std::fs::metadata(&real).map_err(|e| format!("the key file: {e}"))?;
    if !meta.is_file() || meta.len() > ARC_KEY_MAX_BYTES {
        return Err(format!(
            "the challenge's key file is not a file of at most {ARC_KEY_MAX_BYTES} bytes"
        ));
    }
    let text =
        std::fs::read_to_string(&real).map_err(|e| format!("cannot read the key file: {e}"))?;
    let key = text.trim();
    if key.is_empty() || key.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err("the challenge's key file is empty or not printable ASCII".into());
    }
    Ok(Secret::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_url_checks() {
        assert_eq!(
            ManagedIdentity::imds().endpoint_url(),
            "http://169.254.169.254/metadata/identity/oauth2/token"
        );
        assert!(ManagedIdentity::imds().check(false).is_ok());
        let far = ManagedIdentity::app_service("http://10.1.2.3:8081/msi/token", Secret::new("h"));
        let e = far.check(false).unwrap_err();
        assert!(e.contains("in clear"), "{e}");
        assert!(e.contains(crate::cited::GRAPH_ALLOW_INSECURE_HTTP), "{e}");
        assert!(!e.contains("--"), "{e}");
        assert!(far.check(true).is_ok());
        assert!(ManagedIdentity::azure_arc("ftp://x").check(false).is_err());
        assert!(ManagedIdentity::azure_arc(
            "http://localhost:40342/metadata/identity/oauth2/token"
        )
        .check(false)
        .is_ok());
        let m = ManagedIdentity::imds().imds_url("http://127.0.0.1:9/");
        assert_eq!(
            m.endpoint_url(),
            "http://127.0.0.1:9/metadata/identity/oauth2/token"
        );
        assert!(!format!("{far:?}").contains("\"h\""), "{far:?}");
    }

    #[test]
    fn error_bodies_are_one_short_line() {
        let v = serde_json::json!({"error":"invalid_request","error_description":"Identity not found\r\nx"});
        assert_eq!(describe(&v), "invalid_request: Identity not found  x");
        let long = serde_json::json!({"message": "a".repeat(5000)});
        assert_eq!(describe(&long).len(), 300);
    }
}
