//! The status table: what a Graph answer means (success, not found, a user's failure, the
//! run's, retry after throttling), `Retry-After`, the OData error body, and the error a
//! non-2xx answer becomes.

use std::time::{Duration, SystemTime};

use crate::{Error, ErrorKind};

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
}
