//! What the token endpoints' exchanges share (the app's token endpoint in `auth.rs`, the
//! managed identity endpoints in `identity.rs`): the form encoding of request bodies and
//! the lifetime read from an answer. A module of its own so that neither of those two
//! imports the other for it.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// `application/x-www-form-urlencoded` values: all but unreserved characters encoded.
pub(crate) const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The longest token lifetime believed (Entra issues 60-90 minutes; a day is plenty).
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// `expires_in` (seconds, a number or, from managed identity, a string) as a lifetime at
/// most [`MAX_TOKEN_LIFETIME`]; absent or unreadable (negative, NaN, not a number): 3599 s,
/// Entra's usual value (a token that dies sooner is refreshed on its first 401).
pub(crate) fn token_lifetime(v: Option<&serde_json::Value>) -> Duration {
    let secs: Option<f64> = v.and_then(|x| {
        x.as_f64()
            .or_else(|| x.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
    });
    match secs {
        Some(s) if s.is_nan() || s < 0.0 => Duration::from_secs(3599),
        Some(s) => Duration::try_from_secs_f64(s)
            .unwrap_or(MAX_TOKEN_LIFETIME)
            .min(MAX_TOKEN_LIFETIME),
        None => Duration::from_secs(3599),
    }
}
