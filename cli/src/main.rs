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

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

mod check;
mod config;
mod graph;
mod log;
mod sync;
use serde_json::json;
use userphoto::normalize::{
    testimage, BatchOptions, CropMode, Input, Normalizer, Profile, ProgressiveDecoder,
};

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

/// The crop strategies (`--crop`).
#[derive(Copy, Clone, Debug, Default, ValueEnum)]
pub(crate) enum CropName {
    /// A head-and-shoulders square around the main face; attention when there is none.
    #[default]
    Face,
    /// The largest square, on what stands out (edges, skin tones, saturation).
    Attention,
    /// The largest centred square.
    Centre,
}

impl CropName {
    pub(crate) fn mode(self) -> CropMode {
        match self {
            Self::Face => CropMode::Face,
            Self::Attention => CropMode::Attention,
            Self::Centre => CropMode::Centre,
        }
    }
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum ProfileName {
    AdThumbnail,
    AdLarge,
    Graph,
}

impl ProfileName {
    fn profile(self) -> Profile {
        match self {
            Self::AdThumbnail => Profile::ad_thumbnail(),
            Self::AdLarge => Profile::ad_large(),
            Self::Graph => Profile::graph(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Normalize image files into JPEG renditions for one profile.
    Normalize {
        /// The target profile.
        #[arg(long, value_enum)]
        profile: ProfileName,
        /// Square output size in pixels, instead of the profile's.
        #[arg(long)]
        size: Option<u32>,
        /// Byte budget, instead of the profile's.
        #[arg(long)]
        max_bytes: Option<usize>,
        /// Worker threads (default: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Where the square goes: `face` (a head-and-shoulders square around the main face,
        /// attention when there is none), `attention` or `centre`.
        #[arg(long, value_enum, default_value_t = CropName::Face)]
        crop: CropName,
        /// Output folder (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Input images.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Sync photos from a source into directories: plan, apply, report.
    Sync(sync::RunArgs),
    /// Print what `sync` would do; change nothing.
    Plan(sync::RunArgs),
    /// Check, writing nothing, that a sync could run: the account may write photos (AD:
    /// asks the DC on a sample of users; Graph: the token's roles and one user read; LDIF:
    /// the export's users and photos). Exit 0 when it could, 2 with the reason when not.
    #[command(mut_arg("source", |a| a.required(false)))]
    Check(check::CheckArgs),
    /// Undo a sync: put back the photos it replaced or removed, remove the first photos it
    /// added.
    Restore(sync::RestoreArgs),
    /// List the runs in a backup journal (what `restore --run` takes).
    Runs(sync::RunsArgs),
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
        Err(e) => return sync::fail_msg(e),
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
        return sync::fail_msg(e);
    }
    match cli.command {
        Command::Normalize {
            profile,
            size,
            max_bytes,
            threads,
            crop,
            out,
            files,
        } => {
            let mut p = profile.profile();
            if let Some(s) = size {
                p = p.with_size(s, s);
            }
            if let Some(b) = max_bytes {
                p = p.with_max_bytes(b);
            }
            if let Err(e) = p.validate() {
                eprintln!("userphoto: {e}");
                return ExitCode::from(2);
            }
            if let Err(e) = std::fs::create_dir_all(&out) {
                eprintln!("userphoto: cannot create {}: {e}", out.display());
                return ExitCode::from(2);
            }
            let failed = normalize_files(&files, &[p], threads, crop.mode(), &out);
            if failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Sync(a) => sync::sync(a),
        Command::Plan(a) => sync::plan(a),
        Command::Check(a) => check::check(a),
        Command::Restore(a) => sync::restore(a),
        Command::Runs(a) => sync::runs(a),
        Command::Demo { out } => demo(&out),
        Command::DemoFixtures { out } => demo_fixtures(&out),
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
        Command::Manpage { subcommand } => manpage(subcommand.as_deref()),
    }
}

/// `userphoto manpage [SUBCOMMAND]`: the roff page of the CLI or of one subcommand
/// (`userphoto-sync(1)`), from the clap definition.
fn manpage(subcommand: Option<&str>) -> ExitCode {
    let mut cmd = Cli::command();
    cmd.build();
    let page = match subcommand {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sc) => sc.clone().name(format!("userphoto-{}", sc.get_name())),
            None => return sync::fail_msg(format!("manpage: no subcommand {name:?}")),
        },
    };
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(page).render(&mut out) {
        return sync::fail_msg(format!("manpage: {e}"));
    }
    match std::io::stdout().write_all(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => sync::fail_msg(format!("manpage: {e}")),
    }
}

/// The normalizer of the `normalize` command. `USERPHOTO_PROGRESSIVE=libjpeg` (a benchmark
/// switch, benches/progressive_memory.sh) decodes progressive JPEGs with libjpeg instead of
/// the library's own decoder; the renditions are the same.
fn normalizer_for_normalize(crop: CropMode) -> Normalizer {
    let decoder = match std::env::var_os("USERPHOTO_PROGRESSIVE") {
        Some(v) if v == "libjpeg" => ProgressiveDecoder::Libjpeg,
        _ => ProgressiveDecoder::Native,
    };
    Normalizer::new()
        .with_crop(crop)
        .with_progressive_decoder(decoder)
}

/// Normalizes files, writes `<out>/<stem>.jpg` (with `-<profile>` when several profiles),
/// prints a JSON line per input and profile, and returns how many failed.
fn normalize_files(
    files: &[PathBuf],
    profiles: &[Profile],
    threads: usize,
    crop: CropMode,
    out: &Path,
) -> usize {
    let inputs = files.iter().cloned().map(|f| (f.clone(), Input::Path(f)));
    let stdout = std::io::stdout();
    let mut failed = 0;
    let options = BatchOptions { threads, queue: 0 };
    normalizer_for_normalize(crop).normalize_batch(inputs, profiles, options, |item, _progress| {
        let stem = item.key.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "photo".into());
        let input = item.key.display().to_string();
        let mut lines = Vec::new();
        match item.result {
            Err(e) => {
                failed += 1;
                for _ in profiles {
                    lines.push(json!({"input": input, "output": null, "ok": false, "error_kind": e.kind().as_str(), "error": e.to_string()}));
                }
            }
            Ok(results) => {
                for (p, r) in profiles.iter().zip(results) {
                    let name = if profiles.len() > 1 { format!("{stem}-{}.jpg", p.name) } else { format!("{stem}.jpg") };
                    let path = out.join(name);
                    match r.map_err(|e| (e.kind().as_str(), e.to_string())).and_then(|r| {
                        std::fs::write(&path, &r.bytes).map(|_| r).map_err(|e| ("io", format!("cannot write {}: {e}", path.display())))
                    }) {
                        Ok(r) => lines.push(json!({
                            "input": input, "output": path.display().to_string(), "ok": true, "profile": p.name,
                            "bytes": r.bytes.len(), "width": r.width, "height": r.height, "quality": r.quality,
                            "sha256": r.sha256_hex(), "ms": item.elapsed.as_secs_f64() * 1000.0,
                            "strategy": r.crop.strategy.as_str(), "crop": r.crop.rect,
                            "faces": r.crop.faces, "warnings": r.crop.warnings,
                        })),
                        Err((kind, msg)) => {
                            failed += 1;
                            lines.push(json!({"input": input, "output": null, "ok": false, "profile": p.name, "error_kind": kind, "error": msg}));
                        }
                    }
                }
            }
        }
        let mut lock = stdout.lock();
        for l in lines {
            let _ = writeln!(lock, "{l}");
        }
    });
    failed
}

fn demo(out: &Path) -> ExitCode {
    let samples = out.join("samples");
    let renditions = out.join("renditions");
    for d in [&samples, &renditions] {
        if let Err(e) = std::fs::create_dir_all(d) {
            eprintln!("userphoto: cannot create {}: {e}", d.display());
            return ExitCode::from(2);
        }
    }
    let mut bomb = testimage::gradient_jpeg(64, 64);
    // Patch the frame header to claim 60000x60000: refused from the header, nothing decoded.
    if let Some(i) = bomb.windows(2).position(|w| w == [0xFF, 0xC0]) {
        bomb[i + 5..i + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    }
    let landscape = testimage::gradient_jpeg(3000, 2000);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("alice.jpg", landscape.clone()),
        (
            "bob-portrait-exif6.jpg",
            testimage::with_exif_orientation(&testimage::gradient_jpeg(2400, 1800), 6),
        ),
        ("carol-transparent.png", testimage::rgba_png(800, 600)),
        (
            "dave-truncated.jpg",
            landscape[..landscape.len() / 2].to_vec(),
        ),
        ("eve-bomb.jpg", bomb),
    ];
    let mut paths = Vec::new();
    for (name, bytes) in files {
        let p = samples.join(name);
        if let Err(e) = std::fs::write(&p, bytes) {
            eprintln!("userphoto: cannot write {}: {e}", p.display());
            return ExitCode::from(2);
        }
        paths.push(p);
    }
    eprintln!(
        "userphoto demo: {} samples in {}, renditions in {}",
        paths.len(),
        samples.display(),
        renditions.display()
    );
    let profiles = [
        Profile::ad_thumbnail(),
        Profile::ad_large(),
        Profile::graph(),
    ];
    let failed = normalize_files(&paths, &profiles, 0, CropMode::Face, &renditions);
    eprintln!("userphoto demo: {failed} of {} inputs refused, as expected for the truncated file and the bomb", paths.len());
    ExitCode::SUCCESS
}

/// One LDIF line, through the library's writer (base64 when RFC 2849 requires it, folded
/// at 76 columns).
fn ldif_line(out: &mut String, name: &str, value: &[u8]) {
    let mut line = Vec::new();
    userphoto::ldif::write_attr(&mut line, name, value).expect("writing to memory");
    out.push_str(std::str::from_utf8(&line).expect("LDIF lines are ASCII"));
}

fn demo_fixtures(out: &Path) -> ExitCode {
    let photos = out.join("photos");
    if let Err(e) = std::fs::create_dir_all(&photos) {
        return sync::fail_msg(format!("cannot create {}: {e}", photos.display()));
    }
    let jpeg = |w, h, seed| testimage::photo_jpeg(w, h, seed);
    let erin = jpeg(640, 480, 5);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("alice.jpg", jpeg(800, 536, 1)),
        (
            "bob.jpg",
            testimage::with_exif_orientation(&jpeg(800, 600, 2), 6),
        ),
        ("carol.png", testimage::rgba_png(256, 256)),
        ("dave.jpg", jpeg(640, 640, 4)),
        ("erin.jpg", erin.clone()),
        ("jmuller.jpg", jpeg(600, 800, 6)),
    ];
    for (name, bytes) in &files {
        if let Err(e) = std::fs::write(photos.join(name), bytes) {
            return sync::fail_msg(format!("cannot write {name}: {e}"));
        }
    }
    let erin_now = match Normalizer::new().normalize(&erin, &Profile::ad_thumbnail()) {
        Ok(r) => r.bytes.to_vec(),
        Err(e) => return sync::fail_msg(e),
    };
    let old = |seed| {
        userphoto::normalize::bench::encode(&testimage::photo_rgb(96, 96, seed), 96, 96, 60)
            .unwrap_or_default()
    };
    let people: Vec<(&str, &str, Option<Vec<u8>>)> = vec![
        ("CN=Alice Adams,OU=Staff,DC=example,DC=test", "alice", None),
        ("CN=Bob Brown,OU=Staff,DC=example,DC=test", "bob", None),
        ("CN=Carol Clark,OU=Staff,DC=example,DC=test", "carol", None),
        (
            "CN=Dave Davis,OU=Staff,DC=example,DC=test",
            "dave",
            Some(old(40)),
        ),
        (
            "CN=Erin Evans,OU=Staff,DC=example,DC=test",
            "erin",
            Some(erin_now),
        ),
        (
            "CN=M\u{fc}ller\\, J\u{fc}rgen,OU=Staff,DC=example,DC=test",
            "jmuller",
            None,
        ),
        (
            "CN=Grace Green,OU=Former,DC=example,DC=test",
            "grace",
            Some(old(70)),
        ),
        ("CN=Henry Hill,OU=Staff,DC=example,DC=test", "henry", None),
    ];
    let mut ldif = String::from(
        "# A directory export as `ldapsearch -LLL -o ldif-wrap=76 ... sAMAccountName\n\
         # userPrincipalName thumbnailPhoto` writes it, for the demo sync.\n\n",
    );
    for (dn, sam, photo) in people {
        ldif_line(&mut ldif, "dn", dn.as_bytes());
        ldif_line(&mut ldif, "objectClass", b"user");
        ldif_line(&mut ldif, "sAMAccountName", sam.as_bytes());
        ldif_line(
            &mut ldif,
            "userPrincipalName",
            format!("{sam}@example.test").as_bytes(),
        );
        if let Some(p) = photo {
            ldif_line(&mut ldif, "thumbnailPhoto", &p);
        }
        ldif.push('\n');
    }
    if let Err(e) = std::fs::write(out.join("directory.ldif"), ldif) {
        return sync::fail_msg(format!("cannot write directory.ldif: {e}"));
    }
    eprintln!(
        "userphoto: demo photos and directory.ldif written to {}",
        out.display()
    );
    ExitCode::SUCCESS
}
