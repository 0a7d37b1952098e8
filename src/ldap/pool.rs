//! The connections of one sink or source: connect (TCP, TLS, StartTLS), bind, reconnect
//! once after a drop, and errors classified through the result-code table.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, StdStream};
use rustls::ClientConfig;

use super::codes::{bind_data_hint, classify, Class, OpClass, Scope as ErrScope};
use super::config::Auth;
use super::search::{entry_of_result, paged_search_with, MALFORMED};
use super::tls::{tls_cause, tls_config};
use super::LdapConfig;
use crate::{Error, ErrorKind, Result, UserKey};

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
            let hint = match &self.cfg.ca_file {
                Some(path) => format!(
                    "with the CA file {}: check it and the host name in the URL",
                    path.display()
                ),
                None => format!(
                    "no CA file was given ({}), so the system's root certificates were used",
                    crate::cited::LDAP_CA_FILE
                ),
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
        let lost_before = self
            .dropped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let started = std::time::Instant::now();
        let opened = self.open().await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match (&opened, &lost_before) {
            (Ok(_), Some(why)) => tracing::warn!(
                target: "userphoto::ldap",
                backend = self.backend,
                url = %self.cfg.url,
                slot,
                lost = %why,
                duration_ms,
                "reconnected"
            ),
            (Err(e), Some(why)) => tracing::warn!(
                target: "userphoto::ldap",
                backend = self.backend,
                url = %self.cfg.url,
                slot,
                lost = %why,
                error = %e,
                duration_ms,
                "reconnecting failed"
            ),
            (Ok(_), None) => tracing::debug!(
                target: "userphoto::ldap",
                backend = self.backend,
                url = %self.cfg.url,
                slot,
                duration_ms,
                "connected and bound"
            ),
            (Err(e), None) => tracing::warn!(
                target: "userphoto::ldap",
                backend = self.backend,
                url = %self.cfg.url,
                slot,
                error = %e,
                duration_ms,
                "connecting failed"
            ),
        }
        let ldap = opened.map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

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
}
