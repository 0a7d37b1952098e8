//! Connection settings and the connection pool shared by the AD sink and the LDAP source.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::controls::RawControl;
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, ResultEntry, Scope, SearchEntry, StdStream,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::codes::{bind_data_hint, classify, Class, OpClass, Scope as ErrScope};
use crate::{Error, ErrorKind, Result, UserKey};

/// A password or other secret. Its `Debug` output is redacted, and this crate never puts it
/// in an error, a log line or a report.
///
/// Read it from an environment variable or a file, never from a command line (where every
/// user of the machine can see it in the process list).
///
/// ```
/// use userphoto::sink::Secret;
/// let s = Secret::new("Passw0rd!");
/// assert_eq!(format!("{s:?}"), "Secret(***)");
/// ```
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// A secret from its text.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The value of the environment variable `var` ([`Config`](ErrorKind::Config) when it
    /// is unset, empty or not Unicode).
    pub fn from_env(var: &str) -> Result<Self> {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Self::new(v)),
            Ok(_) => Err(Error::new(
                ErrorKind::Config,
                format!("environment variable {var} is empty"),
            )),
            Err(e) => Err(Error::new(
                ErrorKind::Config,
                format!("environment variable {var}: {e}"),
            )),
        }
    }

    /// The content of `path`, without one trailing line break
    /// ([`Config`](ErrorKind::Config) when it cannot be read or is empty).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        let text = std::fs::read_to_string(p).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot read the secret file {}: {e}", p.display()),
            )
        })?;
        let t = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        if t.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                format!("the secret file {} is empty", p.display()),
            ));
        }
        Ok(Self::new(t))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug)]
enum Auth {
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
/// use userphoto::sink::{LdapConfig, Secret};
/// let cfg = LdapConfig::new("ldaps://dc1.example.com", "DC=example,DC=com")
///     .ca_file("/etc/ssl/example-ca.pem")
///     .simple_bind("svc-photos@example.com", Secret::new("from a vault"))
///     .operation_timeout(Duration::from_secs(20));
/// assert!(!format!("{cfg:?}").contains("vault"));
/// ```
#[derive(Clone, Debug)]
pub struct LdapConfig {
    url: String,
    base_dn: String,
    starttls: bool,
    allow_plain: bool,
    ca_file: Option<PathBuf>,
    insecure_skip_tls_verify: bool,
    auth: Auth,
    connect_timeout: Duration,
    operation_timeout: Duration,
    connections: usize,
    page_size: i32,
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

    fn is_ldaps(&self) -> bool {
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
    fn socket_address(&self) -> String {
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

    fn host(&self) -> String {
        let rest = self.url.split_once("://").map(|x| x.1).unwrap_or("");
        let hostport = rest.split('/').next().unwrap_or("");
        if let Some(v6) = hostport.strip_prefix('[') {
            return v6.split(']').next().unwrap_or("").to_owned();
        }
        hostport.split(':').next().unwrap_or("").to_owned()
    }
}

/// One live connection and the generation it was made in.
struct Live {
    ldap: Ldap,
    gen: u64,
}

/// The connections of one sink or source: made on first use, bound, re-made when they
/// drop. A bind that fails for good (bad credentials, bad configuration) is remembered,
/// so a run with a wrong password tries once and not once per user (which would lock
/// the account out).
pub(crate) struct Pool {
    cfg: LdapConfig,
    backend: &'static str,
    tls: Option<Arc<ClientConfig>>,
    slots: Vec<tokio::sync::Mutex<Option<Live>>>,
    next: AtomicUsize,
    gen: AtomicU64,
    fatal: Mutex<Option<(ErrorKind, String)>>,
    /// Why the last connection was dropped (lost or timed out), until a new one is made:
    /// then a failure to connect again is the directory gone for this run.
    dropped: Mutex<Option<String>>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.cfg)
            .field("backend", &self.backend)
            .finish()
    }
}

/// A handle to a connection of the pool.
pub(crate) struct Handle {
    pub(crate) ldap: Ldap,
    slot: usize,
    gen: u64,
}

/// Why an operation failed: the transport (the connection is gone; retried once on a new
/// one), or anything else.
fn is_transport(e: &LdapError) -> bool {
    matches!(
        e,
        LdapError::Io { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
            | LdapError::EndOfStream
    )
}

fn tls_cause(e: &LdapError) -> Option<String> {
    match e {
        LdapError::Rustls { source } => Some(source.to_string()),
        LdapError::DNSName { source } => Some(source.to_string()),
        LdapError::Io { source } => source
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .map(|r| r.to_string()),
        _ => None,
    }
}

/// A certificate verifier that accepts any certificate but still checks the handshake
/// signatures (for [`LdapConfig::insecure_skip_tls_verify`]).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(cfg: &LdapConfig, backend: &'static str) -> Result<Arc<ClientConfig>> {
    let err = |msg: String| {
        Error::new(ErrorKind::Config, msg)
            .with_backend(backend)
            .with_operation("connect")
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(format!("TLS setup: {e}")))?;
    let config = if cfg.insecure_skip_tls_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        match &cfg.ca_file {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                    .map_err(|e| err(format!("CA file {}: {e}", path.display())))?;
                for c in certs {
                    roots
                        .add(c)
                        .map_err(|e| err(format!("CA file {}: {e}", path.display())))?;
                }
                if roots.is_empty() {
                    return Err(err(format!(
                        "CA file {} holds no certificate",
                        path.display()
                    )));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(err(
                        "no system root certificates found; give the directory's CA certificate (ca_file / --ca-cert)"
                            .into(),
                    ));
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

impl Pool {
    /// Checks the configuration (nothing is sent yet).
    pub(crate) fn new(cfg: LdapConfig, backend: &'static str) -> Result<Self> {
        let err = |msg: String| {
            Error::new(ErrorKind::Config, msg)
                .with_backend(backend)
                .with_operation("connect")
        };
        let lower = cfg.url.to_ascii_lowercase();
        let ldaps = lower.starts_with("ldaps://");
        if !ldaps && !lower.starts_with("ldap://") {
            return Err(err(format!(
                "{:?} is not an ldaps:// or ldap:// URL",
                cfg.url
            )));
        }
        if cfg.host().is_empty() {
            return Err(err(format!("{:?} names no host", cfg.url)));
        }
        if ldaps && cfg.starttls {
            return Err(err(
                "StartTLS is for ldap:// URLs; ldaps:// is TLS already".into()
            ));
        }
        if !ldaps && !cfg.starttls && !cfg.allow_plain {
            return Err(err(format!(
                "{} is plain LDAP: the password would cross the network in clear, and AD refuses a simple bind over it (result 8, strongerAuthRequired); use ldaps://, StartTLS, or allow plain LDAP explicitly",
                cfg.url
            )));
        }
        if cfg.base_dn.trim().is_empty() {
            return Err(err("no base DN".into()));
        }
        let tls = if cfg.uses_tls() {
            Some(tls_config(&cfg, backend)?)
        } else {
            None
        };
        let slots = (0..cfg.connections)
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        Ok(Self {
            cfg,
            backend,
            tls,
            slots,
            next: AtomicUsize::new(0),
            gen: AtomicU64::new(0),
            fatal: Mutex::new(None),
            dropped: Mutex::new(None),
        })
    }

    pub(crate) fn config(&self) -> &LdapConfig {
        &self.cfg
    }

    fn err(&self, kind: ErrorKind, op: &'static str, user: Option<&UserKey>, msg: String) -> Error {
        let e = Error::new(kind, msg)
            .with_backend(self.backend)
            .with_operation(op);
        match user {
            Some(u) => e.with_user(u.clone()),
            None => e,
        }
    }

    /// An error for a failed operation (not a bind).
    pub(crate) fn op_error(
        &self,
        e: LdapError,
        class: OpClass,
        op: &'static str,
        user: Option<&UserKey>,
    ) -> Error {
        match e {
            LdapError::LdapResult { result } => {
                let c = classify(result.rc, class).unwrap_or(Class {
                    kind: ErrorKind::Other,
                    what: "unexpected success",
                    scope: ErrScope::Kind,
                });
                let mut msg = c.what.to_owned();
                if !result.text.trim().is_empty() {
                    msg.push_str(": ");
                    msg.push_str(result.text.trim());
                }
                let e = c.scoped(self.err(c.kind, op, user, msg));
                if matches!(
                    c.kind,
                    ErrorKind::InvalidPhoto | ErrorKind::PermissionDenied
                ) {
                    e.permanent()
                } else {
                    e
                }
            }
            LdapError::AdapterInit(m) if m.starts_with(MALFORMED) => {
                self.err(ErrorKind::InvalidData, op, user, m)
            }
            LdapError::Timeout { .. } => self.err(
                ErrorKind::Timeout,
                op,
                user,
                format!(
                    "no answer from {} within {:.0?}",
                    self.cfg.url, self.cfg.operation_timeout
                ),
            ),
            e if is_transport(&e) => self
                .err(
                    ErrorKind::Unavailable,
                    op,
                    user,
                    format!("connection to {} lost: {e}", self.cfg.url),
                )
                .with_source(e),
            e => self
                .err(ErrorKind::Other, op, user, e.to_string())
                .with_source(e),
        }
    }

    /// Opens and binds a new connection.
    async fn open(&self) -> Result<Ldap> {
        let cfg = &self.cfg;
        let mut settings = LdapConnSettings::new().set_conn_timeout(cfg.connect_timeout);
        if let Some(tls) = &self.tls {
            settings = settings
                .set_config(tls.clone())
                .set_no_tls_verify(cfg.insecure_skip_tls_verify)
                .set_starttls(cfg.starttls);
        }
        // Our own TCP connection, with Nagle's algorithm off: several requests are in flight
        // on one connection, and each small one would otherwise wait for the ACK of the one
        // before (with delayed ACKs, tens of milliseconds per request).
        let addr = cfg.socket_address();
        let tcp =
            match tokio::time::timeout(cfg.connect_timeout, tokio::net::TcpStream::connect(&addr))
                .await
            {
                Err(_) => {
                    return Err(self.err(
                        ErrorKind::Unavailable,
                        "connect",
                        None,
                        format!(
                            "cannot connect to {} within {:.0?}",
                            cfg.url, cfg.connect_timeout
                        ),
                    ))
                }
                Ok(Err(e)) => {
                    return Err(self
                        .err(
                            ErrorKind::Unavailable,
                            "connect",
                            None,
                            format!("cannot connect to {}: {e}", cfg.url),
                        )
                        .with_source(e))
                }
                Ok(Ok(t)) => t,
            };
        let _ = tcp.set_nodelay(true);
        let std_tcp = match tcp.into_std() {
            Ok(s) => s,
            Err(e) => return Err(self.connect_error(LdapError::from(e))),
        };
        settings = settings.set_std_stream(StdStream::Tcp(std_tcp));
        let connected = LdapConnAsync::with_settings(settings, &cfg.url).await;
        let (conn, mut ldap) = match connected {
            Ok(x) => x,
            Err(e) => return Err(self.connect_error(e)),
        };
        ldap3::drive!(conn);
        let t = cfg.operation_timeout;
        let bound = match &cfg.auth {
            Auth::Anonymous => return Ok(ldap),
            Auth::Simple { user, password } => {
                ldap.with_timeout(t)
                    .simple_bind(user, password.expose())
                    .await
            }
            #[cfg(feature = "gssapi")]
            Auth::Gssapi { service_host } => {
                let host = service_host.clone().unwrap_or_else(|| cfg.host());
                ldap.with_timeout(t).sasl_gssapi_bind(&host).await
            }
        };
        let who = match &cfg.auth {
            Auth::Simple { user, .. } => format!("as {user}"),
            #[cfg(feature = "gssapi")]
            Auth::Gssapi { .. } => "with Kerberos (GSSAPI)".to_owned(),
            Auth::Anonymous => String::new(),
        };
        match bound {
            Ok(r) if r.rc == 0 => Ok(ldap),
            Ok(r) => {
                let c = classify(r.rc, OpClass::Bind).unwrap_or(Class {
                    kind: ErrorKind::Other,
                    what: "unexpected result",
                    scope: ErrScope::Run,
                });
                let kind = c.kind;
                let mut msg = format!("bind {who} to {} refused: {}", cfg.url, c.what);
                if let Some(h) = bind_data_hint(&r.text) {
                    msg.push_str(&format!(" ({h})"));
                }
                if !r.text.trim().is_empty() {
                    msg.push_str(&format!("; server says: {}", r.text.trim()));
                }
                if r.rc == 8 && !cfg.uses_tls() {
                    msg.push_str(" [this connection is plain ldap:// without StartTLS]");
                }
                let e = c.scoped(self.err(kind, "bind", None, msg));
                if e.is_run_level() {
                    self.remember(&e);
                }
                Err(e)
            }
            Err(LdapError::Timeout { .. }) => Err(self.err(
                ErrorKind::Timeout,
                "bind",
                None,
                format!(
                    "bind {who} to {}: no answer within {:.0?}",
                    cfg.url, cfg.operation_timeout
                ),
            )),
            Err(e) if is_transport(&e) => Err(self
                .err(
                    ErrorKind::Unavailable,
                    "bind",
                    None,
                    format!("bind {who} to {}: connection lost: {e}", cfg.url),
                )
                .with_source(e)),
            Err(e) => {
                // GSSAPI failures (no ticket, unknown principal) end here.
                let err = self
                    .err(
                        ErrorKind::Unauthenticated,
                        "bind",
                        None,
                        format!("bind {who} to {} failed: {e}", cfg.url),
                    )
                    .with_source(e);
                self.remember(&err);
                Err(err)
            }
        }
    }

    fn connect_error(&self, e: LdapError) -> Error {
        let url = &self.cfg.url;
        if let Some(cause) = tls_cause(&e) {
            let hint = if self.cfg.ca_file.is_some() {
                "check the CA file and the host name in the URL"
            } else {
                "give the directory's CA certificate (ca_file / --ca-cert)"
            };
            let err = self
                .err(
                    ErrorKind::Config,
                    "connect",
                    None,
                    format!("TLS with {url} failed: {cause}; {hint}"),
                )
                .with_source(e);
            self.remember(&err);
            return err;
        }
        match e {
            LdapError::Timeout { .. } => self.err(
                ErrorKind::Unavailable,
                "connect",
                None,
                format!(
                    "cannot connect to {url} within {:.0?}",
                    self.cfg.connect_timeout
                ),
            ),
            LdapError::LdapResult { result } => {
                let err = self.err(
                    ErrorKind::Config,
                    "connect",
                    None,
                    format!(
                        "StartTLS with {url} refused: result {} {}",
                        result.rc,
                        result.text.trim()
                    ),
                );
                self.remember(&err);
                err
            }
            e if is_transport(&e) => self
                .err(
                    ErrorKind::Unavailable,
                    "connect",
                    None,
                    format!("cannot connect to {url}: {e}"),
                )
                .with_source(e),
            e => {
                let err = self
                    .err(
                        ErrorKind::Config,
                        "connect",
                        None,
                        format!("cannot connect to {url}: {e}"),
                    )
                    .with_source(e);
                self.remember(&err);
                err
            }
        }
    }

    fn remember(&self, e: &Error) {
        let mut f = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        f.get_or_insert((e.kind(), e.message().to_owned()));
    }

    fn fatal(&self, op: &'static str, user: Option<&UserKey>) -> Option<Error> {
        let f = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        f.as_ref()
            .map(|(k, m)| self.err(*k, op, user, m.clone()).permanent().run_level())
    }

    /// A connection: a live one from the pool, or a new one, bound.
    pub(crate) async fn handle(&self, op: &'static str, user: Option<&UserKey>) -> Result<Handle> {
        if let Some(e) = self.fatal(op, user) {
            return Err(e);
        }
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut guard = self.slots[slot].lock().await;
        if let Some(live) = guard.as_mut() {
            if !live.ldap.is_closed() {
                return Ok(Handle {
                    ldap: live.ldap.clone(),
                    slot,
                    gen: live.gen,
                });
            }
            // Closed between two operations: as lost as one that failed in flight.
            self.dropped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| "the server closed it".to_owned());
        }
        *guard = None;
        if let Some(e) = self.fatal(op, user) {
            return Err(e);
        }
        let ldap = self.open().await.map_err(|e| {
            let lost = self
                .dropped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let e = match lost {
                // The connection dropped and a new one cannot be made: the directory is
                // gone for this run (every further call would wait for the same timeouts).
                Some(why) if !e.is_run_level() => {
                    let err = Error::new(
                        e.kind(),
                        format!(
                            "connection to {} lost ({why}) and reconnecting failed: {}",
                            self.cfg.url,
                            e.message()
                        ),
                    )
                    .with_backend(self.backend)
                    .run_level()
                    .permanent();
                    // Not remembered: once the directory is back, a new run through this
                    // pool connects again.
                    err
                }
                _ => e,
            };
            let e = e.with_operation(op);
            match user {
                Some(u) => e.with_user(u.clone()),
                None => e,
            }
        })?;
        *self.dropped.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let gen = self.gen.fetch_add(1, Ordering::Relaxed) + 1;
        *guard = Some(Live {
            ldap: ldap.clone(),
            gen,
        });
        Ok(Handle { ldap, slot, gen })
    }

    /// Forgets a connection (after it dropped or timed out, `why`), unless it was replaced
    /// already.
    pub(crate) async fn discard(&self, h: &Handle, why: &str) {
        let mut guard = self.slots[h.slot].lock().await;
        if guard.as_ref().is_some_and(|l| l.gen == h.gen) {
            *guard = None;
            self.dropped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| why.to_owned());
        }
    }

    /// Runs an idempotent operation: on a dropped connection it reconnects and tries once
    /// more. `f` gets a fresh handle each time.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        class: OpClass,
        op: &'static str,
        user: Option<&UserKey>,
        f: F,
    ) -> Result<T>
    where
        F: Fn(Ldap) -> Fut,
        Fut: Future<Output = std::result::Result<T, LdapError>>,
    {
        let mut tried = false;
        loop {
            let h = self.handle(op, user).await?;
            match f(h.ldap.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) if is_transport(&e) => {
                    self.discard(&h, &e.to_string()).await;
                    if tried {
                        return Err(self.op_error(e, class, op, user));
                    }
                    tried = true;
                }
                Err(e) => {
                    if matches!(e, LdapError::Timeout { .. }) {
                        // The server may be hung: the next call starts afresh.
                        let why = format!("no answer within {:.0?}", self.cfg.operation_timeout);
                        self.discard(&h, &why).await;
                    }
                    return Err(self.op_error(e, class, op, user));
                }
            }
        }
    }

    /// The operation timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.cfg.operation_timeout
    }

    /// Entries per page of a paged search.
    pub(crate) fn page_size(&self) -> i32 {
        self.cfg.page_size
    }

    /// A paged subtree search below the base DN; search references are ignored.
    pub(crate) async fn search(
        &self,
        op: &'static str,
        user: Option<&UserKey>,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>> {
        self.search_map(op, user, filter, attrs, Some).await
    }

    /// [`search`](Self::search), with each entry turned into a `T` (or dropped) as it
    /// arrives, so a large result (every photo of a directory) is never all in memory.
    /// `keep` may run again from the start if the connection is lost and the search retried.
    pub(crate) async fn search_map<T, K>(
        &self,
        op: &'static str,
        user: Option<&UserKey>,
        filter: &str,
        attrs: &[&str],
        keep: K,
    ) -> Result<Vec<T>>
    where
        K: Fn(SearchEntry) -> Option<T>,
    {
        let base = self.cfg.base_dn.clone();
        let page = self.cfg.page_size;
        let t = self.timeout();
        let attrs: Vec<String> = attrs.iter().map(|s| (*s).to_owned()).collect();
        let keep = &keep;
        self.run(OpClass::Search, op, user, |mut ldap| {
            let (base, attrs) = (base.clone(), attrs.clone());
            async move {
                paged_search_with(
                    &mut ldap,
                    &base,
                    Scope::Subtree,
                    filter,
                    attrs,
                    page,
                    t,
                    Vec::new(),
                    keep,
                )
                .await
            }
        })
        .await
    }

    /// A base-scope read of one entry.
    pub(crate) async fn read_entry(
        &self,
        op: &'static str,
        user: Option<&UserKey>,
        dn: &str,
        attrs: &[&str],
    ) -> Result<Option<SearchEntry>> {
        let t = self.timeout();
        let attrs: Vec<String> = attrs.iter().map(|s| (*s).to_owned()).collect();
        let r = self
            .run(OpClass::Read, op, user, |mut ldap| {
                let attrs = attrs.clone();
                async move {
                    let res = ldap
                        .with_timeout(t)
                        .search(dn, Scope::Base, "(objectClass=*)", attrs)
                        .await?;
                    if res.1.rc == 32 {
                        return Ok(None);
                    }
                    let (entries, _) = res.success()?;
                    entries
                        .into_iter()
                        .find(|e| !e.is_ref() && !e.is_intermediate())
                        .map(entry_of_result)
                        .transpose()
                }
            })
            .await?;
        Ok(r)
    }
}

/// A paged search on `ldap` with these extra controls (the paging control is added);
/// search references and intermediate messages are dropped.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn paged_search(
    ldap: &mut Ldap,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: Vec<String>,
    page: i32,
    timeout: Duration,
    controls: Vec<RawControl>,
) -> std::result::Result<Vec<SearchEntry>, LdapError> {
    paged_search_with(
        ldap, base, scope, filter, attrs, page, timeout, controls, Some,
    )
    .await
}

/// [`paged_search`], keeping what `keep` makes of each entry as it arrives.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn paged_search_with<T>(
    ldap: &mut Ldap,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: Vec<String>,
    page: i32,
    timeout: Duration,
    controls: Vec<RawControl>,
    keep: impl Fn(SearchEntry) -> Option<T>,
) -> std::result::Result<Vec<T>, LdapError> {
    let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(page)),
    ];
    let l = ldap.with_timeout(timeout);
    if !controls.is_empty() {
        l.with_controls(controls);
    }
    let mut stream = l
        .streaming_search_with(adapters, base, scope, filter, attrs)
        .await?;
    let mut out = Vec::new();
    while let Some(entry) = stream.next().await? {
        if entry.is_ref() || entry.is_intermediate() {
            continue;
        }
        if let Some(v) = keep(entry_of_result(entry)?) {
            out.push(v);
        }
    }
    let res = stream.finish().await;
    // 10 (referral) only says some entries live elsewhere: ignored like search references.
    if res.rc != 10 {
        res.success()?;
    }
    Ok(out)
}

/// What an [`LdapError::AdapterInit`] made by [`entry_of_result`] starts with (mapped to
/// [`ErrorKind::InvalidData`]).
pub(crate) const MALFORMED: &str = "the directory sent a malformed entry: ";

/// A search result entry as a [`SearchEntry`] (every value in `bin_attrs`), without
/// `ldap3`'s `SearchEntry::construct`, which panics on a malformed entry. A malformed one
/// (not a sequence, a DN that is not UTF-8, an attribute without values, an `objectGUID`
/// that is not 16 bytes) is an error.
pub(crate) fn entry_of_result(re: ResultEntry) -> std::result::Result<SearchEntry, LdapError> {
    entry_parts(re).map_err(|m| LdapError::AdapterInit(format!("{MALFORMED}{m}")))
}

fn entry_parts(re: ResultEntry) -> std::result::Result<SearchEntry, String> {
    use std::collections::HashMap;
    let tag = re.0;
    if tag.id != 4 {
        return Err(format!(
            "a message with tag {}, not a search entry (4)",
            tag.id
        ));
    }
    let mut parts = tag
        .expect_constructed()
        .ok_or("the entry is not a sequence")?
        .into_iter();
    let dn = parts
        .next()
        .and_then(|t| t.expect_primitive())
        .ok_or("the entry has no DN")?;
    let dn = String::from_utf8(dn).map_err(|e| {
        format!(
            "a DN that is not UTF-8 ({} bytes, invalid at byte {})",
            e.as_bytes().len(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let attrs = parts
        .next()
        .and_then(|t| t.expect_constructed())
        .ok_or_else(|| format!("{dn}: no attribute list"))?;
    let mut bin_attrs: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for a in attrs {
        let mut pa = a
            .expect_constructed()
            .ok_or_else(|| format!("{dn}: an attribute that is not a sequence"))?
            .into_iter();
        let name = pa
            .next()
            .and_then(|t| t.expect_primitive())
            .and_then(|n| String::from_utf8(n).ok())
            .ok_or_else(|| format!("{dn}: an attribute without a valid name"))?;
        let vals = pa
            .next()
            .and_then(|t| t.expect_constructed())
            .ok_or_else(|| format!("{dn}: attribute {name} has no set of values"))?;
        let vals: Vec<Vec<u8>> = vals
            .into_iter()
            .map(|t| t.expect_primitive())
            .collect::<Option<_>>()
            .ok_or_else(|| format!("{dn}: a value of {name} is not an octet string"))?;
        let guid = ["objectGUID", "invocationId"]
            .iter()
            .any(|g| g.eq_ignore_ascii_case(&name));
        if let Some(v) = vals.iter().find(|v| guid && v.len() != 16) {
            return Err(format!("{dn}: {name} of {} bytes (a GUID has 16)", v.len()));
        }
        bin_attrs.entry(name).or_default().extend(vals);
    }
    Ok(SearchEntry {
        dn,
        attrs: HashMap::new(),
        bin_attrs,
    })
}

/// Escapes a value for an LDAP filter (RFC 4515): `*`, `(`, `)`, `\` and NUL become `\2a`,
/// `\28`, `\29`, `\5c` and `\00`; everything else (UTF-8 included) is kept.
pub(crate) fn escape_filter_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Every byte escaped (`\xx`), for binary values such as `objectGUID`.
pub(crate) fn escape_filter_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("\\{x:02x}")).collect()
}

/// The 16 bytes AD stores for a canonical GUID string (Windows layout: the first three
/// fields little-endian).
pub(crate) fn guid_to_bytes(canonical: &str) -> Option<[u8; 16]> {
    let hex: String = canonical.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut b = [0u8; 16];
    for (i, x) in b.iter_mut().enumerate() {
        *x = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    Some(b)
}

/// The canonical GUID string of AD's 16 `objectGUID` bytes.
pub(crate) fn guid_from_bytes(b: &[u8]) -> Option<String> {
    if b.len() != 16 {
        return None;
    }
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

/// Every value of `attr` in an entry, as bytes (the attribute may be in either map of a
/// `SearchEntry`, and its name in another case than asked).
pub(crate) fn values<'a>(e: &'a SearchEntry, attr: &str) -> Vec<&'a [u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for (k, vs) in &e.attrs {
        if k.eq_ignore_ascii_case(attr) {
            out.extend(vs.iter().map(|s| s.as_bytes()));
        }
    }
    for (k, vs) in &e.bin_attrs {
        if k.eq_ignore_ascii_case(attr) {
            out.extend(vs.iter().map(|v| v.as_slice()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_escaped() {
        assert_eq!(escape_filter_value("o'brien"), "o'brien");
        assert_eq!(escape_filter_value("ann*"), "ann\\2a");
        assert_eq!(escape_filter_value("j(doe)"), "j\\28doe\\29");
        assert_eq!(escape_filter_value("a\\b"), "a\\5cb");
        assert_eq!(escape_filter_value("Müller"), "Müller");
        assert_eq!(escape_filter_value("Doe, John"), "Doe, John");
        assert_eq!(
            escape_filter_value("x)(sAMAccountName=*"),
            "x\\29\\28sAMAccountName=\\2a"
        );
        assert_eq!(escape_filter_value("nul\0"), "nul\\00");
        assert_eq!(escape_filter_bytes(&[0x00, 0xab, 0x2a]), "\\00\\ab\\2a");
    }

    #[test]
    fn guids_round_trip_in_windows_layout() {
        let g = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        let b = guid_to_bytes(g).unwrap();
        assert_eq!(&b[..4], &[0x3c, 0x2d, 0x1e, 0x0f]);
        assert_eq!(&b[4..8], &[0x5a, 0x4b, 0x78, 0x69]);
        assert_eq!(&b[8..], &[0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0]);
        assert_eq!(guid_from_bytes(&b).unwrap(), g);
        assert!(guid_to_bytes("xyz").is_none());
    }

    #[test]
    fn secrets_are_redacted_and_plain_ldap_is_refused() {
        let cfg = LdapConfig::new("ldap://dc1", "DC=x").simple_bind("u", Secret::new("hunter2"));
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let e = Pool::new(cfg.clone(), "ad").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("ldaps://"), "{e}");
        assert!(!e.to_string().contains("hunter2"));
        assert!(Pool::new(cfg.clone().allow_plain(true), "ad").is_ok());
        let e = Pool::new(LdapConfig::new("ldaps://dc1", "DC=x").starttls(true), "ad").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let e = Pool::new(LdapConfig::new("http://dc1", "DC=x"), "ad").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert_eq!(LdapConfig::new("ldaps://[::1]:636", "x").host(), "::1");
        assert_eq!(
            LdapConfig::new("ldaps://[::1]", "x").socket_address(),
            "[::1]:636"
        );
        assert_eq!(
            LdapConfig::new("ldap://dc1/", "x").socket_address(),
            "dc1:389"
        );
        assert_eq!(
            LdapConfig::new("ldaps://dc1:3269", "x").socket_address(),
            "dc1:3269"
        );
        assert_eq!(
            LdapConfig::new("ldap://dc1.example.com:389/", "x").host(),
            "dc1.example.com"
        );
    }

    mod hostile {
        use super::super::*;
        use ldap3::asn1::{StructureTag, TagClass, PL};

        fn prim(b: &[u8]) -> StructureTag {
            StructureTag {
                class: TagClass::Universal,
                id: 4,
                payload: PL::P(b.to_vec()),
            }
        }
        fn cons(id: u64, v: Vec<StructureTag>) -> StructureTag {
            StructureTag {
                class: TagClass::Universal,
                id,
                payload: PL::C(v),
            }
        }
        fn attr(name: &str, vals: Vec<StructureTag>) -> StructureTag {
            cons(16, vec![prim(name.as_bytes()), cons(17, vals)])
        }
        /// A search result entry (APPLICATION 4) of these parts.
        fn entry(parts: Vec<StructureTag>) -> ResultEntry {
            ResultEntry::new(StructureTag {
                class: TagClass::Application,
                id: 4,
                payload: PL::C(parts),
            })
        }
        fn err(re: ResultEntry) -> Error {
            let e = entry_of_result(re).unwrap_err();
            Pool::new(
                LdapConfig::new("ldap://dc1", "DC=x").allow_plain(true),
                "ad",
            )
            .unwrap()
            .op_error(e, OpClass::Search, "prefetch", None)
        }
        /// Whether ldap3's own constructor panics on it (the hostile value is real).
        fn ldap3_panics(re: impl FnOnce() -> ResultEntry + std::panic::UnwindSafe) -> bool {
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let r = std::panic::catch_unwind(|| SearchEntry::construct(re()));
            std::panic::set_hook(hook);
            r.is_err()
        }

        #[test]
        fn a_good_entry_keeps_its_dn_and_every_value_as_bytes() {
            let guid = [7u8; 16];
            let e = entry_of_result(entry(vec![
                prim(b"CN=Ann,DC=x"),
                cons(
                    16,
                    vec![
                        attr("sAMAccountName", vec![prim(b"ann")]),
                        attr("thumbnailPhoto", vec![prim(&[0xFF, 0xD8, 0x00])]),
                        attr("objectGUID", vec![prim(&guid)]),
                    ],
                ),
            ]))
            .unwrap();
            assert_eq!(e.dn, "CN=Ann,DC=x");
            assert_eq!(values(&e, "samaccountname"), vec![&b"ann"[..]]);
            assert_eq!(
                values(&e, "thumbnailPhoto"),
                vec![&[0xFFu8, 0xD8, 0x00][..]]
            );
            assert_eq!(values(&e, "objectGUID"), vec![&guid[..]]);
        }

        #[test]
        fn a_dn_that_is_not_utf8_is_invalid_data_not_a_panic() {
            let re = || entry(vec![prim("CN=Zoë,DC=x".as_bytes()), cons(16, vec![])]);
            let bad = || {
                entry(vec![
                    prim(&[b'C', b'N', b'=', 0xFF, 0xFE]),
                    cons(16, vec![]),
                ])
            };
            assert!(entry_of_result(re()).is_ok());
            assert!(ldap3_panics(bad));
            let e = err(bad());
            assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
            assert!(e.to_string().contains("a DN that is not UTF-8"), "{e}");
        }

        #[test]
        fn malformed_structures_are_invalid_data_not_a_panic() {
            type Case = (fn() -> ResultEntry, &'static str);
            let cases: [Case; 8] = [
                (|| entry(vec![]), "no DN"),
                (|| entry(vec![prim(b"CN=a")]), "no attribute list"),
                (
                    || entry(vec![prim(b"CN=a"), prim(b"not a sequence")]),
                    "no attribute list",
                ),
                (
                    || entry(vec![prim(b"CN=a"), cons(16, vec![prim(b"x")])]),
                    "not a sequence",
                ),
                (
                    || {
                        entry(vec![
                            prim(b"CN=a"),
                            cons(16, vec![cons(16, vec![prim(b"cn")])]),
                        ])
                    },
                    "no set of values",
                ),
                (
                    || {
                        entry(vec![
                            prim(b"CN=a"),
                            cons(16, vec![attr("cn", vec![cons(16, vec![])])]),
                        ])
                    },
                    "not an octet string",
                ),
                (
                    || {
                        entry(vec![
                            prim(b"CN=a"),
                            cons(16, vec![cons(16, vec![prim(&[0xFF]), cons(17, vec![])])]),
                        ])
                    },
                    "without a valid name",
                ),
                (
                    || ResultEntry::new(prim(b"a primitive, not an entry")),
                    "the entry is not a sequence",
                ),
            ];
            for (make, why) in cases {
                assert!(ldap3_panics(make), "ldap3 takes the case {why:?}");
                let e = err(make());
                assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
                assert!(e.to_string().contains(why), "{why:?}: {e}");
                assert!(!e.is_run_level());
            }
        }

        #[test]
        fn a_guid_of_the_wrong_length_is_invalid_data() {
            for n in [0usize, 15, 17, 36] {
                let e = err(entry(vec![
                    prim(b"CN=a,DC=x"),
                    cons(16, vec![attr("objectGUID", vec![prim(&vec![1u8; n])])]),
                ]));
                assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
                assert!(
                    e.to_string()
                        .contains(&format!("objectGUID of {n} bytes (a GUID has 16)")),
                    "{e}"
                );
            }
            assert!(guid_from_bytes(&[0u8; 15]).is_none());
            assert!(guid_to_bytes("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f").is_none());
            assert!(guid_to_bytes("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fü").is_none());
        }
    }

    #[test]
    fn secrets_from_files_drop_one_line_break() {
        let p = std::env::temp_dir().join(format!("userphoto-secret-{}", std::process::id()));
        std::fs::write(&p, "pa ss\n").unwrap();
        assert_eq!(Secret::from_file(&p).unwrap().expose(), "pa ss");
        std::fs::write(&p, "").unwrap();
        assert_eq!(Secret::from_file(&p).unwrap_err().kind(), ErrorKind::Config);
        let _ = std::fs::remove_file(&p);
    }
}
