//! `check`: a preflight of every `--sink`, with the options (or config file) of `sync`, that
//! writes nothing.
//!
//! * AD: binds, reads the base DN, samples up to `--check-sample` users below it and asks
//!   the DC (`allowedAttributesEffective`) whether the account may write the photo
//!   attribute on each; counts and names those it may not write and those with
//!   `adminCount=1` (protected admin accounts).
//! * Graph: gets a token, reads its `roles` claim for `ProfilePhoto.ReadWrite.All` or
//!   `User.ReadWrite.All`, reads one user.
//! * The source (`--source`, optional): listed as a sync lists it, photos counted,
//!   unreadable items named; a listing that fails (a missing folder) fails the check.
//! * LDIF: reads the export and counts its users and photos; an export with no users, or
//!   (with `--source`) none matching the source's keys, fails.
//! * Folder: lists the folder's photos (a missing folder is fine: a sync creates it).
//!
//! Output: human lines on stderr, one JSON object per sink on stdout (`sink`, `kind`, `ok`,
//! the findings, `reason` when not ok). Exit code 0 when a sync could run on every sink, 2
//! otherwise (or on bad usage). Users the account may not write do not make a sink fail
//! while some sampled users are writable: a sync would run and fail those users one by one
//! (exit 1), which the check reports beforehand.

use std::process::ExitCode;

use serde_json::{json, Value};
use userphoto::sink::DirectorySink as _;
use userphoto::sink::GraphUsers;

use crate::args::CheckArgs;
use crate::fail::fail;
use crate::hint::explain;
use crate::open::{open_for_check, open_source, Opened};

use super::check_source::check_source;

/// How many not-writable or protected DNs are named on stderr and in the JSON.
const NAMED: usize = 10;

/// The findings of one sink: whether a sync could run, its JSON object and its human lines.
struct Finding {
    ok: bool,
    json: Value,
    lines: Vec<String>,
}

impl Finding {
    fn failed(spec: &str, kind: &str, error_kind: Option<&str>, reason: String) -> Self {
        Self {
            ok: false,
            json: json!({
                "sink": spec, "kind": kind, "ok": false,
                "error_kind": error_kind, "reason": reason,
            }),
            lines: vec![format!("FAIL: {reason}")],
        }
    }
}

fn kind_of(spec: &str) -> &str {
    spec.split_once(':').map_or(spec, |(k, _)| k)
}

/// `check`: every sink's preflight; exit 0 when a sync could run on all of them, else 2.
pub(crate) fn check(a: CheckArgs) -> ExitCode {
    if a.check_sample == 0 {
        return fail("--check-sample must be at least 1");
    }
    let opened = open_for_check(&a.run);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let mut all_ok = true;
    // The source first, when there is one: its keys are what the sinks must match.
    let mut keys = None;
    if let Some(spec) = a.run.source.source.as_deref() {
        let c = match open_source(&a.run.source, &a.run.sink) {
            Ok(source) => rt.block_on(check_source(spec, source.as_ref())),
            Err(e) => return fail(e),
        };
        all_ok &= c.ok;
        for l in &c.lines {
            eprintln!("userphoto check: --source {spec}: {l}");
        }
        println!("{}", c.json);
        keys = c.ok.then_some(c.keys);
    }
    for (spec, sink) in opened {
        let f = match sink {
            Err((kind, reason)) => Finding::failed(&spec, kind_of(&spec), Some(kind), reason),
            Ok(Opened::Ad(s)) => rt.block_on(check_ad(&spec, &s, a.check_sample)),
            Ok(Opened::Graph(s)) => rt.block_on(check_graph(&spec, &s)),
            Ok(Opened::Ldif(s, path)) => {
                let matched = keys.as_deref().map(|keys| {
                    rt.block_on(async {
                        let mut n = 0;
                        for k in keys {
                            n += usize::from(s.entry_name(k).await.is_some());
                        }
                        (keys.len(), n)
                    })
                });
                check_ldif(&spec, &s, &path, matched)
            }
            Ok(Opened::Folder(s, path)) => check_folder(&spec, &s, &path),
        };
        all_ok &= f.ok;
        for l in &f.lines {
            eprintln!("userphoto check: {spec}: {l}");
        }
        println!("{}", f.json);
    }
    if all_ok {
        eprintln!("userphoto check: a sync can run (nothing was written)");
        ExitCode::SUCCESS
    } else {
        eprintln!("userphoto check: a sync cannot run (nothing was written)");
        ExitCode::from(2)
    }
}

async fn check_ad(spec: &str, s: &userphoto::sink::AdSink, sample: usize) -> Finding {
    let p = match s.preflight(sample).await {
        Ok(p) => p,
        Err(e) => return Finding::failed(spec, "ad", Some(e.kind().as_str()), explain(&e)),
    };
    let reason = p.reason();
    let mut lines = vec![format!(
        "bound; base DN {}; {} of {} sampled users writable ({}{})",
        p.base_dn,
        p.writable,
        p.sampled,
        p.attribute,
        if p.complete {
            ", every user below the base DN"
        } else {
            ""
        }
    )];
    if !p.not_writable.is_empty() {
        lines.push(format!(
            "may not write {} on {} sampled users (a sync fails them): {}{}",
            p.attribute,
            p.not_writable.len(),
            p.not_writable
                .iter()
                .take(NAMED)
                .cloned()
                .collect::<Vec<_>>()
                .join(" | "),
            if p.not_writable.len() > NAMED {
                " | ..."
            } else {
                ""
            }
        ));
    }
    if !p.protected.is_empty() {
        lines.push(format!(
            "{} sampled users are protected admin accounts (adminCount=1)",
            p.protected.len()
        ));
    }
    lines.push(match &reason {
        None => "OK".to_owned(),
        Some(r) => format!("FAIL: {r}"),
    });
    let named = |v: &[String]| v.iter().take(NAMED).cloned().collect::<Vec<_>>();
    Finding {
        ok: reason.is_none(),
        json: json!({
            "sink": spec, "kind": "ad", "ok": reason.is_none(),
            "base_dn": p.base_dn, "attribute": p.attribute,
            "sampled": p.sampled, "complete": p.complete, "writable": p.writable,
            "not_writable": p.not_writable.len(), "not_writable_dns": named(&p.not_writable),
            "protected": p.protected.len(), "protected_dns": named(&p.protected),
            "reason": reason,
        }),
        lines,
    }
}

async fn check_graph(spec: &str, s: &userphoto::sink::GraphSink) -> Finding {
    let p = match s.preflight().await {
        Ok(p) => p,
        Err(e) => return Finding::failed(spec, "graph", Some(e.kind().as_str()), explain(&e)),
    };
    let reason = p.reason();
    let mut lines = vec![if p.token_decoded {
        format!(
            "token granted; roles: {}",
            if p.roles.is_empty() {
                "none".to_owned()
            } else {
                p.roles.join(", ")
            }
        )
    } else {
        "token granted; it is not a JWT, so its roles are unknown (a sync finds out)".to_owned()
    }];
    match (&p.user, &p.user_error) {
        (Some(u), _) => lines.push(format!("read user {u}")),
        (None, Some(_)) => {}
        (None, None) => lines.push("the tenant lists no users".to_owned()),
    }
    // Hybrid tenants: the photo policy and the synced/cloud-only split. Neither fails the
    // check on its own (a token without PeopleSettings.Read.All is common); a sync that
    // routes by sync state fails at its start when it cannot list users, so the split's
    // failure is a finding then.
    let (policy, policy_error) = match s.photo_policy().await {
        Ok(pol) => (Some(pol), None),
        Err(e) => (None, Some(e.message().to_owned())),
    };
    match (&policy, &policy_error) {
        (Some(pol), _) => lines.push(format!(
            "photo policy: source {}{}",
            if pol.source.is_empty() {
                "unset"
            } else {
                &pol.source
            },
            if pol.allowed_roles.is_empty() {
                String::new()
            } else {
                format!(", allowed roles {}", pol.allowed_roles.join(", "))
            }
        )),
        (None, Some(e)) => lines.push(format!("photo policy not read: {e}")),
        (None, None) => {}
    }
    let users = s.users();
    let (split, split_error) = match s.sync_split().await {
        Ok(sp) => (Some(sp), None),
        Err(e) => (None, Some(e.message().to_owned())),
    };
    match (&split, &split_error) {
        (Some(sp), _) => lines.push(format!(
            "{} synced users, {} cloud-only users; Graph writes {}",
            sp.synced,
            sp.cloud_only,
            match users {
                GraphUsers::CloudOnly => "the cloud-only ones",
                GraphUsers::Synced => "the synced ones",
                _ => "all of them",
            }
        )),
        (None, Some(e)) => lines.push(format!("users' sync states not read: {e}")),
        (None, None) => {}
    }
    let writes_synced = users != GraphUsers::CloudOnly;
    if writes_synced && policy.as_ref().is_some_and(|p| p.is_on_premises()) {
        lines.push(
            "WARNING: the photo policy's source is onPremises: Microsoft 365 takes photos from \
             AD and refuses Graph writes to synced users; use --graph-users cloud-only and \
             write synced users to AD (--sink ad)"
                .to_owned(),
        );
    } else if writes_synced && split.is_some_and(|sp| sp.synced > 0) {
        lines.push(format!(
            "note: Entra Connect copies AD's thumbnailPhoto over synced users' photos on each \
             cycle (the last writer wins); --graph-users cloud-only leaves the {} synced users \
             to AD",
            split.map_or(0, |sp| sp.synced)
        ));
    }
    let reason = reason.or_else(|| {
        (users != GraphUsers::All)
            .then_some(split_error.as_ref())
            .flatten()
            .map(|e| format!("--graph-users {users} needs the users' sync states: {e}"))
    });
    lines.push(match &reason {
        None => "OK".to_owned(),
        Some(r) => format!("FAIL: {r}"),
    });
    Finding {
        ok: reason.is_none(),
        json: json!({
            "sink": spec, "kind": "graph", "ok": reason.is_none(),
            "token_decoded": p.token_decoded, "roles": p.roles, "photo_role": p.photo_role,
            "user": p.user, "user_error": p.user_error, "reason": reason,
            "photo_policy": policy, "photo_policy_error": policy_error,
            "synced_users": split.map(|sp| sp.synced),
            "cloud_only_users": split.map(|sp| sp.cloud_only),
            "graph_users": users.as_str(),
        }),
        lines,
    }
}

/// An LDIF export's findings; `matched` is (the source's keys, those the export has) when
/// `--source` was given.
fn check_ldif(
    spec: &str,
    s: &userphoto::sink::LdifSink,
    path: &std::path::Path,
    matched: Option<(usize, usize)>,
) -> Finding {
    let sum = s.summary();
    let reason = if sum.entries == sum.without_key {
        Some(crate::open::no_users(spec, &sum))
    } else {
        match matched {
            Some((listed, 0)) if listed > 0 => Some(crate::open::none_matched(
                spec,
                listed,
                &sum.match_attribute,
            )),
            _ => None,
        }
    };
    let mut lines = vec![format!(
        "{} users, {} with a photo ({}), {} without a {} value, {} keys on several entries",
        sum.entries,
        sum.with_photos,
        sum.attribute,
        sum.without_key,
        sum.match_attribute,
        sum.ambiguous_keys
    )];
    if let Some((listed, n)) = matched {
        lines.push(format!(
            "{n} of the source's {listed} users are in the export (by {})",
            sum.match_attribute
        ));
    }
    lines.push(match &reason {
        None => "OK".to_owned(),
        Some(r) => format!("FAIL: {r}"),
    });
    Finding {
        ok: reason.is_none(),
        json: json!({
            "sink": spec, "kind": "ldif", "ok": reason.is_none(), "path": path.display().to_string(),
            "users": sum.entries, "with_photos": sum.with_photos,
            "without_key": sum.without_key, "ambiguous_keys": sum.ambiguous_keys,
            "attribute": sum.attribute, "match": sum.match_attribute,
            "source_users": matched.map(|m| m.0), "matched": matched.map(|m| m.1),
            "reason": reason,
        }),
        lines,
    }
}

fn check_folder(spec: &str, s: &userphoto::sink::FolderSink, path: &std::path::Path) -> Finding {
    let exists = path.is_dir();
    let line = if exists {
        format!("{} photos in {}", s.photo_count(), path.display())
    } else {
        format!("{} does not exist yet: a sync creates it", path.display())
    };
    Finding {
        ok: true,
        json: json!({
            "sink": spec, "kind": "folder", "ok": true, "path": path.display().to_string(),
            "exists": exists, "with_photos": s.photo_count(), "reason": null,
        }),
        lines: vec![line, "OK".to_owned()],
    }
}
