//! `--source graph` end to end: Microsoft 365's photos (the Graph fake, some users without a
//! photo) written into an LDIF change file matched by UPN.

mod common;

use std::process::Output;

use common::{cli, dn, tempdir};
use userphoto::normalize::testimage::photo_jpeg;
use userphoto_testkit::graph_server::*;
use userphoto_testkit::ldif::{self, Entry};

fn upn_of(i: usize) -> String {
    format!("user{i}@contoso.onmicrosoft.com")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_photos_into_an_ldif_change_file() {
    // Five users in Graph; users 1 and 3 have no photo.
    let users = (0..5).map(|i| {
        let u = UserSeed::new(&format!("00000000-0000-4000-8000-{i:012}"), &upn_of(i));
        if i % 2 == 0 {
            u.photo(photo_jpeg(300, 360, i as u32))
        } else {
            u
        }
    });
    let srv = GraphServer::start(GraphServerConfig::default().with_users(users)).await;
    let dir = tempdir("graph-source", "ldif");
    // The directory: users 0 to 3 by UPN (user 4 is only in the cloud).
    let entries: Vec<Entry> = (0..4)
        .map(|i| {
            Entry::new(&dn(&format!("user{i}")))
                .with("objectClass", "user")
                .with("sAMAccountName", format!("user{i}"))
                .with("userPrincipalName", upn_of(i))
        })
        .collect();
    std::fs::write(dir.join("export.ldif"), ldif::write_export(&entries)).unwrap();
    let mut c = cli();
    c.current_dir(&*dir)
        .env("GRAPH_TEST_SECRET", srv.client_secret().unwrap())
        .args(["sync", "--source", "graph", "--match", "upn"])
        .args(["--sink", "ldif:export.ldif", "--out", "changes.ldif"])
        .args(["--no-backup", "--report", "report.json"])
        .args([
            "--graph-url",
            &srv.base_url(),
            "--login-url",
            &srv.login_url(),
        ])
        .args([
            "--tenant",
            &srv.tenant_id(),
            "--client-id",
            &srv.client_id(),
        ])
        .args(["--client-secret-env", "GRAPH_TEST_SECRET"]);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    // User 4 is only in the cloud: unmatched in the directory, the run's one failure.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ldif: 2 written"), "{out}");
    assert!(
        out.contains("user4@contoso.onmicrosoft.com in ldif: unmatched"),
        "{out}"
    );
    let changes = std::fs::read_to_string(dir.join("changes.ldif")).unwrap();
    let mut written: Vec<String> = ldif::parse_changes(&changes)
        .into_iter()
        .map(|c| c.dn)
        .collect();
    written.sort();
    assert_eq!(written, [dn("user0"), dn("user2")], "{}", text(&o));
    // The change file applies to the export: the photos are JPEGs now in the directory.
    let applied = ldif::parse_export(&ldif::apply(
        &std::fs::read_to_string(dir.join("export.ldif")).unwrap(),
        &changes,
    ));
    for e in &applied {
        let has = !e.get("thumbnailPhoto").is_empty();
        assert_eq!(has, e.dn == dn("user0") || e.dn == dn("user2"), "{}", e.dn);
    }
    // Graph was listed in pages of 999 (paging itself: tests/source_graph.rs).
    let pages: Vec<String> = srv
        .operation_records()
        .into_iter()
        .filter(|r| r.path == "/v1.0/users")
        .map(|r| r.query.unwrap_or_default())
        .collect();
    assert_eq!(pages.len(), 1);
    assert!(pages[0].contains("$top=999"), "{pages:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert!(report.to_string().contains("user4@contoso"), "{report}");
}

#[test]
fn source_graph_names_its_missing_flags() {
    let dir = tempdir("graph-source", "flags");
    let o = cli()
        .current_dir(&*dir)
        .args([
            "sync",
            "--source",
            "graph",
            "--sink",
            "ldif:x.ldif",
            "--out",
            "c.ldif",
        ])
        .args(["--tenant", "contoso.onmicrosoft.com", "--client-id", "x"])
        .env_remove("AZURE_CLIENT_SECRET")
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--source graph"), "{err}");
    let o = cli().args(["sync", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("`graph`"));
}

/// The photo export admins script by hand: every Microsoft 365 photo into a folder, one
/// `<upn>.jpg` per user with a photo (648 px, the folder's default profile), with its
/// manifest; users without a photo get no file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_photos_exported_to_a_folder() {
    let users = (0..4).map(|i| {
        let u = UserSeed::new(&format!("00000000-0000-4000-8000-{i:012}"), &upn_of(i));
        if i != 2 {
            u.photo(photo_jpeg(700, 800, i as u32))
        } else {
            u
        }
    });
    let srv = GraphServer::start(
        GraphServerConfig::default()
            .with_users(users)
            .with_page_size(2),
    )
    .await;
    let dir = tempdir("graph-source", "folder");
    let mut c = cli();
    c.current_dir(&*dir)
        .env("GRAPH_TEST_SECRET", srv.client_secret().unwrap())
        .args(["sync", "--source", "graph", "--match", "upn"])
        .args(["--sink", "folder:export", "--no-backup"])
        .args([
            "--graph-url",
            &srv.base_url(),
            "--login-url",
            &srv.login_url(),
        ])
        .args([
            "--tenant",
            &srv.tenant_id(),
            "--client-id",
            &srv.client_id(),
        ])
        .args(["--client-secret-env", "GRAPH_TEST_SECRET"]);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut files: Vec<String> = std::fs::read_dir(dir.join("export"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = [0, 1, 3]
        .iter()
        .map(|&i| format!("{}.jpg", upn_of(i)))
        .collect();
    want.push("manifest.csv".into());
    want.sort();
    assert_eq!(files, want);
    let img = image::load_from_memory(
        &std::fs::read(dir.join("export").join(format!("{}.jpg", upn_of(0)))).unwrap(),
    )
    .unwrap();
    assert_eq!((img.width(), img.height()), (648, 648));
    let manifest = std::fs::read_to_string(dir.join("export/manifest.csv")).unwrap();
    assert!(
        manifest.starts_with("key,file,sha256,updated\n"),
        "{manifest}"
    );
    assert_eq!(manifest.lines().count(), 4, "{manifest}");
}
