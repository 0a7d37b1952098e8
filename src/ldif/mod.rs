//! LDIF (RFC 2849): the reader of directory exports and the one writer of LDIF lines.
//!
//! The [`LdifSink`](crate::sink::LdifSink) reads an export (`ldapsearch` in any of its
//! modes, `ldifde`, plain content files) and writes a change file of `changetype: modify`
//! records; both sides are internal. [`write_attr`] is public, for tools that write LDIF
//! of their own (test fixtures, exports) the way the sink does: plain text when RFC 2849
//! allows it, base64 otherwise, folded at 76 columns.
//!
//! ```
//! let mut out = Vec::new();
//! userphoto::ldif::write_attr(&mut out, "dn", "CN=Doe\\, Ann,DC=example,DC=com".as_bytes())?;
//! userphoto::ldif::write_attr(&mut out, "sAMAccountName", b"ann")?;
//! userphoto::ldif::write_attr(&mut out, "thumbnailPhoto", &[0xFF, 0xD8, 0xFF])?;
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     "dn: CN=Doe\\, Ann,DC=example,DC=com\nsAMAccountName: ann\nthumbnailPhoto:: /9j/\n"
//! );
//! # Ok::<(), std::io::Error>(())
//! ```

pub(crate) mod read;
mod write;

pub(crate) use read::{Encoding, Reader};
pub use write::write_attr;
pub(crate) use write::write_modify;
