//! What the CLI's tests share: the binary under test, a fresh temporary folder, the DN of
//! a generated user, the `sync --sink graph` command run against the testkit's Graph
//! server. Each test binary uses a part of it, hence the `dead_code` allowances.

use std::path::Path;
use std::process::{Command, Output};

use userphoto_testkit::graph_server::GraphServer;

/// A command for the `userphoto` binary that cargo built for these tests
/// (`CARGO_BIN_EXE_userphoto`), with the crash-test hook cleared.
pub fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_userphoto"));
    c.env_remove("USERPHOTO_TEST_ABORT_AFTER");
    c
}

/// A fresh, empty folder `userphoto-SUITE-NAME-…` under the system's temp folder, removed
/// when dropped; it derefs to its path.
#[allow(dead_code)]
pub struct TestDir(tempfile::TempDir);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// A fresh [`TestDir`] named after the suite and the test.
#[allow(dead_code)]
pub fn tempdir(suite: &str, name: &str) -> TestDir {
    TestDir(
        tempfile::Builder::new()
            .prefix(&format!("userphoto-{suite}-{name}-"))
            .tempdir()
            .unwrap(),
    )
}

/// Asserts that a run given `USERPHOTO_TEST_ABORT_AFTER` was killed where asked (no exit
/// code: aborted), which only a binary built with the `test-hooks` feature does.
#[allow(dead_code)]
pub fn assert_aborted(o: &Output) {
    assert_eq!(
        o.status.code(),
        None,
        "the run was to abort after USERPHOTO_TEST_ABORT_AFTER writes, but it exited: the \
         crash-test hook is only in a binary built with --features test-hooks (cargo test \
         -p userphoto-cli --features test-hooks)\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The DN the LDIF tests give a generated user.
#[allow(dead_code)]
pub fn dn(user: &str) -> String {
    format!("CN={user},OU=Staff,DC=example,DC=test")
}

/// `userphoto sync --source folder:photos --sink graph --graph-url URL`, run in `dir`
/// against `srv`: what every Graph run shares. The caller adds the credential (see
/// [`graph_sync_with_secret`]) and its own flags.
#[allow(dead_code)]
pub fn graph_sync(dir: &Path, srv: &GraphServer) -> Command {
    let mut c = cli();
    c.current_dir(dir)
        .args(["sync", "--source", "folder:photos", "--sink", "graph"])
        .args(["--graph-url", &srv.base_url()]);
    c
}

/// [`graph_sync`] with an app's client secret: `--tenant` and `--client-id` of `srv`'s
/// app, `secret` in `GRAPH_TEST_SECRET` named by `--client-secret-env`, `--login-url`
/// of `srv`.
#[allow(dead_code)]
pub fn graph_sync_with_secret(dir: &Path, srv: &GraphServer, secret: &str) -> Command {
    let mut c = graph_sync(dir, srv);
    c.env("GRAPH_TEST_SECRET", secret)
        .args([
            "--tenant",
            &srv.tenant_id(),
            "--client-id",
            &srv.client_id(),
        ])
        .args(["--client-secret-env", "GRAPH_TEST_SECRET"])
        .args(["--login-url", &srv.login_url()]);
    c
}

/// Asserts that a run exited 0 (showing its stdout and stderr if not) and returns its stdout.
#[allow(dead_code)]
pub fn succeeded(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}
