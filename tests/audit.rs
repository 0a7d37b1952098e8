//! `Engine::audit` on a directory that keeps the bytes it is given (the memory sink): every
//! state a bytes sink can be in, with and without the state store, and nothing written.
//! (Graph, which re-encodes, and the AD-overwrites-Graph sequence are tested end to end in
//! the CLI's `tests/audit.rs`, against the Graph test server and the Samba DC.)

use std::collections::BTreeMap;
use std::sync::Arc;

use userphoto::normalize::{Normalizer, Profile};
use userphoto::sink::{DirectorySink, MemorySink};
use userphoto::source::MemorySource;
use userphoto::sync::{Audit, AuditState, Engine, StateStore};
use userphoto::UserKey;

/// A picture of its own per seed (a head and shoulders placed by the seed on a background
/// whose gradient turns with it), as a JPEG.
fn photo(seed: u32) -> Vec<u8> {
    let (w, h) = (400u32, 480u32);
    let a = seed as f64 * 0.9;
    let (hx, hy) = (
        200.0 + 60.0 * (seed as f64 * 1.7).sin(),
        190.0 + 40.0 * (seed as f64 * 2.3).cos(),
    );
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f64 / w as f64, y as f64 / h as f64);
        let bg = 60.0 + 120.0 * (fx * a.cos() + fy * a.sin()).rem_euclid(1.0);
        let (dx, dy) = (x as f64 - hx, y as f64 - hy);
        let head = dx * dx / 4900.0 + dy * dy / 8100.0 < 1.0;
        let body = dy > 110.0 && dx.abs() < 150.0 - (dy - 110.0) * 0.2;
        let v = if head {
            200.0
        } else if body {
            30.0 + (seed % 5) as f64 * 20.0
        } else {
            bg
        };
        image::Rgb([v as u8, (v * 0.8) as u8, (255.0 - v * 0.5) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
        .encode_image(&img)
        .unwrap();
    out.into_inner()
}

fn states(a: &Audit) -> BTreeMap<String, AuditState> {
    a.items
        .iter()
        .map(|i| (i.key.as_str().to_owned(), i.state))
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_bytes_sink_in_every_state_with_and_without_the_state_store() {
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.redb");
    let profile = Profile::ad_large();
    let sink = Arc::new(MemorySink::new(102_400).with_users([
        "same", "other", "moved", "small", "gone", "quit", "never", "fresh",
    ]));
    let first = MemorySource::new()
        .with_photo("same", photo(1))
        .with_photo("other", photo(2))
        .with_photo("moved", photo(3))
        .with_photo("small", photo(4))
        .with_photo("quit", photo(5));
    rt().block_on(async {
        let engine = Engine::new(first)
            .with_sink(sink.clone(), profile.clone())
            .with_state(StateStore::open(&state_path).unwrap());
        let report = engine.run().await.unwrap();
        assert!(report.is_success());
        assert!(engine.audit().await.unwrap().all_in_sync());
    });

    // The world moves: "other" gets another picture, "small" a 96-pixel copy of its own,
    // "moved"'s source photo changes, "quit" withdraws consent, "fresh" has a photo in the
    // source only, "ghost" is unknown to the directory.
    let n = Normalizer::new();
    let key = |k: &str| UserKey::new(k);
    rt().block_on(async {
        let other = n.normalize(&photo(20), &profile).unwrap();
        sink.put(&key("other"), &other.bytes).await.unwrap();
        let thumb = n.normalize(&photo(4), &Profile::ad_thumbnail()).unwrap();
        sink.put(&key("small"), &thumb.bytes).await.unwrap();
    });
    let second = || {
        MemorySource::new()
            .with_photo("same", photo(1))
            .with_photo("other", photo(2))
            .with_photo("moved", photo(30))
            .with_photo("small", photo(4))
            .with_withheld("quit")
            .with_withheld("never")
            .with_photo("fresh", photo(6))
            .with_photo("ghost", photo(7))
    };
    let before: Vec<_> = sink.users();
    let snapshot: Vec<_> = before.iter().map(|(k, _)| sink.photo(k)).collect();
    use AuditState::*;
    let with_state = rt().block_on(async {
        Engine::new(second())
            .with_sink(sink.clone(), profile.clone())
            .with_state(StateStore::open(&state_path).unwrap())
            .audit()
            .await
            .unwrap()
    });
    let want = |pairs: &[(&str, AuditState)]| -> BTreeMap<String, AuditState> {
        pairs.iter().map(|(k, s)| (k.to_string(), *s)).collect()
    };
    assert_eq!(
        states(&with_state),
        want(&[
            ("fresh", Missing),
            ("ghost", NotInDirectory),
            ("moved", Outdated),
            ("never", InSync),
            ("other", ChangedElsewhere),
            ("quit", Withheld),
            ("same", InSync),
            ("small", LowRes),
        ])
    );
    assert!(!with_state.all_in_sync());
    let small = with_state
        .items
        .iter()
        .find(|i| i.key.as_str() == "small")
        .unwrap();
    assert_eq!(
        (small.width, small.height, small.expected_side),
        (Some(96), Some(96), 648)
    );
    assert!(small.similarity.unwrap() >= userphoto::normalize::SAME_PICTURE);
    assert_eq!(with_state.counts()[&InSync], 2);

    let without = rt().block_on(async {
        Engine::new(second())
            .with_sink(sink.clone(), profile.clone())
            .audit()
            .await
            .unwrap()
    });
    assert_eq!(
        states(&without),
        want(&[
            ("fresh", Missing),
            ("ghost", NotInDirectory),
            ("moved", Differs),
            ("never", InSync),
            ("other", Differs),
            ("quit", Withheld),
            ("same", InSync),
            ("small", LowRes),
        ])
    );
    // Sorted by user, and nothing was written.
    let keys: Vec<&str> = without.items.iter().map(|i| i.key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(sink.users(), before);
    let after: Vec<_> = before.iter().map(|(k, _)| sink.photo(k)).collect();
    assert_eq!(after, snapshot);
}

#[test]
fn the_same_picture_in_other_bytes_at_the_same_size_is_in_sync() {
    // Someone wrote the same picture again (re-encoded): not ours by hash, ours by picture.
    let profile = Profile::ad_large();
    let ours = Normalizer::new().normalize(&photo(9), &profile).unwrap();
    let rgb = image::load_from_memory(&ours.bytes).unwrap().to_rgb8();
    let mut again = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut again, 70)
        .encode_image(&rgb)
        .unwrap();
    let again = again.into_inner();
    assert_ne!(again, ours.bytes.to_vec());
    let sink = MemorySink::new(102_400).with_photo("u", again);
    let audit = rt().block_on(async {
        Engine::new(MemorySource::new().with_photo("u", photo(9)))
            .with_sink(sink, profile)
            .audit()
            .await
            .unwrap()
    });
    assert_eq!(audit.items.len(), 1);
    assert_eq!(
        audit.items[0].state,
        AuditState::InSync,
        "{:?}",
        audit.items[0]
    );
    assert!(!audit.items[0].recorded);
}
