//! Graph's HTTP: the transport (`transport.rs`: the hyper client, TLS configuration, body
//! limits), the status table (`status.rs`: what each answer means, `Retry-After`, Graph's
//! error body), the URL policy (`url.rs`: which schemes and hosts are allowed), TLS failures
//! in words (`tls.rs`), and the correlation ids.

mod status;
mod tls;
mod transport;
mod url;

pub(crate) use status::{parse_retry_after, rewrap, Answer, Call, Mapped};
pub(crate) use transport::{Http, Limits, Raw};
pub(crate) use url::check_url;

/// A fresh random (version 4) GUID for `client-request-id` and `jti`.
pub(crate) fn new_guid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_v4_and_fresh() {
        let (a, b) = (new_guid(), new_guid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }
}
