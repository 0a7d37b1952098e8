//! The HTML of a review page: one self-contained document with its stylesheet and script
//! inline, under a Content-Security-Policy that pins both by hash and loads nothing from the
//! network.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::model::{Card, ImageFile, PageInfo, Picture, SinkInfo, SourceView};

/// The page's fixed stylesheet; the size classes of the photos are appended per page.
const CSS: &str = include_str!("review.css");
/// The page's script: the filters, the search box and the "N of M cards shown" line.
const SCRIPT: &str = include_str!("review.js");

/// The largest CSS size (either side) the current and the new photo are shown at: big
/// profiles (Graph's 648x648) would make cards too large to compare many at a glance.
pub(crate) const PHOTO_MAX: u32 = 240;
/// The largest CSS size (either side) of the source photo with its crop square.
pub(crate) const SOURCE_MAX: u32 = 160;
/// The box of a photo whose sink is not in [`PageInfo::sinks`] and that has no image to
/// take a size from.
const FALLBACK_BOX: (u32, u32) = (96, 96);

/// The known actions, in the order the header and the filter list them (others follow in
/// alphabetical order), with their CSS class.
const ACTIONS: [&str; 4] = ["put", "delete", "fail", "skip"];
/// The known statuses of outcome pages, in order, as [`ACTIONS`].
const STATUSES: [&str; 5] = ["done", "failed", "skipped", "not-attempted", "planned"];
/// The audit states of audit pages, in the summary's order (the library's
/// `AuditState::ALL`, then "not-checked"), as [`ACTIONS`].
const AUDIT: [&str; 9] = [
    "in-sync",
    "missing",
    "low-res",
    "changed-elsewhere",
    "differs",
    "outdated",
    "withheld",
    "not-in-directory",
    "not-checked",
];

/// The whole `index.html` of a review page for `info` and `cards` (in the given order).
///
/// Deterministic: the same input gives the same bytes (nothing reads a clock; everything
/// counted is ordered).
pub fn render(info: &PageInfo, cards: &[Card]) -> String {
    let mut boxes = BTreeSet::new();
    let mut body = String::with_capacity(4096 + cards.len() * 1600);
    header(&mut body, info, cards);
    controls(&mut body, info, cards);
    body.push_str("<main class=\"grid\" id=\"cards\">\n");
    if cards.is_empty() {
        body.push_str("<p class=\"empty\">No cards: nothing to review.</p>\n");
    }
    for card in cards {
        card_html(&mut body, info, card, &mut boxes);
    }
    body.push_str("</main>\n");

    let style = stylesheet(&boxes);
    let mut out = String::with_capacity(body.len() + style.len() + SCRIPT.len() + 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n");
    // First in <head>: nothing before it can load or run anything.
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"");
    push_esc(&mut out, &csp(&style, SCRIPT));
    out.push_str("\">\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<title>");
    push_esc(&mut out, &info.title);
    out.push_str("</title>\n<style>");
    out.push_str(&style);
    out.push_str("</style>\n</head>\n<body>\n");
    out.push_str(&body);
    out.push_str("<script>");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body>\n</html>\n");
    out
}

/// The page's Content-Security-Policy for the exact `style` and `script` it inlines.
///
/// - `default-src 'none'`: no fetches, fonts, frames, objects, workers or connections.
/// - `img-src file:`: the photos are files next to the page, opened from disk. No CSP source
///   narrows `file:` URLs to one folder. Measured in Chromium 148 (headless): `'self'` in a
///   `file:` page lets every `file:` image load, in any folder, exactly as `file:` does, and
///   `'none'` blocks them all; `http:` images stay blocked with either. So the two reach the
///   same files there, and `file:` is the one whose meaning does not hang on how each
///   browser defines the origin of a page opened from disk (a scheme source matches by
///   scheme alone, in every CSP implementation); it still refuses `http:`, `https:`,
///   `data:` and `blob:` images.
/// - `style-src` and `script-src` with the SHA-256 of the one `<style>` and the one
///   `<script>`: no other inline code runs, and no `style="..."` or `on...="..."` attribute
///   (none of the page's own markup uses them).
/// - `base-uri 'none'`, `form-action 'none'`: no `<base>` to re-point relative paths, no
///   form submissions.
pub(crate) fn csp(style: &str, script: &str) -> String {
    format!(
        "default-src 'none'; img-src file:; style-src 'sha256-{}'; script-src 'sha256-{}'; \
         base-uri 'none'; form-action 'none'",
        sha256_base64(style),
        sha256_base64(script)
    )
}

/// Base64 (standard, padded) of the SHA-256 of `text`: a CSP hash source.
pub(crate) fn sha256_base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
}

/// The fixed stylesheet plus one size class per photo box the cards use (`.b96x96`): the
/// photos' sizes cannot be `style` attributes, which the policy forbids.
fn stylesheet(boxes: &BTreeSet<(u32, u32)>) -> String {
    let mut style = String::with_capacity(CSS.len() + boxes.len() * 48);
    style.push_str(CSS);
    for (w, h) in boxes {
        let _ = writeln!(style, ".b{w}x{h}{{width:{w}px;height:{h}px}}");
    }
    style
}

/// Appends `text` HTML-escaped: safe in text and in double- or single-quoted attribute
/// values.
pub(crate) fn push_esc(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// Appends `path` as a relative URL that stays a path: every byte but ASCII letters, digits,
/// `-._~` and `/` is percent-encoded (so no `:` makes a scheme, no `\` a separator, no `?`
/// or `#` cuts it), and a leading `/` gets `.` before it (so no `//host/...`, which in a
/// `file:` page would name a network share). The result needs no HTML escaping.
pub(crate) fn push_url_path(out: &mut String, path: &str) {
    if path.starts_with('/') {
        out.push('.');
    }
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// `w` x `h` scaled down (aspect kept, rounded, at least 1) so that neither side exceeds
/// `cap`; sizes within the cap stay as they are (zero counts as one).
pub(crate) fn fit(w: u32, h: u32, cap: u32) -> (u32, u32) {
    let (w, h) = (u64::from(w.max(1)), u64::from(h.max(1)));
    let cap64 = u64::from(cap.max(1));
    if w <= cap64 && h <= cap64 {
        return (w as u32, h as u32);
    }
    let scale = |a: u64, b: u64| ((a * cap64 + b / 2) / b).clamp(1, cap64) as u32;
    if w >= h {
        (cap64 as u32, scale(h, w))
    } else {
        (scale(w, h), cap64 as u32)
    }
}

/// Thousands separators: 102400 -> "102,400".
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The CSS class of a known value (`a-put`, `s-done`), or `other`.
fn class_of(prefix: &str, known: &[&str], value: &str) -> String {
    if known.contains(&value) {
        format!("{prefix}-{value}")
    } else {
        format!("{prefix}-other")
    }
}

/// The human text of a warning, or the warning itself when it is not a known one.
pub(crate) fn warning_text(warning: &str) -> &str {
    match warning {
        "no-face" => "no face found",
        "several-faces" => "several faces",
        "face-too-small" => "face too small",
        "face-at-edge" => "face at the edge",
        "low-resolution" => "low resolution",
        other => other,
    }
}

/// Counts of `values`, listed with the `known` ones first in their order, then the others
/// alphabetically.
fn counted<'a>(
    values: impl Iterator<Item = &'a str>,
    known: &[&'static str],
) -> Vec<(&'a str, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    let mut out: Vec<(&str, usize)> = Vec::with_capacity(counts.len());
    for k in known {
        if let Some((&v, &n)) = counts.get_key_value(k) {
            out.push((v, n));
        }
    }
    out.extend(counts.into_iter().filter(|(v, _)| !known.contains(v)));
    out
}

/// The statuses of `cards` ("" for a card without one).
fn statuses(cards: &[Card]) -> impl Iterator<Item = &str> {
    cards.iter().map(|c| c.status.as_deref().unwrap_or(""))
}

/// The audit states of `cards` ("" for a card without one).
fn audits(cards: &[Card]) -> impl Iterator<Item = &str> {
    cards.iter().map(|c| c.audit.as_deref().unwrap_or(""))
}

/// The header: what ran, where to, when, the counts and the notes.
fn header(out: &mut String, info: &PageInfo, cards: &[Card]) {
    out.push_str("<header class=\"top\">\n<h1>");
    push_esc(out, &info.title);
    out.push_str("</h1>\n<p class=\"kind\">");
    out.push_str(if info.audit {
        "Audit: what each directory shows against what the source would give, per user and \
         sink, with the change a sync would make. Nothing has been written."
    } else if info.outcome {
        "Outcome: what the run did, per user and sink."
    } else {
        "Plan: what a run would change, per user and sink. Nothing has been written."
    });
    out.push_str("</p>\n<dl class=\"facts\">\n<dt>Source</dt><dd class=\"source\">");
    push_esc(out, &info.source);
    out.push_str("</dd>\n<dt>Sinks</dt><dd><ul class=\"sinks\">");
    if info.sinks.is_empty() {
        out.push_str("<li>none</li>");
    }
    for sink in &info.sinks {
        sink_html(out, sink);
    }
    out.push_str("</ul></dd>\n<dt>Crop</dt><dd class=\"crop\">");
    push_esc(out, &info.crop);
    out.push_str("</dd>\n<dt>Generated</dt><dd><time datetime=\"");
    push_esc(out, &info.generated);
    out.push_str("\">");
    push_esc(out, &info.generated);
    let _ = write!(
        out,
        "</time></dd>\n<dt>Cards</dt><dd class=\"total\" data-n=\"{n}\">{n}</dd>\n",
        n = cards.len()
    );
    if info.audit {
        count_row(
            out,
            "Audit",
            "audit",
            &counted(audits(cards), &AUDIT),
            |v| class_of("au", &AUDIT, v),
        );
    }
    count_row(
        out,
        "Actions",
        "action",
        &counted(cards.iter().map(|c| c.action.as_str()), &ACTIONS),
        |v| class_of("a", &ACTIONS, v),
    );
    count_row(
        out,
        "Reasons",
        "reason",
        &counted(cards.iter().map(|c| c.reason.as_str()), &[]),
        |_| "r".to_owned(),
    );
    if info.outcome {
        count_row(
            out,
            "Status",
            "status",
            &counted(statuses(cards), &STATUSES),
            |v| class_of("s", &STATUSES, v),
        );
    }
    let warnings = counted(
        cards
            .iter()
            .flat_map(|c| c.warnings.iter().map(String::as_str)),
        &[],
    );
    if !warnings.is_empty() {
        out.push_str("<dt>Warnings</dt><dd><ul class=\"cnt\">");
        for (w, n) in &warnings {
            out.push_str("<li class=\"cnt-warning\" data-value=\"");
            push_esc(out, w);
            let _ = write!(out, "\" data-n=\"{n}\"><span class=\"b w\">");
            push_esc(out, warning_text(w));
            let _ = write!(out, "</span> {n}</li>");
        }
        out.push_str("</ul></dd>\n");
    }
    out.push_str("</dl>\n");
    if !info.notes.is_empty() {
        out.push_str("<ul class=\"notes\">\n");
        for note in &info.notes {
            out.push_str("<li>");
            push_esc(out, note);
            out.push_str("</li>\n");
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</header>\n");
}

/// One sink of the header: name, profile, size and byte limit.
fn sink_html(out: &mut String, sink: &SinkInfo) {
    out.push_str("<li class=\"sink\" data-sink=\"");
    push_esc(out, &sink.name);
    out.push_str("\"><b>");
    push_esc(out, &sink.name);
    out.push_str("</b> · profile ");
    push_esc(out, &sink.profile);
    let _ = write!(
        out,
        " · {}×{} px · at most {} bytes</li>",
        sink.width,
        sink.height,
        grouped(sink.max_bytes)
    );
}

/// A `<dt>`/`<dd>` pair of counts, e.g. "Actions: put 3, skip 1".
fn count_row(
    out: &mut String,
    label: &str,
    field: &str,
    counts: &[(&str, usize)],
    class: impl Fn(&str) -> String,
) {
    let _ = write!(out, "<dt>{label}</dt><dd><ul class=\"cnt\">");
    for (v, n) in counts {
        let _ = write!(out, "<li class=\"cnt-{field}\" data-value=\"");
        push_esc(out, v);
        let _ = write!(out, "\" data-n=\"{n}\"><span class=\"b {}\">", class(v));
        push_esc(out, if v.is_empty() { "(none)" } else { v });
        let _ = write!(out, "</span> {n}</li>");
    }
    out.push_str("</ul></dd>\n");
}

/// The filter bar: one `<select>` per field built from the values present, the search box
/// and the "N of M cards shown" line (the script keeps it current).
fn controls(out: &mut String, info: &PageInfo, cards: &[Card]) {
    out.push_str("<nav class=\"bar\" aria-label=\"Filters\">\n");
    let total = cards.len();
    if info.audit {
        select(
            out,
            "audit",
            "Audit",
            &counted(audits(cards), &AUDIT),
            total,
        );
    }
    select(
        out,
        "action",
        "Action",
        &counted(cards.iter().map(|c| c.action.as_str()), &ACTIONS),
        total,
    );
    select(
        out,
        "reason",
        "Reason",
        &counted(cards.iter().map(|c| c.reason.as_str()), &[]),
        total,
    );
    if info.outcome {
        select(
            out,
            "status",
            "Status",
            &counted(statuses(cards), &STATUSES),
            total,
        );
    }
    let with = cards.iter().filter(|c| !c.warnings.is_empty()).count();
    let _ = write!(
        out,
        "<label>Warning <select id=\"f-warning\">\
         <option value=\"\" data-special=\"all\">all ({total})</option>\
         <option value=\"\" data-special=\"any\">any warning ({with})</option>\
         <option value=\"\" data-special=\"none\">no warning ({})</option>",
        total - with
    );
    let mut warnings: BTreeMap<&str, usize> = BTreeMap::new();
    for card in cards {
        // A warning listed twice on a card counts once for the filter.
        let distinct: BTreeSet<&str> = card.warnings.iter().map(String::as_str).collect();
        for w in distinct {
            *warnings.entry(w).or_default() += 1;
        }
    }
    for (w, n) in &warnings {
        out.push_str("<option value=\"");
        push_esc(out, w);
        out.push_str("\">");
        push_esc(out, warning_text(w));
        let _ = write!(out, " ({n})</option>");
    }
    out.push_str("</select></label>\n");
    out.push_str(
        "<label>Search <input id=\"q\" type=\"search\" placeholder=\"key, DN or UPN, message\" \
         autocomplete=\"off\" spellcheck=\"false\"></label>\n\
         <button type=\"button\" id=\"reset\">Show all</button>\n",
    );
    let _ = writeln!(
        out,
        "<output id=\"shown\" aria-live=\"polite\">{total} of {total} cards shown</output>\n</nav>"
    );
}

/// A filter `<select>`: "all" and one option per value present, with its count.
fn select(out: &mut String, field: &str, label: &str, counts: &[(&str, usize)], total: usize) {
    let _ = write!(
        out,
        "<label>{label} <select id=\"f-{field}\"><option value=\"\">all ({total})</option>"
    );
    for (v, n) in counts {
        out.push_str("<option value=\"");
        push_esc(out, v);
        out.push_str("\">");
        push_esc(out, if v.is_empty() { "(none)" } else { v });
        let _ = write!(out, " ({n})</option>");
    }
    out.push_str("</select></label>\n");
}

/// The box the current and new photos of `card` are shown in: the sink's profile size,
/// capped at [`PHOTO_MAX`].
fn photo_box(info: &PageInfo, card: &Card) -> (u32, u32) {
    if let Some(sink) = info.sinks.iter().find(|s| s.name == card.sink) {
        return fit(sink.width, sink.height, PHOTO_MAX);
    }
    match (&card.new, &card.current) {
        (Picture::File(f), _) | (_, Picture::File(f)) => fit(f.width, f.height, PHOTO_MAX),
        _ => FALLBACK_BOX,
    }
}

/// One card.
fn card_html(out: &mut String, info: &PageInfo, card: &Card, boxes: &mut BTreeSet<(u32, u32)>) {
    let _ = write!(
        out,
        "<article class=\"card {}\" data-user=\"",
        class_of("act", &ACTIONS, &card.action)
    );
    push_esc(out, &card.key);
    out.push_str("\" data-sink=\"");
    push_esc(out, &card.sink);
    out.push_str("\" data-action=\"");
    push_esc(out, &card.action);
    out.push_str("\" data-reason=\"");
    push_esc(out, &card.reason);
    if info.outcome {
        out.push_str("\" data-status=\"");
        push_esc(out, card.status.as_deref().unwrap_or(""));
    }
    if info.audit {
        out.push_str("\" data-audit=\"");
        push_esc(out, card.audit.as_deref().unwrap_or(""));
    }
    out.push_str("\" data-warnings=\"");
    push_esc(out, &card.warnings.join(" "));
    out.push_str("\">\n<div class=\"hd\"><h2 class=\"k\">");
    push_esc(out, &card.key);
    out.push_str("</h2>");
    if info.audit {
        let state = card.audit.as_deref().unwrap_or("");
        let _ = write!(out, "<span class=\"b {}\">", class_of("au", &AUDIT, state));
        push_esc(
            out,
            if state.is_empty() {
                "(not audited)"
            } else {
                state
            },
        );
        out.push_str("</span>");
    }
    let _ = write!(
        out,
        "<span class=\"b {}\">",
        class_of("a", &ACTIONS, &card.action)
    );
    push_esc(out, &card.action);
    out.push_str("</span><span class=\"b r\">");
    push_esc(out, &card.reason);
    out.push_str("</span>");
    if info.outcome {
        let status = card.status.as_deref().unwrap_or("");
        let _ = write!(
            out,
            "<span class=\"b {}\">",
            class_of("s", &STATUSES, status)
        );
        push_esc(
            out,
            if status.is_empty() {
                "(no status)"
            } else {
                status
            },
        );
        out.push_str("</span>");
    }
    out.push_str("</div>\n");
    match &card.entry {
        Some(entry) => {
            out.push_str("<p class=\"e\">");
            push_esc(out, entry);
            out.push_str("</p>\n");
        }
        None => out.push_str("<p class=\"noe\">no directory entry</p>\n"),
    }
    out.push_str("<p class=\"sk\">in <b>");
    push_esc(out, &card.sink);
    out.push_str("</b></p>\n<div class=\"pics\">\n");

    let shown = photo_box(info, card);
    boxes.insert(shown);
    picture(out, card, "current", &card.current, shown, None);
    picture(out, card, "new", &card.new, shown, card.bytes);
    if let Some(source) = &card.source {
        source_html(out, card, source, boxes);
    }
    out.push_str("</div>\n");

    if !card.warnings.is_empty() {
        out.push_str("<ul class=\"ws\" aria-label=\"warnings\">");
        for w in &card.warnings {
            out.push_str("<li class=\"b w\" data-warning=\"");
            push_esc(out, w);
            out.push_str("\">");
            push_esc(out, warning_text(w));
            out.push_str("</li>");
        }
        out.push_str("</ul>\n");
    }
    if let Some(detail) = &card.detail {
        out.push_str("<p class=\"d\">");
        push_esc(out, detail);
        out.push_str("</p>\n");
    }
    out.push_str("</article>\n");
}

/// Appends "`what` photo of KEY in SINK" (escaped): the alt text of a photo.
fn push_alt(out: &mut String, what: &str, card: &Card) {
    out.push_str(what);
    out.push_str(" photo of ");
    push_esc(out, &card.key);
    out.push_str(" in ");
    push_esc(out, &card.sink);
}

/// An `<img>` of `file` shown at `shown` (its `width`/`height` attributes and size class),
/// lazy, with `alt` already escaped.
fn img(out: &mut String, file: &ImageFile, shown: (u32, u32), class: &str, alt: &str) {
    let (w, h) = shown;
    let _ = write!(out, "<img class=\"{class} b{w}x{h}\" src=\"");
    push_url_path(out, &file.path);
    let _ = write!(
        out,
        "\" alt=\"{alt}\" width=\"{w}\" height=\"{h}\" loading=\"lazy\" decoding=\"async\">"
    );
}

/// The current or the new photo as a `<figure>`: the image, or the reason there is none.
fn picture(
    out: &mut String,
    card: &Card,
    what: &str,
    pic: &Picture,
    shown: (u32, u32),
    bytes: Option<usize>,
) {
    let (w, h) = shown;
    let _ = write!(out, "<figure class=\"{what}\"><figcaption>{what}");
    let mut alt = String::new();
    push_alt(&mut alt, what, card);
    match pic {
        Picture::File(file) => {
            let _ = write!(out, " · {}×{}", file.width, file.height);
            if let Some(n) = bytes {
                let _ = write!(out, " · {} bytes", grouped(n));
            }
            out.push_str("</figcaption>");
            img(out, file, shown, "ph", &alt);
        }
        Picture::Missing(why) => {
            let _ = write!(
                out,
                "</figcaption><div class=\"miss b{w}x{h}\" role=\"img\" aria-label=\"{alt}: "
            );
            push_esc(out, why);
            out.push_str("\"><span>");
            push_esc(out, why);
            out.push_str("</span></div>");
        }
    }
    out.push_str("</figure>\n");
}

/// The source photo, small, with the crop square (and the faces, thinner) drawn over it by
/// an inline SVG in the upright source's pixel coordinates.
fn source_html(
    out: &mut String,
    card: &Card,
    source: &SourceView,
    boxes: &mut BTreeSet<(u32, u32)>,
) {
    let (uw, uh) = (source.upright_width.max(1), source.upright_height.max(1));
    let shown = fit(uw, uh, SOURCE_MAX);
    boxes.insert(shown);
    let (w, h) = shown;
    let _ = write!(
        out,
        "<figure class=\"source\"><figcaption>source · {}×{} · crop</figcaption>\
         <div class=\"ov b{w}x{h}\">",
        source.upright_width, source.upright_height
    );
    let mut alt = String::from("source photo of ");
    push_esc(&mut alt, &card.key);
    alt.push_str(", with the crop square");
    img(out, &source.image, shown, "sv", &alt);
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {uw} {uh}\" preserveAspectRatio=\"none\" width=\"{w}\" \
         height=\"{h}\" aria-hidden=\"true\" focusable=\"false\">"
    );
    // Presentation attributes, not `style`: the policy allows no style attributes.
    // `vector-effect` keeps the lines a fixed width however far the picture is scaled.
    for f in &source.faces {
        let _ = write!(
            out,
            "<rect class=\"face\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" \
             stroke=\"#ffd60a\" stroke-width=\"1\" vector-effect=\"non-scaling-stroke\"/>",
            f.x, f.y, f.width, f.height
        );
    }
    let c = source.crop;
    for (class, colour, width) in [("crop-halo", "#000000", 4), ("crop", "#ff2d55", 2)] {
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" \
             stroke=\"{colour}\" stroke-width=\"{width}\" vector-effect=\"non-scaling-stroke\"/>",
            c.x, c.y, c.width, c.height
        );
    }
    out.push_str("</svg></div></figure>\n");
}
