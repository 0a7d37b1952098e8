//! LDAP result codes to error kinds: the one table (RFC 4511 appendix A, as Active Directory
//! and Samba use them; facts in `shared/reference/samba-ad.md`).

use crate::ErrorKind;

/// What kind of operation answered, because a code means different things to each: 32
/// `noSuchObject` on a write is a user who is gone, on a search a base DN that is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpClass {
    /// A bind (simple or SASL) or StartTLS.
    Bind,
    /// A search below the base DN (or of the rootDSE): what every user's lookup needs.
    Search,
    /// A base-scope read of one user's entry (a photo for a backup or a load).
    Read,
    /// A modify of the photo attribute of one user.
    Write,
}

/// Whether a failure stops the run or is one user's (see [`crate::Error::is_run_level`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every further call is pointless: a refused bind, a base DN that is missing, a search
    /// of the base refused.
    Run,
    /// This user's failure: the run goes on with the others.
    User,
    /// As the kind says ([`ErrorKind::is_run_level`]); temporary failures are retried.
    Kind,
}

/// How one result code of one operation class is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Class {
    /// The error kind.
    pub(crate) kind: ErrorKind,
    /// A short reason to put before the server's own text.
    pub(crate) what: &'static str,
    /// Run-level or the user's.
    pub(crate) scope: Scope,
}

/// The class of result code `rc` of an operation of `class`; `None` for success (0).
///
/// Retryability follows the kind ([`ErrorKind::is_temporary`]): busy, unavailable and time
/// limits are retried by the engine; a photo the directory rejects (19, 20, 21) is not. On
/// a write, a refusal (50 `insufficientAccessRights`, 53 `unwillingToPerform`, 19
/// `constraintViolation`) is that user's failure: AD refuses delegated rights on protected
/// admin accounts (AdminSDHolder), and the run goes on with everyone else. Run-level are a
/// refused bind, a missing base DN and a refused search.
pub(crate) fn classify(rc: u32, class: OpClass) -> Option<Class> {
    use ErrorKind as K;
    use OpClass::{Bind, Read, Search, Write};
    use Scope::{Kind, Run, User};
    let (kind, what, scope) = match (rc, class) {
        (0, _) => return None,
        (1, _) => (K::Other, "operationsError (1)", Kind),
        (3, _) => (K::Timeout, "timeLimitExceeded (3)", Kind),
        (4, _) => (K::Other, "sizeLimitExceeded (4)", Kind),
        (7, _) => (K::Config, "authMethodNotSupported (7)", Run),
        (8, _) => (
            K::Config,
            "strongerAuthRequired (8): AD refuses a simple bind over plain LDAP; use ldaps:// or StartTLS",
            Run,
        ),
        (10, _) => (
            K::Other,
            "referral (10): the entry is held by another server",
            Kind,
        ),
        (12, _) => (K::Unsupported, "unavailableCriticalExtension (12)", Kind),
        (13, _) => (
            K::Config,
            "confidentialityRequired (13): use ldaps:// or StartTLS",
            Run,
        ),
        (17, _) => (
            K::Config,
            "undefinedAttributeType (17): the directory has no such attribute",
            Run,
        ),
        (19, Write) => (
            K::InvalidPhoto,
            "photo rejected: constraintViolation (19)",
            User,
        ),
        (20, Write) => (
            K::InvalidPhoto,
            "photo rejected: attributeOrValueExists (20)",
            User,
        ),
        (21, Write) => (
            K::InvalidPhoto,
            "photo rejected: invalidAttributeSyntax (21)",
            User,
        ),
        (19..=21, _) => (
            K::Config,
            "the directory refused a value in the request",
            Kind,
        ),
        (32, Write | Read) => (K::UserNotFound, "noSuchObject (32): the entry is gone", User),
        (32, Search) => (
            K::Config,
            "noSuchObject (32): the base DN does not exist",
            Run,
        ),
        (32, Bind) => (K::Unauthenticated, "noSuchObject (32)", Run),
        (34, _) => (K::Config, "invalidDNSyntax (34)", Kind),
        (48, _) => (K::Unauthenticated, "inappropriateAuthentication (48)", Run),
        (49, _) => (K::Unauthenticated, "invalidCredentials (49)", Run),
        (50, Write | Read) => (K::PermissionDenied, "insufficientAccessRights (50)", User),
        (50, Search | Bind) => (K::PermissionDenied, "insufficientAccessRights (50)", Run),
        (51, _) => (K::Unavailable, "busy (51)", Kind),
        (52, _) => (K::Unavailable, "unavailable (52)", Kind),
        (53, Bind) => (K::Config, "unwillingToPerform (53)", Run),
        (53, Write) => (K::PermissionDenied, "unwillingToPerform (53)", User),
        (53, _) => (K::Other, "unwillingToPerform (53)", Kind),
        (81, _) => (K::Unavailable, "serverDown (81)", Kind),
        (85, _) => (K::Timeout, "timeout (85)", Kind),
        (_, _) => (K::Other, "unexpected result", Kind),
    };
    Some(Class { kind, what, scope })
}

impl Class {
    /// Whether an error of this class stops the run (what [`scoped`](Self::scoped) marks).
    #[cfg(test)]
    pub(crate) fn is_run_level(&self) -> bool {
        match self.scope {
            Scope::Run => true,
            Scope::User => false,
            Scope::Kind => self.kind.is_run_level(),
        }
    }

    /// Marks `e` with this class's scope.
    pub(crate) fn scoped(&self, e: crate::Error) -> crate::Error {
        match self.scope {
            Scope::Run => e.run_level(),
            Scope::User => e.user_level(),
            Scope::Kind => e,
        }
    }
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
        use OpClass::{Bind, Read, Search, Write};
        let cases: &[(u32, OpClass, Option<K>, bool, bool)] = &[
            // rc, class, kind, retryable, run-level
            (0, Write, None, false, false),
            (3, Search, Some(K::Timeout), true, false),
            (8, Bind, Some(K::Config), false, true),
            (13, Bind, Some(K::Config), false, true),
            (19, Write, Some(K::InvalidPhoto), false, false),
            (20, Write, Some(K::InvalidPhoto), false, false),
            (21, Write, Some(K::InvalidPhoto), false, false),
            (21, Search, Some(K::Config), false, true),
            (32, Write, Some(K::UserNotFound), false, false),
            (32, Read, Some(K::UserNotFound), false, false),
            (32, Search, Some(K::Config), false, true),
            (49, Bind, Some(K::Unauthenticated), false, true),
            // A write refused for one user (AdminSDHolder): that user's failure.
            (50, Write, Some(K::PermissionDenied), false, false),
            (50, Read, Some(K::PermissionDenied), false, false),
            // A search of the base refused: nobody can be found.
            (50, Search, Some(K::PermissionDenied), false, true),
            (51, Write, Some(K::Unavailable), true, false),
            (52, Search, Some(K::Unavailable), true, false),
            (53, Write, Some(K::PermissionDenied), false, false),
            (53, Bind, Some(K::Config), false, true),
            (80, Write, Some(K::Other), false, false),
        ];
        for &(rc, class, kind, retry, run) in cases {
            let got = classify(rc, class);
            assert_eq!(got.map(|g| g.kind), kind, "rc {rc} on {class:?}");
            if let Some(c) = got {
                assert_eq!(
                    c.kind.is_temporary(),
                    retry,
                    "rc {rc} on {class:?} retryable"
                );
                assert_eq!(c.is_run_level(), run, "rc {rc} on {class:?} run-level");
                let e = c.scoped(crate::Error::new(c.kind, c.what));
                assert_eq!(e.is_run_level(), run, "rc {rc} on {class:?} as an Error");
            }
        }
        for rc in [19, 20, 21] {
            assert!(classify(rc, Write)
                .unwrap()
                .what
                .starts_with("photo rejected"));
        }
        assert!(classify(8, Bind)
            .unwrap()
            .what
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
