//! `sync`, `plan` and `restore`: the sync engine from the command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use userphoto::normalize::{CropWarning, Normalizer, Profile};
use userphoto::sink::{AdSink, DirectorySink, LdapConfig, LdifSink, Secret};
use userphoto::source::{CsvSource, FolderSource, KeyRule, LdapSource, PhotoSource};
use userphoto::sync::{
    Action, BackupStore, Engine, Event, Plan, Policy, Reason, Report, RestoreOptions, Restored,
    SourceFailure, Stage, StateStore,
};
use userphoto::{Error, MatchAttribute, UserKey};

use super::graph::{open_graph_sink, GraphArgs};
use super::{CropName, ProfileName};

/// Where photos come from and how keys are read.
#[derive(Args, Debug)]
pub struct SourceArgs {
    /// The photos: `folder:DIR` (files named by user key), `csv:FILE` (a `key,path[,withheld]`
    /// manifest) or `ldap[:ATTRIBUTE]` (a directory's `thumbnailPhoto` or another attribute,
    /// through the `--ldap-url` options; keys from `--match`).
    #[arg(long, required = true)]
    source: Option<String>,
    /// Folder source: look in subfolders too.
    #[arg(long)]
    recursive: bool,
    /// Folder source: a regex whose first capture group (or `key` group) is the key, matched
    /// against the file name.
    #[arg(long)]
    key_regex: Option<String>,
    /// CSV source: the field separator, `,`, `;`, `tab` or one character (default: found
    /// from the header line, which must name a `key` and a `path` column).
    #[arg(long)]
    csv_delimiter: Option<String>,
}

/// How to reach a directory over LDAP (`--sink ad`, `--source ldap`). The password is read
/// from an environment variable or a file, never from the command line.
#[derive(Args, Debug)]
pub struct LdapArgs {
    /// The directory: `ldaps://host[:636]`, or `ldap://host[:389]` with `--starttls`.
    #[arg(long)]
    ldap_url: Option<String>,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    #[arg(long)]
    starttls: bool,
    /// Trust only the CA certificates in this PEM file (default: the system's roots).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Accept any server certificate. Insecure: anyone on the path can read the password.
    #[arg(long)]
    insecure_skip_tls_verify: bool,
    /// Allow `ldap://` without StartTLS (AD refuses a simple bind over it anyway).
    #[arg(long)]
    allow_plain_ldap: bool,
    /// Bind as this DN, UPN (`svc@example.com`) or down-level name (`EXAMPLE\svc`).
    #[arg(long)]
    bind_dn: Option<String>,
    /// The environment variable that holds the bind password.
    #[arg(long, conflicts_with = "bind_password_file")]
    bind_password_env: Option<String>,
    /// The file that holds the bind password (one trailing line break is ignored).
    #[arg(long)]
    bind_password_file: Option<PathBuf>,
    /// Bind with Kerberos (GSSAPI) from the credentials cache (`kinit`) instead.
    #[cfg(feature = "gssapi")]
    #[arg(long, conflicts_with = "bind_dn")]
    gssapi: bool,
    /// The host in the Kerberos service principal `ldap/HOST` (default: the URL's host).
    #[cfg(feature = "gssapi")]
    #[arg(long)]
    gssapi_host: Option<String>,
    /// Where users are searched (subtree).
    #[arg(long)]
    base_dn: Option<String>,
    /// The filter that selects users (default `(&(objectCategory=person)(objectClass=user))`).
    #[arg(long)]
    ldap_filter: Option<String>,
    /// Seconds each LDAP operation may take.
    #[arg(long, default_value_t = 30)]
    ldap_timeout: u64,
    /// Connections to the directory (each carries many operations at once).
    #[arg(long, default_value_t = 1)]
    ldap_connections: usize,
}

fn ldap_config(l: &LdapArgs, what: &str) -> Result<LdapConfig, String> {
    let url = l
        .ldap_url
        .as_deref()
        .ok_or_else(|| format!("{what} needs --ldap-url ldaps://HOST or ldap://HOST --starttls"))?;
    let base = l
        .base_dn
        .as_deref()
        .ok_or_else(|| format!("{what} needs --base-dn"))?;
    let mut cfg = LdapConfig::new(url, base)
        .starttls(l.starttls)
        .allow_plain(l.allow_plain_ldap)
        .insecure_skip_tls_verify(l.insecure_skip_tls_verify)
        .operation_timeout(std::time::Duration::from_secs(l.ldap_timeout.max(1)))
        .connections(l.ldap_connections);
    if let Some(ca) = &l.ca_cert {
        cfg = cfg.ca_file(ca);
    }
    #[cfg(feature = "gssapi")]
    if l.gssapi {
        cfg = match &l.gssapi_host {
            Some(h) => cfg.gssapi_service_host(h),
            None => cfg.gssapi_bind(),
        };
        return Ok(cfg);
    }
    let user = l
        .bind_dn
        .as_deref()
        .ok_or_else(|| format!("{what} needs --bind-dn (a DN, UPN or DOMAIN\\user)"))?;
    let password = match (&l.bind_password_env, &l.bind_password_file) {
        (Some(var), _) => Secret::from_env(var).map_err(|e| format!("--bind-password-env: {}", e.message()))?,
        (None, Some(file)) => {
            Secret::from_file(file).map_err(|e| format!("--bind-password-file: {}", e.message()))?
        }
        (None, None) => {
            return Err(
                "--bind-dn needs --bind-password-env VAR or --bind-password-file FILE (never the password itself)"
                    .into(),
            )
        }
    };
    Ok(cfg.simple_bind(user, password))
}

/// Where photos go.
#[derive(Args, Debug)]
pub struct SinkArgs {
    /// The directory: `ldif:EXPORT.ldif` (an LDIF export of the users, from `ldapsearch` or
    /// `ldifde`; changes go to `--out`) or `ad` (Active Directory over LDAP: see
    /// `--ldap-url`; the default profile is `ad-thumbnail`, `--profile ad-large` writes 648 px)
    /// or `graph` (Microsoft 365 through Microsoft Graph: see `--tenant`; the default profile
    /// is `graph`). Repeat it to write several directories from one decode.
    #[arg(long = "sink", required = true)]
    sinks: Vec<String>,
    /// The directory attribute that keys are matched against (sAMAccountName,
    /// userPrincipalName (upn), mail, employeeID, employeeNumber, objectGUID, or any
    /// attribute; for Graph also `id`). Default: sAMAccountName, or upn when the only sink is
    /// `graph`.
    #[arg(long = "match")]
    match_attr: Option<String>,
    /// The photo attribute.
    #[arg(long, default_value = "thumbnailPhoto")]
    attribute: String,
    #[command(flatten)]
    ldap: LdapArgs,
    #[command(flatten)]
    graph: GraphArgs,
}

impl SinkArgs {
    /// `--match`, or the default for the sinks given.
    fn match_name(&self) -> &str {
        match &self.match_attr {
            Some(m) => m,
            None if self
                .sinks
                .iter()
                .all(|s| s == "graph" || s.starts_with("graph:")) =>
            {
                "upn"
            }
            None => "sAMAccountName",
        }
    }
}

/// `sync` and `plan` options.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    sink: SinkArgs,
    /// The LDIF change file to write (`ldif:` sinks).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The rendition profile (default: the sink's, `ad-thumbnail` for AD and LDIF).
    #[arg(long, value_enum)]
    profile: Option<ProfileName>,
    /// Where the square goes: `face` (a head-and-shoulders square around the main face,
    /// attention when there is none), `attention` or `centre`. Changing it makes every
    /// rendition again (the state file records the crop).
    #[arg(long, value_enum, default_value_t = CropName::Face)]
    crop: CropName,
    /// Plan and report, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The state store (one file, created if missing): unchanged users are not decoded
    /// again, and an interrupted run resumes.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Keep every photo that is replaced or removed here (default: `userphoto-backup`).
    #[arg(long, default_value = "userphoto-backup")]
    backup_dir: PathBuf,
    /// Do not keep backups.
    #[arg(long, conflicts_with = "backup_dir")]
    no_backup: bool,
    /// Remove the photos of users the source no longer lists.
    #[arg(long)]
    remove_leavers: bool,
    /// Keep the photos of people who withdrew consent (they are removed by default).
    #[arg(long)]
    keep_withheld: bool,
    /// Calls in flight per sink.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Photos normalized at once (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Stop the run after this many writes in a row to one sink failed for reasons that are
    /// not the users' own (an account with no write rights, a directory gone); one user's
    /// refusal never stops a run. 0: never stop.
    #[arg(long, default_value_t = userphoto::sync::DEFAULT_MAX_CONSECUTIVE_FAILURES)]
    max_consecutive_failures: usize,
    /// Print the report as one JSON object on stdout instead of the human summary.
    #[arg(long)]
    json: bool,
    /// Read options from this TOML file: each key is an option's long name without the
    /// dashes (`userphoto config init` prints an example); the command line wins.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `restore` options.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    sink: SinkArgs,
    /// The LDIF change file to write (`ldif:` sinks).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The backup folder a sync wrote.
    #[arg(long, default_value = "userphoto-backup")]
    backup_dir: PathBuf,
    /// Restore only these users (repeatable; default: everyone the run changed).
    #[arg(long = "user")]
    users: Vec<String>,
    /// The run to undo, as `userphoto runs` lists them (default: the last sync run that
    /// changed the sink; a restore's own run can be named to undo the restore).
    #[arg(long = "run")]
    run: Option<String>,
    /// Restore users whose photo changed since the run too (what is overwritten is still
    /// backed up).
    #[arg(long)]
    force: bool,
    /// Read options from this TOML file: each key is an option's long name without the
    /// dashes; the command line wins.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `runs` options.
#[derive(Args, Debug)]
pub struct RunsArgs {
    /// The backup folder a sync wrote.
    #[arg(long, default_value = "userphoto-backup")]
    backup_dir: PathBuf,
}

/// A run-level failure or bad usage: exit code 2 with one line.
pub fn fail_msg(msg: impl std::fmt::Display) -> ExitCode {
    fail(msg)
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    tracing::error!(target: "userphoto::cli", reason = %msg, exit_code = 2, "stopped");
    eprintln!("userphoto: {msg}");
    ExitCode::from(2)
}

fn open_source(a: &SourceArgs, sink: &SinkArgs) -> Result<Box<dyn PhotoSource>, String> {
    // Required by clap for sync and plan (only `check` goes without).
    let source = a.source.as_deref().ok_or("--source is required")?;
    let (kind, arg) = match source.split_once(':') {
        Some(x) => x,
        None if source == "ldap" => ("ldap", ""),
        None => {
            return Err(format!(
                "--source {source:?}: expected folder:DIR, csv:FILE or ldap[:ATTRIBUTE]"
            ))
        }
    };
    match kind {
        "ldap" => {
            let matcher: MatchAttribute = sink
                .match_name()
                .parse()
                .map_err(|e: Error| format!("--match: {e}"))?;
            let cfg = ldap_config(&sink.ldap, "--source ldap")?;
            let mut b =
                LdapSource::builder(cfg)
                    .match_attribute(matcher)
                    .attribute(if arg.is_empty() {
                        "thumbnailPhoto"
                    } else {
                        arg
                    });
            if let Some(f) = &sink.ldap.ldap_filter {
                b = b.user_filter(f);
            }
            Ok(Box::new(
                b.build().map_err(|e| format!("--source {source}: {e}"))?,
            ))
        }
        // A folder or manifest that cannot be read stops the run with the source's reason.
        "folder" => {
            let mut s = FolderSource::new(arg).recursive(a.recursive);
            if let Some(re) = &a.key_regex {
                s = s.key_rule(KeyRule::regex(re).map_err(|e| e.to_string())?);
            }
            Ok(Box::new(s))
        }
        "csv" => {
            let mut s = CsvSource::new(arg);
            if let Some(d) = &a.csv_delimiter {
                s = s.delimiter(
                    CsvSource::parse_delimiter(d)
                        .map_err(|e| format!("--csv-delimiter: {}", e.message()))?,
                );
            }
            Ok(Box::new(s))
        }
        other => Err(format!(
            "--source: unknown kind {other:?} (expected folder, csv or ldap)"
        )),
    }
}

fn open_sinks(
    a: &SinkArgs,
    out: Option<&PathBuf>,
    write: bool,
    concurrency: usize,
) -> Result<Vec<Arc<dyn DirectorySink>>, String> {
    let matcher: MatchAttribute = a
        .match_name()
        .parse()
        .map_err(|e: Error| format!("--match: {e}"))?;
    let mut sinks: Vec<Arc<dyn DirectorySink>> = Vec::new();
    for spec in &a.sinks {
        let (kind, arg) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
        match kind {
            "ldif" => {
                if arg.is_empty() {
                    return Err("--sink ldif:EXPORT.ldif needs the export's path".into());
                }
                let mut s = LdifSink::open_with_attribute(arg, matcher.clone(), &a.attribute)
                    .map_err(|e| format!("--sink {spec}: {e}"))?;
                if write {
                    let out = out.ok_or("--sink ldif: needs --out CHANGES.ldif")?;
                    s = s.with_output(out).map_err(|e| format!("--out: {e}"))?;
                }
                sinks.push(Arc::new(s));
            }
            "ad" => sinks.push(Arc::new(ad_sink(a, spec, arg, &matcher)?)),
            "graph" => sinks.push(open_graph_sink(&a.graph, a.match_name(), concurrency)?),
            other => {
                return Err(format!(
                    "--sink: unknown kind {other:?} (expected ldif:FILE, ad or graph)"
                ));
            }
        }
    }
    Ok(sinks)
}

/// The AD sink of `--sink ad[:NAME]`.
fn ad_sink(
    a: &SinkArgs,
    spec: &str,
    name: &str,
    matcher: &MatchAttribute,
) -> Result<AdSink, String> {
    let cfg = ldap_config(&a.ldap, "--sink ad")?;
    let mut b = AdSink::builder(cfg)
        .match_attribute(matcher.clone())
        .attribute(&a.attribute);
    if !name.is_empty() {
        b = b.name(name);
    }
    if let Some(f) = &a.ldap.ldap_filter {
        b = b.user_filter(f);
    }
    b.build().map_err(|e| format!("--sink {spec}: {e}"))
}

fn profile_for(sink: &dyn DirectorySink, chosen: Option<ProfileName>) -> Profile {
    match chosen {
        Some(p) => p.profile(),
        None => sink.capabilities().default_profile.profile(),
    }
}

/// Draws a progress bar on a terminal, plain lines otherwise (stderr either way). Also the
/// crash-test hook: with `USERPHOTO_TEST_ABORT_AFTER=N` the process aborts right after the
/// N-th change is written, as a power cut would stop it (used by tests/cli_sync.rs).
fn progress() -> impl Fn(&Event) + Send + Sync + 'static {
    let tty = std::io::stderr().is_terminal();
    let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
    let total = AtomicUsize::new(0);
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

fn reason(r: Reason) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default()
}

/// A crop warning as people read it.
fn warning_text(w: CropWarning) -> &'static str {
    match w {
        CropWarning::NoFace => "no face found",
        CropWarning::SeveralFaces => "several faces",
        CropWarning::FaceTooSmall => "face too small for the profile",
        CropWarning::FaceAtEdge => "face at the edge",
        CropWarning::LowResolution => "low resolution",
        _ => w.as_str(),
    }
}

/// The plan for people: every change and failure, leavers, the source's failures, and a
/// count of the rest.
fn print_plan(plan: &Plan, source_failures: &[SourceFailure], dry: bool) {
    let mut out = std::io::stdout().lock();
    let unchanged = plan
        .items
        .iter()
        .filter(|i| i.reason == Reason::Unchanged)
        .count();
    let _ = writeln!(
        out,
        "plan: {} to write, {} to remove, {} unchanged, {} failing{}{}",
        plan.count(Action::Put),
        plan.count(Action::Delete),
        unchanged,
        plan.count(Action::Fail),
        match source_failures.len() {
            0 => String::new(),
            1 => ", 1 source failure".to_owned(),
            n => format!(", {n} source failures"),
        },
        if dry {
            " (dry run: nothing is changed)"
        } else {
            ""
        }
    );
    for it in &plan.items {
        let (verb, extra) =
            match (it.action, it.reason) {
                (Action::Put, _) => ("put", it.bytes.map(|b| format!("{b} bytes"))),
                (Action::Delete, _) => ("remove", None),
                (Action::Fail, _) => ("FAIL", it.detail.clone()),
                (Action::Skip, Reason::Leaver) => (
                    "keep",
                    Some(it.detail.clone().unwrap_or_else(|| {
                        "not in the source (--remove-leavers removes it)".into()
                    })),
                ),
                (Action::Skip, Reason::Withheld) => {
                    ("keep", Some("withheld, nothing to remove".into()))
                }
                _ => continue,
            };
        let mut extra = extra.unwrap_or_default();
        // The crop's warnings, for a reviewer: `(no face found; several faces)`.
        if !it.warnings().is_empty() {
            let w: Vec<&str> = it.warnings().iter().map(|w| warning_text(*w)).collect();
            extra = format!("{extra} ({})", w.join("; "))
                .trim_start()
                .to_owned();
        }
        let _ = writeln!(
            out,
            "  {verb:6} {:24} {:10} {:14} {}",
            it.key.to_string(),
            it.sink,
            reason(it.reason),
            extra
        );
    }
    for f in source_failures {
        let _ = writeln!(out, "  SOURCE {}", f.message);
    }
}

fn engine_for(
    a: &RunArgs,
    source: Box<dyn PhotoSource>,
    sinks: Vec<Arc<dyn DirectorySink>>,
    state: Option<StateStore>,
) -> Result<Engine, String> {
    let mut engine = Engine::new(source)
        .with_normalizer(Normalizer::new().with_crop(a.crop.mode()))
        .with_policy(
            Policy::default()
                .with_remove_leavers(a.remove_leavers)
                .with_remove_withheld(!a.keep_withheld),
        )
        .with_concurrency(a.concurrency)
        .with_max_consecutive_failures(a.max_consecutive_failures)
        .with_events(progress());
    if a.threads > 0 {
        engine = engine.with_threads(a.threads);
    }
    for s in sinks {
        let p = profile_for(s.as_ref(), a.profile);
        engine = engine.with_sink(s, p);
    }
    if let Some(st) = state {
        engine = engine.with_state(st);
    }
    Ok(engine)
}

/// `sync`: plan, apply (unless `--dry-run`), report.
pub fn sync(a: RunArgs) -> ExitCode {
    run(a, false)
}

/// `plan`: print what a sync would do and change nothing.
pub fn plan(mut a: RunArgs) -> ExitCode {
    a.dry_run = true;
    run(a, true)
}

fn run(a: RunArgs, plan_only: bool) -> ExitCode {
    let command = if plan_only { "plan" } else { "sync" };
    let span = tracing::info_span!("run", command, dry_run = a.dry_run);
    let _entered = span.enter();
    tracing::info!(
        target: "userphoto::cli",
        version = env!("CARGO_PKG_VERSION"),
        source = a.source.source.as_deref().unwrap_or_default(),
        sinks = ?a.sink.sinks,
        "run starts"
    );
    let code = run_in_span(a, plan_only);
    tracing::info!(target: "userphoto::cli", exit_code = code.0, "run ends");
    code.1
}

/// [`run`]'s work; the exit code twice: as a number for the log, and as the process's.
fn run_in_span(a: RunArgs, plan_only: bool) -> (u8, ExitCode) {
    let code = run_inner(a, plan_only);
    let n = if code == ExitCode::SUCCESS {
        0
    } else if code == ExitCode::from(1) {
        1
    } else {
        2
    };
    (n, code)
}

fn run_inner(a: RunArgs, plan_only: bool) -> ExitCode {
    let source = match open_source(&a.source, &a.sink) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let write = !a.dry_run;
    // The state store first: its lock refuses a second run on it before anything (the
    // change file included) is touched.
    let state = match a.state.as_ref().map(StateStore::open).transpose() {
        Ok(s) => s,
        Err(e) => {
            let path = a.state.as_deref().unwrap_or(std::path::Path::new(""));
            return fail(format!("--state {}: {e}", path.display()));
        }
    };
    let sinks = match open_sinks(&a.sink, a.out.as_ref(), write, a.concurrency) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut engine = match engine_for(&a, source, sinks, state) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    if write && !a.no_backup {
        match BackupStore::open(&a.backup_dir) {
            Ok(b) => engine = engine.with_backups(b),
            Err(e) => return fail(format!("--backup-dir {}: {e}", a.backup_dir.display())),
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let report: Report = match rt.block_on(async {
        // A run that writes normalizes new users' photos while it writes; a dry run shows
        // the whole plan.
        let prepared = if a.dry_run {
            engine.prepare().await?
        } else {
            engine.prepare_to_apply().await?
        };
        if !a.json {
            print_plan(prepared.plan(), prepared.source_failures(), a.dry_run);
        }
        Ok::<_, Error>(if a.dry_run {
            prepared.dry_run()
        } else {
            // A run stopped during the apply stage: its report says what was done, and
            // `aborted` why it stopped (exit code 2, below).
            prepared
                .apply()
                .await
                .unwrap_or_else(userphoto::sync::RunError::into_report)
        })
    }) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Some(path) = &a.report {
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(path, json) {
            return fail(format!("--report {}: {e}", path.display()));
        }
    }
    if a.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else if !plan_only {
        println!("{report}");
        if write && !a.no_backup {
            println!("  backups: {}", a.backup_dir.display());
        }
        if let (Some(out), false) = (&a.out, a.dry_run) {
            println!(
                "  changes: {} (apply with ldapmodify -f or ldifde -i)",
                out.display()
            );
        }
    }
    if let Some(ab) = &report.aborted {
        eprintln!("userphoto: stopped: {}", ab.message);
    }
    ExitCode::from(exit_code(&report))
}

/// The exit code of a run: 2 when it stopped on a run-level failure, 1 when some users (or
/// source items) failed, 0 when everything planned was applied.
pub fn exit_code(report: &Report) -> u8 {
    if report.aborted.is_some() {
        2
    } else if report.failed() > 0 {
        1
    } else {
        0
    }
}

/// `runs`: the runs in a backup journal, oldest first, one line each.
pub fn runs(a: RunsArgs) -> ExitCode {
    if !a.backup_dir.join("journal.jsonl").is_file() {
        return fail(format!(
            "--backup-dir {}: no backup journal there",
            a.backup_dir.display()
        ));
    }
    let runs = match BackupStore::open(&a.backup_dir).and_then(|b| b.runs()) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mut out = std::io::stdout().lock();
    for r in &runs {
        let _ = writeln!(
            out,
            "{:22} {}  {:5} changes  {}{}",
            r.id,
            time(r.first),
            r.changes,
            r.sinks.join(","),
            r.undoes
                .as_deref()
                .map(|u| format!("  (restore of {u})"))
                .unwrap_or_default()
        );
    }
    if runs.is_empty() {
        let _ = writeln!(out, "no runs in {}", a.backup_dir.display());
    }
    ExitCode::SUCCESS
}

/// Seconds since the Unix epoch as an HTTP date (UTC).
fn time(secs: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// `restore`: undo a sync run (the last by default): put back the photos it replaced or
/// removed and remove the first photos it added, skipping photos changed since unless
/// `--force`; what is overwritten is backed up in the restore's own run.
pub fn restore(a: RestoreArgs) -> ExitCode {
    if !a.backup_dir.join("journal.jsonl").is_file() {
        return fail(format!(
            "--backup-dir {}: no backup journal there",
            a.backup_dir.display()
        ));
    }
    let backups = match BackupStore::open(&a.backup_dir) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let sinks = match open_sinks(&a.sink, a.out.as_ref(), true, 4) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut opts = RestoreOptions::new().force(a.force);
    if !a.users.is_empty() {
        opts = opts.users(a.users.iter().map(UserKey::new));
    }
    if let Some(run) = &a.run {
        opts = opts.run(run);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let mut incomplete = false;
    let mut own_run = None;
    for sink in &sinks {
        let done = match rt.block_on(backups.restore_run(sink.as_ref(), &opts)) {
            Ok(d) => d,
            Err(e) => return fail(e),
        };
        if done.users.is_empty() {
            println!("{}: nothing to restore", sink.name());
            continue;
        }
        let (mut restored, mut skipped, mut failed) = (0, 0, 0);
        for (user, r) in &done.users {
            match r {
                Ok(Restored::Photo) => {
                    restored += 1;
                    println!("  restored {user:24} {}", sink.name())
                }
                Ok(Restored::Removed) => {
                    restored += 1;
                    println!("  removed  {user:24} {} (had no photo before)", sink.name())
                }
                Ok(Restored::AlreadyUndone) => {
                    println!(
                        "  already  {user:24} {} (has its photo from before)",
                        sink.name()
                    )
                }
                Ok(Restored::Skipped { reason }) => {
                    skipped += 1;
                    println!(
                        "  SKIP     {user:24} {}: {reason} (--force restores it anyway)",
                        sink.name()
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    failed += 1;
                    println!("  FAIL     {user:24} {}: {e}", sink.name());
                }
            }
        }
        incomplete |= skipped + failed > 0;
        println!(
            "{}: run {} undone for {restored} users, {skipped} skipped, {failed} failed",
            sink.name(),
            done.undone
        );
        own_run = done.run.or(own_run);
    }
    if let Some(run) = own_run {
        println!("  this restore is backup run {run} (restore --run {run} undoes it)");
    }
    ExitCode::from(u8::from(incomplete))
}

/// A `--sink` of `check`, opened as its own type and never for writing.
pub enum Opened {
    /// `--sink ad[:NAME]` (the large sinks boxed: one per `--sink`).
    Ad(Box<AdSink>),
    /// `--sink graph`.
    Graph(userphoto::sink::GraphSink),
    /// `--sink ldif:EXPORT.ldif` (the export read; no change file).
    Ldif(Box<LdifSink>, PathBuf),
}

/// Why a `--sink` cannot be opened for `check`: the error kind (`config` for a usage error)
/// and the message.
pub type OpenError = (&'static str, String);

/// The `--sink` specs of a `check`, each opened read-only, or why it cannot be.
pub fn open_for_check(a: &RunArgs) -> Vec<(String, Result<Opened, OpenError>)> {
    let s = &a.sink;
    let usage = |m: String| ("config", m);
    let matcher: Result<MatchAttribute, _> = s
        .match_name()
        .parse()
        .map_err(|e: Error| usage(format!("--match: {e}")));
    s.sinks
        .iter()
        .map(|spec| {
            let (kind, arg) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
            let opened = matcher.clone().and_then(|m| match kind {
                "ldif" if arg.is_empty() => Err(usage(
                    "--sink ldif:EXPORT.ldif needs the export's path".into(),
                )),
                "ldif" => LdifSink::open_with_attribute(arg, m, &s.attribute)
                    .map(|l| Opened::Ldif(Box::new(l), PathBuf::from(arg)))
                    .map_err(|e| (e.kind().as_str(), format!("--sink {spec}: {e}"))),
                "ad" => ad_sink(s, spec, arg, &m)
                    .map(|a| Opened::Ad(Box::new(a)))
                    .map_err(usage),
                "graph" => super::graph::graph_sink(&s.graph, s.match_name(), a.concurrency)
                    .map(Opened::Graph)
                    .map_err(usage),
                other => Err(usage(format!(
                    "--sink: unknown kind {other:?} (expected ldif:FILE, ad or graph)"
                ))),
            });
            (spec.clone(), opened)
        })
        .collect()
}
