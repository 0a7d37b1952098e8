//! Access tokens: the fake's token signer, issuing (RS256 JWTs as Entra issues them, or opaque
//! strings) and checking the bearer token of a Graph request.

use std::time::{Instant, SystemTime};

use serde_json::json;

use super::certs::TestCertificate;
use super::config::{codes, AppRegistration, GRAPH_APP_ID};
use super::jwt::sign_jwt;
use super::reply::{graph_error, Corr, Op, Reply};
use super::state::{Inner, ServerState, TokenInfo};
use super::time::{new_guid, unix_secs};

/// The key that signs the fake's access tokens: one self-signed certificate per process
/// (RSA-2048, made on first use by [`TestCertificate::generate`]).
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

pub(super) fn issue_token(st: &mut ServerState, app: &AppRegistration) -> String {
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

pub(super) fn authenticate(inner: &Inner, op: &Op, corr: &Corr) -> Result<TokenInfo, Reply> {
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
