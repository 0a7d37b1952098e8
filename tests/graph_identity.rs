//! The Graph sink without a stored secret, against the Graph fake's identity endpoints
//! (`userphoto_testkit::graph_server`): managed identity by App Service, Azure Arc and the
//! instance metadata service (system- and user-assigned), workload identity federation
//! (a token file re-read as it rotates), tokens that expire during a run, hostile answers.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use userphoto::normalize::testimage::photo_jpeg;
use userphoto::sink::{
    DirectorySink, GraphSink, ManagedIdentity, ManagedIdentityKind, Secret, WorkloadIdentity,
};
use userphoto::{ErrorKind, UserKey};
use userphoto_testkit::graph_server::*;

const SYSTEM_ID: &str = "7b1d3f5a-9c2e-4a6b-8d0f-1e3a5c7b9d2f";
const USER_ASSIGNED_ID: &str = "6e3c1f0a-2b4d-4e8f-9a1c-3d5e7f9b1c2d";
const HEADER: &str = "identity-header-value-5f1c";
const WI_APP: &str = "4a2c6e8b-1d3f-4b5a-9c7e-2f4a6c8e0b1d";
const ISSUER: &str = "https://oidc.prod-aks.azure.com/00000000-test/";
const SUBJECT: &str = "system:serviceaccount:photos:userphoto";

fn upn_of(i: usize) -> String {
    format!("user{i}@contoso.onmicrosoft.com")
}

async fn server(n: usize) -> GraphServer {
    let users =
        (0..n).map(|i| UserSeed::new(&format!("00000000-0000-4000-8000-{i:012}"), &upn_of(i)));
    let srv = GraphServer::start(GraphServerConfig::default().with_users(users)).await;
    srv.enable_managed_identity(
        ManagedIdentityConfig::new(SYSTEM_ID, HEADER).user_assigned(USER_ASSIGNED_ID),
    );
    srv
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "userphoto-graph-identity-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn jpeg(seed: u32) -> Bytes {
    Bytes::from(photo_jpeg(64, 64, seed))
}

fn key(i: usize) -> UserKey {
    UserKey::new(upn_of(i))
}

fn sink(srv: &GraphServer, mi: ManagedIdentity) -> GraphSink {
    GraphSink::builder_for(mi)
        .graph_url(srv.base_url())
        .build()
        .expect("sink")
}

fn app_service(srv: &GraphServer) -> ManagedIdentity {
    ManagedIdentity::app_service(format!("{}/msi/token", srv.base_url()), Secret::new(HEADER))
}

fn identity_records(srv: &GraphServer) -> Vec<RequestRecord> {
    srv.records()
        .into_iter()
        .filter(|r| r.path == "/msi/token" || r.path == "/metadata/identity/oauth2/token")
        .collect()
}

fn put_apps(srv: &GraphServer) -> Vec<String> {
    srv.operation_records()
        .iter()
        .filter(|r| r.method == "PUT")
        .filter_map(|r| r.app_id.clone())
        .collect()
}

/// App Service: `X-IDENTITY-HEADER`, api-version 2019-08-01, `resource`, the token of the
/// system-assigned identity, then of a user-assigned one chosen by client id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_service_system_and_user_assigned() {
    let srv = server(2).await;
    sink(&srv, app_service(&srv))
        .put(&key(0), &jpeg(1))
        .await
        .unwrap();
    assert!(srv.user(&upn_of(0)).unwrap().photo.is_some());
    let recs = identity_records(&srv);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!((r.method.as_str(), r.status), ("GET", 200));
    assert_eq!(r.header("x-identity-header"), Some(HEADER));
    let q = r.query.clone().unwrap();
    assert!(q.contains("api-version=2019-08-01"), "{q}");
    assert!(
        q.contains("resource=https%3A%2F%2Fgraph.microsoft.com"),
        "{q}"
    );
    assert!(!q.contains("client_id"), "{q}");
    assert_eq!(put_apps(&srv), [SYSTEM_ID]);

    sink(&srv, app_service(&srv).client_id(USER_ASSIGNED_ID))
        .put(&key(1), &jpeg(2))
        .await
        .unwrap();
    let q = identity_records(&srv)[1].query.clone().unwrap();
    assert!(q.contains(&format!("client_id={USER_ASSIGNED_ID}")), "{q}");
    assert_eq!(put_apps(&srv), [SYSTEM_ID, USER_ASSIGNED_ID]);

    // An identity not assigned to the resource: a configuration error naming the option.
    let e = sink(
        &srv,
        app_service(&srv).client_id("11111111-2222-4333-8444-555555555555"),
    )
    .put(&key(1), &jpeg(3))
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.is_run_level());
    // The setting by the library's name, with the id given; no application's flag.
    assert!(
        e.message()
            .contains(userphoto::cited::MANAGED_IDENTITY_CLIENT_ID),
        "{e}"
    );
    assert!(
        e.message().contains("11111111-2222-4333-8444-555555555555"),
        "{e}"
    );
    assert!(!e.message().contains("--"), "{e}");

    // A wrong header: refused, and the header value never shows.
    let wrong = ManagedIdentity::app_service(
        format!("{}/msi/token", srv.base_url()),
        Secret::new("not-the-header-9d2"),
    );
    let e = sink(&srv, wrong).put(&key(1), &jpeg(4)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!e.to_string().contains("not-the-header-9d2"), "{e}");
    assert!(!format!("{e:?}").contains("not-the-header-9d2"));
}

/// The instance metadata service: `Metadata: true`, api-version 2018-02-01, a user-assigned
/// identity by `client_id`; the host replaced with `imds_url`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imds_system_and_user_assigned() {
    let srv = server(2).await;
    let imds = || ManagedIdentity::imds().imds_url(srv.base_url());
    assert_eq!(imds().kind(), ManagedIdentityKind::Imds);
    sink(&srv, imds()).put(&key(0), &jpeg(1)).await.unwrap();
    sink(&srv, imds().client_id(USER_ASSIGNED_ID))
        .put(&key(1), &jpeg(2))
        .await
        .unwrap();
    let recs = identity_records(&srv);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r.header("metadata"), Some("true"));
        assert!(r
            .query
            .as_deref()
            .unwrap()
            .contains("api-version=2018-02-01"));
        assert_eq!(r.status, 200);
    }
    assert!(recs[1].query.as_deref().unwrap().contains(USER_ASSIGNED_ID));
    assert_eq!(put_apps(&srv), [SYSTEM_ID, USER_ASSIGNED_ID]);
}

/// IMDS answers 503, 429, 404 and 410 before it has a token: asked again with a backoff,
/// the upload goes through; more failures than retries give a temporary error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imds_retries_are_bounded() {
    let srv = server(1).await;
    srv.inject_identity_answers([
        IdentityAnswer::status(503),
        IdentityAnswer::status(429).header("retry-after", "0"),
        IdentityAnswer::status(404),
        IdentityAnswer::status(410),
    ]);
    let mi = ManagedIdentity::imds()
        .imds_url(srv.base_url())
        .imds_retries(5, Duration::from_millis(10));
    sink(&srv, mi).put(&key(0), &jpeg(1)).await.unwrap();
    let statuses: Vec<u16> = identity_records(&srv).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 429, 404, 410, 200]);

    srv.clear_records();
    srv.inject_identity_answers((0..4).map(|_| IdentityAnswer::status(500)));
    let mi = ManagedIdentity::imds()
        .imds_url(srv.base_url())
        .imds_retries(2, Duration::from_millis(10));
    let e = sink(&srv, mi).put(&key(0), &jpeg(2)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
    assert_eq!(identity_records(&srv).len(), 3, "1 request and 2 retries");
}

/// Azure Arc: the first request gets 401 with a key file named in `WWW-Authenticate`; the
/// key goes back as `Authorization: Basic`; a key file outside the agent's folder is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_arc_challenge() {
    let srv = server(1).await;
    let keys = tempdir("arc-keys");
    srv.enable_managed_identity(ManagedIdentityConfig::new(SYSTEM_ID, HEADER).arc(&keys));
    let url = format!("{}/metadata/identity/oauth2/token", srv.base_url());
    let arc = ManagedIdentity::azure_arc(&url).arc_key_dir(&keys);
    assert_eq!(arc.kind(), ManagedIdentityKind::AzureArc);
    sink(&srv, arc.clone())
        .put(&key(0), &jpeg(1))
        .await
        .unwrap();
    let recs = identity_records(&srv);
    assert_eq!(
        recs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [401, 200]
    );
    assert!(!recs[0].authorization_present);
    assert!(recs[1]
        .header("authorization")
        .is_some_and(|a| a.starts_with("Basic ")));
    for r in &recs {
        assert_eq!(r.header("metadata"), Some("true"));
        assert!(r
            .query
            .as_deref()
            .unwrap()
            .contains("api-version=2020-06-01"));
    }

    // The challenge names a file in another folder than the one the client trusts.
    let elsewhere = tempdir("arc-elsewhere");
    let e = sink(
        &srv,
        ManagedIdentity::azure_arc(&url).arc_key_dir(&elsewhere),
    )
    .put(&key(0), &jpeg(2))
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(
        e.to_string().contains("not in the Arc agent's folder"),
        "{e}"
    );

    // Arc has no user-assigned identities.
    let e = sink(&srv, arc.client_id(USER_ASSIGNED_ID))
        .put(&key(0), &jpeg(3))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(
        e.message()
            .contains(userphoto::cited::MANAGED_IDENTITY_CLIENT_ID),
        "{e}"
    );
    assert!(!e.message().contains("--"), "{e}");
}

/// `from_env` picks the endpoint as Azure's SDKs do.
#[test]
fn managed_identity_from_env() {
    let vars = [
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "IMDS_ENDPOINT",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    ];
    for v in vars {
        std::env::remove_var(v);
    }
    let m = ManagedIdentity::from_env().unwrap();
    assert_eq!(m.kind(), ManagedIdentityKind::Imds);
    assert_eq!(
        m.endpoint_url(),
        "http://169.254.169.254/metadata/identity/oauth2/token"
    );
    std::env::set_var("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:2345");
    assert_eq!(
        ManagedIdentity::from_env().unwrap().endpoint_url(),
        "http://127.0.0.1:2345/metadata/identity/oauth2/token"
    );
    std::env::set_var("IDENTITY_ENDPOINT", "http://127.0.0.1:41111/msi/token");
    assert_eq!(
        ManagedIdentity::from_env().unwrap_err().kind(),
        ErrorKind::Config
    );
    std::env::set_var("IMDS_ENDPOINT", "http://localhost:40342");
    assert_eq!(
        ManagedIdentity::from_env().unwrap().kind(),
        ManagedIdentityKind::AzureArc
    );
    std::env::set_var("IDENTITY_HEADER", "h");
    let m = ManagedIdentity::from_env().unwrap();
    assert_eq!(m.kind(), ManagedIdentityKind::AppService);
    assert_eq!(m.endpoint_url(), "http://127.0.0.1:41111/msi/token");
    for v in vars {
        std::env::remove_var(v);
    }
}

async fn wi_server(n: usize, issuer: &TestIssuer) -> GraphServer {
    let srv = server(n).await;
    srv.configure(|c| {
        c.apps.push(AppRegistration {
            client_id: WI_APP.into(),
            client_secret: None,
            certificates: Vec::new(),
            roles: DEFAULT_APP_ROLES.iter().map(|r| r.to_string()).collect(),
        })
    });
    srv.add_federated_credential(FederatedCredential::new(WI_APP, issuer, SUBJECT));
    srv
}

fn wi_sink(srv: &GraphServer, file: &std::path::Path) -> GraphSink {
    GraphSink::builder_for(WorkloadIdentity::new(srv.tenant_id(), WI_APP, file))
        .graph_url(srv.base_url())
        .login_url(srv.login_url())
        .build()
        .unwrap()
}

/// Workload identity: the file's token is the `client_assertion` of a client-credentials
/// request; the file is read again on every token request (it rotates): a token for another
/// subject written meanwhile is what the next request sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_reads_the_rotating_file() {
    let issuer = TestIssuer::generate(ISSUER);
    let srv = wi_server(3, &issuer).await;
    let dir = tempdir("wi");
    let file = dir.join("azure-identity-token");
    std::fs::write(&file, issuer.token(SUBJECT, Duration::from_secs(3600))).unwrap();
    let s = wi_sink(&srv, &file);
    s.put(&key(0), &jpeg(1)).await.unwrap();
    assert_eq!(put_apps(&srv), [WI_APP]);
    assert_eq!(srv.tokens_issued(), 1);

    // Rotated to a token the app does not trust; Graph's token expires: the refresh reads
    // the new file and is refused.
    std::fs::write(
        &file,
        issuer.token("system:serviceaccount:other:sa", Duration::from_secs(3600)),
    )
    .unwrap();
    srv.expire_all_tokens();
    let e = s.put(&key(1), &jpeg(2)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(e.to_string().contains("70021"), "{e}");

    // Rotated again to a good one: the same sink works again.
    std::fs::write(&file, issuer.token(SUBJECT, Duration::from_secs(3600))).unwrap();
    s.put(&key(2), &jpeg(3)).await.unwrap();
    assert!(srv.user(&upn_of(2)).unwrap().photo.is_some());
    assert_eq!(srv.tokens_issued(), 2);

    // An expired federated token, a wrong audience, an empty file: refused, typed.
    std::fs::write(
        &file,
        issuer.token_with(SUBJECT, TOKEN_EXCHANGE_AUDIENCE, -60),
    )
    .unwrap();
    let e = wi_sink(&srv, &file)
        .put(&key(0), &jpeg(4))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("700024"), "{e}");
    std::fs::write(&file, issuer.token_with(SUBJECT, "api://other", 600)).unwrap();
    let e = wi_sink(&srv, &file)
        .put(&key(0), &jpeg(5))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    std::fs::write(&file, "").unwrap();
    let e = wi_sink(&srv, &file)
        .put(&key(0), &jpeg(6))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    let e = wi_sink(&srv, &dir.join("missing"))
        .put(&key(0), &jpeg(7))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");

    // The builder's tenant must agree with the identity's.
    let e = GraphSink::builder(
        "fabrikam.onmicrosoft.com",
        "",
        WorkloadIdentity::new(srv.tenant_id(), WI_APP, &file),
    )
    .build()
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

/// Tokens that expire during a run of many uploads are replaced before they expire: no
/// request is ever refused with 401, and several tokens are fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_and_refresh_during_a_run() {
    let n = 24;
    let issuer = TestIssuer::generate(ISSUER);
    let srv = wi_server(n, &issuer).await;
    srv.configure(|c| c.token_lifetime = Duration::from_secs(1));
    srv.set_latency(Duration::from_millis(100));
    let file = tempdir("expiry").join("token");
    std::fs::write(&file, issuer.token(SUBJECT, Duration::from_secs(3600))).unwrap();
    let mi = sink(&srv, app_service(&srv));
    let wi = wi_sink(&srv, &file);
    for i in 0..n {
        let s = if i % 2 == 0 { &mi } else { &wi };
        s.put(&key(i), &jpeg(i as u32)).await.unwrap();
    }
    let recs = srv.operation_records();
    assert_eq!(recs.iter().filter(|r| r.status == 200).count(), n);
    assert!(
        recs.iter().all(|r| r.status != 401),
        "a token outlived its life"
    );
    // About 2.4 s of uploads with 1 s tokens: each sink fetched at least twice.
    let ids = identity_records(&srv).len();
    assert!(ids >= 2, "{ids} managed identity tokens");
    assert!(
        srv.tokens_issued() as usize >= ids + 2,
        "{} tokens",
        srv.tokens_issued()
    );
}

/// Whatever the identity endpoint answers, a typed error and never a panic; the token is
/// not in the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_identity_answers() {
    let srv = server(1).await;
    let big = vec![b'a'; 200 << 10];
    let cases: Vec<(IdentityAnswer, ErrorKind)> = vec![
        (IdentityAnswer::raw(200, "not json"), ErrorKind::InvalidData),
        (IdentityAnswer::raw(200, "[1,2]"), ErrorKind::InvalidData),
        (IdentityAnswer::raw(200, "{}"), ErrorKind::InvalidData),
        (
            IdentityAnswer::raw(200, r#"{"access_token":"tok-1a2b"}"#),
            ErrorKind::InvalidData,
        ),
        (
            IdentityAnswer::raw(200, r#"{"access_token":"tok-1a2b","expires_on":"soon"}"#),
            ErrorKind::InvalidData,
        ),
        (
            IdentityAnswer::raw(200, r#"{"access_token":"","expires_in":"3599"}"#),
            ErrorKind::InvalidData,
        ),
        (
            IdentityAnswer::raw(200, r#"{"access_token":"a b\nc","expires_in":"3599"}"#),
            ErrorKind::InvalidData,
        ),
        (
            IdentityAnswer::raw(200, r#"{"access_token":42,"expires_in":"3599"}"#),
            ErrorKind::InvalidData,
        ),
        (
            IdentityAnswer::raw(200, big.clone()),
            ErrorKind::LimitExceeded,
        ),
        (
            IdentityAnswer::raw(
                400,
                format!(
                    r#"{{"error":"invalid_request","error_description":"{}"}}"#,
                    "x".repeat(100_000)
                ),
            ),
            ErrorKind::Config,
        ),
        (IdentityAnswer::raw(403, big), ErrorKind::Unauthenticated),
        (IdentityAnswer::raw(302, ""), ErrorKind::Unauthenticated),
    ];
    for (answer, kind) in cases {
        srv.inject_identity_answers([answer]);
        let mi = ManagedIdentity::imds()
            .imds_url(srv.base_url())
            .imds_retries(0, Duration::ZERO);
        let e = sink(&srv, mi).put(&key(0), &jpeg(1)).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        assert!(!e.to_string().contains("tok-1a2b"), "{e}");
        assert!(e.to_string().len() < 1000, "{e}");
    }
    // An App Service answer with `expires_on` only (its documented form) works: covered by
    // `app_service_system_and_user_assigned`. A plain http endpoint that is not local is
    // refused before any request.
    let far = ManagedIdentity::app_service("http://192.0.2.10/msi/token", Secret::new("h"));
    let e = GraphSink::builder_for(far).build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("in clear"), "{e}");
}
