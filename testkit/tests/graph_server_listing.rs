//! The fake's listing and hybrid additions, checked with a plain HTTP client: users in pages
//! (`$top`, the configured page size, `@odata.nextLink`), `$select` with
//! `onPremisesSyncEnabled`, re-encoded uploads, and `photoUpdateSettings`.

use reqwest::Client;
use serde_json::Value;
use userphoto_testkit::graph_server::*;

fn client() -> Client {
    Client::builder().no_proxy().build().expect("client")
}

fn seeds(n: usize) -> Vec<UserSeed> {
    (0..n)
        .map(|i| {
            UserSeed::new(
                &format!("00000000-0000-4000-8000-{i:012}"),
                &format!("user{i}@contoso.onmicrosoft.com"),
            )
            .on_premises_sync_enabled(match i % 3 {
                0 => Some(true),
                1 => Some(false),
                _ => None,
            })
        })
        .collect()
}

async fn get(c: &Client, url: &str, token: &str) -> (u16, Value) {
    let r = c.get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn users_come_in_pages_with_select() {
    let srv = GraphServer::start(
        GraphServerConfig::default()
            .with_users(seeds(7))
            .with_page_size(3),
    )
    .await;
    let token = srv.mint_token(DEFAULT_CLIENT_ID);
    let c = client();
    let mut url = srv.graph_url("/users?$select=userPrincipalName,onPremisesSyncEnabled");
    let mut pages = Vec::new();
    let mut seen = Vec::new();
    loop {
        let (status, v) = get(&c, &url, &token).await;
        assert_eq!(status, 200, "{v}");
        for u in v["value"].as_array().unwrap() {
            let o = u.as_object().unwrap();
            let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
            keys.sort();
            assert_eq!(keys, ["id", "onPremisesSyncEnabled", "userPrincipalName"]);
            seen.push((
                o["userPrincipalName"].as_str().unwrap().to_owned(),
                o["onPremisesSyncEnabled"].clone(),
            ));
        }
        pages.push(v["value"].as_array().unwrap().len());
        match v["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&srv.graph_url("/users?")), "{next}");
                assert!(
                    next.contains("%24select") || next.contains("$select"),
                    "{next}"
                );
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages, [3, 3, 1]);
    assert_eq!(seen.len(), 7);
    assert_eq!(seen[0].1, Value::Bool(true));
    assert_eq!(seen[1].1, Value::Bool(false));
    assert_eq!(seen[2].1, Value::Null);
    // Not selected: not shown.
    let (_, v) = get(&c, &srv.graph_url("/users?$top=999"), &token).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 7);
    assert!(v.get("@odata.nextLink").is_none());
    assert!(v["value"][0].get("onPremisesSyncEnabled").is_none());
    // `$top` wins over the page size; out of range and forged tokens are refused.
    let (_, v) = get(&c, &srv.graph_url("/users?$top=5"), &token).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 5);
    assert_eq!(
        get(&c, &srv.graph_url("/users?$top=0"), &token).await.0,
        400
    );
    assert_eq!(
        get(&c, &srv.graph_url("/users?$top=1000"), &token).await.0,
        400
    );
    assert_eq!(
        get(&c, &srv.graph_url("/users?$skiptoken=abc"), &token)
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn uploads_are_reencoded_when_asked() {
    let user = UserSeed::new("00000000-0000-4000-8000-000000000001", "a@contoso.com");
    for reencode in [false, true] {
        let srv = GraphServer::start(
            GraphServerConfig::default()
                .with_user(user.clone())
                .with_reencode(reencode),
        )
        .await;
        let token = srv.mint_token(DEFAULT_CLIENT_ID);
        let c = client();
        let jpeg = test_jpeg(120, 90);
        let r = c
            .put(srv.graph_url("/users/a@contoso.com/photo/$value"))
            .bearer_auth(&token)
            .header("content-type", "image/jpeg")
            .body(jpeg.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let back = c
            .get(srv.graph_url("/users/a@contoso.com/photo/$value"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(back.as_ref() == jpeg.as_slice(), !reencode);
        assert_eq!(detect_image(&back), Some("image/jpeg"));
        assert_eq!(image_size(&back), Some((120, 90)), "the same picture");
    }
}

#[tokio::test]
async fn photo_update_settings() {
    let url =
        |srv: &GraphServer| format!("{}/beta/admin/people/photoUpdateSettings", srv.base_url());
    let srv = GraphServer::start(GraphServerConfig::default()).await;
    let token = srv.mint_token(DEFAULT_CLIENT_ID);
    let c = client();
    let (status, v) = get(&c, &url(&srv), &token).await;
    assert_eq!(status, 200);
    assert_eq!(v["source"], "cloud");
    assert_eq!(v["allowedRoles"], serde_json::json!([]));
    srv.configure(|c| {
        c.cloud_updates_disabled = true;
        c.photo_update_allowed_roles = vec!["62e90394-69f5-4237-9190-012177145e10".into()];
    });
    let (_, v) = get(&c, &url(&srv), &token).await;
    assert_eq!(v["source"], "onPremises");
    assert_eq!(v["allowedRoles"][0], "62e90394-69f5-4237-9190-012177145e10");
    srv.configure(|c| c.photo_update_settings_denied = true);
    let (status, v) = get(&c, &url(&srv), &token).await;
    assert_eq!(status, 403);
    assert_eq!(v["error"]["code"], "Authorization_RequestDenied");
}
