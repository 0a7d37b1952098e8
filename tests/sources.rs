//! Sources: the conformance suite against the memory, folder and CSV sources, and each
//! source's own rules (key extraction, conflicts, non-images, withheld rows, quoting).

mod common;

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
