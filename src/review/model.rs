//! The data a review page shows: the run's facts ([`PageInfo`]) and one [`Card`] per user
//! and sink. Plain values with no behaviour beyond constructors and `with_*` builders; the
//! writer of the page fills them in, [`render`](super::render) turns them into HTML.
//!
//! Every string here is shown as text: the renderer escapes all of them, in text and in
//! attribute values, so user data (keys, DNs, error messages) can hold anything.

/// Facts for the page's header.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PageInfo {
    /// The page's title, e.g. "userphoto plan" or "userphoto sync".
    pub title: String,
    /// The source's name or description.
    pub source: String,
    /// The sinks the cards refer to (by [`SinkInfo::name`]).
    pub sinks: Vec<SinkInfo>,
    /// The crop strategy's name, e.g. "face".
    pub crop: String,
    /// When the page's data was made: RFC 3339 UTC text, given by the caller (the renderer
    /// reads no clock, so the same input gives the same bytes).
    pub generated: String,
    /// `true`: the cards show what happened (a sync's outcome, with [`Card::status`]);
    /// `false`: they show a plan.
    pub outcome: bool,
    /// `true`: the cards show an audit, what each directory shows against what the source
    /// would give ([`Card::audit`]); the header and the filters list the audit states.
    pub audit: bool,
    /// Free lines for the header, e.g. "3 withheld users: photos not shown".
    pub notes: Vec<String>,
}

impl PageInfo {
    /// A plan page's facts with no sinks and no notes.
    pub fn new(
        title: impl Into<String>,
        source: impl Into<String>,
        crop: impl Into<String>,
        generated: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            source: source.into(),
            sinks: Vec::new(),
            crop: crop.into(),
            generated: generated.into(),
            outcome: false,
            audit: false,
            notes: Vec::new(),
        }
    }

    /// Adds a sink.
    pub fn with_sink(mut self, sink: SinkInfo) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Whether the cards show an outcome (`true`) or a plan (`false`, the default).
    pub fn with_outcome(mut self, outcome: bool) -> Self {
        self.outcome = outcome;
        self
    }

    /// Whether the cards show an audit (`true`) or not (`false`, the default).
    pub fn with_audit(mut self, audit: bool) -> Self {
        self.audit = audit;
        self
    }

    /// Adds a line to the header's notes.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// One sink of the run and the profile its photos are made for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkInfo {
    /// The sink's name, as [`Card::sink`] refers to it.
    pub name: String,
    /// The profile's name, e.g. "ad-thumbnail".
    pub profile: String,
    /// The profile's width in pixels: the size the directory's clients show the photo at.
    pub width: u32,
    /// The profile's height in pixels.
    pub height: u32,
    /// The profile's byte limit.
    pub max_bytes: usize,
}

impl SinkInfo {
    /// A sink and its profile.
    pub fn new(
        name: impl Into<String>,
        profile: impl Into<String>,
        width: u32,
        height: u32,
        max_bytes: usize,
    ) -> Self {
        Self {
            name: name.into(),
            profile: profile.into(),
            width,
            height,
            max_bytes,
        }
    }
}

/// One card: one user in one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Card {
    /// The user's key.
    pub key: String,
    /// The sink's name (a [`SinkInfo::name`]).
    pub sink: String,
    /// The directory's name for the user: a DN or a UPN.
    pub entry: Option<String>,
    /// What is (or was) done: "put", "delete", "fail" or "skip".
    pub action: String,
    /// Why, in kebab-case: "new", "changed", "not-recorded", "unchanged", "withheld",
    /// "leaver", "invalid-image", "changed-since-plan", ...
    pub reason: String,
    /// On outcome pages ([`PageInfo::outcome`]): "done", "failed", "skipped",
    /// "not-attempted" or "planned".
    pub status: Option<String>,
    /// On audit pages ([`PageInfo::audit`]): what the directory shows against the source,
    /// "in-sync", "missing", "low-res", "changed-elsewhere", "differs", "outdated",
    /// "withheld", "not-in-directory", or "not-checked" when the audit could not judge it.
    pub audit: Option<String>,
    /// A failure's reason or another message.
    pub detail: Option<String>,
    /// The crop's warnings in kebab-case: "no-face", "several-faces", "face-too-small",
    /// "face-at-edge", "low-resolution" (others are shown as they are).
    pub warnings: Vec<String>,
    /// The new rendition's size in bytes.
    pub bytes: Option<usize>,
    /// The photo the directory holds today.
    pub current: Picture,
    /// The new rendition.
    pub new: Picture,
    /// The source photo, small, with the crop square.
    pub source: Option<SourceView>,
}

impl Card {
    /// A card with no entry, status, detail, warnings, size or source view, and both
    /// pictures [`Picture::Missing`] ("no photo").
    pub fn new(
        key: impl Into<String>,
        sink: impl Into<String>,
        action: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            sink: sink.into(),
            entry: None,
            action: action.into(),
            reason: reason.into(),
            status: None,
            audit: None,
            detail: None,
            warnings: Vec::new(),
            bytes: None,
            current: Picture::missing("no photo"),
            new: Picture::missing("no photo"),
            source: None,
        }
    }

    /// The directory's name for the user (a DN or a UPN).
    pub fn with_entry(mut self, entry: impl Into<String>) -> Self {
        self.entry = Some(entry.into());
        self
    }

    /// The outcome's status (outcome pages).
    pub fn with_status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// The audit's state for this user and sink (audit pages).
    pub fn with_audit(mut self, state: impl Into<String>) -> Self {
        self.audit = Some(state.into());
        self
    }

    /// A failure's reason or another message.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a warning (kebab-case).
    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    /// The new rendition's size in bytes.
    pub fn with_bytes(mut self, bytes: usize) -> Self {
        self.bytes = Some(bytes);
        self
    }

    /// The photo the directory holds today.
    pub fn with_current(mut self, current: Picture) -> Self {
        self.current = current;
        self
    }

    /// The new rendition.
    pub fn with_new(mut self, new: Picture) -> Self {
        self.new = new;
        self
    }

    /// The source photo with its crop square.
    pub fn with_source(mut self, source: SourceView) -> Self {
        self.source = Some(source);
        self
    }
}

/// A picture on a card: an image file, or the reason there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Picture {
    /// An image file inside the review folder.
    File(ImageFile),
    /// No image, and why (shown as text): "no photo", "not read: ...", "withheld: not
    /// shown", "removed", ...
    Missing(String),
}

impl Picture {
    /// [`Picture::File`] of an image at `path` (relative to the review folder).
    pub fn file(path: impl Into<String>, width: u32, height: u32) -> Self {
        Self::File(ImageFile::new(path, width, height))
    }

    /// [`Picture::Missing`] with its reason.
    pub fn missing(why: impl Into<String>) -> Self {
        Self::Missing(why.into())
    }
}

/// An image file inside the review folder.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageFile {
    /// The path relative to the review folder, with `/` between folders, e.g.
    /// "img/000123-new.jpg". The renderer keeps it relative: a scheme (`http:`), a leading
    /// `/` and backslashes cannot turn it into a link elsewhere.
    pub path: String,
    /// The image's width in pixels.
    pub width: u32,
    /// The image's height in pixels.
    pub height: u32,
}

impl ImageFile {
    /// An image at `path` (relative to the review folder) of `width` x `height` pixels.
    pub fn new(path: impl Into<String>, width: u32, height: u32) -> Self {
        Self {
            path: path.into(),
            width,
            height,
        }
    }
}

/// The source photo, small and upright, with the crop square and the faces found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceView {
    /// The small upright source photo.
    pub image: ImageFile,
    /// The source photo's upright width in pixels: the coordinate space of `crop` and
    /// `faces` (not the small image's).
    pub upright_width: u32,
    /// The source photo's upright height in pixels.
    pub upright_height: u32,
    /// The crop square in upright source pixels.
    pub crop: Rect,
    /// The faces found, in the same coordinates.
    pub faces: Vec<Rect>,
}

impl SourceView {
    /// A source view with its crop and no faces.
    pub fn new(image: ImageFile, upright_width: u32, upright_height: u32, crop: Rect) -> Self {
        Self {
            image,
            upright_width,
            upright_height,
            crop,
            faces: Vec::new(),
        }
    }

    /// Adds a face found.
    pub fn with_face(mut self, face: Rect) -> Self {
        self.faces.push(face);
        self
    }
}

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    /// The left edge.
    pub x: u32,
    /// The top edge.
    pub y: u32,
    /// The width.
    pub width: u32,
    /// The height.
    pub height: u32,
}

impl Rect {
    /// A rectangle at (`x`, `y`) of `width` x `height`.
    pub fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Self {
            x,
            y,
            width,
            height,
        }
    }
}
