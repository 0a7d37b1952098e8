//! Plans a sync and prints it, changing nothing: a folder of photos named by user against a
//! directory export (LDIF, as `ldapsearch` or `ldifde` write it).
//!
//! ```text
//! cargo run --example plan_only -- [PHOTOS_DIR] [EXPORT.ldif]
//! ```
//!
//! Without arguments it plans the shipped demo (`examples/demo`). Prints one line per change
//! (action, user, reason) and the counts; writes nothing (no change file, no state, no backup).

use std::path::PathBuf;

use userphoto::normalize::Profile;
use userphoto::sink::LdifSink;
use userphoto::source::FolderSource;
use userphoto::sync::{Action, Engine};
use userphoto::MatchAttribute;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let photos = args.next().unwrap_or_else(|| demo.join("photos"));
    let export = args.next().unwrap_or_else(|| demo.join("directory.ldif"));

    // The sink reads the export; without `with_output` it has nowhere to write, and a plan
    // never writes anyway.
    let sink = LdifSink::open(&export, MatchAttribute::SamAccountName)?;
    let engine = Engine::new(FolderSource::new(&photos)).with_sink(sink, Profile::ad_thumbnail());
    let prepared = engine.prepare().await?;
    for item in prepared
        .plan()
        .items
        .iter()
        .filter(|i| i.action != Action::Skip)
    {
        println!(
            "{:<6} {:<20} {:?}{}",
            format!("{:?}", item.action).to_lowercase(),
            item.key.as_str(),
            item.reason,
            item.detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
    }
    for f in prepared.source_failures() {
        println!("source: {}: {}", f.kind, f.message);
    }
    let report = prepared.dry_run();
    let c = &report.sinks["ldif"];
    println!(
        "planned: {} to write, {} to remove, {} unchanged, {} failing",
        c.put, c.deleted, c.unchanged, c.failed
    );
    Ok(())
}
