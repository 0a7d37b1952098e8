//! Graph's HTTP answers turned into this crate's errors: the status table, `Retry-After`,
//! the OData error body, correlation ids.

use std::time::{Duration, SystemTime};

use crate::{Error, ErrorKind, Result};

/// What one Graph request is, for the status table (the same status means different things
/// on different requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// `GET …/photo` (metadata) or `GET …/photo/$value` (bytes).
    ReadPhoto,
    /// `PUT …/photo/$value`.
    PutPhoto,
    /// `DELETE …/photo/$value`.
    DeletePhoto,
    /// `GET /users/{key}` or `GET /users?$filter=…`.
    Lookup,
}

/// How a non-2xx status is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mapped {
    /// 404: the caller tells "no photo" from "no such user" (by `error.code`, confirmed by a
    /// lookup when the code does not settle it).
    NotFound,
    /// An error of this kind; `retry` says whether it is temporary (with the response's
    /// `Retry-After`, if any).
    Error { kind: ErrorKind, retry: bool },
}

/// The one status table of the Graph sink (contract sections 1.8, 2 and 5). 401 is mapped to
/// `Unauthenticated` here; the caller has already refreshed the token once and retried.
pub(crate) fn map_status(call: Call, status: u16) -> Mapped {
    use ErrorKind::*;
    let e = |kind, retry| Mapped::Error { kind, retry };
    match (status, call) {
        (404, _) => Mapped::NotFound,
        // A photo Graph refuses: not JPEG/PNG, empty, too narrow (`ValidationWidthTooSmall`).
        (400, Call::PutPhoto) => e(InvalidPhoto, false),
        // A `$filter` Graph does not support on this property (`Request_UnsupportedQuery`).
        (400, Call::Lookup) => e(Config, false),
        (400, _) => e(Other, false),
        (401, _) => e(Unauthenticated, false),
        (403, _) => e(PermissionDenied, false),
        // DELETE of photos before Nov 2023 (contract 1.5).
        (405, Call::DeletePhoto) => e(Unsupported, false),
        (405, _) => e(Other, false),
        // Concurrent writes to the same object: Graph asks to try again.
        (409, _) => e(Conflict, true),
        (412, _) => e(Conflict, false),
        (413, _) => e(PhotoTooLarge, false),
        (415, _) => e(InvalidPhoto, false),
        (429, _) => e(RateLimited, true),
        // 509: bandwidth limit exceeded, a throttle too.
        (509, _) => e(RateLimited, true),
        (503 | 504, _) => e(Unavailable, true),
        // 500 `ErrorStoreInternalServerError` and other 5xx are transient (contract 1.8).
        (500..=599, _) => e(Unavailable, true),
        _ => e(Other, false),
    }
}

/// `Retry-After` as delta-seconds or an HTTP date, as the time to wait from now. A date in
/// the past is zero; a value that is neither is `None`.
pub(crate) fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The parts of a Graph error body (`{"error":{"code","message","innerError":{…}}}`) the
/// sink uses. `innerError` is matched case-insensitively (the docs spell it `innererror`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct GraphErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
}

impl GraphErrorBody {
    pub fn parse(body: &[u8]) -> Self {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Self::default();
        };
        let err = v.get("error");
        let text = |k: &str| {
            err.and_then(|e| e.get(k))
                .and_then(|x| x.as_str())
                .map(str::to_owned)
        };
        Self {
            code: text("code"),
            message: text("message"),
        }
    }
}

/// A fresh random (version 4) GUID for `client-request-id` and `jti`.
pub(crate) fn new_guid() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // No OS randomness: still unique enough for correlation within this process.
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = t.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// What the sink keeps of one Graph answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: bytes::Bytes,
    pub request_id: Option<String>,
    pub client_request_id: String,
    pub retry_after: Option<Duration>,
    pub etag: Option<String>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn error_body(&self) -> GraphErrorBody {
        GraphErrorBody::parse(&self.body)
    }

    /// `HTTP 429 TooManyRequests: Please retry again later. (request-id …, client-request-id …)`.
    pub fn describe(&self) -> String {
        let b = self.error_body();
        let mut s = format!("HTTP {}", self.status);
        if let Some(c) = &b.code {
            s.push(' ');
            s.push_str(c);
        }
        if let Some(m) = &b.message {
            s.push_str(": ");
            s.push_str(m);
        }
        s.push_str(&format!(
            " (request-id {}, client-request-id {})",
            self.request_id.as_deref().unwrap_or("none"),
            self.client_request_id
        ));
        s
    }

    /// The error for a non-2xx answer that is not a 404.
    pub fn to_error(&self, call: Call) -> Error {
        match map_status(call, self.status) {
            Mapped::Error { kind, retry } => {
                let e = Error::new(kind, self.describe());
                if retry {
                    e.temporary(self.retry_after)
                } else {
                    e.permanent()
                }
            }
            Mapped::NotFound => Error::new(ErrorKind::UserNotFound, self.describe()).permanent(),
        }
    }
}

/// The sink's HTTP/1.1 client: hyper's pooled client over rustls (ring provider, the
/// system's roots), a connect timeout and a whole-request timeout.
#[derive(Clone)]
pub(crate) struct Http {
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        http_body_util::Full<bytes::Bytes>,
    >,
    timeout: Duration,
}

/// A whole answer: status, headers, body.
pub(crate) struct Raw {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: bytes::Bytes,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl Http {
    pub fn new(connect: Duration, timeout: Duration) -> std::result::Result<Self, String> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(connect));
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(Self { client, timeout })
    }

    /// Sends one request and reads the whole answer. Errors are retryable transport
    /// failures (`Timeout`, `Unavailable`) or a bad URL (`Config`); messages never include
    /// headers or bodies (they hold tokens and secrets).
    pub async fn send(
        &self,
        method: hyper::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<bytes::Bytes>,
    ) -> Result<Raw> {
        use http_body_util::BodyExt;
        let shown = url.split('?').next().unwrap_or(url).to_owned();
        let mut req = hyper::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req = req.header(
            "user-agent",
            concat!("userphoto/", env!("CARGO_PKG_VERSION")),
        );
        let req = req
            .body(http_body_util::Full::new(body.unwrap_or_default()))
            .map_err(|e| Error::new(ErrorKind::Config, format!("bad request to {shown}: {e}")))?;
        let fut = async {
            let resp = self.client.request(req).await.map_err(|e| {
                let what = if e.is_connect() {
                    "cannot connect"
                } else {
                    "failed"
                };
                let mut msg = format!("request to {shown} {what}: {e}");
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                Error::new(ErrorKind::Unavailable, msg).temporary(None)
            })?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Unavailable,
                        format!("reading the answer of {shown} failed: {e}"),
                    )
                    .temporary(None)
                })?
                .to_bytes();
            Ok(Raw {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("request to {shown} timed out after {:?}", self.timeout),
            )
            .temporary(None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_table() {
        use ErrorKind::*;
        let e = |kind, retry| Mapped::Error { kind, retry };
        let table: &[(u16, Call, Mapped)] = &[
            (400, Call::PutPhoto, e(InvalidPhoto, false)),
            (400, Call::Lookup, e(Config, false)),
            (400, Call::ReadPhoto, e(Other, false)),
            (401, Call::PutPhoto, e(Unauthenticated, false)),
            (403, Call::ReadPhoto, e(PermissionDenied, false)),
            (403, Call::PutPhoto, e(PermissionDenied, false)),
            (404, Call::ReadPhoto, Mapped::NotFound),
            (404, Call::DeletePhoto, Mapped::NotFound),
            (405, Call::DeletePhoto, e(Unsupported, false)),
            (409, Call::PutPhoto, e(Conflict, true)),
            (412, Call::DeletePhoto, e(Conflict, false)),
            (413, Call::PutPhoto, e(PhotoTooLarge, false)),
            (415, Call::PutPhoto, e(InvalidPhoto, false)),
            (429, Call::PutPhoto, e(RateLimited, true)),
            (429, Call::Lookup, e(RateLimited, true)),
            (500, Call::PutPhoto, e(Unavailable, true)),
            (502, Call::ReadPhoto, e(Unavailable, true)),
            (503, Call::ReadPhoto, e(Unavailable, true)),
            (504, Call::DeletePhoto, e(Unavailable, true)),
            (509, Call::PutPhoto, e(RateLimited, true)),
            (418, Call::PutPhoto, e(Other, false)),
        ];
        for (status, call, want) in table {
            assert_eq!(map_status(*call, *status), *want, "{status} {call:?}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("10", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn error_bodies() {
        let b = GraphErrorBody::parse(
            br#"{"error":{"code":"ImageNotFound","message":"Exception","innerError":{"request-id":"x"}}}"#,
        );
        assert_eq!(b.code.as_deref(), Some("ImageNotFound"));
        assert_eq!(b.message.as_deref(), Some("Exception"));
        assert_eq!(
            GraphErrorBody::parse(b"not json"),
            GraphErrorBody::default()
        );
    }

    #[test]
    fn guids_are_v4_and_fresh() {
        let (a, b) = (new_guid(), new_guid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }
}
