//! `plan`: what `sync` would do, printed; nothing changes.

use std::process::ExitCode;

use crate::args::RunArgs;

/// `plan`: print what a sync would do and change nothing.
pub(crate) fn plan(mut a: RunArgs) -> ExitCode {
    a.dry_run = true;
    super::sync::run(a, true)
}
