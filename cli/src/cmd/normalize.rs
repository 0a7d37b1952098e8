//! `normalize`: image files into JPEG renditions, one JSON line per input and profile.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;
use userphoto::normalize::{
    BatchOptions, CropMode, Input, Normalizer, Profile, ProgressiveDecoder,
};

use crate::args::NormalizeArgs;

/// `normalize`: the profile with `--size` and `--max-bytes`, every file through it; exit 1
/// when any failed.
pub(crate) fn normalize(a: NormalizeArgs) -> ExitCode {
    let NormalizeArgs {
        profile,
        size,
        max_bytes,
        threads,
        crop,
        out,
        files,
    } = a;
    let mut p = profile.profile();
    if let Some(s) = size {
        p = p.with_size(s, s);
    }
    if let Some(b) = max_bytes {
        p = p.with_max_bytes(b);
    }
    if let Err(e) = p.validate() {
        eprintln!("userphoto: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("userphoto: cannot create {}: {e}", out.display());
        return ExitCode::from(2);
    }
    let failed = normalize_files(&files, &[p], threads, crop.mode(), &out);
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The normalizer of the `normalize` command. `USERPHOTO_PROGRESSIVE=libjpeg` (a benchmark
/// switch, benches/progressive_memory.sh) decodes progressive JPEGs with libjpeg instead of
/// the library's own decoder; the renditions are the same.
fn normalizer_for_normalize(crop: CropMode) -> Normalizer {
    let decoder = match std::env::var_os("USERPHOTO_PROGRESSIVE") {
        Some(v) if v == "libjpeg" => ProgressiveDecoder::Libjpeg,
        _ => ProgressiveDecoder::Native,
    };
    Normalizer::new()
        .with_crop(crop)
        .with_progressive_decoder(decoder)
}

/// Normalizes files, writes `<out>/<stem>.jpg` (with `-<profile>` when several profiles),
/// prints a JSON line per input and profile, and returns how many failed.
pub(crate) fn normalize_files(
    files: &[PathBuf],
    profiles: &[Profile],
    threads: usize,
    crop: CropMode,
    out: &Path,
) -> usize {
    let inputs = files.iter().cloned().map(|f| (f.clone(), Input::Path(f)));
    let stdout = std::io::stdout();
    let mut failed = 0;
    let options = BatchOptions { threads, queue: 0 };
    normalizer_for_normalize(crop).normalize_batch(inputs, profiles, options, |item, _progress| {
        let stem = item.key.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "photo".into());
        let input = item.key.display().to_string();
        let mut lines = Vec::new();
        match item.result {
            Err(e) => {
                failed += 1;
                for _ in profiles {
                    lines.push(json!({"input": input, "output": null, "ok": false, "error_kind": e.kind().as_str(), "error": e.to_string()}));
                }
            }
            Ok(results) => {
                for (p, r) in profiles.iter().zip(results) {
                    let name = if profiles.len() > 1 { format!("{stem}-{}.jpg", p.name()) } else { format!("{stem}.jpg") };
                    let path = out.join(name);
                    match r.map_err(|e| (e.kind().as_str(), e.to_string())).and_then(|r| {
                        std::fs::write(&path, &r.bytes).map(|_| r).map_err(|e| ("io", format!("cannot write {}: {e}", path.display())))
                    }) {
                        Ok(r) => lines.push(json!({
                            "input": input, "output": path.display().to_string(), "ok": true, "profile": p.name(),
                            "bytes": r.bytes.len(), "width": r.width, "height": r.height, "quality": r.quality,
                            "sha256": r.sha256_hex(), "ms": item.elapsed.as_secs_f64() * 1000.0,
                            "strategy": r.crop.strategy.as_str(), "crop": r.crop.rect,
                            "faces": r.crop.faces, "warnings": r.crop.warnings,
                        })),
                        Err((kind, msg)) => {
                            failed += 1;
                            lines.push(json!({"input": input, "output": null, "ok": false, "profile": p.name(), "error_kind": kind, "error": msg}));
                        }
                    }
                }
            }
        }
        let mut lock = stdout.lock();
        for l in lines {
            let _ = writeln!(lock, "{l}");
        }
    });
    failed
}
