//! The transport: hyper's pooled HTTP/1.1 client over rustls (aws-lc-rs provider, the system's
//! roots or a given CA file), timeouts, bodies read through limits, one log event per request.

use std::time::Duration;

use super::tls::tls_failure;
use crate::{Error, ErrorKind, Result};

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

/// The sink's HTTP/1.1 client: hyper's pooled client over rustls (aws-lc-rs provider, the
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
        // aws-lc-rs, rustls's default provider (post-quantum key exchange preferred), named
        // explicitly so that an embedder's other rustls features never make the choice ambiguous.
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
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
