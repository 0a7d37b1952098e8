//! The factories: `--source` and `--sink` specs (with their options) opened as the
//! library's sources and sinks, for writing (`sync`, `plan`, `restore`) or read-only
//! (`check`), and the backup journal.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use userphoto::normalize::Profile;
use userphoto::sink::{AdSink, DirectorySink, FolderSink, LdifSink, LdifSummary};
use userphoto::source::{CsvSource, FolderSource, KeyRule, LdapSource, PhotoSource};
use userphoto::sync::BackupStore;
use userphoto::{Error, MatchAttribute};

use crate::args::{ProfileName, RunArgs, SinkArgs, SourceArgs};

pub(crate) mod graph;
mod ldap;

use graph::open_graph_sink;
use ldap::{ad_sink, ldap_config};

/// The source of `--source`, with the LDAP options of `sink` for `--source ldap`.
pub(crate) fn open_source(a: &SourceArgs, sink: &SinkArgs) -> Result<Box<dyn PhotoSource>, String> {
    // Required by clap for sync and plan (only `check` goes without).
    let source = a.source.as_deref().ok_or("--source is required")?;
    let (kind, arg) = match source.split_once(':') {
        Some(x) => x,
        None if source == "ldap" => ("ldap", ""),
        None if source == "graph" => ("graph", ""),
        None => {
            return Err(format!(
                "--source {source:?}: expected folder:DIR, csv:FILE, ldap[:ATTRIBUTE] or graph"
            ))
        }
    };
    match kind {
        // Microsoft 365's photos, through the `--sink graph` connection flags; keys from
        // `--match` (upn unless given).
        "graph" if arg.is_empty() => {
            let m = sink.match_attr.as_deref().unwrap_or("upn");
            Ok(Box::new(graph::graph_source(&sink.graph, m)?))
        }
        "graph" => Err(format!("--source {source:?}: graph takes no argument")),
        "ldap" => {
            let matcher: MatchAttribute = sink
                .match_name()
                .parse()
                .map_err(|e: Error| format!("--match: {}", e.human()))?;
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
            Ok(Box::new(b.build().map_err(|e| {
                format!("--source {source}: {}", crate::hint::explain(&e))
            })?))
        }
        // A folder or manifest that cannot be read stops the run with the source's reason.
        "folder" => {
            let mut s = FolderSource::new(arg).recursive(a.recursive);
            if let Some(re) = &a.key_regex {
                s = s.key_rule(
                    KeyRule::regex(re).map_err(|e| format!("--key-regex: {}", e.human()))?,
                );
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
            "--source: unknown kind {other:?} (expected folder, csv, ldap or graph)"
        )),
    }
}

/// The sinks of every `--sink`; an `ldif:` sink writes its changes to `out` when `write`,
/// a `folder:` sink writes its folder (created when missing) only when `write`.
pub(crate) fn open_sinks(
    a: &SinkArgs,
    out: Option<&PathBuf>,
    write: bool,
    concurrency: usize,
) -> Result<Vec<Arc<dyn DirectorySink>>, String> {
    let matcher: MatchAttribute = a
        .match_name()
        .parse()
        .map_err(|e: Error| format!("--match: {}", e.human()))?;
    let mut sinks: Vec<Arc<dyn DirectorySink>> = Vec::new();
    for spec in &a.sinks {
        let (kind, arg) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
        match kind {
            "ldif" => {
                if arg.is_empty() {
                    return Err("--sink ldif:EXPORT.ldif needs the export's path".into());
                }
                let mut s = LdifSink::open_with_attribute(arg, matcher.clone(), &a.attribute)
                    .map_err(|e| format!("--sink {spec}: {}", crate::hint::explain(&e)))?;
                let sum = s.summary();
                if sum.entries == sum.without_key {
                    return Err(no_users(spec, &sum));
                }
                if write {
                    let out = out.ok_or("--sink ldif: needs --out CHANGES.ldif")?;
                    s = s
                        .with_output(out)
                        .map_err(|e| format!("--out: {}", e.human()))?;
                }
                sinks.push(Arc::new(s));
            }
            "folder" => {
                if arg.is_empty() {
                    return Err("--sink folder:DIR needs the folder's path".into());
                }
                let s = if write {
                    FolderSink::new(arg)
                } else {
                    FolderSink::read_only(arg)
                };
                sinks.push(Arc::new(s.map_err(|e| {
                    format!("--sink {spec}: {}", crate::hint::explain(&e))
                })?));
            }
            "ad" => sinks.push(Arc::new(ad_sink(a, spec, arg, &matcher)?)),
            "graph" => sinks.push(open_graph_sink(&a.graph, a.match_name(), concurrency)?),
            other => {
                return Err(format!(
                    "--sink: unknown kind {other:?} (expected ldif:FILE, folder:DIR, ad or graph)"
                ));
            }
        }
    }
    Ok(sinks)
}

/// Why an LDIF export with no user to match is refused (`sync`, `plan`, `restore`, `check`).
pub(crate) fn no_users(spec: &str, sum: &LdifSummary) -> String {
    let m = &sum.match_attribute;
    let what = if sum.entries == 0 {
        "no entries".to_owned()
    } else {
        format!("{} entries, none with a {m} value", sum.entries)
    };
    format!(
        "--sink {spec}: the export holds no users to match ({what}): export the users with \
         their {m} (ldapsearch ... {m} {attr}, or ldifde -l {m},{attr}), or match on another \
         attribute with --match (match in the config file)",
        attr = sum.attribute
    )
}

/// Why an LDIF export that none of the source's users is in is refused (`sync`, `plan`,
/// `check`): a wrong `--match` or an export of other users, not every user's failure.
pub(crate) fn none_matched(spec: &str, listed: usize, match_attribute: &str) -> String {
    format!(
        "--sink {spec}: none of the source's {listed} users is in the export by \
         {match_attribute}: check that the photos are named by {match_attribute}, or match on \
         another attribute with --match (match in the config file)"
    )
}

/// The profile of a sink: `--profile`, or the sink's own default.
pub(crate) fn profile_for(sink: &dyn DirectorySink, chosen: Option<ProfileName>) -> Profile {
    match chosen {
        Some(p) => p.profile(),
        None => sink.capabilities().default_profile.profile(),
    }
}

/// The backup journal in `dir`, which must hold one (`restore`, `runs`).
pub(crate) fn backup_journal(dir: &Path) -> Result<BackupStore, String> {
    if !dir.join("journal.jsonl").is_file() {
        return Err(format!(
            "--backup-dir {}: no backup journal there",
            dir.display()
        ));
    }
    BackupStore::open(dir).map_err(|e| format!("--backup-dir {}: {}", dir.display(), e.human()))
}

/// A `--sink` of `check`, opened as its own type and never for writing.
pub(crate) enum Opened {
    /// `--sink ad[:NAME]` (the large sinks boxed: one per `--sink`).
    Ad(Box<AdSink>),
    /// `--sink graph`.
    Graph(userphoto::sink::GraphSink),
    /// `--sink ldif:EXPORT.ldif` (the export read; no change file).
    Ldif(Box<LdifSink>, PathBuf),
    /// `--sink folder:DIR` (read-only: a missing folder is not created).
    Folder(Box<FolderSink>, PathBuf),
}

/// Why a `--sink` cannot be opened for `check`: the error kind (`config` for a usage error)
/// and the message.
pub(crate) type OpenError = (&'static str, String);

/// The `--sink` specs of a `check`, each opened read-only, or why it cannot be.
pub(crate) fn open_for_check(a: &RunArgs) -> Vec<(String, Result<Opened, OpenError>)> {
    let s = &a.sink;
    let usage = |m: String| ("config", m);
    let matcher: Result<MatchAttribute, _> = s
        .match_name()
        .parse()
        .map_err(|e: Error| usage(format!("--match: {}", e.human())));
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
                    .map_err(|e| {
                        (
                            e.kind().as_str(),
                            format!("--sink {spec}: {}", crate::hint::explain(&e)),
                        )
                    }),
                "folder" if arg.is_empty() => {
                    Err(usage("--sink folder:DIR needs the folder's path".into()))
                }
                "folder" => FolderSink::read_only(arg)
                    .map(|f| Opened::Folder(Box::new(f), PathBuf::from(arg)))
                    .map_err(|e| {
                        (
                            e.kind().as_str(),
                            format!("--sink {spec}: {}", crate::hint::explain(&e)),
                        )
                    }),
                "ad" => ad_sink(s, spec, arg, &m)
                    .map(|a| Opened::Ad(Box::new(a)))
                    .map_err(usage),
                "graph" => graph::graph_sink(&s.graph, s.match_name(), a.concurrency)
                    .map(Opened::Graph)
                    .map_err(usage),
                other => Err(usage(format!(
                    "--sink: unknown kind {other:?} (expected ldif:FILE, folder:DIR, ad or graph)"
                ))),
            });
            (spec.clone(), opened)
        })
        .collect()
}
