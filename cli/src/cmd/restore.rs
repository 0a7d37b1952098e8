//! `restore`: undo a sync run from its backups.

use std::process::ExitCode;

use userphoto::sync::{RestoreOptions, Restored};
use userphoto::UserKey;

use crate::args::RestoreArgs;
use crate::fail::fail;
use crate::hint::explain;
use crate::open::{backup_journal, open_sinks};

/// `restore`: undo a sync run (the last by default): put back the photos it replaced or
/// removed and remove the first photos it added, skipping photos changed since unless
/// `--force`; what is overwritten is backed up in the restore's own run.
pub(crate) fn restore(a: RestoreArgs) -> ExitCode {
    let backups = match backup_journal(&a.backup_dir) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let sinks = match open_sinks(&a.sink, a.out.as_ref(), true, 4) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut opts = RestoreOptions::new().force(a.force);
    if !a.users.is_empty() {
        opts = opts.users(a.users.iter().map(UserKey::new));
    }
    if let Some(run) = &a.run {
        opts = opts.run(run);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let mut incomplete = false;
    let mut own_run = None;
    for (sink, spec) in sinks.iter().zip(&a.sink.sinks) {
        let done = match rt.block_on(backups.restore_run(sink.as_ref(), &opts)) {
            Ok(d) => d,
            Err(e) => return fail(explain(&e)),
        };
        // An export is the directory as it was when exported: until the run's change file is
        // applied and the users exported again, it holds none of the run's photos, so there
        // is nothing to undo in it.
        let offline = spec.starts_with("ldif:").then(|| {
            format!(
                "  {} is an LDIF export: it shows the directory as it was exported, so it \
                 holds the run's photos only once the run's change file is applied and the \
                 users are exported again; restore against that new export",
                spec.trim_start_matches("ldif:")
            )
        });
        if done.users.is_empty() {
            println!("{}: nothing to restore", sink.name());
            if let Some(note) = &offline {
                println!("{note}");
            }
            continue;
        }
        let (mut restored, mut skipped, mut failed) = (0, 0, 0);
        for u in &done.users {
            let user = &u.user;
            match &u.result {
                Ok(Restored::Photo) => {
                    restored += 1;
                    println!("  restored {user:24} {}", sink.name())
                }
                Ok(Restored::Removed) => {
                    restored += 1;
                    println!("  removed  {user:24} {} (had no photo before)", sink.name())
                }
                Ok(Restored::AlreadyUndone) => {
                    println!(
                        "  already  {user:24} {} (has its photo from before)",
                        sink.name()
                    )
                }
                Ok(Restored::Skipped { reason }) => {
                    skipped += 1;
                    println!(
                        "  SKIP     {user:24} {}: {reason} (--force restores it anyway)",
                        sink.name()
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    failed += 1;
                    println!("  FAIL     {user:24} {}: {}", sink.name(), explain(e));
                }
            }
        }
        incomplete |= skipped + failed > 0;
        println!(
            "{}: run {} undone for {restored} users, {skipped} skipped, {failed} failed",
            sink.name(),
            done.undone
        );
        if let (0, Some(note)) = (restored, &offline) {
            println!("{note}");
        }
        own_run = done.run.or(own_run);
    }
    if let Some(run) = own_run {
        println!("  this restore is backup run {run} (restore --run {run} undoes it)");
    }
    ExitCode::from(u8::from(incomplete))
}
