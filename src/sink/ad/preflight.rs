//! The read-only preflight of the AD sink: [`AdSink::preflight`].

use ldap3::{LdapError, Scope, SearchOptions};

use super::AdSink;
use crate::ldap::{entry_of_result, values, OpClass};
use crate::{Error, ErrorKind, Result};

/// The operational attribute in which AD (and Samba) lists the attributes the bound account
/// may write on an entry (MS-ADTS 3.1.1.4.5.18). It is only returned when asked for by name.
const ALLOWED_EFFECTIVE: &str = "allowedAttributesEffective";

/// What [`AdSink::preflight`] found: the base DN, and for a sample of the users below it
/// whether the account may write the photo attribute, as the directory itself answers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct AdPreflight {
    /// The base DN, as the directory spells it.
    pub base_dn: String,
    /// The photo attribute asked about.
    pub attribute: String,
    /// How many users were sampled (at most the sample size asked for).
    pub sampled: usize,
    /// Whether the sample is every user below the base DN (the directory had no more).
    pub complete: bool,
    /// Of the sampled users, how many the account may write the photo attribute on.
    pub writable: usize,
    /// The DNs of the sampled users whose photo attribute the account may not write (a deny
    /// on the user, no delegation there, or a protected admin account).
    pub not_writable: Vec<String>,
    /// The DNs of the sampled users with `adminCount=1`: accounts that AdminSDHolder
    /// protects, whose delegated rights it removes (they are in `not_writable` when the
    /// account may not write them).
    pub protected: Vec<String>,
}

impl AdPreflight {
    /// Whether a sync could run: at least one sampled user is writable. Users in
    /// [`not_writable`](Self::not_writable) would fail one by one (the run goes on).
    pub fn can_sync(&self) -> bool {
        self.writable > 0
    }

    /// Why a sync could not run, in words (`None` when [`can_sync`](Self::can_sync)).
    pub fn reason(&self) -> Option<String> {
        if self.can_sync() {
            None
        } else if self.sampled == 0 {
            Some(format!(
                "no users below {} match the user filter",
                self.base_dn
            ))
        } else {
            Some(format!(
                "the account may not write {} on any of the {} sampled users",
                self.attribute, self.sampled
            ))
        }
    }
}

impl AdSink {
    /// Checks, without writing anything, that a sync could run: binds, reads the base DN,
    /// searches up to `sample` users below it (the sink's user filter) and reads for each
    /// the operational attribute `allowedAttributesEffective`, in which the directory says
    /// which attributes the bound account may write there; a user whose list lacks the
    /// photo attribute is not writable. Also lists the sampled users with `adminCount=1`
    /// (protected admin accounts).
    ///
    /// Errors: a refused bind ([`Unauthenticated`](ErrorKind::Unauthenticated)), a base DN
    /// that does not exist or may not be read ([`Config`](ErrorKind::Config) or
    /// [`PermissionDenied`](ErrorKind::PermissionDenied)), TLS and connection failures, as
    /// for a sync.
    ///
    /// ```no_run
    /// # use userphoto::sink::{AdSink, LdapConfig, Secret};
    /// # async fn f() -> userphoto::Result<()> {
    /// let conn = LdapConfig::new("ldaps://dc1.example.com", "OU=Staff,DC=example,DC=com")
    ///     .simple_bind("svc-photos@example.com", Secret::from_env("AD_PASSWORD")?);
    /// let sink = AdSink::builder(conn).build()?;
    /// let p = sink.preflight(50).await?;
    /// println!("{} of {} users writable", p.writable, p.sampled);
    /// for dn in &p.not_writable {
    ///     println!("may not write {dn}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn preflight(&self, sample: usize) -> Result<AdPreflight> {
        let base = self.pool.config().base_dn().to_owned();
        let entry = self
            .pool
            .read_entry("preflight", None, &base, &["distinguishedName"])
            .await
            .map_err(|e| self.named(e))?;
        let Some(entry) = entry else {
            return Err(Error::new(
                ErrorKind::Config,
                format!("the base DN {base} does not exist (or this account cannot see it)"),
            )
            .with_backend(self.name.clone())
            .with_operation("preflight")
            .run_level());
        };
        let base_dn = if entry.dn.is_empty() {
            base.clone()
        } else {
            entry.dn
        };
        let limit = i32::try_from(sample.max(1)).unwrap_or(i32::MAX);
        let t = self.pool.timeout();
        let filter = self.user_filter.clone();
        let attrs = vec![
            "adminCount".to_owned(),
            ALLOWED_EFFECTIVE.to_owned(),
            self.matcher.ldap_name().to_owned(),
        ];
        let (entries, complete) = self
            .pool
            .run(OpClass::Search, "preflight", None, |mut ldap| {
                let (base, filter, attrs) = (base.clone(), filter.clone(), attrs.clone());
                async move {
                    let res = ldap
                        .with_search_options(SearchOptions::new().sizelimit(limit))
                        .with_timeout(t)
                        .search(&base, Scope::Subtree, &filter, attrs)
                        .await?;
                    // 4 (sizeLimitExceeded): the sample is full; 10 (referral): some users
                    // live elsewhere, ignored as a sync ignores them.
                    let complete = res.1.rc != 4;
                    let entries = if matches!(res.1.rc, 4 | 10) {
                        res.0
                    } else {
                        res.success()?.0
                    };
                    let entries = entries
                        .into_iter()
                        .filter(|e| !e.is_ref() && !e.is_intermediate())
                        .map(entry_of_result)
                        .collect::<std::result::Result<Vec<_>, LdapError>>()?;
                    Ok((entries, complete))
                }
            })
            .await
            .map_err(|e| self.named(e))?;
        // A directory that ignores the size limit sends everyone: the sample is cut here.
        let complete = complete && entries.len() <= sample.max(1);
        let mut p = AdPreflight {
            base_dn,
            attribute: self.attribute.clone(),
            sampled: 0,
            complete,
            writable: 0,
            not_writable: Vec::new(),
            protected: Vec::new(),
        };
        for e in entries.iter().take(sample.max(1)) {
            p.sampled += 1;
            let may_write = values(e, ALLOWED_EFFECTIVE)
                .iter()
                .any(|v| v.eq_ignore_ascii_case(self.attribute.as_bytes()));
            if may_write {
                p.writable += 1;
            } else {
                p.not_writable.push(e.dn.clone());
            }
            if values(e, "adminCount").first().is_some_and(|v| *v == b"1") {
                p.protected.push(e.dn.clone());
            }
        }
        Ok(p)
    }
}
