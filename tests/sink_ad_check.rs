//! `AdSink::preflight` against the Samba AD DC of `scripts/samba-dc.sh` (skips without its
//! `USERPHOTO_AD_*` variables, fails under `USERPHOTO_REQUIRE_AD=1`): the delegated account
//! `photo-delegate` may write `thumbnailPhoto` below its OU except on the two users with a
//! deny, and the preflight names exactly those, writing nothing.

use std::time::Duration;

use userphoto::sink::{AdSink, LdapConfig, Secret};
use userphoto::ErrorKind;
use userphoto_testkit::ad::{delegate, delegated_fixture, Env};
use userphoto_testkit::need_env;

fn conn(env: &Env, base: &str, who: &str, pw: Secret) -> LdapConfig {
    LdapConfig::new(&env.ldaps_url, base)
        .ca_file(&env.ca)
        .simple_bind(who, pw)
        .connect_timeout(Duration::from_secs(60))
        .operation_timeout(Duration::from_secs(60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_the_users_the_delegate_may_not_write() {
    let env = need_env!();
    let Some(d) = delegate(&env) else { return };
    let (ou, _sams, dns) = delegated_fixture(&env, &d, "pfl", 3).await;
    let before = b"\xFF\xD8\xFF\xE0 not really a photo".to_vec();
    ou.set_photo(&dns[0], &before).await;
    let pw = || Secret::from_file(&d.pw_file).unwrap();

    // The delegated OU: the fixture's users (writable) and the two denied users.
    let sink = AdSink::builder(conn(&env, &d.ou, &d.dn, pw()))
        .build()
        .unwrap();
    let p = sink.preflight(1000).await.unwrap();
    assert!(p.base_dn.eq_ignore_ascii_case(&d.ou), "{p:?}");
    assert_eq!(p.attribute, "thumbnailPhoto");
    assert!(p.complete, "{p:?}");
    let mut denied: Vec<String> = p.not_writable.iter().map(|s| s.to_lowercase()).collect();
    denied.sort();
    let mut want: Vec<String> = d
        .denied
        .iter()
        .map(|u| format!("CN={u},{}", d.ou).to_lowercase())
        .collect();
    want.sort();
    assert_eq!(denied, want, "{p:?}");
    assert!(p.writable >= 3, "{p:?}");
    assert_eq!(p.sampled, p.writable + p.not_writable.len());
    assert!(p.can_sync() && p.reason().is_none());

    // The fixture's OU alone: everyone writable; a sample of 2 is cut at 2.
    let sink = AdSink::builder(conn(&env, &ou.dn, &d.dn, pw()))
        .build()
        .unwrap();
    let p = sink.preflight(50).await.unwrap();
    assert_eq!(
        (p.sampled, p.writable, p.not_writable.len()),
        (3, 3, 0),
        "{p:?}"
    );
    assert!(p.complete && p.protected.is_empty());
    let p = sink.preflight(2).await.unwrap();
    assert_eq!((p.sampled, p.writable), (2, 2), "{p:?}");
    assert!(!p.complete, "{p:?}");

    // One denied user as the base: nothing writable, a sync could not run.
    let one = format!("CN={},{}", d.denied[0], d.ou);
    let sink = AdSink::builder(conn(&env, &one, &d.dn, pw()))
        .build()
        .unwrap();
    let p = sink.preflight(50).await.unwrap();
    assert_eq!((p.sampled, p.writable), (1, 0), "{p:?}");
    assert!(!p.can_sync());
    assert!(
        p.reason().unwrap().contains("may not write thumbnailPhoto"),
        "{p:?}"
    );

    // Nothing was written.
    assert_eq!(ou.photo(&dns[0]).await, Some(before));
    for dn in &dns[1..] {
        assert_eq!(ou.photo(dn).await, None, "{dn}");
    }
    ou.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_sees_protected_admin_accounts_and_refuses_bad_binds_and_bases() {
    let env = need_env!();
    // The admin, on CN=Users: Administrator has adminCount=1 (and the admin may write it).
    let users = format!("CN=Users,{}", env.base_dn);
    let admin = || Secret::from_file(&env.admin_pw_file).unwrap();
    let sink = AdSink::builder(conn(&env, &users, &env.admin_dn, admin()))
        .build()
        .unwrap();
    let p = sink.preflight(1000).await.unwrap();
    assert!(
        p.protected
            .iter()
            .any(|dn| dn.eq_ignore_ascii_case(&env.admin_dn)),
        "{p:?}"
    );
    assert!(p.writable > 0 && p.can_sync(), "{p:?}");

    // A wrong password: Unauthenticated, and the password is not in the message.
    let wrong = "Wr0ng-Preflight-Password!";
    let sink = AdSink::builder(conn(&env, &users, &env.admin_dn, Secret::new(wrong)))
        .build()
        .unwrap();
    let e = sink.preflight(10).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!e.to_string().contains(wrong));

    // A base DN that does not exist: a configuration error naming it.
    let missing = format!("OU=no-such-ou-preflight,{}", env.test_ou);
    let sink = AdSink::builder(conn(&env, &missing, &env.admin_dn, admin()))
        .build()
        .unwrap();
    let e = sink.preflight(10).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.is_run_level());
    assert!(e.to_string().contains("no-such-ou-preflight"), "{e}");
}
