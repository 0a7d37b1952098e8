//! `sync` (and `plan`, which is a dry run that prints no summary): the sync engine from the
//! command line: open the source, the state store and the sinks, plan, apply, report.

use std::process::ExitCode;
use std::sync::Arc;

use userphoto::normalize::Normalizer;
use userphoto::review::{Review, ReviewOptions, SOURCE_PREVIEW_SIDE};
use userphoto::sink::DirectorySink;
use userphoto::source::PhotoSource;
use userphoto::sync::{BackupStore, Engine, Plan, Policy, Reason, Report, SavedPlan, StateStore};
use userphoto::{Error, ErrorKind};

use crate::args::RunArgs;
use crate::fail::fail;
use crate::hint::{explain, explain_failure};
use crate::open::{none_matched, open_sinks, open_source, profile_for};
use crate::print::print_plan;
use crate::progress::progress;

pub(crate) fn engine_for(
    a: &RunArgs,
    source: Box<dyn PhotoSource>,
    sinks: Vec<Arc<dyn DirectorySink>>,
    state: Option<StateStore>,
) -> Result<Engine, String> {
    let mut engine = Engine::new(source)
        .with_normalizer(Normalizer::new().with_crop(a.crop.mode()))
        .with_policy(
            Policy::default()
                .with_remove_leavers(a.remove_leavers)
                .with_remove_withheld(!a.keep_withheld),
        )
        .with_concurrency(a.concurrency)
        .with_max_consecutive_failures(a.max_consecutive_failures)
        .with_events(progress());
    if a.threads > 0 {
        engine = engine.with_threads(a.threads);
    }
    for s in sinks {
        let p = profile_for(s.as_ref(), a.profile);
        engine = engine.with_sink(s, p);
    }
    if let Some(st) = state {
        engine = engine.with_state(st);
    }
    if a.review.is_some() {
        engine = engine.with_previews(SOURCE_PREVIEW_SIDE);
    }
    if let Some(path) = &a.plan {
        let bytes = std::fs::read(path).map_err(|e| format!("--plan {}: {e}", path.display()))?;
        let approved = SavedPlan::from_json(&bytes)
            .map_err(|e| format!("--plan {}: {}", path.display(), e.message()))?;
        engine = engine.with_approved_plan(approved);
    }
    Ok(engine)
}

/// Writes `bytes` to `path` through a temporary file beside it and a rename, so a plan
/// file is whole or absent.
fn write_whole(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(|_| ()).map_err(|e| e.error)
}

/// `sync`: plan, apply (unless `--dry-run`), report.
pub(crate) fn sync(a: RunArgs) -> ExitCode {
    run(a, false)
}

pub(crate) fn run(a: RunArgs, plan_only: bool) -> ExitCode {
    let command = if plan_only { "plan" } else { "sync" };
    let span = tracing::info_span!("run", command, dry_run = a.dry_run);
    let _entered = span.enter();
    tracing::info!(
        target: "userphoto::cli",
        version = env!("CARGO_PKG_VERSION"),
        source = a.source.source.as_deref().unwrap_or_default(),
        sinks = ?a.sink.sinks,
        "run starts"
    );
    let code = run_in_span(a, plan_only);
    tracing::info!(target: "userphoto::cli", exit_code = code.0, "run ends");
    code.1
}

/// [`run`]'s work; the exit code twice: as a number for the log, and as the process's.
fn run_in_span(a: RunArgs, plan_only: bool) -> (u8, ExitCode) {
    let code = run_inner(a, plan_only);
    let n = if code == ExitCode::SUCCESS {
        0
    } else if code == ExitCode::from(1) {
        1
    } else {
        2
    };
    (n, code)
}

fn run_inner(a: RunArgs, plan_only: bool) -> ExitCode {
    let source = match open_source(&a.source, &a.sink) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let write = !a.dry_run;
    // The state store first: its lock refuses a second run on it before anything (the
    // change file included) is touched.
    let state = match a.state.as_ref().map(StateStore::open).transpose() {
        Ok(s) => s,
        Err(e) => {
            let path = a.state.as_deref().unwrap_or(std::path::Path::new(""));
            return fail(format!("--state {}: {}", path.display(), e.human()));
        }
    };
    let sinks = match open_sinks(&a.sink, a.out.as_ref(), write, a.concurrency) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    // The LDIF sinks by name, with their spec: an export that matches none of the source's
    // users stops the run (below) instead of failing every user.
    let ldif: Vec<(String, String)> = a
        .sink
        .sinks
        .iter()
        .zip(&sinks)
        .filter(|(spec, _)| spec.starts_with("ldif:"))
        .map(|(spec, s)| (s.name().to_owned(), spec.clone()))
        .collect();
    // (its LDAP name, as the export spells it: userPrincipalName for upn)
    let match_ldap_name = a
        .sink
        .match_name()
        .parse::<userphoto::MatchAttribute>()
        .map_or_else(
            |_| a.sink.match_name().to_owned(),
            |m| m.ldap_name().to_owned(),
        );
    let mut engine = match engine_for(&a, source, sinks, state) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    if write && !a.no_backup {
        match BackupStore::open(&a.backup_dir) {
            Ok(b) => engine = engine.with_backups(b),
            Err(e) => {
                return fail(format!(
                    "--backup-dir {}: {}",
                    a.backup_dir.display(),
                    e.human()
                ))
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let review_options = ReviewOptions::default()
        .with_all(a.review_all)
        .with_title(if plan_only {
            "userphoto plan"
        } else {
            "userphoto sync"
        })
        .with_crop(a.crop.name())
        .with_concurrency(a.concurrency);
    let report: Report = match rt.block_on(async {
        // A run that writes normalizes new users' photos while it writes; a dry run shows
        // the whole plan.
        let prepared = if a.dry_run {
            engine.prepare().await?
        } else {
            engine.prepare_to_apply().await?
        };
        unmatched_export(prepared.plan(), &ldif, &match_ldap_name)?;
        if !a.json {
            print_plan(prepared.plan(), prepared.source_failures(), a.dry_run);
        }
        if let Some(path) = &a.save_plan {
            write_whole(path, &prepared.saved_plan().to_json()).map_err(|e| {
                Error::new(
                    userphoto::ErrorKind::Config,
                    format!("--save-plan {}: {e}", path.display()),
                )
            })?;
            if !a.json {
                println!("  plan saved: {}", path.display());
            }
        }
        // The review's images before anything is written: the directory's photos as
        // they are now.
        let review = match &a.review {
            Some(dir) => Some(Review::collect(dir, &prepared, &review_options).await?),
            None => None,
        };
        let report = if a.dry_run {
            prepared.dry_run()
        } else {
            // A run stopped during the apply stage: its report says what was done, and
            // `aborted` why it stopped (exit code 2, below).
            prepared
                .apply()
                .await
                .unwrap_or_else(userphoto::sync::RunError::into_report)
        };
        if let Some(review) = review {
            let review = if a.dry_run {
                review
            } else {
                review.with_outcomes(&report)
            };
            let page = review.write()?;
            if !a.json {
                println!("  review: {}", page.display());
            }
        }
        Ok::<_, Error>(report)
    }) {
        Ok(r) => r,
        Err(e) => return fail(explain(&e)),
    };
    if let Some(path) = &a.report {
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(path, json) {
            return fail(format!("--report {}: {e}", path.display()));
        }
    }
    if a.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else if !plan_only {
        println!("{report}");
        if write && !a.no_backup {
            println!("  backups: {}", a.backup_dir.display());
        }
        if let (Some(out), false) = (&a.out, a.dry_run) {
            println!(
                "  changes: {} (apply with ldapmodify -f or ldifde -i)",
                out.display()
            );
        }
    }
    if let Some(ab) = &report.aborted {
        eprintln!("userphoto: stopped: {}", explain_failure(ab));
    }
    ExitCode::from(exit_code(&report))
}

/// A run-level error when an LDIF export (`ldif`: its sink's name and spec) holds none of
/// the users the source lists: a wrong `--match` or another export, not every user's
/// failure.
fn unmatched_export(plan: &Plan, ldif: &[(String, String)], matcher: &str) -> Result<(), Error> {
    for (name, spec) in ldif {
        let (mut listed, mut unmatched) = (0, 0);
        for it in plan
            .items
            .iter()
            .filter(|i| i.sink == *name && i.reason != Reason::Leaver)
        {
            listed += 1;
            unmatched += usize::from(it.reason == Reason::Unmatched);
        }
        if listed > 0 && unmatched == listed {
            return Err(Error::new(
                ErrorKind::Config,
                none_matched(spec, listed, matcher),
            ));
        }
    }
    Ok(())
}

/// The exit code of a run: 2 when it stopped on a run-level failure, 1 when some users (or
/// source items) failed, 0 when everything planned was applied.
fn exit_code(report: &Report) -> u8 {
    if report.aborted.is_some() {
        2
    } else if report.failed() > 0 {
        1
    } else {
        0
    }
}
