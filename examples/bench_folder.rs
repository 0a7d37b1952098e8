//! Measures the normalization core on a folder of photos, one thread, in process.
//!
//! ```text
//! cargo run --release --example bench_folder -- DIR PROFILE [RUNS] [OUT_DIR]
//! ```
//!
//! Prints one JSON line per file (`file`, `class`, `ms` median, `floor_ms` median of a
//! libjpeg-turbo 1/8-scale decode of the whole file, `bytes`, `quality`, `encodes`,
//! `strategy`, `faces`) and a final `summary` line with totals per class. The crop is
//! `BENCH_CROP` (`face`, `attention` or `centre`; default: the library's default, `face`). `benches/compare.sh` runs it next to
//! `vipsthumbnail`; renditions go to OUT_DIR when given (for the SSIM comparison).

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;
use userphoto::normalize::{bench, CropMode, ImageFormat, Normalizer, Profile};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: bench_folder DIR PROFILE [RUNS] [OUT_DIR]");
        std::process::exit(2);
    }
    let dir = PathBuf::from(&args[0]);
    let Some(profile) = Profile::by_name(&args[1]) else {
        eprintln!("unknown profile {}", args[1]);
        std::process::exit(2);
    };
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let out = args.get(3).map(PathBuf::from);
    if let Some(o) = &out {
        std::fs::create_dir_all(o).expect("create out dir");
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let crop: CropMode = std::env::var("BENCH_CROP")
        .ok()
        .map(|s| s.parse().expect("BENCH_CROP: face, attention or centre"))
        .unwrap_or(CropMode::Face);
    let n = Normalizer::new().with_crop(crop);
    let mut totals: std::collections::BTreeMap<&str, (usize, f64, f64)> = Default::default();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let Some(format) = ImageFormat::detect(&bytes) else {
            continue;
        };
        if n.normalize(&bytes, &profile).is_err() {
            continue;
        }
        let class = match format {
            ImageFormat::Jpeg if bench::jpeg_is_progressive(&bytes) => "progressive",
            ImageFormat::Jpeg => "baseline",
            _ => "other",
        };
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            let t = Instant::now();
            let r = n.normalize(&bytes, &profile).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            last = Some(r);
        }
        let r = last.unwrap();
        let floor = if format == ImageFormat::Jpeg {
            let mut ft = Vec::new();
            for _ in 0..runs {
                let t = Instant::now();
                bench::jpeg_decode_floor(&bytes).unwrap();
                ft.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            median(ft)
        } else {
            f64::NAN
        };
        let ms = median(times);
        let e = totals.entry(class).or_default();
        e.0 += 1;
        e.1 += ms;
        if floor.is_finite() {
            e.2 += floor;
        }
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(o) = &out {
            let stem = f.file_stem().unwrap().to_string_lossy();
            std::fs::write(o.join(format!("{stem}.jpg")), &r.bytes).unwrap();
        }
        println!(
            "{}",
            json!({"file": name, "class": class, "ms": ms, "floor_ms": if floor.is_finite() { json!(floor) } else { json!(null) },
                   "bytes": r.bytes.len(), "quality": r.quality, "encodes": r.encodes,
                   "strategy": r.crop.strategy.as_str(), "faces": r.crop.faces.len()})
        );
    }
    let summary: serde_json::Map<String, serde_json::Value> = totals
        .into_iter()
        .map(|(k, (count, ms, floor))| {
            (
                k.to_string(),
                json!({"files": count, "total_ms": ms, "floor_total_ms": floor}),
            )
        })
        .collect();
    println!(
        "{}",
        json!({"summary": summary, "profile": profile.name(), "codec": Normalizer::codec_name()})
    );
}
