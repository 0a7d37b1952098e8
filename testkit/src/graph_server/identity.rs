//! The Graph fake's credentials without a stored secret: the managed identity endpoints of
//! Azure resources and federated credentials (workload identity) at the token endpoint.
//!
//! * App Service / Functions: `GET /msi/token?api-version=2019-08-01&resource=…[&client_id=…]`
//!   with `X-IDENTITY-HEADER`; answers `access_token`, `expires_on` (epoch seconds, a
//!   string), `resource`, `token_type`, `client_id`.
//! * Azure Arc (when [`ManagedIdentityConfig::arc_key_dir`] is set):
//!   `GET /metadata/identity/oauth2/token?api-version=2020-06-01&resource=…` with
//!   `Metadata: true`; without `Authorization` it writes a fresh `.key` file in that folder and
//!   answers `401` with `WWW-Authenticate: Basic realm={its path}`; with
//!   `Authorization: Basic {the file's contents}` it answers like the instance metadata
//!   service (each key works once).
//! * The instance metadata service (otherwise): the same path, `api-version=2018-02-01`,
//!   `Metadata: true`, `client_id` for a user-assigned identity; answers `access_token`,
//!   `client_id`, `expires_in`, `expires_on`, `ext_expires_in`, `not_before` (strings),
//!   `resource`, `token_type`. Errors are `{"error","error_description"}`.
//! * Federated credentials ([`GraphServer::add_federated_credential`]): a `client_assertion`
//!   whose `iss` is a registered issuer is checked against it: RS256 signature by the
//!   issuer's key, `sub`, `aud` (by default `api://AzureADTokenExchange`), `exp`.
//!
//! Tokens are issued like the token endpoint's (the app registration of each identity's
//! client id, [`GraphServerConfig::token_lifetime`](super::GraphServerConfig::token_lifetime))
//! and counted in [`GraphServer::tokens_issued`]; requests are recorded as
//! [`RequestKind::Token`](super::RequestKind::Token).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::pkcs8::DecodePublicKey;
use rsa::sha2::Sha256;
use rsa::signature::Verifier;
use serde_json::{json, Value};

use super::{
    issue_token, parse_query, sign_jwt, unix_secs, AppRegistration, Corr, GraphServer, Inner, Op,
    Payload, Reply, TestCertificate, DEFAULT_APP_ROLES,
};

/// The `aud` of federated tokens meant for Entra ID (its documented default).
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The managed identities of the fake's Azure resource.
#[derive(Clone, Debug)]
pub struct ManagedIdentityConfig {
    /// The client id of the system-assigned identity.
    pub system_client_id: String,
    /// Client ids of user-assigned identities.
    pub user_assigned: Vec<String>,
    /// The App Service `IDENTITY_HEADER` value `/msi/token` requires.
    pub identity_header: String,
    /// Azure Arc: the folder challenge key files are written to. `None`: the metadata path is
    /// the instance metadata service.
    pub arc_key_dir: Option<PathBuf>,
}

impl ManagedIdentityConfig {
    /// A system-assigned identity `system_client_id`, the header `identity_header`, no
    /// user-assigned identity, IMDS (not Arc) on the metadata path.
    pub fn new(system_client_id: &str, identity_header: &str) -> Self {
        Self {
            system_client_id: system_client_id.to_string(),
            user_assigned: Vec::new(),
            identity_header: identity_header.to_string(),
            arc_key_dir: None,
        }
    }

    /// Adds a user-assigned identity.
    pub fn user_assigned(mut self, client_id: &str) -> Self {
        self.user_assigned.push(client_id.to_string());
        self
    }

    /// Makes the metadata path Azure Arc's, with key files in `dir`.
    pub fn arc(mut self, dir: impl Into<PathBuf>) -> Self {
        self.arc_key_dir = Some(dir.into());
        self
    }
}

/// A federated identity credential on an app registration: tokens of `issuer` for `subject`
/// and `audience`, signed by `public_key_pem`'s key.
#[derive(Clone, Debug)]
pub struct FederatedCredential {
    /// The app (client id) that trusts the issuer.
    pub client_id: String,
    /// The `iss` claim.
    pub issuer: String,
    /// The `sub` claim, as `system:serviceaccount:{namespace}:{name}`.
    pub subject: String,
    /// The `aud` claim required ([`TOKEN_EXCHANGE_AUDIENCE`]).
    pub audience: String,
    /// The issuer's signing key (SubjectPublicKeyInfo PEM).
    pub public_key_pem: String,
}

impl FederatedCredential {
    /// `client_id` trusts `issuer`'s tokens for `subject`, audience [`TOKEN_EXCHANGE_AUDIENCE`].
    pub fn new(client_id: &str, issuer: &TestIssuer, subject: &str) -> Self {
        Self {
            client_id: client_id.to_string(),
            issuer: issuer.issuer.clone(),
            subject: subject.to_string(),
            audience: TOKEN_EXCHANGE_AUDIENCE.to_string(),
            public_key_pem: issuer.key.registered().public_key_pem,
        }
    }
}

/// A test token issuer (an OIDC provider such as a Kubernetes cluster or GitHub Actions): an
/// RSA key that signs RS256 JWTs.
#[derive(Clone, Debug)]
pub struct TestIssuer {
    /// The `iss` of its tokens.
    pub issuer: String,
    key: TestCertificate,
}

impl TestIssuer {
    /// A fresh key for `issuer` (made with `openssl`, as [`TestCertificate`]).
    pub fn generate(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_string(),
            key: TestCertificate::generate("test-issuer"),
        }
    }

    /// A token for `subject` with `aud` = [`TOKEN_EXCHANGE_AUDIENCE`], valid `lifetime` from now.
    pub fn token(&self, subject: &str, lifetime: Duration) -> String {
        self.token_with(subject, TOKEN_EXCHANGE_AUDIENCE, lifetime.as_secs() as i64)
    }

    /// A token for `subject` and `audience`, expiring `exp_in_secs` from now (negative: in
    /// the past).
    pub fn token_with(&self, subject: &str, audience: &str, exp_in_secs: i64) -> String {
        let now = unix_secs(SystemTime::now()) as i64;
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": "test-issuer-key"});
        let claims = json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": [audience],
            "iat": now,
            "nbf": now - 1,
            "exp": now + exp_in_secs,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        sign_jwt(&header, &claims, &self.key.private_key_pem)
    }
}

/// An answer a managed identity endpoint gives instead of its own, once
/// ([`GraphServer::inject_identity_answers`]): for retries and hostile answers.
#[derive(Clone, Debug)]
pub struct IdentityAnswer {
    /// The status.
    pub status: u16,
    /// The body, as is.
    pub body: Vec<u8>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl IdentityAnswer {
    /// `status` with an IMDS-style error body.
    pub fn status(status: u16) -> Self {
        Self::raw(
            status,
            br#"{"error":"temporarily_unavailable","error_description":"injected"}"#.to_vec(),
        )
    }

    /// `status` with `body`.
    pub fn raw(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// The fake's identity state (in `ServerState`).
#[derive(Default, Debug)]
pub(super) struct IdentityState {
    mi: Option<ManagedIdentityConfig>,
    federated: Vec<FederatedCredential>,
    injected: VecDeque<IdentityAnswer>,
    arc_keys: Vec<String>,
}

impl GraphServer {
    /// Gives the fake's resource managed identities: registers an app for each client id
    /// (with [`DEFAULT_APP_ROLES`]) and answers the identity endpoints.
    pub fn enable_managed_identity(&self, cfg: ManagedIdentityConfig) {
        let mut st = self.inner.lock();
        let ids = std::iter::once(cfg.system_client_id.clone()).chain(cfg.user_assigned.clone());
        for id in ids {
            if !st
                .cfg
                .apps
                .iter()
                .any(|a| a.client_id.eq_ignore_ascii_case(&id))
            {
                st.cfg.apps.push(AppRegistration {
                    client_id: id,
                    client_secret: None,
                    certificates: Vec::new(),
                    roles: DEFAULT_APP_ROLES.iter().map(|r| r.to_string()).collect(),
                });
            }
        }
        st.identity.mi = Some(cfg);
    }

    /// Registers a federated credential (its app must be registered, as with
    /// [`GraphServerConfig::with_app`](super::GraphServerConfig::with_app)).
    pub fn add_federated_credential(&self, cred: FederatedCredential) {
        self.inner.lock().identity.federated.push(cred);
    }

    /// The next identity endpoint requests get these answers, in order, instead of their own.
    pub fn inject_identity_answers(&self, answers: impl IntoIterator<Item = IdentityAnswer>) {
        self.inner.lock().identity.injected.extend(answers);
    }

    /// Requests to the managed identity endpoints (`/msi/token`, the metadata path).
    pub fn identity_request_count(&self) -> usize {
        self.inner
            .lock()
            .records
            .iter()
            .filter(|r| route_of(&r.path).is_some())
            .count()
    }
}

/// Which identity endpoint a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    AppService,
    Metadata,
}

fn route_of(path: &str) -> Option<Route> {
    match path.trim_end_matches('/').to_ascii_lowercase().as_str() {
        "/msi/token" => Some(Route::AppService),
        "/metadata/identity/oauth2/token" => Some(Route::Metadata),
        _ => None,
    }
}

/// The route of an identity endpoint's path, if it is one.
pub(super) fn route(path: &str) -> Option<Route> {
    route_of(path)
}

fn json_reply(status: u16, v: Value) -> Reply {
    Reply::new(status, Payload::Json(v, "application/json; charset=utf-8"))
}

fn imds_error(status: u16, error: &str, description: &str) -> Reply {
    let mut r = json_reply(
        status,
        json!({"error": error, "error_description": description}),
    );
    r.error_code = Some(error.to_string());
    r
}

fn app_service_error(status: u16, message: &str) -> Reply {
    let mut r = json_reply(status, json!({"statusCode": status, "message": message}));
    r.error_code = Some(format!("{status}"));
    r
}

/// Answers a request to an identity endpoint.
pub(super) fn handle(inner: &Inner, op: &Op, _corr: &Corr, route: Route) -> Reply {
    let mut st = inner.lock();
    if let Some(a) = st.identity.injected.pop_front() {
        let mut r = Reply::new(a.status, Payload::Bytes(a.body.into(), "application/json"));
        r.headers = a.headers;
        r.throttled = Some(super::ThrottleCause::Injected);
        return r;
    }
    let Some(mi) = st.identity.mi.clone() else {
        return imds_error(400, "invalid_request", "Identity not found");
    };
    if op.method != "GET" {
        return imds_error(405, "invalid_request", "Only GET is supported");
    }
    let q = parse_query(op.query.as_deref().unwrap_or(""));
    let param = |k: &str| {
        q.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let resource_ok = param("resource").is_some_and(|r| {
        r.trim_end_matches('/')
            .eq_ignore_ascii_case(st.cfg.graph_resource.trim_end_matches('/'))
    });
    let api = param("api-version").unwrap_or_default();
    let client = param("client_id");
    let arc = route == Route::Metadata && mi.arc_key_dir.is_some();
    match route {
        Route::AppService => {
            if api != "2019-08-01" {
                return app_service_error(400, "api-version must be 2019-08-01");
            }
            match op.header("x-identity-header") {
                None => return app_service_error(400, "The X-IDENTITY-HEADER header is missing."),
                Some(h) if h != mi.identity_header => {
                    return app_service_error(401, "The X-IDENTITY-HEADER header is not valid.")
                }
                Some(_) => {}
            }
            if !resource_ok {
                return app_service_error(400, "The resource parameter is missing or unknown.");
            }
        }
        Route::Metadata => {
            if op.header("metadata") != Some("true") {
                return imds_error(
                    400,
                    "invalid_request",
                    "Required metadata header not specified",
                );
            }
            let want = if arc { "2020-06-01" } else { "2018-02-01" };
            if api != want {
                return imds_error(
                    400,
                    "invalid_request",
                    &format!("Invalid or missing api-version; expected {want}"),
                );
            }
            if !resource_ok {
                return imds_error(
                    400,
                    "invalid_resource",
                    "AADSTS500011: The resource principal was not found",
                );
            }
        }
    }
    if arc {
        if client.is_some() {
            return imds_error(
                400,
                "invalid_request",
                "User-assigned identities are not supported on Azure Arc",
            );
        }
        let dir = mi.arc_key_dir.clone().unwrap_or_default();
        let sent = op.header("authorization").and_then(|v| {
            v.get(..6)
                .filter(|s| s.eq_ignore_ascii_case("basic "))
                .map(|_| v[6..].trim().to_string())
        });
        match sent {
            Some(k) if st.identity.arc_keys.contains(&k) => {
                st.identity.arc_keys.retain(|x| x != &k);
            }
            Some(_) => return imds_error(401, "unauthorized", "The secret key is not valid"),
            None => {
                let key = uuid::Uuid::new_v4().simple().to_string();
                let path = dir.join(format!("{}.key", uuid::Uuid::new_v4()));
                if std::fs::write(&path, &key).is_err() {
                    return imds_error(500, "server_error", "cannot write the key file");
                }
                st.identity.arc_keys.push(key);
                let mut r = imds_error(401, "unauthorized", "Authentication required");
                r.headers.push((
                    "www-authenticate".to_string(),
                    format!("Basic realm={}", path.display()),
                ));
                return r;
            }
        }
    }
    let id = match &client {
        None => mi.system_client_id.clone(),
        Some(c) if mi.user_assigned.iter().any(|u| u.eq_ignore_ascii_case(c)) => c.clone(),
        Some(_) if route == Route::AppService => {
            return app_service_error(
                400,
                "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.",
            )
        }
        Some(_) => return imds_error(400, "invalid_request", "Identity not found"),
    };
    let Some(app) = st
        .cfg
        .apps
        .iter()
        .find(|a| a.client_id.eq_ignore_ascii_case(&id))
        .cloned()
    else {
        return imds_error(400, "invalid_request", "Identity not found");
    };
    let token = issue_token(&mut st, &app);
    st.tokens_issued += 1;
    let secs = st.cfg.token_lifetime.as_secs();
    let now = unix_secs(SystemTime::now());
    let resource = st.cfg.graph_resource.clone();
    let body = if route == Route::AppService {
        json!({
            "access_token": token,
            "expires_on": (now + secs).to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": app.client_id,
        })
    } else {
        json!({
            "access_token": token,
            "client_id": app.client_id,
            "expires_in": secs.to_string(),
            "expires_on": (now + secs).to_string(),
            "ext_expires_in": secs.to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        })
    };
    let mut r = json_reply(200, body);
    r.app_id = Some(app.client_id.clone());
    r
}

/// Checks a federated `client_assertion` for `app` when its `iss` is not the app itself.
/// `None`: not a federated assertion (a certificate's, checked elsewhere). Otherwise the
/// `jti` or the AADSTS code and message.
pub(super) fn verify_federated(
    state: &IdentityState,
    app: &AppRegistration,
    jwt: &str,
) -> Option<Result<String, (u32, String)>> {
    let parts: Vec<&str> = jwt.trim().split('.').collect();
    if parts.len() != 3 {
        return None;
    }
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok();
    let claims: Value = decode(parts[1]).and_then(|b| serde_json::from_slice(&b).ok())?;
    let text = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let iss = text("iss");
    if iss.eq_ignore_ascii_case(&app.client_id) {
        return None;
    }
    let creds: Vec<&FederatedCredential> = state
        .federated
        .iter()
        .filter(|c| c.client_id.eq_ignore_ascii_case(&app.client_id))
        .collect();
    if creds.is_empty() {
        return None;
    }
    let no_match = |what: &str| {
        Some(Err((
            70021,
            format!("No matching federated identity record found for presented assertion {what}. Assertion Issuer: '{iss}'. Assertion Subject: '{}'. Assertion Audience: '{}'.", text("sub"), claims.get("aud").map(|a| a.to_string()).unwrap_or_default()),
        )))
    };
    let by_issuer: Vec<&&FederatedCredential> = creds.iter().filter(|c| c.issuer == iss).collect();
    if by_issuer.is_empty() {
        return no_match("issuer");
    }
    let signed = format!("{}.{}", parts[0], parts[1]);
    let sig = decode(parts[2]).unwrap_or_default();
    let header: Value = decode(parts[0])
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let valid = |c: &FederatedCredential| {
        header.get("alg").and_then(Value::as_str) == Some("RS256")
            && rsa::PublicKey::from_public_key_pem(&c.public_key_pem)
                .ok()
                .and_then(|k| {
                    rsa::pkcs1v15::Signature::try_from(sig.as_slice())
                        .ok()
                        .map(|s| {
                            rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k)
                                .verify(signed.as_bytes(), &s)
                                .is_ok()
                        })
                })
                .unwrap_or(false)
    };
    let Some(cred) = by_issuer.iter().find(|c| valid(c)) else {
        return Some(Err((
            50013,
            "Assertion failed signature validation. [Reason - The key was not found.]".into(),
        )));
    };
    if text("sub") != cred.subject {
        return no_match("subject");
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == cred.audience,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(cred.audience.as_str())),
        _ => false,
    };
    if !aud_ok {
        return no_match("audience");
    }
    let now = unix_secs(SystemTime::now()) as f64;
    let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0);
    if now >= exp {
        return Some(Err((
            700024,
            "Client assertion is not within its valid time range.".into(),
        )));
    }
    Some(Ok(text("jti")))
}
