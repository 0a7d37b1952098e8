//! An integrator's photo source, written only against userphoto's public API: people and
//! photos from an HR system's JSON export. Run: `cargo run --example custom_source`.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use userphoto::normalize::{testimage, Limits, Normalizer, Profile};
use userphoto::source::{PhotoRef, PhotoSource};
use userphoto::{Error, ErrorKind, Result, UserKey};

/// One row of the HR export: `{"employeeId": "E1001", "photo": "e1001.jpg", "consent": true}`.
#[derive(serde::Deserialize)]
struct Person {
    #[serde(rename = "employeeId")]
    employee_id: String,
    photo: Option<String>,
    consent: bool,
}

/// The source: the export's folder and its parsed rows.
#[derive(Debug)]
struct HrExport {
    dir: std::path::PathBuf,
    people: Vec<(String, Option<String>, bool)>,
}

impl HrExport {
    fn open(dir: std::path::PathBuf) -> Result<Self> {
        let text = std::fs::read_to_string(dir.join("people.json"))?;
        let rows: Vec<Person> = serde_json::from_str(&text)
            .map_err(|e| Error::new(ErrorKind::InvalidData, e.to_string()))?;
        let people = rows
            .into_iter()
            .map(|p| (p.employee_id, p.photo, p.consent))
            .collect();
        Ok(Self { dir, people })
    }
}

#[async_trait]
impl PhotoSource for HrExport {
    fn name(&self) -> &str {
        "hr-export"
    }

    fn list(&self) -> BoxStream<'_, Result<PhotoRef>> {
        stream::iter(self.people.iter().map(|(id, photo, consent)| {
            match (photo, consent) {
                (_, false) => Ok(PhotoRef {
                    key: UserKey::new(id),
                    fingerprint: "withheld".into(),
                    location: id.clone(),
                    withheld: true,
                }),
                (Some(file), true) => {
                    let meta = std::fs::metadata(self.dir.join(file))?;
                    Ok(PhotoRef {
                        key: UserKey::new(id),
                        fingerprint: format!("{}:{:?}", meta.len(), meta.modified().ok()),
                        location: file.clone(),
                        withheld: false,
                    })
                }
                (None, true) => Err(Error::new(ErrorKind::InvalidData, "no photo in the export")
                    .with_user(UserKey::new(id))),
            }
        }))
        .boxed()
    }

    async fn load(&self, photo: &PhotoRef, limits: &Limits) -> Result<Bytes> {
        let bytes = tokio::fs::read(self.dir.join(&photo.location)).await?;
        if bytes.len() as u64 > limits.max_input_bytes {
            return Err(Error::new(ErrorKind::LimitExceeded, "photo too large")
                .with_user(photo.key.clone()));
        }
        Ok(bytes.into())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    // A small export of the HR system's kind, generated here.
    let dir = std::env::temp_dir().join(format!("hr-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("e1001.jpg"), testimage::gradient_jpeg(1200, 1600))?;
    std::fs::write(dir.join("e1002.jpg"), testimage::gradient_jpeg(900, 600))?;
    let people = r#"[{"employeeId": "E1001", "photo": "e1001.jpg", "consent": true},
        {"employeeId": "E1002", "photo": "e1002.jpg", "consent": true},
        {"employeeId": "E1003", "photo": null, "consent": false},
        {"employeeId": "E1004", "photo": null, "consent": true}]"#;
    std::fs::write(dir.join("people.json"), people)?;

    let source = HrExport::open(dir.clone())?;
    let mut items = source.list();
    while let Some(item) = items.next().await {
        match item {
            Ok(r) if r.withheld => println!("{}: withheld (consent withdrawn)", r.key),
            Ok(r) => {
                let bytes = source.load(&r, &Limits::default()).await?;
                let thumb = tokio::task::spawn_blocking(move || {
                    Normalizer::new().normalize(&bytes, &Profile::ad_thumbnail())
                })
                .await
                .map_err(|e| Error::new(ErrorKind::Other, e.to_string()))??;
                println!(
                    "{}: {}x{} JPEG, {} bytes, quality {}",
                    r.key,
                    thumb.width,
                    thumb.height,
                    thumb.bytes.len(),
                    thumb.quality
                );
            }
            Err(e) => println!("error: {e}"),
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
