//! Self-tests of the Microsoft Graph fake in `testkit/src/graph_server.rs`: a plain HTTP
//! client (reqwest) checks each behaviour of the contract the Graph sink will be tested against.

use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reqwest::{Client, Response};
use serde_json::{json, Value};
use userphoto_testkit::graph_server::*;

const ALICE: &str = "6e1f0c2a-4b3d-4a5e-9f60-7a8b9c0d1e2f";
const BOB: &str = "0b7d2e4f-1a3c-4e5b-8d6f-2c4e6a8b0d1f";
const GUEST: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f2a3b4c5d";
const DOLLAR: &str = "2d4f6a8c-0e1b-4c3d-a5e7-9f1b3d5e7a9c";
const GUEST_UPN: &str = "carol_fabrikam.com#EXT#@contoso.onmicrosoft.com";
const DOLLAR_UPN: &str = "$dave@contoso.onmicrosoft.com";
const CERT_APP: &str = "5c2e8a1b-9d4f-4b6a-8e3c-7f1a2b3c4d5e";

fn directory() -> Vec<UserSeed> {
    vec![
        UserSeed::new(ALICE, "alice@contoso.onmicrosoft.com")
            .employee_id("E1001")
            .mail("alice@contoso.com")
            .display_name("Alice"),
        UserSeed::new(BOB, "bob@contoso.onmicrosoft.com")
            .employee_id("E1002")
            .mail("bob@contoso.com"),
        UserSeed::new(GUEST, GUEST_UPN).employee_id("E2001"),
        UserSeed::new(DOLLAR, DOLLAR_UPN).employee_id("E3001"),
    ]
}

async fn start(cfg: GraphServerConfig) -> GraphServer {
    GraphServer::start(cfg.with_users(directory())).await
}

fn client() -> Client {
    Client::builder().no_proxy().build().expect("client")
}

async fn json_of(resp: Response) -> Value {
    let text = resp.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_string())
}

fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

async fn secret_token(srv: &GraphServer, c: &Client) -> String {
    let resp = c
        .post(srv.token_url())
        .form(&[
            ("client_id", DEFAULT_CLIENT_ID),
            ("scope", srv.scope().as_str()),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), 200);
    json_of(resp).await["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Asserts the Graph error shape of contract section 5 and returns the body.
async fn graph_error_of(resp: Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status, "status");
    let ct = header(&resp, "content-type").expect("content-type");
    assert!(ct.starts_with("application/json"), "{ct}");
    let rid = header(&resp, "request-id").expect("request-id header");
    let crid = header(&resp, "client-request-id").expect("client-request-id header");
    let v = json_of(resp).await;
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    let inner = &v["error"]["innerError"];
    assert_eq!(inner["request-id"], rid.as_str(), "{v}");
    assert_eq!(inner["client-request-id"], crid.as_str(), "{v}");
    let date = inner["date"].as_str().expect("innerError.date");
    assert_eq!(date.len(), 19, "{date}");
    assert_eq!(&date[10..11], "T", "{date}");
    v
}

fn entra_error_fields(v: &Value, error: &str, code: u64) {
    assert_eq!(v["error"], error, "{v}");
    assert_eq!(v["error_codes"], json!([code]), "{v}");
    let desc = v["error_description"].as_str().expect("error_description");
    assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    let trace = v["trace_id"].as_str().expect("trace_id");
    let corr = v["correlation_id"].as_str().expect("correlation_id");
    let ts = v["timestamp"].as_str().expect("timestamp");
    assert!(is_guid(trace), "{trace}");
    assert!(!corr.is_empty());
    // YYYY-MM-DD HH:MM:SSZ
    assert_eq!(ts.len(), 20, "{ts}");
    assert_eq!(&ts[10..11], " ", "{ts}");
    assert!(ts.ends_with('Z'), "{ts}");
    assert!(
        desc.contains(&format!(
            "\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}"
        )),
        "{desc}"
    );
    assert!(v["error_uri"]
        .as_str()
        .is_some_and(|u| u.ends_with(&format!("code={code}"))));
}

// ---------------------------------------------------------------------------------------------
// Token endpoint: client secret
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_with_client_secret_is_issued_and_accepted_by_graph() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let resp = c
        .post(srv.token_url())
        .form(&[
            ("client_id", DEFAULT_CLIENT_ID),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v = json_of(resp).await;
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    let token = v["access_token"].as_str().unwrap().to_string();
    assert!(!token.is_empty());
    let r = c
        .get(srv.graph_url(&format!("/users/{ALICE}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The tenant's domain name and HTTP Basic client authentication work too.
    let by_domain = format!(
        "{}/{DEFAULT_TENANT_DOMAIN}/oauth2/v2.0/token",
        srv.login_url()
    );
    let resp = c
        .post(by_domain)
        .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
        .form(&[
            ("scope", srv.scope().as_str()),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(srv.tokens_issued(), 2);
    assert_eq!(srv.token_request_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_with_bad_secret_gets_entra_error_body() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let crid = "0f0e0d0c-0b0a-4908-8706-050403020100";
    let resp = c
        .post(srv.token_url())
        .header("client-request-id", crid)
        .form(&[
            ("client_id", DEFAULT_CLIENT_ID),
            ("scope", srv.scope().as_str()),
            ("client_secret", "not-the-secret"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(header(&resp, "content-type")
        .unwrap()
        .starts_with("application/json"));
    assert!(header(&resp, "request-id").is_some_and(|r| is_guid(&r)));
    let v = json_of(resp).await;
    entra_error_fields(&v, "invalid_client", 7000215);
    assert_eq!(v["correlation_id"], crid);
    assert!(v["access_token"].is_null());
    assert_eq!(srv.tokens_issued(), 0);
    let rec = &srv.records()[0];
    assert_eq!(rec.kind, RequestKind::Token);
    assert_eq!(rec.error_code.as_deref(), Some("AADSTS7000215"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_error_catalogue() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let scope = srv.scope();
    let good = |k: &str| -> String {
        match k {
            "client_id" => DEFAULT_CLIENT_ID.to_string(),
            "scope" => scope.clone(),
            "client_secret" => DEFAULT_CLIENT_SECRET.to_string(),
            _ => "client_credentials".to_string(),
        }
    };
    let keys = ["client_id", "scope", "client_secret", "grant_type"];
    // (case, tenant, overrides (None = drop the field), status, error, code)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, Option<&'a str>)>,
        u16,
        &'a str,
        u64,
    );
    let unknown_tenant = "not-a-tenant.onmicrosoft.com";
    let cases: Vec<Case> = vec![
        (
            "unknown tenant",
            unknown_tenant,
            vec![],
            400,
            "invalid_request",
            90002,
        ),
        (
            "unknown client",
            DEFAULT_TENANT_ID,
            vec![("client_id", Some("11111111-2222-4333-8444-555555555555"))],
            400,
            "unauthorized_client",
            700016,
        ),
        (
            "scope not .default",
            DEFAULT_TENANT_ID,
            vec![("scope", Some("https://graph.microsoft.com/User.Read.All"))],
            400,
            "invalid_scope",
            70011,
        ),
        (
            "scope of another resource",
            DEFAULT_TENANT_ID,
            vec![("scope", Some("https://management.azure.com/.default"))],
            400,
            "invalid_scope",
            70011,
        ),
        (
            "wrong grant",
            DEFAULT_TENANT_ID,
            vec![("grant_type", Some("password"))],
            400,
            "unsupported_grant_type",
            70003,
        ),
        (
            "missing grant",
            DEFAULT_TENANT_ID,
            vec![("grant_type", None)],
            400,
            "invalid_request",
            900144,
        ),
        (
            "no credential",
            DEFAULT_TENANT_ID,
            vec![("client_secret", None)],
            401,
            "invalid_client",
            7000218,
        ),
    ];
    for (name, tenant, overrides, status, error, code) in cases {
        let mut form: Vec<(String, String)> = Vec::new();
        for k in keys {
            match overrides.iter().find(|(o, _)| *o == k) {
                Some((_, Some(v))) => form.push((k.to_string(), v.to_string())),
                Some((_, None)) => {}
                None => form.push((k.to_string(), good(k))),
            }
        }
        let url = format!("{}/{tenant}/oauth2/v2.0/token", srv.login_url());
        let resp = c.post(url).form(&form).send().await.unwrap();
        assert_eq!(resp.status(), status, "{name}");
        let v = json_of(resp).await;
        entra_error_fields(&v, error, code);
    }
    assert_eq!(srv.tokens_issued(), 0);
    assert_eq!(srv.token_request_count(), 7);
}

// ---------------------------------------------------------------------------------------------
// Token endpoint: certificate credential
// ---------------------------------------------------------------------------------------------

async fn assertion_request(
    c: &Client,
    srv: &GraphServer,
    client_id: &str,
    assertion: &str,
) -> (u16, Value) {
    let resp = c
        .post(srv.token_url())
        .form(&[
            ("client_id", client_id),
            ("scope", srv.scope().as_str()),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", assertion),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, json_of(resp).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_with_certificate_assertion_rs256_ps256_and_legacy_x5t() {
    let cert = TestCertificate::generate("graph-fake-ok");
    let srv = start(
        GraphServerConfig::default().with_app(AppRegistration::with_certificate(CERT_APP, &cert)),
    )
    .await;
    let c = client();
    let aud = srv.token_url();
    let cases = [
        (AssertionAlg::Rs256, ThumbprintHeader::S256),
        (AssertionAlg::Ps256, ThumbprintHeader::S256),
        (AssertionAlg::Rs256, ThumbprintHeader::Sha1),
    ];
    for (alg, thumb) in cases {
        let jwt = sign_jwt(
            &assertion_header(&cert, alg, thumb),
            &assertion_claims(CERT_APP, &aud),
            &cert.private_key_pem,
        );
        let (status, v) = assertion_request(&c, &srv, CERT_APP, &jwt).await;
        assert_eq!(status, 200, "{alg:?} {thumb:?}: {v}");
        let token = v["access_token"].as_str().unwrap();
        let r = c
            .get(srv.graph_url(&format!("/users/{BOB}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // The audience may name the tenant by its domain, as the token URL may.
    let by_domain = format!(
        "{}/{DEFAULT_TENANT_DOMAIN}/oauth2/v2.0/token",
        srv.login_url()
    );
    let jwt = client_assertion(&cert, CERT_APP, &by_domain, AssertionAlg::Ps256);
    let resp = c
        .post(&by_domain)
        .form(&[
            ("client_id", CERT_APP),
            ("scope", srv.scope().as_str()),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", jwt.as_str()),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(srv.tokens_issued(), 4);
    let jtis = srv.assertion_jtis();
    assert_eq!(jtis.len(), 4);
    assert!(jtis.iter().all(|j| is_guid(j)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_assertion_signed_with_wrong_key_is_rejected() {
    let cert = TestCertificate::generate("graph-fake-registered");
    let other = TestCertificate::generate("graph-fake-other");
    let srv = start(
        GraphServerConfig::default().with_app(AppRegistration::with_certificate(CERT_APP, &cert)),
    )
    .await;
    let c = client();
    let claims = assertion_claims(CERT_APP, &srv.token_url());

    // Registered thumbprint in the header, but signed by another key.
    for alg in [AssertionAlg::Rs256, AssertionAlg::Ps256] {
        let jwt = sign_jwt(
            &assertion_header(&cert, alg, ThumbprintHeader::S256),
            &claims,
            &other.private_key_pem,
        );
        let (status, v) = assertion_request(&c, &srv, CERT_APP, &jwt).await;
        assert_eq!(status, 401, "{v}");
        entra_error_fields(&v, "invalid_client", 700027);
        assert!(v["error_description"]
            .as_str()
            .unwrap()
            .contains("signature validation"));
    }

    // An unregistered certificate.
    let jwt = client_assertion(&other, CERT_APP, &srv.token_url(), AssertionAlg::Rs256);
    let (status, v) = assertion_request(&c, &srv, CERT_APP, &jwt).await;
    assert_eq!(status, 401);
    entra_error_fields(&v, "invalid_client", 700027);
    assert!(v["error_description"]
        .as_str()
        .unwrap()
        .contains("The key was not found"));

    // Claims changed after signing.
    let good = client_assertion(&cert, CERT_APP, &srv.token_url(), AssertionAlg::Rs256);
    let parts: Vec<&str> = good.split('.').collect();
    let mut forged = assertion_claims(CERT_APP, &srv.token_url());
    forged["exp"] = json!(4_000_000_000u64);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap()),
        parts[2]
    );
    let (status, v) = assertion_request(&c, &srv, CERT_APP, &forged).await;
    assert_eq!(status, 401);
    entra_error_fields(&v, "invalid_client", 700027);

    // No thumbprint header at all.
    let jwt = sign_jwt(
        &assertion_header(&cert, AssertionAlg::Rs256, ThumbprintHeader::None),
        &claims,
        &cert.private_key_pem,
    );
    let (status, v) = assertion_request(&c, &srv, CERT_APP, &jwt).await;
    assert_eq!(status, 401);
    entra_error_fields(&v, "invalid_client", 700027);
    assert_eq!(srv.tokens_issued(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_assertion_claims_are_checked() {
    let cert = TestCertificate::generate("graph-fake-claims");
    let srv = start(
        GraphServerConfig::default().with_app(AppRegistration::with_certificate(CERT_APP, &cert)),
    )
    .await;
    let c = client();
    let header = assertion_header(&cert, AssertionAlg::Ps256, ThumbprintHeader::S256);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let real_entra =
        format!("https://login.microsoftonline.com/{DEFAULT_TENANT_ID}/oauth2/v2.0/token");
    let other_tenant = format!(
        "{}/11111111-2222-4333-8444-555555555555/oauth2/v2.0/token",
        srv.login_url()
    );
    let base = assertion_claims(CERT_APP, &srv.token_url());
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let cases: Vec<(&str, Value, u64)> = vec![
        (
            "aud of the real authority",
            with("aud", json!(real_entra)),
            700023,
        ),
        (
            "aud of another tenant",
            with("aud", json!(other_tenant)),
            700023,
        ),
        (
            "iss is another app",
            with("iss", json!(DEFAULT_CLIENT_ID)),
            700021,
        ),
        (
            "sub is another app",
            with("sub", json!(DEFAULT_CLIENT_ID)),
            700021,
        ),
        ("expired", with("exp", json!(now - 600)), 700024),
        ("not yet valid", with("nbf", json!(now + 600)), 700024),
        ("no jti", without("jti"), 50027),
        ("no exp", without("exp"), 50027),
        ("no nbf", without("nbf"), 50027),
    ];
    for (name, claims, code) in cases {
        let jwt = sign_jwt(&header, &claims, &cert.private_key_pem);
        let (status, v) = assertion_request(&c, &srv, CERT_APP, &jwt).await;
        assert_eq!(status, 401, "{name}: {v}");
        entra_error_fields(&v, "invalid_client", code);
    }
    // Positive control with the same header and key.
    let jwt = sign_jwt(&header, &base, &cert.private_key_pem);
    let (status, v) = assertion_request(&c, &srv, CERT_APP, &jwt).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(srv.tokens_issued(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x5t_thumbprints_match_openssl_and_the_documented_vector() {
    // certificate-credentials doc (older version): hex thumbprint -> x5t.
    assert_eq!(
        x5t_from_hex("84E05C1D98BCE3A5421D225B140B36E86A3D5534"),
        "hOBcHZi846VCHSJbFAs26Go9VTQ"
    );
    let cert = TestCertificate::generate("graph-fake-thumb");
    assert_eq!(cert.x5t_s256, x5t_from_hex(&cert.openssl_sha256_hex));
    assert_eq!(cert.x5t_s256, x5t_s256(&cert.cert_der));
    assert_eq!(URL_SAFE_NO_PAD.decode(&cert.x5t_s256).unwrap().len(), 32);
    assert_eq!(URL_SAFE_NO_PAD.decode(&cert.x5t_sha1).unwrap().len(), 20);
    assert!(cert.private_key_pem.contains("BEGIN PRIVATE KEY"));
    assert!(cert.public_key_pem.contains("BEGIN PUBLIC KEY"));
    assert!(cert.cert_pem.contains("BEGIN CERTIFICATE"));
}

// ---------------------------------------------------------------------------------------------
// Bearer validation
// ---------------------------------------------------------------------------------------------

async fn assert_401(resp: Response, message: &str, login: &str) {
    let www = header(&resp, "www-authenticate").expect("WWW-Authenticate");
    assert!(www.starts_with("Bearer realm=\"\""), "{www}");
    assert!(
        www.contains(&format!(
            "authorization_uri=\"{login}/common/oauth2/authorize\""
        )),
        "{www}"
    );
    assert!(
        www.contains("client_id=\"00000003-0000-0000-c000-000000000000\""),
        "{www}"
    );
    let v = graph_error_of(resp, 401, codes::INVALID_AUTHENTICATION_TOKEN).await;
    assert_eq!(v["error"]["message"], message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unknown_token_gets_401() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let url = srv.graph_url(&format!("/users/{ALICE}/photo"));
    let resp = c.get(&url).send().await.unwrap();
    assert_401(resp, auth_messages::EMPTY, &srv.login_url()).await;
    let resp = c.get(&url).bearer_auth("not-a-token").send().await.unwrap();
    assert_401(resp, auth_messages::INVALID, &srv.login_url()).await;
    let resp = c
        .get(&url)
        .header("authorization", format!("Basic {}", STANDARD.encode("a:b")))
        .send()
        .await
        .unwrap();
    assert_401(resp, auth_messages::INVALID, &srv.login_url()).await;
    // 401s are not Graph operations: no counter moved, no user touched.
    assert_eq!(srv.operation_count(), 0);
    assert!(srv
        .records()
        .iter()
        .all(|r| r.status == 401 && r.app_id.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_gets_401_and_a_new_token_works() {
    let srv = start(GraphServerConfig {
        token_lifetime: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let c = client();
    let resp = c
        .post(srv.token_url())
        .form(&[
            ("client_id", DEFAULT_CLIENT_ID),
            ("scope", srv.scope().as_str()),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    let v = json_of(resp).await;
    assert_eq!(v["expires_in"], 2);
    let token = v["access_token"].as_str().unwrap().to_string();
    let url = srv.graph_url(&format!("/users/{ALICE}"));
    assert_eq!(
        c.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = c.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_401(resp, auth_messages::EXPIRED, &srv.login_url()).await;
    let fresh = secret_token(&srv, &c).await;
    assert_eq!(
        c.get(&url)
            .bearer_auth(&fresh)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(srv.token_request_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_can_be_expired_or_revoked_on_demand() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let url = srv.graph_url(&format!("/users/{ALICE}"));
    let token = srv.mint_token(DEFAULT_CLIENT_ID);
    assert_eq!(
        c.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    srv.expire_all_tokens();
    let resp = c.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_401(resp, auth_messages::EXPIRED, &srv.login_url()).await;
    let token = srv.mint_token(DEFAULT_CLIENT_ID);
    assert_eq!(
        c.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    srv.revoke_all_tokens();
    let resp = c.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_401(resp, auth_messages::INVALID, &srv.login_url()).await;
}

// ---------------------------------------------------------------------------------------------
// Photos
// ---------------------------------------------------------------------------------------------

async fn metadata(c: &Client, srv: &GraphServer, token: &str, user: &str) -> Value {
    let resp = c
        .get(srv.graph_url(&format!("/users/{user}/photo")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    json_of(resp).await
}

async fn put_photo(
    c: &Client,
    srv: &GraphServer,
    token: &str,
    user: &str,
    bytes: Vec<u8>,
) -> Response {
    c.put(srv.graph_url(&format!("/users/{user}/photo/$value")))
        .bearer_auth(token)
        .header("content-type", "image/jpeg")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photo_put_get_delete_round_trip_changes_etag_on_every_upload() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = secret_token(&srv, &c).await;
    let jpeg = test_jpeg(300, 300);

    let resp = put_photo(&c, &srv, &token, ALICE, jpeg.clone()).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap().is_empty());
    let m1 = metadata(&c, &srv, &token, ALICE).await;
    let e1 = m1["@odata.mediaEtag"].as_str().unwrap().to_string();
    assert!(
        e1.len() > 2 && e1.starts_with('"') && e1.ends_with('"'),
        "{e1}"
    );
    assert_eq!(m1["@odata.mediaContentType"], "image/jpeg");
    // The stored photo's real size (not a standard size below it).
    assert_eq!(m1["id"], "300X300");
    assert_eq!(m1["width"], 300);
    assert_eq!(m1["height"], 300);
    assert!(m1["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("/photo/$entity"));

    let resp = c
        .get(srv.graph_url(&format!("/users/{ALICE}/photo/$value")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type").as_deref(), Some("image/jpeg"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), jpeg.as_slice());

    // The same bytes again, by PUT and by PATCH: a new etag each time.
    assert_eq!(
        put_photo(&c, &srv, &token, ALICE, jpeg.clone())
            .await
            .status(),
        200
    );
    let e2 = metadata(&c, &srv, &token, ALICE).await["@odata.mediaEtag"].clone();
    let resp = c
        .patch(srv.graph_url(&format!("/users/{ALICE}/photo/$value")))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body(jpeg.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let e3 = metadata(&c, &srv, &token, ALICE).await["@odata.mediaEtag"].clone();
    assert_ne!(json!(e1), e2);
    assert_ne!(e2, e3);
    assert_ne!(json!(e1), e3);
    let snap = srv.user(ALICE).unwrap();
    assert_eq!(snap.uploads, 3);
    assert_eq!(snap.photo.as_deref(), Some(jpeg.as_slice()));
    assert_eq!(json!(snap.photo_etag), e3);

    let resp = c
        .delete(srv.graph_url(&format!("/users/{ALICE}/photo/$value")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c
        .get(srv.graph_url(&format!("/users/{ALICE}/photo")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    graph_error_of(resp, 404, codes::IMAGE_NOT_FOUND).await;
    let resp = c
        .delete(srv.graph_url(&format!("/users/{ALICE}/photo/$value")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    graph_error_of(resp, 404, codes::IMAGE_NOT_FOUND).await;
    let snap = srv.user(ALICE).unwrap();
    assert!(snap.photo.is_none());
    assert_eq!(snap.deletes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn png_is_accepted_and_non_images_are_refused() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = secret_token(&srv, &c).await;
    let png = test_png(64, 48);
    // Lenient about Content-Type (the record shows the mismatch).
    assert_eq!(
        put_photo(&c, &srv, &token, BOB, png.clone()).await.status(),
        200
    );
    let m = metadata(&c, &srv, &token, BOB).await;
    assert_eq!(m["@odata.mediaContentType"], "image/png");
    // The stored picture's own size.
    assert_eq!(m["id"], "64X48");
    assert_eq!(
        (m["width"].as_u64(), m["height"].as_u64()),
        (Some(64), Some(48))
    );
    let rec = srv
        .operation_records()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(rec.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(rec.detected_image, Some("image/png"));

    let resp = put_photo(&c, &srv, &token, BOB, b"GIF89a not a jpeg".to_vec()).await;
    graph_error_of(resp, 400, codes::BAD_REQUEST).await;
    let resp = put_photo(&c, &srv, &token, BOB, Vec::new()).await;
    graph_error_of(resp, 400, codes::BAD_REQUEST).await;
    assert_eq!(
        srv.user(BOB).unwrap().photo.as_deref(),
        Some(png.as_slice())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_without_photo_gets_404_image_not_found() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = secret_token(&srv, &c).await;
    let crid = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
    let resp = c
        .get(srv.graph_url(&format!("/users/{BOB}/photo")))
        .bearer_auth(&token)
        .header("client-request-id", crid)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "client-request-id").as_deref(), Some(crid));
    let v = graph_error_of(resp, 404, codes::IMAGE_NOT_FOUND).await;
    assert_eq!(v["error"]["innerError"]["client-request-id"], crid);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ImageNotFoundException"));
    let resp = c
        .get(srv.graph_url(&format!("/users/{BOB}/photo/$value")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    graph_error_of(resp, 404, codes::IMAGE_NOT_FOUND).await;
    // An unknown user is a different 404.
    let resp = c
        .get(srv.graph_url("/users/nobody@contoso.onmicrosoft.com/photo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    graph_error_of(resp, 404, codes::ENTITY_NOT_FOUND).await;
    let resp = c
        .get(srv.graph_url("/users/nobody@contoso.onmicrosoft.com"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    graph_error_of(resp, 404, codes::RESOURCE_NOT_FOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photo_over_4_mb_is_refused_and_exactly_4_mb_is_accepted() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = secret_token(&srv, &c).await;
    let mut big = test_jpeg(64, 64);
    big.resize(MAX_PHOTO_BYTES + 1, 0);
    let resp = put_photo(&c, &srv, &token, ALICE, big.clone()).await;
    let v = graph_error_of(resp, 413, codes::REQUEST_ENTITY_TOO_LARGE).await;
    assert!(v["error"]["message"].as_str().unwrap().contains("4000001"));
    assert!(srv.user(ALICE).unwrap().photo.is_none());
    big.truncate(MAX_PHOTO_BYTES);
    assert_eq!(put_photo(&c, &srv, &token, ALICE, big).await.status(), 200);
    assert_eq!(srv.user(ALICE).unwrap().photo.unwrap().len(), 4_000_000);
    let recs = srv.operation_records();
    assert_eq!(recs[0].request_body_len, 4_000_001);
    assert_eq!(recs[0].status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_upn_with_encoded_hash_and_dollar_upn_key_form() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = secret_token(&srv, &c).await;
    let jpeg = test_jpeg(100, 100);

    let guest = GUEST_UPN.replace('#', "%23");
    let resp = put_photo(&c, &srv, &token, &guest, jpeg.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(srv.user(GUEST).unwrap().uploads, 1);
    // UPN case-insensitive, %24value the same as $value.
    let resp = c
        .get(srv.graph_url(&format!("/users/{}/photo/%24value", guest.to_uppercase())))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), jpeg.as_slice());

    // A UPN starting with `$` fails in the plain form and works in the key form.
    let resp = c
        .get(srv.graph_url(&format!("/users/{DOLLAR_UPN}/photo")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    graph_error_of(resp, 400, codes::BAD_REQUEST).await;
    let resp = put_photo(&c, &srv, &token, &format!("('{DOLLAR_UPN}')"), jpeg.clone()).await;
    assert_eq!(resp.status(), 404, "`users/('…')` is not the key form");
    let resp = c
        .put(srv.graph_url(&format!("/users('{DOLLAR_UPN}')/photo/$value")))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body(jpeg.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(srv.user(DOLLAR).unwrap().uploads, 1);
    let resp = c
        .get(srv.graph_url("/users('%24DAVE%40contoso.onmicrosoft.com')/photo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // GUID form, any case: Alice exists but has no photo.
    let resp = c
        .get(srv.graph_url(&format!("/users/{}/photo/$value", ALICE.to_uppercase())))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    graph_error_of(resp, 404, codes::IMAGE_NOT_FOUND).await;
    let users: Vec<Option<String>> = srv
        .operation_records()
        .into_iter()
        .map(|r| r.user_id)
        .collect();
    assert_eq!(
        users,
        vec![
            Some(GUEST.to_string()),
            Some(GUEST.to_string()),
            None,
            None,
            Some(DOLLAR.to_string()),
            Some(DOLLAR.to_string()),
            Some(ALICE.to_string()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_collection_lists_sizes_up_to_the_upload() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = secret_token(&srv, &c).await;
    let jpeg = test_jpeg(400, 300);
    assert_eq!(
        put_photo(&c, &srv, &token, ALICE, jpeg.clone())
            .await
            .status(),
        200
    );
    let resp = c
        .get(srv.graph_url(&format!("/users/{ALICE}/photos")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let v = json_of(resp).await;
    let ids: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["48X48", "64X64", "96X96", "120X120", "240X240"]);
    let resp = c
        .get(srv.graph_url(&format!("/users/{ALICE}/photos/96x96/$value")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), jpeg.as_slice());
    let resp = c
        .get(srv.graph_url(&format!("/users/{ALICE}/photos/360X360")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    graph_error_of(resp, 404, codes::IMAGE_NOT_FOUND).await;
}

// ---------------------------------------------------------------------------------------------
// Lookup by attribute
// ---------------------------------------------------------------------------------------------

async fn users_query(
    c: &Client,
    srv: &GraphServer,
    token: &str,
    filter: &str,
    select: &str,
) -> Response {
    c.get(srv.graph_url("/users"))
        .query(&[("$filter", filter), ("$select", select)])
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_filter_by_employee_id_upn_and_mail() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = secret_token(&srv, &c).await;
    let resp = users_query(
        &c,
        &srv,
        &token,
        "employeeId eq 'E1002'",
        "id,userPrincipalName",
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v = json_of(resp).await;
    assert_eq!(
        v["value"],
        json!([{ "id": BOB, "userPrincipalName": "bob@contoso.onmicrosoft.com" }])
    );
    assert!(v["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("#users(id,userPrincipalName)"));

    let ids = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect()
    };
    let cases = [
        ("mail eq 'ALICE@contoso.com'", vec![ALICE]),
        (&*format!("userPrincipalName eq '{GUEST_UPN}'"), vec![GUEST]),
        (
            "userPrincipalName eq 'BOB@CONTOSO.ONMICROSOFT.COM'",
            vec![BOB],
        ),
        ("employeeId in ('E1001', 'E3001')", vec![ALICE, DOLLAR]),
        (
            "employeeId eq 'E1001' or employeeId eq 'E1002'",
            vec![ALICE, BOB],
        ),
        ("employeeId eq 'E9999'", vec![]),
    ];
    for (filter, want) in cases {
        let resp = users_query(&c, &srv, &token, filter, "id,employeeId").await;
        assert_eq!(resp.status(), 200, "{filter}");
        assert_eq!(ids(&json_of(resp).await), want, "{filter}");
    }
    // %20 instead of + in the query, and no $select: default properties (no employeeId).
    let url = format!(
        "{}?$filter=employeeId%20eq%20'E1001'",
        srv.graph_url("/users")
    );
    let resp = c.get(url).bearer_auth(&token).send().await.unwrap();
    let v = json_of(resp).await;
    assert_eq!(v["value"][0]["id"], ALICE);
    assert_eq!(v["value"][0]["displayName"], "Alice");
    assert!(v["value"][0].get("employeeId").is_none());

    let resp = users_query(&c, &srv, &token, "jobTitle eq 'x'", "id").await;
    graph_error_of(resp, 400, codes::UNSUPPORTED_QUERY).await;
    let resp = users_query(&c, &srv, &token, "employeeId eq 'E1001'", "id,shoeSize").await;
    graph_error_of(resp, 400, codes::BAD_REQUEST).await;
}

// ---------------------------------------------------------------------------------------------
// JSON batching
// ---------------------------------------------------------------------------------------------

async fn post_batch(c: &Client, srv: &GraphServer, token: &str, body: &Value) -> Response {
    c.post(srv.graph_url("/$batch"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn by_id<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no response {id} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_of_three_items_upload_metadata_and_value() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = secret_token(&srv, &c).await;
    let jpeg = test_jpeg(120, 120);
    let body = json!({ "requests": [
        { "id": "1", "method": "PUT", "url": format!("/users/{ALICE}/photo/$value"),
          "headers": { "Content-Type": "image/jpeg" }, "body": STANDARD.encode(&jpeg) },
        { "id": "2", "method": "GET", "url": format!("/users/{ALICE}/photo"), "dependsOn": ["1"] },
        { "id": "3", "method": "GET", "url": format!("users/{ALICE}/photo/$value"), "dependsOn": ["2"] },
    ]});
    let resp = post_batch(&c, &srv, &token, &body).await;
    assert_eq!(resp.status(), 200);
    let envelope_id = header(&resp, "request-id").unwrap();
    let v = json_of(resp).await;
    assert_eq!(v["responses"].as_array().unwrap().len(), 3);
    assert_eq!(by_id(&v, "1")["status"], 200);
    let meta = by_id(&v, "2");
    assert_eq!(meta["status"], 200);
    let etag = srv.user(ALICE).unwrap().photo_etag.unwrap();
    assert_eq!(meta["body"]["@odata.mediaEtag"], etag.as_str());
    let value = by_id(&v, "3");
    assert_eq!(value["status"], 200);
    assert_eq!(value["headers"]["Content-Type"], "image/jpeg");
    assert_eq!(
        STANDARD.decode(value["body"].as_str().unwrap()).unwrap(),
        jpeg
    );

    let recs = srv.records();
    let items: Vec<&RequestRecord> = recs
        .iter()
        .filter(|r| matches!(&r.kind, RequestKind::BatchItem { batch_request_id, .. } if *batch_request_id == envelope_id))
        .collect();
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|r| r.user_id.as_deref() == Some(ALICE)));
    assert_eq!(items[0].request_body_len, jpeg.len());
    assert_eq!(
        recs.iter().filter(|r| r.kind == RequestKind::Batch).count(),
        1
    );

    // URL-safe unpadded base64 is accepted too.
    let png = test_png(50, 50);
    let body = json!({ "requests": [
        { "id": "a", "method": "PATCH", "url": format!("/users/{BOB}/photo/$value"),
          "headers": { "content-type": "image/png" }, "body": URL_SAFE_NO_PAD.encode(&png) },
    ]});
    let v = json_of(post_batch(&c, &srv, &token, &body).await).await;
    assert_eq!(by_id(&v, "a")["status"], 200);
    assert_eq!(srv.user(BOB).unwrap().photo.unwrap(), png);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_items_get_their_own_429_and_424() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = secret_token(&srv, &c).await;
    srv.inject_failures([Failure::TooManyRequests(RetryAfter::Seconds(7))]);
    let body = json!({ "requests": [
        { "id": "a", "method": "GET", "url": format!("/users/{ALICE}") },
        { "id": "b", "method": "GET", "url": format!("/users/{BOB}"), "dependsOn": ["a"] },
    ]});
    let resp = post_batch(&c, &srv, &token, &body).await;
    assert_eq!(resp.status(), 200);
    let v = json_of(resp).await;
    let a = by_id(&v, "a");
    assert_eq!(a["status"], 429);
    assert_eq!(a["headers"]["Retry-After"], "7");
    assert_eq!(a["body"]["error"]["code"], codes::TOO_MANY_REQUESTS);
    let b = by_id(&v, "b");
    assert_eq!(b["status"], 424);
    assert_eq!(b["body"]["error"]["code"], codes::FAILED_DEPENDENCY);

    // Every 3rd operation throttled: operations 2, 3 and 4 are the three parallel items, so
    // exactly one of them (whichever runs third) gets 429.
    srv.set_throttle(Some(Throttle::every(
        3,
        Failure::TooManyRequests(RetryAfter::Seconds(3)),
    )));
    assert_eq!(
        srv.operation_count(),
        1,
        "item a was operation 1; b never ran"
    );
    let body = json!({ "requests": [
        { "id": "1", "method": "GET", "url": format!("/users/{ALICE}") },
        { "id": "2", "method": "GET", "url": format!("/users/{BOB}") },
        { "id": "3", "method": "GET", "url": format!("/users/{GUEST}") },
    ]});
    let v = json_of(post_batch(&c, &srv, &token, &body).await).await;
    let statuses: Vec<u64> = ["1", "2", "3"]
        .iter()
        .map(|id| by_id(&v, id)["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    let throttled = v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == 429)
        .unwrap();
    assert_eq!(throttled["headers"]["Retry-After"], "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_over_20_and_malformed_batches_are_rejected() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = secret_token(&srv, &c).await;
    let items = |n: usize| -> Value {
        json!({ "requests": (0..n).map(|i| json!({
            "id": i.to_string(), "method": "GET", "url": format!("/users/{ALICE}")
        })).collect::<Vec<_>>() })
    };
    let resp = post_batch(&c, &srv, &token, &items(21)).await;
    let v = graph_error_of(resp, 400, codes::BAD_REQUEST).await;
    assert_eq!(
        v["error"]["message"],
        "Number of requests inside batch exceeds the limit."
    );
    assert_eq!(srv.operation_count(), 0, "no item of a refused batch runs");
    let resp = post_batch(&c, &srv, &token, &items(20)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        json_of(resp).await["responses"].as_array().unwrap().len(),
        20
    );
    assert_eq!(srv.operation_count(), 20);

    let no_type = json!({ "requests": [
        { "id": "1", "method": "PUT", "url": format!("/users/{ALICE}/photo/$value"), "body": "AAAA" },
    ]});
    let dup = json!({ "requests": [
        { "id": "x", "method": "GET", "url": "/users" },
        { "id": "X", "method": "GET", "url": "/users" },
    ]});
    let bad_dep = json!({ "requests": [
        { "id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"] },
    ]});
    for body in [
        no_type,
        dup,
        bad_dep,
        json!({ "requests": [] }),
        json!({ "nope": 1 }),
    ] {
        let resp = post_batch(&c, &srv, &token, &body).await;
        graph_error_of(resp, 400, codes::BAD_REQUEST).await;
    }
    let resp = c
        .post(srv.graph_url("/$batch"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    graph_error_of(resp, 400, codes::BAD_REQUEST).await;
    assert_eq!(srv.operation_count(), 20);
}

// ---------------------------------------------------------------------------------------------
// Concurrency and throttling
// ---------------------------------------------------------------------------------------------

async fn fire_concurrently(
    srv: &GraphServer,
    token: &str,
    n: usize,
) -> Vec<(u16, Option<String>, Value)> {
    let c = client();
    let url = srv.graph_url(&format!("/users/{ALICE}"));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (c, url, token) = (c.clone(), url.clone(), token.to_string());
        set.spawn(async move {
            let resp = c.get(url).bearer_auth(token).send().await.unwrap();
            let status = resp.status().as_u16();
            let ra = header(&resp, "retry-after");
            (status, ra, json_of(resp).await)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_refuses_the_fifth_concurrent_request() {
    let srv = start(GraphServerConfig {
        latency: Duration::from_millis(500),
        ..Default::default()
    })
    .await;
    let token = srv.mint_token(DEFAULT_CLIENT_ID);
    let results = fire_concurrently(&srv, &token, 10).await;
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let refused: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(ok + refused.len(), 10, "{results:?}");
    assert!(
        !refused.is_empty(),
        "10 concurrent requests and a limit of 4: some must be refused"
    );
    assert!(ok >= 4, "the first 4 are admitted: {ok}");
    for (_, ra, body) in &refused {
        assert_eq!(ra.as_deref(), Some("1"));
        assert_eq!(body["error"]["code"], codes::TOO_MANY_REQUESTS);
        assert_eq!(body["error"]["innerError"]["status"], "429");
    }
    let recs = srv.operation_records();
    let admitted: Vec<RequestRecord> = recs
        .iter()
        .filter(|r| r.throttled.is_none())
        .cloned()
        .collect();
    assert_eq!(admitted.len(), ok);
    assert!(recs
        .iter()
        .filter(|r| r.status == 429)
        .all(|r| r.throttled == Some(ThrottleCause::Concurrency)));
    // Measured from the records alone, independently of the fake's own counters.
    let overlap = max_overlap(&admitted);
    assert!(overlap <= 4, "admitted overlap {overlap}");
    assert!(
        overlap >= 2,
        "the admitted requests really ran concurrently: {overlap}"
    );
    assert!(admitted
        .iter()
        .all(|r| r.duration() >= Duration::from_millis(500)));
    assert!(srv.max_admitted_in_flight() <= 4);
    assert!(
        srv.max_in_flight() > 4,
        "arrivals beyond the limit are counted"
    );

    // A client that stays at the limit is never refused.
    srv.clear_records();
    srv.reset_max_in_flight();
    let results = fire_concurrently(&srv, &token, 4).await;
    assert!(results.iter().all(|r| r.0 == 200), "{results:?}");
    assert!(srv.max_in_flight() <= 4);
    assert!(max_overlap(&srv.operation_records()) >= 2);
}

async fn get_alice(c: &Client, srv: &GraphServer, token: &str) -> Response {
    c.get(srv.graph_url(&format!("/users/{ALICE}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nth_request_gets_429_with_retry_after_seconds() {
    let srv = start(GraphServerConfig {
        throttle: Some(Throttle::every(
            3,
            Failure::TooManyRequests(RetryAfter::Seconds(2)),
        )),
        ..Default::default()
    })
    .await;
    let c = client();
    let token = srv.mint_token(DEFAULT_CLIENT_ID);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = get_alice(&c, &srv, &token).await;
        let status = resp.status().as_u16();
        if status == 429 {
            assert_eq!(header(&resp, "retry-after").as_deref(), Some("2"));
            let v = graph_error_of(resp, 429, codes::TOO_MANY_REQUESTS).await;
            assert_eq!(v["error"]["message"], "Please retry again later.");
            assert_eq!(v["error"]["innerError"]["code"], "429");
        } else {
            assert!(header(&resp, "retry-after").is_none());
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429]);
    let throttled: Vec<Option<ThrottleCause>> = srv
        .operation_records()
        .iter()
        .map(|r| r.throttled)
        .collect();
    let e = Some(ThrottleCause::EveryNth);
    assert_eq!(throttled, [None, None, e, None, None, e]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_http_date_absent_503_and_504_forms() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = srv.mint_token(DEFAULT_CLIENT_ID);
    let every = |f: Failure| Some(Throttle::every(1, f));

    srv.set_throttle(every(Failure::TooManyRequests(RetryAfter::HttpDate(5))));
    let before = SystemTime::now();
    let resp = get_alice(&c, &srv, &token).await;
    let ra = header(&resp, "retry-after").expect("Retry-After");
    assert!(!ra.chars().all(|ch| ch.is_ascii_digit()), "{ra}");
    let at = httpdate::parse_http_date(&ra).expect("an HTTP-date");
    let ahead = at.duration_since(before).expect("in the future");
    assert!(
        ahead >= Duration::from_secs(5) && ahead <= Duration::from_secs(7),
        "{ahead:?}"
    );
    graph_error_of(resp, 429, codes::TOO_MANY_REQUESTS).await;

    srv.set_throttle(every(Failure::TooManyRequests(RetryAfter::Absent)));
    let resp = get_alice(&c, &srv, &token).await;
    assert!(header(&resp, "retry-after").is_none());
    graph_error_of(resp, 429, codes::TOO_MANY_REQUESTS).await;

    srv.set_throttle(every(Failure::ServiceUnavailable(RetryAfter::Seconds(3))));
    let resp = get_alice(&c, &srv, &token).await;
    assert_eq!(header(&resp, "retry-after").as_deref(), Some("3"));
    graph_error_of(resp, 503, codes::SERVICE_UNAVAILABLE).await;

    srv.set_throttle(every(Failure::ServiceUnavailable(RetryAfter::Absent)));
    let resp = get_alice(&c, &srv, &token).await;
    assert!(header(&resp, "retry-after").is_none());
    graph_error_of(resp, 503, codes::SERVICE_UNAVAILABLE).await;

    srv.set_throttle(every(Failure::GatewayTimeout));
    graph_error_of(
        get_alice(&c, &srv, &token).await,
        504,
        codes::GATEWAY_TIMEOUT,
    )
    .await;

    srv.set_throttle(None);
    srv.inject_failures([Failure::InternalServerError]);
    graph_error_of(
        get_alice(&c, &srv, &token).await,
        500,
        codes::INTERNAL_SERVER_ERROR,
    )
    .await;
    assert_eq!(get_alice(&c, &srv, &token).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_violations_are_detected_per_user() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = srv.mint_token(DEFAULT_CLIENT_ID);

    // Retrying at once is a violation.
    srv.inject_failures([Failure::TooManyRequests(RetryAfter::Seconds(1))]);
    assert_eq!(get_alice(&c, &srv, &token).await.status(), 429);
    assert_eq!(get_alice(&c, &srv, &token).await.status(), 200);
    let v = srv.retry_after_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].retry.user_id.as_deref(), Some(ALICE));
    assert_eq!(v[0].throttled.throttled, Some(ThrottleCause::Injected));

    // Waiting Retry-After is not; another user in between is not either.
    srv.clear_records();
    srv.inject_failures([Failure::TooManyRequests(RetryAfter::Seconds(1))]);
    assert_eq!(get_alice(&c, &srv, &token).await.status(), 429);
    let resp = c
        .get(srv.graph_url(&format!("/users/{BOB}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(get_alice(&c, &srv, &token).await.status(), 200);
    assert!(srv.retry_after_violations().is_empty());

    // The HTTP-date form: waiting until the date is fine.
    srv.clear_records();
    srv.inject_failures([Failure::TooManyRequests(RetryAfter::HttpDate(0))]);
    let resp = get_alice(&c, &srv, &token).await;
    let at = httpdate::parse_http_date(&header(&resp, "retry-after").unwrap()).unwrap();
    if let Ok(wait) = at.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(20)).await;
    }
    assert_eq!(get_alice(&c, &srv, &token).await.status(), 200);
    assert!(srv.retry_after_violations().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Records, correlation headers, permissions, other knobs
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_records_hold_what_tests_assert_on() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = secret_token(&srv, &c).await;
    let jpeg = test_jpeg(96, 96);
    let crid = "3b2a1c0d-9e8f-4a7b-8c6d-5e4f3a2b1c0d";
    let started = Instant::now();
    let resp = c
        .put(srv.graph_url(&format!("/users/{ALICE}/photo/$value")))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .header("client-request-id", crid)
        .body(jpeg.clone())
        .send()
        .await
        .unwrap();
    let put_rid = header(&resp, "request-id").unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c
        .get(srv.graph_url(&format!("/users/{ALICE}/photo/$value")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let recs = srv.records();
    assert_eq!(recs.len(), 3);
    assert!(recs.windows(2).all(|w| w[0].seq < w[1].seq));
    let tok = &recs[0];
    assert_eq!(tok.kind, RequestKind::Token);
    assert_eq!(tok.method, "POST");
    assert_eq!(tok.path, format!("/{DEFAULT_TENANT_ID}/oauth2/v2.0/token"));
    assert_eq!(tok.app_id.as_deref(), Some(DEFAULT_CLIENT_ID));
    assert!(!tok.authorization_present);
    let put = &recs[1];
    assert_eq!(put.kind, RequestKind::Graph);
    assert_eq!((put.method.as_str(), put.status), ("PUT", 200));
    assert_eq!(put.path, format!("/v1.0/users/{ALICE}/photo/$value"));
    assert!(put.authorization_present);
    assert_eq!(put.client_request_id.as_deref(), Some(crid));
    assert_eq!(put.header("Client-Request-Id"), Some(crid));
    assert_eq!(put.request_id, put_rid);
    assert_eq!(put.user_id.as_deref(), Some(ALICE));
    assert_eq!(put.app_id.as_deref(), Some(DEFAULT_CLIENT_ID));
    assert_eq!(put.request_body_len, jpeg.len());
    assert_eq!(put.response_body_len, 0);
    assert_eq!(put.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(put.detected_image, Some("image/jpeg"));
    assert_eq!(put.throttled, None);
    assert_eq!(put.in_flight_at_arrival, Some(1));
    assert!(put.received_at >= started && put.received_at <= put.answered_at);
    let get = &recs[2];
    assert_eq!(get.response_body_len, jpeg.len());
    assert_eq!(get.client_request_id, None);
    assert!(put.answered_at <= get.received_at);
    assert_eq!(srv.token_request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_fresh_request_id_and_echoes_client_request_id() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = secret_token(&srv, &c).await;
    let mut seen = Vec::new();
    for i in 0..3 {
        let crid = format!("00000000-0000-4000-8000-00000000000{i}");
        let resp = get_alice(&c, &srv, &token).await;
        let rid = header(&resp, "request-id").unwrap();
        // Without client-request-id, it equals request-id.
        assert_eq!(
            header(&resp, "client-request-id").as_deref(),
            Some(rid.as_str())
        );
        assert!(header(&resp, "x-ms-ags-diagnostic").is_some());
        seen.push(rid);
        let resp = c
            .get(srv.graph_url("/users/nobody"))
            .bearer_auth(&token)
            .header("client-request-id", &crid)
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&resp, "client-request-id").as_deref(),
            Some(crid.as_str())
        );
        seen.push(header(&resp, "request-id").unwrap());
    }
    assert!(seen.iter().all(|r| is_guid(r)));
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_roles_are_enforced() {
    let reader = "aa11bb22-cc33-4d44-8e55-ff6677889900";
    let photo_only = "bb22cc33-dd44-4e55-9f66-007788990011";
    let srv = start(
        GraphServerConfig::default()
            .with_app(AppRegistration::with_secret(reader, "s1").roles(&["User.Read.All"]))
            .with_app(
                AppRegistration::with_secret(photo_only, "s2")
                    .roles(&["ProfilePhoto.ReadWrite.All"]),
            ),
    )
    .await;
    let c = client();
    let jpeg = test_jpeg(64, 64);
    let reader_token = srv.mint_token(reader);
    let resp = put_photo(&c, &srv, &reader_token, ALICE, jpeg.clone()).await;
    graph_error_of(resp, 403, codes::ACCESS_DENIED).await;
    let resp = users_query(&c, &srv, &reader_token, "employeeId eq 'E1001'", "id").await;
    assert_eq!(resp.status(), 200);

    let photo_token = srv.mint_token(photo_only);
    assert_eq!(
        put_photo(&c, &srv, &photo_token, ALICE, jpeg.clone())
            .await
            .status(),
        200
    );
    let resp = users_query(&c, &srv, &photo_token, "employeeId eq 'E1001'", "id").await;
    graph_error_of(resp, 403, codes::AUTHORIZATION_REQUEST_DENIED).await;

    srv.configure(|cfg| cfg.enforce_roles = false);
    assert_eq!(
        put_photo(&c, &srv, &reader_token, ALICE, jpeg)
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_and_hybrid_knobs() {
    let srv = start(GraphServerConfig {
        legacy_placeholder: true,
        stale_metadata_reads: 2,
        min_photo_width: Some(48),
        strict_content_type: true,
        ..Default::default()
    })
    .await;
    let c = client();
    let token = srv.mint_token(DEFAULT_CLIENT_ID);
    // Legacy 1x1 placeholder.
    let m = metadata(&c, &srv, &token, BOB).await;
    assert_eq!(
        (m["id"].as_str(), m["width"].as_u64()),
        (Some("1X1"), Some(1))
    );
    assert_eq!(m["@odata.mediaEtag"], "");
    assert_eq!(m["@odata.mediaContentType"], "image/gif");
    // Too narrow, and a Content-Type that does not match (strict mode).
    let resp = put_photo(&c, &srv, &token, BOB, test_jpeg(23, 23)).await;
    graph_error_of(resp, 400, codes::WIDTH_TOO_SMALL).await;
    let resp = put_photo(&c, &srv, &token, BOB, test_png(64, 64)).await;
    graph_error_of(resp, 400, codes::BAD_REQUEST).await;
    // Read-your-write delay: two stale reads, then the new etag.
    assert_eq!(
        put_photo(&c, &srv, &token, BOB, test_jpeg(64, 64))
            .await
            .status(),
        200
    );
    let etag = srv.user(BOB).unwrap().photo_etag.unwrap();
    for _ in 0..2 {
        assert_eq!(metadata(&c, &srv, &token, BOB).await["id"], "1X1");
    }
    assert_eq!(
        metadata(&c, &srv, &token, BOB).await["@odata.mediaEtag"],
        etag.as_str()
    );
    // DELETE before Nov 2023, and hybrid onPremises photo source.
    srv.configure(|cfg| cfg.delete_not_supported = true);
    let resp = c
        .delete(srv.graph_url(&format!("/users/{BOB}/photo/$value")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    graph_error_of(resp, 405, codes::METHOD_NOT_ALLOWED).await;
    srv.configure(|cfg| cfg.cloud_updates_disabled = true);
    let resp = put_photo(&c, &srv, &token, BOB, test_jpeg(64, 64)).await;
    graph_error_of(resp, 403, codes::ACCESS_DENIED).await;
    assert_eq!(srv.user(BOB).unwrap().uploads, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_and_unknown_segments_are_bad_requests_and_drop_stops_the_server() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = srv.mint_token(DEFAULT_CLIENT_ID);
    for path in [
        "/me/photo",
        "/groups/x/photo",
        &format!("/users/{ALICE}/manager"),
    ] {
        let resp = c
            .get(srv.graph_url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        graph_error_of(resp, 400, codes::BAD_REQUEST).await;
    }
    let resp = c
        .post(srv.graph_url(&format!("/users/{ALICE}/photo/$value")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    graph_error_of(resp, 405, codes::METHOD_NOT_ALLOWED).await;

    let addr = srv.addr();
    drop(srv);
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the listener is closed after drop");
}

/// The per-user deny knob: writes and deletes of the named users' photos get 403 with the
/// configured code (by id or UPN, case-insensitive); reads and other users are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photo_write_denied_refuses_only_the_named_users() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = srv.mint_token(DEFAULT_CLIENT_ID);
    srv.configure(|cfg| cfg.photo_write_denied = vec![BOB.to_uppercase()]);
    let resp = put_photo(&c, &srv, &token, BOB, test_jpeg(64, 64)).await;
    graph_error_of(resp, 403, codes::ACCESS_DENIED).await;
    let resp = c
        .delete(srv.graph_url(&format!("/users/{BOB}/photo/$value")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    graph_error_of(resp, 403, codes::ACCESS_DENIED).await;
    assert_eq!(srv.user(BOB).unwrap().uploads, 0);
    let resp = put_photo(&c, &srv, &token, ALICE, test_jpeg(64, 64)).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(srv.user(ALICE).unwrap().uploads, 1);
    srv.configure(|cfg| cfg.denied_code = codes::AUTHORIZATION_REQUEST_DENIED.into());
    let resp = put_photo(&c, &srv, &token, BOB, test_jpeg(64, 64)).await;
    graph_error_of(resp, 403, codes::AUTHORIZATION_REQUEST_DENIED).await;
}

/// The claims of a JWT access token, after checking its RS256 signature with the fake's
/// token signer (independently of any client code).
fn verified_claims(token: &str) -> Value {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["x5t"], token_signer().x5t_sha1.as_str());
    let key = rsa::PublicKey::from_public_key_pem(&token_signer().public_key_pem).unwrap();
    let sig =
        rsa::pkcs1v15::Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice())
            .unwrap();
    rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(key)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("the token's signature verifies with the token signer's key");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

/// Tokens are RS256 JWTs with Entra's app-only claims and the app's roles; an app with no
/// roles gets no `roles` claim; `opaque_tokens` issues non-JWT tokens; every kind works on
/// Graph.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_signed_jwts_with_the_apps_roles() {
    let c = client();
    let srv = start(GraphServerConfig::default()).await;
    let token = secret_token(&srv, &c).await;
    let claims = verified_claims(&token);
    assert_eq!(claims["aud"], GRAPH_RESOURCE);
    assert_eq!(claims["appid"], DEFAULT_CLIENT_ID);
    assert_eq!(claims["tid"], DEFAULT_TENANT_ID);
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(
        claims["iss"],
        format!("https://sts.windows.net/{DEFAULT_TENANT_ID}/")
    );
    assert_eq!(claims["roles"], json!(DEFAULT_APP_ROLES));
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 3599);
    let me = c
        .get(srv.graph_url(&format!("/users/{ALICE}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // Minted tokens are JWTs too, each one its own.
    let minted = srv.mint_token(DEFAULT_CLIENT_ID);
    assert_ne!(minted, token);
    assert_eq!(verified_claims(&minted)["appid"], DEFAULT_CLIENT_ID);

    let srv = start(GraphServerConfig::default().with_app_roles(&["User.ReadWrite.All"])).await;
    let claims = verified_claims(&secret_token(&srv, &c).await);
    assert_eq!(claims["roles"], json!(["User.ReadWrite.All"]));
    let srv = start(GraphServerConfig::default().with_app_roles(&[])).await;
    let claims = verified_claims(&secret_token(&srv, &c).await);
    assert!(claims.get("roles").is_none(), "{claims}");

    let srv = start(GraphServerConfig::default().with_opaque_tokens()).await;
    let token = secret_token(&srv, &c).await;
    assert!(
        token.starts_with("fakegraph.") && token.split('.').count() == 2,
        "{token}"
    );
    let me = c
        .get(srv.graph_url(&format!("/users/{ALICE}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photo_metadata_reports_the_stored_photos_real_size() {
    let srv = start(GraphServerConfig::default()).await;
    let c = client();
    let token = secret_token(&srv, &c).await;
    // An AD thumbnail as Entra Connect copies it, then a landscape photo another client set.
    for (w, h) in [(96, 96), (640, 480), (648, 648)] {
        srv.set_photo(ALICE, test_jpeg(w, h)).unwrap();
        let m = metadata(&c, &srv, &token, ALICE).await;
        assert_eq!(
            (m["width"].as_u64(), m["height"].as_u64()),
            (Some(w as u64), Some(h as u64))
        );
        assert_eq!(m["id"], format!("{w}X{h}"));
    }
    // An upload is re-encoded: the size reported is the stored (re-encoded) image's.
    let resp = put_photo(&c, &srv, &token, ALICE, test_jpeg(500, 500)).await;
    assert_eq!(resp.status(), 200);
    let m = metadata(&c, &srv, &token, ALICE).await;
    assert_eq!(
        (m["width"].as_u64(), m["height"].as_u64()),
        (Some(500), Some(500))
    );
}
