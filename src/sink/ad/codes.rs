//! LDAP result codes to error kinds: the one table (RFC 4511 appendix A, as Active Directory
//! and Samba use them; facts in `shared/reference/samba-ad.md`).

use crate::ErrorKind;

/// What kind of operation answered, because a code means different things to each: 32
/// `noSuchObject` on a write is a user who is gone, on a search a base DN that is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpClass {
    /// A bind (simple or SASL) or StartTLS.
    Bind,
    /// A search.
    Search,
    /// A modify of the photo attribute.
    Write,
}

/// The error kind for result code `rc` of an operation of `class`, and a short reason to
/// put before the server's own text. `None` for success (0).
///
/// Retryability follows the kind ([`ErrorKind::is_temporary`]): busy, unavailable and time
/// limits are retried by the engine; a photo the directory rejects (19, 20, 21) is not.
pub(crate) fn classify(rc: u32, class: OpClass) -> Option<(ErrorKind, &'static str)> {
    use ErrorKind as K;
    use OpClass::{Bind, Search, Write};
    Some(match (rc, class) {
        (0, _) => return None,
        (3, _) => (K::Timeout, "timeLimitExceeded (3)"),
        (4, _) => (K::Other, "sizeLimitExceeded (4)"),
        (7, _) => (K::Config, "authMethodNotSupported (7)"),
        (8, _) => (
            K::Config,
            "strongerAuthRequired (8): AD refuses a simple bind over plain LDAP; use ldaps:// or StartTLS",
        ),
        (10, _) => (K::Other, "referral (10): the entry is held by another server"),
        (12, _) => (K::Unsupported, "unavailableCriticalExtension (12)"),
        (13, _) => (
            K::Config,
            "confidentialityRequired (13): use ldaps:// or StartTLS",
        ),
        (17, _) => (
            K::Config,
            "undefinedAttributeType (17): the directory has no such attribute",
        ),
        (19, Write) => (K::InvalidPhoto, "photo rejected: constraintViolation (19)"),
        (20, Write) => (
            K::InvalidPhoto,
            "photo rejected: attributeOrValueExists (20)",
        ),
        (21, Write) => (
            K::InvalidPhoto,
            "photo rejected: invalidAttributeSyntax (21)",
        ),
        (19..=21, _) => (K::Config, "the directory refused a value in the request"),
        (32, Write) => (K::UserNotFound, "noSuchObject (32): the entry is gone"),
        (32, Search) => (K::Config, "noSuchObject (32): the base DN does not exist"),
        (32, Bind) => (K::Unauthenticated, "noSuchObject (32)"),
        (34, _) => (K::Config, "invalidDNSyntax (34)"),
        (48, _) => (K::Unauthenticated, "inappropriateAuthentication (48)"),
        (49, _) => (K::Unauthenticated, "invalidCredentials (49)"),
        (50, _) => (K::PermissionDenied, "insufficientAccessRights (50)"),
        (51, _) => (K::Unavailable, "busy (51)"),
        (52, _) => (K::Unavailable, "unavailable (52)"),
        (53, Bind) => (K::Config, "unwillingToPerform (53)"),
        (53, _) => (K::Other, "unwillingToPerform (53)"),
        (81, _) => (K::Unavailable, "serverDown (81)"),
        (85, _) => (K::Timeout, "timeout (85)"),
        (_, _) => (K::Other, "unexpected result"),
    })
}

/// What the `data NNN` part of an AD bind failure (`AcceptSecurityContext error, data 52e`)
/// means, when it is one of the well-known values.
pub(crate) fn bind_data_hint(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    let code = lower.split("data ").nth(1)?;
    let code: String = code.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    Some(match code.as_str() {
        "52e" => "wrong user name or password",
        "525" => "no such user",
        "530" => "logon not permitted at this time",
        "531" => "logon not permitted from this workstation",
        "532" => "password expired",
        "533" => "account disabled",
        "701" => "account expired",
        "773" => "the password must be changed",
        "775" => "account locked out",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        use ErrorKind as K;
        use OpClass::{Bind, Search, Write};
        let cases: &[(u32, OpClass, Option<K>, bool)] = &[
            // rc, class, kind, retryable
            (0, Write, None, false),
            (3, Search, Some(K::Timeout), true),
            (8, Bind, Some(K::Config), false),
            (13, Bind, Some(K::Config), false),
            (19, Write, Some(K::InvalidPhoto), false),
            (20, Write, Some(K::InvalidPhoto), false),
            (21, Write, Some(K::InvalidPhoto), false),
            (21, Search, Some(K::Config), false),
            (32, Write, Some(K::UserNotFound), false),
            (32, Search, Some(K::Config), false),
            (49, Bind, Some(K::Unauthenticated), false),
            (50, Write, Some(K::PermissionDenied), false),
            (50, Search, Some(K::PermissionDenied), false),
            (51, Write, Some(K::Unavailable), true),
            (52, Search, Some(K::Unavailable), true),
            (53, Write, Some(K::Other), false),
            (80, Write, Some(K::Other), false),
        ];
        for &(rc, class, kind, retry) in cases {
            let got = classify(rc, class);
            assert_eq!(got.map(|g| g.0), kind, "rc {rc} on {class:?}");
            if let Some((k, _)) = got {
                assert_eq!(k.is_temporary(), retry, "rc {rc} on {class:?} retryable");
            }
        }
        for rc in [19, 20, 21] {
            assert!(classify(rc, Write).unwrap().1.starts_with("photo rejected"));
        }
        assert!(classify(49, Bind).unwrap().0.is_run_level());
        assert!(classify(50, Write).unwrap().0.is_run_level());
        assert!(classify(8, Bind)
            .unwrap()
            .1
            .contains("ldaps:// or StartTLS"));
    }

    #[test]
    fn bind_data_hints() {
        let t = "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 52e, v4563";
        assert_eq!(bind_data_hint(t), Some("wrong user name or password"));
        assert_eq!(
            bind_data_hint("... data 775, v2580"),
            Some("account locked out")
        );
        assert_eq!(bind_data_hint("no data here"), None);
        assert_eq!(bind_data_hint(""), None);
    }
}
