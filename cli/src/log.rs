//! The CLI's logs: the library's `tracing` spans and events, as JSON lines in a file
//! (`--log-file`) or as human lines on stderr.
//!
//! - `--log-file FILE` appends one JSON object per event, one a line: `timestamp` (RFC 3339,
//!   UTC), `level`, `target`, `fields` (the event's message and fields), `span` and `spans`
//!   (the spans it happened in: the run, the stage, the user's write). The file is created
//!   if missing (readable by its owner only, on Unix) and appended to, so a scheduled task
//!   can keep one log over many runs and rotate it with the tools it has.
//! - `--log-level error|warn|info|debug|trace|off` sets userphoto's own level (default
//!   `info` with a log file); the libraries it builds on log at `warn` and above. Without
//!   `--log-level`, `RUST_LOG` is read when set, as a full `tracing` filter
//!   (`RUST_LOG=userphoto=debug,hyper=info`).
//! - Without a log file, the events go to stderr, as human lines, only when asked for with
//!   `--log-level` or `RUST_LOG`: the lines the CLI prints on stderr (progress, the reason a
//!   run stopped) are as before either way.
//!
//! What is logged never holds a secret, a token or a photo: the library's events carry user
//! keys, DNs, sink names, outcomes, durations, HTTP statuses and Graph's `request-id` and
//! `client-request-id`, never headers or bodies (tested by the CLI tests in
//! `cli/tests/log.rs`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The logging options, global to every subcommand (and keys of the config file).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Append the run's events to this file as JSON lines (timestamp, level, target, fields,
    /// spans), one event a line. Never holds a secret, a token or a photo.
    #[arg(long = "log-file", value_name = "FILE", global = true)]
    pub log_file: Option<PathBuf>,
    /// userphoto's log level (default info with --log-file; other libraries log at warn
    /// and above). Without it, RUST_LOG is read as a full tracing filter when set.
    #[arg(long = "log-level", value_name = "LEVEL", value_enum, global = true)]
    pub log_level: Option<Level>,
}

/// A log level.
#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum Level {
    /// Nothing at all.
    Off,
    /// Run-level failures.
    Error,
    /// Users that failed, retries, reconnects.
    Warn,
    /// Runs, stages, each write with its outcome and duration, each Graph request.
    Info,
    /// Reads, normalizations, connections.
    Debug,
    /// Everything.
    Trace,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// The filter: `--log-level` for userphoto's targets (the others at warn), else `RUST_LOG`,
/// else `default` for userphoto's targets.
fn filter(level: Option<Level>, default: Option<Level>) -> Result<Option<EnvFilter>, String> {
    let ours = |l: Level| {
        let l = l.as_str();
        // The library's targets start with `userphoto::`, the CLI's with `userphoto::cli`
        // (set on its events) or `userphoto` (the crate name of the binary).
        EnvFilter::try_new(format!("warn,userphoto={l}")).map_err(|e| format!("--log-level: {e}"))
    };
    if let Some(l) = level {
        return ours(l).map(Some);
    }
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(v.trim())
            .map(Some)
            .map_err(|e| format!("RUST_LOG: {e}")),
        _ => default.map(ours).transpose(),
    }
}

/// Sets up the logs for this process. Errors (a log file that cannot be opened, a bad
/// RUST_LOG) are bad usage: the caller exits 2 with the message.
pub fn init(args: &LogArgs) -> Result<(), String> {
    match &args.log_file {
        Some(path) => {
            let Some(filter) = filter(args.log_level, Some(Level::Info))? else {
                return Ok(());
            };
            let file =
                open_append(path).map_err(|e| format!("--log-file {}: {e}", path.display()))?;
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file));
            tracing_subscriber::registry()
                .with(layer.with_filter(filter))
                .try_init()
                .map_err(|e| format!("--log-file: {e}"))
        }
        None => {
            let Some(filter) = filter(args.log_level, None)? else {
                return Ok(());
            };
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
            tracing_subscriber::registry()
                .with(layer.with_filter(filter))
                .try_init()
                .map_err(|e| format!("logging: {e}"))
        }
    }
}

use tracing_subscriber::Layer as _;

/// Opens the log file to append to, created if missing (owner-only on Unix: the log names
/// users).
fn open_append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}
