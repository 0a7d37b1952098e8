//! Plan files: a plan with what it was based on, kept for approval, then applied exactly.
//!
//! A change board approves a plan, not a sync: "these 4,000 photos, made from these source
//! files, replacing those directory photos". [`Prepared::saved_plan`] writes that down
//! (per item the source's fingerprint, the rendition's hash and the directory photo's
//! version; and the run's settings), as plain JSON to keep, diff and sign off. An engine
//! given the approved plan ([`Engine::with_approved_plan`]) refuses to run with other
//! settings, and makes only the changes that are still exactly the approved ones: anything
//! that moved since is skipped as [`Reason::ChangedSincePlan`], anything new as
//! [`Reason::NotInPlan`].
//!
//! [`Prepared::saved_plan`]: crate::sync::Prepared::saved_plan
//! [`Engine::with_approved_plan`]: crate::sync::Engine::with_approved_plan

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Action, Plan, PlanItem, Policy, Reason};
use crate::normalize::Profile;
use crate::{Error, ErrorKind, Result, UserKey};

/// The `format` of the plan files this version writes and reads.
pub const PLAN_FORMAT: &str = "userphoto-plan/1";

/// A plan and what it was based on: the file `userphoto plan --save-plan` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SavedPlan {
    /// [`PLAN_FORMAT`].
    pub format: String,
    /// When the plan was made (RFC 3339, UTC).
    pub created: String,
    /// The version of userphoto that made it.
    pub userphoto: String,
    /// The settings the plan was made with; applying it needs the same.
    pub settings: PlanSettings,
    /// How many items take each action.
    pub summary: PlanSummary,
    /// Every item, in plan order (key, then sink), with its source fingerprint, rendition
    /// hash and the directory photo's version.
    pub items: Vec<PlanItem>,
}

/// The settings that decide what a plan writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlanSettings {
    /// The source's name (for people; not checked: a change of source shows as changed
    /// photos).
    pub source: String,
    /// The normalizer's settings that shape renditions (the crop strategy).
    pub normalizer: String,
    /// The sinks, in the engine's order, with their profiles.
    pub sinks: Vec<SinkSettings>,
    /// The planner's policy.
    pub policy: Policy,
}

/// One sink of a plan and the profile its renditions are made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SinkSettings {
    /// The sink's name.
    pub name: String,
    /// The profile.
    pub profile: Profile,
}

/// Counts of a plan's items by action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlanSummary {
    /// Photos to write.
    pub put: usize,
    /// Photos to remove.
    pub delete: usize,
    /// Users left as they are.
    pub skip: usize,
    /// Users who fail.
    pub fail: usize,
}

impl SavedPlan {
    pub(crate) fn new(plan: &Plan, settings: PlanSettings, created_secs: u64) -> Self {
        Self {
            format: PLAN_FORMAT.to_owned(),
            created: super::backup::rfc3339(created_secs),
            userphoto: env!("CARGO_PKG_VERSION").to_owned(),
            settings,
            summary: PlanSummary {
                put: plan.count(Action::Put),
                delete: plan.count(Action::Delete),
                skip: plan.count(Action::Skip),
                fail: plan.count(Action::Fail),
            },
            items: plan.items.clone(),
        }
    }

    /// Reads a plan file's JSON; an unknown format is a [`Config`](ErrorKind::Config)
    /// error.
    ///
    /// ```
    /// use userphoto::sync::SavedPlan;
    /// let err = SavedPlan::from_json(br#"{"format":"something-else/9"}"#).unwrap_err();
    /// assert_eq!(err.kind(), userphoto::ErrorKind::Config);
    /// ```
    pub fn from_json(json: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        struct Head {
            format: Option<String>,
        }
        let head: Head =
            serde_json::from_slice(json).map_err(|e| config(format!("not a plan file: {e}")))?;
        match head.format.as_deref() {
            Some(PLAN_FORMAT) => {}
            Some(other) => {
                return Err(config(format!(
                    "a plan file of format {other:?}; this version reads {PLAN_FORMAT:?}"
                )))
            }
            None => return Err(config("not a plan file: no \"format\"".into())),
        }
        serde_json::from_slice(json).map_err(|e| config(format!("a damaged plan file: {e}")))
    }

    /// The plan file's JSON (pretty, one field per line: easy to diff).
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Why a run with `settings` cannot apply this plan (each difference, in words), or
    /// `Ok` when the settings that shape what is written are the same: the sinks (names,
    /// in order), their profiles and the normalizer's crop.
    pub fn check_settings(&self, settings: &PlanSettings) -> Result<()> {
        let mut diffs = Vec::new();
        let names = |s: &PlanSettings| s.sinks.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
        if names(&self.settings) != names(settings) {
            diffs.push(format!(
                "the plan is for the sinks {:?}, this run has {:?}",
                names(&self.settings),
                names(settings)
            ));
        } else {
            for (a, b) in self.settings.sinks.iter().zip(&settings.sinks) {
                if a.profile != b.profile {
                    diffs.push(format!(
                        "sink {:?}: the plan's profile is {} ({}x{}, {} bytes), this run's is {} ({}x{}, {} bytes)",
                        a.name,
                        a.profile.name,
                        a.profile.width,
                        a.profile.height,
                        a.profile.max_bytes,
                        b.profile.name,
                        b.profile.width,
                        b.profile.height,
                        b.profile.max_bytes
                    ));
                }
            }
        }
        if self.settings.normalizer != settings.normalizer {
            diffs.push(format!(
                "the plan was made with {}, this run uses {}",
                self.settings.normalizer, settings.normalizer
            ));
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(config(format!(
                "this run's settings differ from the approved plan's: {}; run with the plan's settings, or make and approve a new plan",
                diffs.join("; ")
            )))
        }
    }

    /// Holds back every change of `plan` that is not exactly an approved one: a change
    /// whose user and sink are not in this plan becomes a skip with
    /// [`Reason::NotInPlan`]; one whose action, source fingerprint, rendition hash or
    /// directory photo differs becomes a skip with [`Reason::ChangedSincePlan`] and a
    /// detail saying what moved. Returns how many were held back.
    pub fn restrict(&self, plan: &mut Plan) -> usize {
        let approved: HashMap<(&UserKey, &str), &PlanItem> = self
            .items
            .iter()
            .map(|i| ((&i.key, i.sink.as_str()), i))
            .collect();
        let mut held = 0;
        for it in &mut plan.items {
            if !matches!(it.action, Action::Put | Action::Delete) {
                continue;
            }
            let why = match approved.get(&(&it.key, it.sink.as_str())) {
                None => Some((Reason::NotInPlan, "not in the approved plan".to_owned())),
                Some(a) => differs(a, it).map(|d| (Reason::ChangedSincePlan, d)),
            };
            if let Some((reason, detail)) = why {
                it.action = Action::Skip;
                it.reason = reason;
                it.detail = Some(detail);
                held += 1;
            }
        }
        held
    }
}

/// What differs between the approved item `a` and the item planned now, in words.
fn differs(a: &PlanItem, now: &PlanItem) -> Option<String> {
    if a.action != now.action {
        return Some(format!(
            "the plan said {} ({}), now it is {} ({})",
            action_word(a.action),
            a.reason.as_kebab(),
            action_word(now.action),
            now.reason.as_kebab()
        ));
    }
    if a.source_fingerprint != now.source_fingerprint {
        return Some("the source photo changed since the plan".into());
    }
    if let (Some(x), Some(y)) = (&a.rendition_sha256, &now.rendition_sha256) {
        if !x.eq_ignore_ascii_case(y) {
            return Some("the rendition differs from the approved one".into());
        }
    }
    if a.rendition_sha256.is_some() != now.rendition_sha256.is_some() && a.action == Action::Put {
        return Some("the rendition cannot be compared with the approved one".into());
    }
    if a.current_version != now.current_version {
        return Some("the directory's photo changed since the plan".into());
    }
    None
}

fn action_word(a: Action) -> &'static str {
    match a {
        Action::Put => "put",
        Action::Delete => "delete",
        Action::Skip => "skip",
        Action::Fail => "fail",
    }
}

fn config(message: String) -> Error {
    Error::new(ErrorKind::Config, message).with_operation("plan file")
}
