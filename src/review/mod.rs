//! The review page: one self-contained HTML file that shows, per user and sink, the photo
//! the directory holds today beside the new rendition, the source photo with the crop square
//! drawn over it, the crop's warnings and any failure, so an admin can look before a run
//! writes anything (or after, at what it did).
//!
//! This module only renders: it takes a [`PageInfo`] and [`Card`]s whose images already lie
//! in the review folder (paths relative to it, e.g. `img/000123-new.jpg`) and makes
//! `index.html` ([`render`], [`write_page`]). It reads no clock and no image.
//!
//! The page is opened from disk (`file://`) in any browser, with no server:
//!
//! - nothing is fetched from the network: the stylesheet and the script are inline, the
//!   fonts are the system's, and the page's Content-Security-Policy (its first element)
//!   allows images from `file:` only and the one inline `<style>` and `<script>` by their
//!   SHA-256;
//! - every string of the model is HTML-escaped, in text and in attribute values, and the
//!   script reads them only from `data-*` attributes and `textContent`, so a key such as
//!   `<img src=x onerror=alert(1)>` is shown as text;
//! - each card carries `data-user`, `data-sink`, `data-action`, `data-reason`,
//!   `data-warnings` (space-separated), on outcome pages `data-status` and on audit pages
//!   `data-audit`, for scripts and tests; the filters (audit, action, reason, status,
//!   warning) and the search box (key, entry, detail; case-insensitive) hide cards with
//!   the `hidden` attribute in one pass;
//! - ten thousand cards stay usable: cards are compact, images load lazily and decode
//!   asynchronously, and off-screen cards skip rendering (`content-visibility: auto`).
//!
//! ```
//! use userphoto::review::{render, Card, PageInfo, Picture, SinkInfo};
//!
//! let info = PageInfo::new("userphoto plan", "folder:photos", "face", "2025-01-02T03:04:05Z")
//!     .with_sink(SinkInfo::new("ad", "ad-thumbnail", 96, 96, 10_000));
//! let card = Card::new("alice", "ad", "put", "new")
//!     .with_entry("CN=Alice,OU=Staff,DC=example,DC=org")
//!     .with_new(Picture::file("img/000001-new.jpg", 96, 96))
//!     .with_bytes(4_321);
//! let html = render(&info, &[card]);
//! assert!(html.contains("data-user=\"alice\""));
//! ```

mod collect;
mod model;
mod page;
#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::path::Path;

pub use collect::{Review, ReviewOptions, SOURCE_PREVIEW_SIDE};
pub use model::{Card, ImageFile, PageInfo, Picture, Rect, SinkInfo, SourceView};
pub use page::render;

/// Writes the review page of `info` and `cards` to `dir/index.html`, creating `dir` when it
/// is missing.
///
/// The page is written to a temporary file in `dir` and renamed over `index.html`, so a
/// reader never sees half a page and a failed write leaves the previous page. The file is
/// readable by its owner only (it shows people's photos and names). The images the cards
/// name are not touched: the caller writes them.
pub fn write_page(dir: &Path, info: &PageInfo, cards: &[Card]) -> std::io::Result<()> {
    let html = render(info, cards);
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".index.html.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(html.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join("index.html")).map_err(|e| e.error)?;
    Ok(())
}
