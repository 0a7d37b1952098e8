//! The Graph sink that the `--sink graph` options (`crate::args::GraphArgs`) open.
//!
//! Every flag is optional to clap: they are only needed with `--sink graph`, and
//! [`open_graph_sink`] checks them then, with messages that name the flag.

use std::sync::Arc;

use userphoto::sink::{
    DirectorySink, GraphAuthMode, GraphCloud, GraphCredentialChoice, GraphCredentialError,
    GraphSetting, GraphSink, GraphSinkBuilder,
};
use userphoto::source::GraphSource;
use userphoto::MatchAttribute;

use crate::args::{GraphArgs, GraphAuth};
use crate::hint::explain;

impl From<GraphAuth> for GraphAuthMode {
    fn from(a: GraphAuth) -> Self {
        match a {
            GraphAuth::Secret => Self::Secret,
            GraphAuth::Certificate => Self::Certificate,
            GraphAuth::ManagedIdentity => Self::ManagedIdentity,
            GraphAuth::WorkloadIdentity => Self::WorkloadIdentity,
        }
    }
}

/// The credential settings of the flags; the library adds the environment
/// ([`GraphCredentialChoice`]: the flags first, then `AZURE_*` and `IDENTITY_*`).
fn credential_choice(args: &GraphArgs) -> GraphCredentialChoice {
    let mut c = GraphCredentialChoice::new()
        .client_certificate(args.client_cert.clone(), args.client_key.clone());
    if let Some(m) = args.graph_auth {
        c = c.mode(m.into());
    }
    if let Some(t) = &args.tenant {
        c = c.tenant(t);
    }
    if let Some(id) = &args.client_id {
        c = c.client_id(id);
    }
    if let Some(v) = &args.client_secret_env {
        c = c.client_secret_env(v);
    }
    if let Some(id) = &args.managed_identity_client_id {
        c = c.managed_identity_client_id(id);
    }
    if let Some(u) = &args.imds_url {
        c = c.imds_url(u);
    }
    if let Some(d) = &args.arc_key_dir {
        c = c.arc_key_dir(d);
    }
    if let Some(f) = &args.federated_token_file {
        c = c.federated_token_file(f);
    }
    c
}

/// The flag that gives a credential setting.
fn flag(s: GraphSetting) -> &'static str {
    match s {
        GraphSetting::Tenant => "--tenant",
        GraphSetting::ClientId => "--client-id",
        GraphSetting::ClientSecretEnv => "--client-secret-env",
        GraphSetting::ClientCertificate => "--client-cert/--client-key",
        GraphSetting::ManagedIdentityClientId => "--managed-identity-client-id",
        GraphSetting::ImdsUrl => "--imds-url",
        GraphSetting::ArcKeyDir => "--arc-key-dir",
        GraphSetting::FederatedTokenFile => "--federated-token-file",
        _ => "the Graph credential options",
    }
}

/// Why no credential could be chosen, in the flags' terms.
fn credential_message(e: &GraphCredentialError) -> String {
    use GraphAuthMode as M;
    use GraphCredentialError as E;
    use GraphSetting as S;
    match e {
        E::NoCredential => {
            "--sink graph needs a credential: --client-secret-env VAR, --client-cert FILE \
             with --client-key FILE, --graph-auth managed-identity, or --graph-auth \
             workload-identity (with --federated-token-file FILE or \
             AZURE_FEDERATED_TOKEN_FILE)"
                .into()
        }
        E::DoesNotGoWith { setting, mode } => {
            format!("{} does not go with --graph-auth {mode}", flag(*setting))
        }
        E::Missing { setting, mode, .. } => match (setting, mode) {
            (S::Tenant, M::WorkloadIdentity) => {
                "--sink graph needs --tenant TENANT or AZURE_TENANT_ID".into()
            }
            (S::ClientId, M::WorkloadIdentity) => {
                "--sink graph needs --client-id ID or AZURE_CLIENT_ID".into()
            }
            (S::Tenant, _) => "--sink graph needs --tenant TENANT (the tenant id or domain)".into(),
            (S::ClientId, _) => "--sink graph needs --client-id ID (the app's client id)".into(),
            (S::ClientSecretEnv, _) => "--graph-auth secret needs --client-secret-env VAR".into(),
            (S::ClientCertificate, _) => {
                "--graph-auth certificate needs --client-cert FILE and --client-key FILE".into()
            }
            (S::FederatedTokenFile, _) => "--graph-auth workload-identity needs \
                 --federated-token-file FILE or AZURE_FEDERATED_TOKEN_FILE"
                .into(),
            (other, mode) => format!("--graph-auth {mode} needs {}", flag(*other)),
        },
        E::CertificateWithoutKey => "--client-cert needs --client-key FILE".into(),
        E::KeyWithoutCertificate => "--client-key needs --client-cert FILE".into(),
        E::SecretAndCertificate => {
            "give either --client-secret-env or --client-cert/--client-key, not both".into()
        }
        E::ClientIdWithManagedIdentity => "--graph-auth managed-identity takes no --client-id: \
             choose a user-assigned identity with --managed-identity-client-id ID"
            .into(),
        E::Secret(e) => format!("--client-secret-env: {}", explain(e)),
        E::Certificate(e) => format!("--client-cert/--client-key: {}", explain(e)),
        E::ManagedIdentity(e) => format!("--graph-auth managed-identity: {}", explain(e)),
        other => format!("--sink graph: {other}"),
    }
}

/// Every option a secret or certificate sign-in still needs, in one message, when more than
/// one is missing (a first run without any of them should not learn them one run at a
/// time). `None` when at most one is missing, or when the sign-in is another mode (a
/// managed identity or a federated token needs no tenant or app id from the flags), which
/// [`credential_message`] then explains. `env_set` tells whether an environment variable
/// is set (the library chooses workload or managed identity from them).
fn all_missing(args: &GraphArgs, env_set: impl Fn(&str) -> bool) -> Option<String> {
    let other_mode = matches!(
        args.graph_auth,
        Some(GraphAuth::ManagedIdentity | GraphAuth::WorkloadIdentity)
    ) || args.managed_identity_client_id.is_some()
        || args.federated_token_file.is_some()
        || args.imds_url.is_some()
        || args.arc_key_dir.is_some()
        || [
            "AZURE_FEDERATED_TOKEN_FILE",
            "IDENTITY_ENDPOINT",
            "MSI_ENDPOINT",
        ]
        .iter()
        .any(|v| env_set(v));
    if other_mode {
        return None;
    }
    let mut missing: Vec<(&str, &str)> = Vec::new();
    if args.tenant.is_none() {
        missing.push(("--tenant TENANT (the tenant id or domain)", "tenant"));
    }
    if args.client_id.is_none() {
        missing.push(("--client-id ID (the app's client id)", "client-id"));
    }
    let secret = args.client_secret_env.is_some();
    let cert = args.client_cert.is_some() || args.client_key.is_some();
    match args.graph_auth {
        Some(GraphAuth::Secret) if !secret => missing.push((
            "--client-secret-env VAR (never the secret itself)",
            "client-secret-env",
        )),
        Some(GraphAuth::Certificate) if args.client_cert.is_none() || args.client_key.is_none() => {
            missing.push((
                "--client-cert FILE and --client-key FILE",
                "client-cert, client-key",
            ))
        }
        None if !secret && !cert => missing.push((
            "a credential: --client-secret-env VAR, or --client-cert FILE with --client-key \
             FILE (or --graph-auth managed-identity or workload-identity)",
            "client-secret-env, or client-cert and client-key",
        )),
        _ => {}
    }
    if missing.len() < 2 {
        return None;
    }
    let flags: Vec<&str> = missing.iter().map(|(f, _)| *f).collect();
    let keys: Vec<&str> = missing.iter().map(|(_, k)| *k).collect();
    Some(format!(
        "--sink graph needs {} (config file: {})",
        flags.join(", "),
        keys.join("; ")
    ))
}

/// `--graph-…-timeout SECS` as a duration: positive and finite.
fn seconds(v: Option<f64>, flag: &str) -> Result<Option<std::time::Duration>, String> {
    match v {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => std::time::Duration::try_from_secs_f64(s)
            .map(Some)
            .map_err(|e| format!("{flag}: {e}")),
        Some(s) => Err(format!(
            "{flag} must be a positive number of seconds (got {s})"
        )),
    }
}

/// The Graph sink for `--sink graph`: `match_attr` is the `--match` value (`upn`, `id`,
/// `employeeId`, `mail`, or another Graph user property; `sAMAccountName` is looked up as
/// `onPremisesSamAccountName`, which only synced users have), `concurrency` the `--concurrency`
/// value (requests in flight; Graph allows 4 per app for photos, so more only earns 429s).
pub(crate) fn open_graph_sink(
    args: &GraphArgs,
    match_attr: &str,
    concurrency: usize,
) -> Result<Arc<dyn DirectorySink>, String> {
    Ok(Arc::new(graph_sink(args, match_attr, concurrency)?))
}

/// [`open_graph_sink`], as the sink's own type (for `check`).
pub(crate) fn graph_sink(
    args: &GraphArgs,
    match_attr: &str,
    concurrency: usize,
) -> Result<GraphSink, String> {
    let m: MatchAttribute = match_attr
        .parse()
        .map_err(|e: userphoto::Error| format!("--match: {e}"))?;
    if concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let sink = connection(args)?
        .match_attribute(m)
        .max_in_flight(concurrency)
        .confirm_uploads(args.confirm_uploads)
        .users(args.graph_users.into())
        .build()
        .map_err(|e| format!("--sink graph: {}", explain(&e)))?;
    Ok(sink)
}

/// The Graph source for `--source graph`, with the same connection and credential flags as
/// `--sink graph`: keys from `match_attr` (`upn`, `mail`, `id`, `employeeId`), at most 4
/// requests in flight (Graph's per-app limit for photos).
pub(crate) fn graph_source(args: &GraphArgs, match_attr: &str) -> Result<GraphSource, String> {
    let m: MatchAttribute = match_attr
        .parse()
        .map_err(|e: userphoto::Error| format!("--match: {e}"))?;
    let conn = connection(args).map_err(|e| e.replace("--sink graph", "--source graph"))?;
    GraphSource::with_connection(conn)
        .match_attribute(m)
        .build()
        .map_err(|e| format!("--source graph: {}", explain(&e)))
}

/// The connection and identity of the Graph flags: the credential, cloud, URLs, CA file,
/// timeouts (shared by `--sink graph` and `--source graph`).
fn connection(args: &GraphArgs) -> Result<GraphSinkBuilder, String> {
    if let Some(m) = all_missing(args, |v| std::env::var_os(v).is_some()) {
        return Err(m);
    }
    let mut b = credential_choice(args)
        .resolve()
        .map_err(|e| credential_message(&e))?
        .into_builder();
    if let Some(c) = &args.cloud {
        let cloud: GraphCloud = c.parse().map_err(|e| format!("--cloud: {e}"))?;
        b = b.cloud(cloud);
    }
    if let Some(u) = &args.graph_url {
        b = b.graph_url(u);
    }
    if let Some(u) = &args.login_url {
        b = b.login_url(u);
    }
    if let Some(ca) = &args.ca_cert {
        b = b.ca_file(ca);
    }
    if let Some(d) = seconds(args.connect_timeout, "--graph-connect-timeout")? {
        b = b.connect_timeout(d);
    }
    if let Some(d) = seconds(args.request_timeout, "--graph-request-timeout")? {
        b = b.request_timeout(d);
    }
    Ok(b.allow_insecure_http(args.insecure_http))
}

#[cfg(test)]
mod tests {
    //! The options against the sink they open: the messages that name a missing or wrong
    //! flag, the secret kept out of `Debug`, and a sink that talks to the Graph fake.

    use super::*;
    use userphoto::normalize::testimage::photo_jpeg;
    use userphoto::UserKey;
    use userphoto_testkit::graph_server::*;

    fn upn_of(i: usize) -> String {
        format!("user{i}@contoso.onmicrosoft.com")
    }

    async fn server(n: usize) -> GraphServer {
        let users = (0..n).map(|i| {
            UserSeed::new(&format!("00000000-0000-4000-8000-{i:012}"), &upn_of(i))
                .employee_id(&format!("E{i}"))
        });
        GraphServer::start(GraphServerConfig::default().with_users(users)).await
    }

    fn jpeg(seed: u32) -> bytes::Bytes {
        bytes::Bytes::from(photo_jpeg(64, 64, seed))
    }

    fn key(s: &str) -> UserKey {
        UserKey::new(s)
    }

    #[test]
    fn every_missing_graph_option_is_named_at_once() {
        let none = |_: &str| false;
        let m = all_missing(&GraphArgs::default(), none).expect("three are missing");
        for part in [
            "--tenant",
            "--client-id",
            "--client-secret-env VAR",
            "--client-cert FILE",
        ] {
            assert!(m.contains(part), "{part} in {m}");
        }
        assert!(
            m.contains("config file: tenant; client-id; client-secret-env"),
            "{m}"
        );
        assert_eq!(m.matches("--sink graph needs").count(), 1, "{m}");
        // Only what is missing; one alone is left to the specific message.
        let one = GraphArgs {
            tenant: Some("contoso.onmicrosoft.com".into()),
            ..GraphArgs::default()
        };
        let m = all_missing(&one, none).unwrap();
        assert!(!m.contains("--tenant") && m.contains("--client-id"), "{m}");
        let cert = GraphArgs {
            graph_auth: Some(GraphAuth::Certificate),
            tenant: Some("t".into()),
            ..GraphArgs::default()
        };
        let m = all_missing(&cert, none).unwrap();
        assert!(
            m.contains("--client-id") && m.contains("--client-cert FILE and --client-key FILE"),
            "{m}"
        );
        assert_eq!(
            all_missing(
                &GraphArgs {
                    tenant: Some("t".into()),
                    client_id: Some("c".into()),
                    ..GraphArgs::default()
                },
                none
            ),
            None
        );
        // Managed and workload identity need neither tenant nor app id from the flags.
        let mi = GraphArgs {
            graph_auth: Some(GraphAuth::ManagedIdentity),
            ..GraphArgs::default()
        };
        assert_eq!(all_missing(&mi, none), None);
        assert_eq!(
            all_missing(&GraphArgs::default(), |v| v == "AZURE_FEDERATED_TOKEN_FILE"),
            None
        );
    }

    #[test]
    fn cli_options_open_a_sink() {
        let base = GraphArgs {
            tenant: Some("contoso.onmicrosoft.com".into()),
            client_id: Some(DEFAULT_CLIENT_ID.into()),
            ..GraphArgs::default()
        };
        let err = |a: &GraphArgs, m: &str| open_graph_sink(a, m, 4).unwrap_err();
        assert!(err(&base, "upn").contains("credential"));
        assert!(err(
            &GraphArgs {
                tenant: None,
                client_secret_env: Some("USERPHOTO_TEST_GRAPH_SECRET".into()),
                ..base.clone()
            },
            "upn"
        )
        .contains("--tenant"));
        // The mode is inferred from the flags; a flag of another mode is named.
        assert!(err(
            &GraphArgs {
                graph_auth: Some(GraphAuth::Certificate),
                managed_identity_client_id: Some("x".into()),
                ..base.clone()
            },
            "upn"
        )
        .contains("--managed-identity-client-id does not go with --graph-auth certificate"));
        let mi = open_graph_sink(
            &GraphArgs {
                imds_url: Some("http://127.0.0.1:9".into()),
                ..GraphArgs::default()
            },
            "upn",
            4,
        )
        .unwrap();
        assert!(format!("{mi:?}").contains("Imds"), "{mi:?}");
        std::env::set_var("USERPHOTO_TEST_GRAPH_SECRET", "s3cret-value");
        let with_secret = GraphArgs {
            client_secret_env: Some("USERPHOTO_TEST_GRAPH_SECRET".into()),
            ..base.clone()
        };
        let s = open_graph_sink(&with_secret, "employeeId", 4).unwrap();
        assert_eq!(s.name(), "graph");
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(format!("{s:?}").contains("confirm_uploads: false"), "{s:?}");
        let confirmed = open_graph_sink(
            &GraphArgs {
                confirm_uploads: true,
                ..with_secret.clone()
            },
            "upn",
            4,
        )
        .unwrap();
        assert!(
            format!("{confirmed:?}").contains("confirm_uploads: true"),
            "{confirmed:?}"
        );
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            graph: GraphArgs,
        }
        use clap::Parser as _;
        assert!(!Flags::try_parse_from(["x"]).unwrap().graph.confirm_uploads);
        assert!(
            Flags::try_parse_from(["x", "--graph-confirm-uploads"])
                .unwrap()
                .graph
                .confirm_uploads
        );
        assert!(err(
            &GraphArgs {
                cloud: Some("mars".into()),
                ..with_secret.clone()
            },
            "upn"
        )
        .contains("--cloud"));
        assert!(err(&with_secret, "employeeNumber").contains("employeeNumber"));
        assert!(open_graph_sink(
            &GraphArgs {
                cloud: Some("usgov-dod".into()),
                ..with_secret.clone()
            },
            "id",
            2
        )
        .is_ok());
        assert!(err(
            &GraphArgs {
                client_cert: Some("c.pem".into()),
                ..base.clone()
            },
            "upn"
        )
        .contains("--client-key"));
        let missing = GraphArgs {
            client_cert: Some("/nonexistent/c.pem".into()),
            client_key: Some("/nonexistent/k.pem".into()),
            ..base.clone()
        };
        assert!(err(&missing, "upn").contains("cannot read"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cli_sink_talks_to_the_server() {
        let srv = server(2).await;
        std::env::set_var("USERPHOTO_TEST_GRAPH_SECRET2", srv.client_secret().unwrap());
        let args = GraphArgs {
            tenant: Some(DEFAULT_TENANT_DOMAIN.into()),
            client_id: Some(srv.client_id()),
            client_secret_env: Some("USERPHOTO_TEST_GRAPH_SECRET2".into()),
            graph_url: Some(srv.base_url()),
            login_url: Some(srv.login_url()),
            ..Default::default()
        };
        let s: Arc<dyn DirectorySink> = open_graph_sink(&args, "upn", 4).unwrap();
        s.put(&key(&upn_of(1)), &jpeg(3)).await.unwrap();
        assert!(srv.user(&upn_of(1)).unwrap().photo.is_some());
    }
}
