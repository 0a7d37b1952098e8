//! How a command stops: a run-level failure or bad usage is exit code 2 with one line on
//! stderr (and in the log).

use std::process::ExitCode;

/// A run-level failure or bad usage: exit code 2 with one line.
pub(crate) fn fail(msg: impl std::fmt::Display) -> ExitCode {
    tracing::error!(target: "userphoto::cli", reason = %msg, exit_code = 2, "stopped");
    eprintln!("userphoto: {msg}");
    ExitCode::from(2)
}
