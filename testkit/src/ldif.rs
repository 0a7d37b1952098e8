//! A small LDIF reader and writer of the tests' own, independent of the crate's: it builds
//! directory exports, and applies change files to them the way `ldapmodify` would, so the
//! end-to-end tests check the crate's output with code that does not share its bugs.
#![allow(dead_code)]

use base64::Engine as _;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One directory entry: a DN and its attribute values, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub attrs: Vec<(String, Vec<u8>)>,
}

impl Entry {
    pub fn new(dn: &str) -> Self {
        Self {
            dn: dn.to_owned(),
            attrs: Vec::new(),
        }
    }
    pub fn with(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.attrs.push((name.to_owned(), value.into()));
        self
    }
    pub fn get(&self, name: &str) -> Vec<&[u8]> {
        self.attrs
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

/// One `changetype: modify` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub dn: String,
    /// (`replace` or `delete`, attribute, values)
    pub ops: Vec<(String, String, Vec<Vec<u8>>)>,
}

fn needs_base64(v: &[u8]) -> bool {
    v.is_empty()
        || !v.is_ascii()
        || v.iter().any(|&b| b == 0 || b == b'\n' || b == b'\r')
        || matches!(v[0], b' ' | b':' | b'<')
        || v.last() == Some(&b' ')
}

fn line(out: &mut String, name: &str, v: &[u8]) {
    if needs_base64(v) {
        out.push_str(&format!("{name}:: {}\n", B64.encode(v)));
    } else {
        out.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(v)));
    }
}

/// An export, as `ldapsearch -LLL` writes one (without folding: long lines are legal).
pub fn write_export(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        line(&mut out, "dn", e.dn.as_bytes());
        for (n, v) in &e.attrs {
            line(&mut out, n, v);
        }
        out.push('\n');
    }
    out
}

/// Logical lines of one LDIF text, unfolded, comments dropped, records split on blank lines.
fn records(text: &str) -> Vec<Vec<(String, Vec<u8>)>> {
    let mut recs = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let flush = |cur: &mut Vec<String>, recs: &mut Vec<Vec<(String, Vec<u8>)>>| {
        if cur.is_empty() {
            return;
        }
        let mut rec = Vec::new();
        for l in cur.drain(..) {
            if l == "-" {
                rec.push(("-".to_owned(), Vec::new()));
                continue;
            }
            let (name, rest) = l.split_once(':').expect("attr: value");
            let value = if let Some(b) = rest.strip_prefix(':') {
                B64.decode(b.trim()).expect("base64")
            } else {
                rest.strip_prefix(' ').unwrap_or(rest).as_bytes().to_vec()
            };
            rec.push((name.to_owned(), value));
        }
        if !(rec.len() == 1 && rec[0].0 == "version") {
            recs.push(rec);
        }
    };
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.is_empty() {
            flush(&mut cur, &mut recs);
        } else if let Some(cont) = raw.strip_prefix(' ') {
            cur.last_mut()
                .expect("a folded line continues a line")
                .push_str(cont);
        } else if raw.starts_with('#') {
            // a comment
        } else {
            cur.push(raw.to_owned());
        }
    }
    flush(&mut cur, &mut recs);
    recs
}

/// Parses an export.
pub fn parse_export(text: &str) -> Vec<Entry> {
    records(text)
        .into_iter()
        .map(|rec| {
            let mut it = rec.into_iter().filter(|(n, _)| n != "-");
            let (n, dn) = it.next().expect("dn");
            assert_eq!(n, "dn");
            Entry {
                dn: String::from_utf8(dn).unwrap(),
                attrs: it.collect(),
            }
        })
        .collect()
}

/// Parses a change file of `changetype: modify` records.
pub fn parse_changes(text: &str) -> Vec<Change> {
    records(text)
        .into_iter()
        .map(|rec| {
            let mut it = rec.into_iter();
            let (n, dn) = it.next().expect("dn");
            assert_eq!(n, "dn");
            let (n, ct) = it.next().expect("changetype");
            assert_eq!(
                (n.as_str(), ct.as_slice()),
                ("changetype", b"modify".as_slice())
            );
            let mut ops: Vec<(String, String, Vec<Vec<u8>>)> = Vec::new();
            let mut open = false;
            for (n, v) in it {
                if n == "-" {
                    open = false;
                } else if !open {
                    assert!(n == "replace" || n == "delete" || n == "add", "op {n}");
                    ops.push((n, String::from_utf8(v).unwrap(), Vec::new()));
                    open = true;
                } else {
                    let last = ops.last_mut().unwrap();
                    assert!(
                        n.eq_ignore_ascii_case(&last.1),
                        "{n} inside a {} op",
                        last.1
                    );
                    last.2.push(v);
                }
            }
            Change {
                dn: String::from_utf8(dn).unwrap(),
                ops,
            }
        })
        .collect()
}

/// Applies a change file to an export as `ldapmodify` would, and returns the new export.
/// Panics on a change for a DN the export lacks, or a delete of a missing attribute.
pub fn apply(export: &str, changes: &str) -> String {
    let mut entries = parse_export(export);
    for c in parse_changes(changes) {
        let e = entries
            .iter_mut()
            .find(|e| e.dn == c.dn)
            .unwrap_or_else(|| panic!("no entry {:?}", c.dn));
        for (op, attr, values) in c.ops {
            let had = e.attrs.iter().any(|(n, _)| n.eq_ignore_ascii_case(&attr));
            e.attrs.retain(|(n, _)| !n.eq_ignore_ascii_case(&attr));
            match op.as_str() {
                "replace" | "add" => e
                    .attrs
                    .extend(values.into_iter().map(|v| (attr.clone(), v))),
                _ => assert!(had, "delete of {attr} missing on {}", c.dn),
            }
        }
    }
    write_export(&entries)
}
