//! The example CLI binary that `cargo test` builds next to the test binaries.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Where `cargo test` puts the example CLI binary, built or not.
pub fn cli_exe() -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("examples")
        .join(format!("userphoto{}", std::env::consts::EXE_SUFFIX))
}

/// A command for `target/<profile>/examples/userphoto`, with the crash-test hook cleared.
pub fn cli() -> Command {
    let exe = cli_exe();
    assert!(
        exe.exists(),
        "{} not built (cargo test builds examples)",
        exe.display()
    );
    let mut c = Command::new(exe);
    c.env_remove("USERPHOTO_TEST_ABORT_AFTER");
    c
}
