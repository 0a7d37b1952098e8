//! What the CLI's tests share: the binary under test, a fresh temporary folder, the DN of
//! a generated user. Each test binary uses a part of it, hence the `dead_code` allowances.

use std::path::PathBuf;
use std::process::Command;

/// A command for the `userphoto` binary that cargo built for these tests
/// (`CARGO_BIN_EXE_userphoto`), with the crash-test hook cleared.
pub fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_userphoto"));
    c.env_remove("USERPHOTO_TEST_ABORT_AFTER");
    c
}

/// A fresh, empty folder `userphoto-SUITE-NAME-PID` under the system's temp folder.
#[allow(dead_code)]
pub fn tempdir(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("userphoto-{suite}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The DN the LDIF tests give a generated user.
#[allow(dead_code)]
pub fn dn(user: &str) -> String {
    format!("CN={user},OU=Staff,DC=example,DC=test")
}
