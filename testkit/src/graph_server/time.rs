//! Clock helpers (Unix seconds, the two date forms the fake writes: Graph's `innerError.date`
//! and Entra's `timestamp`, formatted with the `time` crate) and fresh GUIDs.

use std::time::{SystemTime, UNIX_EPOCH};

use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

/// Seconds since the Unix epoch (0 before it).
pub(super) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `t` in UTC, whole seconds; a time past the year 9999 (a hostile claim) shows as the last
/// second of 9999.
fn utc(t: SystemTime) -> OffsetDateTime {
    i64::try_from(unix_secs(t))
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(|| PrimitiveDateTime::new(Date::MAX, Time::MAX).assume_utc())
}

/// `2020-08-18T12:51:51`, as in Graph's `innerError.date`.
pub fn iso_datetime(t: SystemTime) -> String {
    let d = utc(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// `2020-08-18 12:51:51Z`, as in Entra's `timestamp`.
pub fn entra_timestamp(t: SystemTime) -> String {
    let d = utc(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// A fresh GUID (request ids, trace and correlation ids, `oid`, `sub`, `jti`).
pub(super) fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}
