//! Normalizes photos for every built-in profile and writes the renditions next to a folder.
//!
//! ```text
//! cargo run --release --example normalize -- [OUT_DIR] [PHOTO...]
//! ```
//!
//! Without photos it normalizes a generated one (so it runs anywhere). For each input and
//! profile it prints the rendition's size, bytes, quality and SHA-256, or the typed error
//! (a corrupt, hostile or oversized input never panics).

use std::path::PathBuf;

use userphoto::normalize::{testimage, BuiltinProfile, Normalizer, Profile};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let out = args
        .next()
        .unwrap_or_else(|| std::env::temp_dir().join("userphoto-normalize-example"));
    std::fs::create_dir_all(&out)?;
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for path in args {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        inputs.push((name, std::fs::read(&path)?));
    }
    if inputs.is_empty() {
        inputs.push(("generated".into(), testimage::photo_jpeg(1600, 1200, 3)));
    }
    let profiles: Vec<Profile> = BuiltinProfile::ALL.iter().map(|p| p.profile()).collect();
    let normalizer = Normalizer::new();
    for (name, bytes) in &inputs {
        // One decode for all profiles that share a DCT scale.
        match normalizer.normalize_many(bytes, &profiles) {
            Err(e) => println!("{name}: {e}"),
            Ok(renditions) => {
                for (profile, r) in profiles.iter().zip(renditions) {
                    match r {
                        Ok(r) => {
                            let file = out.join(format!("{name}-{}.jpg", profile.name()));
                            std::fs::write(&file, &r.bytes)?;
                            println!(
                                "{name} {}: {}x{}, {} bytes, quality {}, sha256 {} -> {}",
                                profile.name(),
                                r.width,
                                r.height,
                                r.bytes.len(),
                                r.quality,
                                r.sha256_hex(),
                                file.display()
                            );
                        }
                        Err(e) => println!("{name} {}: {e}", profile.name()),
                    }
                }
            }
        }
    }
    Ok(())
}
