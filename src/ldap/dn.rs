//! Distinguished names (RFC 4514) as servers write them.

/// Whether `dn` is `base` or below it, both as the server writes them: compared without
/// regard to case, at an RDN boundary (a `,` not escaped by a backslash).
pub(crate) fn dn_within(dn: &str, base: &str) -> bool {
    let (dn, base) = (dn.trim().to_lowercase(), base.trim().to_lowercase());
    if base.is_empty() {
        return false;
    }
    if dn == base {
        return true;
    }
    let Some(head) = dn.strip_suffix(&base) else {
        return false;
    };
    let Some(before) = head.strip_suffix(',') else {
        return false;
    };
    // The comma separates RDNs unless an odd number of backslashes escapes it.
    before.chars().rev().take_while(|c| *c == '\\').count() % 2 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_within_a_base() {
        let base = "OU=People,DC=example,DC=test";
        assert!(dn_within("CN=Ann,OU=People,DC=example,DC=test", base));
        assert!(dn_within("cn=ann,ou=people,dc=EXAMPLE,dc=test", base));
        assert!(dn_within(base, base));
        assert!(!dn_within("CN=Ann,OU=Staff,DC=example,DC=test", base));
        assert!(!dn_within("CN=Ann,OU=xPeople,DC=example,DC=test", base));
        assert!(!dn_within(
            "CN=Ann\\,OU=People,DC=example,DC=test",
            "DC=example,DC=test,x"
        ));
        // An escaped comma is part of a value, not an RDN boundary.
        assert!(!dn_within(
            "OU=a\\,OU=People,DC=example,DC=test",
            "OU=People,DC=example,DC=test"
        ));
        assert!(dn_within(
            "OU=a\\\\,OU=People,DC=example,DC=test",
            "OU=People,DC=example,DC=test"
        ));
        assert!(!dn_within("DC=example,DC=test", base));
        assert!(!dn_within("CN=x", ""));
    }
}
