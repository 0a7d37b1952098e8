//! The Graph fake's credentials without a stored secret: the managed identities of Azure
//! resources and federated credentials (workload identity) at the token endpoint. This module
//! holds their public types, their state and the federated assertion check; the identity
//! endpoints are answered in `managed_identity.rs`.
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
//! * Federated credentials
//!   ([`GraphServer::add_federated_credential`](super::GraphServer::add_federated_credential)):
//!   a `client_assertion` whose `iss` is a registered issuer is checked against it: RS256
//!   signature by the issuer's key, `sub`, `aud` (by default `api://AzureADTokenExchange`),
//!   `exp`.
//!
//! Tokens are issued like the token endpoint's (the app registration of each identity's
//! client id, [`GraphServerConfig::token_lifetime`](super::GraphServerConfig::token_lifetime))
//! and counted in [`GraphServer::tokens_issued`](super::GraphServer::tokens_issued); requests
//! are recorded as [`RequestKind::Token`](super::RequestKind::Token).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::pkcs8::DecodePublicKey;
use rsa::sha2::Sha256;
use rsa::signature::Verifier;
use serde_json::{json, Value};

use super::certs::TestCertificate;
use super::config::AppRegistration;
use super::jwt::sign_jwt;
use super::time::unix_secs;

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
    /// A fresh RSA-2048 key for `issuer` (made as a [`TestCertificate`]'s).
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
/// ([`GraphServer::inject_identity_answers`](super::GraphServer::inject_identity_answers)):
/// for retries and hostile answers.
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
    /// The resource's managed identities, once enabled.
    pub(super) mi: Option<ManagedIdentityConfig>,
    /// Registered federated credentials.
    pub(super) federated: Vec<FederatedCredential>,
    /// Answers to give instead of the endpoints' own, in order.
    pub(super) injected: VecDeque<IdentityAnswer>,
    /// Azure Arc challenge keys not used yet.
    pub(super) arc_keys: Vec<String>,
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
