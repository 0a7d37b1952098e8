//! The CLI without a stored secret, from outside (`CARGO_BIN_EXE_userphoto`) against the
//! Graph fake: `sync --sink graph` with a managed identity (App Service's environment, and
//! the instance metadata service through `--imds-url`) and with workload identity (a token
//! file, by the environment or by flags); exit codes; no token, header or assertion on
//! stdout or stderr.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{graph_sync, succeeded, tempdir};
use userphoto::normalize::testimage::photo_jpeg;
use userphoto_testkit::graph_server::*;

const SYSTEM_ID: &str = "7b1d3f5a-9c2e-4a6b-8d0f-1e3a5c7b9d2f";
const USER_ASSIGNED_ID: &str = "6e3c1f0a-2b4d-4e8f-9a1c-3d5e7f9b1c2d";
const HEADER: &str = "identity-header-value-77ab";
const WI_APP: &str = "4a2c6e8b-1d3f-4b5a-9c7e-2f4a6c8e0b1d";
const ISSUER: &str = "https://token.actions.githubusercontent.com";
const SUBJECT: &str = "repo:contoso/photos:ref:refs/heads/main";

/// The identity variables a developer's or CI machine may have, cleared for each run.
const IDENTITY_VARS: [&str; 9] = [
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_AUTHORITY_HOST",
];

fn upn_of(i: usize) -> String {
    format!("user{i}@contoso.onmicrosoft.com")
}

async fn server(n: usize, issuer: &TestIssuer) -> GraphServer {
    let users =
        (0..n).map(|i| UserSeed::new(&format!("00000000-0000-4000-8000-{i:012}"), &upn_of(i)));
    let cfg = GraphServerConfig::default()
        .with_users(users)
        .with_app(AppRegistration {
            client_id: WI_APP.into(),
            client_secret: None,
            certificates: Vec::new(),
            roles: DEFAULT_APP_ROLES.iter().map(|r| r.to_string()).collect(),
        });
    let srv = GraphServer::start(cfg).await;
    srv.enable_managed_identity(
        ManagedIdentityConfig::new(SYSTEM_ID, HEADER).user_assigned(USER_ASSIGNED_ID),
    );
    srv.add_federated_credential(FederatedCredential::new(WI_APP, issuer, SUBJECT));
    srv
}

fn photos(dir: &Path, n: usize, seed: u32) {
    let p = dir.join("photos");
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    for i in 0..n {
        std::fs::write(
            p.join(format!("{}.jpg", upn_of(i))),
            photo_jpeg(200, 200, seed + i as u32),
        )
        .unwrap();
    }
}

/// `userphoto sync --sink graph --graph-url …` in `dir`, no state file, identity variables
/// cleared.
fn sync(dir: &Path, srv: &GraphServer) -> Command {
    let mut c = graph_sync(dir, srv);
    for v in IDENTITY_VARS {
        c.env_remove(v);
    }
    c
}

async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

/// Every bearer token the fake saw, for checking that none was printed.
fn bearer_tokens(srv: &GraphServer) -> Vec<String> {
    srv.records()
        .iter()
        .filter_map(|r| r.header("authorization"))
        .filter_map(|a| a.strip_prefix("Bearer "))
        .map(str::to_owned)
        .collect()
}

fn assert_hidden(o: &Output, secrets: &[String]) {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for s in secrets {
        assert!(!s.is_empty());
        assert!(!all.contains(s.as_str()), "printed a secret: {all}");
    }
}

fn put_apps(srv: &GraphServer) -> Vec<String> {
    srv.operation_records()
        .iter()
        .filter(|r| r.method == "PUT" && r.status == 200)
        .filter_map(|r| r.app_id.clone())
        .collect()
}

/// App Service's environment (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`) makes the mode
/// managed-identity without `--graph-auth`; `--managed-identity-client-id` picks a
/// user-assigned one; a wrong header exits 2 without showing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_syncs_with_an_app_service_managed_identity() {
    let issuer = TestIssuer::generate(ISSUER);
    let srv = server(2, &issuer).await;
    let dir = tempdir("graph-identity", "app-service");
    photos(&dir, 2, 1);
    let endpoint = format!("{}/msi/token", srv.base_url());
    let mut c = sync(&dir, &srv);
    c.env("IDENTITY_ENDPOINT", &endpoint)
        .env("IDENTITY_HEADER", HEADER);
    let o = run(c).await;
    let out = succeeded(&o);
    assert!(out.contains("graph: 2 written"), "{out}");
    assert_eq!(put_apps(&srv), [SYSTEM_ID, SYSTEM_ID]);
    let mut secrets = bearer_tokens(&srv);
    secrets.push(HEADER.into());
    assert_hidden(&o, &secrets);

    photos(&dir, 2, 10);
    let mut c = sync(&dir, &srv);
    c.env("IDENTITY_ENDPOINT", &endpoint)
        .env("IDENTITY_HEADER", HEADER)
        .args(["--graph-auth", "managed-identity"])
        .args(["--managed-identity-client-id", USER_ASSIGNED_ID]);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(&put_apps(&srv)[2..], [USER_ASSIGNED_ID, USER_ASSIGNED_ID]);
    assert_hidden(&o, &bearer_tokens(&srv));

    let mut c = sync(&dir, &srv);
    c.env("IDENTITY_ENDPOINT", &endpoint)
        .env("IDENTITY_HEADER", "wrong-header-3c9e");
    let o = run(c).await;
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("App Service"), "{err}");
    assert_hidden(&o, &["wrong-header-3c9e".to_owned()]);
}

/// The instance metadata service at `--imds-url` (with `--graph-auth managed-identity`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_syncs_with_the_instance_metadata_service() {
    let issuer = TestIssuer::generate(ISSUER);
    let srv = server(1, &issuer).await;
    let dir = tempdir("graph-identity", "imds");
    photos(&dir, 1, 3);
    let mut c = sync(&dir, &srv);
    c.args([
        "--graph-auth",
        "managed-identity",
        "--imds-url",
        &srv.base_url(),
    ]);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(put_apps(&srv), [SYSTEM_ID]);
    let md: Vec<RequestRecord> = srv
        .records()
        .into_iter()
        .filter(|r| r.path == "/metadata/identity/oauth2/token")
        .collect();
    assert_eq!(md.len(), 1);
    assert_eq!(md[0].header("metadata"), Some("true"));
    assert_hidden(&o, &bearer_tokens(&srv));
}

/// Workload identity by the webhook's environment, then by flags; the assertion (the
/// file's token) and Graph's tokens are never printed; usage errors exit 2 naming the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_syncs_with_workload_identity() {
    let issuer = TestIssuer::generate(ISSUER);
    let srv = server(2, &issuer).await;
    let dir = tempdir("graph-identity", "workload");
    photos(&dir, 2, 5);
    let file = dir.join("azure-identity-token");
    let assertion = issuer.token(SUBJECT, Duration::from_secs(3600));
    std::fs::write(&file, &assertion).unwrap();
    let mut c = sync(&dir, &srv);
    c.env("AZURE_FEDERATED_TOKEN_FILE", &file)
        .env("AZURE_CLIENT_ID", WI_APP)
        .env("AZURE_TENANT_ID", srv.tenant_id())
        .env("AZURE_AUTHORITY_HOST", srv.login_url());
    let o = run(c).await;
    let out = succeeded(&o);
    assert!(out.contains("graph: 2 written"), "{out}");
    assert_eq!(put_apps(&srv), [WI_APP, WI_APP]);
    let mut secrets = bearer_tokens(&srv);
    secrets.push(assertion.clone());
    assert_hidden(&o, &secrets);

    // By flags, with a token the app does not trust: exit 2, the assertion not shown.
    let untrusted = issuer.token(
        "repo:evil/fork:ref:refs/heads/main",
        Duration::from_secs(600),
    );
    std::fs::write(&file, &untrusted).unwrap();
    photos(&dir, 2, 20);
    let mut c = sync(&dir, &srv);
    c.args(["--graph-auth", "workload-identity"])
        .args(["--federated-token-file", file.to_str().unwrap()])
        .args(["--tenant", &srv.tenant_id(), "--client-id", WI_APP])
        .args(["--login-url", &srv.login_url()]);
    let o = run(c).await;
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("70021"), "{err}");
    assert_hidden(&o, &[untrusted]);

    // Usage errors: exit 2, naming the flag.
    for (args, says) in [
        (
            vec![
                "--graph-auth",
                "workload-identity",
                "--tenant",
                "t",
                "--client-id",
                "c",
            ],
            "--federated-token-file",
        ),
        (
            vec!["--graph-auth", "managed-identity", "--client-id", WI_APP],
            "--managed-identity-client-id",
        ),
        (
            vec!["--graph-auth", "secret", "--federated-token-file", "f"],
            "--federated-token-file",
        ),
        (vec!["--tenant", "t", "--client-id", "c"], "--graph-auth"),
        (vec!["--graph-auth", "password"], "--graph-auth"),
    ] {
        let mut c = sync(&dir, &srv);
        c.args(&args);
        let o = run(c).await;
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Azure Arc's environment (`IDENTITY_ENDPOINT` + `IMDS_ENDPOINT`): the agent's 401
/// challenge names a key file, which is read only inside the agent's key folder
/// (`--arc-key-dir` here, as the fake writes its keys to a folder of the test's); without it
/// the key file is outside the documented folder and the run exits 2, the key never shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_syncs_with_an_azure_arc_managed_identity() {
    let issuer = TestIssuer::generate(ISSUER);
    let srv = server(1, &issuer).await;
    let dir = tempdir("graph-identity", "arc");
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    srv.enable_managed_identity(ManagedIdentityConfig::new(SYSTEM_ID, HEADER).arc(&keys));
    photos(&dir, 1, 7);
    let arc = |extra: &[&str]| {
        let mut c = sync(&dir, &srv);
        c.env(
            "IDENTITY_ENDPOINT",
            format!("{}/metadata/identity/oauth2/token", srv.base_url()),
        )
        .env("IMDS_ENDPOINT", srv.base_url())
        .args(extra);
        c
    };
    let keys_arg = keys.display().to_string();
    let o = run(arc(&["--arc-key-dir", &keys_arg])).await;
    succeeded(&o);
    assert_eq!(put_apps(&srv), [SYSTEM_ID]);
    let md: Vec<RequestRecord> = srv
        .records()
        .into_iter()
        .filter(|r| r.path == "/metadata/identity/oauth2/token")
        .collect();
    assert_eq!(md.len(), 2, "the challenge, then the answer with the key");
    assert!(md[0].header("authorization").is_none());
    assert!(md[1]
        .header("authorization")
        .is_some_and(|a| a.starts_with("Basic ")));
    let mut secrets = bearer_tokens(&srv);
    secrets.extend(
        md[1]
            .header("authorization")
            .and_then(|a| a.strip_prefix("Basic "))
            .map(str::to_owned),
    );
    assert_hidden(&o, &secrets);

    // The agent's documented folder is not where this fake writes: refused, exit 2.
    photos(&dir, 1, 20);
    let o = run(arc(&[])).await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_hidden(&o, &bearer_tokens(&srv));
    // The folder flag belongs to managed identity only.
    let o = run(arc(&["--arc-key-dir", &keys_arg, "--graph-auth", "secret"])).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--arc-key-dir"));
}
