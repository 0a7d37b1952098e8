//! Advice in the CLI's terms for the library's errors.
//!
//! The library's messages name its own settings (`GraphSinkBuilder::ca_file`,
//! `LdapConfig::ca_file`...) and the service's codes (`AADSTS700016`...), never this CLI's
//! flags; the fragments it cites are constants in `userphoto::cited`. [`hint`] turns a
//! message of kind `config` that cites one into advice naming the flag and its config-file
//! key (the flag without the dashes), and every place that prints a library error goes
//! through here: [`explain`] for an [`Error`](userphoto::Error), [`explain_failure`] for a
//! report's abort, [`explain_text`] for a plan's failure detail (which has no kind).

use userphoto::sync::SourceFailure;
use userphoto::{cited, human_message, Error, ErrorKind};

/// The cited fragment and the advice for it.
const HINTS: [(&str, &str); 7] = [
    (
        cited::AADSTS_APP_NOT_FOUND,
        "check --client-id and --tenant (client-id and tenant in the config file), and the \
         app's admin consent",
    ),
    (
        cited::AADSTS_TENANT_NOT_FOUND,
        "check --tenant (its id or a verified domain) and --cloud (tenant and cloud in the \
         config file)",
    ),
    (
        cited::AADSTS_INVALID_TENANT,
        "check --tenant (tenant in the config file)",
    ),
    (
        cited::GRAPH_ALLOW_INSECURE_HTTP,
        "allow it with --graph-insecure-http (graph-insecure-http = true in the config file)",
    ),
    (
        cited::GRAPH_CA_FILE,
        "give the CA with --graph-ca-cert FILE (graph-ca-cert in the config file)",
    ),
    (
        cited::MANAGED_IDENTITY_CLIENT_ID,
        "the user-assigned identity's client id is --managed-identity-client-id \
         (managed-identity-client-id in the config file)",
    ),
    (
        cited::LDAP_CA_FILE,
        "give the directory's CA certificate with --ca-cert FILE (ca-cert in the config file)",
    ),
];

/// The advice for a message of `kind` (`None` when the kind is not known), if it cites a
/// setting or code this CLI has an option for: only `config` errors are advised.
fn hint_for(kind: Option<ErrorKind>, message: &str) -> Option<String> {
    if kind.is_some_and(|k| k != ErrorKind::Config) {
        return None;
    }
    let found: Vec<&str> = HINTS
        .iter()
        .filter(|(cited, _)| message.contains(cited))
        .map(|(_, advice)| *advice)
        .collect();
    (!found.is_empty()).then(|| found.join("; "))
}

/// The advice for a library error, naming the CLI's flags and config-file keys, if any.
pub(crate) fn hint(e: &Error) -> Option<String> {
    hint_for(Some(e.kind()), e.message())
}

/// `line`, with `advice` after it when there is some.
fn with(line: String, advice: Option<String>) -> String {
    match advice {
        Some(a) => format!("{line}; {a}"),
        None => line,
    }
}

/// A library error as the CLI prints it for people: for whom and what failed (without the
/// kind, operation and backend, which the report and the log keep), then the advice, on
/// one line.
pub(crate) fn explain(e: &Error) -> String {
    with(e.human(), hint(e))
}

/// A report's abort (or a source failure) as the CLI prints it.
pub(crate) fn explain_failure(f: &SourceFailure) -> String {
    with(
        human_message(&f.message).to_owned(),
        hint_for(Some(f.kind), &f.message),
    )
}

/// A message without its kind (a plan item's failure detail), as the CLI prints it.
pub(crate) fn explain_text(message: &str) -> String {
    with(human_message(message).to_owned(), hint_for(None, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use userphoto::sink::{DirectorySink as _, GraphSink, ManagedIdentity};
    use userphoto::{Secret, UserKey};

    /// A `config` error whose message cites `fragment` as the library does.
    fn citing(fragment: &str) -> Error {
        Error::new(
            ErrorKind::Config,
            format!("something failed ({fragment}); more facts"),
        )
        .with_backend("graph")
        .with_operation("token")
    }

    fn advice(e: &Error) -> String {
        hint(e).unwrap_or_else(|| panic!("no hint for {e}"))
    }

    /// The advice names the flag and its config-file key.
    fn names(advice: &str, flag: &str) {
        assert!(advice.contains(flag), "{flag} in {advice}");
        let key = flag.trim_start_matches("--");
        assert!(advice.contains(&format!("{key} ")), "{key} in {advice}");
        assert!(advice.contains("config file"), "{advice}");
    }

    #[test]
    fn no_such_app() {
        let a = advice(&citing(&format!(
            "{}: no such app in this tenant",
            cited::AADSTS_APP_NOT_FOUND
        )));
        names(&a, "--client-id");
        names(&a, "--tenant");
        assert!(a.contains("admin consent"), "{a}");
    }

    #[test]
    fn no_such_tenant() {
        let a = advice(&citing(cited::AADSTS_TENANT_NOT_FOUND));
        names(&a, "--tenant");
        names(&a, "--cloud");
    }

    #[test]
    fn invalid_tenant() {
        let a = advice(&citing(cited::AADSTS_INVALID_TENANT));
        names(&a, "--tenant");
        assert!(!a.contains("--client-id"), "{a}");
    }

    #[test]
    fn plain_http_to_graph() {
        // The library's own error, from its URL policy.
        let e = GraphSink::builder("t", "c", Secret::new("x"))
            .graph_url("http://graph.example.com")
            .build()
            .unwrap_err();
        let line = explain(&e);
        assert!(line.starts_with(&e.human()), "{line}");
        assert!(!line.starts_with("config in "), "{line}");
        names(&advice(&e), "--graph-insecure-http");
        assert!(line.contains("= true"), "{line}");
    }

    #[test]
    fn graph_tls() {
        let a = advice(&citing(cited::GRAPH_CA_FILE));
        names(&a, "--graph-ca-cert");
        assert!(a.contains("FILE"), "{a}");
    }

    #[tokio::test]
    async fn managed_identity_client_id() {
        // The library's own error: Azure Arc has no user-assigned identities (refused
        // before anything is sent).
        let arc = ManagedIdentity::azure_arc("http://127.0.0.1:9/metadata/identity/oauth2/token")
            .client_id("11111111-2222-4333-8444-555555555555");
        let e = GraphSink::builder_for(arc)
            .build()
            .unwrap()
            .put(
                &UserKey::new("a@b.example"),
                &bytes::Bytes::from_static(b"x"),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        names(&advice(&e), "--managed-identity-client-id");
    }

    #[test]
    fn ldap_tls() {
        let e = Error::new(
            ErrorKind::Config,
            format!(
                "TLS with ldaps://dc.example failed: UnknownIssuer; no CA file was given ({})",
                cited::LDAP_CA_FILE
            ),
        )
        .with_backend("ad")
        .with_operation("connect");
        let a = advice(&e);
        names(&a, "--ca-cert");
        assert!(!a.contains("--graph-ca-cert"), "{a}");
    }

    #[test]
    fn only_config_errors_that_cite_are_advised() {
        assert_eq!(hint(&Error::new(ErrorKind::Config, "bad value")), None);
        let busy = Error::new(
            ErrorKind::Unavailable,
            format!("busy ({})", cited::GRAPH_CA_FILE),
        );
        assert_eq!(hint(&busy), None);
        assert_eq!(explain(&busy), busy.human());
        assert_eq!(explain_text("no such user"), "no such user");
        assert!(explain_text(cited::LDAP_CA_FILE).contains("--ca-cert"));
    }

    #[test]
    fn a_report_s_abort() {
        let f = SourceFailure {
            kind: ErrorKind::Config,
            message: format!("TLS with h failed; from {}", cited::GRAPH_CA_FILE),
        };
        let line = explain_failure(&f);
        assert!(line.starts_with(&f.message), "{line}");
        assert!(line.contains("--graph-ca-cert"), "{line}");
    }
}
