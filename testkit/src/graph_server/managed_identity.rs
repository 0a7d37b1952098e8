//! The managed identity endpoints of Azure resources (App Service's `/msi/token`, Azure Arc's
//! challenge, the instance metadata service), as described in `identity.rs`.

use std::time::SystemTime;

use serde_json::{json, Value};

use super::config::{AppRegistration, DEFAULT_APP_ROLES};
use super::identity::ManagedIdentityConfig;
use super::recorder::{RequestRecord, ThrottleCause};
use super::reply::{Corr, Op, Payload, Reply};
use super::state::{Inner, ServerState};
use super::time::unix_secs;
use super::tokens::issue_token;

/// Which identity endpoint a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    AppService,
    Metadata,
}

/// The route of an identity endpoint's path, if it is one.
pub(super) fn route(path: &str) -> Option<Route> {
    match path.trim_end_matches('/').to_ascii_lowercase().as_str() {
        "/msi/token" => Some(Route::AppService),
        "/metadata/identity/oauth2/token" => Some(Route::Metadata),
        _ => None,
    }
}

/// Gives the fake's resource managed identities: registers an app for each client id (with
/// [`DEFAULT_APP_ROLES`]) and answers the identity endpoints.
pub(super) fn enable(st: &mut ServerState, cfg: ManagedIdentityConfig) {
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

/// Requests to the managed identity endpoints (`/msi/token`, the metadata path) among these.
pub(super) fn request_count(records: &[RequestRecord]) -> usize {
    records.iter().filter(|r| route(&r.path).is_some()).count()
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
        r.throttled = Some(ThrottleCause::Injected);
        return r;
    }
    let Some(mi) = st.identity.mi.clone() else {
        return imds_error(400, "invalid_request", "Identity not found");
    };
    if op.method != "GET" {
        return imds_error(405, "invalid_request", "Only GET is supported");
    }
    let param = |k: &str| op.param(k).map(str::to_string);
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
