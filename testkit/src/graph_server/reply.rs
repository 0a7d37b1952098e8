//! What every handler works with: the request as seen by the fake ([`Op`], direct or batch
//! item), its correlation ids ([`Corr`]), the answer ([`Reply`]), Graph's error bodies and the
//! HTTP response made of a reply.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::config::{codes, Failure, RetryAfter, ODATA_JSON};
use super::recorder::{RequestKind, ThrottleCause};
use super::time::{iso_datetime, new_guid, unix_secs};

/// A request (direct or batch item) as the handlers see it.
#[derive(Clone, Debug)]
pub(super) struct Op {
    pub(super) kind: RequestKind,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: Option<String>,
    /// The query's parameters, decoded: for a direct request by axum's `Query` extractor, for
    /// a batch item by [`query_pairs`] (the same deserializer).
    pub(super) params: Vec<(String, String)>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    pub(super) authorization_present: bool,
    pub(super) received_at: Instant,
    pub(super) received_wall: SystemTime,
}

impl Op {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter of this name (case-insensitive), decoded.
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `a=b&c=d` (query encoding) → decoded pairs, in order, with `serde_urlencoded` (what axum's
/// `Query` and `Form` run): for the query of a batch item's `url`, which is no request of its
/// own. Pairs of strings always deserialize, so nothing is lost to an error.
pub(super) fn query_pairs(q: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(q).unwrap_or_default()
}

/// Correlation ids of one answer.
#[derive(Clone, Debug)]
pub(super) struct Corr {
    pub(super) request_id: String,
    /// What `client-request-id` echoes: the client's value, or `request_id` when none was sent.
    pub(super) client_request_id: String,
    pub(super) sent: Option<String>,
}

impl Corr {
    pub(super) fn new(sent: Option<&str>) -> Self {
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
pub(super) enum Payload {
    Empty,
    Json(Value, &'static str),
    Bytes(Arc<Vec<u8>>, &'static str),
}

impl Payload {
    pub(super) fn to_bytes(&self) -> Vec<u8> {
        match self {
            Payload::Empty => Vec::new(),
            Payload::Json(v, _) => serde_json::to_vec(v).unwrap_or_default(),
            Payload::Bytes(b, _) => b.as_ref().clone(),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Payload::Empty => 0,
            Payload::Json(v, _) => serde_json::to_vec(v).map(|v| v.len()).unwrap_or(0),
            Payload::Bytes(b, _) => b.len(),
        }
    }

    pub(super) fn content_type(&self) -> Option<&'static str> {
        match self {
            Payload::Empty => None,
            Payload::Json(_, ct) | Payload::Bytes(_, ct) => Some(ct),
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) payload: Payload,
    pub(super) error_code: Option<String>,
    pub(super) throttled: Option<ThrottleCause>,
    pub(super) retry_after: Option<String>,
    pub(super) app_id: Option<String>,
    pub(super) user_id: Option<String>,
    pub(super) detected_image: Option<&'static str>,
    pub(super) in_flight_at_arrival: Option<usize>,
}

impl Reply {
    pub(super) fn new(status: u16, payload: Payload) -> Self {
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

    pub(super) fn empty(status: u16) -> Self {
        Self::new(status, Payload::Empty)
    }

    pub(super) fn odata(status: u16, v: Value) -> Self {
        Self::new(status, Payload::Json(v, ODATA_JSON))
    }

    pub(super) fn header(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_string(), value));
        self
    }

    pub(super) fn retry_after(mut self, ra: RetryAfter) -> Self {
        if let Some(v) = retry_after_value(ra) {
            self.retry_after = Some(v.clone());
            self.headers.push(("retry-after".to_string(), v));
        }
        self
    }
}

pub(super) fn graph_error(status: u16, code: &str, message: &str, corr: &Corr) -> Reply {
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
pub(super) fn too_many_requests(corr: &Corr) -> Reply {
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

pub(super) fn failure_reply(f: &Failure, corr: &Corr) -> Reply {
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

pub(super) fn retry_after_value(ra: RetryAfter) -> Option<String> {
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

pub(super) fn to_http(reply: &Reply, corr: &Corr, token_endpoint: bool) -> Response {
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
