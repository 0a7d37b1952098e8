//! User keys and the directory attribute they are matched on.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

/// The value that identifies a person in a source: a logon name, a UPN, an e-mail address,
/// an employee number, a GUID...
///
/// # Case rules
///
/// Keys compare **case-insensitively** (Unicode lower-casing, after trimming white space),
/// because every attribute AD matches users on (`sAMAccountName`, `userPrincipalName`,
/// `mail`, `employeeID`, `employeeNumber`) uses a case-ignoring matching rule: `JDoe.jpg`
/// and `jdoe.jpg` are the same user, and a folder holding both is a conflict. The original
/// spelling is kept for display and reports. An `objectGUID` key is compared on its
/// canonical lower-case hyphenated form (braces removed), see [`MatchAttribute::canonical`].
///
/// Cloning a key is cheap (a reference count): the engine keeps one copy of each key's text
/// however many maps, plan items and outcomes name the user.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(from = "String", into = "String")]
pub struct UserKey {
    // Shared, so the per-user records of a 100,000-user run hold one allocation per key.
    original: Arc<str>,
    // `None` when folding changes nothing (most keys), so such keys hold one string.
    folded: Option<Arc<str>>,
}

impl UserKey {
    /// A key from its text; surrounding white space is removed.
    pub fn new(value: impl AsRef<str>) -> Self {
        let original = value.as_ref().trim();
        let folded = original.to_lowercase();
        let folded = (folded != original).then(|| Arc::from(folded));
        Self {
            original: Arc::from(original),
            folded,
        }
    }

    /// The key as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The case-folded form used for comparison.
    pub fn folded(&self) -> &str {
        self.folded.as_deref().unwrap_or(&self.original)
    }

    /// Whether the key is empty after trimming.
    pub fn is_empty(&self) -> bool {
        self.original.is_empty()
    }
}

impl From<String> for UserKey {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&str> for UserKey {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<UserKey> for String {
    fn from(k: UserKey) -> Self {
        k.original.to_string()
    }
}

impl PartialEq for UserKey {
    fn eq(&self, other: &Self) -> bool {
        self.folded() == other.folded()
    }
}

impl Eq for UserKey {}

impl Hash for UserKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.folded().hash(state);
    }
}

impl PartialOrd for UserKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UserKey {
    fn cmp(&self, other: &Self) -> Ordering {
        // Consistent with `Eq`: keys that differ only in case are equal, also in maps.
        self.folded().cmp(other.folded())
    }
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserKey({:?})", self.original)
    }
}

/// The directory attribute that source keys are matched against. Parse it from a name
/// (`"mail".parse()`, `"extensionAttribute7".parse()`): a known attribute always becomes its
/// own variant, so equal names give equal values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
#[non_exhaustive]
pub enum MatchAttribute {
    /// `sAMAccountName`, the pre-Windows 2000 logon name (the default).
    #[default]
    SamAccountName,
    /// `userPrincipalName` (`user@contoso.com`).
    UserPrincipalName,
    /// `mail`.
    Mail,
    /// `employeeID`.
    EmployeeId,
    /// `employeeNumber`.
    EmployeeNumber,
    /// `objectGUID`, written as a GUID string.
    ObjectGuid,
    /// Any other attribute, by its LDAP name (made by parsing the name).
    Other(OtherAttribute),
}

/// The name of an attribute [`MatchAttribute`] has no variant for: checked (a letter, then
/// letters, digits and hyphens; RFC 4512), and compared without regard to case, as LDAP
/// compares attribute names.
#[derive(Debug, Clone)]
pub struct OtherAttribute(String);

impl OtherAttribute {
    /// The name as it was given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for OtherAttribute {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for OtherAttribute {}

impl Hash for OtherAttribute {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_ascii_lowercase().hash(state);
    }
}

impl MatchAttribute {
    /// The LDAP attribute name.
    pub fn ldap_name(&self) -> &str {
        match self {
            Self::SamAccountName => "sAMAccountName",
            Self::UserPrincipalName => "userPrincipalName",
            Self::Mail => "mail",
            Self::EmployeeId => "employeeID",
            Self::EmployeeNumber => "employeeNumber",
            Self::ObjectGuid => "objectGUID",
            Self::Other(n) => n.as_str(),
        }
    }

    /// The comparable form of a value of this attribute: case-folded, and for `objectGUID`
    /// the lower-case hyphenated GUID without braces. `None` when the value cannot be a
    /// value of this attribute (an empty string, a malformed GUID).
    ///
    /// ```
    /// use userphoto::MatchAttribute;
    /// let g = MatchAttribute::ObjectGuid;
    /// assert_eq!(g.canonical("{0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0}").as_deref(), Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
    /// assert_eq!(g.canonical("not-a-guid"), None);
    /// assert_eq!(MatchAttribute::Mail.canonical(" Ann@Contoso.COM ").as_deref(), Some("ann@contoso.com"));
    /// ```
    pub fn canonical(&self, value: &str) -> Option<String> {
        let v = value.trim();
        if v.is_empty() {
            return None;
        }
        match self {
            Self::ObjectGuid => {
                // Braces and hyphens as people write them (`{...}`, PowerShell's form, or
                // none): the 32 hex digits are the GUID.
                let hex: String = v
                    .trim_start_matches('{')
                    .trim_end_matches('}')
                    .chars()
                    .filter(|c| *c != '-')
                    .collect();
                let g = uuid::Uuid::try_parse(&hex)
                    .ok()
                    .filter(|_| hex.len() == 32)?;
                Some(g.hyphenated().to_string())
            }
            _ => Some(v.to_lowercase()),
        }
    }
}

impl fmt::Display for MatchAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ldap_name())
    }
}

impl From<MatchAttribute> for String {
    fn from(m: MatchAttribute) -> Self {
        m.ldap_name().to_owned()
    }
}

impl TryFrom<String> for MatchAttribute {
    type Error = crate::Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for MatchAttribute {
    type Err = crate::Error;

    /// Accepts the LDAP names in any case, plus the short forms `sam`, `upn`, `guid` and `id`
    /// (Graph's object id is the Entra `objectGUID`). Any other valid attribute name (a
    /// letter, then letters, digits and hyphens) becomes [`MatchAttribute::Other`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Ok(match t.to_ascii_lowercase().as_str() {
            "samaccountname" | "sam" => Self::SamAccountName,
            "userprincipalname" | "upn" => Self::UserPrincipalName,
            "mail" | "email" => Self::Mail,
            "employeeid" => Self::EmployeeId,
            "employeenumber" => Self::EmployeeNumber,
            "objectguid" | "guid" | "id" => Self::ObjectGuid,
            _ => {
                let valid = t.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                if !valid {
                    return Err(crate::Error::new(
                        crate::ErrorKind::Config,
                        format!("{t:?} is not an LDAP attribute name"),
                    ));
                }
                Self::Other(OtherAttribute(t.to_owned()))
            }
        })
    }
}

/// The 16 bytes AD stores for a canonical GUID string (Windows layout: the first three
/// fields little-endian). Only the AD sink writes GUIDs into searches.
#[cfg(any(feature = "ad", test))]
pub(crate) fn guid_to_bytes(canonical: &str) -> Option<[u8; 16]> {
    uuid::Uuid::try_parse(canonical)
        .ok()
        .map(|g| g.to_bytes_le())
}

/// The canonical GUID string (lower case, hyphenated: [`MatchAttribute::canonical`]'s form)
/// of the 16 `objectGUID` bytes as AD stores them (LDAP reads, LDIF exports).
pub(crate) fn guid_from_bytes(b: &[u8]) -> Option<String> {
    let b: [u8; 16] = b.try_into().ok()?;
    Some(uuid::Uuid::from_bytes_le(b).hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_round_trip_in_windows_layout() {
        let g = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        let b = guid_to_bytes(g).unwrap();
        assert_eq!(&b[..4], &[0x3c, 0x2d, 0x1e, 0x0f]);
        assert_eq!(&b[4..8], &[0x5a, 0x4b, 0x78, 0x69]);
        assert_eq!(&b[8..], &[0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0]);
        assert_eq!(guid_from_bytes(&b).unwrap(), g);
        assert!(guid_to_bytes("xyz").is_none());
        assert!(guid_from_bytes(&[0u8; 15]).is_none());
        assert!(guid_to_bytes("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f").is_none());
        assert!(guid_to_bytes("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fü").is_none());
        // The text form is the one a GUID key is compared in.
        assert_eq!(MatchAttribute::ObjectGuid.canonical(g).as_deref(), Some(g));
    }

    #[test]
    fn keys_compare_case_insensitively_and_keep_their_spelling() {
        let a = UserKey::new(" JDoe ");
        let b = UserKey::new("jdoe");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "JDoe");
        let mut set = std::collections::HashSet::new();
        set.insert(a);
        assert!(set.contains(&b));
        assert_eq!(UserKey::new("MÜLLER"), UserKey::new("müller"));
        let mut v = [UserKey::new("b"), UserKey::new("C"), UserKey::new("a")];
        v.sort();
        assert_eq!(
            v.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["a", "b", "C"]
        );
        let map: std::collections::BTreeMap<UserKey, u8> =
            [(UserKey::new("Dave"), 1), (UserKey::new("dave"), 2)].into();
        assert_eq!(
            map.len(),
            1,
            "case variants are one key in ordered maps too"
        );
        let json = serde_json::to_string(&UserKey::new("Ann")).unwrap();
        assert_eq!(json, "\"Ann\"");
    }

    #[test]
    fn attributes_parse_by_name_and_alias() {
        assert_eq!(
            "UPN".parse::<MatchAttribute>().unwrap(),
            MatchAttribute::UserPrincipalName
        );
        assert_eq!(
            "employeeID".parse::<MatchAttribute>().unwrap(),
            MatchAttribute::EmployeeId
        );
        let ext: MatchAttribute = "extensionAttribute7".parse().unwrap();
        assert_eq!(ext.ldap_name(), "extensionAttribute7");
        assert!(matches!(ext, MatchAttribute::Other(_)));
        assert_eq!(
            ext,
            "EXTENSIONATTRIBUTE7".parse().unwrap(),
            "names compare without case"
        );
        assert_eq!(
            " MAIL ".parse::<MatchAttribute>().unwrap(),
            MatchAttribute::Mail
        );
        assert!("bad name)(".parse::<MatchAttribute>().is_err());
        assert!("".parse::<MatchAttribute>().is_err());
        assert_eq!(MatchAttribute::default().ldap_name(), "sAMAccountName");
    }
}
