//! The plan as people read it (stdout of `sync` and `plan`).

use std::io::Write;

use userphoto::normalize::CropWarning;
use userphoto::sync::{Action, Plan, Reason, SourceFailure};

use crate::hint::{explain_failure, explain_text};

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
pub(crate) fn print_plan(plan: &Plan, source_failures: &[SourceFailure], dry: bool) {
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
                // A put planned without its rendition (the user has no photo in the sink):
                // the photo is normalized as it is written.
                (Action::Put, _) => (
                    "put",
                    Some(it.bytes.map_or_else(
                        || "normalized while writing".into(),
                        |b| format!("{b} bytes"),
                    )),
                ),
                (Action::Delete, _) => ("remove", None),
                (Action::Fail, _) => ("FAIL", it.detail.as_deref().map(explain_text)),
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
        let _ = writeln!(out, "  SOURCE {}", explain_failure(f));
    }
}
