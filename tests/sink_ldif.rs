//! The LDIF sink: conformance, matching rules, the change file, hostile exports.

use std::path::PathBuf;

use base64::Engine as _;
use bytes::Bytes;
use userphoto::conformance::{sink_contract, SinkFixture};
use userphoto::sink::{DirectorySink, LdifSink};
use userphoto::{ErrorKind, MatchAttribute, UserKey};

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("userphoto-ldif-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

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
    let d = tempdir("conf");
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
    std::fs::remove_dir_all(&d).ok();
}

#[tokio::test]
async fn tricky_dns_round_trip_into_the_change_file() {
    let d = tempdir("dn");
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
    // The existing photo is read from the export, so it can be backed up and compared.
    let cur = sink
        .current(&UserKey::new("OBRIEN"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cur.bytes.as_deref(), Some(&old_photo[..]));
    let new_photo = Bytes::from(userphoto::normalize::testimage::gradient_jpeg(48, 48));
    for u in ["obrien", "mueller", "quoted"] {
        sink.put(&UserKey::new(u), &new_photo).await.unwrap();
    }
    sink.delete(&UserKey::new("obrien")).await.unwrap();
    // Deleting where there is no photo writes nothing.
    sink.delete(&UserKey::new("obrien")).await.unwrap();
    drop(sink);
    let text = std::fs::read_to_string(&out).unwrap();
    let records: Vec<&str> = text
        .split("\n\n")
        .filter(|r| !r.trim().is_empty())
        .collect();
    assert_eq!(records.len(), 4, "{text}");
    assert!(records[0].starts_with("dn: CN=O'Brien\\, Ann,OU=Staff,DC=contoso,DC=com\nchangetype: modify\nreplace: thumbnailPhoto\nthumbnailPhoto:: "));
    let mueller_dn = b64("CN=Müller\\, Jörg,OU=Zürich,DC=contoso,DC=com".as_bytes());
    assert!(
        records[1]
            .replace("\n ", "")
            .starts_with(&format!("dn:: {mueller_dn}\n")),
        "{}",
        records[1]
    );
    assert!(records[3].contains("delete: thumbnailPhoto\n-"));
    // The value unfolds to the photo's base64.
    let value: String = records[0]
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
        Err(_) => eprintln!("SKIPPED: ldapmodify not installed (apt install ldap-utils)"),
    }
    std::fs::remove_dir_all(&d).ok();
}

#[tokio::test]
async fn ambiguous_and_guid_matches() {
    let d = tempdir("match");
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
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn hostile_exports_give_clear_errors() {
    let d = tempdir("hostile");
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
    std::fs::remove_dir_all(&d).ok();
}
