//! OAuth2 client credentials against the Microsoft identity platform: a client secret, a
//! certificate (a signed JWT client assertion) or a federated token (workload identity), or a
//! managed identity's token (`identity.rs`); national clouds; the token cache.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use percent_encoding::utf8_percent_encode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use super::http::{new_guid, parse_retry_after, rewrap, Limits};
use super::identity::{managed_token, ManagedIdentity, WorkloadIdentity};
use super::token::{token_lifetime, FORM};
use crate::{Error, ErrorKind, Result, Secret};

/// A Microsoft cloud: where its Graph and its login endpoint live (Graph's "national cloud
/// deployments"; `reference/graph-contract.md` 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum GraphCloud {
    /// The global service (and Microsoft 365 GCC): `graph.microsoft.com`,
    /// `login.microsoftonline.com`.
    #[default]
    Global,
    /// US Government L4 (GCC High): `graph.microsoft.us`, `login.microsoftonline.us`.
    UsGov,
    /// US Government L5 (DoD): `dod-graph.microsoft.us`, `login.microsoftonline.us`.
    UsGovDod,
    /// China, operated by 21Vianet: `microsoftgraph.chinacloudapi.cn`,
    /// `login.chinacloudapi.cn`.
    China,
}

impl GraphCloud {
    /// Graph's service root (the client adds `/v1.0/…`); also the token's resource.
    pub fn graph_url(self) -> &'static str {
        match self {
            Self::Global => "https://graph.microsoft.com",
            Self::UsGov => "https://graph.microsoft.us",
            Self::UsGovDod => "https://dod-graph.microsoft.us",
            Self::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    /// The login authority root (the client adds `/{tenant}/oauth2/v2.0/token`).
    pub fn login_url(self) -> &'static str {
        match self {
            Self::Global => "https://login.microsoftonline.com",
            Self::UsGov | Self::UsGovDod => "https://login.microsoftonline.us",
            Self::China => "https://login.chinacloudapi.cn",
        }
    }

    /// The command-line name: `global`, `usgov`, `usgov-dod`, `china`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::UsGov => "usgov",
            Self::UsGovDod => "usgov-dod",
            Self::China => "china",
        }
    }
}

impl FromStr for GraphCloud {
    type Err = Error;

    /// `global`, `usgov` (or `usgov-l4`, `gcch`), `usgov-dod` (or `usgov-l5`, `dod`),
    /// `china`; case-insensitive.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "global" | "public" | "worldwide" => Ok(Self::Global),
            "usgov" | "usgov-l4" | "gcch" | "gcc-high" => Ok(Self::UsGov),
            "usgov-dod" | "usgov-l5" | "dod" => Ok(Self::UsGovDod),
            "china" | "cn" => Ok(Self::China),
            other => Err(Error::new(
                ErrorKind::Config,
                format!("unknown cloud {other:?}: expected global, usgov, usgov-dod or china"),
            )),
        }
    }
}

impl fmt::Display for GraphCloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The signature algorithm of a certificate's client assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256 (what Entra's current documentation shows; the default).
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (the older documentation; accepted too).
    Rs256,
}

/// A certificate credential: the X.509 certificate registered on the app, and its RSA
/// private key, which signs each client assertion. `Debug` shows only the thumbprint.
#[derive(Clone)]
pub struct GraphCertificate {
    key: Arc<aws_lc_rs::rsa::KeyPair>,
    x5t_s256: String,
    alg: AssertionAlgorithm,
}

impl GraphCertificate {
    /// From PEM text: the certificate (`-----BEGIN CERTIFICATE-----`, the first one is used)
    /// and its RSA private key (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1 `BEGIN RSA PRIVATE KEY`).
    /// [`Config`](ErrorKind::Config) when either does not parse.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        let cfg = |m: String| Error::new(ErrorKind::Config, m);
        let cert = CertificateDer::from_pem_slice(cert_pem).map_err(|e| {
            cfg(format!(
                "the client certificate is not a PEM certificate: {e}"
            ))
        })?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            // Never echo key material: the parser's message names the problem only.
            cfg(format!("the client key is not a PEM private key: {e}"))
        })?;
        let pair = match &key {
            PrivateKeyDer::Pkcs8(k) => aws_lc_rs::rsa::KeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => aws_lc_rs::rsa::KeyPair::from_der(k.secret_pkcs1_der()),
            _ => {
                return Err(cfg(
                    "the client key must be an RSA key (PKCS#8 or PKCS#1 PEM)".to_owned(),
                ))
            }
        }
        .map_err(|e| cfg(format!("the client key is not a usable RSA key: {e}")))?;
        Ok(Self {
            key: Arc::new(pair),
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(cert.as_ref())),
            alg: AssertionAlgorithm::default(),
        })
    }

    /// From a certificate file and a key file (PEM).
    pub fn from_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self> {
        let read = |p: &Path, what: &str| {
            std::fs::read(p).map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("cannot read the client {what} {}: {e}", p.display()),
                )
            })
        };
        Self::from_pem(
            &read(cert.as_ref(), "certificate")?,
            &read(key.as_ref(), "key")?,
        )
    }

    /// Signs assertions with `alg` (PS256 by default).
    pub fn with_algorithm(mut self, alg: AssertionAlgorithm) -> Self {
        self.alg = alg;
        self
    }

    /// `x5t#S256`: base64url of the SHA-256 of the certificate's DER.
    pub fn thumbprint_s256(&self) -> &str {
        &self.x5t_s256
    }

    /// A signed client assertion for `audience` (the token endpoint URL), valid 10 minutes.
    pub(crate) fn assertion(&self, client_id: &str, audience: &str) -> Result<String> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let alg = match self.alg {
            AssertionAlgorithm::Ps256 => "PS256",
            AssertionAlgorithm::Rs256 => "RS256",
        };
        let header = serde_json::json!({"alg": alg, "typ": "JWT", "x5t#S256": self.x5t_s256});
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": new_guid(),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = match self.alg {
            AssertionAlgorithm::Ps256 => &aws_lc_rs::signature::RSA_PSS_SHA256,
            AssertionAlgorithm::Rs256 => &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        };
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                padding,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| Error::new(ErrorKind::Other, "signing the client assertion failed"))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

impl fmt::Debug for GraphCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphCertificate")
            .field("x5t#S256", &self.x5t_s256)
            .field("alg", &self.alg)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// How the app proves who it is to the token endpoint. `Debug` never shows the secret or key.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum GraphCredential {
    /// A client secret (sent as `client_secret`).
    Secret(Secret),
    /// A certificate (a signed JWT sent as `client_assertion`).
    Certificate(GraphCertificate),
    /// An Azure managed identity: the token comes from the resource's local identity
    /// endpoint, not from the token endpoint; no tenant or app id is needed.
    ManagedIdentity(ManagedIdentity),
    /// Workload identity federation: another issuer's token, read from a file on every
    /// token request, sent as `client_assertion`.
    WorkloadIdentity(WorkloadIdentity),
}

impl From<ManagedIdentity> for GraphCredential {
    fn from(m: ManagedIdentity) -> Self {
        Self::ManagedIdentity(m)
    }
}

impl From<WorkloadIdentity> for GraphCredential {
    fn from(w: WorkloadIdentity) -> Self {
        Self::WorkloadIdentity(w)
    }
}

impl From<Secret> for GraphCredential {
    fn from(s: Secret) -> Self {
        Self::Secret(s)
    }
}

impl From<GraphCertificate> for GraphCredential {
    fn from(c: GraphCertificate) -> Self {
        Self::Certificate(c)
    }
}

struct Cached {
    token: Arc<str>,
    refresh_at: Instant,
}

/// Fetches and caches the app's access token. One token request at a time: concurrent
/// callers wait on the lock and then find the fresh token.
pub(crate) struct TokenSource {
    pub http: super::http::Http,
    pub token_url: String,
    pub client_id: String,
    pub scope: String,
    pub credential: GraphCredential,
    pub backend: String,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

/// How long before expiry a token is replaced: 10% of its lifetime, at most 5 minutes.
fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(300))
}

impl TokenSource {
    pub fn new(
        http: super::http::Http,
        token_url: String,
        client_id: String,
        scope: String,
        credential: GraphCredential,
        backend: String,
    ) -> Self {
        Self {
            http,
            token_url,
            client_id,
            scope,
            credential,
            backend,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// A valid token: the cached one until shortly before it expires, else a new one.
    pub async fn token(&self) -> Result<Arc<str>> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let (token, lifetime) = self.request().await?;
        let token: Arc<str> = Arc::from(token);
        let now = Instant::now();
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at: now
                .checked_add(lifetime.saturating_sub(refresh_margin(lifetime)))
                .unwrap_or(now),
        });
        Ok(token)
    }

    /// Forgets `used` (Graph refused it); a token fetched meanwhile by another call stays.
    pub async fn invalidate(&self, used: &str) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| &*c.token == used) {
            *cache = None;
        }
    }

    fn err(&self, kind: ErrorKind, msg: impl Into<String>) -> Error {
        Error::new(kind, msg)
            .with_backend(self.backend.clone())
            .with_operation("token")
    }

    async fn request(&self) -> Result<(String, Duration)> {
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
        ];
        match &self.credential {
            GraphCredential::Secret(s) => form.push(("client_secret", s.expose().to_owned())),
            GraphCredential::Certificate(c) => {
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ));
                form.push((
                    "client_assertion",
                    c.assertion(&self.client_id, &self.token_url)?,
                ));
            }
            GraphCredential::WorkloadIdentity(w) => {
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ));
                form.push((
                    "client_assertion",
                    w.assertion().map_err(|e| {
                        e.with_backend(self.backend.clone()).with_operation("token")
                    })?,
                ));
            }
            GraphCredential::ManagedIdentity(mi) => {
                // Not the token endpoint: the resource's identity endpoint, by `resource`.
                let resource = self.scope.trim_end_matches("/.default");
                return managed_token(&self.http, mi, resource, &self.backend).await;
            }
        }
        let crid = new_guid();
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, FORM)))
            .collect::<Vec<_>>()
            .join("&");
        let raw = self
            .http
            .send(
                hyper::Method::POST,
                &self.token_url,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("accept", "application/json"),
                    ("client-request-id", &crid),
                ],
                Some(bytes::Bytes::from(body)),
                Limits::JSON,
            )
            .await
            .map_err(|e| {
                rewrap(&e, e.kind(), format!("token request: {}", e.message()))
                    .with_backend(self.backend.clone())
                    .with_operation("token")
            })?;
        let status = raw.status;
        let retry_after = raw
            .header("retry-after")
            .and_then(|v| parse_retry_after(&v, SystemTime::now()));
        let body = raw.body;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if (200..300).contains(&status) {
            let token = v.get("access_token").and_then(|t| t.as_str());
            return match token {
                Some(t) if !t.is_empty() => Ok((t.to_owned(), token_lifetime(v.get("expires_in")))),
                _ => Err(self
                    .err(
                        ErrorKind::Unauthenticated,
                        format!(
                            "the token endpoint {} answered {status} without an access_token",
                            self.token_url
                        ),
                    )
                    .permanent()
                    .run_level()),
            };
        }
        Err(self.entra_error(status, &v, retry_after))
    }

    /// Entra's error JSON (`error`, `error_description`, `error_codes`) as a clear error.
    fn entra_error(
        &self,
        status: u16,
        v: &serde_json::Value,
        retry_after: Option<Duration>,
    ) -> Error {
        let error = v.get("error").and_then(|x| x.as_str()).unwrap_or("");
        let description = v
            .get("error_description")
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .split(['\r', '\n'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let codes: Vec<u64> = v
            .get("error_codes")
            .and_then(|x| x.as_array())
            .map(|a| a.iter().filter_map(|c| c.as_u64()).collect())
            .unwrap_or_default();
        let (kind, hint) = token_error(status, error, &codes);
        let mut msg = format!(
            "Entra ID refused the token request for app {} ({}): HTTP {status}",
            self.client_id, self.token_url
        );
        if !error.is_empty() {
            msg.push_str(&format!(" {error}"));
        }
        if !description.is_empty() {
            msg.push_str(&format!(": {description}"));
        }
        if !codes.is_empty() {
            msg.push_str(&format!(" (error_codes {codes:?})"));
        }
        if let Some((code, h)) = hint {
            msg.push_str(&format!("; AADSTS{code}: {h}"));
        }
        let e = self.err(kind, msg);
        if kind.is_temporary() {
            e.temporary(retry_after)
        } else {
            // A refused token refuses every user alike: stop the run at once.
            e.permanent().run_level()
        }
    }
}

/// The token endpoint's refusals (contract 4.3, `AADSTS` codes in `error_codes`): the kind
/// and, for a code this table knows, that code and what it means (the message cites it as
/// `AADSTS<code>: <meaning>`, see [`crate::cited`]). 429 and 5xx are temporary; everything
/// else is run-level (the caller marks it so).
fn token_error(
    status: u16,
    error: &str,
    codes: &[u64],
) -> (ErrorKind, Option<(u64, &'static str)>) {
    use ErrorKind::*;
    let has = |c: u64| codes.contains(&c);
    if status == 429 {
        return (RateLimited, None);
    }
    if (500..=599).contains(&status) || error == "temporarily_unavailable" {
        return (Unavailable, None);
    }
    // By AADSTS code first: it says more than `error`.
    let by_code: &[(u64, ErrorKind, &str)] = &[
        (
            7000215,
            Unauthenticated,
            "the client secret is wrong: give the secret's Value (not its ID)",
        ),
        (
            7000222,
            Unauthenticated,
            "the client secret has expired: create a new one on the app registration",
        ),
        (
            700027,
            Unauthenticated,
            "the certificate is not registered on the app, or the key does not match it",
        ),
        (
            700024,
            Unauthenticated,
            "the client assertion is outside its validity time: check this machine's clock",
        ),
        (
            7000112,
            Unauthenticated,
            "the application is disabled in the tenant",
        ),
        (
            700016,
            Config,
            "no such app in this tenant: check the client id and the tenant, and admin consent",
        ),
        (
            90002,
            Config,
            "no such tenant: check the tenant (its id or a verified domain) and the cloud \
             (GraphSinkBuilder::cloud)",
        ),
        (
            900023,
            Config,
            "the tenant is not a valid tenant id or domain",
        ),
        (
            7000216,
            Config,
            "no credential was sent: give a client secret or a certificate",
        ),
        (
            7000218,
            Config,
            "no credential was sent: give a client secret or a certificate",
        ),
        (
            70011,
            Config,
            "the scope is not valid: it must be the Graph resource followed by /.default",
        ),
    ];
    for (c, kind, hint) in by_code {
        if has(*c) {
            return (*kind, Some((*c, hint)));
        }
    }
    match error {
        "invalid_client" | "invalid_grant" | "unauthorized_client" => (Unauthenticated, None),
        "invalid_request" | "invalid_scope" | "unsupported_grant_type" => (Config, None),
        _ => (Unauthenticated, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds() {
        for (name, cloud, graph, login) in [
            (
                "global",
                GraphCloud::Global,
                "https://graph.microsoft.com",
                "https://login.microsoftonline.com",
            ),
            (
                "usgov",
                GraphCloud::UsGov,
                "https://graph.microsoft.us",
                "https://login.microsoftonline.us",
            ),
            (
                "usgov-dod",
                GraphCloud::UsGovDod,
                "https://dod-graph.microsoft.us",
                "https://login.microsoftonline.us",
            ),
            (
                "china",
                GraphCloud::China,
                "https://microsoftgraph.chinacloudapi.cn",
                "https://login.chinacloudapi.cn",
            ),
        ] {
            let c: GraphCloud = name.parse().unwrap();
            assert_eq!(c, cloud);
            assert_eq!(c.as_str(), name);
            assert_eq!(c.graph_url(), graph);
            assert_eq!(c.login_url(), login);
        }
        assert_eq!(
            "mars".parse::<GraphCloud>().unwrap_err().kind(),
            ErrorKind::Config
        );
    }

    #[test]
    fn refresh_margins() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3599)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(60)),
            Duration::from_secs(6)
        );
    }

    #[test]
    fn token_lifetimes_from_hostile_values() {
        use super::super::token::MAX_TOKEN_LIFETIME;
        use serde_json::json;
        let l = |v: serde_json::Value| token_lifetime(Some(&v));
        assert_eq!(l(json!(3599)), Duration::from_secs(3599));
        assert_eq!(
            l(json!("3599")),
            Duration::from_secs(3599),
            "managed identity"
        );
        assert_eq!(l(json!(1e300)), MAX_TOKEN_LIFETIME);
        assert_eq!(l(json!(u64::MAX)), MAX_TOKEN_LIFETIME);
        assert_eq!(l(json!("1e20")), MAX_TOKEN_LIFETIME);
        assert_eq!(l(json!("inf")), MAX_TOKEN_LIFETIME);
        assert_eq!(l(json!(-5)), Duration::from_secs(3599));
        assert_eq!(l(json!("NaN")), Duration::from_secs(3599));
        assert_eq!(l(json!("soon")), Duration::from_secs(3599));
        assert_eq!(l(json!({"a": 1})), Duration::from_secs(3599));
        assert_eq!(l(json!(0)), Duration::ZERO);
        assert_eq!(token_lifetime(None), Duration::from_secs(3599));
        // The cache's arithmetic with the largest lifetime.
        let m = MAX_TOKEN_LIFETIME;
        assert!(Instant::now()
            .checked_add(m.saturating_sub(refresh_margin(m)))
            .is_some());
    }

    #[test]
    fn the_token_error_table() {
        use ErrorKind::*;
        /// Status, `error`, `error_codes`, the kind, a word the hint holds.
        type Row = (
            u16,
            &'static str,
            &'static [u64],
            ErrorKind,
            Option<&'static str>,
        );
        let table: &[Row] = &[
            (
                401,
                "invalid_client",
                &[7000215],
                Unauthenticated,
                Some("Value"),
            ),
            (
                401,
                "invalid_client",
                &[7000222],
                Unauthenticated,
                Some("expired"),
            ),
            (
                401,
                "invalid_client",
                &[700027],
                Unauthenticated,
                Some("certificate"),
            ),
            (
                400,
                "unauthorized_client",
                &[700016],
                Config,
                Some("the client id and the tenant"),
            ),
            (
                400,
                "invalid_request",
                &[90002],
                Config,
                Some("no such tenant"),
            ),
            (
                400,
                "invalid_request",
                &[900023],
                Config,
                Some("not a valid tenant id"),
            ),
            (
                400,
                "invalid_request",
                &[7000216],
                Config,
                Some("credential"),
            ),
            (400, "invalid_scope", &[70011], Config, Some("/.default")),
            (401, "invalid_client", &[], Unauthenticated, None),
            (400, "invalid_grant", &[], Unauthenticated, None),
            (400, "unsupported_grant_type", &[], Config, None),
            (400, "something_new", &[], Unauthenticated, None),
            (429, "", &[], RateLimited, None),
            (503, "", &[], Unavailable, None),
            (400, "temporarily_unavailable", &[], Unavailable, None),
        ];
        for (status, error, codes, kind, hint) in table {
            let (k, h) = token_error(*status, error, codes);
            assert_eq!(k, *kind, "{status} {error} {codes:?}");
            match hint {
                Some(want) => {
                    let (code, h) = h.unwrap();
                    assert!(codes.contains(&code), "{code} {codes:?}");
                    assert!(h.contains(want), "{h:?}");
                    // Facts in the library's terms: no application's flags.
                    assert!(!h.contains("--"), "{h:?}");
                }
                None => assert!(h.is_none(), "{h:?}"),
            }
        }
    }

    #[test]
    fn the_cited_codes_are_the_table_s() {
        use crate::cited;
        for (code, cited) in [
            (700016, cited::AADSTS_APP_NOT_FOUND),
            (90002, cited::AADSTS_TENANT_NOT_FOUND),
            (900023, cited::AADSTS_INVALID_TENANT),
        ] {
            let (kind, hint) = token_error(400, "invalid_request", &[code]);
            assert_eq!(kind, ErrorKind::Config);
            assert_eq!(
                hint.map(|(c, _)| format!("AADSTS{c}")).as_deref(),
                Some(cited)
            );
        }
    }

    #[test]
    fn bad_pem_is_config() {
        let e = GraphCertificate::from_pem(b"nope", b"nope").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
    }
}
