//! Times the face detector alone on a generated 256x192 picture.
use std::time::Instant;
use userphoto::normalize::bench;
fn main() {
    let (w, h) = (256usize, 192usize);
    let rgb: Vec<u8> = (0..w * h * 3)
        .map(|i| ((i * 31 + i / 977) % 251) as u8)
        .collect();
    for simd in [true] {
        let mut best = f64::MAX;
        for _ in 0..10 {
            let t = Instant::now();
            std::hint::black_box(bench::detect_faces(&rgb, w, h, simd));
            best = best.min(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!("simd={simd}: {best:.2} ms");
    }
}
