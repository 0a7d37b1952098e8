//! Writes the inputs of `benches/memory.sh`, without the photo corpus: generated photos.
//!
//! ```text
//! cargo run --release --example bench_inputs -- ldif USERS PHOTO_BYTES DIR
//! ```
//!
//! `ldif`: DIR/photos/userNNNNN.jpg for every user (the source), and DIR/export.ldif, a
//! directory export laid out as `ldapsearch -LLL` writes one (photos base64, folded at 76
//! columns by the library's LDIF writer, [`userphoto::ldif::write_attr`]) in which every
//! second user already holds a photo of about PHOTO_BYTES bytes. Prints the export's size
//! in bytes and how many of its entries hold a photo.

use std::io::Write;
use std::path::PathBuf;

use userphoto::normalize::testimage;

/// A photo of about `bytes` bytes: the generated picture at the size that comes closest.
fn photo_near(bytes: usize, seed: u32) -> Vec<u8> {
    let (mut lo, mut hi) = (16u32, 1024u32);
    while hi - lo > 4 {
        let mid = (lo + hi) / 2;
        if testimage::photo_jpeg(mid, mid * 5 / 4, seed).len() < bytes {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    testimage::photo_jpeg(lo, lo * 5 / 4, seed)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some("ldif"), Some(users), Some(photo_bytes), Some(dir)) = (
        args.first().map(String::as_str),
        args.get(1).and_then(|s| s.parse::<usize>().ok()),
        args.get(2).and_then(|s| s.parse::<usize>().ok()),
        args.get(3).map(PathBuf::from),
    ) else {
        eprintln!("usage: bench_inputs ldif USERS PHOTO_BYTES DIR");
        std::process::exit(2);
    };
    std::fs::create_dir_all(dir.join("photos"))?;
    // A few dozen distinct existing photos, reused: the export's size is what matters.
    let existing: Vec<Vec<u8>> = (0..32).map(|s| photo_near(photo_bytes, s)).collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("export.ldif"))?);
    let mut with_photo = 0;
    for i in 0..users {
        let name = format!("user{i:05}");
        std::fs::write(
            dir.join("photos").join(format!("{name}.jpg")),
            testimage::photo_jpeg(120, 150, i as u32),
        )?;
        writeln!(out, "dn: CN={name},OU=Staff,DC=example,DC=test")?;
        writeln!(out, "objectClass: user\nsAMAccountName: {name}")?;
        if i % 2 == 0 {
            userphoto::ldif::write_attr(&mut out, "thumbnailPhoto", &existing[i % existing.len()])?;
            with_photo += 1;
        }
        writeln!(out)?;
    }
    out.flush()?;
    drop(out);
    let size = std::fs::metadata(dir.join("export.ldif"))?.len();
    println!("export_bytes={size} with_photo={with_photo}");
    Ok(())
}
