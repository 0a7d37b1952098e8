//! `--config FILE`: a subcommand's options from a TOML file.
//!
//! Generic over the clap definition: every long option of the subcommand that is run (the
//! global ones included, and the top-level command's own options, which go before the
//! subcommand's name) is a key of the same name without the dashes, and nothing here
//! lists them, so an option added to the CLI later is a config key without a change here.
//! [`apply`] parses the command line once leniently to find the subcommand and its
//! `--config`, reads the file, turns every key whose option the command line (or its
//! environment variable) did not give into `--key=value` tokens, and returns the argument
//! list for the real parse. So the command line wins, and for an option that repeats the
//! command line's list replaces the file's.
//!
//! Values: a switch takes a TOML boolean (`false` is as if absent), an option a string, or a
//! number or boolean where the option's own parser takes one (`concurrency = 4`); an option
//! that repeats takes an array or one value. Every value goes through the option's own
//! parser here, so a bad one is reported with the file, key and line.
//!
//! Relative paths are taken from the config file's folder, not the working directory (a
//! scheduled task starts in `C:\Windows\System32`, a systemd service in `/`): the values of
//! path options (those clap knows as paths: `PathBuf` values or a path value hint) and the
//! path in the `folder:`, `csv:` and `ldif:` specs of `source` and `sink`. Paths on the
//! command line stay relative to the working directory, as always.
//!
//! Secrets are never values in the file: a key that is no option and names a secret
//! (`bind-password`, `client-secret`, `token`...) is refused with the `*-env` / `*-file`
//! options to use instead. No error message shows a value from the file, except the
//! option parser's own complaint about the value of a known, non-secret option (such as
//! `concurrency = "four"`).

use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};

use clap::builder::ValueHint;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The id of the argument that names the config file, in any subcommand that has one.
const CONFIG_ID: &str = "config";

/// Options whose values are `KIND:PATH` specs, and the kinds whose rest is a path.
const SPEC_OPTIONS: [&str; 2] = ["source", "sink"];
const SPEC_PATH_KINDS: [&str; 3] = ["folder", "csv", "ldif"];

/// The words that make a key a secret (split on `-` and `_`).
const SECRET_WORDS: [&str; 14] = [
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "secret",
    "token",
    "credential",
    "credentials",
    "pem",
    "private",
    "apikey",
    "cookie",
    "bearer",
];

/// A config file error: one line (file, line, key, what is wrong), exit code 2. It never
/// holds a secret.
#[derive(Debug)]
pub struct ConfigError(String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The argument list with the options of the `--config` file added, or `argv` unchanged when
/// the subcommand run has no `--config` (or the command line does not parse: the real parse
/// then reports it).
pub fn apply(cmd: Command, argv: Vec<OsString>) -> Result<Vec<OsString>, ConfigError> {
    let Ok(matches) = cmd.clone().ignore_errors(true).try_get_matches_from(&argv) else {
        return Ok(argv);
    };
    let mut built = cmd;
    built.build();
    let mut names = vec![built.get_name().to_owned()];
    let (mut c, mut m) = (&built, &matches);
    while let Some((name, sub)) = m.subcommand() {
        let Some(sc) = c.find_subcommand(name) else {
            break;
        };
        names.push(name.to_owned());
        (c, m) = (sc, sub);
    }
    if !c.get_arguments().any(|a| a.get_id() == CONFIG_ID) {
        return Ok(argv);
    }
    let Some(path) = m
        .try_get_raw(CONFIG_ID)
        .ok()
        .flatten()
        .and_then(|mut v| v.next())
        .filter(|_| m.value_source(CONFIG_ID) != Some(ValueSource::DefaultValue))
    else {
        return Ok(argv);
    };
    let file = PathBuf::from(path);
    let text = read(&file)?;
    let scopes = [(c, m), (&built, &matches)];
    let [sub, top] = tokens(&scopes, &names.join(" "), &file, &text)?;
    let mut argv = argv;
    let at = argv
        .iter()
        .skip(1)
        .position(|a| a == "--")
        .map_or(argv.len(), |i| i + 1);
    argv.splice(at..at, sub);
    // The top-level command's own (not global) options go before the subcommand's name.
    let first = argv.len().min(1);
    argv.splice(first..first, top);
    Ok(argv)
}

/// The most a config file may hold: far more than any real one, and a bound on what
/// `--config /dev/zero` reads.
const MAX_BYTES: u64 = 1 << 20;

/// The file as text: UTF-8 (a byte order mark is dropped), or UTF-16 with its byte order mark,
/// as Windows PowerShell 5.1 writes `userphoto config init > userphoto.toml`.
fn read(file: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let cannot = |why: String| {
        ConfigError(format!(
            "cannot read the config file {}: {why}",
            file.display()
        ))
    };
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| cannot(e.to_string()))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(cannot(format!("larger than {MAX_BYTES} bytes")));
    }
    let (encoding, bom) = encoding_rs::Encoding::for_bom(&bytes).unwrap_or((encoding_rs::UTF_8, 0));
    match encoding.decode_without_bom_handling_and_without_replacement(&bytes[bom..]) {
        Some(text) => Ok(text.into_owned()),
        None if encoding == encoding_rs::UTF_8 => {
            Err(cannot("not UTF-8 text (save it as UTF-8)".into()))
        }
        None => Err(cannot("not valid UTF-16".into())),
    }
}

/// A key of the file, found as an option of the subcommand, with its values as tokens.
struct Applied<'c> {
    arg: &'c Arg,
    /// 0: the subcommand's, 1: the top-level command's.
    scope: usize,
    key: String,
    line: usize,
}

/// The `--key=value` tokens for the file's keys that the command line did not give: for
/// the subcommand run (`scopes[0]`, with the global options it inherits) and for the
/// top-level command's own options (`scopes[1]`), each with its matches.
fn tokens(
    scopes: &[(&Command, &ArgMatches); 2],
    cmd_name: &str,
    file: &Path,
    text: &str,
) -> Result<[Vec<OsString>; 2], ConfigError> {
    let here = |span: Range<usize>, msg: String| {
        ConfigError(format!(
            "{}:{}: {msg}",
            file.display(),
            line_of(text, span.start)
        ))
    };
    let table = DeTable::parse(text).map_err(|e| match e.span() {
        Some(span) => here(span, format!("not valid TOML: {}", e.message())),
        None => ConfigError(format!(
            "{}: not valid TOML: {}",
            file.display(),
            e.message()
        )),
    })?;
    let base = std::path::absolute(file)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let (c, root) = (scopes[0].0, scopes[1].0);
    let is_root = std::ptr::eq(c, root);
    let mut out = [Vec::new(), Vec::new()];
    let mut applied: Vec<Applied> = Vec::new();
    for (k, v) in entries {
        let key: &str = k.get_ref();
        // The subcommand's options first; then the top-level command's own.
        let found = find_arg(c, key).map(|a| (0, a)).or_else(|| {
            find_arg(root, key)
                .filter(|a| !is_root && !a.is_global_set())
                .map(|a| (1, a))
        });
        let (scope, arg) =
            found.ok_or_else(|| here(k.span(), not_an_option(c, root, key, cmd_name)))?;
        let (cmd, m) = scopes[scope];
        let given = cmd.get_arguments().filter(|a| from_outside(m, a));
        if from_outside(m, arg) || given.into_iter().any(|g| conflict(cmd, g, arg)) {
            continue;
        }
        let long = arg.get_long().unwrap_or(key);
        for t in values(arg, key, v).map_err(|(span, msg)| here(span, msg))? {
            out[scope].push(match t {
                Token::Switch => OsString::from(format!("--{long}")),
                Token::Value(s) => {
                    let mut t = OsString::from(format!("--{long}="));
                    t.push(resolve(arg, long, &s, &base));
                    t
                }
            });
        }
        if let Some(other) = applied
            .iter()
            .find(|o| o.scope == scope && conflict(cmd, o.arg, arg))
        {
            return Err(here(
                k.span(),
                format!(
                    "`{key}` cannot be used with `{}` (line {})",
                    other.key, other.line
                ),
            ));
        }
        applied.push(Applied {
            arg,
            scope,
            key: key.to_owned(),
            line: line_of(text, k.span().start),
        });
    }
    Ok(out)
}

/// Whether the command line or the option's environment variable gave it.
fn from_outside(m: &ArgMatches, a: &Arg) -> bool {
    matches!(
        m.value_source(a.get_id().as_str()),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// Whether `a` and `b` may not be given together (either one naming the other).
fn conflict(c: &Command, a: &Arg, b: &Arg) -> bool {
    let names = |x: &Arg, y: &Arg| {
        c.get_arg_conflicts_with(x)
            .iter()
            .any(|o| o.get_id() == y.get_id())
    };
    a.get_id() != b.get_id() && (names(a, b) || names(b, a))
}

/// The option of `c` that `key` names: its long name or one of its long aliases.
fn find_arg<'c>(c: &'c Command, key: &str) -> Option<&'c Arg> {
    c.get_arguments().filter(|a| is_key(a)).find(|a| {
        a.get_long() == Some(key) || a.get_all_aliases().is_some_and(|al| al.contains(&key))
    })
}

/// Options that are config keys: every long option but `--help`, `--version` and `--config`.
fn is_key(a: &Arg) -> bool {
    a.get_long().is_some()
        && !matches!(
            a.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        )
        && a.get_id() != CONFIG_ID
}

/// Why `key` is not an option of `c`: another subcommand's option, a secret, `config`
/// itself, or unknown (with the closest option's name). Never the key's value.
fn not_an_option(c: &Command, root: &Command, key: &str, cmd_name: &str) -> String {
    if key == CONFIG_ID {
        return "`config` names the config file itself and cannot be set in it".into();
    }
    let mut owners = Vec::new();
    subcommands_with(root, key, root.get_name(), &mut owners);
    if !owners.is_empty() {
        return format!(
            "`{key}` is not an option of `{cmd_name}` (it is one of `{}`)",
            owners.join("`, `")
        );
    }
    if is_secret_name(key) {
        return secret_message(c, key);
    }
    let longs = c
        .get_arguments()
        .filter(|a| is_key(a))
        .filter_map(Arg::get_long);
    let best = longs
        .map(|l| (strsim::jaro_winkler(&key.replace('_', "-"), l), l))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, l)) => format!("unknown key `{key}` for `{cmd_name}`: did you mean `{l}`?"),
        None => {
            format!("unknown key `{key}`: not an option of `{cmd_name}` (see `{cmd_name} --help`)")
        }
    }
}

/// The subcommands below `c` (named `path`) that have an option `key`.
fn subcommands_with(c: &Command, key: &str, path: &str, out: &mut Vec<String>) {
    for sc in c.get_subcommands() {
        let name = format!("{path} {}", sc.get_name());
        if find_arg(sc, key).is_some() {
            out.push(name.clone());
        }
        subcommands_with(sc, key, &name, out);
    }
}

fn is_secret_name(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower
        .split(['-', '_', '.'])
        .any(|w| SECRET_WORDS.contains(&w))
        || [
            "password",
            "secret",
            "token",
            "api-key",
            "api_key",
            "private_key",
        ]
        .iter()
        .any(|w| lower.contains(w))
}

/// "secrets are never values...", with the `*-env` / `*-file` options of `c` that fit.
fn secret_message(c: &Command, key: &str) -> String {
    let refs: Vec<&str> = c
        .get_arguments()
        .filter(|a| is_key(a))
        .filter_map(Arg::get_long)
        .filter(|l| l.ends_with("-env") || l.ends_with("-file"))
        .collect();
    let exact: Vec<&str> = refs
        .iter()
        .copied()
        .filter(|l| l.strip_suffix("-env").or_else(|| l.strip_suffix("-file")) == Some(key))
        .collect();
    let fit = if exact.is_empty() {
        refs.into_iter().filter(|l| is_secret_name(l)).collect()
    } else {
        exact
    };
    let how: Vec<String> = fit
        .iter()
        .map(|l| match l.ends_with("-env") {
            true => format!("{l} = \"VAR\""),
            false => format!("{l} = \"PATH\""),
        })
        .collect();
    match how.is_empty() {
        true => format!("`{key}`: secrets are never values in the config file"),
        false => format!(
            "`{key}`: secrets are never values in the config file: use {}",
            how.join(" or ")
        ),
    }
}

/// One value of an option, before path resolution.
enum Token {
    /// A switch that is given (`dry-run = true`).
    Switch,
    /// `--key=VALUE`.
    Value(String),
}

/// The tokens for one key: type-checked and through the option's own parser.
fn values(
    arg: &Arg,
    key: &str,
    v: &Spanned<DeValue<'_>>,
) -> Result<Vec<Token>, (Range<usize>, String)> {
    let action = arg.get_action();
    if !action.takes_values() {
        return match v.get_ref() {
            DeValue::Boolean(true) => Ok(vec![Token::Switch]),
            DeValue::Boolean(false) => Ok(vec![]),
            DeValue::Integer(n) if matches!(action, ArgAction::Count) => {
                let n = u8::from_str_radix(n.as_str(), n.radix())
                    .map_err(|_| (v.span(), format!("`{key}` counts from 0 to 255")))?;
                Ok((0..n).map(|_| Token::Switch).collect())
            }
            other => Err((
                v.span(),
                format!("`{key}` is a switch: true or false, not {}", a_type(other)),
            )),
        };
    }
    let multi = matches!(action, ArgAction::Append)
        || arg.get_num_args().is_some_and(|r| r.max_values() > 1);
    let items: Vec<&Spanned<DeValue<'_>>> = match v.get_ref() {
        DeValue::Array(a) if multi => a.iter().collect(),
        DeValue::Array(_) => {
            return Err((v.span(), format!("`{key}` takes one value, not an array")));
        }
        _ => vec![v],
    };
    let expect = if multi {
        "a string or an array of strings"
    } else {
        "a string"
    };
    let text_only = accepts(arg, "not-a-number, a probe").is_ok();
    let mut out = Vec::new();
    for item in items {
        let (s, is_text) = match item.get_ref() {
            DeValue::String(s) => (s.to_string(), true),
            DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => (n.to_string(), false),
                Err(_) => {
                    return Err((item.span(), format!("`{key}`: the integer is out of range")))
                }
            },
            DeValue::Float(f) => (f.as_str().to_owned(), false),
            DeValue::Boolean(b) => (b.to_string(), false),
            other => {
                return Err((
                    item.span(),
                    format!("`{key}` takes {expect}, not {}", a_type(other)),
                ))
            }
        };
        if !is_text && text_only {
            return Err((
                item.span(),
                format!("`{key}` takes {expect}, not {}", a_type(item.get_ref())),
            ));
        }
        accepts(arg, &s).map_err(|e| (item.span(), format!("`{key}`: {e}")))?;
        out.push(Token::Value(s));
    }
    Ok(out)
}

/// "an integer", "a string": the TOML type of a value, for messages (never the value).
fn a_type(v: &DeValue<'_>) -> String {
    let t = v.type_str();
    match t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        true => format!("an {t}"),
        false => format!("a {t}"),
    }
}

/// Runs one value through the option's own parser (a one-option command with a copy of it).
fn accepts(arg: &Arg, value: &str) -> Result<(), String> {
    let long = arg.get_long().unwrap_or("value").to_owned();
    let mut probe = Arg::new("value")
        .long(long.clone())
        .value_parser(arg.get_value_parser().clone())
        .action(ArgAction::Set)
        .num_args(1)
        .allow_hyphen_values(true);
    if let Some(names) = arg.get_value_names() {
        probe = probe.value_names(names.iter().cloned());
    }
    let cmd = Command::new("userphoto")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .color(clap::ColorChoice::Never)
        .arg(probe);
    match cmd.try_get_matches_from([format!("--{long}={value}")]) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.render().to_string();
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("For more information"))
                .filter(|l| !l.is_empty())
                .collect();
            Err(lines.join(" ").trim_start_matches("error: ").to_owned())
        }
    }
}

/// The value with a relative path taken from `base` (the config file's folder), for path
/// options and the path part of `folder:`, `csv:` and `ldif:` specs.
fn resolve(arg: &Arg, long: &str, value: &str, base: &Path) -> OsString {
    let join = |p: &str| -> OsString {
        if p.is_empty() || Path::new(p).is_absolute() {
            OsString::from(p)
        } else {
            base.join(p).into_os_string()
        }
    };
    if matches!(
        arg.get_value_hint(),
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath
    ) {
        return join(value);
    }
    if SPEC_OPTIONS.contains(&long) {
        if let Some((kind, rest)) = value.split_once(':') {
            if SPEC_PATH_KINDS.contains(&kind) {
                let mut s = OsString::from(format!("{kind}:"));
                s.push(join(rest));
                return s;
            }
        }
    }
    OsString::from(value)
}

/// The 1-based line of a byte offset that the TOML parser reported.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// What `userphoto config init` prints: a commented example that `--config` takes as it is
/// (the LDIF lines active, AD and Graph commented out). Relative paths are from its folder.
pub const EXAMPLE: &str = r#"# userphoto.toml: the options of `userphoto sync`, `plan` and `check`, one key per
# command-line option without the leading dashes (`userphoto sync --help` lists them).
#
#     userphoto check --config userphoto.toml    (checks that a sync could run, writes nothing)
#     userphoto sync --config userphoto.toml
#
# An option on the command line wins over the file (for `sink`, its list replaces the
# file's). A switch takes true or false, a repeatable option an array or one string.
# Relative paths, here and in the folder:, csv: and ldif: specs, are taken from this
# file's folder, not from the working directory (a scheduled task starts in
# C:\Windows\System32, a systemd service in /).
#
# Secrets are never values in this file: name the environment variable (*-env) or the
# file (*-file) that holds them.

# Where the photos come from: folder:DIR (files named by user key, as alice.jpg),
# csv:FILE (a key,path[,withheld] manifest) or ldap[:ATTRIBUTE] (see the AD options).
source = "folder:photos"
# recursive = true

# Where they go: ldif:EXPORT.ldif (an export of the users; the changes go to `out`),
# ad (Active Directory over LDAP), graph (Microsoft 365) or folder:DIR (DIR/<key>.jpg and
# DIR/manifest.csv, a photo export). Several: one decode for all.
sink = ["ldif:directory.ldif"]
out = "changes.ldif"

# The directory attribute the keys are matched against: sAMAccountName (the default),
# upn (the default when the only sink is graph), mail, employeeID, objectGUID, ...
# match = "sAMAccountName"

# The state file (unchanged users are not decoded again; an interrupted run resumes),
# the backups of every photo replaced or removed (what `restore` puts back), the report.
state = "userphoto.state"
backup-dir = "userphoto-backup"
report = "report.json"

# The log: one JSON object a line (timestamp, level, target, fields, spans), appended;
# never a secret, a token or a photo. log-level: error, warn, info (default), debug, trace.
# log-file = "userphoto.log.jsonl"
# log-level = "info"

# Remove the photos of users the source no longer lists.
# remove-leavers = true
# Calls in flight per sink, and when to stop a run whose writes all fail.
# concurrency = 4
# max-consecutive-failures = 50
# Plan and report, change nothing.
# dry-run = true

# --- Active Directory: sink = ["ad"] ---------------------------------------------------
# ldap-url = "ldaps://dc1.example.com"
# ca-cert = "corp-ca.pem"
# bind-dn = "svc-photos@example.com"
# The password: an environment variable, or a file only the service account can read.
# bind-password-env = "AD_PASSWORD"
# bind-password-file = "ad-password.txt"
# base-dn = "OU=Staff,DC=example,DC=com"
# profile = "ad-thumbnail"

# --- Microsoft 365 through Microsoft Graph: sink = ["graph"] ---------------------------
# tenant = "contoso.onmicrosoft.com"
# client-id = "00000000-0000-0000-0000-000000000000"
# The credential: a client secret in an environment variable, or a certificate and key.
# client-secret-env = "GRAPH_CLIENT_SECRET"
# client-cert = "userphoto-app.crt.pem"
# client-key = "userphoto-app.key.pem"
# Or no stored secret (tenant and client-id are then not needed, or come from
# AZURE_TENANT_ID and AZURE_CLIENT_ID): the managed identity of the Azure resource this
# runs on (App Service, Functions, Automation, Azure Arc, a VM), system- or user-assigned,
# graph-auth = "managed-identity"
# managed-identity-client-id = "00000000-0000-0000-0000-000000000000"
# or workload identity federation (Kubernetes, GitHub Actions): a token file, re-read as
# it rotates (default AZURE_FEDERATED_TOKEN_FILE).
# graph-auth = "workload-identity"
# federated-token-file = "/var/run/secrets/azure/tokens/azure-identity-token"
# Hybrid tenants: Entra Connect copies AD's thumbnailPhoto over synced users' Microsoft 365
# photos, so write Graph for cloud-only users and AD for the synced ones.
# graph-users = "cloud-only"
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn cli() -> Command {
        crate::Cli::command()
    }

    fn run(cmd: Command, file: &Path, args: &[&str]) -> Result<Vec<String>, String> {
        let mut argv: Vec<OsString> = vec!["userphoto".into()];
        argv.extend(args.iter().map(OsString::from));
        argv.push("--config".into());
        argv.push(file.into());
        apply(cmd, argv)
            .map(|v| {
                v.into_iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    fn file(name: &str, text: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("userphoto-config-unit-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_global_option_and_a_counted_switch_are_keys_without_a_list_of_keys() {
        let cmd = Command::new("tool")
            .arg(Arg::new("log-level").long("log-level").global(true))
            .arg(
                Arg::new("verbose")
                    .long("verbose")
                    .short('v')
                    .action(ArgAction::Count)
                    .global(true),
            )
            .subcommand(
                Command::new("go")
                    .arg(
                        Arg::new("config")
                            .long("config")
                            .value_parser(clap::value_parser!(PathBuf)),
                    )
                    .arg(
                        Arg::new("speed")
                            .long("speed")
                            .value_parser(clap::value_parser!(u8)),
                    ),
            );
        let f = file(
            "global.toml",
            "log-level = \"debug\"\nverbose = 2\nspeed = 7\n",
        );
        let argv = run(cmd.clone(), &f, &["go"]).unwrap();
        assert!(argv.contains(&"--log-level=debug".to_owned()), "{argv:?}");
        assert_eq!(
            argv.iter().filter(|a| *a == "--verbose").count(),
            2,
            "{argv:?}"
        );
        assert!(argv.contains(&"--speed=7".to_owned()), "{argv:?}");
        // The command line's global option wins.
        let argv = run(cmd.clone(), &f, &["--log-level", "warn", "go"]).unwrap();
        assert!(
            !argv.iter().any(|a| a.starts_with("--log-level=")),
            "{argv:?}"
        );
        let f = file("speed.toml", "speed = 300\n");
        let e = run(cmd, &f, &["go"]).unwrap_err();
        assert!(
            e.contains("speed.toml:1: `speed`:") && e.contains("300"),
            "{e}"
        );
    }

    #[test]
    fn a_top_level_option_that_is_not_global_goes_before_the_subcommand() {
        let cmd = Command::new("tool")
            .arg(
                Arg::new("log-file")
                    .long("log-file")
                    .value_parser(clap::value_parser!(PathBuf)),
            )
            .subcommand(Command::new("go").arg(Arg::new("config").long("config")));
        let f = file("top.toml", "log-file = \"run.log\"\n");
        let argv = run(cmd.clone(), &f, &["go"]).unwrap();
        let log = f.parent().unwrap().join("run.log");
        assert_eq!(argv[1], format!("--log-file={}", log.display()), "{argv:?}");
        assert_eq!(argv[2], "go", "{argv:?}");
        cmd.try_get_matches_from(&argv)
            .expect("the new argument list parses");
        // Given on the command line, the file's is left out.
        let argv = run(
            Command::new("tool")
                .arg(Arg::new("log-file").long("log-file"))
                .subcommand(Command::new("go").arg(Arg::new("config").long("config"))),
            &f,
            &["--log-file", "x", "go"],
        )
        .unwrap();
        assert_eq!(
            argv.iter().filter(|a| a.starts_with("--log-file")).count(),
            1,
            "{argv:?}"
        );
    }

    #[test]
    fn a_key_the_command_line_conflicts_with_is_dropped() {
        let f = file(
            "conflict.toml",
            "bind-password-env = \"AD_PASSWORD\"\nbackup-dir = \"b\"\n",
        );
        let argv = run(
            cli(),
            &f,
            &["plan", "--bind-password-file", "pw", "--no-backup"],
        )
        .unwrap();
        assert!(
            !argv.iter().any(|a| a.starts_with("--bind-password-env")),
            "{argv:?}"
        );
        assert!(
            !argv.iter().any(|a| a.starts_with("--backup-dir")),
            "{argv:?}"
        );
    }

    #[test]
    fn two_keys_that_conflict_name_both_lines() {
        let f = file(
            "both.toml",
            "bind-password-env = \"AD_PASSWORD\"\n\nbind-password-file = \"pw\"\n",
        );
        let e = run(cli(), &f, &["plan"]).unwrap_err();
        assert!(
            e.ends_with("both.toml:3: `bind-password-file` cannot be used with `bind-password-env` (line 1)"),
            "{e}"
        );
    }

    #[test]
    fn a_secret_key_names_the_references_of_the_subcommand() {
        let f = file("secret.toml", "client-secret = \"s3cr3t-value\"\n");
        let e = run(cli(), &f, &["sync"]).unwrap_err();
        assert!(e.contains("secret.toml:1: `client-secret`: secrets are never values in the config file: use client-secret-env = \"VAR\""), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        for key in [
            "api-key",
            "private-key",
            "accessToken",
            "db_password",
            "sas-token",
        ] {
            assert!(is_secret_name(key), "{key}");
        }
        for key in ["sinks", "bypass-cache", "monkey", "key"] {
            assert!(!is_secret_name(key), "{key}");
        }
        let f = file("password.toml", "\n\npassword = \"hunter2\"\n");
        let e = run(cli(), &f, &["sync"]).unwrap_err();
        assert!(
            e.contains("password.toml:3: `password`: secrets are never values"),
            "{e}"
        );
        assert!(
            e.contains("bind-password-env = \"VAR\" or bind-password-file = \"PATH\""),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn config_in_the_file_and_other_subcommands_options_are_refused() {
        let f = file("self.toml", "config = \"other.toml\"\n");
        let e = run(cli(), &f, &["sync"]).unwrap_err();
        assert!(
            e.contains("self.toml:1: `config` names the config file itself"),
            "{e}"
        );
        let f = file("force.toml", "force = true\n");
        let e = run(cli(), &f, &["sync"]).unwrap_err();
        assert!(e.contains("force.toml:1: `force` is not an option of `userphoto sync` (it is one of `userphoto restore`)"), "{e}");
    }

    #[test]
    fn a_syntax_error_names_its_line_and_not_the_text() {
        let f = file(
            "syntax.toml",
            "source = \"folder:photos\"\nbind-password-env = \"hunter2\n",
        );
        let e = run(cli(), &f, &["sync"]).unwrap_err();
        assert!(e.contains("syntax.toml:2: not valid TOML:"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn tokens_go_before_a_double_dash() {
        let cmd = Command::new("tool").subcommand(
            Command::new("go")
                .arg(Arg::new("config").long("config"))
                .arg(Arg::new("x").long("x"))
                .arg(Arg::new("rest").num_args(0..).last(true)),
        );
        let f = file("dash.toml", "x = \"1\"\n");
        let mut argv: Vec<OsString> = ["tool", "go", "--config"].map(OsString::from).to_vec();
        argv.push(f.clone().into());
        argv.extend(["--", "--x=2"].map(OsString::from));
        let argv = apply(cmd, argv).unwrap();
        let n = argv.len();
        assert_eq!(argv[n - 3..], ["--x=1", "--", "--x=2"].map(OsString::from));
    }

    /// Every `# key = value` line of the example (the AD and Graph ones) is an option of
    /// `sync` whose value its parser takes, so the example cannot drift from the flags.
    #[test]
    fn every_commented_key_of_the_example_is_an_option_of_sync() {
        let mut cmd = cli();
        cmd.build();
        let sync = cmd.find_subcommand("sync").unwrap();
        let mut seen = 0;
        for line in EXAMPLE.lines() {
            let Some(kv) = line.strip_prefix("# ") else {
                continue;
            };
            let Ok(t) = DeTable::parse(kv) else { continue };
            for (k, v) in t.get_ref().iter() {
                let arg =
                    find_arg(sync, k.get_ref()).unwrap_or_else(|| panic!("{kv}: no such option"));
                values(arg, k.get_ref(), v).unwrap_or_else(|(_, e)| panic!("{kv}: {e}"));
                seen += 1;
            }
        }
        assert!(seen >= 15, "{seen} commented keys");
    }
}
