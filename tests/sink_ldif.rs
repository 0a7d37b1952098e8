//! The LDIF sink: conformance, matching rules, the change file, exports as each tool writes
//! them (tests/data/ldif), hostile exports, photos read again by file offset.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use userphoto::conformance::{sink_contract, SinkFixture};
use userphoto::sink::{CurrentPhoto, DirectorySink, LdifSink};
use userphoto::{ErrorKind, MatchAttribute, UserKey};

/// A fresh folder, removed when the test ends.
fn tempdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("userphoto-ldif-{name}-"))
        .tempdir()
        .unwrap()
}

use userphoto_testkit::ldif as ldif_helper;

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// An export as `ldapsearch -LLL` writes it: folded base64, a comment, tricky DNs.
fn export(users: &[(&str, &str, Option<&[u8]>)]) -> String {
    let mut s = String::from("# extended LDIF\n#\n");
    for (dn, sam, photo) in users {
        if dn.is_ascii() {
            s.push_str(&format!("dn: {dn}\n"));
        } else {
            s.push_str(&format!("dn:: {}\n", b64(dn.as_bytes())));
        }
        s.push_str(&format!("sAMAccountName: {sam}\nmail: {sam}@contoso.com\n"));
        if let Some(p) = photo {
            let line = format!("thumbnailPhoto:: {}", b64(p));
            let (first, rest) = line.split_at(76.min(line.len()));
            s.push_str(first);
            s.push('\n');
            for chunk in rest.as_bytes().chunks(75) {
                s.push(' ');
                s.push_str(std::str::from_utf8(chunk).unwrap());
                s.push('\n');
            }
        }
        s.push('\n');
    }
    s
}

#[tokio::test]
async fn ldif_sink_conforms() {
    let tmp_dir = tempdir("conf");
    let d = tmp_dir.path();
    let names: Vec<String> = (0..10).map(|i| format!("user{i}")).collect();
    let dns: Vec<String> = (0..10)
        .map(|i| format!("CN=User {i},OU=Staff,DC=contoso,DC=com"))
        .collect();
    let users: Vec<(&str, &str, Option<&[u8]>)> = dns
        .iter()
        .zip(&names)
        .map(|(d, n)| (d.as_str(), n.as_str(), None))
        .collect();
    std::fs::write(d.join("export.ldif"), export(&users)).unwrap();
    let sink = LdifSink::open(d.join("export.ldif"), MatchAttribute::SamAccountName)
        .unwrap()
        .with_output(d.join("changes.ldif"))
        .unwrap();
    assert_eq!(sink.len(), 10);
    let fx = SinkFixture {
        users: names.iter().map(UserKey::new).collect(),
        absent: UserKey::new("nobody"),
    };
    sink_contract(&sink, &fx).await;
}

#[tokio::test]
async fn tricky_dns_round_trip_into_the_change_file() {
    let tmp_dir = tempdir("dn");
    let d = tmp_dir.path();
    let old_photo = userphoto::normalize::testimage::gradient_jpeg(40, 40);
    let users: Vec<(&str, &str, Option<&[u8]>)> = vec![
        (
            "CN=O'Brien\\, Ann,OU=Staff,DC=contoso,DC=com",
            "obrien",
            Some(&old_photo),
        ),
        (
            "CN=Müller\\, Jörg,OU=Zürich,DC=contoso,DC=com",
            "mueller",
            None,
        ),
        (
            "CN=\\\"Quoted\\\" Name,OU=Staff,DC=contoso,DC=com",
            "quoted",
            None,
        ),
    ];
    std::fs::write(d.join("export.ldif"), export(&users)).unwrap();
    let out = d.join("changes.ldif");
    let sink = LdifSink::open(d.join("export.ldif"), MatchAttribute::SamAccountName)
        .unwrap()
        .with_output(&out)
        .unwrap();
    // The existing photo is known by its hash, and read again from the export for a backup.
    let cur = sink
        .current(&UserKey::new("OBRIEN"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cur.bytes, None, "the sink keeps no photo bytes");
    assert_eq!(
        cur.content_sha256(),
        CurrentPhoto::from_bytes(Bytes::from(old_photo.clone())).content_sha256()
    );
    let old = sink.fetch(&UserKey::new("obrien")).await.unwrap();
    assert_eq!(old.as_deref(), Some(&old_photo[..]));
    let new_photo = Bytes::from(userphoto::normalize::testimage::gradient_jpeg(48, 48));
    // Written out of key order: the change file is sorted by key all the same.
    for u in ["quoted", "obrien", "mueller"] {
        sink.put(&UserKey::new(u), &new_photo).await.unwrap();
    }
    sink.delete(&UserKey::new("obrien")).await.unwrap();
    // Deleting where there is no photo writes nothing.
    sink.delete(&UserKey::new("obrien")).await.unwrap();
    // Nothing is in the change file until the sink finishes it.
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    sink.finish().await.unwrap();
    drop(sink);
    let text = std::fs::read_to_string(&out).unwrap();
    let records: Vec<&str> = text
        .split("\n\n")
        .filter(|r| !r.trim().is_empty())
        .collect();
    assert_eq!(records.len(), 4, "{text}");
    let mueller_dn = b64("CN=Müller\\, Jörg,OU=Zürich,DC=contoso,DC=com".as_bytes());
    assert!(
        records[0]
            .replace("\n ", "")
            .starts_with(&format!("dn:: {mueller_dn}\n")),
        "{}",
        records[0]
    );
    // One user's records in the order they were written: the replace, then the delete.
    assert!(records[1].starts_with("dn: CN=O'Brien\\, Ann,OU=Staff,DC=contoso,DC=com\nchangetype: modify\nreplace: thumbnailPhoto\nthumbnailPhoto:: "));
    assert!(records[2].starts_with("dn: CN=O'Brien\\, Ann,OU=Staff,DC=contoso,DC=com\n"));
    assert!(records[2].contains("delete: thumbnailPhoto\n-"));
    assert!(
        records[3].starts_with("dn: CN=\\\"Quoted\\\" Name,"),
        "{}",
        records[3]
    );
    // The value unfolds to the photo's base64.
    let value: String = records[1]
        .lines()
        .skip(3)
        .take_while(|l| *l != "-")
        .map(|l| l.trim_start_matches("thumbnailPhoto:: ").trim_start())
        .collect();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(value)
            .unwrap(),
        new_photo.to_vec()
    );
    assert!(text.lines().all(|l| l.len() <= 76));
    // OpenLDAP's own parser accepts the file as it is (`-n`: parse and show, no server).
    match std::process::Command::new("ldapmodify")
        .args(["-n", "-v", "-f"])
        .arg(&out)
        .output()
    {
        Ok(o) => {
            let shown = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success(),
                "ldapmodify -n refused the change file: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            for dn in [
                "CN=O'Brien\\, Ann,OU=Staff,DC=contoso,DC=com",
                "CN=Müller\\, Jörg,OU=Zürich,DC=contoso,DC=com",
                "CN=\\\"Quoted\\\" Name,OU=Staff,DC=contoso,DC=com",
            ] {
                assert!(
                    shown.contains(&format!("modifying entry \"{dn}\"")),
                    "ldapmodify did not see {dn}: {shown}"
                );
            }
            assert_eq!(
                shown.matches("replace thumbnailPhoto").count(),
                3,
                "{shown}"
            );
            assert_eq!(shown.matches("delete thumbnailPhoto").count(), 1, "{shown}");
        }
        Err(_) => userphoto_testkit::skip("ldapmodify not installed (apt install ldap-utils)"),
    }
}

#[tokio::test]
async fn ambiguous_and_guid_matches() {
    let tmp_dir = tempdir("match");
    let d = tmp_dir.path();
    let mut text = export(&[("CN=A,DC=x", "ann", None), ("CN=B,DC=x", "bob", None)]);
    // Two entries share one mail address.
    text.push_str("dn: CN=Ann Two,DC=x\nsAMAccountName: ann2\nmail: ann@contoso.com\n\n");
    // An entry with a binary objectGUID, as ldapsearch writes it.
    let guid = [
        0x3c, 0x2d, 0x1e, 0x0f, 0x5a, 0x4b, 0x78, 0x69, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1,
        0xf0,
    ];
    text.push_str(&format!(
        "dn: CN=Guid,DC=x\nsAMAccountName: guid\nobjectGUID:: {}\n\n",
        b64(&guid)
    ));
    std::fs::write(d.join("e.ldif"), text).unwrap();
    let by_mail = LdifSink::open(d.join("e.ldif"), MatchAttribute::Mail).unwrap();
    let e = by_mail
        .current(&UserKey::new("Ann@Contoso.com"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AmbiguousMatch);
    assert!(
        e.to_string().contains("CN=A,DC=x") && e.to_string().contains("CN=Ann Two,DC=x"),
        "{e}"
    );
    assert!(by_mail
        .current(&UserKey::new("bob@contoso.com"))
        .await
        .unwrap()
        .is_none());
    let by_guid = LdifSink::open(d.join("e.ldif"), MatchAttribute::ObjectGuid).unwrap();
    assert!(by_guid
        .current(&UserKey::new("{0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0}"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        by_guid
            .current(&UserKey::new("0f1e2d3c-0000-6978-8796-a5b4c3d2e1f0"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::UserNotFound
    );
    // Without an output file the sink is read-only.
    let e = by_mail
        .put(
            &UserKey::new("bob@contoso.com"),
            &Bytes::from_static(b"\xFF\xD8"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[test]
fn hostile_exports_give_clear_errors() {
    let tmp_dir = tempdir("hostile");
    let d = tmp_dir.path();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.ldif",
            b"dn: CN=a,DC=x\nsAMAccountName: a\nthumbnailPhoto:: /9j/4AAQSk".to_vec(),
            "bad base64",
        ),
        (
            "badb64.ldif",
            b"dn: CN=a,DC=x\nthumbnailPhoto:: @@@@\n".to_vec(),
            "bad base64",
        ),
        (
            "nodn.ldif",
            b"sAMAccountName: a\n".to_vec(),
            "must start with `dn:`",
        ),
        (
            "huge.ldif",
            {
                let mut v = b"dn: CN=a,DC=x\ndescription: ".to_vec();
                v.resize(5 << 20, b'x');
                v
            },
            "longer than",
        ),
        (
            "binary-dn.ldif",
            b"dn:: //79\nsAMAccountName: a\n".to_vec(),
            "not UTF-8",
        ),
    ];
    for (name, bytes, expect) in cases {
        std::fs::write(d.join(name), bytes).unwrap();
        let e = LdifSink::open(d.join(name), MatchAttribute::SamAccountName).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{name}: {e}");
        assert!(e.to_string().contains(expect), "{name}: {e}");
        assert!(
            e.to_string().contains(name),
            "{name}: the error names the file: {e}"
        );
    }
    let e = LdifSink::open(d.join("absent.ldif"), MatchAttribute::SamAccountName).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ldif")
        .join(name)
}

fn photo(name: &str) -> Bytes {
    Bytes::from(std::fs::read(data("photos").join(name)).unwrap())
}

fn sha(b: &Bytes) -> Option<String> {
    CurrentPhoto::from_bytes(b.clone()).content_sha256()
}

/// The users of the ldapsearch and ldifde fixtures (tests/data/ldif/make-fixtures.py):
/// key, DN, photo file.
const AD_USERS: [(&str, &str, Option<&str>); 4] = [
    (
        "ann",
        "CN=Ann Example,OU=Staff,DC=example,DC=test",
        Some("ann.jpg"),
    ),
    (
        "jmueller",
        "CN=Müller\\, Jörg,OU=Zürich,DC=example,DC=test",
        Some("joerg.jpg"),
    ),
    ("carl", "CN=Carl Nophoto,OU=Staff,DC=example,DC=test", None),
    (
        "dora",
        "CN=Dora O'Neil,OU=Staff,DC=example,DC=test",
        Some("dora.jpg"),
    ),
];

/// Opens one fixture and checks that the sink finds the users with the right photo (by
/// hash, and by bytes read again from the file), and writes changes for the right DNs.
/// `users` lists every user of the file (with their photos), unless `subset`.
async fn check_fixture(
    file: &str,
    matcher: MatchAttribute,
    attribute: &str,
    entries: usize,
    users: &[(&str, &str, Option<&str>)],
) {
    check_users(file, matcher, attribute, entries, users, false).await
}

async fn check_users(
    file: &str,
    matcher: MatchAttribute,
    attribute: &str,
    entries: usize,
    users: &[(&str, &str, Option<&str>)],
    subset: bool,
) {
    let tmp_dir = tempdir(&format!("fx-{}", file.replace('.', "-")));
    let d = tmp_dir.path();
    let out = d.join("changes.ldif");
    let sink = LdifSink::open_with_attribute(data(file), matcher, attribute)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .with_output(&out)
        .unwrap();
    assert_eq!(sink.len(), entries, "{file}: entries");
    let with_photo = users.iter().filter(|u| u.2.is_some()).count();
    if !subset {
        assert_eq!(sink.photo_count(), with_photo, "{file}: photos");
    }
    for (key, _, ph) in users {
        let k = UserKey::new(*key);
        let cur = sink
            .current(&k)
            .await
            .unwrap_or_else(|e| panic!("{file}: {key}: {e}"));
        let fetched = sink
            .fetch(&k)
            .await
            .unwrap_or_else(|e| panic!("{file}: {key}: {e}"));
        match ph {
            Some(p) => {
                let want = photo(p);
                let cur = cur.unwrap_or_else(|| panic!("{file}: {key} has a photo"));
                assert_eq!(cur.content_sha256(), sha(&want), "{file}: {key}: hash");
                assert_eq!(fetched.as_ref(), Some(&want), "{file}: {key}: bytes");
            }
            None => {
                assert!(cur.is_none(), "{file}: {key} has no photo");
                assert!(fetched.is_none(), "{file}: {key} has no photo");
            }
        }
    }
    let mut listed = sink.users_with_photos().await.unwrap();
    listed.sort();
    let mut want: Vec<UserKey> = users
        .iter()
        .filter(|u| u.2.is_some())
        .map(|u| UserKey::new(u.0))
        .collect();
    want.sort();
    if subset {
        assert!(
            want.iter().all(|k| listed.contains(k)),
            "{file}: {listed:?}"
        );
    } else {
        assert_eq!(listed, want, "{file}: users with photos");
    }
    // A new photo for everyone: the change file names each user's DN, and the sink now
    // answers (and backs up) from the change file.
    let new = photo("dora.jpg");
    for (key, _, _) in users {
        sink.put(&UserKey::new(*key), &new).await.unwrap();
        let back = sink.fetch(&UserKey::new(*key)).await.unwrap();
        assert_eq!(
            back.as_ref(),
            Some(&new),
            "{file}: {key}: read back from the changes"
        );
    }
    sink.finish().await.unwrap();
    drop(sink);
    let changes = ldif_helper::parse_changes(&std::fs::read_to_string(&out).unwrap());
    let dns: Vec<&str> = changes.iter().map(|c| c.dn.as_str()).collect();
    // In key order.
    let mut by_key: Vec<(UserKey, &str)> = users.iter().map(|u| (UserKey::new(u.0), u.1)).collect();
    by_key.sort_by(|a, b| a.0.cmp(&b.0));
    let want: Vec<&str> = by_key.iter().map(|u| u.1).collect();
    assert_eq!(dns, want, "{file}: DNs");
    for c in &changes {
        assert_eq!(c.ops[0].2, vec![new.to_vec()], "{file}: {}", c.dn);
    }
}

#[tokio::test]
async fn ldapsearch_extended_ldif_with_references_and_search_result() {
    check_fixture(
        "ldapsearch-extended.ldif",
        MatchAttribute::SamAccountName,
        "thumbnailPhoto",
        4,
        &AD_USERS,
    )
    .await;
}

#[tokio::test]
async fn ldapsearch_paged_one_search_result_per_page() {
    check_fixture(
        "ldapsearch-paged.ldif",
        MatchAttribute::SamAccountName,
        "thumbnailPhoto",
        4,
        &AD_USERS,
    )
    .await;
}

#[tokio::test]
async fn ldapsearch_dash_l_and_dash_lll() {
    for f in ["ldapsearch-L.ldif", "ldapsearch-LLL.ldif"] {
        check_fixture(
            f,
            MatchAttribute::SamAccountName,
            "thumbnailPhoto",
            4,
            &AD_USERS,
        )
        .await;
    }
    // Matching by UPN works on the same export.
    let upn: Vec<(&str, &str, Option<&str>)> = vec![
        ("ann@example.test", AD_USERS[0].1, AD_USERS[0].2),
        ("carl@example.test", AD_USERS[2].1, None),
    ];
    check_users(
        "ldapsearch-LLL.ldif",
        MatchAttribute::UserPrincipalName,
        "thumbnailPhoto",
        4,
        &upn,
        true,
    )
    .await;
}

#[tokio::test]
async fn ldifde_add_records_crlf_and_utf16() {
    for f in ["ldifde-f.ldif", "ldifde-u.ldif"] {
        check_fixture(
            f,
            MatchAttribute::SamAccountName,
            "thumbnailPhoto",
            4,
            &AD_USERS,
        )
        .await;
    }
}

#[tokio::test]
async fn openldap_content_file_with_jpeg_photo() {
    let users: Vec<(&str, &str, Option<&str>)> = vec![
        (
            "ann@example.com",
            "cn=Ann Example,ou=People,dc=example,dc=com",
            Some("ann.jpg"),
        ),
        (
            "jmueller@example.com",
            "cn=Jorg Mueller,ou=People,dc=example,dc=com",
            Some("joerg.jpg"),
        ),
        (
            "carl@example.com",
            "cn=Carl Nophoto,ou=People,dc=example,dc=com",
            None,
        ),
    ];
    check_fixture(
        "openldap-content.ldif",
        MatchAttribute::Mail,
        "jpegPhoto",
        5,
        &users,
    )
    .await;
}

#[tokio::test]
async fn bom_comment_before_version_and_binary_option() {
    check_fixture(
        "bom-comment-version.ldif",
        MatchAttribute::SamAccountName,
        "thumbnailPhoto",
        2,
        &AD_USERS[..2],
    )
    .await;
}

#[test]
fn a_change_file_is_refused_as_such() {
    let e = LdifSink::open(data("change-modify.ldif"), MatchAttribute::SamAccountName).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert!(
        e.to_string()
            .contains("change-modify.ldif:2: this is a change file, not a directory export"),
        "{e}"
    );
}

#[tokio::test]
async fn an_export_changed_after_opening_is_a_conflict_not_a_wrong_backup() {
    let tmp_dir = tempdir("changed");
    let d = tmp_dir.path();
    let export = d.join("export.ldif");
    std::fs::copy(data("ldapsearch-LLL.ldif"), &export).unwrap();
    let sink = LdifSink::open(&export, MatchAttribute::SamAccountName).unwrap();
    assert_eq!(
        sink.fetch(&UserKey::new("ann")).await.unwrap(),
        Some(photo("ann.jpg"))
    );
    // Someone exports again: the same layout, another photo for ann.
    let text = std::fs::read_to_string(&export).unwrap();
    let at = text.find("thumbnailPhoto:: /9j/").unwrap() + "thumbnailPhoto:: /9j/".len() + 40;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&export, &bytes).unwrap();
    let e = sink.fetch(&UserKey::new("ann")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("changed since it was read"), "{e}");
    // A shorter file: the remembered place is gone.
    std::fs::write(&export, b"dn: CN=x\n").unwrap();
    let e = sink.fetch(&UserKey::new("dora")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
}

#[test]
fn hostile_encodings_and_records() {
    let tmp_dir = tempdir("hostile2");
    let d = tmp_dir.path();
    let utf16 = |s: &str| -> Vec<u8> {
        let mut v = vec![0xFF, 0xFE];
        v.extend(s.encode_utf16().flat_map(|u| u.to_le_bytes()));
        v
    };
    let mut bad_surrogate = utf16("dn: CN=a,DC=x\r\nsAMAccountName: ");
    bad_surrogate.extend([0x00, 0xD8, b'x', 0x00, b'\r', 0, b'\n', 0]);
    let mut odd = utf16("dn: CN=a,DC=x\r\nsAMAccountName: a");
    odd.push(b'\r');
    let deep = {
        // A value folded one character per line until it passes the line limit.
        let mut v = b"dn: CN=a,DC=x\ndescription: x\n".to_vec();
        for _ in 0..(4 << 20) + 10 {
            v.extend_from_slice(b" y\n");
        }
        v
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "nul.ldif",
            b"dn: CN=a,DC=x\nsAMAccountName: a\0b\n".to_vec(),
            "nul.ldif:2: a NUL character",
        ),
        (
            "latin1.ldif",
            b"dn: CN=a,DC=x\ndescription: M\xfcller\n".to_vec(),
            "latin1.ldif:2: invalid UTF-8",
        ),
        ("surrogate.ldif", bad_surrogate, "surrogate.ldif:2: invalid UTF-16"),
        ("odd.ldif", odd, "odd.ldif:2: invalid UTF-16"),
        ("deep.ldif", deep, "deep.ldif:2: a folded line longer than"),
        (
            "sizelimit.ldif",
            b"# extended LDIF\n\ndn: CN=a,DC=x\nsAMAccountName: a\n\n# search result\nsearch: 2\nresult: 4 Size limit exceeded\n\n".to_vec(),
            "sizelimit.ldif:8: the export is incomplete: the search ended with `result: 4 Size limit exceeded`",
        ),
        (
            "delete.ldif",
            b"dn: CN=a,DC=x\nchangetype: delete\n\n".to_vec(),
            "delete.ldif:2: this is a change file",
        ),
        (
            "modrdn.ldif",
            b"version: 1\ndn: CN=a,DC=x\nchangetype: modrdn\nnewrdn: CN=b\ndeleteoldrdn: 1\n\n".to_vec(),
            "modrdn.ldif:3: this is a change file",
        ),
        (
            "version2.ldif",
            b"version: 2\ndn: CN=a,DC=x\n".to_vec(),
            "version2.ldif:1: LDIF version",
        ),
        (
            "late-version.ldif",
            b"dn: CN=a,DC=x\n\nversion: 1\n".to_vec(),
            "late-version.ldif:3: a record must start with `dn:`, not `version:`",
        ),
        (
            "badname.ldif",
            b"dn: CN=a,DC=x\nthumb photo:: AAAA\n".to_vec(),
            "badname.ldif:2: bad attribute name",
        ),
    ];
    for (name, bytes, expect) in cases {
        std::fs::write(d.join(name), bytes).unwrap();
        let e = LdifSink::open(d.join(name), MatchAttribute::SamAccountName).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{name}: {e}");
        assert!(e.to_string().contains(expect), "{name}: {e}");
    }
}

/// A sink that holds each put until the put of the next key (in key order) has landed, so the
/// writes finish in reverse key order whatever the engine's concurrency.
#[derive(Debug)]
struct Reversed {
    inner: LdifSink,
    keys: Vec<UserKey>,
    /// Per key: a permit once its successor's put is done.
    gates: Vec<tokio::sync::Semaphore>,
}

#[async_trait::async_trait]
impl DirectorySink for Reversed {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> userphoto::sink::SinkCapabilities {
        self.inner.capabilities()
    }
    async fn current(&self, key: &UserKey) -> userphoto::Result<Option<CurrentPhoto>> {
        self.inner.current(key).await
    }
    async fn put(&self, key: &UserKey, jpeg: &Bytes) -> userphoto::Result<Option<String>> {
        let i = self.keys.iter().position(|k| k == key).unwrap();
        if i + 1 < self.keys.len() {
            self.gates[i].acquire().await.unwrap().forget();
        }
        let r = self.inner.put(key, jpeg).await;
        if i > 0 {
            self.gates[i - 1].add_permits(1);
        }
        r
    }
    async fn delete(&self, key: &UserKey) -> userphoto::Result<()> {
        self.inner.delete(key).await
    }
    async fn finish(&self) -> userphoto::Result<()> {
        self.inner.finish().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_file_is_in_key_order_whatever_order_the_writes_finish_in() {
    use userphoto::normalize::{testimage, Profile};
    use userphoto::source::MemorySource;
    use userphoto::sync::{Engine, Status};
    let tmp_dir = tempdir("order");
    let d = tmp_dir.path();
    let keys: Vec<UserKey> = (0..12)
        .map(|i| UserKey::new(format!("user{i:02}")))
        .collect();
    let dns: Vec<String> = keys
        .iter()
        .map(|k| format!("CN={k},OU=Staff,DC=contoso,DC=com"))
        .collect();
    let users: Vec<(&str, &str, Option<&[u8]>)> = dns
        .iter()
        .zip(&keys)
        .map(|(d, k)| (d.as_str(), k.as_str(), None))
        .collect();
    std::fs::write(d.join("export.ldif"), export(&users)).unwrap();
    let mut source = MemorySource::new();
    for (i, k) in keys.iter().enumerate() {
        source = source.with_photo(k.as_str(), testimage::gradient_jpeg(120 + i as u32, 150));
    }
    let out = d.join("changes.ldif");
    let sink = Reversed {
        inner: LdifSink::open(d.join("export.ldif"), MatchAttribute::SamAccountName)
            .unwrap()
            .with_output(&out)
            .unwrap(),
        gates: keys
            .iter()
            .map(|_| tokio::sync::Semaphore::new(0))
            .collect(),
        keys: keys.clone(),
    };
    let report = Engine::new(source)
        .with_sink(sink, Profile::ad_thumbnail())
        .with_concurrency(keys.len())
        .run()
        .await
        .unwrap();
    assert!(
        report.outcomes.iter().all(|o| o.status == Status::Done),
        "{report:?}"
    );
    let changes = ldif_helper::parse_changes(&std::fs::read_to_string(&out).unwrap());
    let got: Vec<&str> = changes.iter().map(|c| c.dn.as_str()).collect();
    let want: Vec<&str> = dns.iter().map(String::as_str).collect();
    assert_eq!(
        got, want,
        "the change file follows the keys, not the order of the writes"
    );
}
