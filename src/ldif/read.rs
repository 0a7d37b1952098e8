//! The RFC 2849 LDIF reader: directory exports as the tools write them.
//!
//! No maintained LDIF crate exists (the one on crates.io is a 0.3 side crate of another
//! project), and what this crate needs is small. The reader takes directory exports as the
//! tools write them:
//!
//! * `ldapsearch` in each of its modes: the default extended LDIF (`# extended LDIF` header
//!   comments, a `# search result` / `search: N` / `result: 0 Success` record after each
//!   search, one per page with `-E pr=N/noprompt`, with its `control:` lines and
//!   `# numResponses` comments), `-L` (`version: 1`), `-LL` and `-LLL`; search references
//!   (`ref:` records, `# refldap://` comments) are skipped. A search that ended with another
//!   result than 0 (`result: 4 Size limit exceeded`) is an incomplete export and refused.
//! * `ldifde -f`: every entry an add record (`changetype: add`), CRLF, no `version:` line;
//!   `ldifde -u` writes UTF-16LE with a byte order mark, which is decoded here.
//! * Plain content files (OpenLDAP's own test data): comments anywhere, also before
//!   `version: 1`, a UTF-8 byte order mark, `dn::` base64 DNs, folded lines, attribute
//!   options (`thumbnailPhoto;binary`).
//!
//! Change records other than adds (`modify`, `delete`, `modrdn`) are refused: a change file
//! is not a directory export. Every record and attribute line carries the byte offset of its
//! first physical line in the input, so a caller can read one value again later
//! ([`Reader::resume`]) instead of keeping it. Base64 goes through the `base64` crate.

use std::io::BufRead;

use base64::Engine as _;

use crate::{Error, ErrorKind, Result};

/// The longest logical (unfolded) line accepted: a 102,400-byte photo is 136,534 base64
/// characters, so 4 MiB leaves room for `jpegPhoto` values and refuses runaway input.
pub(crate) const MAX_LINE: usize = 4 << 20;

/// How the bytes of an LDIF file encode its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// UTF-8 (with or without a byte order mark).
    Utf8,
    /// UTF-16, little-endian (`ldifde -u`: with a byte order mark).
    Utf16Le,
    /// UTF-16, big-endian.
    Utf16Be,
}

/// One attribute value of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    /// The attribute name, lower-cased, options (`;binary`) removed.
    pub name: String,
    pub value: Vec<u8>,
    /// The byte offset in the input of the line the value starts on.
    pub offset: u64,
    /// That line's number (1-based).
    pub line: usize,
}

/// One content record of an LDIF export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub dn: String,
    /// Attribute values in file order.
    pub attrs: Vec<Attr>,
    /// The line the record starts on (1-based).
    pub line: usize,
}

impl Record {
    /// Every value of an attribute (name compared case-insensitively).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.attrs
            .iter()
            .filter(move |a| a.name.eq_ignore_ascii_case(name))
            .map(|a| a.value.as_slice())
    }

    /// The first value of an attribute, with where it is.
    pub fn first(&self, name: &str) -> Option<&Attr> {
        self.attrs
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// One physical line: its number, the byte offset it starts at, its text (UTF-8) without
/// the line ending.
struct Physical {
    no: usize,
    offset: u64,
    text: Vec<u8>,
}

/// Reads content records one at a time.
pub(crate) struct Reader<R> {
    input: R,
    source: String,
    /// `None` until the first bytes are looked at (byte order mark, UTF-16 without one).
    encoding: Option<Encoding>,
    /// The byte offset of the next unread input byte.
    pos: u64,
    line: usize,
    /// A physical line read ahead (the start of the next logical line).
    peeked: Option<Physical>,
    /// A record or a `version:` line was seen (a `version:` line may only come first).
    started: bool,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    /// Reads `input` from its start; `source` names it in errors.
    pub fn new(input: R, source: impl Into<String>) -> Self {
        Self {
            input,
            source: source.into(),
            encoding: None,
            pos: 0,
            line: 0,
            peeked: None,
            started: false,
            done: false,
        }
    }

    /// Reads on from a place an earlier reader reported ([`Attr::offset`] and
    /// [`Attr::line`]): `input` is positioned at `offset` already.
    pub fn resume(
        input: R,
        source: impl Into<String>,
        encoding: Encoding,
        offset: u64,
        line: usize,
    ) -> Self {
        Self {
            input,
            source: source.into(),
            encoding: Some(encoding),
            pos: offset,
            line: line.saturating_sub(1),
            peeked: None,
            started: true,
            done: false,
        }
    }

    /// The input's encoding (known once the first record was asked for).
    pub fn encoding(&self) -> Encoding {
        self.encoding.unwrap_or(Encoding::Utf8)
    }

    fn err(&self, line: usize, msg: impl Into<String>) -> Error {
        Error::new(
            ErrorKind::InvalidData,
            format!("{}:{line}: {}", self.source, msg.into()),
        )
        .with_backend("ldif")
        .with_operation("read")
    }

    fn io_err(e: std::io::Error) -> Error {
        Error::from(e).with_backend("ldif").with_operation("read")
    }

    /// Looks at the first bytes: a byte order mark (skipped), or UTF-16 text without one
    /// (an ASCII character and a NUL).
    fn detect(&mut self) -> Result<Encoding> {
        if let Some(e) = self.encoding {
            return Ok(e);
        }
        // A buffered reader hands out at least its first block (or the whole short input).
        let head = self.input.fill_buf().map_err(Self::io_err)?;
        let (enc, bom) = match crate::text::sniff_bom(head) {
            (e, bom) if bom > 0 && e == encoding_rs::UTF_16LE => (Encoding::Utf16Le, bom),
            (e, bom) if bom > 0 && e == encoding_rs::UTF_16BE => (Encoding::Utf16Be, bom),
            (_, bom) if bom > 0 => (Encoding::Utf8, bom),
            // No byte order mark: UTF-16 when an ASCII character and a NUL start the text.
            _ => match head {
                [a, 0, ..] if *a != 0 && a.is_ascii() => (Encoding::Utf16Le, 0),
                [0, a, ..] if *a != 0 && a.is_ascii() => (Encoding::Utf16Be, 0),
                _ => (Encoding::Utf8, 0),
            },
        };
        self.input.consume(bom);
        self.pos += bom as u64;
        self.encoding = Some(enc);
        Ok(enc)
    }

    /// The next physical line without its line ending, or `None` at the end.
    fn physical(&mut self) -> Result<Option<Physical>> {
        if let Some(p) = self.peeked.take() {
            return Ok(Some(p));
        }
        let enc = self.detect()?;
        let offset = self.pos;
        let no = self.line + 1;
        let (mut text, raw) = match enc {
            Encoding::Utf8 => {
                let mut buf = Vec::new();
                let n = std::io::Read::take(&mut self.input, MAX_LINE as u64 + 2)
                    .read_until(b'\n', &mut buf)
                    .map_err(Self::io_err)?;
                if buf.len() > MAX_LINE && !buf.ends_with(b"\n") {
                    return Err(self.err(no, format!("a line longer than {MAX_LINE} bytes")));
                }
                (buf, n)
            }
            Encoding::Utf16Le | Encoding::Utf16Be => self.utf16_line(no, enc)?,
        };
        if raw == 0 {
            return Ok(None);
        }
        self.line = no;
        self.pos += raw as u64;
        if text.ends_with(b"\n") {
            text.pop();
            if text.ends_with(b"\r") {
                text.pop();
            }
        }
        if let Some(i) = text.iter().position(|&b| b == 0) {
            let hint = if enc == Encoding::Utf8 {
                " (a UTF-16 file without a byte order mark? save it as UTF-8 or UTF-16 with one)"
            } else {
                ""
            };
            return Err(self.err(no, format!("a NUL character at column {}{hint}", i + 1)));
        }
        if enc == Encoding::Utf8 {
            if let Err(e) = std::str::from_utf8(&text) {
                return Err(self.err(
                    no,
                    format!(
                        "invalid UTF-8 at column {} (the file is in another encoding: save it as UTF-8, or export with `ldifde -u`)",
                        e.valid_up_to() + 1
                    ),
                ));
            }
        }
        Ok(Some(Physical { no, offset, text }))
    }

    /// One UTF-16 line (up to and with its `\n`), as UTF-8, and how many bytes it took.
    fn utf16_line(&mut self, no: usize, enc: Encoding) -> Result<(Vec<u8>, usize)> {
        let newline: [u8; 2] = match enc {
            Encoding::Utf16Be => [0, b'\n'],
            _ => [b'\n', 0],
        };
        let mut bytes: Vec<u8> = Vec::new();
        'outer: loop {
            let buf = self.input.fill_buf().map_err(Self::io_err)?;
            if buf.is_empty() {
                break;
            }
            let mut used = 0;
            for &b in buf {
                used += 1;
                bytes.push(b);
                if bytes.len() % 2 == 1 {
                    continue;
                }
                if bytes[bytes.len() - 2..] == newline {
                    self.input.consume(used);
                    break 'outer;
                }
                if bytes.len() > MAX_LINE {
                    return Err(self.err(no, format!("a line longer than {MAX_LINE} bytes")));
                }
            }
            self.input.consume(used);
        }
        let encoding = match enc {
            Encoding::Utf16Be => encoding_rs::UTF_16BE,
            _ => encoding_rs::UTF_16LE,
        };
        let text = crate::text::decode(encoding, &bytes).map_err(|bad| {
            self.err(
                no,
                format!(
                    "invalid UTF-16 at column {} (an unpaired surrogate, or the file ends \
                     inside a character)",
                    bad.offset / 2 + 1
                ),
            )
        })?;
        Ok((text.into_owned().into_bytes(), bytes.len()))
    }

    /// The next logical line (folded lines joined), comments skipped; an empty text marks a
    /// record separator.
    fn logical(&mut self) -> Result<Option<Physical>> {
        loop {
            let Some(mut line) = self.physical()? else {
                return Ok(None);
            };
            // Join continuation lines.
            loop {
                match self.physical()? {
                    Some(next) if next.text.first() == Some(&b' ') => {
                        if line.text.is_empty() {
                            return Err(
                                self.err(next.no, "a continuation line follows an empty line")
                            );
                        }
                        if line.text.len() + next.text.len() > MAX_LINE + 1 {
                            return Err(self.err(
                                line.no,
                                format!("a folded line longer than {MAX_LINE} bytes"),
                            ));
                        }
                        line.text.extend_from_slice(&next.text[1..]);
                    }
                    other => {
                        self.peeked = other;
                        break;
                    }
                }
            }
            if line.text.first() == Some(&b'#') {
                continue;
            }
            return Ok(Some(line));
        }
    }

    /// Parses `name: value`, `name:: base64` and `name:< url` lines.
    fn attr_line(&self, no: usize, line: &[u8]) -> Result<(String, Vec<u8>)> {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| self.err(no, "expected `attribute: value`"))?;
        // Physical lines were checked to be UTF-8, so the name (before an ASCII colon) is.
        let name = String::from_utf8_lossy(&line[..colon]);
        let mut parts = name.split(';');
        let base = parts.next().unwrap_or("").trim();
        let good = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        };
        if !good(base) || !parts.all(good) {
            let shown: String = name.chars().take(60).collect();
            return Err(self.err(no, format!("bad attribute name {shown:?}")));
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

    /// Reads the rest of a record that is not an entry (a search result or a search
    /// reference of `ldapsearch`), checking that a search result says success.
    fn skip_record(&mut self, first: &str, line: usize, value: &[u8]) -> Result<()> {
        let check = |this: &Self, name: &str, no: usize, v: &[u8]| -> Result<()> {
            if name != "result" {
                return Ok(());
            }
            let text = String::from_utf8_lossy(v);
            let code = text.split_whitespace().next().unwrap_or("");
            if code == "0" {
                return Ok(());
            }
            let hint = if code == "4" {
                ": the server stopped at its size limit (AD: 1000 entries); page the search with `ldapsearch -E pr=1000/noprompt`"
            } else {
                ""
            };
            Err(this.err(
                no,
                format!(
                    "the export is incomplete: the search ended with `result: {}`{hint}",
                    text.trim()
                ),
            ))
        };
        check(self, first, line, value)?;
        loop {
            match self.logical()? {
                None => {
                    self.done = true;
                    return Ok(());
                }
                Some(l) if l.text.is_empty() => return Ok(()),
                Some(l) => {
                    let (n, v) = self.attr_line(l.no, &l.text)?;
                    check(self, &n, l.no, &v)?;
                }
            }
        }
    }

    /// One attribute line at the reader's position (after [`resume`](Self::resume)).
    pub fn attr_here(&mut self) -> Result<Option<Attr>> {
        match self.logical()? {
            Some(l) if !l.text.is_empty() => {
                let (name, value) = self.attr_line(l.no, &l.text)?;
                Ok(Some(Attr {
                    name,
                    value,
                    offset: l.offset,
                    line: l.no,
                }))
            }
            _ => Ok(None),
        }
    }

    /// The next entry, or `None` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            if self.done {
                return Ok(None);
            }
            // Skip separators.
            let first = loop {
                match self.logical()? {
                    None => {
                        self.done = true;
                        return Ok(None);
                    }
                    Some(l) if l.text.is_empty() => continue,
                    Some(l) => break l,
                }
            };
            let (name, value) = self.attr_line(first.no, &first.text)?;
            let started = std::mem::replace(&mut self.started, true);
            match name.as_str() {
                "dn" => return self.entry(first.no, value).map(Some),
                "version" if !started => {
                    if value.trim_ascii() != b"1" {
                        return Err(self.err(
                            first.no,
                            format!(
                                "LDIF version {:?} is not supported (only 1)",
                                String::from_utf8_lossy(&value)
                            ),
                        ));
                    }
                    // `version: 1` stands alone (ldapsearch -L) or heads the first record.
                }
                // ldapsearch's search result records and search references.
                "search" | "result" | "ref" => self.skip_record(&name, first.no, &value)?,
                other => {
                    return Err(self.err(
                        first.no,
                        format!("a record must start with `dn:`, not `{other}:`"),
                    ))
                }
            }
        }
    }

    /// The rest of an entry whose `dn:` line was just read.
    fn entry(&mut self, line: usize, dn: Vec<u8>) -> Result<Record> {
        let dn = String::from_utf8(dn).map_err(|_| self.err(line, "the DN is not UTF-8"))?;
        let mut rec = Record {
            dn,
            attrs: Vec::new(),
            line,
        };
        let mut changetype = false;
        loop {
            match self.logical()? {
                None => {
                    self.done = true;
                    break;
                }
                Some(l) if l.text.is_empty() => break,
                Some(l) => {
                    let (name, value) = self.attr_line(l.no, &l.text)?;
                    if rec.attrs.is_empty() && !changetype {
                        // RFC 2849 lets controls and a change type follow the DN.
                        if name == "control" {
                            continue;
                        }
                        if name == "changetype" {
                            let t = String::from_utf8_lossy(&value).trim().to_ascii_lowercase();
                            if t != "add" {
                                return Err(self.err(
                                    l.no,
                                    format!(
                                        "this is a change file, not a directory export (`changetype: {t}`); export the directory with ldapsearch or ldifde -f"
                                    ),
                                ));
                            }
                            // `ldifde -f` writes every entry as an add record.
                            changetype = true;
                            continue;
                        }
                    }
                    if name == "changetype" {
                        return Err(self.err(l.no, "`changetype:` must follow the `dn:` line"));
                    }
                    rec.attrs.push(Attr {
                        name,
                        value,
                        offset: l.offset,
                        line: l.no,
                    });
                }
            }
        }
        Ok(rec)
    }
}

/// Reads every record of `data` and drops them: the fuzz target's entry point (any error
/// is fine; a panic, a hang or a huge allocation is a bug). Returns the number of entries.
#[doc(hidden)]
pub fn fuzz_read(data: &[u8]) -> Result<usize> {
    let mut r = Reader::new(data, "fuzz.ldif");
    let mut n = 0;
    while let Some(rec) = r.next_record()? {
        n += 1;
        // What the sink does with a record: read each attribute's values.
        let _ = rec.first("thumbnailphoto").map(|a| a.value.len());
    }
    Ok(n)
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
}
