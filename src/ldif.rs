//! A small RFC 2849 LDIF reader and change-record writer.
//!
//! No maintained LDIF crate exists (the one on crates.io is a 0.3 side crate of another
//! project), and what this crate needs is small: content records as `ldapsearch -LLL` and
//! `ldifde -f` write them (folded lines, `::` base64 values, comments, several values per
//! attribute, attribute options, CRLF or LF), and `changetype: modify` records that
//! `ldapmodify -f` and `ldifde -i` apply. Base64 goes through the `base64` crate.

use std::io::{BufRead, Write};

use base64::Engine as _;

use crate::{Error, ErrorKind, Result};

/// The longest logical (unfolded) line accepted: a 102,400-byte photo is 136,534 base64
/// characters, so 4 MiB leaves room for `jpegPhoto` values and refuses runaway input.
pub(crate) const MAX_LINE: usize = 4 << 20;

/// One content record of an LDIF export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub dn: String,
    /// Attribute values in file order; names lower-cased, options (`;binary`) removed.
    pub attrs: Vec<(String, Vec<u8>)>,
    /// The line the record starts on (1-based).
    pub line: usize,
}

impl Record {
    /// Every value of an attribute (name compared case-insensitively).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.attrs
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Reads content records one at a time.
pub(crate) struct Reader<R> {
    input: R,
    source: String,
    line: usize,
    /// A physical line read ahead (the start of the next logical line).
    peeked: Option<(usize, Vec<u8>)>,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R, source: impl Into<String>) -> Self {
        Self {
            input,
            source: source.into(),
            line: 0,
            peeked: None,
            done: false,
        }
    }

    fn err(&self, line: usize, msg: impl Into<String>) -> Error {
        Error::new(
            ErrorKind::InvalidData,
            format!("{}:{line}: {}", self.source, msg.into()),
        )
        .with_backend("ldif")
        .with_operation("read")
    }

    /// The next physical line without its line ending, or `None` at the end.
    fn physical(&mut self) -> Result<Option<(usize, Vec<u8>)>> {
        if let Some(p) = self.peeked.take() {
            return Ok(Some(p));
        }
        let mut buf = Vec::new();
        let n = std::io::Read::take(&mut self.input, MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::from(e).with_backend("ldif").with_operation("read"))?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if buf.len() > MAX_LINE && !buf.ends_with(b"\n") {
            return Err(self.err(self.line, format!("a line longer than {MAX_LINE} bytes")));
        }
        if buf.ends_with(b"\n") {
            buf.pop();
            if buf.ends_with(b"\r") {
                buf.pop();
            }
        }
        Ok(Some((self.line, buf)))
    }

    /// The next logical line (folded lines joined), comments skipped; an empty vector marks a
    /// record separator.
    fn logical(&mut self) -> Result<Option<(usize, Vec<u8>)>> {
        loop {
            let Some((no, mut line)) = self.physical()? else {
                return Ok(None);
            };
            // Join continuation lines.
            loop {
                match self.physical()? {
                    Some((n2, next)) if next.first() == Some(&b' ') => {
                        if line.is_empty() {
                            return Err(self.err(n2, "a continuation line follows an empty line"));
                        }
                        line.extend_from_slice(&next[1..]);
                        if line.len() > MAX_LINE {
                            return Err(
                                self.err(no, format!("a folded line longer than {MAX_LINE} bytes"))
                            );
                        }
                    }
                    other => {
                        self.peeked = other;
                        break;
                    }
                }
            }
            if line.first() == Some(&b'#') {
                continue;
            }
            return Ok(Some((no, line)));
        }
    }

    /// Parses `name: value`, `name:: base64` and `name:< url` lines.
    fn attr_line(&self, no: usize, line: &[u8]) -> Result<(String, Vec<u8>)> {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| self.err(no, "expected `attribute: value`"))?;
        let name = std::str::from_utf8(&line[..colon])
            .map_err(|_| self.err(no, "attribute name is not UTF-8"))?;
        let base = name.split(';').next().unwrap_or("").trim();
        if base.is_empty()
            || !base
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(self.err(no, format!("bad attribute name {name:?}")));
        }
        let rest = &line[colon + 1..];
        let value = match rest.first() {
            Some(b':') => {
                let b64: Vec<u8> = rest[1..]
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                base64::engine::general_purpose::STANDARD
                    .decode(&b64)
                    .map_err(|e| self.err(no, format!("bad base64 in {base}: {e}")))?
            }
            Some(b'<') => {
                return Err(self.err(
                    no,
                    format!(
                        "{base}: values by URL (`:<`) are not supported; export with values inline"
                    ),
                ))
            }
            _ => {
                let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
                rest[start..].to_vec()
            }
        };
        Ok((base.to_ascii_lowercase(), value))
    }

    /// The next record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        if self.done {
            return Ok(None);
        }
        // Skip separators (and a leading `version: 1`).
        let (start, first) = loop {
            match self.logical()? {
                None => {
                    self.done = true;
                    return Ok(None);
                }
                Some((_, l)) if l.is_empty() => continue,
                Some((no, l)) if l.starts_with(b"version:") && no == 1 => continue,
                Some(x) => break x,
            }
        };
        let (name, dn) = self.attr_line(start, &first)?;
        if name != "dn" {
            return Err(self.err(
                start,
                format!("a record must start with `dn:`, not `{name}:`"),
            ));
        }
        let dn = String::from_utf8(dn).map_err(|_| self.err(start, "the DN is not UTF-8"))?;
        let mut rec = Record {
            dn,
            attrs: Vec::new(),
            line: start,
        };
        loop {
            match self.logical()? {
                None => {
                    self.done = true;
                    break;
                }
                Some((_, l)) if l.is_empty() => break,
                Some((no, l)) => {
                    let (n, v) = self.attr_line(no, &l)?;
                    if n == "changetype" {
                        return Err(self.err(no, "this is a change file, not a directory export"));
                    }
                    rec.attrs.push((n, v));
                }
            }
        }
        Ok(Some(rec))
    }
}

/// Whether a value can be written as a plain LDIF SAFE-STRING (RFC 2849 section 3).
fn is_safe(v: &[u8]) -> bool {
    match v.first() {
        None => true,
        Some(b' ' | b':' | b'<') => false,
        _ => {
            v.iter()
                .all(|&b| b != 0 && b != b'\n' && b != b'\r' && b < 0x80)
                && v.last() != Some(&b' ')
        }
    }
}

/// Writes `name: value` (or `name:: base64` when the value is not a safe string), folded at
/// 76 columns.
pub(crate) fn write_attr(out: &mut impl Write, name: &str, value: &[u8]) -> std::io::Result<()> {
    let line = if is_safe(value) {
        let mut l = format!("{name}: ").into_bytes();
        l.extend_from_slice(value);
        l
    } else {
        format!(
            "{name}:: {}",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
        .into_bytes()
    };
    // Everything written is ASCII, so folding at byte positions never splits a character.
    let mut rest: &[u8] = &line;
    let mut first = true;
    while !rest.is_empty() {
        let take = rest.len().min(if first { 76 } else { 75 });
        if !first {
            out.write_all(b" ")?;
        }
        out.write_all(&rest[..take])?;
        out.write_all(b"\n")?;
        rest = &rest[take..];
        first = false;
    }
    if line.is_empty() {
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Writes a `changetype: modify` record that replaces `attr` with `value`, or deletes every
/// value of `attr` when `value` is `None`.
pub(crate) fn write_modify(
    out: &mut impl Write,
    dn: &str,
    attr: &str,
    value: Option<&[u8]>,
) -> std::io::Result<()> {
    write_attr(out, "dn", dn.as_bytes())?;
    out.write_all(b"changetype: modify\n")?;
    match value {
        Some(v) => {
            writeln!(out, "replace: {attr}")?;
            write_attr(out, attr, v)?;
        }
        None => writeln!(out, "delete: {attr}")?,
    }
    out.write_all(b"-\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &[u8]) -> Result<Vec<Record>> {
        let mut r = Reader::new(text, "test.ldif");
        let mut v = Vec::new();
        while let Some(rec) = r.next_record()? {
            v.push(rec);
        }
        Ok(v)
    }

    #[test]
    fn reads_folded_base64_comments_and_options() {
        let photo = [0xFFu8, 0xD8, 0xFF, 0xE0, 0, 1, 2, 3, 250];
        let b64 = base64::engine::general_purpose::STANDARD.encode(photo);
        let (a, b) = b64.split_at(5);
        let text = format!(
            "version: 1\r\n# a comment\r\n#  folded comment\r\ndn: CN=Doe\\, John,OU=Staff,DC=contoso,DC=com\r\nobjectClass: top\r\nobjectClass: user\r\nsAMAccountName: jdoe\r\nthumbnailPhoto;binary:: {a}\r\n {b}\r\n\r\n\r\ndn:: {}\r\nsAMAccountName:   mueller\r\ndescription: a long\r\n  value\r\n",
            base64::engine::general_purpose::STANDARD.encode("CN=Müller,OU=Staff,DC=contoso,DC=com")
        );
        let recs = read_all(text.as_bytes()).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].dn, "CN=Doe\\, John,OU=Staff,DC=contoso,DC=com");
        assert_eq!(recs[0].values("objectclass").count(), 2);
        assert_eq!(recs[0].values("thumbnailPhoto").next(), Some(&photo[..]));
        assert_eq!(recs[0].line, 4);
        assert_eq!(recs[1].dn, "CN=Müller,OU=Staff,DC=contoso,DC=com");
        assert_eq!(
            recs[1].values("samaccountname").next(),
            Some(&b"mueller"[..])
        );
        assert_eq!(
            recs[1].values("description").next(),
            Some(&b"a long value"[..])
        );
    }

    #[test]
    fn hostile_input_gives_clear_errors() {
        let bad_b64 = read_all(b"dn: CN=a\nthumbnailPhoto:: !!!notbase64\n").unwrap_err();
        assert_eq!(bad_b64.kind(), ErrorKind::InvalidData);
        assert!(
            bad_b64.to_string().contains("test.ldif:2: bad base64"),
            "{bad_b64}"
        );
        let no_dn = read_all(b"cn: x\n").unwrap_err();
        assert!(
            no_dn.to_string().contains("must start with `dn:`"),
            "{no_dn}"
        );
        let truncated = read_all(b"dn: CN=a\nthumbnailPhoto:: /9j/4A").unwrap_err();
        assert!(truncated.to_string().contains("bad base64"), "{truncated}");
        let url = read_all(b"dn: CN=a\njpegPhoto:< file:///etc/passwd\n").unwrap_err();
        assert!(url.to_string().contains("not supported"), "{url}");
        let mut huge = b"dn: CN=a\ndescription: ".to_vec();
        huge.resize(MAX_LINE + 100, b'x');
        let e = read_all(&huge).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        let change = read_all(b"dn: CN=a\nchangetype: modify\n").unwrap_err();
        assert!(change.to_string().contains("change file"), "{change}");
        let cont = read_all(b"\n continuation\n").unwrap_err();
        assert!(cont.to_string().contains("continuation"), "{cont}");
    }

    #[test]
    fn writes_what_it_reads() {
        let photo: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let mut out = Vec::new();
        write_modify(
            &mut out,
            "CN=O'Brien\\, Ann,OU=Ünits,DC=x",
            "thumbnailPhoto",
            Some(&photo),
        )
        .unwrap();
        write_modify(&mut out, "CN=plain,DC=x", "thumbnailPhoto", None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.len() <= 76), "{text}");
        assert!(text.contains("dn:: "), "a non-ASCII DN is base64");
        assert!(text.contains("dn: CN=plain,DC=x\nchangetype: modify\ndelete: thumbnailPhoto\n-\n"));
        // The attribute lines read back as content give the same DN and value.
        let mut content = Vec::new();
        write_attr(
            &mut content,
            "dn",
            "CN=O'Brien\\, Ann,OU=Ünits,DC=x".as_bytes(),
        )
        .unwrap();
        write_attr(&mut content, "thumbnailPhoto", &photo).unwrap();
        let recs = read_all(&content).unwrap();
        assert_eq!(recs[0].dn, "CN=O'Brien\\, Ann,OU=Ünits,DC=x");
        assert_eq!(recs[0].values("thumbnailphoto").next(), Some(&photo[..]));
    }
}
