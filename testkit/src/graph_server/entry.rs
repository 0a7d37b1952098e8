//! The HTTP entry: the one axum handler behind every path. It reads the request (body up to
//! [`MAX_BODY`], query parameters with axum's `Query` extractor), picks the endpoint (token,
//! managed identity, `$batch` or a Graph operation; the fake routes paths itself because
//! Graph's are case-insensitive and percent-decoded per segment), answers and records.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::response::Response;
use axum::Router;

use super::admission::gated;
use super::batch::batch;
use super::config::codes;
use super::managed_identity;
use super::recorder::RequestKind;
use super::reply::{graph_error, to_http, Corr, Op};
use super::routes::decoded_segments;
use super::state::Inner;
use super::token_endpoint::{read_form, token_endpoint, token_path_tenant};
use super::tokens::authenticate;

/// Larger request bodies are refused (413) before any other check.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The router of the fake: every path goes to [`entry`]; axum's own body limit is off, as the
/// entry applies [`MAX_BODY`] itself.
pub(super) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .fallback(entry)
        .layer(DefaultBodyLimit::disable())
        .with_state(inner)
}

async fn entry(
    State(inner): State<Arc<Inner>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    req: Request,
) -> Response {
    let received_at = Instant::now();
    let received_wall = SystemTime::now();
    // Pairs of strings always deserialize; a rejection (none is expected) reads as no
    // parameters, as an empty query would.
    let params = query.map(|Query(p)| p).unwrap_or_default();
    let (parts, body) = req.into_parts();
    let (body, body_too_large) = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => (b, false),
        Err(_) => (Bytes::new(), true),
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
    let identity_route = managed_identity::route(&path);
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
        params,
        headers,
        body: body.to_vec(),
        authorization_present,
        received_at,
        received_wall,
    };
    let corr = Corr::new(op.header("client-request-id"));
    let reply = if let Some(route) = identity_route {
        managed_identity::handle(&inner, &op, &corr, route)
    } else if let Some(tenant) = token_tenant {
        let form = if op.method == "POST" {
            read_form(parts, body).await
        } else {
            Vec::new()
        };
        token_endpoint(&inner, &op, &tenant, &form, &corr)
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
