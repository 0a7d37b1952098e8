//! The Graph sink's settings: [`GraphSinkBuilder`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use percent_encoding::utf8_percent_encode;
use tokio::sync::Semaphore;

use super::auth::TokenSource;
use super::http;
use super::{
    Addressing, GraphCloud, GraphCredential, GraphSink, GraphUsers, Inner,
    GRAPH_DEFAULT_MAX_IN_FLIGHT, GRAPH_MAX_BYTES, PATH,
};
#[cfg(doc)]
use super::{GraphCertificate, ManagedIdentity, WorkloadIdentity};
use crate::normalize::BuiltinProfile;
#[cfg(doc)]
use crate::sink::DirectorySink;
use crate::{Error, ErrorKind, MatchAttribute, Result};

/// Builds a [`GraphSink`]: tenant, app, credential, then optional settings.
///
/// ```no_run
/// use userphoto::sink::{GraphCloud, GraphSink};
/// use userphoto::Secret;
/// use userphoto::MatchAttribute;
/// let sink = GraphSink::builder(
///     "contoso.onmicrosoft.com",
///     "3f9e2c1a-7b4d-4c8e-a1f6-0d2b5e9c7a13",
///     Secret::from_env("GRAPH_CLIENT_SECRET")?,
/// )
/// .cloud(GraphCloud::Global)
/// .match_attribute(MatchAttribute::EmployeeId)
/// .build()?;
/// # Ok::<(), userphoto::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct GraphSinkBuilder {
    tenant: String,
    client_id: String,
    credential: GraphCredential,
    cloud: GraphCloud,
    graph_url: Option<String>,
    login_url: Option<String>,
    scope: Option<String>,
    match_attribute: MatchAttribute,
    max_in_flight: usize,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_bytes: usize,
    name: String,
    default_profile: BuiltinProfile,
    confirm_uploads: bool,
    ca_file: Option<std::path::PathBuf>,
    allow_insecure_http: bool,
    users: GraphUsers,
}

impl GraphSinkBuilder {
    /// The national cloud (global by default): sets Graph's URL, the login URL and the scope.
    pub fn cloud(mut self, cloud: GraphCloud) -> Self {
        self.cloud = cloud;
        self
    }

    /// Graph's service root instead of the cloud's, as in `https://graph.microsoft.com` (the
    /// sink adds `/v1.0/…`): a proxy or a test server. The scope stays the cloud's.
    pub fn graph_url(mut self, url: impl Into<String>) -> Self {
        self.graph_url = Some(url.into());
        self
    }

    /// The login authority root instead of the cloud's, as in
    /// `https://login.microsoftonline.com` (the sink adds `/{tenant}/oauth2/v2.0/token`).
    /// It wins over a [`WorkloadIdentity`]'s authority host; a managed identity does not use it.
    pub fn login_url(mut self, url: impl Into<String>) -> Self {
        self.login_url = Some(url.into());
        self
    }

    /// The token scope (default: `{cloud's Graph URL}/.default`).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// What keys are: [`UserPrincipalName`](MatchAttribute::UserPrincipalName) (the
    /// default) or [`ObjectGuid`](MatchAttribute::ObjectGuid) (the object id) go in the path;
    /// [`EmployeeId`](MatchAttribute::EmployeeId), [`Mail`](MatchAttribute::Mail),
    /// [`SamAccountName`](MatchAttribute::SamAccountName) (`onPremisesSamAccountName`) and
    /// [`Other`](MatchAttribute::Other) (a Graph property name) are looked up with `$filter`.
    /// `EmployeeNumber` has no Graph property: [`build`](Self::build) refuses it.
    pub fn match_attribute(mut self, m: MatchAttribute) -> Self {
        self.match_attribute = m;
        self
    }

    /// At most this many Graph requests in flight (default 4; at least 1).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Time to connect (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Time for one whole request and answer (default 100 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// The largest photo sent (default and most [`GRAPH_MAX_BYTES`]).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n.min(GRAPH_MAX_BYTES);
        self
    }

    /// The sink's name in errors, reports and the state store (default `graph`): give two
    /// sinks for two tenants different names.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The profile this sink is written with by default ([`BuiltinProfile::Graph`]).
    pub fn default_profile(mut self, profile: BuiltinProfile) -> Self {
        self.default_profile = profile;
        self
    }

    /// Whether [`put`](DirectorySink::put) reads the new `@odata.mediaEtag` back after each
    /// upload (default `false`).
    ///
    /// * `false` (the default): one request per upload, the `PUT`. `put` returns no etag
    ///   (unless Graph's answer to the `PUT` carries one), so the state store records the
    ///   upload without a version; the next run reads the photo's metadata as it does for
    ///   every user it has a record of, and when the source photo and the rendition still
    ///   match the record it counts the user as unchanged and adopts the etag it sees. Later
    ///   runs compare etags as usual. This halves the requests of a bulk upload (Graph
    ///   allows 4 photo requests in flight per app, so requests are what a run takes time
    ///   for) and never reads a photo right after writing it, which Graph does not promise
    ///   to show at once (contract 1.9).
    ///   The trade-off: a change someone else makes (in Outlook, Teams, the admin center)
    ///   between our upload and the next run is adopted as ours and not written over; a
    ///   change made after that next run is detected.
    /// * `true`: `put` reads `GET …/photo` after a successful `PUT` and returns its etag
    ///   (see [the module docs](super#the-etag-after-an-upload)), so any later change by
    ///   someone else is detected, at the cost of one more request per upload.
    pub fn confirm_uploads(mut self, yes: bool) -> Self {
        self.confirm_uploads = yes;
        self
    }

    /// Which users to write by their sync state (default [`GraphUsers::All`]). With
    /// `CloudOnly` or `Synced` the sink reads every user's `onPremisesSyncEnabled` once
    /// (`User.Read.All`) and the users it leaves out are planned as skipped
    /// ([`DirectorySink::excluded`]).
    pub fn users(mut self, users: GraphUsers) -> Self {
        self.users = users;
        self
    }

    /// Trusts only the CA certificates in this PEM file, instead of the system's roots, for
    /// Graph and the login endpoint: a TLS-inspecting proxy's CA, or a private test CA.
    /// (Without it the system's trust store is used, which `SSL_CERT_FILE` can point
    /// elsewhere.)
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Allows `http://` Graph and login URLs to hosts that are not loopback. Insecure: the
    /// client secret, the client assertion and every bearer token then cross the network in
    /// clear. Without it `http://` is refused except to `127.0.0.0/8`, `::1` and
    /// `localhost` (test servers, a local proxy).
    pub fn allow_insecure_http(mut self, yes: bool) -> Self {
        self.allow_insecure_http = yes;
        self
    }

    /// Checks the settings and builds the HTTP client (no request is made yet).
    pub fn build(self) -> Result<GraphSink> {
        let cfg = |m: String| {
            Error::new(ErrorKind::Config, m)
                .with_backend(self.name.clone())
                .with_operation("build")
        };
        // Workload identity names its tenant and app; given to the builder too, they must agree.
        let (tenant, client_id) = match &self.credential {
            GraphCredential::WorkloadIdentity(w) => {
                let pick = |given: &str, own: &str, what: &str| -> Result<String> {
                    let given = given.trim();
                    if !given.is_empty() && !own.is_empty() && !given.eq_ignore_ascii_case(own) {
                        return Err(cfg(format!(
                            "the {what} given ({given}) is not the workload identity's ({own})"
                        )));
                    }
                    Ok(if own.is_empty() { given } else { own }.to_owned())
                };
                (
                    pick(&self.tenant, w.tenant(), "tenant")?,
                    pick(&self.client_id, w.client_id(), "client id")?,
                )
            }
            GraphCredential::ManagedIdentity(m) => (
                String::new(),
                m.user_assigned_id()
                    .map(str::to_owned)
                    .unwrap_or_else(|| "system-assigned managed identity".to_owned()),
            ),
            _ => (
                self.tenant.trim().to_owned(),
                self.client_id.trim().to_owned(),
            ),
        };
        let managed = matches!(self.credential, GraphCredential::ManagedIdentity(_));
        if !managed && tenant.is_empty() {
            return Err(cfg("the Graph sink needs a tenant (id or domain)".into()));
        }
        if !managed && client_id.is_empty() {
            return Err(cfg("the Graph sink needs a client (application) id".into()));
        }
        if let GraphCredential::ManagedIdentity(m) = &self.credential {
            m.check(self.allow_insecure_http).map_err(cfg)?;
        }
        let addressing = match &self.match_attribute {
            MatchAttribute::UserPrincipalName | MatchAttribute::ObjectGuid => Addressing::Path,
            MatchAttribute::EmployeeId => Addressing::Filter("employeeId".into()),
            MatchAttribute::Mail => Addressing::Filter("mail".into()),
            MatchAttribute::SamAccountName => Addressing::Filter("onPremisesSamAccountName".into()),
            MatchAttribute::EmployeeNumber => {
                return Err(cfg(
                    "Graph users have no employeeNumber; match on employeeId, mail, upn or id"
                        .into(),
                ))
            }
            MatchAttribute::Other(p)
                if p.as_str()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Addressing::Filter(p.as_str().to_owned())
            }
            other => {
                return Err(cfg(format!(
                    "{:?} is not a Graph user property name",
                    other.ldap_name()
                )))
            }
        };
        let insecure = self.allow_insecure_http;
        let url = |u: &str, what: &str| -> Result<String> {
            let u = u.trim().trim_end_matches('/');
            http::check_url(u, insecure).map_err(|why| cfg(format!("the {what} URL {why}")))?;
            Ok(u.to_owned())
        };
        let graph_root = url(
            self.graph_url.as_deref().unwrap_or(self.cloud.graph_url()),
            "Graph",
        )?;
        let authority = match &self.credential {
            GraphCredential::WorkloadIdentity(w) => w.authority(),
            _ => None,
        };
        let login_root = url(
            self.login_url
                .as_deref()
                .or(authority)
                .unwrap_or(self.cloud.login_url()),
            "login",
        )?;
        let scope = self
            .scope
            .clone()
            .unwrap_or_else(|| format!("{}/.default", self.cloud.graph_url()));
        let token_url = format!(
            "{login_root}/{}/oauth2/v2.0/token",
            utf8_percent_encode(&tenant, PATH)
        );
        let ca = match &self.ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| {
                cfg(format!(
                    "cannot read the Graph CA file {}: {e}",
                    p.display()
                ))
            })?),
            None => None,
        };
        let client = http::Http::new(self.connect_timeout, self.request_timeout, ca.as_deref())
            .map_err(|e| match &self.ca_file {
                Some(p) => cfg(format!("the Graph CA file {}: {e}", p.display())),
                None => cfg(format!("cannot build the HTTP client: {e}")),
            })?;
        let token = TokenSource::new(
            client.clone(),
            token_url,
            client_id,
            scope,
            self.credential.clone(),
            self.name.clone(),
        );
        Ok(GraphSink {
            inner: Arc::new(Inner {
                http: client,
                api: format!("{graph_root}/v1.0"),
                token,
                sem: Semaphore::new(self.max_in_flight),
                max_in_flight: self.max_in_flight,
                addressing,
                resolved: Mutex::new(HashMap::new()),
                seen_etag: Mutex::new(HashMap::new()),
                max_bytes: self.max_bytes,
                name: self.name,
                default_profile: self.default_profile,
                confirm_uploads: self.confirm_uploads,
                users: self.users,
                sync_states: tokio::sync::OnceCell::new(),
                policy: tokio::sync::OnceCell::new(),
            }),
        })
    }
}

impl GraphSink {
    /// A builder whose tenant and app come from the credential: a [`ManagedIdentity`] (it
    /// needs neither) or a [`WorkloadIdentity`] (it names both). With a secret or a
    /// certificate, [`build`](GraphSinkBuilder::build) asks for the tenant and app id.
    pub fn builder_for(credential: impl Into<GraphCredential>) -> GraphSinkBuilder {
        Self::builder("", "", credential)
    }

    /// A builder for `tenant` (GUID or domain) and the app `client_id`, with a credential: a
    /// [`Secret`](crate::Secret) or a [`GraphCertificate`].
    pub fn builder(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        credential: impl Into<GraphCredential>,
    ) -> GraphSinkBuilder {
        GraphSinkBuilder {
            tenant: tenant.into(),
            client_id: client_id.into(),
            credential: credential.into(),
            cloud: GraphCloud::Global,
            graph_url: None,
            login_url: None,
            scope: None,
            match_attribute: MatchAttribute::UserPrincipalName,
            max_in_flight: GRAPH_DEFAULT_MAX_IN_FLIGHT,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(100),
            max_bytes: GRAPH_MAX_BYTES,
            name: "graph".into(),
            default_profile: BuiltinProfile::Graph,
            confirm_uploads: false,
            ca_file: None,
            allow_insecure_http: false,
            users: GraphUsers::All,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::DirectorySink;

    #[test]
    fn build_checks() {
        let b = || GraphSink::builder("t", "c", crate::Secret::new("x"));
        assert_eq!(
            b().match_attribute(MatchAttribute::EmployeeNumber)
                .build()
                .unwrap_err()
                .kind(),
            ErrorKind::Config
        );
        assert_eq!(
            b().graph_url("ftp://x").build().unwrap_err().kind(),
            ErrorKind::Config
        );
        assert_eq!(
            GraphSink::builder("", "c", crate::Secret::new("x"))
                .build()
                .unwrap_err()
                .kind(),
            ErrorKind::Config
        );
        let s = b().cloud(GraphCloud::China).build().unwrap();
        assert_eq!(s.inner.api, "https://microsoftgraph.chinacloudapi.cn/v1.0");
        assert_eq!(
            s.inner.token.token_url,
            "https://login.chinacloudapi.cn/t/oauth2/v2.0/token"
        );
        assert_eq!(
            s.inner.token.scope,
            "https://microsoftgraph.chinacloudapi.cn/.default"
        );
        assert!(!s.capabilities().returns_bytes);
        assert_eq!(s.capabilities().max_bytes, 4_000_000);
    }
}
