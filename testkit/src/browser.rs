//! Headless Chromium for tests of pages (the review page), through chromedriver and the
//! `fantoccini` WebDriver client.
//!
//! [`Browser::start`] finds `chromium` and `chromedriver` ([`Tools::find`]: the `CHROMIUM`
//! and `CHROMEDRIVER` variables, else the `PATH`), starts chromedriver on a free loopback
//! port as a child process, waits until its `/status` says it is ready (polling with a
//! deadline) and opens a session of headless Chromium with a fixed window size. When either
//! program is missing it calls [`crate::skip`] and returns `None` (a failure under
//! `USERPHOTO_REQUIRE_TOOLS=1`).
//!
//! ```no_run
//! # async fn demo() {
//! let Some(browser) = userphoto_testkit::browser::Browser::start().await else { return };
//! browser.client.goto("file:///tmp/page/index.html").await.unwrap();
//! browser.close().await;
//! # }
//! ```
//!
//! chromedriver runs in a process group of its own, and dropping the [`Browser`] (a test
//! that panics included) kills that group: chromedriver and the Chromium it started.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Re-exported so tests name the same version the kit connects with.
pub use fantoccini;

/// The browser window's size in CSS pixels (screenshots have this size).
pub const WINDOW: (u32, u32) = (1280, 900);

/// How long chromedriver may take to answer `/status` as ready.
const DRIVER_READY: Duration = Duration::from_secs(30);

/// The programs the browser tests need.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The Chromium (or Chrome) binary.
    pub chromium: PathBuf,
    /// The chromedriver binary (of the same major version).
    pub chromedriver: PathBuf,
}

impl Tools {
    /// `CHROMIUM` and `CHROMEDRIVER` when set, else the first of `chromium`,
    /// `chromium-browser`, `google-chrome`, `google-chrome-stable` and `chromedriver` on the
    /// `PATH`; `Err` says what is missing.
    pub fn find() -> Result<Tools, String> {
        let chromium = find_program(
            "CHROMIUM",
            &[
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ],
        );
        let chromedriver = find_program("CHROMEDRIVER", &["chromedriver"]);
        match (chromium, chromedriver) {
            (Ok(chromium), Ok(chromedriver)) => Ok(Tools {
                chromium,
                chromedriver,
            }),
            (a, b) => Err([a.err(), b.err()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }
}

/// The program `var` names (which must exist), or the first of `names` on the `PATH`.
fn find_program(var: &str, names: &[&str]) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{var}={} is not a file", path.display()))
        };
    }
    let dirs: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    for name in names {
        for dir in &dirs {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(format!(
        "none of {} on the PATH and {var} not set (Debian: apt install chromium chromium-driver)",
        names.join(", ")
    ))
}

/// A running chromedriver: killed, with the Chromium it started, when dropped.
pub struct Driver {
    child: Child,
    /// chromedriver's port on 127.0.0.1.
    pub port: u16,
    /// Holds chromedriver's log file (`--log-path`), named in errors.
    log_dir: tempfile::TempDir,
}

impl Driver {
    /// Starts `chromedriver` on a free port of 127.0.0.1 and waits until its `/status` says
    /// it is ready. A port taken between choosing it and chromedriver binding it makes
    /// chromedriver exit; then another port is tried (three times in all).
    pub async fn start(chromedriver: &Path) -> Result<Driver, String> {
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let log_dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
            let mut command = Command::new(chromedriver);
            command
                .arg(format!("--port={port}"))
                .arg(format!(
                    "--log-path={}",
                    log_dir.path().join("chromedriver.log").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            #[cfg(unix)]
            {
                use std::os::unix::process::CommandExt as _;
                // A group of its own: Drop kills chromedriver and Chromium together.
                command.process_group(0);
            }
            let child = command
                .spawn()
                .map_err(|e| format!("starting {}: {e}", chromedriver.display()))?;
            let mut driver = Driver {
                child,
                port,
                log_dir,
            };
            match driver.wait_ready().await {
                Ok(()) => return Ok(driver),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The WebDriver URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// chromedriver's log so far (for error messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// Polls `GET /status` until `value.ready` is true, chromedriver exits, or
    /// [`DRIVER_READY`] passes.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| e.to_string())?;
        let status = format!("{}/status", self.url());
        let deadline = Instant::now() + DRIVER_READY;
        loop {
            if let Ok(Some(exit)) = self.child.try_wait() {
                return Err(format!(
                    "chromedriver exited ({exit}) before it was ready; its log:\n{}",
                    self.log()
                ));
            }
            if let Ok(resp) = http.get(&status).send().await {
                if let Ok(body) = resp.json::<serde_json::Value>().await {
                    if body["value"]["ready"] == serde_json::Value::Bool(true) {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "chromedriver not ready on {} after {DRIVER_READY:?}; its log:\n{}",
                    self.url(),
                    self.log()
                ));
            }
            // The poll interval of a loop with a deadline, not a wait for an event.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            // The whole group chromedriver leads (its id is the group's): Chromium's
            // processes too, which a panicking test leaves without a closed session.
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg("--")
                .arg(format!("-{}", self.child.id()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (bound and released).
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| format!("binding a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// The capabilities of a headless Chromium session: `--headless=new`, `--no-sandbox` (the
/// tests may run as root, where Chromium's sandbox refuses to start), no GPU, no `/dev/shm`
/// (small in containers), the fixed [`WINDOW`] size.
pub fn headless_capabilities(chromium: &Path) -> fantoccini::wd::Capabilities {
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        "--no-default-browser-check".to_owned(),
        "--disable-extensions".to_owned(),
        "--hide-scrollbars".to_owned(),
        format!("--window-size={},{}", WINDOW.0, WINDOW.1),
    ];
    let mut caps = fantoccini::wd::Capabilities::new();
    caps.insert("browserName".into(), "chrome".into());
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium.to_string_lossy(),
            "args": args,
        }),
    );
    caps
}

/// A WebDriver session of headless Chromium and the chromedriver behind it.
pub struct Browser {
    /// The session.
    pub client: fantoccini::Client,
    /// chromedriver (dropped after the client).
    pub driver: Driver,
}

impl Browser {
    /// Finds the programs ([`Tools::find`]) and starts a session, or skips
    /// ([`crate::skip`]) and returns `None` when either program is missing. Fails (panics)
    /// when they are there but do not start.
    pub async fn start() -> Option<Browser> {
        let tools = match Tools::find() {
            Ok(tools) => tools,
            Err(why) => {
                crate::skip(&format!("headless Chromium tests: {why}"));
                return None;
            }
        };
        match Browser::launch(&tools).await {
            Ok(browser) => Some(browser),
            Err(e) => panic!("headless Chromium did not start: {e}"),
        }
    }

    /// Starts chromedriver and a headless Chromium session with `tools`.
    pub async fn launch(tools: &Tools) -> Result<Browser, String> {
        let driver = Driver::start(&tools.chromedriver).await?;
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(headless_capabilities(&tools.chromium))
        .connect(&driver.url())
        .await
        .map_err(|e| format!("new session: {e}; chromedriver's log:\n{}", driver.log()))?;
        Ok(Browser { client, driver })
    }

    /// Ends the session (Chromium quits), then stops chromedriver.
    pub async fn close(self) {
        let Browser { client, driver } = self;
        let _ = client.close().await;
        drop(driver);
    }
}

/// `file://` URL of an absolute local path (percent-encoding what a URL path cannot hold).
pub fn file_url(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut url = String::from("file://");
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}
