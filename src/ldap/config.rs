//! [`LdapConfig`]: where a directory is and how to bind to it.

use std::path::PathBuf;
use std::time::Duration;

use crate::Secret;

#[derive(Clone, Debug)]
pub(super) enum Auth {
    Anonymous,
    Simple {
        user: String,
        password: Secret,
    },
    #[cfg(feature = "gssapi")]
    Gssapi {
        service_host: Option<String>,
    },
}

/// How to reach and bind to a directory: shared by [`AdSink`](crate::sink::AdSink) and
/// [`LdapSource`](crate::source::LdapSource).
///
/// * `ldaps://host[:636]`: TLS from the first byte (the default for AD).
/// * `ldap://host[:389]` with [`starttls`](Self::starttls): plain, then upgraded to TLS
///   before the bind.
/// * `ldap://host` without StartTLS only with [`allow_plain`](Self::allow_plain): the
///   password would cross the network in clear, and AD refuses such a simple bind anyway
///   (result 8, `strongerAuthRequired`).
///
/// TLS is verified against the system's root certificates, or only against the CA
/// certificates of [`ca_file`](Self::ca_file). [`insecure_skip_tls_verify`](Self::insecure_skip_tls_verify)
/// turns verification off (for a lab; anyone on the path can then read the password).
///
/// ```
/// use std::time::Duration;
/// use userphoto::{ldap::LdapConfig, Secret};
/// let cfg = LdapConfig::new("ldaps://dc1.example.com", "DC=example,DC=com")
///     .ca_file("/etc/ssl/example-ca.pem")
///     .simple_bind("svc-photos@example.com", Secret::new("from a vault"))
///     .operation_timeout(Duration::from_secs(20));
/// assert!(!format!("{cfg:?}").contains("vault"));
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct LdapConfig {
    pub(super) url: String,
    pub(super) base_dn: String,
    pub(super) starttls: bool,
    pub(super) allow_plain: bool,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) insecure_skip_tls_verify: bool,
    pub(super) auth: Auth,
    pub(super) connect_timeout: Duration,
    pub(super) operation_timeout: Duration,
    pub(super) connections: usize,
    pub(super) page_size: i32,
}

impl LdapConfig {
    /// A directory at `url` (`ldaps://` or `ldap://`), searched below `base_dn`; anonymous
    /// until a bind is set; 10 s to connect, 30 s per operation; one connection.
    pub fn new(url: impl Into<String>, base_dn: impl Into<String>) -> Self {
        Self {
            url: url.into().trim().to_owned(),
            base_dn: base_dn.into(),
            starttls: false,
            allow_plain: false,
            ca_file: None,
            insecure_skip_tls_verify: false,
            auth: Auth::Anonymous,
            connect_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
            connections: 1,
            page_size: 1000,
        }
    }

    /// Upgrades an `ldap://` connection with StartTLS before binding.
    pub fn starttls(mut self, on: bool) -> Self {
        self.starttls = on;
        self
    }

    /// Allows `ldap://` without StartTLS (no encryption at all, unless a GSSAPI bind seals
    /// the connection).
    pub fn allow_plain(mut self, on: bool) -> Self {
        self.allow_plain = on;
        self
    }

    /// Trusts only the CA certificates in this PEM file instead of the system's roots.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Accepts any server certificate. Insecure: for a lab only.
    pub fn insecure_skip_tls_verify(mut self, on: bool) -> Self {
        self.insecure_skip_tls_verify = on;
        self
    }

    /// Binds with a name and password. AD takes a DN (`CN=svc,OU=...`), a UPN
    /// (`svc@example.com`) or a down-level name (`EXAMPLE\svc`).
    pub fn simple_bind(mut self, user: impl Into<String>, password: Secret) -> Self {
        self.auth = Auth::Simple {
            user: user.into(),
            password,
        };
        self
    }

    /// Binds with Kerberos (SASL GSSAPI) using the default credentials cache (`kinit`,
    /// `KRB5CCNAME`; or a client keytab through `KRB5_CLIENT_KTNAME`). The service principal
    /// is `ldap/<host of the URL>` unless [`gssapi_service_host`](Self::gssapi_service_host)
    /// says otherwise.
    ///
    /// Over TLS Kerberos only authenticates. Over plain `ldap://` (with
    /// [`allow_plain`](Self::allow_plain)) it also encrypts, but `ldap3` cannot send a
    /// request larger than the server's SASL buffer (about 64 KiB), so photos are then
    /// limited to [`GSSAPI_PLAIN_MAX_BYTES`](crate::sink::GSSAPI_PLAIN_MAX_BYTES).
    #[cfg(feature = "gssapi")]
    pub fn gssapi_bind(mut self) -> Self {
        self.auth = Auth::Gssapi { service_host: None };
        self
    }

    /// The host name in the Kerberos service principal `ldap/<host>` (when the URL names
    /// the server by address or by another name than its SPN).
    #[cfg(feature = "gssapi")]
    pub fn gssapi_service_host(mut self, host: impl Into<String>) -> Self {
        self.auth = Auth::Gssapi {
            service_host: Some(host.into()),
        };
        self
    }

    /// How long connecting (TCP, TLS and StartTLS) may take.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How long each operation (bind, modify, each page of a search) may take.
    pub fn operation_timeout(mut self, d: Duration) -> Self {
        self.operation_timeout = d;
        self
    }

    /// How many connections to keep (default 1). Each multiplexes any number of operations
    /// in flight; the engine's concurrency bounds how many there are.
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n.clamp(1, 64);
        self
    }

    /// Entries per page of a paged search (default 1000, AD's `MaxPageSize`).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n.clamp(1, 100_000) as i32;
        self
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The base DN.
    pub fn base_dn(&self) -> &str {
        &self.base_dn
    }

    pub(super) fn is_ldaps(&self) -> bool {
        self.url.to_ascii_lowercase().starts_with("ldaps://")
    }

    /// Whether the connection is encrypted with TLS.
    pub(crate) fn uses_tls(&self) -> bool {
        self.is_ldaps() || self.starttls
    }

    /// Whether binds use Kerberos over a connection without TLS (SASL-sealed, with the
    /// `ldap3` request size limit).
    pub(crate) fn gssapi_without_tls(&self) -> bool {
        #[cfg(feature = "gssapi")]
        if matches!(self.auth, Auth::Gssapi { .. }) {
            return !self.uses_tls();
        }
        false
    }

    /// `host:port` to connect to (brackets kept around an IPv6 address).
    pub(super) fn socket_address(&self) -> String {
        let rest = self.url.split_once("://").map(|x| x.1).unwrap_or("");
        let hostport = rest.split('/').next().unwrap_or("");
        let has_port = match hostport.rfind(']') {
            Some(close) => hostport[close..].contains(':'),
            None => hostport.contains(':'),
        };
        if has_port {
            hostport.to_owned()
        } else {
            format!("{hostport}:{}", if self.is_ldaps() { 636 } else { 389 })
        }
    }

    pub(super) fn host(&self) -> String {
        let rest = self.url.split_once("://").map(|x| x.1).unwrap_or("");
        let hostport = rest.split('/').next().unwrap_or("");
        if let Some(v6) = hostport.strip_prefix('[') {
            return v6.split(']').next().unwrap_or("").to_owned();
        }
        hostport.split(':').next().unwrap_or("").to_owned()
    }
}
