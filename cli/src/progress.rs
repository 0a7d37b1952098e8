//! The progress UI of a run: a bar on a terminal, plain lines otherwise (stderr either way).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use userphoto::sync::{Event, Stage};

/// Draws a progress bar on a terminal, plain lines otherwise (stderr either way). In a
/// build with the `test-hooks` feature (the CLI's tests only), also the crash-test hook:
/// with `USERPHOTO_TEST_ABORT_AFTER=N` the process aborts right after the N-th change is
/// written, as a power cut would stop it (used by tests/cli_sync.rs). Without the feature
/// the variable is never read.
pub(crate) fn progress() -> impl Fn(&Event) + Send + Sync + 'static {
    let tty = std::io::stderr().is_terminal();
    let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
    let total = AtomicUsize::new(0);
    #[cfg(feature = "test-hooks")]
    let abort_after: Option<usize> = std::env::var("USERPHOTO_TEST_ABORT_AFTER")
        .ok()
        .and_then(|v| v.parse().ok());
    move |e: &Event| {
        let line = |msg: String| {
            if !tty {
                eprintln!("userphoto: {msg}");
            }
        };
        match e {
            Event::Stage { stage, total: n } => {
                total.store(*n, Ordering::Relaxed);
                let what = match stage {
                    Stage::List => "listing the source".to_owned(),
                    Stage::Read => format!("reading {n} users from the directory"),
                    Stage::Normalize => format!("normalizing {n} photos"),
                    Stage::Apply => format!("applying {n} changes"),
                    _ => format!("{n} items"),
                };
                let mut b = bar.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(old) = b.take() {
                    old.finish_and_clear();
                }
                if tty && *stage != Stage::List {
                    let pb = ProgressBar::new(*n as u64);
                    pb.set_style(
                        ProgressStyle::with_template(
                            "{msg:34} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    pb.set_message(what);
                    *b = Some(pb);
                } else {
                    line(what);
                }
            }
            Event::Listed { photos, failures } => line(format!(
                "listed {photos} photos, {failures} source failures"
            )),
            Event::Read { done } | Event::Normalized { done, .. } => {
                if let Some(b) = &*bar.lock().unwrap_or_else(|p| p.into_inner()) {
                    b.set_position(*done as u64);
                }
            }
            Event::Written { done, .. } | Event::Failed { done, .. } => {
                if let Some(b) = &*bar.lock().unwrap_or_else(|p| p.into_inner()) {
                    b.set_position(*done as u64);
                }
                let n = total.load(Ordering::Relaxed);
                if !tty && (n <= 20 || done % (n / 10).max(1) == 0 || *done == n) {
                    line(format!("applied {done}/{n}"));
                }
                #[cfg(feature = "test-hooks")]
                if let (Event::Written { .. }, Some(limit)) = (e, abort_after) {
                    if *done >= limit {
                        std::process::abort();
                    }
                }
            }
            Event::Retrying {
                key,
                sink,
                kind,
                after,
                ..
            } => {
                let msg = format!(
                    "{sink}: {key}: {kind}, retrying in {:.1} s",
                    after.as_secs_f64()
                );
                match &*bar.lock().unwrap_or_else(|p| p.into_inner()) {
                    Some(b) => b.println(msg),
                    None => eprintln!("userphoto: {msg}"),
                }
            }
            Event::Planned { .. } | Event::Finished { .. } => {
                if let Some(b) = bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    b.finish_and_clear();
                }
            }
            _ => {}
        }
    }
}
