//! Criterion benchmarks of the normalization core, by input class and profile.
//!
//! Classes come from the shared corpus when it is there (`../shared/corpus` or
//! `USERPHOTO_CORPUS`): small (0.5 MP), 8 MP, 16-24 MP, progressive, CMYK and PNG. Without
//! it, generated photos stand in for the size classes. Each class also measures the
//! libjpeg-turbo 1/8-scale decode of the whole file, the floor the pipeline is held to.
//!
//! `cargo bench --bench normalize` (add `-- ad-thumbnail` to filter).

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use userphoto::normalize::{bench, testimage, Normalizer, Profile};

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let dir = std::env::var_os("USERPHOTO_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    let classes = [
        ("small-0.5mp", "24_exif_nikon_e950_800x600.jpg"),
        ("8mp", "11_exif_jolla_3264x2448.jpg"),
        ("24mp", "36_derived_upscaled_jolla_5664x4248_24mp.jpg"),
        ("progressive-16mp", "03_lomiri_seeding_5312x2988.jpg"),
        ("cmyk-12mp", "37_derived_cmyk_sunset_4272x2848.jpg"),
        ("png", "30_skimage_astronaut.png"),
    ];
    let found: Vec<_> = classes
        .iter()
        .filter_map(|(c, f)| std::fs::read(dir.join(f)).ok().map(|b| (*c, b)))
        .collect();
    if found.len() == classes.len() {
        return found;
    }
    eprintln!(
        "corpus not found at {}: benchmarking generated photos instead",
        dir.display()
    );
    vec![
        ("generated-0.5mp", testimage::gradient_jpeg(800, 600)),
        ("generated-8mp", testimage::gradient_jpeg(3264, 2448)),
        ("generated-24mp", testimage::gradient_jpeg(5664, 4248)),
        ("generated-png", testimage::rgba_png(512, 512)),
    ]
}

fn normalize(c: &mut Criterion) {
    let n = Normalizer::new();
    let profiles = [
        Profile::ad_thumbnail(),
        Profile::ad_large(),
        Profile::graph(),
    ];
    for (class, bytes) in inputs() {
        let mut g = c.benchmark_group(class);
        g.sample_size(20);
        g.throughput(Throughput::Elements(1));
        if bytes.starts_with(&[0xFF, 0xD8]) {
            g.bench_function("decode-floor-1/8", |b| {
                b.iter(|| bench::jpeg_decode_floor(&bytes).unwrap())
            });
        }
        for p in &profiles {
            g.bench_with_input(
                BenchmarkId::new("normalize", p.name()),
                &bytes,
                |b, bytes| b.iter(|| n.normalize(bytes, p).unwrap()),
            );
        }
        g.bench_function("normalize_many/ad-thumbnail+graph", |b| {
            b.iter(|| {
                n.normalize_many(&bytes, &[profiles[0].clone(), profiles[2].clone()])
                    .unwrap()
            })
        });
        g.finish();
    }
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for size in [96u32, 648] {
        let rgb = testimage::photo_rgb(size, size, 5);
        g.bench_function(BenchmarkId::new("q90", size), |b| {
            b.iter(|| bench::encode(&rgb, size, size, 90).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, normalize, encode);
criterion_main!(benches);
