//! The stable fragments that error messages cite: settings by their API names, and the
//! service's codes.
//!
//! The library's messages state facts (what failed, which setting is involved, what the
//! server said) in the library's own terms; they give no advice in terms of any
//! application's options. An application that sets these through its own options (a
//! command-line flag, a config key) can look for these constants in
//! [`Error::message`](crate::Error::message), or in a report's message, to point at its own
//! option. Each constant appears verbatim in the messages its documentation names, and does
//! not change within a major version; check [`Error::kind`](crate::Error::kind) too (every
//! message listed here is of kind [`Config`](crate::ErrorKind::Config)).
//!
//! ```
//! use userphoto::{cited, Error, ErrorKind};
//! // As a CLI might: the library's setting, in the CLI's terms.
//! fn advice(e: &Error) -> Option<&'static str> {
//!     (e.kind() == ErrorKind::Config && e.message().contains(cited::LDAP_CA_FILE))
//!         .then_some("give the CA with --ca-cert FILE")
//! }
//! # let e = Error::new(ErrorKind::Config, format!("TLS failed; ({})", cited::LDAP_CA_FILE));
//! # assert!(advice(&e).is_some());
//! ```

/// `GraphSinkBuilder::allow_insecure_http`: cited when the Graph URL, the login URL or the
/// managed identity endpoint is plain `http://` to a host that is not loopback (or, for the
/// managed identity endpoint, link-local).
pub const GRAPH_ALLOW_INSECURE_HTTP: &str = "GraphSinkBuilder::allow_insecure_http";

/// `GraphSinkBuilder::ca_file`: cited when TLS with the Graph service, the login endpoint or
/// the managed identity endpoint fails on the server's certificate.
pub const GRAPH_CA_FILE: &str = "GraphSinkBuilder::ca_file";

/// `ManagedIdentity::client_id` (a user-assigned identity): cited when Azure Arc is given
/// one (it has none), and when the managed identity endpoint refuses the token request for
/// the user-assigned identity given (HTTP 400: not assigned to this resource?).
pub const MANAGED_IDENTITY_CLIENT_ID: &str = "ManagedIdentity::client_id";

/// `LdapConfig::ca_file`: cited when TLS with the directory fails on its certificate and no
/// CA file was given, and when no CA file was given and the system has no root certificates.
pub const LDAP_CA_FILE: &str = "LdapConfig::ca_file";

/// Entra ID's code for "no app with this client id in this tenant" (or not consented to):
/// cited, followed by a colon, when the token endpoint answers with it.
pub const AADSTS_APP_NOT_FOUND: &str = "AADSTS700016";

/// Entra ID's code for "no such tenant" (not in this cloud, or no such id or verified
/// domain): cited, followed by a colon, when the token endpoint answers with it.
pub const AADSTS_TENANT_NOT_FOUND: &str = "AADSTS90002";

/// Entra ID's code for "the tenant is not a valid tenant id or domain name": cited, followed
/// by a colon, when the token endpoint answers with it.
pub const AADSTS_INVALID_TENANT: &str = "AADSTS900023";
