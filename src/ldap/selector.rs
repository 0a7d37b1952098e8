//! Which directory entries are people, how each is keyed, and which attribute holds the
//! photo: one setting, checked once, shared by the AD sink and the LDAP source.

use crate::key::guid_from_bytes;
use crate::{Error, ErrorKind, MatchAttribute, Result, UserKey};

/// AD's idiom for people: user accounts, not computers (whose `objectClass` is `user` too)
/// nor contacts; indexed, it is also cheaper for the DC to evaluate than
/// `(objectClass=user)`.
pub const AD_USER_FILTER: &str = "(&(objectCategory=person)(objectClass=user))";

/// How the entries of people are found in an LDAP directory: the attribute that keys them
/// (the match attribute), the attribute that holds their photo, and the filter that selects
/// them. The [`AdSink`](crate::sink::AdSink) and the [`LdapSource`](crate::source::LdapSource)
/// take one ([`AdSinkBuilder::selector`](crate::sink::AdSinkBuilder::selector),
/// [`LdapSourceBuilder::selector`](crate::source::LdapSourceBuilder::selector)), so a sync
/// from one directory to another names people the same way on both sides.
///
/// ```
/// use userphoto::ldap::EntrySelector;
/// use userphoto::MatchAttribute;
/// let s = EntrySelector::new()
///     .match_attribute(MatchAttribute::Mail)
///     .photo_attribute("jpegPhoto")
///     .user_filter("(objectClass=inetOrgPerson)");
/// assert!(s.validate().is_ok());
/// assert!(EntrySelector::new().photo_attribute("jpeg photo").validate().is_err());
/// assert!(EntrySelector::new().user_filter("objectClass=user").validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct EntrySelector {
    matcher: MatchAttribute,
    attribute: String,
    user_filter: String,
}

impl Default for EntrySelector {
    fn default() -> Self {
        Self::new()
    }
}

impl EntrySelector {
    /// AD's defaults: keyed by `sAMAccountName`, the photo in `thumbnailPhoto`, people
    /// selected by [`AD_USER_FILTER`].
    pub fn new() -> Self {
        Self {
            matcher: MatchAttribute::default(),
            attribute: "thumbnailPhoto".into(),
            user_filter: AD_USER_FILTER.into(),
        }
    }

    /// The attribute that keys entries (default `sAMAccountName`).
    pub fn match_attribute(mut self, m: MatchAttribute) -> Self {
        self.matcher = m;
        self
    }

    /// The photo attribute (default `thumbnailPhoto`; `jpegPhoto`, `thumbnailLogo`...).
    pub fn photo_attribute(mut self, name: impl Into<String>) -> Self {
        self.attribute = name.into();
        self
    }

    /// The filter that selects people (default [`AD_USER_FILTER`]; OpenLDAP:
    /// `(objectClass=inetOrgPerson)`), combined with the attribute's presence or the key.
    /// Surrounding white space is removed.
    pub fn user_filter(mut self, filter: impl Into<String>) -> Self {
        self.user_filter = filter.into().trim().to_owned();
        self
    }

    /// The match attribute.
    pub fn matcher(&self) -> &MatchAttribute {
        &self.matcher
    }

    /// The photo attribute.
    pub fn attribute(&self) -> &str {
        &self.attribute
    }

    /// The user filter.
    pub fn filter(&self) -> &str {
        &self.user_filter
    }

    /// Checks the settings: both attributes are LDAP attribute names (a letter, then
    /// letters, digits and hyphens; RFC 4512 `descr`), and the filter is in parentheses.
    /// The error is [`Config`](ErrorKind::Config), naming the bad value.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::new(ErrorKind::Config, m).with_operation("build"));
        for a in [self.attribute.as_str(), self.matcher.ldap_name()] {
            if !is_attribute_name(a) {
                return bad(format!("{a:?} is not an LDAP attribute name"));
            }
        }
        let f = &self.user_filter;
        if !(f.starts_with('(') && f.ends_with(')')) {
            return bad(format!("user filter {f:?} must be in parentheses"));
        }
        Ok(())
    }

    /// The key an entry's match-attribute value gives (a binary `objectGUID` in its text
    /// form), if it gives one.
    pub(crate) fn key_of(&self, v: &[u8]) -> Option<UserKey> {
        if self.matcher == MatchAttribute::ObjectGuid {
            guid_from_bytes(v).map(UserKey::new)
        } else {
            std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.trim().is_empty())
                .map(UserKey::new)
        }
    }
}

/// An LDAP attribute's short name (RFC 4512 `descr`: `keystring`).
fn is_attribute_name(a: &str) -> bool {
    a.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_validation_for_both_attributes_and_the_filter() {
        assert!(EntrySelector::new().validate().is_ok());
        for bad in ["", "1abc", "thumbnail Photo", "a;b", "cn=x"] {
            let e = EntrySelector::new()
                .photo_attribute(bad)
                .validate()
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
        }
        let other: MatchAttribute = "employee;id".parse().unwrap_or(MatchAttribute::Mail);
        let e = EntrySelector::new()
            .match_attribute(other.clone())
            .validate();
        assert_eq!(e.is_err(), other.ldap_name() == "employee;id");
        let e = EntrySelector::new()
            .user_filter("  objectClass=user ")
            .validate()
            .unwrap_err();
        assert!(e.message().contains("parentheses"), "{e}");
        assert_eq!(
            EntrySelector::new().user_filter(" (uid=*) ").filter(),
            "(uid=*)"
        );
    }

    #[test]
    fn keys_come_from_text_or_a_binary_guid() {
        let s = EntrySelector::new();
        assert_eq!(s.key_of(b"alice"), Some(UserKey::new("alice")));
        assert_eq!(s.key_of(b"  "), None);
        assert_eq!(s.key_of(&[0xff, 0xfe]), None);
        let g = EntrySelector::new().match_attribute(MatchAttribute::ObjectGuid);
        let bytes = [
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        assert_eq!(
            g.key_of(&bytes),
            Some(UserKey::new("00112233-4455-6677-8899-aabbccddeeff"))
        );
    }
}
