//! The AD sink's settings: [`AdSinkBuilder`].

use super::{AdSink, State, AD_MAX_BYTES, GSSAPI_PLAIN_MAX_BYTES};
use crate::ldap::{LdapConfig, Pool};
use crate::normalize::BuiltinProfile;
use crate::{Error, ErrorKind, MatchAttribute, Result};
use std::sync::Mutex;

/// Settings of an [`AdSink`]; made by [`AdSink::builder`].
#[derive(Debug, Clone)]
pub struct AdSinkBuilder {
    conn: LdapConfig,
    name: String,
    matcher: MatchAttribute,
    attribute: String,
    max_bytes: usize,
    user_filter: String,
    profile: BuiltinProfile,
}

impl AdSinkBuilder {
    /// The sink's name in reports, the state store and backups (default `ad`; give each of
    /// two AD sinks its own).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The attribute that keys are matched against (default `sAMAccountName`).
    pub fn match_attribute(mut self, m: MatchAttribute) -> Self {
        self.matcher = m;
        self
    }

    /// The photo attribute (default `thumbnailPhoto`; `jpegPhoto`, `thumbnailLogo`...).
    pub fn attribute(mut self, name: impl Into<String>) -> Self {
        self.attribute = name.into();
        self
    }

    /// The largest photo sent (default 102,400 bytes, AD's limit for `thumbnailPhoto`).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// The filter that selects user entries, combined with the match attribute's. The
    /// default, `(&(objectCategory=person)(objectClass=user))`, is AD's idiom for people: user accounts, not
    /// computers (whose `objectClass` is `user` too) nor contacts; indexed, it is also
    /// cheaper for the DC to evaluate than `(objectClass=user)`.
    pub fn user_filter(mut self, filter: impl Into<String>) -> Self {
        self.user_filter = filter.into();
        self
    }

    /// The profile the engine uses by default ([`BuiltinProfile::AdThumbnail`];
    /// [`BuiltinProfile::AdLarge`] for 648 px in 102,400 bytes).
    pub fn default_profile(mut self, profile: BuiltinProfile) -> Self {
        self.profile = profile;
        self
    }

    /// Checks the settings and makes the sink. Nothing is sent until the first call; a bad
    /// password shows at the first call (a run-level error from `prefetch`).
    pub fn build(self) -> Result<AdSink> {
        let cfg_err = |m: String| {
            Error::new(ErrorKind::Config, m)
                .with_backend(self.name.clone())
                .with_operation("build")
        };
        if !valid_attribute(&self.attribute) {
            return Err(cfg_err(format!(
                "{:?} is not an LDAP attribute name",
                self.attribute
            )));
        }
        if !valid_attribute(self.matcher.ldap_name()) {
            return Err(cfg_err(format!(
                "{:?} is not an LDAP attribute name",
                self.matcher.ldap_name()
            )));
        }
        let f = self.user_filter.trim();
        if !(f.starts_with('(') && f.ends_with(')')) {
            return Err(cfg_err(format!("user filter {f:?} must be in parentheses")));
        }
        if self.max_bytes == 0 {
            return Err(cfg_err("max_bytes must be above 0".into()));
        }
        let pool = Pool::new(self.conn, "ad")?;
        let mut max_bytes = self.max_bytes;
        if pool.config().gssapi_without_tls() {
            max_bytes = max_bytes.min(GSSAPI_PLAIN_MAX_BYTES);
        }
        Ok(AdSink {
            name: self.name,
            pool,
            matcher: self.matcher,
            attribute: self.attribute,
            max_bytes,
            user_filter: f.to_owned(),
            profile: self.profile,
            state: Mutex::new(State::default()),
        })
    }
}

fn valid_attribute(a: &str) -> bool {
    a.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl AdSink {
    /// Settings for a sink writing through `conn`: matching on `sAMAccountName`, writing
    /// `thumbnailPhoto`, at most 102,400 bytes.
    pub fn builder(conn: LdapConfig) -> AdSinkBuilder {
        AdSinkBuilder {
            conn,
            name: "ad".into(),
            matcher: MatchAttribute::default(),
            attribute: "thumbnailPhoto".into(),
            max_bytes: AD_MAX_BYTES,
            user_filter: "(&(objectCategory=person)(objectClass=user))".into(),
            profile: BuiltinProfile::AdThumbnail,
        }
    }
}
