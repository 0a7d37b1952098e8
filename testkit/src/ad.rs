//! The Samba AD DC of `scripts/samba-dc.sh` for the tests that need a real Active Directory:
//! its settings (from the `USERPHOTO_AD_*` variables that `scripts/samba-dc.sh env` prints),
//! admin connections of the tests' own (through `ldap3` directly, not through the code under
//! test) and per-test OUs with uniquely named users, deleted at the end.
//!
//! Without the variables [`env()`] prints why the test skips and returns `None`, unless
//! `USERPHOTO_REQUIRE_AD=1` (CI), which turns the skip into a failure. The tests of one
//! process share the DC through [`DC`]: every [`Ou`] holds it for reading, those that count
//! the DC's update sequence numbers hold it for writing ([`Ou::exclusive`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};

use futures::StreamExt;
use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// The DC's settings: the `USERPHOTO_AD_*` variables of `scripts/samba-dc.sh env`.
#[derive(Clone, Debug)]
pub struct Env {
    pub ldaps_url: String,
    pub ldap_url: String,
    pub ca: String,
    pub base_dn: String,
    pub test_ou: String,
    pub admin_dn: String,
    pub admin_upn: String,
    pub admin_pw_file: String,
    pub reader_dn: String,
    pub reader_pw_file: String,
    pub keytab: String,
    pub krb5_config: String,
    pub realm: String,
    /// The least-privilege account of fixtures version 2, if the DC has it.
    pub delegate: Option<Delegate>,
    /// The DC's state directory (for the tests that stop and start it).
    pub samba_dir: Option<String>,
}

/// `photo-delegate`: may write thumbnailPhoto below `ou`, except on the `denied` users.
#[derive(Clone, Debug)]
pub struct Delegate {
    pub dn: String,
    pub pw_file: String,
    pub ou: String,
    pub denied: Vec<String>,
}

/// Why a test skips without the DC, and how to start it.
pub const SKIP: &str = "skipped: start the DC with scripts/samba-dc.sh start and export its env (eval \"$(scripts/samba-dc.sh env)\")";

/// The DC's settings, or `None` (with the reason printed) when they are not set; a panic
/// instead under `USERPHOTO_REQUIRE_AD=1`.
pub fn env() -> Option<Env> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let e = (|| {
        Some(Env {
            ldaps_url: get("USERPHOTO_AD_LDAPS_URL")?,
            ldap_url: get("USERPHOTO_AD_LDAP_URL")?,
            ca: get("USERPHOTO_AD_CA")?,
            base_dn: get("USERPHOTO_AD_BASE_DN")?,
            test_ou: get("USERPHOTO_AD_TEST_OU")?,
            admin_dn: get("USERPHOTO_AD_ADMIN_DN")?,
            admin_upn: get("USERPHOTO_AD_ADMIN_UPN")?,
            admin_pw_file: get("USERPHOTO_AD_ADMIN_PASSWORD_FILE")?,
            reader_dn: get("USERPHOTO_AD_READER_DN")?,
            reader_pw_file: get("USERPHOTO_AD_READER_PASSWORD_FILE")?,
            keytab: get("USERPHOTO_AD_KEYTAB")?,
            krb5_config: get("USERPHOTO_AD_KRB5_CONFIG")?,
            realm: get("USERPHOTO_AD_REALM")?,
            delegate: (|| {
                Some(Delegate {
                    dn: get("USERPHOTO_AD_DELEGATE_DN")?,
                    pw_file: get("USERPHOTO_AD_DELEGATE_PASSWORD_FILE")?,
                    ou: get("USERPHOTO_AD_DELEGATED_OU")?,
                    denied: get("USERPHOTO_AD_DENIED_USERS")?
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                })
            })(),
            samba_dir: get("USERPHOTO_AD_SAMBA_DIR"),
        })
    })();
    if e.is_none() {
        if std::env::var("USERPHOTO_REQUIRE_AD").as_deref() == Ok("1") {
            panic!("USERPHOTO_REQUIRE_AD=1 but the USERPHOTO_AD_* variables are missing: {SKIP}");
        }
        eprintln!("{SKIP}");
    }
    e
}

/// The delegated account, or why the test skips (a failure under `USERPHOTO_REQUIRE_AD=1`).
pub fn delegate(env: &Env) -> Option<Delegate> {
    if env.delegate.is_none() {
        let msg = "the DC's env has no USERPHOTO_AD_DELEGATE_* (fixtures version 2): run scripts/samba-dc.sh start again";
        if std::env::var("USERPHOTO_REQUIRE_AD").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        eprintln!("skipped: {msg}");
    }
    env.delegate.clone()
}

/// The DC's settings, or `return` from the test (which then skips, see [`env()`](crate::ad::env)).
#[macro_export]
macro_rules! need_env {
    () => {
        match $crate::ad::env() {
            Some(e) => e,
            None => return,
        }
    };
}

/// The password in `file`, as it is (the DC's password files have no line break).
pub fn password(file: &str) -> String {
    std::fs::read_to_string(file).expect("password file")
}

/// A short id unique to this test in this process and (very likely) among processes.
pub fn run_id() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let base = (t ^ ((std::process::id() as u64) << 12)) & 0xff_ffff;
    format!("{base:06x}{:x}", N.fetch_add(1, Ordering::Relaxed))
}

/// A rustls client configuration that trusts only the certificates in the PEM file `ca`.
pub fn tls(ca: &str) -> Arc<rustls::ClientConfig> {
    // (aws-lc-rs, as the library's clients use)
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(c.expect("CA cert")).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// An admin connection of the tests' own (not the code under test).
pub async fn admin(env: &Env) -> Ldap {
    let settings = LdapConnSettings::new().set_config(tls(&env.ca));
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &env.ldaps_url)
        .await
        .expect("connect to the DC");
    ldap3::drive!(conn);
    ldap.simple_bind(&env.admin_dn, &password(&env.admin_pw_file))
        .await
        .unwrap()
        .success()
        .expect("admin bind");
    ldap
}

/// A user to create: CN, sAMAccountName and more attributes.
pub struct NewUser {
    pub cn: String,
    pub sam: String,
    pub extra: Vec<(&'static str, Vec<u8>)>,
}

impl NewUser {
    pub fn new(cn: impl Into<String>, sam: impl Into<String>) -> Self {
        Self {
            cn: cn.into(),
            sam: sam.into(),
            extra: Vec::new(),
        }
    }
    pub fn with(mut self, attr: &'static str, v: impl Into<Vec<u8>>) -> Self {
        self.extra.push((attr, v.into()));
        self
    }
}

/// The DC, shared by the tests of this process: read-locked by every test, write-locked by
/// those that need nobody else to change anything while they run.
pub static DC: LazyLock<Arc<RwLock<()>>> = LazyLock::new(|| Arc::new(RwLock::new(())));

#[allow(dead_code)]
enum DcGuard {
    Shared(OwnedRwLockReadGuard<()>),
    Exclusive(OwnedRwLockWriteGuard<()>),
}

/// An OU of one test, below the tests' OU; deleted (with everything in it) on `cleanup`.
pub struct Ou {
    pub dn: String,
    pub conns: Vec<Ldap>,
    env: Env,
    // Dropped last: the OU is gone before another test may have the DC to itself.
    _dc: DcGuard,
}

impl Ou {
    pub async fn new(env: &Env, name: &str) -> Self {
        Self::with_connections(env, name, 1).await
    }

    pub async fn with_connections(env: &Env, name: &str, n: usize) -> Self {
        let guard = DcGuard::Shared(DC.clone().read_owned().await);
        Self::make(env, name, n, guard).await
    }

    /// An OU of a test that has the DC to itself (no other test of this process runs).
    pub async fn exclusive(env: &Env, name: &str) -> Self {
        Self::exclusive_with_connections(env, name, 1).await
    }

    /// The same, with `n` admin connections (for bulk work that would keep the DC's one
    /// LDAP process from answering other tests in time).
    pub async fn exclusive_with_connections(env: &Env, name: &str, n: usize) -> Self {
        let guard = DcGuard::Exclusive(DC.clone().write_owned().await);
        Self::make(env, name, n, guard).await
    }

    async fn make(env: &Env, name: &str, n: usize, guard: DcGuard) -> Self {
        Self::make_below(env, &env.test_ou, name, n, guard).await
    }

    /// An OU of one test below `parent` (the delegated OU).
    pub async fn below(env: &Env, parent: &str, name: &str) -> Self {
        let guard = DcGuard::Shared(DC.clone().read_owned().await);
        Self::make_below(env, parent, name, 1, guard).await
    }

    async fn make_below(env: &Env, parent: &str, name: &str, n: usize, guard: DcGuard) -> Self {
        let dn = format!("OU={name}-{},{parent}", run_id());
        let mut conns = Vec::new();
        for _ in 0..n {
            conns.push(admin(env).await);
        }
        let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![(
            b"objectClass".to_vec(),
            HashSet::from([b"top".to_vec(), b"organizationalUnit".to_vec()]),
        )];
        conns[0]
            .clone()
            .add(&dn, attrs)
            .await
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("create {dn}: {e}"));
        Self {
            dn,
            conns,
            env: env.clone(),
            _dc: guard,
        }
    }

    /// Makes an OU below this one; its DN.
    pub async fn sub_ou(&self, name: &str) -> String {
        let dn = format!("OU={name},{}", self.dn);
        let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![(
            b"objectClass".to_vec(),
            HashSet::from([b"top".to_vec(), b"organizationalUnit".to_vec()]),
        )];
        self.conns[0]
            .clone()
            .add(&dn, attrs)
            .await
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("create {dn}: {e}"));
        dn
    }

    /// Creates a user below `parent` (this OU or one below it); its DN.
    pub async fn add_user_in(&self, parent: &str, u: NewUser) -> String {
        let dn = format!("CN={},{parent}", ldap3::dn_escape(&u.cn));
        let mut attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
            (
                b"objectClass".to_vec(),
                ["top", "person", "organizationalPerson", "user"]
                    .iter()
                    .map(|s| s.as_bytes().to_vec())
                    .collect(),
            ),
            (
                b"sAMAccountName".to_vec(),
                HashSet::from([u.sam.into_bytes()]),
            ),
        ];
        for (a, v) in u.extra {
            attrs.push((a.as_bytes().to_vec(), HashSet::from([v])));
        }
        self.conns[0]
            .clone()
            .add(&dn, attrs)
            .await
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("create {dn}: {e}"));
        dn
    }

    pub async fn delete_entry(&self, dn: &str) {
        self.conns[0]
            .clone()
            .delete(dn)
            .await
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("delete {dn}: {e}"));
    }

    /// Renames and/or moves an entry (`new_rdn` like `CN=x`); its new DN.
    pub async fn move_entry(&self, dn: &str, new_rdn: &str, new_parent: &str) -> String {
        self.conns[0]
            .clone()
            .modifydn(dn, new_rdn, true, Some(new_parent))
            .await
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("move {dn}: {e}"));
        format!("{new_rdn},{new_parent}")
    }

    pub fn user_dn(&self, cn: &str) -> String {
        format!("CN={},{}", ldap3::dn_escape(cn), self.dn)
    }

    /// Creates the users, `inflight` adds at a time over the OU's connections; their DNs.
    pub async fn add_users(&self, users: Vec<NewUser>, inflight: usize) -> Vec<String> {
        let n = self.conns.len();
        let jobs = users.into_iter().enumerate().map(|(i, u)| {
            let mut ldap = self.conns[i % n].clone();
            let dn = self.user_dn(&u.cn);
            async move {
                let mut attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
                    (
                        b"objectClass".to_vec(),
                        ["top", "person", "organizationalPerson", "user"]
                            .iter()
                            .map(|s| s.as_bytes().to_vec())
                            .collect(),
                    ),
                    (
                        b"sAMAccountName".to_vec(),
                        HashSet::from([u.sam.into_bytes()]),
                    ),
                ];
                for (a, v) in u.extra {
                    attrs.push((a.as_bytes().to_vec(), HashSet::from([v])));
                }
                ldap.add(&dn, attrs)
                    .await
                    .unwrap()
                    .success()
                    .unwrap_or_else(|e| panic!("create {dn}: {e}"));
                dn
            }
        });
        futures::stream::iter(jobs)
            .buffered(inflight)
            .collect()
            .await
    }

    pub async fn photo(&self, dn: &str) -> Option<Vec<u8>> {
        let mut l = self.conns[0].clone();
        let (mut es, _) = l
            .search(dn, Scope::Base, "(objectClass=*)", vec!["thumbnailPhoto"])
            .await
            .unwrap()
            .success()
            .unwrap();
        let e = SearchEntry::construct(es.remove(0));
        e.bin_attrs
            .get("thumbnailPhoto")
            .and_then(|v| v.first().cloned())
            .or_else(|| {
                e.attrs
                    .get("thumbnailPhoto")
                    .and_then(|v| v.first().map(|s| s.clone().into_bytes()))
            })
    }

    pub async fn set_photo(&self, dn: &str, bytes: &[u8]) {
        let mut l = self.conns[0].clone();
        l.modify(
            dn,
            vec![Mod::Replace(
                b"thumbnailPhoto".to_vec(),
                HashSet::from([bytes.to_vec()]),
            )],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    }

    pub async fn guid(&self, dn: &str) -> String {
        let mut l = self.conns[0].clone();
        let (mut es, _) = l
            .search(dn, Scope::Base, "(objectClass=*)", vec!["objectGUID"])
            .await
            .unwrap()
            .success()
            .unwrap();
        let e = SearchEntry::construct(es.remove(0));
        let b = e
            .bin_attrs
            .get("objectGUID")
            .map(|v| v[0].clone())
            .unwrap_or_else(|| e.attrs.get("objectGUID").unwrap()[0].clone().into_bytes());
        format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}",
            b[3],
            b[2],
            b[1],
            b[0],
            b[5],
            b[4],
            b[7],
            b[6],
            b[8],
            b[9],
            b[10..]
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>()
        )
    }

    /// Deletes the OU and everything in it (best effort).
    pub async fn cleanup(self) {
        let mut l = self.conns[0].clone();
        let tree_delete = RawControl {
            ctype: "1.2.840.113556.1.4.805".into(),
            crit: true,
            val: None,
        };
        let ok = matches!(
            l.with_controls(tree_delete).delete(&self.dn).await,
            Ok(r) if r.rc == 0
        );
        if !ok {
            if let Ok(r) = l
                .search(&self.dn, Scope::OneLevel, "(objectClass=*)", vec!["1.1"])
                .await
            {
                for e in r.0 {
                    let dn = SearchEntry::construct(e).dn;
                    let _ = l.delete(&dn).await;
                }
            }
            let _ = l.delete(&self.dn).await;
        }
        let _ = &self.env;
    }
}

/// Makes `n` users in a new OU below the delegated OU, and a source with a photo for each
/// of them and for the two users the delegate may not write.
pub async fn delegated_fixture(
    env: &Env,
    d: &Delegate,
    name: &str,
    n: usize,
) -> (Ou, Vec<String>, Vec<String>) {
    let ou = Ou::below(env, &d.ou, name).await;
    let id = run_id();
    let sams: Vec<String> = (0..n).map(|i| format!("dg{id}{i}")).collect();
    let dns = ou
        .add_users(
            sams.iter()
                .map(|s| NewUser::new(s.clone(), s.clone()))
                .collect(),
            4,
        )
        .await;
    (ou, sams, dns)
}
