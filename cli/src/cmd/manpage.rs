//! `manpage`: roff pages from the clap definition.

use std::io::Write;
use std::process::ExitCode;

use crate::fail::fail;

/// `userphoto manpage [SUBCOMMAND]`: the roff page of the CLI or of one subcommand
/// (`userphoto-sync(1)`), from the clap definition.
pub(crate) fn manpage(mut cmd: clap::Command, subcommand: Option<&str>) -> ExitCode {
    cmd.build();
    let page = match subcommand {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sc) => sc.clone().name(format!("userphoto-{}", sc.get_name())),
            None => return fail(format!("manpage: no subcommand {name:?}")),
        },
    };
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(page).render(&mut out) {
        return fail(format!("manpage: {e}"));
    }
    match std::io::stdout().write_all(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("manpage: {e}")),
    }
}
