//! `demo` (sample photos normalized for every profile) and the hidden `demo-fixtures` (the
//! photos and directory export of examples/demo).

use std::path::Path;
use std::process::ExitCode;

use userphoto::normalize::{testimage, CropMode, Normalizer, Profile};

use super::normalize::normalize_files;
use crate::fail::fail;

/// `demo`: generated samples, normalized for every built-in profile.
pub(crate) fn demo(out: &Path) -> ExitCode {
    let samples = out.join("samples");
    let renditions = out.join("renditions");
    for d in [&samples, &renditions] {
        if let Err(e) = std::fs::create_dir_all(d) {
            eprintln!("userphoto: cannot create {}: {e}", d.display());
            return ExitCode::from(2);
        }
    }
    let mut bomb = testimage::gradient_jpeg(64, 64);
    // Patch the frame header to claim 60000x60000: refused from the header, nothing decoded.
    if let Some(i) = bomb.windows(2).position(|w| w == [0xFF, 0xC0]) {
        bomb[i + 5..i + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    }
    let landscape = testimage::gradient_jpeg(3000, 2000);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("alice.jpg", landscape.clone()),
        (
            "bob-portrait-exif6.jpg",
            testimage::with_exif_orientation(&testimage::gradient_jpeg(2400, 1800), 6),
        ),
        ("carol-transparent.png", testimage::rgba_png(800, 600)),
        (
            "dave-truncated.jpg",
            landscape[..landscape.len() / 2].to_vec(),
        ),
        ("eve-bomb.jpg", bomb),
    ];
    let mut paths = Vec::new();
    for (name, bytes) in files {
        let p = samples.join(name);
        if let Err(e) = std::fs::write(&p, bytes) {
            eprintln!("userphoto: cannot write {}: {e}", p.display());
            return ExitCode::from(2);
        }
        paths.push(p);
    }
    eprintln!(
        "userphoto demo: {} samples in {}, renditions in {}",
        paths.len(),
        samples.display(),
        renditions.display()
    );
    let profiles = [
        Profile::ad_thumbnail(),
        Profile::ad_large(),
        Profile::graph(),
    ];
    let failed = normalize_files(&paths, &profiles, 0, CropMode::Face, &renditions);
    eprintln!("userphoto demo: {failed} of {} inputs refused, as expected for the truncated file and the bomb", paths.len());
    ExitCode::SUCCESS
}

/// One LDIF line, through the library's writer (base64 when RFC 2849 requires it, folded
/// at 76 columns).
fn ldif_line(out: &mut String, name: &str, value: &[u8]) {
    let mut line = Vec::new();
    userphoto::ldif::write_attr(&mut line, name, value).expect("writing to memory");
    out.push_str(std::str::from_utf8(&line).expect("LDIF lines are ASCII"));
}

/// `demo-fixtures`: the demo sync's photos and directory export.
pub(crate) fn demo_fixtures(out: &Path) -> ExitCode {
    let photos = out.join("photos");
    if let Err(e) = std::fs::create_dir_all(&photos) {
        return fail(format!("cannot create {}: {e}", photos.display()));
    }
    let jpeg = |w, h, seed| testimage::photo_jpeg(w, h, seed);
    let erin = jpeg(640, 480, 5);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("alice.jpg", jpeg(800, 536, 1)),
        (
            "bob.jpg",
            testimage::with_exif_orientation(&jpeg(800, 600, 2), 6),
        ),
        ("carol.png", testimage::rgba_png(256, 256)),
        ("dave.jpg", jpeg(640, 640, 4)),
        ("erin.jpg", erin.clone()),
        ("jmuller.jpg", jpeg(600, 800, 6)),
    ];
    for (name, bytes) in &files {
        if let Err(e) = std::fs::write(photos.join(name), bytes) {
            return fail(format!("cannot write {name}: {e}"));
        }
    }
    let erin_now = match Normalizer::new().normalize(&erin, &Profile::ad_thumbnail()) {
        Ok(r) => r.bytes.to_vec(),
        Err(e) => return fail(e),
    };
    let old = |seed| {
        userphoto::normalize::bench::encode(&testimage::photo_rgb(96, 96, seed), 96, 96, 60)
            .unwrap_or_default()
    };
    let people: Vec<(&str, &str, Option<Vec<u8>>)> = vec![
        ("CN=Alice Adams,OU=Staff,DC=example,DC=test", "alice", None),
        ("CN=Bob Brown,OU=Staff,DC=example,DC=test", "bob", None),
        ("CN=Carol Clark,OU=Staff,DC=example,DC=test", "carol", None),
        (
            "CN=Dave Davis,OU=Staff,DC=example,DC=test",
            "dave",
            Some(old(40)),
        ),
        (
            "CN=Erin Evans,OU=Staff,DC=example,DC=test",
            "erin",
            Some(erin_now),
        ),
        (
            "CN=M\u{fc}ller\\, J\u{fc}rgen,OU=Staff,DC=example,DC=test",
            "jmuller",
            None,
        ),
        (
            "CN=Grace Green,OU=Former,DC=example,DC=test",
            "grace",
            Some(old(70)),
        ),
        ("CN=Henry Hill,OU=Staff,DC=example,DC=test", "henry", None),
    ];
    let mut ldif = String::from(
        "# A directory export as `ldapsearch -LLL -o ldif-wrap=76 ... sAMAccountName\n\
         # userPrincipalName thumbnailPhoto` writes it, for the demo sync.\n\n",
    );
    for (dn, sam, photo) in people {
        ldif_line(&mut ldif, "dn", dn.as_bytes());
        ldif_line(&mut ldif, "objectClass", b"user");
        ldif_line(&mut ldif, "sAMAccountName", sam.as_bytes());
        ldif_line(
            &mut ldif,
            "userPrincipalName",
            format!("{sam}@example.test").as_bytes(),
        );
        if let Some(p) = photo {
            ldif_line(&mut ldif, "thumbnailPhoto", &p);
        }
        ldif.push('\n');
    }
    if let Err(e) = std::fs::write(out.join("directory.ldif"), ldif) {
        return fail(format!("cannot write directory.ldif: {e}"));
    }
    eprintln!(
        "userphoto: demo photos and directory.ldif written to {}",
        out.display()
    );
    ExitCode::SUCCESS
}
