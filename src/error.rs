//! The crate's public error: one type for sources, sinks and the sync engine.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::key::UserKey;
use crate::normalize::{NormalizeError, NormalizeErrorKind};

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is. New kinds may be added in minor releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The user does not exist in the directory (distinct from "exists, has no photo").
    UserNotFound,
    /// The key matched more than one directory entry; nothing is written.
    AmbiguousMatch,
    /// The credentials were refused (run-level).
    Unauthenticated,
    /// The account may not do this. For one user (AD's protected admin accounts, a per-user
    /// 403) that user's failure; a backend marks an account-wide refusal (the base DN may not
    /// be read, the app has no photo permission at all) with [`Error::run_level`].
    PermissionDenied,
    /// The service asked us to slow down; [`Error::retry_after`] says how long, if it did.
    RateLimited,
    /// The service is busy or down for now.
    Unavailable,
    /// The operation did not finish in time.
    Timeout,
    /// The directory or the normalizer refused the photo's content.
    InvalidPhoto,
    /// The photo is larger than the sink accepts.
    PhotoTooLarge,
    /// An input is over a configured limit.
    LimitExceeded,
    /// Two inputs claim the same user, or state changed underneath us.
    Conflict,
    /// Bad configuration or usage (run-level).
    Config,
    /// The backend or input format does not support this.
    Unsupported,
    /// Malformed input data (a broken CSV row, LDIF record, ...).
    InvalidData,
    /// Local I/O failed.
    Io,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserNotFound => "user_not_found",
            Self::AmbiguousMatch => "ambiguous_match",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::InvalidPhoto => "invalid_photo",
            Self::PhotoTooLarge => "photo_too_large",
            Self::LimitExceeded => "limit_exceeded",
            Self::Conflict => "conflict",
            Self::Config => "config",
            Self::Unsupported => "unsupported",
            Self::InvalidData => "invalid_data",
            Self::Io => "io",
            Self::Other => "other",
        }
    }

    /// Whether an error of this kind may succeed if tried again later (before any backend
    /// says otherwise with [`Error::permanent`] or [`Error::temporary`]).
    pub fn is_temporary(self) -> bool {
        matches!(self, Self::RateLimited | Self::Unavailable | Self::Timeout)
    }

    /// Whether an error of this kind stops a whole run rather than one user, unless the
    /// backend says otherwise ([`Error::run_level`], [`Error::user_level`]): refused
    /// credentials and bad configuration do; everything else, a refused write included, is
    /// one user's failure.
    pub fn is_run_level(self) -> bool {
        matches!(self, Self::Unauthenticated | Self::Config)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// As [`ErrorKind::is_run_level`] says.
    Default,
    /// Every further call is pointless: stop the run.
    Run,
    /// This user only: the run goes on.
    User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Default,
    Permanent,
    Temporary { after: Option<Duration> },
}

/// An error from a source, a sink or the engine: a [`kind`](Error::kind), the operation and
/// backend it happened in, the user concerned, a message and an optional source error.
///
/// Displayed on one line: `kind in backend.op for user: message`. Backend error types (LDAP,
/// HTTP) are never part of the public API; they are reachable through
/// [`std::error::Error::source`] for logging.
pub struct Error {
    inner: Box<Inner>,
}

/// Boxed so that `Result<T, Error>` stays one pointer wide on the error side.
struct Inner {
    kind: ErrorKind,
    retry: Retry,
    scope: Scope,
    op: &'static str,
    backend: Cow<'static, str>,
    user: Option<UserKey>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a message.
    ///
    /// ```
    /// use userphoto::{Error, ErrorKind, UserKey};
    /// let e = Error::new(ErrorKind::UserNotFound, "no entry")
    ///     .with_operation("current")
    ///     .with_backend("memory")
    ///     .with_user(UserKey::new("alice"));
    /// assert_eq!(e.to_string(), "user_not_found in memory.current for alice: no entry");
    /// assert!(!e.is_retryable());
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                retry: Retry::Default,
                scope: Scope::Default,
                op: "",
                backend: Cow::Borrowed(""),
                user: None,
                message: message.into(),
                source: None,
            }),
        }
    }

    /// Sets the operation (`list`, `load`, `current`, `put`, `delete`, ...).
    pub fn with_operation(mut self, op: &'static str) -> Self {
        self.inner.op = op;
        self
    }

    /// Sets the backend's name (`ldif`, `ad`, `graph`, `folder`, ...).
    pub fn with_backend(mut self, backend: impl Into<Cow<'static, str>>) -> Self {
        self.inner.backend = backend.into();
        self
    }

    /// Sets the user concerned.
    pub fn with_user(mut self, user: UserKey) -> Self {
        self.inner.user = Some(user);
        self
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Box::new(source));
        self
    }

    /// Marks the error as worth retrying, optionally not before `after`.
    pub fn temporary(mut self, after: Option<Duration>) -> Self {
        self.inner.retry = Retry::Temporary { after };
        self
    }

    /// Marks the error as not worth retrying (for example after retries were exhausted).
    pub fn permanent(mut self) -> Self {
        self.inner.retry = Retry::Permanent;
        self
    }

    /// Marks the failure as one that makes every further call pointless (a refused bind or
    /// token, a missing base DN or tenant, a connection lost for good): the engine stops the
    /// run at it.
    ///
    /// ```
    /// use userphoto::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::PermissionDenied, "the base DN may not be read");
    /// assert!(!e.is_run_level());
    /// assert!(e.run_level().is_run_level());
    /// ```
    pub fn run_level(mut self) -> Self {
        self.inner.scope = Scope::Run;
        self
    }

    /// Marks the failure as this user's alone (a write refused for one user), whatever its
    /// kind: the run goes on with the others.
    pub fn user_level(mut self) -> Self {
        self.inner.scope = Scope::User;
        self
    }

    /// Whether this failure stops a whole run, not just one user: as marked by
    /// [`run_level`](Self::run_level) or [`user_level`](Self::user_level), else
    /// [`ErrorKind::is_run_level`].
    pub fn is_run_level(&self) -> bool {
        match self.inner.scope {
            Scope::Default => self.kind().is_run_level(),
            Scope::Run => true,
            Scope::User => false,
        }
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The operation, or `""`.
    pub fn operation(&self) -> &'static str {
        self.inner.op
    }

    /// The backend's name, or `""`.
    pub fn backend(&self) -> &str {
        &self.inner.backend
    }

    /// The user concerned, if any.
    pub fn user(&self) -> Option<&UserKey> {
        self.inner.user.as_ref()
    }

    /// The message, without the context that `Display` adds.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The error as people read it: the user concerned (if any) and the message, without
    /// the kind, operation and backend that `Display` puts first (they are for reports and
    /// logs: [`kind`](Self::kind), [`operation`](Self::operation), [`backend`](Self::backend)).
    ///
    /// ```
    /// use userphoto::{Error, ErrorKind, UserKey};
    /// let e = Error::new(ErrorKind::Io, "cannot read /photos/alice.jpg")
    ///     .with_backend("folder")
    ///     .with_operation("load")
    ///     .with_user(UserKey::new("alice"));
    /// assert_eq!(e.to_string(), "io in folder.load for alice: cannot read /photos/alice.jpg");
    /// assert_eq!(e.human(), "alice: cannot read /photos/alice.jpg");
    /// ```
    pub fn human(&self) -> String {
        match &self.inner.user {
            Some(u) => format!("{u}: {}", self.inner.message),
            None => self.inner.message.clone(),
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self.inner.retry {
            Retry::Default => self.inner.kind.is_temporary(),
            Retry::Permanent => false,
            Retry::Temporary { .. } => true,
        }
    }

    /// How long the backend asked us to wait before trying again (a `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self.inner.retry {
            Retry::Temporary { after } => after,
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner.kind)?;
        match (self.inner.backend.is_empty(), self.inner.op.is_empty()) {
            (false, false) => write!(f, " in {}.{}", self.inner.backend, self.inner.op)?,
            (false, true) => write!(f, " in {}", self.inner.backend)?,
            (true, false) => write!(f, " in {}", self.inner.op)?,
            (true, true) => {}
        }
        if let Some(u) = &self.inner.user {
            write!(f, " for {u}")?;
        }
        if !self.inner.message.is_empty() {
            write!(f, ": {}", self.inner.message)?;
        }
        Ok(())
    }
}

/// The message of an error's `Display` text (`kind in backend.op for user: message`) without
/// its kind, operation, backend and user, for people; any other text is returned as it is.
/// Reports keep an error's whole text (with its kind in a field of its own); summaries and
/// the command line show this part of it.
///
/// ```
/// use userphoto::{human_message, Error, ErrorKind, UserKey};
/// let e = Error::new(ErrorKind::InvalidPhoto, "empty.jpg is empty (0 bytes)")
///     .with_backend("folder")
///     .with_operation("list")
///     .with_user(UserKey::new("empty"));
/// assert_eq!(human_message(&e.to_string()), "empty.jpg is empty (0 bytes)");
/// assert_eq!(human_message("no such user"), "no such user");
/// ```
pub fn human_message(text: &str) -> &str {
    const KINDS: [ErrorKind; 16] = [
        ErrorKind::UserNotFound,
        ErrorKind::AmbiguousMatch,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::RateLimited,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::InvalidPhoto,
        ErrorKind::PhotoTooLarge,
        ErrorKind::LimitExceeded,
        ErrorKind::Conflict,
        ErrorKind::Config,
        ErrorKind::Unsupported,
        ErrorKind::InvalidData,
        ErrorKind::Io,
        ErrorKind::Other,
    ];
    let Some(rest) = KINDS.iter().find_map(|k| text.strip_prefix(k.as_str())) else {
        return text;
    };
    // ` in backend.op` (no spaces in either), then ` for user` (up to the first `: `).
    let rest = match rest.strip_prefix(" in ") {
        Some(r) => match r.find([' ', ':']) {
            Some(end) => &r[end..],
            None => return text,
        },
        None => rest,
    };
    let rest = match rest.strip_prefix(" for ") {
        Some(r) => match r.find(": ") {
            Some(end) => &r[end..],
            None => return text,
        },
        None => rest,
    };
    rest.strip_prefix(": ").unwrap_or(text)
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("operation", &self.inner.op)
            .field("backend", &self.inner.backend)
            .field("user", &self.inner.user)
            .field("message", &self.inner.message)
            .field("retryable", &self.is_retryable())
            .field("run_level", &self.is_run_level());
        if let Some(a) = self.retry_after() {
            d.field("retry_after", &a);
        }
        if let Some(s) = &self.inner.source {
            d.field("source", &s.to_string());
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<NormalizeError> for Error {
    fn from(e: NormalizeError) -> Self {
        let kind = match e.kind() {
            NormalizeErrorKind::Unsupported | NormalizeErrorKind::Corrupt => {
                ErrorKind::InvalidPhoto
            }
            NormalizeErrorKind::LimitExceeded => ErrorKind::LimitExceeded,
            NormalizeErrorKind::CannotFit => ErrorKind::PhotoTooLarge,
            NormalizeErrorKind::Config => ErrorKind::Config,
            NormalizeErrorKind::Io => ErrorKind::Io,
        };
        Error::new(kind, e.to_string())
            .with_operation("normalize")
            .with_source(e)
            .permanent()
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Io,
        };
        Error::new(kind, e.to_string()).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classification() {
        assert!(Error::new(ErrorKind::Unavailable, "busy").is_retryable());
        assert!(Error::new(ErrorKind::RateLimited, "slow down").is_retryable());
        assert!(!Error::new(ErrorKind::UserNotFound, "x").is_retryable());
        assert!(!Error::new(ErrorKind::Unavailable, "gave up")
            .permanent()
            .is_retryable());
        let e = Error::new(ErrorKind::RateLimited, "429").temporary(Some(Duration::from_secs(3)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(
            ErrorKind::Unauthenticated.is_run_level() && !ErrorKind::UserNotFound.is_run_level()
        );
    }

    #[test]
    fn scope_overrides_the_kind() {
        // A refused write is one user's failure unless the backend says it is account-wide.
        let refused = Error::new(ErrorKind::PermissionDenied, "insufficientAccessRights");
        assert!(!refused.is_run_level());
        assert!(refused.run_level().is_run_level());
        let bind = Error::new(ErrorKind::Unauthenticated, "invalidCredentials");
        assert!(bind.is_run_level());
        assert!(!bind.user_level().is_run_level());
        assert!(Error::new(ErrorKind::Unavailable, "lost")
            .run_level()
            .is_run_level());
    }

    #[test]
    fn normalize_errors_map_to_permanent_photo_kinds() {
        let e: Error = NormalizeError::Unsupported {
            format: "HEIC".into(),
        }
        .into();
        assert_eq!(e.kind(), ErrorKind::InvalidPhoto);
        assert!(!e.is_retryable());
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(
            e.to_string(),
            "invalid_photo in normalize: unsupported image format: HEIC"
        );
    }
}
