//! `runs`: the runs in a backup journal.

use std::io::Write;
use std::process::ExitCode;

use crate::args::RunsArgs;
use crate::fail::fail;
use crate::open::backup_journal;

/// `runs`: the runs in a backup journal, oldest first, one line each.
pub(crate) fn runs(a: RunsArgs) -> ExitCode {
    let runs = match backup_journal(&a.backup_dir).and_then(|b| b.runs().map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mut out = std::io::stdout().lock();
    for r in &runs {
        let _ = writeln!(
            out,
            "{:22} {}  {:5} changes  {}{}",
            r.id,
            time(r.first),
            r.changes,
            r.sinks.join(","),
            r.undoes
                .as_deref()
                .map(|u| format!("  (restore of {u})"))
                .unwrap_or_default()
        );
    }
    if runs.is_empty() {
        let _ = writeln!(out, "no runs in {}", a.backup_dir.display());
    }
    ExitCode::SUCCESS
}

/// Seconds since the Unix epoch as an HTTP date (UTC).
fn time(secs: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}
