//! The token endpoint of the Microsoft identity platform (`/{tenant}/oauth2/v2.0/token`,
//! client credentials, contract 4): the form, the app's secret or client assertion, the scope,
//! and Entra's error bodies.

use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::FromRequest;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::Form;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::config::{CLIENT_ASSERTION_TYPE, GRAPH_APP_ID};
use super::identity::verify_federated;
use super::jwt::verify_assertion;
use super::reply::{Corr, Op, Payload, Reply};
use super::state::Inner;
use super::time::{entra_timestamp, new_guid};
use super::tokens::issue_token;

/// The fields of a token request's form body, in order, decoded by axum's `Form` extractor.
/// Contract choice (unchanged): the body is read as a form whatever `Content-Type` the client
/// sent, so a client that forgets the header meets Entra's missing-parameter error rather
/// than a 415 from the extractor; the request handed to the extractor says
/// `application/x-www-form-urlencoded`. Pairs of strings always deserialize, so a rejection
/// (none is expected) reads as an empty form.
pub(super) async fn read_form(mut parts: Parts, body: Bytes) -> Vec<(String, String)> {
    parts.headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let req = axum::extract::Request::from_parts(parts, Body::from(body));
    match Form::<Vec<(String, String)>>::from_request(req, &()).await {
        Ok(Form(fields)) => fields,
        Err(_) => Vec::new(),
    }
}

/// One `application/x-www-form-urlencoded` value (`+` is a space), as in HTTP Basic
/// credentials (RFC 6749 2.3.1).
fn form_decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// `/{tenant}/oauth2/v2.0/token` → the tenant.
pub(super) fn token_path_tenant(segs: &[String]) -> Option<String> {
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

/// Answers `POST /{tenant}/oauth2/v2.0/token` (client credentials: a secret, in the form or
/// HTTP Basic, or a certificate or federated client assertion). `form` is [`read_form`]'s.
pub(super) fn token_endpoint(
    inner: &Inner,
    op: &Op,
    tenant: &str,
    form: &[(String, String)],
    corr: &Corr,
) -> Reply {
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
            let checked = verify_federated(&st.identity, &app, &assertion)
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
