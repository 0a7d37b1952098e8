//! Hybrid tenants: which users the sink writes by their sync state (`onPremisesSyncEnabled`)
//! and the tenant's photo policy (`photoUpdateSettings`).
//!
//! Why route at all: in a tenant where Entra Connect syncs users from AD, it also copies
//! each synced user's `thumbnailPhoto` to the Microsoft 365 photo on every cycle (30 min by
//! default) and the last writer wins. An HD photo written through Graph to a synced user is
//! overwritten by the 96 px AD thumbnail when AD holds one (`reference/domain.md`). So a
//! hybrid run usually writes AD for synced users and Graph for cloud-only ones
//! ([`GraphUsers::CloudOnly`]); the user list with `onPremisesSyncEnabled` (`User.Read.All`)
//! tells them apart, read once per run.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::http::{Call, Limits, Mapped};
use super::GraphSink;
use crate::sink::Excluded;
use crate::{Error, ErrorKind, Result, UserKey};

/// Users per page of the listing (Graph's maximum `$top` for users).
const PAGE: usize = 999;

/// Throttled pages are retried this many times, after the server's `Retry-After`.
const PAGE_RETRIES: usize = 5;

/// Which users a [`GraphSink`] writes, by whether Entra Connect syncs them from AD.
///
/// The others are planned as skipped, with the reason
/// [`SyncedUser`](crate::sync::Reason::SyncedUser) or
/// [`CloudOnlyUser`](crate::sync::Reason::CloudOnlyUser).
///
/// ```
/// use userphoto::sink::GraphUsers;
/// assert_eq!("cloud-only".parse::<GraphUsers>().unwrap(), GraphUsers::CloudOnly);
/// assert_eq!(GraphUsers::default(), GraphUsers::All);
/// assert!("cloud".parse::<GraphUsers>().is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum GraphUsers {
    /// Every user (the default): no listing is read.
    #[default]
    All,
    /// Only users Entra Connect does not sync (`onPremisesSyncEnabled` null or false).
    CloudOnly,
    /// Only users synced from on-premises AD (`onPremisesSyncEnabled` true).
    Synced,
}

impl GraphUsers {
    /// The name as the command line and the configuration file write it.
    pub fn as_str(self) -> &'static str {
        match self {
            GraphUsers::All => "all",
            GraphUsers::CloudOnly => "cloud-only",
            GraphUsers::Synced => "synced",
        }
    }

    /// Whether a user in this sync state is written.
    pub fn writes(self, synced: bool) -> bool {
        match self {
            GraphUsers::All => true,
            GraphUsers::CloudOnly => !synced,
            GraphUsers::Synced => synced,
        }
    }
}

impl fmt::Display for GraphUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GraphUsers {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(GraphUsers::All),
            "cloud-only" | "cloud_only" | "cloudonly" => Ok(GraphUsers::CloudOnly),
            "synced" => Ok(GraphUsers::Synced),
            other => Err(Error::new(
                ErrorKind::Config,
                format!("{other:?} is not a Graph user set: use all, cloud-only or synced"),
            )),
        }
    }
}

/// How many of the tenant's users Entra Connect syncs: [`GraphSink::sync_split`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SyncSplit {
    /// Users with `onPremisesSyncEnabled` true.
    pub synced: usize,
    /// Users with `onPremisesSyncEnabled` null or false.
    pub cloud_only: usize,
}

/// The tenant's profile photo policy (`GET /beta/admin/people/photoUpdateSettings`):
/// [`GraphSink::photo_policy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PhotoPolicy {
    /// `cloud` or `onPremises` (as Graph writes it; another value is kept as it is).
    pub source: String,
    /// The admin role template ids that may update photos (empty: no restriction).
    pub allowed_roles: Vec<String>,
}

impl PhotoPolicy {
    /// Whether photos come from on-premises AD only: updates through cloud services
    /// (Graph included) are disabled for admins and users.
    pub fn is_on_premises(&self) -> bool {
        self.source.eq_ignore_ascii_case("onPremises")
    }
}

/// What the sink learnt of the tenant's sync states: folded key to "synced".
pub(super) type SyncStates = HashMap<String, bool>;

impl GraphSink {
    /// The users this sink writes ([`GraphSinkBuilder::users`](super::GraphSinkBuilder::users)).
    pub fn users(&self) -> GraphUsers {
        self.inner.users
    }

    /// Counts the tenant's synced and cloud-only users, listing every user with
    /// `onPremisesSyncEnabled` (`User.Read.All`; 999 users per request). Read-only.
    pub async fn sync_split(&self) -> Result<SyncSplit> {
        let mut split = SyncSplit::default();
        self.list_sync_states(|_, _, synced| {
            if synced {
                split.synced += 1;
            } else {
                split.cloud_only += 1;
            }
        })
        .await?;
        Ok(split)
    }

    /// Reads the tenant's photo policy (`PeopleSettings.Read.All`; a beta endpoint).
    /// A refusal is an error of kind [`PermissionDenied`](ErrorKind::PermissionDenied).
    pub async fn photo_policy(&self) -> Result<PhotoPolicy> {
        let url = format!("{}/admin/people/photoUpdateSettings", self.beta());
        let a = self
            .send(hyper::Method::GET, &url, None, Limits::JSON)
            .await
            .map_err(|e| self.policy_ctx(e))?;
        if !a.is_success() {
            let why = if a.status == 403 {
                format!(
                    "{}; reading the photo policy needs PeopleSettings.Read.All",
                    a.describe()
                )
            } else {
                a.describe()
            };
            let kind = match a.mapped(Call::Lookup) {
                Mapped::Error { kind, .. } => kind,
                Mapped::NotFound => ErrorKind::Unsupported,
            };
            return Err(self.policy_ctx(Error::new(kind, why)));
        }
        let v: serde_json::Value = serde_json::from_slice(&a.body).map_err(|e| {
            self.policy_ctx(Error::new(
                ErrorKind::InvalidData,
                format!("Graph's photo policy is not JSON: {e}"),
            ))
        })?;
        let source = v
            .get("source")
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .chars()
            .take(64)
            .collect::<String>();
        let allowed_roles = v
            .get("allowedRoles")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str())
            .take(1000)
            .map(|r| r.chars().take(128).collect())
            .collect();
        Ok(PhotoPolicy {
            source,
            allowed_roles,
        })
    }

    fn policy_ctx(&self, e: Error) -> Error {
        e.with_backend(self.inner.name.clone())
            .with_operation("photo-policy")
    }

    /// `{graph root}/beta`.
    fn beta(&self) -> String {
        let api = &self.inner.api;
        format!("{}/beta", api.strip_suffix("/v1.0").unwrap_or(api))
    }

    /// The policy, read once per sink (after a refused write); `None` when it cannot be read.
    pub(super) async fn cached_policy(&self) -> Option<PhotoPolicy> {
        self.inner
            .policy
            .get_or_init(|| async { self.photo_policy().await.ok() })
            .await
            .clone()
    }

    /// Reads the sync states once, when the sink writes only some users.
    pub(super) async fn load_sync_states(&self) -> Result<()> {
        if self.inner.users == GraphUsers::All {
            return Ok(());
        }
        self.inner
            .sync_states
            .get_or_try_init(|| async {
                let mut states = SyncStates::new();
                self.list_sync_states(|id, key, synced| {
                    states.insert(UserKey::new(id).folded().to_owned(), synced);
                    if let Some(k) = key {
                        states.insert(UserKey::new(k).folded().to_owned(), synced);
                    }
                })
                .await?;
                tracing::info!(
                    target: "userphoto::graph",
                    users = states.len(),
                    route = %self.inner.users,
                    "graph sink: sync states read"
                );
                Ok::<_, Error>(states)
            })
            .await
            .map(|_| ())
    }

    /// Why this sink leaves `key` out, by its sync state; `None` when it writes the user or
    /// the listing did not name it (the user is then looked up as usual).
    pub(super) fn excluded_by_route(&self, key: &UserKey) -> Option<Excluded> {
        let users = self.inner.users;
        let synced = *self.inner.sync_states.get()?.get(key.folded())?;
        if users.writes(synced) {
            None
        } else if synced {
            Some(Excluded::SyncedUser)
        } else {
            Some(Excluded::CloudOnlyUser)
        }
    }

    /// Pages through `/users` with `onPremisesSyncEnabled`, calling `each(id, key property's
    /// value, synced)` per user. The key property is the match property (`userPrincipalName`
    /// for ids and UPNs, which are both kept). A next link must stay below the Graph URL.
    async fn list_sync_states(&self, mut each: impl FnMut(&str, Option<&str>, bool)) -> Result<()> {
        let api = self.inner.api.clone();
        let prop = match &self.inner.addressing {
            super::Addressing::Path => "userPrincipalName".to_owned(),
            super::Addressing::Filter(p) => p.clone(),
        };
        let mut url = format!("{api}/users?$select=id,{prop},onPremisesSyncEnabled&$top={PAGE}");
        let mut pages = 0usize;
        loop {
            let a = self.page(&url).await.map_err(|e| {
                e.with_backend(self.inner.name.clone())
                    .with_operation("list-users")
            })?;
            pages += 1;
            let v: serde_json::Value = serde_json::from_slice(&a.body).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidData,
                    format!("Graph's user list is not JSON: {e}"),
                )
                .with_backend(self.inner.name.clone())
                .with_operation("list-users")
                .run_level()
            })?;
            for u in v
                .get("value")
                .and_then(|x| x.as_array())
                .into_iter()
                .flatten()
            {
                let Some(id) = u
                    .get("id")
                    .and_then(|x| x.as_str())
                    .filter(|s| !s.is_empty())
                else {
                    continue;
                };
                let key = u
                    .get(prop.as_str())
                    .and_then(|x| x.as_str())
                    .map(str::trim)
                    .filter(|s| !s.is_empty());
                let synced = u
                    .get("onPremisesSyncEnabled")
                    .and_then(|x| x.as_bool())
                    .unwrap_or(false);
                each(id, key, synced);
            }
            match v.get("@odata.nextLink") {
                None | Some(serde_json::Value::Null) => return Ok(()),
                Some(next) => match next.as_str().filter(|n| own_users_link(&api, n)) {
                    Some(n) => url = n.to_owned(),
                    None => {
                        return Err(Error::new(
                            ErrorKind::InvalidData,
                            format!(
                                "Graph's @odata.nextLink does not start with {api}/users; \
                                 refusing to send the token there (after {pages} pages)"
                            ),
                        )
                        .with_backend(self.inner.name.clone())
                        .with_operation("list-users")
                        .permanent()
                        .run_level())
                    }
                },
            }
        }
    }

    /// One page of the listing; throttled or busy answers are retried after the server's
    /// `Retry-After` (at most a minute each, [`PAGE_RETRIES`] times). Any failure of the
    /// listing stops the run: routing without it could write the wrong users.
    async fn page(&self, url: &str) -> Result<super::http::Answer> {
        let mut tries = 0;
        loop {
            let a = self
                .send(hyper::Method::GET, url, None, Limits::JSON)
                .await?;
            if a.is_success() {
                return Ok(a);
            }
            let retry = matches!(a.mapped(Call::Lookup), Mapped::Error { retry: true, .. });
            if retry && tries < PAGE_RETRIES {
                tries += 1;
                let wait = a
                    .retry_after
                    .unwrap_or(Duration::from_secs(1 << tries))
                    .min(Duration::from_secs(60));
                tokio::time::sleep(wait).await;
                continue;
            }
            let mut e = a.to_error(Call::Lookup);
            if a.status == 403 {
                e = super::http::rewrap(
                    &e,
                    ErrorKind::PermissionDenied,
                    format!(
                        "listing users with onPremisesSyncEnabled was refused ({}); routing \
                         by sync state needs User.Read.All",
                        a.describe()
                    ),
                );
            }
            return Err(e.run_level());
        }
    }
}

/// Whether `link` is `{api}/users` or `{api}/users?…` (a next link may not take the token
/// elsewhere). The Graph source's listing checks its links with it too.
pub(crate) fn own_users_link(api: &str, link: &str) -> bool {
    link.strip_prefix(api)
        .and_then(|rest| rest.strip_prefix("/users"))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('?'))
        && !link.contains(['#', '\\', ' '])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_sets_parse_and_route() {
        for (s, u) in [
            ("all", GraphUsers::All),
            ("Cloud-Only", GraphUsers::CloudOnly),
            ("synced", GraphUsers::Synced),
        ] {
            let parsed: GraphUsers = s.parse().unwrap();
            assert_eq!(parsed, u);
            assert_eq!(parsed.as_str().parse::<GraphUsers>().unwrap(), u);
        }
        assert_eq!(
            "hybrid".parse::<GraphUsers>().unwrap_err().kind(),
            ErrorKind::Config
        );
        assert!(GraphUsers::All.writes(true) && GraphUsers::All.writes(false));
        assert!(GraphUsers::CloudOnly.writes(false) && !GraphUsers::CloudOnly.writes(true));
        assert!(GraphUsers::Synced.writes(true) && !GraphUsers::Synced.writes(false));
        assert_eq!(
            serde_json::to_string(&GraphUsers::CloudOnly).unwrap(),
            "\"cloud-only\""
        );
    }

    #[test]
    fn next_links_stay_on_the_graph_url() {
        let api = "https://graph.microsoft.com/v1.0";
        assert!(own_users_link(api, &format!("{api}/users?$skiptoken=x")));
        assert!(!own_users_link(api, "https://evil.example/v1.0/users?x"));
        assert!(!own_users_link(api, &format!("{api}/usersx?a")));
        assert!(!own_users_link(api, &format!("{api}/users?a#b")));
    }

    #[test]
    fn the_policy_names_on_premises() {
        let p = PhotoPolicy {
            source: "onPremises".into(),
            allowed_roles: vec![],
        };
        assert!(p.is_on_premises());
        let c = PhotoPolicy {
            source: "cloud".into(),
            allowed_roles: vec![],
        };
        assert!(!c.is_on_premises());
    }
}
