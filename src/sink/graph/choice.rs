//! Choosing the Graph credential from explicit settings and the environment, as a command
//! line or a service's configuration gives them: [`GraphCredentialChoice`].

use std::fmt;
use std::path::PathBuf;

use super::{GraphCertificate, GraphCredential, GraphSink, GraphSinkBuilder};
use super::{ManagedIdentity, WorkloadIdentity};
use crate::{Error, ErrorKind, Secret};

/// How the app signs in to Graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GraphAuthMode {
    /// The app's client secret.
    Secret,
    /// The app's certificate and private key.
    Certificate,
    /// The Azure resource's managed identity.
    ManagedIdentity,
    /// Workload identity federation: a federated token file.
    WorkloadIdentity,
}

impl GraphAuthMode {
    /// `secret`, `certificate`, `managed-identity` or `workload-identity`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Certificate => "certificate",
            Self::ManagedIdentity => "managed-identity",
            Self::WorkloadIdentity => "workload-identity",
        }
    }
}

impl fmt::Display for GraphAuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One setting of a [`GraphCredentialChoice`], as its errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GraphSetting {
    /// The tenant ([`GraphCredentialChoice::tenant`]).
    Tenant,
    /// The app's client id ([`GraphCredentialChoice::client_id`]).
    ClientId,
    /// The variable that holds the client secret ([`GraphCredentialChoice::client_secret_env`]).
    ClientSecretEnv,
    /// The certificate file or its key file ([`GraphCredentialChoice::client_certificate`]).
    ClientCertificate,
    /// A user-assigned identity's client id
    /// ([`GraphCredentialChoice::managed_identity_client_id`]).
    ManagedIdentityClientId,
    /// The instance metadata service's URL ([`GraphCredentialChoice::imds_url`]).
    ImdsUrl,
    /// The Azure Arc key folder ([`GraphCredentialChoice::arc_key_dir`]).
    ArcKeyDir,
    /// The federated token file ([`GraphCredentialChoice::federated_token_file`]).
    FederatedTokenFile,
}

impl GraphSetting {
    /// The setting as a short name (`tenant`, `client id`, `client secret variable`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::ClientId => "client id",
            Self::ClientSecretEnv => "client secret variable",
            Self::ClientCertificate => "client certificate and key",
            Self::ManagedIdentityClientId => "managed identity client id",
            Self::ImdsUrl => "instance metadata URL",
            Self::ArcKeyDir => "Azure Arc key folder",
            Self::FederatedTokenFile => "federated token file",
        }
    }
}

impl fmt::Display for GraphSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why no credential could be chosen. Each names the settings involved (and the variables
/// that could have stood in for them), so that an application can say which of its own
/// options to give; `Display` says it in the library's terms. Converts into an
/// [`Error`] of kind [`Config`](ErrorKind::Config).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphCredentialError {
    /// No mode was given and nothing given or set chooses one.
    #[error(
        "no Graph credential: give a client secret's variable, a certificate with its key, \
         a managed identity, or a federated token file (or AZURE_FEDERATED_TOKEN_FILE)"
    )]
    NoCredential,
    /// A setting that belongs to another mode than the chosen one.
    #[error("the {setting} does not go with the {mode} credential")]
    DoesNotGoWith {
        /// The stray setting.
        setting: GraphSetting,
        /// The chosen mode.
        mode: GraphAuthMode,
    },
    /// A setting the mode needs is missing (workload identity: nor is its variable set).
    #[error("the {mode} credential needs the {setting}{}", env.map(|v| format!(" (or {v})")).unwrap_or_default())]
    Missing {
        /// The missing setting.
        setting: GraphSetting,
        /// The chosen mode.
        mode: GraphAuthMode,
        /// The environment variable that could have given it.
        env: Option<&'static str>,
    },
    /// A certificate file without its key file.
    #[error("the client certificate needs its private key file")]
    CertificateWithoutKey,
    /// A key file without its certificate.
    #[error("the client key needs its certificate file")]
    KeyWithoutCertificate,
    /// Both a client secret and a certificate.
    #[error("give either a client secret or a certificate, not both")]
    SecretAndCertificate,
    /// A managed identity with an app client id (a user-assigned identity is chosen by
    /// [`GraphCredentialChoice::managed_identity_client_id`]).
    #[error(
        "a managed identity takes no app client id: choose a user-assigned identity by its \
         managed identity client id"
    )]
    ClientIdWithManagedIdentity,
    /// The client secret's variable could not be read.
    #[error("the client secret: {0}")]
    Secret(Error),
    /// The certificate or its key could not be read.
    #[error("the client certificate: {0}")]
    Certificate(Error),
    /// The environment names no managed identity endpoint this crate supports.
    #[error("the managed identity: {0}")]
    ManagedIdentity(Error),
}

impl From<GraphCredentialError> for Error {
    fn from(e: GraphCredentialError) -> Self {
        Error::new(ErrorKind::Config, e.to_string())
    }
}

/// The settings that choose a Graph credential, given explicitly; the rest comes from the
/// environment when [resolved](Self::resolve).
///
/// The order, first match wins:
///
/// 1. The mode, when it is given ([`GraphCredentialChoice::mode`]).
/// 2. The explicit settings: a client secret's variable is a [secret](GraphAuthMode::Secret),
///    a certificate or key file a [certificate](GraphAuthMode::Certificate), a federated
///    token file [workload identity](GraphAuthMode::WorkloadIdentity), a user-assigned
///    identity's client id or an instance metadata URL a
///    [managed identity](GraphAuthMode::ManagedIdentity).
/// 3. The environment: `AZURE_FEDERATED_TOKEN_FILE` is workload identity,
///    `IDENTITY_ENDPOINT` a managed identity.
/// 4. Nothing: [`GraphCredentialError::NoCredential`].
///
/// Settings of another mode are refused ([`GraphCredentialError::DoesNotGoWith`]), never
/// ignored. Workload identity takes the tenant, the client id, the token file and the
/// authority host from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE`
/// and `AZURE_AUTHORITY_HOST` when they are not given; a managed identity without an
/// instance metadata URL is found as [`ManagedIdentity::from_env`] finds it. Variables that
/// are set but empty (or only blanks) count as unset.
///
/// The environment is read through a lookup function ([`GraphCredentialChoice::resolve_with`]),
/// so tests and embedders can pass their own; [`resolve`](GraphCredentialChoice::resolve)
/// reads the process's.
///
/// ```no_run
/// use userphoto::sink::{GraphAuthMode, GraphCredentialChoice};
/// // In a pod with the Azure workload identity webhook: everything from its variables.
/// let chosen = GraphCredentialChoice::new().resolve()?;
/// assert_eq!(chosen.mode(), GraphAuthMode::WorkloadIdentity);
/// let sink = chosen.into_builder().build()?;
/// # Ok::<(), userphoto::Error>(())
/// ```
///
/// With an injected environment (nothing read from the process):
///
/// ```
/// use std::collections::HashMap;
/// use userphoto::sink::{GraphAuthMode, GraphCredentialChoice};
/// let env = HashMap::from([("IDENTITY_ENDPOINT", "http://127.0.0.1:42356/msi/token"),
///                          ("IDENTITY_HEADER", "abc")]);
/// let chosen = GraphCredentialChoice::new()
///     .resolve_with(|k| env.get(k).map(|v| v.to_string()))?;
/// assert_eq!(chosen.mode(), GraphAuthMode::ManagedIdentity);
/// # Ok::<(), userphoto::sink::GraphCredentialError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct GraphCredentialChoice {
    mode: Option<GraphAuthMode>,
    tenant: Option<String>,
    client_id: Option<String>,
    client_secret_env: Option<String>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    managed_identity_client_id: Option<String>,
    imds_url: Option<String>,
    arc_key_dir: Option<PathBuf>,
    federated_token_file: Option<PathBuf>,
}

/// The credential chosen, with the tenant and app it signs in as (none for a managed
/// identity; a workload identity carries its own).
#[derive(Debug, Clone)]
pub struct ResolvedGraphCredential {
    mode: GraphAuthMode,
    tenant: String,
    client_id: String,
    credential: GraphCredential,
}

impl ResolvedGraphCredential {
    /// The mode chosen.
    pub fn mode(&self) -> GraphAuthMode {
        self.mode
    }

    /// The credential.
    pub fn credential(&self) -> &GraphCredential {
        &self.credential
    }

    /// The tenant of a secret or certificate (empty for the other modes, whose credential
    /// names it or needs none).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The app's client id of a secret or certificate (empty for the other modes).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// A sink builder with this credential ([`GraphSink::builder`] or
    /// [`GraphSink::builder_for`]).
    pub fn into_builder(self) -> GraphSinkBuilder {
        match self.mode {
            GraphAuthMode::Secret | GraphAuthMode::Certificate => {
                GraphSink::builder(self.tenant, self.client_id, self.credential)
            }
            _ => GraphSink::builder_for(self.credential),
        }
    }
}

/// Where variables are read: the process or a lookup function.
enum Env<'a> {
    Process,
    Lookup(&'a dyn Fn(&str) -> Option<String>),
}

impl Env<'_> {
    /// A variable's value; unset, empty and blank are all `None`.
    fn var(&self, k: &str) -> Option<String> {
        let v = match self {
            Env::Process => std::env::var(k).ok(),
            Env::Lookup(f) => f(k),
        };
        v.filter(|v| !v.trim().is_empty())
    }

    /// The secret in variable `var`, as [`Secret::from_env`] reads it.
    fn secret(&self, var: &str) -> crate::Result<Secret> {
        match self {
            Env::Process => Secret::from_env(var),
            Env::Lookup(f) => match f(var) {
                Some(v) if !v.is_empty() => Ok(Secret::new(v)),
                Some(_) => Err(Error::new(
                    ErrorKind::Config,
                    format!("environment variable {var} is empty"),
                )),
                None => Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "environment variable {var}: {}",
                        std::env::VarError::NotPresent
                    ),
                )),
            },
        }
    }
}

impl GraphCredentialChoice {
    /// Nothing given: everything from the environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The mode, instead of inferring it from the settings and the environment.
    pub fn mode(mut self, mode: GraphAuthMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// The tenant (id or domain).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// The app registration's client id.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// The environment variable that holds the client secret (the variable's name).
    pub fn client_secret_env(mut self, var: impl Into<String>) -> Self {
        self.client_secret_env = Some(var.into());
        self
    }

    /// The certificate file (PEM), the key file (PEM), or both; each is only recorded when
    /// given, so that one without the other is reported.
    pub fn client_certificate(mut self, cert: Option<PathBuf>, key: Option<PathBuf>) -> Self {
        self.client_cert = cert.or(self.client_cert);
        self.client_key = key.or(self.client_key);
        self
    }

    /// A user-assigned managed identity, by its client id.
    pub fn managed_identity_client_id(mut self, id: impl Into<String>) -> Self {
        self.managed_identity_client_id = Some(id.into());
        self
    }

    /// The instance metadata service's host root ([`ManagedIdentity::imds_url`]).
    pub fn imds_url(mut self, url: impl Into<String>) -> Self {
        self.imds_url = Some(url.into());
        self
    }

    /// The Azure Arc agent's key folder ([`ManagedIdentity::arc_key_dir`]).
    pub fn arc_key_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.arc_key_dir = Some(dir.into());
        self
    }

    /// The federated token file (workload identity).
    pub fn federated_token_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.federated_token_file = Some(file.into());
        self
    }

    /// The credential, with the process's environment.
    pub fn resolve(&self) -> Result<ResolvedGraphCredential, GraphCredentialError> {
        self.resolve_in(&Env::Process)
    }

    /// The credential, with `lookup` as the environment (`None`: unset).
    pub fn resolve_with(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedGraphCredential, GraphCredentialError> {
        self.resolve_in(&Env::Lookup(&lookup))
    }

    /// The mode: given, or inferred from the settings, then the environment.
    fn choose_mode(&self, env: &Env<'_>) -> Result<GraphAuthMode, GraphCredentialError> {
        Ok(match self.mode {
            Some(m) => m,
            None if self.client_secret_env.is_some() => GraphAuthMode::Secret,
            None if self.client_cert.is_some() || self.client_key.is_some() => {
                GraphAuthMode::Certificate
            }
            None if self.federated_token_file.is_some()
                || env.var("AZURE_FEDERATED_TOKEN_FILE").is_some() =>
            {
                GraphAuthMode::WorkloadIdentity
            }
            None if self.managed_identity_client_id.is_some()
                || self.imds_url.is_some()
                || env.var("IDENTITY_ENDPOINT").is_some() =>
            {
                GraphAuthMode::ManagedIdentity
            }
            None => return Err(GraphCredentialError::NoCredential),
        })
    }

    fn resolve_in(&self, env: &Env<'_>) -> Result<ResolvedGraphCredential, GraphCredentialError> {
        use GraphAuthMode as M;
        let mode = self.choose_mode(env)?;
        let stray = [
            (
                self.client_secret_env.is_some() && mode != M::Secret,
                GraphSetting::ClientSecretEnv,
            ),
            (
                (self.client_cert.is_some() || self.client_key.is_some()) && mode != M::Certificate,
                GraphSetting::ClientCertificate,
            ),
            (
                self.managed_identity_client_id.is_some() && mode != M::ManagedIdentity,
                GraphSetting::ManagedIdentityClientId,
            ),
            (
                self.imds_url.is_some() && mode != M::ManagedIdentity,
                GraphSetting::ImdsUrl,
            ),
            (
                self.arc_key_dir.is_some() && mode != M::ManagedIdentity,
                GraphSetting::ArcKeyDir,
            ),
            (
                self.federated_token_file.is_some() && mode != M::WorkloadIdentity,
                GraphSetting::FederatedTokenFile,
            ),
        ];
        if let Some((_, setting)) = stray.into_iter().find(|(bad, _)| *bad) {
            return Err(GraphCredentialError::DoesNotGoWith { setting, mode });
        }
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let missing = |setting, env| GraphCredentialError::Missing { setting, mode, env };
        let resolved = |tenant: String, client_id: String, credential: GraphCredential| {
            ResolvedGraphCredential {
                mode,
                tenant,
                client_id,
                credential,
            }
        };
        match mode {
            M::Secret | M::Certificate => {
                let tenant =
                    given(&self.tenant).ok_or_else(|| missing(GraphSetting::Tenant, None))?;
                let client =
                    given(&self.client_id).ok_or_else(|| missing(GraphSetting::ClientId, None))?;
                let credential: GraphCredential =
                    match (&self.client_secret_env, &self.client_cert, &self.client_key) {
                        (Some(var), None, None) => env
                            .secret(var)
                            .map_err(GraphCredentialError::Secret)?
                            .into(),
                        (None, Some(cert), Some(key)) => GraphCertificate::from_files(cert, key)
                            .map_err(GraphCredentialError::Certificate)?
                            .into(),
                        (None, Some(_), None) => {
                            return Err(GraphCredentialError::CertificateWithoutKey)
                        }
                        (None, None, Some(_)) => {
                            return Err(GraphCredentialError::KeyWithoutCertificate)
                        }
                        (None, None, None) if mode == M::Secret => {
                            return Err(missing(GraphSetting::ClientSecretEnv, None))
                        }
                        (None, None, None) => {
                            return Err(missing(GraphSetting::ClientCertificate, None))
                        }
                        _ => return Err(GraphCredentialError::SecretAndCertificate),
                    };
                Ok(resolved(tenant, client, credential))
            }
            M::ManagedIdentity => {
                if self.client_id.is_some() {
                    return Err(GraphCredentialError::ClientIdWithManagedIdentity);
                }
                let mut mi = match &self.imds_url {
                    Some(u) => ManagedIdentity::imds().imds_url(u),
                    None => ManagedIdentity::from_lookup(|k| env.var(k))
                        .map_err(GraphCredentialError::ManagedIdentity)?,
                };
                if let Some(d) = &self.arc_key_dir {
                    mi = mi.arc_key_dir(d);
                }
                if let Some(id) = &self.managed_identity_client_id {
                    mi = mi.client_id(id);
                }
                Ok(resolved(String::new(), String::new(), mi.into()))
            }
            M::WorkloadIdentity => {
                let tenant = self.tenant.clone().or_else(|| env.var("AZURE_TENANT_ID"));
                let tenant = given(&tenant)
                    .ok_or_else(|| missing(GraphSetting::Tenant, Some("AZURE_TENANT_ID")))?;
                let client = self
                    .client_id
                    .clone()
                    .or_else(|| env.var("AZURE_CLIENT_ID"));
                let client = given(&client)
                    .ok_or_else(|| missing(GraphSetting::ClientId, Some("AZURE_CLIENT_ID")))?;
                let file = self
                    .federated_token_file
                    .clone()
                    .or_else(|| env.var("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from))
                    .ok_or_else(|| {
                        missing(
                            GraphSetting::FederatedTokenFile,
                            Some("AZURE_FEDERATED_TOKEN_FILE"),
                        )
                    })?;
                let mut w = WorkloadIdentity::new(tenant, client, file);
                if let Some(h) = env.var("AZURE_AUTHORITY_HOST") {
                    w = w.authority_host(h);
                }
                Ok(resolved(String::new(), String::new(), w.into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The order and the errors, on injected environments (the process's is never read or
    //! changed).

    use std::collections::HashMap;

    use super::*;
    use crate::sink::ManagedIdentityKind;

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn resolve(
        c: &GraphCredentialChoice,
        vars: &[(&str, &str)],
    ) -> Result<ResolvedGraphCredential, GraphCredentialError> {
        let e = env(vars);
        c.resolve_with(|k| e.get(k).cloned())
    }

    fn app() -> GraphCredentialChoice {
        GraphCredentialChoice::new()
            .tenant("contoso.onmicrosoft.com")
            .client_id("11111111-2222-3333-4444-555555555555")
    }

    #[test]
    fn nothing_given_or_set_is_no_credential() {
        let e = resolve(&GraphCredentialChoice::new(), &[]).unwrap_err();
        assert!(matches!(e, GraphCredentialError::NoCredential), "{e:?}");
        // Blank variables count as unset.
        let e = resolve(
            &GraphCredentialChoice::new(),
            &[
                ("AZURE_FEDERATED_TOKEN_FILE", " "),
                ("IDENTITY_ENDPOINT", ""),
            ],
        )
        .unwrap_err();
        assert!(matches!(e, GraphCredentialError::NoCredential), "{e:?}");
        let lib: Error = e.into();
        assert_eq!(lib.kind(), ErrorKind::Config);
    }

    #[test]
    fn a_secret_comes_from_the_named_variable() {
        let c = app().client_secret_env("MY_SECRET");
        let r = resolve(&c, &[("MY_SECRET", "s3cret")]).unwrap();
        assert_eq!(r.mode(), GraphAuthMode::Secret);
        assert_eq!(r.tenant(), "contoso.onmicrosoft.com");
        assert!(matches!(r.credential(), GraphCredential::Secret(s) if s.expose() == "s3cret"));
        // Explicit settings win over the environment's workload identity.
        let r = resolve(
            &c,
            &[("MY_SECRET", "x"), ("AZURE_FEDERATED_TOKEN_FILE", "/t")],
        )
        .unwrap();
        assert_eq!(r.mode(), GraphAuthMode::Secret);
        match resolve(&c, &[]).unwrap_err() {
            GraphCredentialError::Secret(e) => {
                assert_eq!(e.kind(), ErrorKind::Config);
                assert!(e.message().contains("MY_SECRET"), "{e}");
            }
            e => panic!("{e:?}"),
        }
        match resolve(&c, &[("MY_SECRET", "")]).unwrap_err() {
            GraphCredentialError::Secret(e) => assert!(e.message().contains("empty"), "{e}"),
            e => panic!("{e:?}"),
        }
        // The tenant and the app are checked before the secret is read.
        let e = resolve(&GraphCredentialChoice::new().client_secret_env("NONE"), &[]).unwrap_err();
        assert!(
            matches!(
                e,
                GraphCredentialError::Missing {
                    setting: GraphSetting::Tenant,
                    mode: GraphAuthMode::Secret,
                    env: None
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn certificate_halves_and_mixtures_are_named() {
        let cert = Some(PathBuf::from("c.pem"));
        let key = Some(PathBuf::from("k.pem"));
        let e = resolve(&app().client_certificate(cert.clone(), None), &[]).unwrap_err();
        assert!(
            matches!(e, GraphCredentialError::CertificateWithoutKey),
            "{e:?}"
        );
        let e = resolve(&app().client_certificate(None, key.clone()), &[]).unwrap_err();
        assert!(
            matches!(e, GraphCredentialError::KeyWithoutCertificate),
            "{e:?}"
        );
        let e = resolve(
            &app().client_certificate(Some("/nonexistent/c".into()), Some("/nonexistent/k".into())),
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, GraphCredentialError::Certificate(_)), "{e:?}");
        let e = resolve(&app().mode(GraphAuthMode::Certificate), &[]).unwrap_err();
        assert!(
            matches!(
                e,
                GraphCredentialError::Missing {
                    setting: GraphSetting::ClientCertificate,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = resolve(&app().mode(GraphAuthMode::Secret), &[]).unwrap_err();
        assert!(
            matches!(
                e,
                GraphCredentialError::Missing {
                    setting: GraphSetting::ClientSecretEnv,
                    ..
                }
            ),
            "{e:?}"
        );
        let both = app()
            .mode(GraphAuthMode::Secret)
            .client_secret_env("S")
            .client_certificate(cert, key);
        // The certificate does not go with a secret: refused before anything is read.
        let e = resolve(&both, &[]).unwrap_err();
        assert!(
            matches!(
                e,
                GraphCredentialError::DoesNotGoWith {
                    setting: GraphSetting::ClientCertificate,
                    mode: GraphAuthMode::Secret
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn stray_settings_of_another_mode_are_refused_in_order() {
        let c = app()
            .mode(GraphAuthMode::Certificate)
            .managed_identity_client_id("x")
            .federated_token_file("/t");
        let e = resolve(&c, &[]).unwrap_err();
        assert!(
            matches!(
                e,
                GraphCredentialError::DoesNotGoWith {
                    setting: GraphSetting::ManagedIdentityClientId,
                    mode: GraphAuthMode::Certificate
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "the managed identity client id does not go with the certificate credential"
        );
        assert!(!e.to_string().contains("--"), "no command line flags: {e}");
    }

    #[test]
    fn workload_identity_from_the_environment_and_the_settings() {
        let vars = [
            ("AZURE_TENANT_ID", "t-env"),
            ("AZURE_CLIENT_ID", "c-env"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ("AZURE_AUTHORITY_HOST", "https://login.example/"),
            // Workload identity comes before a managed identity's variable.
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/x"),
        ];
        let r = resolve(&GraphCredentialChoice::new(), &vars).unwrap();
        assert_eq!(r.mode(), GraphAuthMode::WorkloadIdentity);
        let GraphCredential::WorkloadIdentity(w) = r.credential() else {
            panic!("{r:?}")
        };
        assert_eq!(
            (w.tenant(), w.client_id(), w.token_file()),
            ("t-env", "c-env", std::path::Path::new("/var/run/token"))
        );
        assert_eq!(w.authority(), Some("https://login.example/"));
        // Explicit values win over the variables.
        let r = resolve(
            &GraphCredentialChoice::new()
                .tenant("t")
                .client_id("c")
                .federated_token_file("/f"),
            &vars,
        )
        .unwrap();
        let GraphCredential::WorkloadIdentity(w) = r.credential() else {
            panic!("{r:?}")
        };
        assert_eq!((w.tenant(), w.client_id()), ("t", "c"));
        assert_eq!(w.token_file(), std::path::Path::new("/f"));
        let e = resolve(
            &GraphCredentialChoice::new().federated_token_file("/f"),
            &[("AZURE_TENANT_ID", "t")],
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                GraphCredentialError::Missing {
                    setting: GraphSetting::ClientId,
                    mode: GraphAuthMode::WorkloadIdentity,
                    env: Some("AZURE_CLIENT_ID")
                }
            ),
            "{e:?}"
        );
        let e = resolve(
            &GraphCredentialChoice::new().mode(GraphAuthMode::WorkloadIdentity),
            &[("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")],
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                GraphCredentialError::Missing {
                    setting: GraphSetting::FederatedTokenFile,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn managed_identity_from_the_environment_and_the_settings() {
        let r = resolve(
            &GraphCredentialChoice::new(),
            &[
                ("IDENTITY_ENDPOINT", "http://127.0.0.1:42356/msi/token"),
                ("IDENTITY_HEADER", "h"),
            ],
        )
        .unwrap();
        let GraphCredential::ManagedIdentity(mi) = r.credential() else {
            panic!("{r:?}")
        };
        assert_eq!(mi.kind(), ManagedIdentityKind::AppService);
        let r = resolve(
            &GraphCredentialChoice::new(),
            &[
                (
                    "IDENTITY_ENDPOINT",
                    "http://localhost:40342/metadata/identity/oauth2/token",
                ),
                ("IMDS_ENDPOINT", "http://localhost:40342"),
            ],
        )
        .unwrap();
        let GraphCredential::ManagedIdentity(mi) = r.credential() else {
            panic!("{r:?}")
        };
        assert_eq!(mi.kind(), ManagedIdentityKind::AzureArc);
        let e = resolve(
            &GraphCredentialChoice::new(),
            &[("IDENTITY_ENDPOINT", "http://127.0.0.1:1/x")],
        )
        .unwrap_err();
        assert!(
            matches!(e, GraphCredentialError::ManagedIdentity(_)),
            "{e:?}"
        );
        // A user-assigned identity on the instance metadata service, at the pod identity host.
        let r = resolve(
            &GraphCredentialChoice::new().managed_identity_client_id("mi-id"),
            &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")],
        )
        .unwrap();
        let GraphCredential::ManagedIdentity(mi) = r.credential() else {
            panic!("{r:?}")
        };
        assert_eq!(mi.kind(), ManagedIdentityKind::Imds);
        assert_eq!(mi.user_assigned_id(), Some("mi-id"));
        assert!(
            mi.endpoint_url().starts_with("http://127.0.0.1:9/"),
            "{mi:?}"
        );
        // An explicit URL wins over the environment's endpoint.
        let r = resolve(
            &GraphCredentialChoice::new().imds_url("http://127.0.0.1:8"),
            &[("IDENTITY_ENDPOINT", "http://127.0.0.1:1/x")],
        )
        .unwrap();
        let GraphCredential::ManagedIdentity(mi) = r.credential() else {
            panic!("{r:?}")
        };
        assert_eq!(mi.kind(), ManagedIdentityKind::Imds);
        let e = resolve(
            &GraphCredentialChoice::new()
                .mode(GraphAuthMode::ManagedIdentity)
                .client_id("app"),
            &[],
        )
        .unwrap_err();
        assert!(
            matches!(e, GraphCredentialError::ClientIdWithManagedIdentity),
            "{e:?}"
        );
    }
}
