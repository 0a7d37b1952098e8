//! From a prepared run to a review folder: per planned change, the photo the directory
//! holds today (a reduced-scale preview of what the sink returns), the new rendition (the
//! very bytes the run writes) and the source photo's preview with its crop; then the page.
//!
//! Images are written as they are made, one card at a time, so memory holds the cards'
//! text and never the photos. File names are counters (`img/000042-new.jpg`), never keys,
//! so no user value reaches a path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures::stream::{self, StreamExt};

use super::model::{Card, ImageFile, PageInfo, Picture, Rect, SinkInfo, SourceView};
use crate::normalize::{Normalizer, Preview};
use crate::sync::{
    Action, Audit, AuditFailure, AuditItem, AuditState, PlanItem, Prepared, Reason, Report, Status,
};
use crate::{Error, ErrorKind, Result, UserKey};

/// The longer side of the source photo's preview on a card: the crop's own look at the
/// photo is this size, so the preview costs an encode and no resize.
pub const SOURCE_PREVIEW_SIDE: u32 = 256;

/// The folder of a review's images, inside the review folder.
const IMAGES: &str = "img";

/// What a review shows.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use]
pub struct ReviewOptions {
    /// Show unchanged users too (by default only changes, failures and the changes an
    /// approved plan held back).
    pub all: bool,
    /// How many directory photos are read at once.
    pub concurrency: usize,
    /// The page's title.
    pub title: String,
    /// The crop strategy's name for the header (by default the normalizer's settings).
    pub crop: Option<String>,
}

impl Default for ReviewOptions {
    fn default() -> Self {
        Self {
            all: false,
            concurrency: 4,
            title: "userphoto plan".into(),
            crop: None,
        }
    }
}

impl ReviewOptions {
    /// The same options, showing unchanged users too (or not).
    pub fn with_all(mut self, all: bool) -> Self {
        self.all = all;
        self
    }

    /// The same options with another title.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// The same options, naming the crop strategy in the header.
    pub fn with_crop(mut self, crop: impl Into<String>) -> Self {
        self.crop = Some(crop.into());
        self
    }

    /// The same options, reading `n` directory photos at once (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
}

/// A review folder being made: its images are written, its page is not yet.
///
/// ```no_run
/// # async fn f(prepared: userphoto::sync::Prepared<'_>) -> userphoto::Result<()> {
/// use userphoto::review::{Review, ReviewOptions};
/// let review = Review::collect("review".as_ref(), &prepared, &ReviewOptions::default()).await?;
/// review.write()?; // review/index.html
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Review {
    dir: PathBuf,
    info: PageInfo,
    cards: Vec<Card>,
}

impl Review {
    /// Writes the images of `prepared`'s plan into `dir` (made if missing; a folder that
    /// holds anything but an earlier review is refused) and keeps the cards for
    /// [`write`](Self::write). Call it before [`Prepared::apply`]: the directory's photos
    /// are read as they are before the run.
    pub async fn collect(
        dir: &Path,
        prepared: &Prepared<'_>,
        options: &ReviewOptions,
    ) -> Result<Self> {
        prepare_folder(dir)?;
        let items: Vec<&PlanItem> = prepared
            .plan()
            .items
            .iter()
            .filter(|it| shown(it, options.all))
            .collect();
        let (cards, withheld) = cards_for(dir, prepared, &items, options).await?;
        let mut notes = Vec::new();
        if withheld > 0 {
            notes.push(withheld_note(withheld));
        }
        if !options.all {
            let unchanged = prepared
                .plan()
                .items
                .iter()
                .filter(|i| i.reason == Reason::Unchanged)
                .count();
            if unchanged > 0 {
                notes.push(format!("{unchanged} unchanged, not shown"));
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            info: page_info(prepared, options, notes),
            cards,
        })
    }

    /// Writes the images of an [`Audit`] into `dir` (as [`collect`](Self::collect)): one
    /// card per user and sink that is not `in-sync` (every audited one with
    /// [`ReviewOptions::all`]) and per user the audit could not judge, each with its audit
    /// state ([`Card::audit`]) and, from `prepared` (the same engine's plan, made after the
    /// audit), the photo the directory shows, the rendition the source gives and the change
    /// a sync would make. Users that are not audit items (leavers, users a sink's
    /// configuration leaves out) get no card.
    ///
    /// ```no_run
    /// # async fn f(engine: userphoto::sync::Engine) -> userphoto::Result<()> {
    /// use userphoto::review::{Review, ReviewOptions};
    /// let audit = engine.audit().await?;
    /// let prepared = engine.prepare().await?;
    /// let options = ReviewOptions::default().with_title("userphoto audit");
    /// Review::collect_audit("review".as_ref(), &prepared, &audit, &options)
    ///     .await?
    ///     .write()?;
    /// # Ok(()) }
    /// ```
    pub async fn collect_audit(
        dir: &Path,
        prepared: &Prepared<'_>,
        audit: &Audit,
        options: &ReviewOptions,
    ) -> Result<Self> {
        prepare_folder(dir)?;
        let judged: HashMap<(&UserKey, &str), &AuditItem> = audit
            .items
            .iter()
            .map(|a| ((&a.key, a.sink.as_str()), a))
            .collect();
        let failed: HashMap<(&UserKey, Option<&str>), &AuditFailure> = audit
            .failures
            .iter()
            .map(|f| ((&f.key, f.sink.as_deref()), f))
            .collect();
        let mut items = Vec::new();
        let mut states: Vec<(String, Option<String>)> = Vec::new();
        let mut in_sync = 0usize;
        for it in &prepared.plan().items {
            let sink = it.sink.as_str();
            if let Some(a) = judged.get(&(&it.key, sink)) {
                if a.state == AuditState::InSync {
                    in_sync += 1;
                    if !options.all {
                        continue;
                    }
                }
                items.push(it);
                states.push((a.state.as_str().to_owned(), Some(a.explain())));
            } else if let Some(f) = failed
                .get(&(&it.key, Some(sink)))
                .or_else(|| failed.get(&(&it.key, None)))
            {
                items.push(it);
                states.push((
                    "not-checked".to_owned(),
                    Some(format!("could not be checked: {}", f.message)),
                ));
            }
        }
        let (mut cards, withheld) = cards_for(dir, prepared, &items, options).await?;
        for (c, (state, why)) in cards.iter_mut().zip(states) {
            c.audit = Some(state);
            c.detail = match (why, c.detail.take()) {
                (Some(a), Some(b)) if a != b => Some(format!("{a}\n{b}")),
                (a, b) => a.or(b),
            };
        }
        let mut notes = Vec::new();
        if withheld > 0 {
            notes.push(withheld_note(withheld));
        }
        if !options.all && in_sync > 0 {
            notes.push(format!("{in_sync} in sync, not shown"));
        }
        let unjudged = audit.source_failures.len();
        if unjudged > 0 {
            notes.push(format!(
                "{unjudged} source item(s) could not be tied to a user (see the audit's output)"
            ));
        }
        let mut info = page_info(prepared, options, notes);
        info.audit = true;
        Ok(Self {
            dir: dir.to_owned(),
            info,
            cards,
        })
    }

    /// Marks each card with what became of its change in `report` (a card's status, and
    /// the reason and message the run ended with): the page then shows a run's outcome.
    pub fn with_outcomes(mut self, report: &Report) -> Self {
        let by: HashMap<(&UserKey, &str), usize> = report
            .outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| ((&o.key, o.sink.as_str()), i))
            .collect();
        for c in &mut self.cards {
            let key = UserKey::new(&c.key);
            if let Some(&i) = by.get(&(&key, c.sink.as_str())) {
                let o = &report.outcomes[i];
                c.status = Some(status_text(o.status).to_owned());
                c.reason = o.reason.as_kebab();
                if o.status == Status::Failed {
                    c.detail = o.message.clone().or(c.detail.take());
                }
            }
        }
        self.info.outcome = true;
        self
    }

    /// The cards, in plan order.
    pub fn cards(&self) -> &[Card] {
        &self.cards
    }

    /// Writes the page, `index.html`, and returns its path.
    pub fn write(&self) -> Result<PathBuf> {
        super::write_page(&self.dir, &self.info, &self.cards).map_err(|e| io("write", e))?;
        Ok(self.dir.join("index.html"))
    }
}

/// Whether an item gets a card.
fn shown(it: &PlanItem, all: bool) -> bool {
    all || matches!(it.action, Action::Put | Action::Delete | Action::Fail)
        || matches!(it.reason, Reason::ChangedSincePlan | Reason::NotInPlan)
}

/// The header's facts of a page about `prepared`.
fn page_info(prepared: &Prepared<'_>, options: &ReviewOptions, notes: Vec<String>) -> PageInfo {
    let settings = prepared.settings();
    PageInfo {
        title: options.title.clone(),
        source: prepared.source_name().to_owned(),
        sinks: prepared
            .sinks()
            .map(|(s, p)| SinkInfo {
                name: s.name().to_owned(),
                profile: p.name().to_owned(),
                width: p.width(),
                height: p.height(),
                max_bytes: p.max_bytes(),
            })
            .collect(),
        crop: options.crop.clone().unwrap_or(settings.normalizer),
        generated: crate::sync::now_rfc3339(),
        outcome: false,
        audit: false,
        notes,
    }
}

fn withheld_note(n: usize) -> String {
    format!("{n} withheld: the people withdrew consent, their photos are not shown")
}

/// The cards of `items` (in their order) with their images written: the directory's photo,
/// the rendition, and one source preview per user; and how many are withheld.
async fn cards_for(
    dir: &Path,
    prepared: &Prepared<'_>,
    items: &[&PlanItem],
    options: &ReviewOptions,
) -> Result<(Vec<Card>, usize)> {
    let normalizer = Normalizer::new();
    // One source preview per user, shared by the user's cards in several sinks.
    let mut sources: HashMap<UserKey, Option<(ImageFile, Preview)>> = HashMap::new();
    let mut cards = Vec::with_capacity(items.len());
    let made: Vec<(usize, Result<Card>)> = stream::iter(items.iter().enumerate())
        .map(|(n, it)| {
            let normalizer = &normalizer;
            async move { (n, card(dir, n, it, prepared, normalizer).await) }
        })
        .buffered(options.concurrency.max(1))
        .collect()
        .await;
    let mut withheld = 0usize;
    for ((n, res), it) in made.into_iter().zip(items) {
        let mut c = res?;
        if prepared.is_withheld(&it.key) || it.reason == Reason::Withheld {
            withheld += 1;
        } else if let Some(crop) = &it.crop {
            let entry = match sources.get(&it.key) {
                Some(e) => e.clone(),
                None => {
                    let made = match prepared.preview(&it.key).await {
                        Some(p) => {
                            let file =
                                write_image(dir, n, "source", p.jpeg.clone(), p.width, p.height)
                                    .await?;
                            Some((file, p))
                        }
                        None => None,
                    };
                    sources.insert(it.key.clone(), made.clone());
                    made
                }
            };
            if let Some((file, p)) = entry {
                let r = |x: &crate::normalize::PixelRect| Rect {
                    x: x.x,
                    y: x.y,
                    width: x.width,
                    height: x.height,
                };
                c.source = Some(SourceView {
                    image: file,
                    upright_width: p.upright_width,
                    upright_height: p.upright_height,
                    crop: r(&crop.rect),
                    faces: crop
                        .faces
                        .iter()
                        .map(|f| Rect {
                            x: f.x,
                            y: f.y,
                            width: f.width,
                            height: f.height,
                        })
                        .collect(),
                });
            }
        }
        cards.push(c);
    }
    Ok((cards, withheld))
}

/// One card with its current and new photos written (the source view is added after).
async fn card(
    dir: &Path,
    n: usize,
    it: &PlanItem,
    prepared: &Prepared<'_>,
    normalizer: &Normalizer,
) -> Result<Card> {
    let withheld = prepared.is_withheld(&it.key) || it.reason == Reason::Withheld;
    let sink = prepared.sink(&it.sink);
    let entry = match sink {
        Some((s, _)) => s.entry_name(&it.key).await,
        None => None,
    };
    let current = if withheld {
        Picture::Missing("withheld: not shown".into())
    } else {
        match (it.reason, sink) {
            (Reason::New, _) => Picture::Missing("no photo".into()),
            (Reason::Unmatched, _) => Picture::Missing("not in the directory".into()),
            (Reason::AmbiguousMatch, _) => Picture::Missing("several entries match".into()),
            (_, None) => Picture::Missing("no such sink".into()),
            (_, Some((s, p))) => match s.fetch(&it.key).await {
                Ok(Some(bytes)) => {
                    let side = p.width().max(p.height()).clamp(96, 240);
                    let nz = normalizer.clone();
                    let made = tokio::task::spawn_blocking(move || nz.preview(&bytes, side))
                        .await
                        .map_err(|e| Error::new(ErrorKind::Other, e.to_string()))?;
                    match made {
                        Ok(pv) => Picture::File(
                            write_image(dir, n, "current", pv.jpeg, pv.width, pv.height).await?,
                        ),
                        Err(e) => Picture::Missing(format!(
                            "the directory's photo is not an image we can show: {e}"
                        )),
                    }
                }
                Ok(None) => Picture::Missing("no photo".into()),
                Err(e) => Picture::Missing(format!("not read: {e}")),
            },
        }
    };
    let new = match it.action {
        Action::Put => match prepared.rendition_bytes(it).await {
            Ok(bytes) => {
                let (w, h) = normalizer
                    .probe(&bytes)
                    .map(|i| (i.width, i.height))
                    .unwrap_or((0, 0));
                Picture::File(write_image(dir, n, "new", bytes, w, h).await?)
            }
            Err(e) => Picture::Missing(format!("the rendition could not be made: {e}")),
        },
        Action::Delete => Picture::Missing("removed".into()),
        Action::Fail => Picture::Missing("nothing is written".into()),
        _ if it.reason == Reason::Unchanged => match &current {
            Picture::File(f) => Picture::File(f.clone()),
            Picture::Missing(_) => Picture::Missing("unchanged".into()),
        },
        _ => Picture::Missing("not written".into()),
    };
    let card = Card {
        key: it.key.as_str().to_owned(),
        sink: it.sink.clone(),
        entry,
        action: action_text(it.action).to_owned(),
        reason: it.reason.as_kebab(),
        status: None,
        audit: None,
        detail: it.detail.clone(),
        warnings: it
            .warnings()
            .iter()
            .map(|w| w.as_str().to_owned())
            .collect(),
        bytes: it.bytes,
        current,
        new,
        source: None,
    };
    Ok(card)
}

fn action_text(a: Action) -> &'static str {
    match a {
        Action::Put => "put",
        Action::Delete => "delete",
        Action::Fail => "fail",
        _ => "skip",
    }
}

fn status_text(s: Status) -> &'static str {
    match s {
        Status::Done => "done",
        Status::Skipped => "skipped",
        Status::Planned => "planned",
        Status::Failed => "failed",
        _ => "not-attempted",
    }
}

/// Writes `img/<n>-<what>.jpg` on the blocking pool (file I/O stays off the async workers).
async fn write_image(
    dir: &Path,
    n: usize,
    what: &str,
    jpeg: bytes::Bytes,
    w: u32,
    h: u32,
) -> Result<ImageFile> {
    let rel = format!("{IMAGES}/{n:06}-{what}.jpg");
    let path = dir.join(&rel);
    tokio::task::spawn_blocking(move || write_private(&path, &jpeg))
        .await
        .map_err(|e| Error::new(ErrorKind::Other, e.to_string()))?
        .map_err(|e| io("write an image", e))?;
    Ok(ImageFile {
        path: rel,
        width: w,
        height: h,
    })
}

/// Writes `bytes` to `path`, readable by the owner only, like the page: they are people's
/// photos.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, bytes)
}

/// Makes `dir` ready: created when missing; an earlier review's images removed; any
/// other content refused (a review must not mix with, or delete, someone's files).
fn prepare_folder(dir: &Path) -> Result<()> {
    let images = dir.join(IMAGES);
    if dir.exists() {
        let mut foreign = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| io("read the review folder", e))? {
            let e = e.map_err(|e| io("read the review folder", e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name != "index.html" && name != IMAGES && !name.starts_with(".index.html") {
                foreign.push(name);
            }
        }
        if !foreign.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "the review folder {} holds other files ({}); give an empty or new folder",
                    dir.display(),
                    foreign.join(", ")
                ),
            ));
        }
        if images.exists() {
            for e in std::fs::read_dir(&images).map_err(|e| io("read the review folder", e))? {
                let e = e.map_err(|e| io("read the review folder", e))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if !is_review_image(&name) {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!(
                            "{} holds a file a review does not write ({name}); give an empty or new folder",
                            images.display()
                        ),
                    ));
                }
            }
            std::fs::remove_dir_all(&images).map_err(|e| io("clear the old review", e))?;
        }
    }
    std::fs::create_dir_all(&images).map_err(|e| io("make the review folder", e))
}

/// `000042-new.jpg` and its kin.
fn is_review_image(name: &str) -> bool {
    let Some((n, rest)) = name.split_once('-') else {
        return false;
    };
    n.len() >= 6
        && n.bytes().all(|b| b.is_ascii_digit())
        && matches!(rest, "current.jpg" | "new.jpg" | "source.jpg")
}

fn io(op: &'static str, e: std::io::Error) -> Error {
    Error::from(e).with_backend("review").with_operation(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_its_own_images_are_cleared() {
        assert!(is_review_image("000001-new.jpg"));
        assert!(is_review_image("1234567-source.jpg"));
        assert!(!is_review_image("photo.jpg"));
        assert!(!is_review_image("000001-new.jpg.bak"));
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("notes.txt"), b"mine").unwrap();
        let err = prepare_folder(d.path()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(d.path().join("notes.txt").exists());
        let e = tempfile::tempdir().unwrap();
        std::fs::create_dir(e.path().join(IMAGES)).unwrap();
        std::fs::write(e.path().join(IMAGES).join("000001-new.jpg"), b"x").unwrap();
        prepare_folder(e.path()).unwrap();
        assert!(!e.path().join(IMAGES).join("000001-new.jpg").exists());
    }
}
