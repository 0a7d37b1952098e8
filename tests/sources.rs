//! Sources: the conformance suite against the memory, folder and CSV sources, and each
//! source's own rules (key extraction, conflicts, non-images, withheld rows, quoting).

use std::path::{Path, PathBuf};

use futures::StreamExt;
use userphoto::conformance::{source_contract, SourceFixture};
use userphoto::normalize::{testimage, Limits};
use userphoto::source::{CsvSource, FolderSource, KeyRule, MemorySource, PhotoRef, PhotoSource};
use userphoto::{ErrorKind, UserKey};

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("userphoto-src-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

async fn list(src: &dyn PhotoSource) -> (Vec<PhotoRef>, Vec<userphoto::Error>) {
    let items: Vec<_> = src.list().collect().await;
    let mut ok = Vec::new();
    let mut err = Vec::new();
    for i in items {
        match i {
            Ok(r) => ok.push(r),
            Err(e) => err.push(e),
        }
    }
    (ok, err)
}

#[tokio::test]
async fn memory_source_conforms() {
    let jpeg = testimage::gradient_jpeg(64, 48);
    let src = MemorySource::new()
        .with_photo("alice", jpeg.clone())
        .with_photo("Bob", jpeg)
        .with_withheld("carol")
        .with_broken("dave", "bad row");
    source_contract(
        &src,
        &SourceFixture::new(["alice", "bob"], ["carol"]).with_errors(["dave"]),
    )
    .await;
    // Through a trait object too.
    let arc: std::sync::Arc<dyn PhotoSource> = std::sync::Arc::new(MemorySource::new());
    source_contract(&arc, &SourceFixture::default()).await;
    let boxed: Box<dyn PhotoSource> = Box::new(MemorySource::new().with_withheld("erin"));
    source_contract(&boxed, &SourceFixture::new(Vec::<&str>::new(), ["erin"])).await;
}

#[tokio::test]
async fn folder_source_conforms_and_reports_conflicts_and_non_images() {
    let d = tempdir("folder");
    let jpeg = testimage::gradient_jpeg(64, 48);
    write(&d, "alice.jpg", &jpeg);
    // A PNG named .jpg and a JPEG without extension: content decides.
    write(&d, "bob.jpg", &testimage::rgba_png(40, 40));
    write(&d, "carol", &jpeg);
    // Two files for one key, in different case: a conflict, neither used.
    write(&d, "Dave.jpg", &jpeg);
    write(&d, "dave.png", &testimage::rgba_png(10, 10));
    // Not an image.
    write(&d, "erin.jpg", b"this is a text file");
    write(&d, ".hidden.jpg", &jpeg);
    write(&d, "sub/frank.jpg", &jpeg);
    let src = FolderSource::new(&d);
    source_contract(
        &src,
        &SourceFixture::new(["alice", "bob", "carol"], Vec::<&str>::new())
            .with_errors(["dave", "erin"]),
    )
    .await;
    let (_, errs) = list(&src).await;
    let kind_of = |k: &str| {
        errs.iter()
            .find(|e| e.user() == Some(&UserKey::new(k)))
            .unwrap()
            .kind()
    };
    assert_eq!(kind_of("dave"), ErrorKind::Conflict);
    assert_eq!(kind_of("erin"), ErrorKind::InvalidPhoto);
    // Recursive listing finds the sub-folder too.
    let rec = FolderSource::new(&d).recursive(true);
    let (ok, _) = list(&rec).await;
    assert!(ok.iter().any(|r| r.key == UserKey::new("frank")));
    std::fs::remove_dir_all(&d).ok();
}

#[tokio::test]
async fn folder_key_rules() {
    let d = tempdir("rules");
    let jpeg = testimage::gradient_jpeg(32, 32);
    write(&d, "photo_jdoe_2024.jpg", &jpeg);
    write(&d, "photo_ann_2023.jpg", &jpeg);
    write(&d, "README.jpg", &jpeg);
    let keys = |src: FolderSource| async move {
        let (ok, err) = list(&src).await;
        (
            ok.into_iter()
                .map(|r| r.key.to_string())
                .collect::<Vec<_>>(),
            err.len(),
        )
    };
    let re =
        FolderSource::new(&d).key_rule(KeyRule::regex(r"^photo_(?P<key>[a-z]+)_\d{4}$").unwrap());
    assert_eq!(
        keys(re).await,
        (vec!["ann".to_string(), "jdoe".to_string()], 1),
        "README does not match: one error item"
    );
    let tpl = FolderSource::new(&d).key_rule(KeyRule::template("photo_{key}_2024").unwrap());
    assert_eq!(keys(tpl).await.0, vec!["jdoe".to_string()]);
    let lower = FolderSource::new(&d).lowercase_keys(true);
    assert!(keys(lower).await.0.contains(&"readme".to_string()));
    assert!(KeyRule::template("no placeholder").is_err());
    assert!(KeyRule::regex("(unclosed").is_err());
    std::fs::remove_dir_all(&d).ok();
}

#[tokio::test]
async fn folder_fingerprint_changes_with_the_file() {
    let d = tempdir("fp");
    let p = write(&d, "alice.jpg", &testimage::gradient_jpeg(32, 32));
    let src = FolderSource::new(&d);
    let before = list(&src).await.0[0].fingerprint.clone();
    assert_eq!(before, list(&src).await.0[0].fingerprint);
    std::fs::write(&p, testimage::gradient_jpeg(40, 32)).unwrap();
    assert_ne!(before, list(&src).await.0[0].fingerprint);
    std::fs::remove_dir_all(&d).ok();
}

#[tokio::test]
async fn csv_source_conforms_with_quoting_and_withheld_rows() {
    let d = tempdir("csv");
    let jpeg = testimage::gradient_jpeg(48, 48);
    write(&d, "photos/jdoe.jpg", &jpeg);
    write(&d, "photos/ann, o'brien.png", &testimage::rgba_png(30, 30));
    write(&d, "photos/dup.jpg", &jpeg);
    let manifest = write(
        &d,
        "manifest.csv",
        "\u{feff}Key,Path,Withheld\n\
         jdoe,photos/jdoe.jpg,\n\
         \"o'brien, ann\",\"photos/ann, o'brien.png\",no\n\
         \"multi\nline\",photos/missing.jpg,\n\
         leaver,,yes\n\
         dup,photos/dup.jpg,\n\
         DUP,photos/dup.jpg,\n\
         odd,photos/jdoe.jpg,maybe\n\
         ,photos/jdoe.jpg,\n"
            .as_bytes(),
    );
    let src = CsvSource::new(&manifest);
    source_contract(
        &src,
        &SourceFixture::new(["jdoe", "o'brien, ann"], ["leaver"]).with_errors([
            "multi\nline",
            "dup",
            "odd",
        ]),
    )
    .await;
    let (_, errs) = list(&src).await;
    assert!(
        errs.iter()
            .any(|e| e.kind() == ErrorKind::InvalidData && e.user().is_none()),
        "the empty key row is reported"
    );
    assert_eq!(
        errs.iter()
            .find(|e| e.user() == Some(&UserKey::new("dup")))
            .unwrap()
            .kind(),
        ErrorKind::Conflict
    );
    // Withheld photos are never loaded.
    let (ok, _) = list(&src).await;
    let leaver = ok.iter().find(|r| r.withheld).unwrap();
    assert!(src.load(leaver, &Limits::default()).await.is_err());
    std::fs::remove_dir_all(&d).ok();
}

#[tokio::test]
async fn csv_header_and_file_errors_are_clear() {
    let d = tempdir("csvbad");
    let m = write(&d, "m.csv", b"user,file\njdoe,x.jpg\n");
    let (ok, errs) = list(&CsvSource::new(&m)).await;
    assert!(ok.is_empty());
    assert!(
        errs[0].to_string().contains("`key` and a `path`"),
        "{}",
        errs[0]
    );
    let (_, errs) = list(&CsvSource::new(d.join("absent.csv"))).await;
    assert_eq!(errs[0].kind(), ErrorKind::Io);
    std::fs::remove_dir_all(&d).ok();
}

/// UTF-16 little-endian with a byte order mark, as Excel's "Unicode text" writes it.
fn utf16le(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

#[tokio::test]
async fn csv_manifests_as_excel_saves_them() {
    let d = tempdir("excel");
    let jpeg = testimage::gradient_jpeg(48, 48);
    write(&d, "photos/jdoe.jpg", &jpeg);
    write(&d, "photos/M\u{fc}ller, J\u{fc}rgen.jpg", &jpeg);
    write(&d, "photos/ann.jpg", &jpeg);
    let want = ["jdoe", "jmuller", "ann"];
    let check = |name: &'static str, bytes: Vec<u8>| {
        let d = d.clone();
        async move {
            let m = write(&d, name, &bytes);
            let (ok, errs) = list(&CsvSource::new(&m)).await;
            assert!(errs.is_empty(), "{name}: {errs:?}");
            let mut keys: Vec<String> = ok.iter().map(|r| r.key.to_string()).collect();
            keys.sort();
            let mut w: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            w.sort();
            assert_eq!(keys, w, "{name}");
            let m = ok
                .iter()
                .find(|r| r.key == UserKey::new("jmuller"))
                .unwrap();
            assert!(
                m.location.ends_with("M\u{fc}ller, J\u{fc}rgen.jpg"),
                "{name}: the quoted path with a comma and umlauts: {}",
                m.location
            );
            assert!(ok.iter().all(|r| !r.withheld), "{name}");
        }
    };
    // "CSV UTF-8 (comma delimited)" in a German locale: BOM, `;`, CRLF; Excel quotes a
    // field only when it holds the separator, a quote or a line break.
    check(
        "de.csv",
        "\u{feff}Key;Path;Withheld\r\njdoe;photos/jdoe.jpg;\r\njmuller;photos/M\u{fc}ller, J\u{fc}rgen.jpg;no\r\nann;photos/ann.jpg;\r\n"
            .as_bytes()
            .to_vec(),
    )
    .await;
    // The same in an English locale: BOM, `,`, CRLF, the path with a comma quoted.
    check(
        "en.csv",
        "\u{feff}key,path\r\njdoe,photos/jdoe.jpg\r\njmuller,\"photos/M\u{fc}ller, J\u{fc}rgen.jpg\"\r\nann,photos/ann.jpg\r\n"
            .as_bytes()
            .to_vec(),
    )
    .await;
    // "Unicode text": UTF-16 LE with a BOM, tab separated, CRLF.
    check(
        "unicode.txt",
        utf16le("key\tpath\r\njdoe\tphotos/jdoe.jpg\r\njmuller\tphotos/M\u{fc}ller, J\u{fc}rgen.jpg\r\nann\tphotos/ann.jpg\r\n"),
    )
    .await;
    // Tab separated UTF-8 without a BOM, LF only, no final line break.
    check(
        "plain.tsv",
        "key\tpath\njdoe\tphotos/jdoe.jpg\njmuller\tphotos/M\u{fc}ller, J\u{fc}rgen.jpg\nann\tphotos/ann.jpg"
            .as_bytes()
            .to_vec(),
    )
    .await;

    // The separator can be set; a wrong one is a clear run-level error, not an empty source.
    let m = d.join("de.csv");
    let (ok, errs) = list(&CsvSource::new(&m).delimiter(b';')).await;
    assert_eq!((ok.len(), errs.len()), (3, 0));
    let (ok, errs) = list(&CsvSource::new(&m).delimiter(b',')).await;
    assert!(ok.is_empty());
    assert_eq!(errs.len(), 1);
    assert!(errs[0].is_run_level(), "{}", errs[0]);
    assert_eq!(errs[0].kind(), ErrorKind::Config);
    assert!(
        errs[0].to_string().contains("\"Key;Path;Withheld\""),
        "{}",
        errs[0]
    );
    assert_eq!(CsvSource::parse_delimiter("tab").unwrap(), b'\t');
    assert_eq!(CsvSource::parse_delimiter(",").unwrap(), b',');
    assert_eq!(CsvSource::parse_delimiter("|").unwrap(), b'|');
    for bad in ["", "ab", "\"", "\u{e9}", " "] {
        assert_eq!(
            CsvSource::parse_delimiter(bad).unwrap_err().kind(),
            ErrorKind::Config,
            "{bad:?}"
        );
    }

    // An "ANSI" save (Windows-1252 bytes): the row says what to do, the others are listed.
    let mut ansi = b"key;path\r\njdoe;photos/jdoe.jpg\r\njmuller;photos/M".to_vec();
    ansi.extend_from_slice(b"\xFCller.jpg\r\n");
    let m = write(&d, "ansi.csv", &ansi);
    let (ok, errs) = list(&CsvSource::new(&m)).await;
    assert_eq!(ok.len(), 1);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].to_string().contains("CSV UTF-8"), "{}", errs[0]);
    assert!(!errs[0].is_run_level());
    std::fs::remove_dir_all(&d).ok();
}

#[tokio::test]
async fn sources_that_cannot_be_read_at_all_are_run_level_errors() {
    let d = tempdir("unreadable");
    let (ok, errs) = list(&CsvSource::new(d.join("absent.csv"))).await;
    assert!(ok.is_empty());
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].kind(), ErrorKind::Io);
    assert!(errs[0].is_run_level());
    assert!(errs[0].to_string().contains("absent.csv"), "{}", errs[0]);
    let m = write(&d, "m.csv", b"user,file\njdoe,x.jpg\n");
    let (_, errs) = list(&CsvSource::new(&m)).await;
    assert!(errs[0].is_run_level() && errs[0].kind() == ErrorKind::Config);

    let (ok, errs) = list(&FolderSource::new(d.join("no-such-folder"))).await;
    assert!(ok.is_empty());
    assert_eq!(errs.len(), 1);
    assert!(errs[0].is_run_level(), "{}", errs[0]);
    assert!(
        errs[0].to_string().contains("no-such-folder"),
        "{}",
        errs[0]
    );
    let (_, errs) = list(&FolderSource::new(&m)).await;
    assert!(
        errs[0].is_run_level(),
        "a file is not a folder: {}",
        errs[0]
    );

    // A broken entry inside a readable folder is one error item; the rest is listed.
    #[cfg(unix)]
    {
        let f = d.join("photos");
        write(&f, "alice.jpg", &testimage::gradient_jpeg(32, 32));
        std::os::unix::fs::symlink(f.join("gone.jpg"), f.join("bob.jpg")).unwrap();
        let (ok, errs) = list(&FolderSource::new(&f)).await;
        assert_eq!(ok.len(), 1);
        assert_eq!(errs.len(), 1);
        assert!(!errs[0].is_run_level());
        assert!(errs[0].to_string().contains("bob.jpg"), "{}", errs[0]);
    }
    std::fs::remove_dir_all(&d).ok();
}

/// A manifest above the 256 MiB cap is refused by its size, never read (the file is sparse:
/// nothing is written), with a typed run-level error; a UTF-16 one that is not valid UTF-16
/// is refused saying where.
#[tokio::test]
async fn csv_manifests_above_the_cap_or_not_text_are_refused() {
    let d = tempdir("csv-cap");
    let m = d.join("huge.csv");
    let f = std::fs::File::create(&m).unwrap();
    f.set_len((256 << 20) + 1).unwrap();
    drop(f);
    let (ok, errs) = list(&CsvSource::new(&m)).await;
    assert!(ok.is_empty());
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].kind(), ErrorKind::LimitExceeded, "{}", errs[0]);
    assert!(errs[0].is_run_level());
    assert!(
        errs[0]
            .to_string()
            .contains("268435457 bytes, above the manifest limit"),
        "{}",
        errs[0]
    );
    std::fs::remove_file(&m).unwrap();

    let mut bad = utf16le("key\tpath\r\njdoe\t");
    bad.extend([0x00, 0xD8, b'x', 0]);
    let m = write(&d, "surrogate.csv", &bad);
    let (ok, errs) = list(&CsvSource::new(&m)).await;
    assert!(ok.is_empty());
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].kind(), ErrorKind::InvalidData);
    assert!(errs[0].is_run_level());
    assert!(
        errs[0]
            .to_string()
            .contains("not valid UTF-16LE at byte 32"),
        "{}",
        errs[0]
    );
    std::fs::remove_dir_all(&d).ok();
}

/// Errors name the manifest's line as an editor shows it, whatever the line ends are (Excel
/// writes CRLF) and whether a quoted field spans lines.
#[tokio::test]
async fn csv_errors_name_the_line_an_editor_shows() {
    let d = tempdir("csv-lines");
    for (name, eol) in [("lf.csv", "\n"), ("crlf.csv", "\r\n")] {
        let text = [
            "key,path",
            "ann,a.jpg",
            "\"bob\",\"b",
            "with a line break.jpg\"",
            "ann,again.jpg",
            "cid,missing.jpg",
            "",
        ]
        .join(eol);
        for f in ["a.jpg", "again.jpg", "b\nwith a line break.jpg"] {
            write(&d, f, &testimage::photo_jpeg(32, 32, 1));
        }
        let m = write(&d, name, text.as_bytes());
        let (_, errs) = list(&CsvSource::new(&m)).await;
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            msgs.iter().any(|m| m.contains("lines 2, 5")),
            "{name}: the duplicate key on lines 2 and 5: {msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains(&format!("{name}:6"))),
            "{name}: the row naming a missing file is line 6: {msgs:?}"
        );
    }
}
