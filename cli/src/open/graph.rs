//! The Graph sink that the `--sink graph` options (`crate::args::GraphArgs`) open.
//!
//! Every flag is optional to clap: they are only needed with `--sink graph`, and
//! [`open_graph_sink`] checks them then, with messages that name the flag.

use std::path::PathBuf;
use std::sync::Arc;

use clap::ValueEnum;
use userphoto::sink::{
    DirectorySink, GraphCertificate, GraphCloud, GraphSink, ManagedIdentity, Secret,
    WorkloadIdentity,
};
use userphoto::MatchAttribute;

use crate::args::{GraphArgs, GraphAuth};

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
    let need = |v: &Option<String>, flag: &str| -> Result<String, String> {
        match v.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Ok(s.to_owned()),
            _ => Err(format!("--sink graph needs {flag}")),
        }
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let mode = match args.graph_auth {
        Some(m) => m,
        None if args.client_secret_env.is_some() => GraphAuth::Secret,
        None if args.client_cert.is_some() || args.client_key.is_some() => GraphAuth::Certificate,
        None if args.federated_token_file.is_some()
            || env("AZURE_FEDERATED_TOKEN_FILE").is_some() =>
        {
            GraphAuth::WorkloadIdentity
        }
        None if args.managed_identity_client_id.is_some()
            || args.imds_url.is_some()
            || env("IDENTITY_ENDPOINT").is_some() =>
        {
            GraphAuth::ManagedIdentity
        }
        None => {
            return Err(
                "--sink graph needs a credential: --client-secret-env VAR, --client-cert FILE \
                 with --client-key FILE, --graph-auth managed-identity, or --graph-auth \
                 workload-identity (with --federated-token-file FILE or \
                 AZURE_FEDERATED_TOKEN_FILE)"
                    .into(),
            )
        }
    };
    let name = mode
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    // Flags of another mode are a mistake, not something to ignore silently.
    let stray: &[(bool, &str)] = &[
        (
            args.client_secret_env.is_some() && mode != GraphAuth::Secret,
            "--client-secret-env",
        ),
        (
            (args.client_cert.is_some() || args.client_key.is_some())
                && mode != GraphAuth::Certificate,
            "--client-cert/--client-key",
        ),
        (
            args.managed_identity_client_id.is_some() && mode != GraphAuth::ManagedIdentity,
            "--managed-identity-client-id",
        ),
        (
            args.imds_url.is_some() && mode != GraphAuth::ManagedIdentity,
            "--imds-url",
        ),
        (
            args.arc_key_dir.is_some() && mode != GraphAuth::ManagedIdentity,
            "--arc-key-dir",
        ),
        (
            args.federated_token_file.is_some() && mode != GraphAuth::WorkloadIdentity,
            "--federated-token-file",
        ),
    ];
    if let Some((_, flag)) = stray.iter().find(|(bad, _)| *bad) {
        return Err(format!("{flag} does not go with --graph-auth {name}"));
    }
    let builder = match mode {
        GraphAuth::Secret | GraphAuth::Certificate => {
            let tenant = need(&args.tenant, "--tenant TENANT (the tenant id or domain)")?;
            let client_id = need(&args.client_id, "--client-id ID (the app's client id)")?;
            match (&args.client_secret_env, &args.client_cert, &args.client_key) {
                (Some(var), None, None) => {
                    let secret =
                        Secret::from_env(var).map_err(|e| format!("--client-secret-env: {e}"))?;
                    GraphSink::builder(tenant, client_id, secret)
                }
                (None, Some(cert), Some(key)) => {
                    let c = GraphCertificate::from_files(cert, key)
                        .map_err(|e| format!("--client-cert/--client-key: {e}"))?;
                    GraphSink::builder(tenant, client_id, c)
                }
                (None, Some(_), None) => return Err("--client-cert needs --client-key FILE".into()),
                (None, None, Some(_)) => return Err("--client-key needs --client-cert FILE".into()),
                (None, None, None) if mode == GraphAuth::Secret => {
                    return Err("--graph-auth secret needs --client-secret-env VAR".into())
                }
                (None, None, None) => {
                    return Err(
                        "--graph-auth certificate needs --client-cert FILE and --client-key FILE"
                            .into(),
                    )
                }
                _ => {
                    return Err(
                        "give either --client-secret-env or --client-cert/--client-key, not both"
                            .into(),
                    )
                }
            }
        }
        GraphAuth::ManagedIdentity => {
            if args.client_id.is_some() {
                return Err(
                    "--graph-auth managed-identity takes no --client-id: choose a user-assigned \
                     identity with --managed-identity-client-id ID"
                        .into(),
                );
            }
            let mut mi = match &args.imds_url {
                Some(u) => ManagedIdentity::imds().imds_url(u),
                None => ManagedIdentity::from_env()
                    .map_err(|e| format!("--graph-auth managed-identity: {e}"))?,
            };
            if let Some(d) = &args.arc_key_dir {
                mi = mi.arc_key_dir(d);
            }
            if let Some(id) = &args.managed_identity_client_id {
                mi = mi.client_id(id);
            }
            GraphSink::builder_for(mi)
        }
        GraphAuth::WorkloadIdentity => {
            let tenant = args.tenant.clone().or_else(|| env("AZURE_TENANT_ID"));
            let tenant = need(&tenant, "--tenant TENANT or AZURE_TENANT_ID")?;
            let client = args.client_id.clone().or_else(|| env("AZURE_CLIENT_ID"));
            let client = need(&client, "--client-id ID or AZURE_CLIENT_ID")?;
            let file = args
                .federated_token_file
                .clone()
                .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from))
                .ok_or("--graph-auth workload-identity needs --federated-token-file FILE or AZURE_FEDERATED_TOKEN_FILE")?;
            let mut w = WorkloadIdentity::new(tenant, client, file);
            if let Some(h) = env("AZURE_AUTHORITY_HOST") {
                w = w.authority_host(h);
            }
            GraphSink::builder_for(w)
        }
    };
    let mut b = builder;
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
    b = b.allow_insecure_http(args.insecure_http);
    let m: MatchAttribute = match_attr
        .parse()
        .map_err(|e: userphoto::Error| format!("--match: {e}"))?;
    if concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let sink = b
        .match_attribute(m)
        .max_in_flight(concurrency)
        .confirm_uploads(args.confirm_uploads)
        .build()
        .map_err(|e| format!("--sink graph: {e}"))?;
    Ok(sink)
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
