//! The LDIF writer: attribute lines (RFC 2849: base64 when the value is not a safe string,
//! folded at 76 columns) and the `changetype: modify` records of the LDIF sink's change file.

use std::io::Write;

use base64::Engine as _;

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
pub fn write_attr(out: &mut impl Write, name: &str, value: &[u8]) -> std::io::Result<()> {
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

/// Where a written record's parts are, relative to its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    /// The bytes written.
    pub len: u64,
    /// The lines written.
    pub lines: usize,
    /// The byte offset and the (0-based) line of the value's attribute line, for a replace.
    pub value_at: Option<(u64, usize)>,
}

/// Counts what goes through it.
struct Counting<'a, W> {
    inner: &'a mut W,
    bytes: u64,
    lines: usize,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        self.lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a `changetype: modify` record that replaces `attr` with `value`, or deletes every
/// value of `attr` when `value` is `None`.
pub(crate) fn write_modify(
    out: &mut impl Write,
    dn: &str,
    attr: &str,
    value: Option<&[u8]>,
) -> std::io::Result<Written> {
    let mut c = Counting {
        inner: out,
        bytes: 0,
        lines: 0,
    };
    write_attr(&mut c, "dn", dn.as_bytes())?;
    c.write_all(b"changetype: modify\n")?;
    let mut value_at = None;
    match value {
        Some(v) => {
            writeln!(c, "replace: {attr}")?;
            value_at = Some((c.bytes, c.lines));
            write_attr(&mut c, attr, v)?;
        }
        None => writeln!(c, "delete: {attr}")?,
    }
    c.write_all(b"-\n\n")?;
    Ok(Written {
        len: c.bytes,
        lines: c.lines,
        value_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ldif::read::Reader;

    fn read_all(text: &[u8]) -> crate::Result<Vec<crate::ldif::read::Record>> {
        let mut r = Reader::new(text, "test.ldif");
        let mut v = Vec::new();
        while let Some(rec) = r.next_record()? {
            v.push(rec);
        }
        Ok(v)
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
