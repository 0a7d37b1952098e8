//! The one record per user that the stages fill in, in key order: what the source listed,
//! and per sink (target) what it holds, what the state store recorded and the rendition.
//! The plan's items then name their user and target, so the apply stage finds everything
//! about an item in this record.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;

use super::super::spill::{Spill, Spilled};
use super::super::{Failure, RenditionFacts, SinkState, StateRecord};
use crate::normalize::{CropReport, Preview};
use crate::source::PhotoRef;
use crate::UserKey;

/// Every user of a run, sorted by key: the source's and the sinks' leavers.
pub(super) type Users = BTreeMap<UserKey, User>;

/// One user through the stages.
#[derive(Default)]
pub(super) struct User {
    /// The photo the source listed (absent for a leaver, or when listing failed).
    pub(super) photo: Option<PhotoRef>,
    /// Why the source failed for this user: listing it, or loading its photo.
    pub(super) source_error: Option<Failure>,
    /// Per target (the engine's sinks, in order): `None` when the user is not planned there
    /// (a leaver of another sink).
    pub(super) targets: Vec<Option<Slot>>,
    /// The rendition made at apply time for several sinks at once (one decode).
    pub(super) deferred: Option<Deferred>,
    /// The photo's preview, when the engine makes them: in the spill file.
    pub(super) preview: Option<KeptPreview>,
}

/// A preview waiting in the spill file for the review page.
pub(super) struct KeptPreview {
    pub(super) at: Spilled,
    pub(super) sha256: String,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) upright_width: u32,
    pub(super) upright_height: u32,
}

impl KeptPreview {
    /// Puts `p`'s bytes in the spill file (never in memory: a review of 100,000 users must
    /// not hold their previews); `None` when the file cannot be written.
    pub(super) async fn keep(p: Preview, spill: &Spill) -> Option<Self> {
        let sha256 = crate::digest::sha256_hex(&p.jpeg);
        let at = spill.put_blocking(p.jpeg).await?;
        Some(Self {
            at,
            sha256,
            width: p.width,
            height: p.height,
            upright_width: p.upright_width,
            upright_height: p.upright_height,
        })
    }
}

impl User {
    /// The user's slot for target `ti`, made on first use.
    pub(super) fn slot_mut(&mut self, ti: usize, targets: usize) -> &mut Slot {
        if self.targets.len() < targets {
            self.targets.resize_with(targets, || None);
        }
        self.targets[ti].get_or_insert_with(Slot::default)
    }

    /// The user's slot for target `ti`, if the user is planned there.
    pub(super) fn slot(&self, ti: usize) -> Option<&Slot> {
        self.targets.get(ti).and_then(Option::as_ref)
    }

    /// The photo to write, when there is one (listed, not withheld, no source failure).
    pub(super) fn writable(&self) -> Option<&PhotoRef> {
        self.photo
            .as_ref()
            .filter(|r| !r.withheld && self.source_error.is_none())
    }
}

/// One user in one sink.
pub(super) struct Slot {
    /// What the sink holds (`None` before it is read, and again once the plan holds it).
    pub(super) current: Option<SinkState>,
    /// What the state store recorded of the last write.
    pub(super) record: Option<StateRecord>,
    /// The rendition for this sink.
    pub(super) rendition: Rendition,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            current: None,
            record: None,
            rendition: Rendition::None,
        }
    }
}

impl Slot {
    /// Once planned, the slot keeps only what the apply stage needs (the rendition): what
    /// the sink held and the state store's record are in the plan now, and a run of 100,000
    /// users does not carry them through the apply stage.
    pub(super) fn shed(&mut self) {
        self.current = None;
        self.record = None;
    }
}

/// What is known of a user's rendition for one sink.
pub(super) enum Rendition {
    /// None made: not needed (withheld, a leaver, a sink that failed), or not yet.
    None,
    /// Known from the state store: the sink shows what was written from this very photo.
    Known(RenditionFacts),
    /// To be made while applying (the sink holds no photo, so the decision does not
    /// depend on it).
    Deferred,
    /// Made while planning.
    Made {
        /// Its hash and size.
        facts: RenditionFacts,
        /// How it was cropped (moved into the plan item).
        crop: Option<CropReport>,
        /// Its bytes, for a put: in memory or in the spill file.
        kept: Option<Kept>,
    },
    /// Could not be made.
    Failed(Failure),
}

/// Where a rendition waits for the apply stage.
pub(super) enum Kept {
    /// In memory (within the rendition cache).
    Memory(Bytes),
    /// In the spill file.
    Spilled(Spilled),
}

/// A rendition made (hash, size, crop) with its bytes, or why it could not be.
#[derive(Clone)]
pub(super) struct Made {
    pub(super) facts: RenditionFacts,
    pub(super) bytes: Option<Bytes>,
    pub(super) crop: Option<CropReport>,
}

/// A rendition or why there is none.
pub(super) type MadeResult = std::result::Result<Made, Failure>;

/// A user normalized at apply time for several sinks: one decode for all of them, made by
/// whichever of their items gets there first; each item takes its own rendition out. The
/// renditions waiting for the other sinks' items count against the rendition cache (a slow
/// sink's items can lag far behind a fast one's); beyond it their bytes are dropped, and
/// those items make their rendition again.
pub(super) struct Deferred {
    /// The targets it is made for.
    pub(super) tis: Vec<usize>,
    /// Per target: the rendition waiting for its item; or the source's failure.
    #[allow(clippy::type_complexity)]
    pub(super) made:
        tokio::sync::OnceCell<std::result::Result<Vec<(usize, Mutex<Option<Waiting>>)>, Failure>>,
}

/// A deferred rendition waiting for its item, and whether its bytes hold cache budget.
pub(super) struct Waiting {
    pub(super) rendition: MadeResult,
    pub(super) reserved: bool,
}
