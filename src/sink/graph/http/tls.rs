//! TLS failures in words: the reason found in an error chain, by type (never by the text of
//! a `Debug` dump), and what to do about it.

use rustls::CertificateError;

/// The first `rustls::Error` in `e`'s chain: each link's `source()`, and the error an
/// `io::Error` wraps (an `io::Error` hides it from `source()`: it answers the inner error's
/// source, and hyper-rustls wraps tokio-rustls' `io::Error`, which holds the rustls error,
/// in another one).
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(x) = cur {
        if let Some(t) = x.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        cur = match x
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => x.source(),
        };
    }
    None
}

/// Why the server's certificate was refused, in words.
fn why(t: &rustls::Error) -> &'static str {
    use CertificateError as C;
    match t {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => {
                "its certificate's issuer is not trusted (a TLS-inspecting proxy or a private CA?)"
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "its certificate is not valid for this host name"
            }
            C::Expired | C::ExpiredContext { .. } => {
                "its certificate has expired (or this machine's clock is wrong)"
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "its certificate is not valid yet (or this machine's clock is wrong)"
            }
            C::Revoked => "its certificate is revoked",
            _ => "the TLS handshake failed",
        },
        _ => "the TLS handshake failed",
    }
}

/// The TLS reason in an error chain (a certificate the client does not trust, a wrong
/// name, an expired certificate), in words with what to do; `None` when TLS is not the
/// cause.
pub(crate) fn tls_failure(e: &(dyn std::error::Error + 'static), host: &str) -> Option<String> {
    let t = rustls_error(e)?;
    Some(format!(
        "TLS with {host} failed: {} ({t}); the issuing CA is trusted from the system's trust \
         store (or the PEM file SSL_CERT_FILE names) or from {}",
        why(t),
        crate::cited::GRAPH_CA_FILE
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(t: rustls::Error) -> std::io::Error {
        // As hyper-rustls hands it over: an io::Error around an io::Error around rustls'.
        std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, t))
    }

    #[test]
    fn certificate_errors_by_type() {
        let cases = [
            (CertificateError::UnknownIssuer, "issuer is not trusted"),
            (
                CertificateError::NotValidForName,
                "not valid for this host name",
            ),
            (CertificateError::Expired, "has expired"),
            (CertificateError::NotValidYet, "not valid yet"),
            (CertificateError::Revoked, "revoked"),
            (CertificateError::BadSignature, "handshake failed"),
        ];
        for (c, says) in cases {
            let e = wrapped(rustls::Error::InvalidCertificate(c.clone()));
            let m = tls_failure(&e, "graph.example:443").unwrap();
            assert!(m.contains(says), "{c:?}: {m}");
            assert!(m.contains("graph.example:443"), "{m}");
            assert!(m.contains(crate::cited::GRAPH_CA_FILE), "{m}");
            assert!(!m.contains("--"), "{m}");
        }
        let e = wrapped(rustls::Error::HandshakeNotComplete);
        assert!(tls_failure(&e, "h").unwrap().contains("handshake failed"));
    }

    #[test]
    fn other_errors_are_not_tls() {
        let e = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(tls_failure(&e, "h"), None);
    }
}
