//! The userphoto command line.
//!
//! ```text
//! userphoto normalize --profile ad-thumbnail|ad-large|graph [--size N] [--max-bytes N]
//!                     [--threads N] --out DIR FILE...
//! userphoto demo [--out DIR]
//! userphoto sync --source folder:DIR|csv:FILE|ldap[:ATTR] [--match ATTR] [--csv-delimiter ,|;|tab]
//!                --sink ldif:EXPORT.ldif --out CHANGES.ldif | --sink ad | --sink graph ...
//!                [--profile ad-thumbnail|ad-large|graph] [--dry-run] [--report FILE.json]
//!                [--state FILE] [--backup-dir DIR] [--remove-leavers] [--concurrency N]
//!   --sink ad / --source ldap: --ldap-url URL [--ca-cert FILE] [--starttls] --bind-dn DN
//!                --bind-password-env VAR | --bind-password-file FILE --base-dn DN [--attribute NAME]
//!   --sink graph: --tenant TENANT --client-id ID (--client-secret-env VAR | --client-cert FILE
//!                --client-key FILE) [--cloud global|usgov|usgov-dod|china] [--graph-url URL]
//!                [--login-url URL] [--graph-confirm-uploads]
//! userphoto plan    (the same options; prints the plan, changes nothing)
//! userphoto check   (the same options, --source optional; [--check-sample N]: checks
//!                   that a sync could run, writes nothing; exit 0 or 2)
//! userphoto audit   (the options of sync; one JSON line per user and sink, writes nothing;
//!                   exit 0 all in sync, 1 some not, 2 run-level failure)
//! userphoto restore --sink ldif:EXPORT.ldif --out CHANGES.ldif [--backup-dir DIR] [--user KEY]...
//!                   [--run ID] [--force]
//! userphoto runs [--backup-dir DIR]
//! userphoto config init                  (prints a commented example config file)
//! userphoto completions bash|zsh|fish|powershell|elvish
//! userphoto manpage [SUBCOMMAND]
//! ```
//!
//! `sync`, `plan` and `restore` take `--config FILE`: a TOML file whose keys are their long
//! options without the dashes (see the `config` module); the command line wins.
//!
//! `normalize` writes `DIR/<file stem>.jpg` for every input and prints one JSON object per
//! input on stdout: `input`, `output`, `ok`, `bytes`, `width`, `height`, `quality`, and on
//! failure `error_kind` and `error`. Exit code 0 when all succeeded, 1 when any failed, 2 on
//! bad usage.
//!
//! `sync` lists the source, reads the directory, normalizes what may need writing (the
//! photos of users who have none yet while it writes), prints the plan, applies it (a progress bar on a terminal, plain lines on stderr otherwise) and
//! prints a summary; `--report` writes the JSON report. Exit code 0 when everything planned
//! was applied, 1 when some users failed, 2 on bad usage or a run-level failure (with a
//! one-line reason on stderr).
//!
//! `demo` generates a few photos of its own (landscape, portrait with EXIF orientation,
//! transparent PNG, a huge-header bomb and a truncated file) and normalizes them for every
//! built-in profile, so it runs on a machine with no photos at all.
//!
//! The modules: `args` (the options, as clap parses them), `open` (sources and sinks opened
//! from them), `cmd` (one module per subcommand; `main` only parses and dispatches),
//! `progress` (the progress bar and lines of a run), `print` (the plan as text), `fail`
//! (exit code 2 with one line), `hint` (the library's errors with advice naming the flags
//! and config-file keys), `config` (`--config FILE`) and `log` (`--log-file`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod args;
mod cmd;
mod config;
mod fail;
mod hint;
mod log;
mod open;
mod print;
mod progress;

use args::{AuditArgs, CheckArgs, NormalizeArgs, RestoreArgs, RunArgs, RunsArgs};
use fail::fail;

#[derive(Parser)]
#[command(
    name = "userphoto",
    version,
    about = "One photo per person, written everywhere it is shown",
    after_long_help = "Config file: sync, plan, check and restore read their options from a TOML \
        file with --config FILE, one key per long option without the dashes (source, sink, \
        out, state, ldap-url, bind-password-env, ...); options on the command line win, and \
        relative paths in the file are taken from its folder. Secrets are never values in the \
        file: name an environment variable (*-env) or a file (*-file). `userphoto config init` \
        prints a commented example.\n\n\
        Exit codes: 0 everything planned was applied, 1 some users failed (see the report), \
        2 bad usage or a run-level failure."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: log::LogArgs,
}

/// The examples at the end of `userphoto sync --help`.
const SYNC_EXAMPLES: &str = "\
Examples:
  # An LDIF export in, a change file for ldapmodify or ldifde out
  userphoto sync --source folder:photos --sink ldif:users.ldif --out changes.ldif

  # Straight into Active Directory, the password from an environment variable
  userphoto sync --source folder:photos --sink ad --ldap-url ldaps://dc1.example.com \\
      --bind-dn svc-photos@example.com --bind-password-env AD_PASSWORD \\
      --base-dn \"OU=Staff,DC=example,DC=com\" --state ad.state

  # Everything from a config file (userphoto config init prints one); plan only
  userphoto sync --config userphoto.toml --dry-run";

#[derive(Subcommand)]
enum Command {
    /// Normalize image files into JPEG renditions for one profile.
    Normalize(NormalizeArgs),
    /// Sync photos from a source into directories: plan, apply, report.
    #[command(after_help = SYNC_EXAMPLES)]
    Sync(RunArgs),
    /// Print what `sync` would do; change nothing.
    Plan(RunArgs),
    /// Check, writing nothing, that a sync could run: the account may write photos (AD:
    /// asks the DC on a sample of users; Graph: the token's roles and one user read; LDIF:
    /// the export's users and photos). Exit 0 when it could, 2 with the reason when not.
    #[command(mut_arg("source", |a| a.required(false)))]
    Check(CheckArgs),
    /// Tell, writing nothing, what each directory shows against what the source would give:
    /// one JSON line per user and sink (`user`, `sink`, `state`: in-sync, missing, low-res,
    /// changed-elsewhere, differs, outdated, withheld, not-in-directory), a summary on
    /// stderr. Exit 0 when every user is in sync, 1 when any is not, 2 on a run-level failure.
    Audit(AuditArgs),
    /// Undo a sync: put back the photos it replaced or removed, remove the first photos it
    /// added.
    Restore(RestoreArgs),
    /// List the runs in a backup journal (what `restore --run` takes).
    Runs(RunsArgs),
    /// Write the demo sync's photos and directory export (examples/demo is made with this).
    #[command(hide = true)]
    DemoFixtures {
        /// Folder to write `photos/` and `directory.ldif` into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Generate sample photos and normalize them for every built-in profile.
    Demo {
        /// Folder for the samples and the renditions.
        #[arg(long, default_value = "userphoto-demo")]
        out: PathBuf,
    },
    /// The config file that `--config FILE` reads.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print the shell completion script for SHELL on stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout: userphoto(1), or one subcommand's.
    Manpage {
        /// The subcommand whose page to print, as in `userphoto manpage sync`.
        subcommand: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print a commented example config file on stdout (`userphoto config init > userphoto.toml`).
    Init,
}

fn main() -> ExitCode {
    let argv = match config::apply(Cli::command(), std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Err(e) = log::init(&cli.log) {
        return fail(e);
    }
    match cli.command {
        Command::Normalize(a) => cmd::normalize::normalize(a),
        Command::Sync(a) => cmd::sync::sync(a),
        Command::Plan(a) => cmd::plan::plan(a),
        Command::Check(a) => cmd::check::check(a),
        Command::Audit(a) => cmd::audit::audit(a),
        Command::Restore(a) => cmd::restore::restore(a),
        Command::Runs(a) => cmd::runs::runs(a),
        Command::Demo { out } => cmd::demo::demo(&out),
        Command::DemoFixtures { out } => cmd::demo::demo_fixtures(&out),
        Command::Config {
            action: ConfigAction::Init,
        } => {
            print!("{}", config::EXAMPLE);
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "userphoto",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Manpage { subcommand } => {
            cmd::manpage::manpage(Cli::command(), subcommand.as_deref())
        }
    }
}
