//! `GraphSink::preflight` against the Graph test server: the token's `roles` claim (the
//! server issues RS256 JWTs as Entra does), one user read, and nothing written.

use userphoto::normalize::testimage::photo_jpeg;
use userphoto::sink::{GraphSink, Secret, GRAPH_PHOTO_WRITE_ROLES};
use userphoto::ErrorKind;
use userphoto_testkit::graph_server::*;

const ALICE: &str = "00000000-0000-4000-8000-000000000001";
const ALICE_UPN: &str = "alice@contoso.onmicrosoft.com";

async fn server(cfg: GraphServerConfig) -> GraphServer {
    let photo = photo_jpeg(96, 96, 3);
    GraphServer::start(
        cfg.with_user(UserSeed::new(ALICE, ALICE_UPN).photo(photo))
            .with_user(UserSeed::new(
                "00000000-0000-4000-8000-000000000002",
                "bob@contoso.onmicrosoft.com",
            )),
    )
    .await
}

fn sink(srv: &GraphServer, secret: &str) -> GraphSink {
    GraphSink::builder(srv.tenant_id(), srv.client_id(), Secret::new(secret))
        .graph_url(srv.base_url())
        .login_url(srv.login_url())
        .build()
        .unwrap()
}

fn writes(srv: &GraphServer) -> usize {
    srv.operation_records()
        .iter()
        .filter(|r| r.method != "GET")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_reads_the_roles_and_one_user() {
    let srv = server(GraphServerConfig::default()).await;
    let before = srv.user(ALICE).unwrap().photo;
    let p = sink(&srv, DEFAULT_CLIENT_SECRET).preflight().await.unwrap();
    assert!(p.token_decoded);
    assert_eq!(p.roles, DEFAULT_APP_ROLES);
    assert_eq!(p.photo_role.as_deref(), Some("ProfilePhoto.ReadWrite.All"));
    assert_eq!(p.user.as_deref(), Some(ALICE_UPN));
    assert_eq!(p.user_error, None);
    assert!(p.can_sync(), "{p:?}");
    assert_eq!(writes(&srv), 0);
    assert_eq!(srv.user(ALICE).unwrap().photo, before);
    assert!(srv
        .user("bob@contoso.onmicrosoft.com")
        .unwrap()
        .photo
        .is_none());
    assert_eq!(GRAPH_PHOTO_WRITE_ROLES, PHOTO_WRITE_ROLES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_without_a_photo_role_says_which_roles_are_missing() {
    let srv = server(GraphServerConfig::default().with_app_roles(&["User.Read.All"])).await;
    let p = sink(&srv, DEFAULT_CLIENT_SECRET).preflight().await.unwrap();
    assert_eq!(p.roles, ["User.Read.All"]);
    assert_eq!(p.photo_role, None);
    let why = p.reason().unwrap();
    assert!(
        why.contains("ProfilePhoto.ReadWrite.All") && why.contains("User.ReadWrite.All"),
        "{why}"
    );
    // User.ReadWrite.All is a photo role too.
    let srv = server(GraphServerConfig::default().with_app_roles(&["User.ReadWrite.All"])).await;
    let p = sink(&srv, DEFAULT_CLIENT_SECRET).preflight().await.unwrap();
    assert_eq!(p.photo_role.as_deref(), Some("User.ReadWrite.All"));
    assert!(p.can_sync(), "{p:?}");
    // No roles at all: no `roles` claim.
    let srv = server(GraphServerConfig::default().with_app_roles(&[])).await;
    let p = sink(&srv, DEFAULT_CLIENT_SECRET).preflight().await.unwrap();
    assert!(
        p.token_decoded && p.roles.is_empty() && !p.can_sync(),
        "{p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_reports_a_refused_user_read_an_opaque_token_and_a_bad_secret() {
    // A photo role without a directory role: the user read is refused (403).
    let srv =
        server(GraphServerConfig::default().with_app_roles(&["ProfilePhoto.ReadWrite.All"])).await;
    let p = sink(&srv, DEFAULT_CLIENT_SECRET).preflight().await.unwrap();
    assert!(p.photo_role.is_some());
    let err = p.user_error.clone().expect("the read is refused");
    assert!(err.contains("403"), "{err}");
    assert!(
        p.reason().unwrap().contains("reading a user was refused"),
        "{p:?}"
    );

    // An opaque token: roles unknown, not a reason to stop.
    let srv = server(GraphServerConfig::default().with_opaque_tokens()).await;
    let p = sink(&srv, DEFAULT_CLIENT_SECRET).preflight().await.unwrap();
    assert!(!p.token_decoded && p.roles.is_empty() && p.photo_role.is_none());
    assert_eq!(p.user.as_deref(), Some(ALICE_UPN));
    assert!(p.can_sync(), "{p:?}");

    // A wrong secret: the token request is refused, a typed error without the secret.
    let wrong = "not-the-secret-0123";
    let e = sink(&srv, wrong).preflight().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!e.to_string().contains(wrong));
}
