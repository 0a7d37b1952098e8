//! Values in LDAP search filters (RFC 4515).

/// Escapes a value for an LDAP filter (RFC 4515): `*`, `(`, `)`, `\` and NUL become `\2a`,
/// `\28`, `\29`, `\5c` and `\00`; everything else (UTF-8 included) is kept.
pub(crate) fn escape_filter_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Every byte escaped (`\xx`), for binary values such as `objectGUID`.
pub(crate) fn escape_filter_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("\\{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_escaped() {
        assert_eq!(escape_filter_value("o'brien"), "o'brien");
        assert_eq!(escape_filter_value("ann*"), "ann\\2a");
        assert_eq!(escape_filter_value("j(doe)"), "j\\28doe\\29");
        assert_eq!(escape_filter_value("a\\b"), "a\\5cb");
        assert_eq!(escape_filter_value("Müller"), "Müller");
        assert_eq!(escape_filter_value("Doe, John"), "Doe, John");
        assert_eq!(
            escape_filter_value("x)(sAMAccountName=*"),
            "x\\29\\28sAMAccountName=\\2a"
        );
        assert_eq!(escape_filter_value("nul\0"), "nul\\00");
        assert_eq!(escape_filter_bytes(&[0x00, 0xab, 0x2a]), "\\00\\ab\\2a");
    }
}
