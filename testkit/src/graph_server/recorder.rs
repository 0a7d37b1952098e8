//! The request recorder's data: one [`RequestRecord`] per answered request (direct Graph
//! calls, batch envelopes and their items, token requests), and what tests compute from the
//! records (concurrency, waits after `Retry-After`).

use std::time::{Duration, Instant, SystemTime};

/// What a recorded request was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// `POST /{tenant}/oauth2/v2.0/token`.
    Token,
    /// A direct request under `/v1.0` (other than `$batch`).
    Graph,
    /// A `POST /v1.0/$batch` envelope.
    Batch,
    /// One item of a batch (recorded separately from its envelope).
    BatchItem {
        /// `request-id` of the envelope.
        batch_request_id: String,
        /// The item's `id`.
        item_id: String,
    },
}

/// Why a request was answered by a failure knob instead of the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleCause {
    /// [`GraphServerConfig::throttle`](super::GraphServerConfig::throttle) (every Nth).
    EveryNth,
    /// [`GraphServer::inject_failures`](super::GraphServer::inject_failures).
    Injected,
    /// [`GraphServerConfig::max_concurrent_per_app`](super::GraphServerConfig::max_concurrent_per_app).
    Concurrency,
}

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// Order of answering (1-based).
    pub seq: u64,
    /// Token, Graph, Batch or BatchItem.
    pub kind: RequestKind,
    /// When it arrived (for a batch item: when the item started).
    pub received_at: Instant,
    /// When its answer was ready.
    pub answered_at: Instant,
    /// `received_at` on the wall clock (for HTTP-date `Retry-After`).
    pub received_wall: SystemTime,
    /// `answered_at` on the wall clock.
    pub answered_wall: SystemTime,
    /// Upper-case method.
    pub method: String,
    /// Raw path as sent (still percent-encoded); for a batch item `/v1.0` + its `url` path.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Request headers, names lower-cased (a batch item: the item's `headers`).
    pub headers: Vec<(String, String)>,
    /// An `Authorization` header was sent (a batch item inherits its envelope's).
    pub authorization_present: bool,
    /// The `client-request-id` the client sent.
    pub client_request_id: Option<String>,
    /// The `request-id` the fake answered with.
    pub request_id: String,
    /// The app (client id) of the bearer token, or the `client_id` of a token request.
    pub app_id: Option<String>,
    /// The addressed user's object id, when the path named an existing user.
    pub user_id: Option<String>,
    /// Response status.
    pub status: u16,
    /// `error.code` (Graph) or `AADSTSnnn` (token endpoint) of an error answer.
    pub error_code: Option<String>,
    /// Request body length (a batch item: decoded body).
    pub request_body_len: usize,
    /// Response body length (a batch item: before base64).
    pub response_body_len: usize,
    /// Answered by a failure knob rather than by the operation.
    pub throttled: Option<ThrottleCause>,
    /// The `Retry-After` value sent.
    pub retry_after: Option<String>,
    /// Request `Content-Type`.
    pub content_type: Option<String>,
    /// For uploads: the image type the bytes really are (`image/jpeg`, `image/png`).
    pub detected_image: Option<&'static str>,
    /// Graph operations of any app in the fake, this one included, when it arrived.
    pub in_flight_at_arrival: Option<usize>,
}

impl RequestRecord {
    /// A request header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A Graph operation (direct or batch item), not a token request or batch envelope.
    pub fn is_operation(&self) -> bool {
        matches!(
            self.kind,
            RequestKind::Graph | RequestKind::BatchItem { .. }
        )
    }

    /// When the client may retry, from the `Retry-After` this answer carried.
    pub fn retry_not_before(&self) -> Option<SystemTime> {
        let v = self.retry_after.as_deref()?.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(self.answered_wall + Duration::from_secs(secs));
        }
        httpdate::parse_http_date(v).ok()
    }

    /// Time spent answering.
    pub fn duration(&self) -> Duration {
        self.answered_at.saturating_duration_since(self.received_at)
    }

    fn target_key(&self) -> String {
        match &self.user_id {
            Some(id) => id.to_ascii_lowercase(),
            None => format!("{} {}", self.method, self.path),
        }
    }
}

/// A request for a user that arrived before the `Retry-After` of an earlier answer for that
/// user had passed.
#[derive(Clone, Debug)]
pub struct RetryViolation {
    /// The 429/503 answer that carried `Retry-After`.
    pub throttled: RequestRecord,
    /// The first later request for the same user.
    pub retry: RequestRecord,
    /// When `retry` would have been allowed.
    pub not_before: SystemTime,
}

/// The largest number of records whose `[received_at, answered_at)` intervals overlap: an
/// independent measure of concurrency, computed from the records alone.
pub fn max_overlap(records: &[RequestRecord]) -> usize {
    let mut events: Vec<(Instant, i32)> = Vec::with_capacity(records.len() * 2);
    for r in records {
        events.push((r.received_at, 1));
        events.push((r.answered_at, -1));
    }
    // At equal instants the end comes first, so touching intervals do not overlap.
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    max as usize
}

/// Requests for a user that came before the `Retry-After` of the previous 429/503 answer for
/// that user (any method; a request not naming a known user is keyed by method + path).
pub(super) fn retry_after_violations(records: &[RequestRecord]) -> Vec<RetryViolation> {
    let mut out = Vec::new();
    for r in records.iter().filter(|r| r.is_operation()) {
        if !matches!(r.status, 429 | 503) {
            continue;
        }
        let Some(not_before) = r.retry_not_before() else {
            continue;
        };
        let key = r.target_key();
        let next = records
            .iter()
            .filter(|q| {
                q.is_operation()
                    && q.seq != r.seq
                    && q.received_wall >= r.answered_wall
                    && q.target_key() == key
            })
            .min_by_key(|q| q.received_wall);
        if let Some(q) = next {
            if q.received_wall < not_before {
                out.push(RetryViolation {
                    throttled: r.clone(),
                    retry: q.clone(),
                    not_before,
                });
            }
        }
    }
    out
}
