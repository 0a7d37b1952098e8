//! What a prepared run shows a reviewer before it is applied: each item's sink and profile,
//! the rendition it writes, the source photo's preview, and the plan file.

use bytes::Bytes;

use super::super::approved::{PlanSettings, SavedPlan};
use super::Prepared;
use crate::normalize::{Preview, Profile};
use crate::sink::DirectorySink;
use crate::sync::PlanItem;
use crate::{Result, UserKey};

impl Prepared<'_> {
    /// The preview of `key`'s source photo, when the engine makes previews
    /// ([`Engine::with_previews`](super::Engine::with_previews)) and the photo was
    /// normalized while planning; read back from the engine's temporary file.
    pub async fn preview(&self, key: &UserKey) -> Option<Preview> {
        let kept = self.users.get(key)?.preview.as_ref()?;
        let jpeg = self
            .spill
            .get_blocking(kept.at, kept.sha256.clone())
            .await?;
        Some(Preview {
            jpeg,
            width: kept.width,
            height: kept.height,
            upright_width: kept.upright_width,
            upright_height: kept.upright_height,
        })
    }

    /// The rendition a planned put writes, the very bytes [`apply`](Self::apply) would
    /// send (from memory, the temporary file, or made again and checked against the plan's
    /// hash). Reading it changes nothing.
    pub async fn rendition_bytes(&self, item: &PlanItem) -> Result<Bytes> {
        self.rendition(item).await
    }

    /// The sink named `name`, and the profile its renditions are made for.
    pub fn sink(&self, name: &str) -> Option<(&dyn DirectorySink, &Profile)> {
        self.engine
            .targets
            .iter()
            .find(|t| t.sink.name() == name)
            .map(|t| (t.sink.as_ref(), &t.profile))
    }

    /// The sinks, in the engine's order, with their profiles.
    pub fn sinks(&self) -> impl Iterator<Item = (&dyn DirectorySink, &Profile)> {
        self.engine
            .targets
            .iter()
            .map(|t| (t.sink.as_ref(), &t.profile))
    }

    /// The source's name.
    pub fn source_name(&self) -> &str {
        self.engine.source.name()
    }

    /// Whether the person withdrew consent for `key`'s photo (a reviewer is not shown it).
    pub fn is_withheld(&self, key: &UserKey) -> bool {
        self.users
            .get(key)
            .and_then(|u| u.photo.as_ref())
            .is_some_and(|p| p.withheld)
    }

    /// The settings the run was prepared with.
    pub fn settings(&self) -> PlanSettings {
        self.engine.settings()
    }

    /// The plan with what it was based on, to keep and approve (see [`SavedPlan`]); an
    /// engine given it back ([`Engine::with_approved_plan`](super::Engine::with_approved_plan))
    /// makes exactly these changes.
    pub fn saved_plan(&self) -> SavedPlan {
        SavedPlan::new(
            &self.plan,
            self.settings(),
            super::super::backup::now_secs(),
        )
    }
}
