//! What the CLI's tests share: the binary under test.

use std::process::Command;

/// A command for the `userphoto` binary that cargo built for these tests
/// (`CARGO_BIN_EXE_userphoto`), with the crash-test hook cleared.
pub fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_userphoto"));
    c.env_remove("USERPHOTO_TEST_ABORT_AFTER");
    c
}
