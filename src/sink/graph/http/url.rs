//! URL policy: which schemes and hosts the sink's root URLs (Graph, login) may name.

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
         (127.0.0.1, ::1, localhost) or with the insecure option ({})",
        crate::cited::GRAPH_ALLOW_INSECURE_HTTP
    ))
}

/// `localhost`, `127.0.0.0/8`, `::1` (with or without brackets).
fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(e.contains(crate::cited::GRAPH_ALLOW_INSECURE_HTTP), "{e}");
        assert!(!e.contains("--"), "no application's flag: {e}");
        assert_eq!(check_url("http://graph.example", true), Ok(()));
        assert!(check_url("ftp://graph.example", true).is_err());
    }
}
