//! The AD sink's settings: [`AdSinkBuilder`].

use super::{AdSink, State, AD_MAX_BYTES, GSSAPI_PLAIN_MAX_BYTES};
use crate::ldap::{EntrySelector, LdapConfig, Pool};
use crate::normalize::BuiltinProfile;
use crate::{Error, ErrorKind, MatchAttribute, Result};
use std::sync::Mutex;

/// Settings of an [`AdSink`]; made by [`AdSink::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct AdSinkBuilder {
    conn: LdapConfig,
    name: String,
    selector: EntrySelector,
    max_bytes: usize,
    profile: BuiltinProfile,
}

impl AdSinkBuilder {
    /// The sink's name in reports, the state store and backups (default `ad`; give each of
    /// two AD sinks its own).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Which entries are people, their match attribute and their photo attribute, all at
    /// once (the same [`EntrySelector`] an [`LdapSource`](crate::source::LdapSource) takes).
    pub fn selector(mut self, selector: EntrySelector) -> Self {
        self.selector = selector;
        self
    }

    /// The attribute that keys are matched against (default `sAMAccountName`).
    pub fn match_attribute(mut self, m: MatchAttribute) -> Self {
        self.selector = self.selector.match_attribute(m);
        self
    }

    /// The photo attribute (default `thumbnailPhoto`; `jpegPhoto`, `thumbnailLogo`...).
    pub fn attribute(mut self, name: impl Into<String>) -> Self {
        self.selector = self.selector.photo_attribute(name);
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
        self.selector = self.selector.user_filter(filter);
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
        self.selector
            .validate()
            .map_err(|e| e.with_backend(self.name.clone()))?;
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
            matcher: self.selector.matcher().clone(),
            attribute: self.selector.attribute().to_owned(),
            max_bytes,
            user_filter: self.selector.filter().to_owned(),
            profile: self.profile,
            state: Mutex::new(State::default()),
        })
    }
}

impl AdSink {
    /// Settings for a sink writing through `conn`: matching on `sAMAccountName`, writing
    /// `thumbnailPhoto`, at most 102,400 bytes.
    pub fn builder(conn: LdapConfig) -> AdSinkBuilder {
        AdSinkBuilder {
            conn,
            name: "ad".into(),
            selector: EntrySelector::new(),
            max_bytes: AD_MAX_BYTES,
            profile: BuiltinProfile::AdThumbnail,
        }
    }
}
