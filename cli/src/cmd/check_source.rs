//! `check --source`: the source read as a sync would list it (nothing is loaded or written):
//! its photos counted, the items it cannot read reported, and the keys kept for the sinks'
//! checks (an LDIF export that matches none of them fails).

use futures::StreamExt;
use serde_json::{json, Value};
use userphoto::source::PhotoSource;
use userphoto::UserKey;

/// How many unreadable items are named on stderr and in the JSON.
const NAMED: usize = 10;

/// What the source listed.
pub(crate) struct SourceCheck {
    /// Whether a sync could read it: false when the listing itself failed (a folder or
    /// manifest that cannot be read, a refused connection).
    pub(crate) ok: bool,
    /// Its JSON object (`source`, `kind`, `ok`, `photos`, `withheld`, `unreadable`,
    /// `unreadable_items`, `reason`).
    pub(crate) json: Value,
    /// Its human lines.
    pub(crate) lines: Vec<String>,
    /// The keys it listed (photos and withheld people).
    pub(crate) keys: Vec<UserKey>,
}

/// Lists `source` (named `spec` on the command line) the way a sync does.
pub(crate) async fn check_source(spec: &str, source: &dyn PhotoSource) -> SourceCheck {
    let (mut photos, mut withheld) = (0usize, 0usize);
    let mut keys = Vec::new();
    let mut unreadable: Vec<String> = Vec::new();
    let mut failure: Option<String> = None;
    let mut listing = source.list();
    while let Some(item) = listing.next().await {
        match item {
            Ok(p) if p.withheld => {
                withheld += 1;
                keys.push(p.key);
            }
            Ok(p) => {
                photos += 1;
                keys.push(p.key);
            }
            // One item the source cannot read: that user's failure in a sync.
            Err(e) if e.user().is_some() && !e.is_run_level() => {
                unreadable.push(crate::hint::explain(&e));
            }
            // The listing itself failed: a sync stops here.
            Err(e) => {
                failure = Some(crate::hint::explain(&e));
                break;
            }
        }
    }
    let kind = spec.split_once(':').map_or(spec, |(k, _)| k);
    let mut lines = Vec::new();
    let reason = match failure {
        Some(f) => Some(f),
        None => {
            lines.push(format!(
                "{photos} photos, {withheld} withheld, {} unreadable",
                unreadable.len()
            ));
            for u in unreadable.iter().take(NAMED) {
                lines.push(format!("unreadable: {u}"));
            }
            if unreadable.len() > NAMED {
                lines.push(format!("... and {} more", unreadable.len() - NAMED));
            }
            if photos + withheld == 0 && unreadable.is_empty() {
                lines.push("the source lists no photos: a sync would write nothing".to_owned());
            }
            None
        }
    };
    lines.push(match &reason {
        None => "OK".to_owned(),
        Some(r) => format!("FAIL: {r}"),
    });
    SourceCheck {
        ok: reason.is_none(),
        json: json!({
            "source": spec, "kind": kind, "ok": reason.is_none(),
            "photos": photos, "withheld": withheld, "unreadable": unreadable.len(),
            "unreadable_items": unreadable.iter().take(NAMED).collect::<Vec<_>>(),
            "reason": reason,
        }),
        lines,
        keys,
    }
}
