//! `audit`: what every `--sink` shows against what the source would give, per user, with
//! the options (or config file) of `sync`; writes nothing (no photo, no state record, no
//! backup, no change file).
//!
//! Output: one JSON object per user and sink on stdout (`user`, `sink`, `state`, and the
//! details known: `width`, `height`, `expected_side`, `similarity`, `etag`, `recorded`),
//! sorted by user then sink; on stderr the users that could not be checked and a summary
//! (the count per state). Exit code 0 when every user is `in-sync` in every sink, 1 when
//! any is not (or could not be checked), 2 on bad usage or a run-level failure.
//!
//! With `--review DIR`, a review page of the audit: a card per user and sink that is not
//! in sync (every one with `--review-all`), with its state, the photo the directory shows,
//! the rendition the source gives and the change a sync would make (the engine's plan,
//! made after the audit; it writes nothing either).

use std::io::Write;
use std::process::ExitCode;

use userphoto::human_message;
use userphoto::review::{Review, ReviewOptions};
use userphoto::sync::StateStore;

use crate::args::AuditArgs;
use crate::fail::fail;
use crate::hint::explain;
use crate::open::{open_sinks, open_source};

/// `audit`: judge, print, exit 0 (all in sync), 1 (some not) or 2.
pub(crate) fn audit(a: AuditArgs) -> ExitCode {
    let a = a.run;
    let source = match open_source(&a.source, &a.sink) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let state = match a.state.as_ref().map(StateStore::open).transpose() {
        Ok(s) => s,
        Err(e) => {
            let path = a.state.as_deref().unwrap_or(std::path::Path::new(""));
            return fail(format!("--state {}: {e}", path.display()));
        }
    };
    // Opened as for a dry run: nothing is written (an LDIF sink needs no change file).
    let sinks = match open_sinks(&a.sink, None, false, a.concurrency) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let engine = match super::sync::engine_for(&a, source, sinks, state) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let audit = match rt.block_on(engine.audit()) {
        Ok(x) => x,
        Err(e) => return fail(explain(&e)),
    };
    let review = a.review.as_ref().map(|dir| {
        let options = ReviewOptions::default()
            .with_all(a.review_all)
            .with_title("userphoto audit")
            .with_crop(a.crop.name())
            .with_concurrency(a.concurrency);
        rt.block_on(async {
            let prepared = engine.prepare().await?;
            Review::collect_audit(dir, &prepared, &audit, &options)
                .await?
                .write()
        })
    });
    let mut out = std::io::stdout().lock();
    for item in &audit.items {
        let line = serde_json::to_string(item).unwrap_or_default();
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    let _ = out.flush();
    for f in &audit.source_failures {
        eprintln!("userphoto audit: source: {}", human_message(&f.message));
    }
    for f in &audit.failures {
        match &f.sink {
            Some(s) => eprintln!(
                "userphoto audit: {} in {s}: could not be checked: {}",
                f.key,
                human_message(&f.message)
            ),
            None => eprintln!(
                "userphoto audit: {}: could not be checked: {}",
                f.key,
                human_message(&f.message)
            ),
        }
    }
    match review {
        Some(Ok(page)) => eprintln!("userphoto audit: review: {}", page.display()),
        Some(Err(e)) => {
            eprintln!("userphoto {audit}");
            return fail(format!("the review page: {}", explain(&e)));
        }
        None => {}
    }
    eprintln!("userphoto {audit}");
    if audit.all_in_sync() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
