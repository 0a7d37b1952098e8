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
    /// `Retry-After`, if any); `scope` whether it is one user's failure or the run's.
    Error {
        kind: ErrorKind,
        retry: bool,
        scope: Scope,
    },
}

/// Whom a failure concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// This user only: the run goes on ([`Error::user_level`]).
    User,
    /// Every further call is pointless ([`Error::run_level`]).
    Run,
}

/// The one status table of the Graph sink (contract sections 1.8, 2 and 5), by status, call
/// and `error.code`. 401 is mapped to a run-level `Unauthenticated` here: the caller has
/// already refreshed the token once and retried. A 403 on a user's photo (a tenant setting,
/// a role that covers some users, a mailbox policy) is that user's failure; a 403 or 400 on
/// a `$filter` lookup is the app's (no right to read users, a property Graph cannot filter
/// on) and stops the run. Codes are matched case-insensitively (contract 1.8: branch on the
/// status and the code, never on the message).
pub(crate) fn map_status(call: Call, status: u16, code: &str) -> Mapped {
    use ErrorKind::*;
    use Scope::{Run, User};
    let e = |kind, retry, scope| Mapped::Error { kind, retry, scope };
    let code = code.to_ascii_lowercase();
    match (status, call) {
        (404, _) => Mapped::NotFound,
        // A photo Graph refuses: not JPEG/PNG, empty, too narrow (`ValidationWidthTooSmall`).
        (400, Call::PutPhoto) => e(InvalidPhoto, false, User),
        // A `$filter` Graph does not support on this property (`Request_UnsupportedQuery`):
        // every lookup would fail the same way.
        (400, Call::Lookup) => e(Config, false, Run),
        (400, _) => e(Other, false, User),
        (401, _) => e(Unauthenticated, false, Run),
        // No right to read users at all (`Authorization_RequestDenied` on `/users`).
        (403, Call::Lookup) => e(PermissionDenied, false, Run),
        // `ErrorAccessDenied`, `Authorization_RequestDenied`,
        // `AppOnlyTokenNotSupportedForGroupUpdate`, or anything else on a user's photo.
        (403, _) if code == "errorquotaexceeded" => e(LimitExceeded, false, User),
        (403, _) => e(PermissionDenied, false, User),
        // DELETE of photos before Nov 2023 (contract 1.5).
        (405, Call::DeletePhoto) => e(Unsupported, false, User),
        (405, _) => e(Other, false, User),
        // Concurrent writes to the same object: Graph asks to try again.
        (409, _) => e(Conflict, true, User),
        (412, _) => e(Conflict, false, User),
        (413, _) => e(PhotoTooLarge, false, User),
        (415, _) => e(InvalidPhoto, false, User),
        (429, _) => e(RateLimited, true, User),
        // 509: bandwidth limit exceeded, a throttle too.
        (509, _) => e(RateLimited, true, User),
        (503 | 504, _) => e(Unavailable, true, User),
        // 500 `ErrorStoreInternalServerError` and other 5xx are transient (contract 1.8).
        (500..=599, _) => e(Unavailable, true, User),
        _ => e(Other, false, User),
    }
}

/// What to do about a refusal, appended to its message.
fn hint(call: Call, status: u16) -> Option<&'static str> {
    match (status, call) {
        (403, Call::PutPhoto | Call::DeletePhoto) => Some(
            "Graph refuses to change this user's photo: check that the app holds \
             ProfilePhoto.ReadWrite.All (application, admin-consented) and that the tenant's \
             photoUpdateSettings allow cloud updates for this user; the other users go on",
        ),
        (403, Call::ReadPhoto) => Some(
            "Graph refuses to read this user's photo: the app needs ProfilePhoto.Read.All or \
             ProfilePhoto.ReadWrite.All; the other users go on",
        ),
        (403, Call::Lookup) => Some(
            "the app may not read users: grant User.Read.All (application, admin-consented) \
             or match on upn or id",
        ),
        (401, _) => Some("Graph refused a fresh token: check the app's roles and the tenant"),
        _ => None,
    }
}

/// The longest wait taken from a server's `Retry-After`; a longer one is read as this (the
/// engine gives up on a wait over its own limit anyway).
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After` as delta-seconds or an HTTP date, as the time to wait from now, at most
/// [`MAX_RETRY_AFTER`]. A date in the past is zero; a value that is neither (negative, NaN,
/// empty) is `None`. Never panics, whatever the server sends (`1e20`, a date in year 9999).
pub(crate) fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    if v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() {
        // Digits beyond u64: a very long wait.
        return Some(MAX_RETRY_AFTER);
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        return Some(
            Duration::try_from_secs_f64(secs)
                .unwrap_or(MAX_RETRY_AFTER)
                .min(MAX_RETRY_AFTER),
        );
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
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

    /// The status table's verdict on this answer.
    pub fn mapped(&self, call: Call) -> Mapped {
        map_status(
            call,
            self.status,
            &self.error_body().code.unwrap_or_default(),
        )
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

    /// The error for a non-2xx answer that is not a 404, scoped and explained by the status
    /// table.
    pub fn to_error(&self, call: Call) -> Error {
        let code = self.error_body().code.unwrap_or_default();
        match map_status(call, self.status, &code) {
            Mapped::Error { kind, retry, scope } => {
                let mut msg = self.describe();
                if let Some(h) = hint(call, self.status) {
                    msg.push_str("; ");
                    msg.push_str(h);
                }
                let e = Error::new(kind, msg);
                let e = if retry {
                    e.temporary(self.retry_after)
                } else {
                    e.permanent()
                };
                match scope {
                    Scope::User => e.user_level(),
                    Scope::Run => e.run_level(),
                }
            }
            Mapped::NotFound => Error::new(ErrorKind::UserNotFound, self.describe())
                .permanent()
                .user_level(),
        }
    }
}

/// `e` with a new kind and message, keeping whether it is retryable (and after how long)
/// and whether it stops the run.
pub(crate) fn rewrap(e: &Error, kind: ErrorKind, msg: String) -> Error {
    let n = Error::new(kind, msg);
    let n = if e.is_retryable() {
        n.temporary(e.retry_after())
    } else {
        n.permanent()
    };
    if e.is_run_level() {
        n.run_level()
    } else {
        n.user_level()
    }
}

/// Where an `http(s)://` root URL may point, and why not.
///
/// `https://` anywhere; `http://` only to a loopback address (`127.0.0.0/8`, `::1`,
/// `localhost`: a test server or a local proxy) unless `insecure` is set. `Err` says which
/// rule the URL breaks.
pub(crate) fn check_url(u: &str, insecure: bool) -> std::result::Result<(), String> {
    let lower = u.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("https://") {
        r
    } else if let Some(r) = lower.strip_prefix("http://") {
        r
    } else {
        return Err(format!("must start with https:// (got {u:?})"));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("names no host (got {u:?})"));
    }
    let uri: hyper::Uri = u
        .parse()
        .map_err(|e| format!("is not a URL ({u:?}: {e})"))?;
    let host = uri.host().unwrap_or("");
    if host.is_empty() {
        return Err(format!("names no host (got {u:?})"));
    }
    if lower.starts_with("https://") || insecure || is_loopback(host) {
        return Ok(());
    }
    Err(format!(
        "must start with https:// (got {u:?}): plain http:// would send the client secret \
         and the bearer token in clear, so it is allowed only to a loopback address \
         (127.0.0.1, ::1, localhost) or with the insecure option \
         (GraphSinkBuilder::allow_insecure_http, --graph-insecure-http)"
    ))
}

/// `localhost`, `127.0.0.0/8`, `::1` (with or without brackets).
fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The TLS reason in an error chain (a certificate the client does not trust, a wrong
/// name, an expired certificate), in words with what to do; `None` when TLS is not the
/// cause.
pub(crate) fn tls_failure(e: &(dyn std::error::Error + 'static), host: &str) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut found: Option<&rustls::Error> = None;
    while let Some(x) = cur {
        if let Some(t) = x.downcast_ref::<rustls::Error>() {
            found = Some(t);
            break;
        }
        // An `io::Error` hides what it wraps from `source()` (it answers the inner error's
        // source), and hyper-rustls wraps tokio-rustls' `io::Error` (which holds the rustls
        // error) in another one.
        cur = if let Some(inner) = x
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner as &(dyn std::error::Error + 'static))
        } else {
            x.source()
        };
    }
    let t = found?;
    let dbg = format!("{t:?}");
    let why = if dbg.contains("UnknownIssuer") {
        "its certificate's issuer is not trusted (a TLS-inspecting proxy or a private CA?)"
    } else if dbg.contains("NotValidForName") {
        "its certificate is not valid for this host name"
    } else if dbg.contains("Expired") {
        "its certificate has expired (or this machine's clock is wrong)"
    } else if dbg.contains("NotValidYet") {
        "its certificate is not valid yet (or this machine's clock is wrong)"
    } else if dbg.contains("Revoked") {
        "its certificate is revoked"
    } else {
        "the TLS handshake failed"
    };
    Some(format!(
        "TLS with {host} failed: {why} ({t}); trust the issuing CA in the system's trust store \
         (or point SSL_CERT_FILE at a PEM file of it), or give it with --graph-ca-cert FILE \
         (GraphSinkBuilder::ca_file)"
    ))
}

/// Body limits of one request's answer, by what it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// A 2xx answer's body.
    pub ok: usize,
    /// Any other answer's body (read up to this; a longer one is dropped, the status stays).
    pub error: usize,
}

impl Limits {
    /// JSON answers (metadata, lookups, tokens): 4 MiB.
    pub const JSON: Limits = Limits {
        ok: 4 << 20,
        error: 64 << 10,
    };
    /// Photo bytes (`…/photo/$value`): Graph's 4 MB limit and a margin.
    pub const PHOTO: Limits = Limits {
        ok: 5 << 20,
        error: 64 << 10,
    };
}

/// The sink's HTTP/1.1 client: hyper's pooled client over rustls (ring provider, the
/// system's roots or a given CA file), a connect timeout and a whole-request timeout.
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
    /// `ca_pem`: trust only these CA certificates (PEM) instead of the system's roots.
    pub fn new(
        connect: Duration,
        timeout: Duration,
        ca_pem: Option<&[u8]>,
    ) -> std::result::Result<Self, String> {
        use rustls::pki_types::pem::PemObject;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                for c in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                    let c = c.map_err(|e| format!("the CA file is not PEM: {e}"))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("the CA file holds a bad certificate: {e}"))?;
                }
                if roots.is_empty() {
                    return Err("the CA file holds no certificate".into());
                }
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
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

    /// Sends one request and reads the whole answer, its body through `limits`. Errors are
    /// retryable transport failures (`Timeout`, `Unavailable`), a TLS failure (`Config`,
    /// run-level, not retried), a body over its limit (`LimitExceeded`) or a bad URL
    /// (`Config`); messages never include headers or bodies (they hold tokens and secrets).
    pub async fn send(
        &self,
        method: hyper::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<bytes::Bytes>,
        limits: Limits,
    ) -> Result<Raw> {
        use http_body_util::BodyExt;
        let shown = url.split('?').next().unwrap_or(url).to_owned();
        let host = url
            .parse::<hyper::Uri>()
            .ok()
            .and_then(|u| u.authority().map(|a| a.to_string()))
            .unwrap_or_else(|| shown.clone());
        let method_name = method.to_string();
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
                if let Some(m) = tls_failure(&e, &host) {
                    return Error::new(ErrorKind::Config, m).permanent().run_level();
                }
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
            let ok = parts.status.is_success();
            let limit = if ok { limits.ok } else { limits.error };
            let declared = parts
                .headers
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u128>().ok());
            let too_large = |n: String| {
                Error::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "the answer of {shown} (HTTP {}) is {n} bytes, over the {limit} bytes \
                         this client reads",
                        parts.status.as_u16()
                    ),
                )
                .permanent()
            };
            let collected = if declared.is_some_and(|n| n > limit as u128) {
                Err(too_large(declared.unwrap_or_default().to_string()))
            } else {
                match http_body_util::Limited::new(body, limit).collect().await {
                    Ok(c) => Ok(c.to_bytes()),
                    Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                        Err(too_large("more than that".to_owned()))
                    }
                    Err(e) => Err(Error::new(
                        ErrorKind::Unavailable,
                        format!("reading the answer of {shown} failed: {e}"),
                    )
                    .temporary(None)),
                }
            };
            let body = match collected {
                Ok(b) => b,
                // An error answer keeps its status; its oversized body is not needed.
                Err(e) if !ok && e.kind() == ErrorKind::LimitExceeded => bytes::Bytes::new(),
                Err(e) => return Err(e),
            };
            Ok(Raw {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        let started = std::time::Instant::now();
        let r = match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("request to {shown} timed out after {:?}", self.timeout),
            )
            .temporary(None)),
        };
        log_request(&method_name, &shown, headers, &r, started.elapsed());
        r
    }
}

/// One `tracing` event per request (target `userphoto::graph`): method, URL without its
/// query, status, Graph's `request-id` and our `client-request-id`, duration. Never a header
/// value other than those two ids, never a body: they hold tokens, secrets and photos.
fn log_request(method: &str, url: &str, sent: &[(&str, &str)], r: &Result<Raw>, took: Duration) {
    let client_request_id = sent
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("client-request-id"))
        .map(|(_, v)| *v);
    let duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    match r {
        Ok(raw) => {
            // A server's value goes into the log: keep it short and printable.
            let request_id = raw.header("request-id").map(|v| {
                v.chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(64)
                    .collect::<String>()
            });
            tracing::info!(
                target: "userphoto::graph",
                method,
                url,
                status = raw.status,
                request_id,
                client_request_id,
                duration_ms,
                "graph request"
            );
        }
        Err(e) => tracing::warn!(
            target: "userphoto::graph",
            method,
            url,
            client_request_id,
            duration_ms,
            error = %e,
            "graph request failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_table() {
        use ErrorKind::*;
        use Scope::{Run, User};
        let e = |kind, retry, scope| Mapped::Error { kind, retry, scope };
        let table: &[(u16, Call, &str, Mapped)] = &[
            (
                400,
                Call::PutPhoto,
                "ValidationWidthTooSmall",
                e(InvalidPhoto, false, User),
            ),
            (
                400,
                Call::PutPhoto,
                "BadRequest",
                e(InvalidPhoto, false, User),
            ),
            (
                400,
                Call::Lookup,
                "Request_UnsupportedQuery",
                e(Config, false, Run),
            ),
            (400, Call::ReadPhoto, "", e(Other, false, User)),
            (
                401,
                Call::PutPhoto,
                "InvalidAuthenticationToken",
                e(Unauthenticated, false, Run),
            ),
            (
                403,
                Call::ReadPhoto,
                "ErrorAccessDenied",
                e(PermissionDenied, false, User),
            ),
            (
                403,
                Call::PutPhoto,
                "ErrorAccessDenied",
                e(PermissionDenied, false, User),
            ),
            (
                403,
                Call::PutPhoto,
                "Authorization_RequestDenied",
                e(PermissionDenied, false, User),
            ),
            (
                403,
                Call::PutPhoto,
                "AppOnlyTokenNotSupportedForGroupUpdate",
                e(PermissionDenied, false, User),
            ),
            (
                403,
                Call::DeletePhoto,
                "ErrorAccessDenied",
                e(PermissionDenied, false, User),
            ),
            (
                403,
                Call::PutPhoto,
                "ErrorQuotaExceeded",
                e(LimitExceeded, false, User),
            ),
            (
                403,
                Call::Lookup,
                "Authorization_RequestDenied",
                e(PermissionDenied, false, Run),
            ),
            (404, Call::ReadPhoto, "ImageNotFound", Mapped::NotFound),
            (
                404,
                Call::PutPhoto,
                "ErrorNonExistentMailbox",
                Mapped::NotFound,
            ),
            (
                404,
                Call::DeletePhoto,
                "ErrorEntityNotFound",
                Mapped::NotFound,
            ),
            (405, Call::DeletePhoto, "", e(Unsupported, false, User)),
            (409, Call::PutPhoto, "", e(Conflict, true, User)),
            (412, Call::DeletePhoto, "", e(Conflict, false, User)),
            (413, Call::PutPhoto, "", e(PhotoTooLarge, false, User)),
            (415, Call::PutPhoto, "", e(InvalidPhoto, false, User)),
            (
                429,
                Call::PutPhoto,
                "TooManyRequests",
                e(RateLimited, true, User),
            ),
            (
                429,
                Call::Lookup,
                "TooManyRequests",
                e(RateLimited, true, User),
            ),
            (
                500,
                Call::PutPhoto,
                "ErrorStoreInternalServerError",
                e(Unavailable, true, User),
            ),
            (502, Call::ReadPhoto, "", e(Unavailable, true, User)),
            (
                503,
                Call::ReadPhoto,
                "serviceNotAvailable",
                e(Unavailable, true, User),
            ),
            (504, Call::DeletePhoto, "", e(Unavailable, true, User)),
            (509, Call::PutPhoto, "", e(RateLimited, true, User)),
            (418, Call::PutPhoto, "", e(Other, false, User)),
        ];
        for (status, call, code, want) in table {
            assert_eq!(
                map_status(*call, *status, code),
                *want,
                "{status} {call:?} {code}"
            );
        }
        // The table's scope is what the engine sees.
        let answer = |status: u16, code: &str| Answer {
            status,
            body: bytes::Bytes::from(format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#)),
            request_id: Some("r".into()),
            client_request_id: "c".into(),
            retry_after: None,
            etag: None,
        };
        let denied = answer(403, "ErrorAccessDenied").to_error(Call::PutPhoto);
        assert!(!denied.is_run_level() && !denied.is_retryable(), "{denied}");
        assert!(
            denied.message().contains("ProfilePhoto.ReadWrite.All"),
            "{denied}"
        );
        assert!(answer(401, "InvalidAuthenticationToken")
            .to_error(Call::ReadPhoto)
            .is_run_level());
        assert!(answer(403, "Authorization_RequestDenied")
            .to_error(Call::Lookup)
            .is_run_level());
        assert!(!answer(400, "ValidationWidthTooSmall")
            .to_error(Call::PutPhoto)
            .is_run_level());
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

    /// Values a hostile or broken server may send: never a panic, never a wait over a day.
    #[test]
    fn retry_after_hostile_values() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let max = Some(MAX_RETRY_AFTER);
        assert_eq!(parse_retry_after("1e20", now), max);
        assert_eq!(
            parse_retry_after("1e400", now),
            max,
            "overflows to infinity"
        );
        assert_eq!(parse_retry_after("inf", now), max);
        assert_eq!(parse_retry_after("18446744073709551615", now), max);
        assert_eq!(parse_retry_after("99999999999999999999999999", now), max);
        assert_eq!(parse_retry_after("-1e20", now), None);
        assert_eq!(parse_retry_after("-0.5", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            max,
            "a date in year 9999"
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn urls_are_tls_or_loopback() {
        for ok in [
            "https://graph.microsoft.com",
            "https://127.0.0.1:8443",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://localhost:99",
            "HTTP://LOCALHOST",
            "http://[::1]:8080",
        ] {
            assert_eq!(check_url(ok, false), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("http://graph.microsoft.com", "loopback"),
            ("http://10.0.0.1:80", "loopback"),
            ("http://localhost.evil.example", "loopback"),
            ("http://[::2]", "loopback"),
            ("ftp://x", "https://"),
            ("graph.microsoft.com", "https://"),
            ("https://", "no host"),
        ] {
            let e = check_url(bad, false).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = check_url("http://graph.example", false).unwrap_err();
        assert!(e.contains("insecure"), "the error names the option: {e}");
        assert_eq!(check_url("http://graph.example", true), Ok(()));
        assert!(check_url("ftp://graph.example", true).is_err());
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
