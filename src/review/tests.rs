//! Unit tests of the review page's HTML (the browser tests are `tests/review_page.rs`).

use super::page::{csp, fit, push_esc, push_url_path, sha256_base64, warning_text};
use super::*;

fn info() -> PageInfo {
    PageInfo::new(
        "userphoto plan",
        "folder:photos",
        "face",
        "2025-01-02T03:04:05Z",
    )
    .with_sink(SinkInfo::new("ad", "ad-thumbnail", 96, 96, 10_000))
    .with_sink(SinkInfo::new("graph", "graph", 648, 648, 500_000))
}

fn source_view() -> SourceView {
    SourceView::new(
        ImageFile::new("img/1-src.jpg", 120, 160),
        1200,
        1600,
        Rect::new(100, 200, 900, 900),
    )
    .with_face(Rect::new(300, 400, 400, 450))
}

fn cards() -> Vec<Card> {
    vec![
        Card::new("alice", "ad", "put", "new")
            .with_entry("CN=Alice,DC=example,DC=org")
            .with_current(Picture::missing("no photo"))
            .with_new(Picture::file("img/1-new.jpg", 96, 96))
            .with_bytes(4321)
            .with_source(source_view())
            .with_warning("no-face"),
        Card::new("alice", "graph", "put", "changed")
            .with_entry("alice@example.org")
            .with_current(Picture::file("img/2-cur.jpg", 648, 648))
            .with_new(Picture::file("img/2-new.jpg", 648, 648))
            .with_warning("low-resolution")
            .with_warning("face-at-edge"),
        Card::new("bob", "ad", "skip", "unchanged"),
        Card::new("carol", "ad", "fail", "invalid-image").with_detail("not a JPEG: bad marker"),
        Card::new("dave", "ad", "delete", "leaver")
            .with_new(Picture::missing("removed"))
            .with_current(Picture::file("img/5-cur.jpg", 96, 96)),
    ]
}

/// The text between `open` and the next `close` after it.
fn between<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
    let start = html.find(open).unwrap_or_else(|| panic!("{open} missing")) + open.len();
    let end = html[start..].find(close).expect("close") + start;
    &html[start..end]
}

/// The page without the contents of its `<style>` and `<script>`.
fn without_style_and_script(html: &str) -> String {
    let mut markup = html.to_owned();
    for (open, close) in [("<style>", "</style>"), ("<script>", "</script>")] {
        let inner = between(&markup, open, close).to_owned();
        markup = markup.replacen(&inner, "", 1);
    }
    markup
}

/// The names (lower case) of every attribute in the page's tags, outside `<style>` and
/// `<script>`.
fn attribute_names(html: &str) -> std::collections::BTreeSet<String> {
    let markup = without_style_and_script(html);
    let mut names = std::collections::BTreeSet::new();
    for tag in markup.split('<').skip(1) {
        let tag = &tag[..tag.find('>').expect("tag closed")];
        // Values are escaped: no quote inside one.
        let mut bare = String::new();
        for (i, part) in tag.split('"').enumerate() {
            if i % 2 == 0 {
                bare.push_str(part);
                bare.push(' ');
            }
        }
        for token in bare.split_whitespace().skip(1) {
            let name = token.trim_end_matches('=').trim_end_matches('/');
            if !name.is_empty() {
                names.insert(name.to_ascii_lowercase());
            }
        }
    }
    names
}

fn esc(s: &str) -> String {
    let mut out = String::new();
    push_esc(&mut out, s);
    out
}

#[test]
fn escapes_the_five_characters() {
    assert_eq!(esc("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
    assert_eq!(esc("plain ünïcode"), "plain ünïcode");
    assert_eq!(esc(""), "");
}

#[test]
fn every_model_string_is_escaped_in_text_and_attributes() {
    // One hostile string per field, each naming its field.
    let evil = |field: &str| format!("<x-{field} a='1' b=\"2\">&amp;</x-{field}>");
    let info = PageInfo::new(
        evil("title"),
        evil("source"),
        evil("crop"),
        evil("generated"),
    )
    .with_outcome(true)
    .with_note(evil("note"))
    .with_sink(SinkInfo::new(evil("sink"), evil("profile"), 96, 96, 10_000));
    let card = Card::new(evil("key"), evil("sink"), evil("action"), evil("reason"))
        .with_entry(evil("entry"))
        .with_status(evil("status"))
        .with_detail(evil("detail"))
        .with_warning(evil("warning"))
        .with_current(Picture::missing(evil("missing")))
        .with_new(Picture::file("img/1.jpg", 96, 96))
        .with_source(source_view());
    let html = render(&info, &[card]);
    for field in [
        "title",
        "source",
        "crop",
        "generated",
        "note",
        "sink",
        "profile",
        "key",
        "action",
        "reason",
        "entry",
        "status",
        "detail",
        "warning",
        "missing",
    ] {
        assert!(!html.contains(&format!("<x-{field}")), "{field} unescaped");
        assert!(
            html.contains(&esc(&evil(field))),
            "{field} not shown escaped"
        );
    }
    // In attribute values: the card's data-* and the alt texts.
    for (attr, field) in [
        ("data-user", "key"),
        ("data-sink", "sink"),
        ("data-action", "action"),
        ("data-reason", "reason"),
        ("data-status", "status"),
        ("data-warnings", "warning"),
    ] {
        assert!(
            html.contains(&format!("{attr}=\"{}\"", esc(&evil(field)))),
            "{attr}"
        );
    }
    assert!(html.contains(&format!(
        "alt=\"new photo of {} in {}\"",
        esc(&evil("key")),
        esc(&evil("sink"))
    )));
    assert!(html.contains(&format!("<option value=\"{}\">", esc(&evil("reason")))));
    // Nothing of the model can open a tag or an attribute: every `<` in the page is one of
    // the renderer's own tags.
    let markup = without_style_and_script(&html);
    for (i, _) in markup.match_indices('<') {
        let tag: String = markup[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '/' || *c == '!')
            .collect();
        let name = tag.trim_start_matches('/').to_ascii_lowercase();
        assert!(
            [
                "!doctype",
                "html",
                "head",
                "meta",
                "title",
                "style",
                "body",
                "header",
                "h1",
                "p",
                "dl",
                "dt",
                "dd",
                "ul",
                "li",
                "b",
                "time",
                "span",
                "nav",
                "label",
                "select",
                "option",
                "input",
                "button",
                "output",
                "main",
                "article",
                "div",
                "h2",
                "figure",
                "figcaption",
                "img",
                "svg",
                "rect",
                "script"
            ]
            .contains(&name.as_str()),
            "unexpected tag <{tag} at {i}"
        );
    }
}

#[test]
fn image_paths_stay_relative_paths() {
    let path_of = |path: &str| {
        let mut out = String::new();
        push_url_path(&mut out, path);
        out
    };
    assert_eq!(path_of("img/000123-new.jpg"), "img/000123-new.jpg");
    assert_eq!(
        path_of("http://127.0.0.1:9/x.jpg"),
        "http%3A//127.0.0.1%3A9/x.jpg"
    );
    assert_eq!(path_of("javascript:alert(1)"), "javascript%3Aalert%281%29");
    assert_eq!(path_of("//evil/share/x.jpg"), ".//evil/share/x.jpg");
    assert_eq!(path_of("/etc/x.jpg"), "./etc/x.jpg");
    assert_eq!(path_of("\\\\evil\\x.jpg"), "%5C%5Cevil%5Cx.jpg");
    assert_eq!(
        path_of("a b\"c'<d>&e?f#g%h"),
        "a%20b%22c%27%3Cd%3E%26e%3Ff%23g%25h"
    );
    assert_eq!(path_of("é.jpg"), "%C3%A9.jpg");

    let card = Card::new("k", "ad", "put", "new").with_new(Picture::file(
        "\"><script>alert(1)</script>",
        96,
        96,
    ));
    let html = render(&info(), &[card]);
    assert!(html.contains("src=\"%22%3E%3Cscript%3Ealert%281%29%3C/script%3E\""));
}

#[test]
fn render_is_deterministic() {
    let (info, cards) = (info(), cards());
    let a = render(&info, &cards);
    assert_eq!(a, render(&info.clone(), &cards.clone()));
    assert_eq!(a, render(&info, &cards));
    let outcome = info.clone().with_outcome(true);
    assert_eq!(render(&outcome, &cards), render(&outcome, &cards));
}

#[test]
fn csp_is_first_in_head_and_pins_the_inline_style_and_script() {
    let html = render(&info(), &cards());
    let head = between(&html, "<head>\n", "</head>");
    assert!(head.starts_with("<meta http-equiv=\"Content-Security-Policy\" content=\""));
    let policy = between(head, "content=\"", "\"").replace("&#39;", "'");
    let style = between(&html, "<style>", "</style>");
    let script = between(&html, "<script>", "</script>");
    assert_eq!(policy, csp(style, script));
    for part in [
        "default-src 'none'",
        "img-src file:;",
        "base-uri 'none'",
        "form-action 'none'",
    ] {
        assert!(policy.contains(part), "{part} in {policy}");
    }
    // The hashes are of exactly these blocks (an independent base64 of the digest).
    assert!(policy.contains(&format!("style-src 'sha256-{}'", sha256_base64(style))));
    assert!(policy.contains(&format!("script-src 'sha256-{}'", sha256_base64(script))));
    assert_eq!(
        sha256_base64("abc"),
        "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    );
    assert_eq!(html.matches("<style>").count(), 1);
    assert_eq!(html.matches("<script>").count(), 1);
    assert!(head.contains("<meta charset=\"utf-8\">"));
    assert!(head.contains("<meta name=\"referrer\" content=\"no-referrer\">"));
    assert!(head.contains("<meta name=\"viewport\""));
    // Nothing the policy would block: no style or event-handler attributes, no URLs.
    let names = attribute_names(&html);
    assert!(names.contains("data-user") && names.contains("viewbox"));
    for name in &names {
        assert!(
            name != "style" && !name.starts_with("on"),
            "attribute {name}"
        );
    }
    assert!(!html.contains("http:") && !html.contains("https:"));
    // The size classes the cards use are in the hashed stylesheet.
    assert!(style.contains(".b96x96{width:96px;height:96px}"));
    assert!(style.contains(".b240x240{width:240px;height:240px}"));
    assert!(style.contains(".b120x160{width:120px;height:160px}"));
}

#[test]
fn header_counts_by_action_reason_status_and_warning() {
    let count = |html: &str, field: &str, value: &str| -> usize {
        let open = format!("<li class=\"cnt-{field}\" data-value=\"{value}\" data-n=\"");
        between(html, &open, "\"").parse().unwrap()
    };
    let mut cards = cards();
    cards.push(Card::new("erin", "graph", "put", "new").with_warning("no-face"));
    let html = render(&info(), &cards);
    assert_eq!(count(&html, "action", "put"), 3);
    assert_eq!(count(&html, "action", "skip"), 1);
    assert_eq!(count(&html, "action", "fail"), 1);
    assert_eq!(count(&html, "action", "delete"), 1);
    assert_eq!(count(&html, "reason", "new"), 2);
    assert_eq!(count(&html, "reason", "leaver"), 1);
    assert_eq!(count(&html, "warning", "no-face"), 2);
    assert_eq!(count(&html, "warning", "face-at-edge"), 1);
    assert!(html.contains("data-n=\"6\">6</dd>"));
    assert!(html.contains("6 of 6 cards shown"));
    // The known actions in their order, before anything else.
    let actions = between(&html, "<dt>Actions</dt>", "</dd>");
    let pos = |v: &str| actions.find(&format!("data-value=\"{v}\"")).unwrap();
    assert!(pos("put") < pos("delete") && pos("delete") < pos("fail") && pos("fail") < pos("skip"));
    // Plans have no status; outcomes count it.
    assert!(!html.contains("cnt-status") && !html.contains("data-status=\""));
    let outcome: Vec<Card> = cards
        .into_iter()
        .enumerate()
        .map(|(i, c)| if i % 2 == 0 { c.with_status("done") } else { c })
        .collect();
    let html = render(&info().with_outcome(true), &outcome);
    assert_eq!(count(&html, "status", "done"), 3);
    assert_eq!(count(&html, "status", ""), 3);
    assert_eq!(html.matches("data-status=\"done\"").count(), 3);
    assert!(html.contains("id=\"f-status\""));
}

#[test]
fn audit_pages_count_filter_and_mark_the_audit_states() {
    let count = |html: &str, value: &str| -> usize {
        let open = format!("<li class=\"cnt-audit\" data-value=\"{value}\" data-n=\"");
        between(html, &open, "\"").parse().unwrap()
    };
    let states = ["low-res", "differs", "<b>odd</b>", "low-res"];
    let mut cards = cards();
    cards.truncate(states.len());
    let cards: Vec<Card> = cards
        .into_iter()
        .zip(states)
        .map(|(c, s)| c.with_audit(s))
        .collect();
    // Not an audit page: no audit marks, whatever the cards hold.
    let plan = render(&info(), &cards);
    let plan = without_style_and_script(&plan);
    assert!(!plan.contains("data-audit=") && !plan.contains("id=\"f-audit\""));
    let html = render(&info().with_audit(true), &cards);
    assert!(html.contains("Audit: what each directory shows"));
    assert_eq!(count(&html, "low-res"), 2);
    assert_eq!(count(&html, "differs"), 1);
    assert_eq!(html.matches("data-audit=\"low-res\"").count(), 2);
    assert!(html.contains("<select id=\"f-audit\">"));
    // Known states in the summary's order, an unknown one escaped and after them.
    let row = between(&html, "<dt>Audit</dt>", "</dd>");
    let pos = |v: &str| row.find(&format!("data-value=\"{v}\"")).unwrap();
    assert!(pos("low-res") < pos("differs") && pos("differs") < pos(&esc("<b>odd</b>")));
    assert!(!html.contains("<b>odd</b>"));
    assert!(html.contains("<span class=\"b au-low-res\">low-res</span>"));
    assert!(html.contains("<span class=\"b au-other\">"));
}

#[test]
fn cards_carry_their_pictures_warnings_and_details() {
    let html = render(
        &info().with_note("3 withheld users: photos not shown"),
        &cards(),
    );
    assert_eq!(html.matches("<article class=\"card").count(), 5);
    // In the given order.
    let order: Vec<usize> = [
        "alice\" data-sink=\"ad",
        "alice\" data-sink=\"graph",
        "bob",
        "carol",
        "dave",
    ]
    .iter()
    .map(|k| html.find(&format!("data-user=\"{k}")).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]));
    // Every image: alt, size, lazy, async.
    let imgs: Vec<&str> = html
        .split("<img ")
        .skip(1)
        .map(|s| &s[..s.find('>').unwrap()])
        .collect();
    assert_eq!(imgs.len(), 5);
    for img in &imgs {
        for attr in [
            "alt=\"",
            "width=\"",
            "height=\"",
            "loading=\"lazy\"",
            "decoding=\"async\"",
        ] {
            assert!(img.contains(attr), "{attr} in {img}");
        }
    }
    // The sink's size, capped at 240 for Graph's 648x648.
    assert!(html.contains(
        "src=\"img/1-new.jpg\" alt=\"new photo of alice in ad\" width=\"96\" height=\"96\""
    ));
    assert!(html.contains("src=\"img/2-cur.jpg\" alt=\"current photo of alice in graph\" width=\"240\" height=\"240\""));
    // The source at 160 px at most, the SVG in upright source coordinates.
    assert!(html.contains("width=\"120\" height=\"160\" loading=\"lazy\""));
    assert!(html.contains(
        "<svg viewBox=\"0 0 1200 1600\" preserveAspectRatio=\"none\" width=\"120\" height=\"160\""
    ));
    assert!(html.contains("<rect class=\"crop\" x=\"100\" y=\"200\" width=\"900\" height=\"900\""));
    assert!(html.contains("<rect class=\"face\" x=\"300\" y=\"400\" width=\"400\" height=\"450\""));
    // Missing pictures as text, warnings in words, details, notes.
    assert!(html.contains("<span>no photo</span>") && html.contains("<span>removed</span>"));
    assert!(html.contains("data-warnings=\"low-resolution face-at-edge\""));
    assert!(html.contains(">low resolution</li>") && html.contains(">face at the edge</li>"));
    assert!(html.contains("<p class=\"d\">not a JPEG: bad marker</p>"));
    assert!(html.contains("<li>3 withheld users: photos not shown</li>"));
    assert!(html.contains("4,321 bytes") && html.contains("at most 500,000 bytes"));
    assert_eq!(warning_text("several-faces"), "several faces");
    assert_eq!(warning_text("face-too-small"), "face too small");
    assert_eq!(warning_text("something-new"), "something-new");
}

#[test]
fn fit_caps_the_longer_side() {
    assert_eq!(fit(96, 96, 240), (96, 96));
    assert_eq!(fit(648, 648, 240), (240, 240));
    assert_eq!(fit(1200, 1600, 160), (120, 160));
    assert_eq!(fit(4000, 10, 160), (160, 1));
    assert_eq!(fit(0, 0, 160), (1, 1));
    assert_eq!(fit(u32::MAX, u32::MAX - 1, 240), (240, 240));
}

#[test]
fn write_page_creates_the_folder_and_replaces_the_page() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("review").join("nested");
    write_page(&dir, &info(), &cards()).unwrap();
    let first = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert_eq!(first, render(&info(), &cards()));
    write_page(&dir, &info(), &[]).unwrap();
    let second = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(second.contains("0 of 0 cards shown") && second.contains("nothing to review"));
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["index.html"], "no temporary file left");
}
