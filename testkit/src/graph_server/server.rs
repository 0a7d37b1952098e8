//! The handle of a running fake ([`GraphServer`]): starting it (plain HTTP or HTTPS), its
//! addresses, and what tests change (configuration, directory, tokens, failures, identities)
//! and read back (users, records, counters).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::certs::ServerCert;
use super::config::{Failure, GraphServerConfig, Throttle, UserSeed};
use super::entry::router;
use super::identity::{FederatedCredential, IdentityAnswer, ManagedIdentityConfig};
use super::images::{detect_image, image_size};
use super::managed_identity;
use super::recorder::{retry_after_violations, RequestKind, RequestRecord, RetryViolation};
use super::state::{add_user, Inner, Photo, ServerState, UserSnapshot};
use super::tls::{acceptor, TlsListener};
use super::tokens::issue_token;

/// A running fake; it stops accepting connections when dropped.
pub struct GraphServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl GraphServer {
    /// Binds 127.0.0.1 on an ephemeral port and serves until dropped. Needs a Tokio runtime.
    pub async fn start(config: GraphServerConfig) -> Self {
        Self::start_on(config, None).await
    }

    /// Like [`Self::start`], over HTTPS with `cert` (see [`TestCa`](super::TestCa));
    /// [`Self::base_url`] is `https://{host}:{port}` (`host` should be a name `cert` is for,
    /// such as `localhost`, or another name for testing a name mismatch; it must resolve to
    /// 127.0.0.1).
    pub async fn start_tls(config: GraphServerConfig, cert: &ServerCert, host: &str) -> Self {
        Self::start_on(config, Some((cert, host))).await
    }

    async fn start_on(mut config: GraphServerConfig, tls: Option<(&ServerCert, &str)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Graph fake on 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let base_url = match tls {
            None => format!("http://{addr}"),
            Some((_, host)) => format!("https://{host}:{}", addr.port()),
        };
        let seeds = std::mem::take(&mut config.users);
        let mut state = ServerState::new(config);
        for seed in seeds {
            add_user(&mut state, seed);
        }
        let inner = Arc::new(Inner {
            base_url,
            started: Instant::now(),
            state: Mutex::new(state),
        });
        let app = router(inner.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        match tls {
            None => {
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.await;
                        })
                        .await;
                });
            }
            Some((cert, _)) => {
                let listener = TlsListener {
                    tcp: listener,
                    acceptor: acceptor(cert),
                };
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.await;
                        })
                        .await;
                });
            }
        }
        Self {
            inner,
            addr,
            shutdown: Some(tx),
        }
    }

    /// Service root, e.g. `http://127.0.0.1:PORT` (clients add `/v1.0/...`).
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// Authority root (clients add `/{tenant}/oauth2/v2.0/token`); the same listener.
    pub fn login_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// `base_url() + "/v1.0" + path` (`path` starts with `/`).
    pub fn graph_url(&self, path: &str) -> String {
        format!("{}/v1.0{path}", self.inner.base_url)
    }

    /// The token endpoint for the tenant id; also the `aud` a client assertion must carry.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.inner.base_url,
            self.tenant_id()
        )
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> String {
        self.inner.lock().cfg.tenant_id.clone()
    }

    /// The first registered app's client id.
    pub fn client_id(&self) -> String {
        self.inner
            .lock()
            .cfg
            .apps
            .first()
            .map(|a| a.client_id.clone())
            .expect("no app registered")
    }

    /// The first registered app's secret.
    pub fn client_secret(&self) -> Option<String> {
        self.inner
            .lock()
            .cfg
            .apps
            .first()
            .and_then(|a| a.client_secret.clone())
    }

    /// The `scope` a token request must send: `{graph_resource}/.default`.
    pub fn scope(&self) -> String {
        format!(
            "{}/.default",
            self.inner.lock().cfg.graph_resource.trim_end_matches('/')
        )
    }

    /// Issues a token for a registered app without going through the token endpoint (not
    /// recorded, not counted in [`Self::tokens_issued`]): an RS256 JWT with the app's roles
    /// (see [`token_signer`](super::token_signer)), or an opaque string under
    /// [`GraphServerConfig::opaque_tokens`].
    pub fn mint_token(&self, client_id: &str) -> String {
        let mut st = self.inner.lock();
        let app = st
            .cfg
            .apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
            .cloned()
            .expect("mint_token: unknown app");
        issue_token(&mut st, &app)
    }

    /// Every issued token expires now (the next Graph call with one gets 401 "expired").
    pub fn expire_all_tokens(&self) {
        let now = Instant::now();
        for t in self.inner.lock().tokens.values_mut() {
            t.expires_at = now;
        }
    }

    /// Every issued token is forgotten (the next Graph call with one gets 401 "invalid").
    pub fn revoke_all_tokens(&self) {
        self.inner.lock().tokens.clear();
    }

    /// Changes the configuration while running (`users` is ignored: use [`Self::add_user`]).
    pub fn configure(&self, f: impl FnOnce(&mut GraphServerConfig)) {
        f(&mut self.inner.lock().cfg);
    }

    /// Sets the per-operation latency.
    pub fn set_latency(&self, latency: Duration) {
        self.configure(|c| c.latency = latency);
    }

    /// Sets or clears the every-Nth failure (the operation counter keeps running).
    pub fn set_throttle(&self, throttle: Option<Throttle>) {
        self.configure(|c| c.throttle = throttle);
    }

    /// Sets the per-app concurrency limit.
    pub fn set_max_concurrent_per_app(&self, n: Option<usize>) {
        self.configure(|c| c.max_concurrent_per_app = n);
    }

    /// The next Graph operations (after authentication and admission) fail with these, in order.
    pub fn inject_failures(&self, failures: impl IntoIterator<Item = Failure>) {
        self.inner.lock().injected.extend(failures);
    }

    /// Adds a user to the directory.
    pub fn add_user(&self, user: UserSeed) {
        add_user(&mut self.inner.lock(), user);
    }

    /// Replaces a user's photo (id or UPN, case-insensitive) the way another client would (the
    /// user in Outlook or Teams, an admin), without a request: a new `@odata.mediaEtag`, no
    /// read-your-write delay, not counted in [`UserSnapshot::uploads`]. Returns the new etag,
    /// or `None` for an unknown user.
    pub fn set_photo(&self, key: &str, bytes: Vec<u8>) -> Option<String> {
        let mut st = self.inner.lock();
        let idx = st.find_user(key)?;
        let previous = st.users[idx].photo.as_ref().map(|p| p.etag.clone());
        let etag = st.new_etag(&bytes, previous.as_deref());
        let content_type = detect_image(&bytes).unwrap_or("application/octet-stream");
        let size = image_size(&bytes);
        let user = &mut st.users[idx];
        user.photo = Some(Photo {
            bytes: Arc::new(bytes),
            etag: etag.clone(),
            content_type,
            size,
        });
        user.stale = None;
        Some(etag)
    }

    /// A user by id or UPN (case-insensitive).
    pub fn user(&self, key: &str) -> Option<UserSnapshot> {
        let st = self.inner.lock();
        let u = &st.users[st.find_user(key)?];
        Some(UserSnapshot {
            id: u.id.clone(),
            user_principal_name: u.upn.clone(),
            employee_id: u.employee_id.clone(),
            mail: u.mail.clone(),
            photo: u.photo.as_ref().map(|p| p.bytes.as_ref().clone()),
            photo_etag: u.photo.as_ref().map(|p| p.etag.clone()),
            photo_content_type: u.photo.as_ref().map(|p| p.content_type.to_string()),
            photo_size: u.photo.as_ref().and_then(|p| p.size),
            uploads: u.uploads,
            deletes: u.deletes,
            on_premises_sync_enabled: u.on_premises_sync_enabled,
        })
    }

    /// Every request answered so far, in answer order.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.inner.lock().records.clone()
    }

    /// Only Graph operations (direct requests and batch items).
    pub fn operation_records(&self) -> Vec<RequestRecord> {
        self.records()
            .into_iter()
            .filter(RequestRecord::is_operation)
            .collect()
    }

    /// Forgets the records (not the counters below).
    pub fn clear_records(&self) {
        self.inner.lock().records.clear();
    }

    /// Requests to the token endpoint, answered with success or error.
    pub fn token_request_count(&self) -> usize {
        self.inner
            .lock()
            .records
            .iter()
            .filter(|r| r.kind == RequestKind::Token)
            .count()
    }

    /// Tokens issued by the token endpoint.
    pub fn tokens_issued(&self) -> u64 {
        self.inner.lock().tokens_issued
    }

    /// The most Graph operations that were in the fake at once, counted on arrival, including
    /// those then refused by the concurrency limit: a client that never exceeds the limit
    /// keeps this at or below it.
    pub fn max_in_flight(&self) -> usize {
        self.inner.lock().max_raw_in_flight
    }

    /// The most operations of one app that held a concurrency slot at once.
    pub fn max_admitted_in_flight(&self) -> usize {
        self.inner.lock().max_admitted
    }

    /// Resets both maxima to the current counts.
    pub fn reset_max_in_flight(&self) {
        let mut st = self.inner.lock();
        st.max_raw_in_flight = st.raw_in_flight;
        st.max_admitted = st.in_flight.values().copied().max().unwrap_or(0);
    }

    /// Graph operations counted so far (the every-Nth counter).
    pub fn operation_count(&self) -> u64 {
        self.inner.lock().ops
    }

    /// `jti` values of every client assertion accepted.
    pub fn assertion_jtis(&self) -> Vec<String> {
        self.inner.lock().assertion_jtis.clone()
    }

    /// Requests for a user that came before the `Retry-After` of the previous 429/503 answer
    /// for that user (any method; a request not naming a known user is keyed by method + path).
    pub fn retry_after_violations(&self) -> Vec<RetryViolation> {
        retry_after_violations(&self.inner.lock().records)
    }

    /// Gives the fake's resource managed identities: registers an app for each client id
    /// (with [`DEFAULT_APP_ROLES`](super::DEFAULT_APP_ROLES)) and answers the identity
    /// endpoints.
    pub fn enable_managed_identity(&self, cfg: ManagedIdentityConfig) {
        managed_identity::enable(&mut self.inner.lock(), cfg);
    }

    /// Registers a federated credential (its app must be registered, as with
    /// [`GraphServerConfig::with_app`]).
    pub fn add_federated_credential(&self, cred: FederatedCredential) {
        self.inner.lock().identity.federated.push(cred);
    }

    /// The next identity endpoint requests get these answers, in order, instead of their own.
    pub fn inject_identity_answers(&self, answers: impl IntoIterator<Item = IdentityAnswer>) {
        self.inner.lock().identity.injected.extend(answers);
    }

    /// Requests to the managed identity endpoints (`/msi/token`, the metadata path).
    pub fn identity_request_count(&self) -> usize {
        managed_identity::request_count(&self.inner.lock().records)
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}

impl Drop for GraphServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
