//! User lookup: keys to `/users/{…}` paths, the `$filter` lookups and their cache, and
//! telling "no photo" from "no such user".

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::http::{Answer, Call, Limits};
use super::{lock, Addressing, GraphSink, PATH};
use crate::{Error, ErrorKind, Result, UserKey};
use std::collections::HashMap;

/// Keys per `$filter=… in (…)` lookup (Graph allows 15 values in an `in`).
const LOOKUP_CHUNK: usize = 15;

/// Characters percent-encoded in a query value: all but unreserved.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone)]
pub(super) enum Resolved {
    Id(String),
    Absent,
    Ambiguous(Vec<String>),
}

impl GraphSink {
    /// The URL of `/users/{key}` (with `suffix`) for `key`, resolving it first when keys are
    /// found with `$filter`.
    pub(super) async fn user_url(
        &self,
        key: &UserKey,
        op: &'static str,
        suffix: &str,
    ) -> Result<String> {
        let seg = match &self.inner.addressing {
            Addressing::Path => path_segment(key.as_str()),
            Addressing::Filter(prop) => {
                let cached = self.cached(key);
                let r = match cached {
                    Some(r) => r,
                    None => {
                        self.lookup(prop, std::slice::from_ref(key))
                            .await
                            .map_err(|e| self.ctx(e, op, key))?;
                        self.cached(key).unwrap_or(Resolved::Absent)
                    }
                };
                match r {
                    Resolved::Id(id) => path_segment(&id),
                    Resolved::Absent => {
                        return Err(self.err(
                            ErrorKind::UserNotFound,
                            op,
                            key,
                            format!("no Graph user has {prop} {:?}", key.as_str()),
                        ))
                    }
                    Resolved::Ambiguous(ids) => {
                        return Err(self.err(
                            ErrorKind::AmbiguousMatch,
                            op,
                            key,
                            format!(
                                "{} Graph users have {prop} {:?}: {}",
                                ids.len(),
                                key.as_str(),
                                ids.join(", ")
                            ),
                        ))
                    }
                }
            }
        };
        Ok(format!("{}/{seg}{suffix}", self.inner.api))
    }

    pub(super) fn cached(&self, key: &UserKey) -> Option<Resolved> {
        lock(&self.inner.resolved).get(key.folded()).cloned()
    }

    /// Finds `keys` by `prop` in one `$filter` request (at most [`LOOKUP_CHUNK`] keys) and
    /// caches what it finds, absent and ambiguous keys included.
    pub(super) async fn lookup(&self, prop: &str, keys: &[UserKey]) -> Result<()> {
        let values: Vec<String> = keys
            .iter()
            .map(|k| format!("'{}'", k.as_str().replace('\'', "''")))
            .collect();
        let filter = if values.len() == 1 {
            format!("{prop} eq {}", values[0])
        } else {
            format!("{prop} in ({})", values.join(","))
        };
        let url = format!(
            "{}/users?$filter={}&$select=id,{prop}",
            self.inner.api,
            utf8_percent_encode(&filter, QUERY)
        );
        let a = self
            .send(hyper::Method::GET, &url, None, Limits::JSON)
            .await?;
        if !a.is_success() {
            return Err(a.to_error(Call::Lookup));
        }
        let v: serde_json::Value = serde_json::from_slice(&a.body).map_err(|e| {
            Error::new(
                ErrorKind::InvalidData,
                format!("Graph's user list is not JSON: {e}"),
            )
        })?;
        let mut found: HashMap<String, Vec<String>> = HashMap::new();
        for u in v
            .get("value")
            .and_then(|x| x.as_array())
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(val)) = (
                u.get("id").and_then(|x| x.as_str()),
                u.get(prop).and_then(|x| x.as_str()),
            ) else {
                continue;
            };
            found
                .entry(UserKey::new(val).folded().to_owned())
                .or_default()
                .push(id.to_owned());
        }
        // A next page would only happen with more than 100 matches for 15 keys: ambiguous
        // anyway; the keys already seen are ambiguous or found, the rest absent.
        let mut cache = lock(&self.inner.resolved);
        for k in keys {
            let r = match found.remove(k.folded()) {
                None => Resolved::Absent,
                Some(mut ids) if ids.len() == 1 => Resolved::Id(ids.remove(0)),
                Some(ids) => Resolved::Ambiguous(ids),
            };
            cache.insert(k.folded().to_owned(), r);
        }
        Ok(())
    }

    /// A 404 from a photo endpoint: "no photo" (`Ok(())`) or "no such user".
    /// `ImageNotFound` means no photo; any other code (Graph has been seen to answer
    /// `ErrorEntityNotFound` for both, contract 1.3) is settled by looking the user up.
    pub(super) async fn not_found(
        &self,
        a: &Answer,
        key: &UserKey,
        op: &'static str,
    ) -> Result<()> {
        let code = a.error_body().code.unwrap_or_default();
        if code.eq_ignore_ascii_case("ImageNotFound") {
            return Ok(());
        }
        self.confirm_user(key, op, a).await
    }

    /// `GET /users/{key}?$select=id`: `Ok` when the user exists, else `UserNotFound`.
    pub(super) async fn confirm_user(
        &self,
        key: &UserKey,
        op: &'static str,
        first: &Answer,
    ) -> Result<()> {
        let url = self.user_url(key, op, "?$select=id").await?;
        let a = self
            .send(hyper::Method::GET, &url, None, Limits::JSON)
            .await
            .map_err(|e| self.ctx(e, op, key))?;
        match a.status {
            200..=299 => Ok(()),
            404 => {
                if let Addressing::Filter(_) = self.inner.addressing {
                    lock(&self.inner.resolved).insert(key.folded().to_owned(), Resolved::Absent);
                }
                Err(self.err(
                    ErrorKind::UserNotFound,
                    op,
                    key,
                    format!("no such Graph user: {}", first.describe()),
                ))
            }
            // Without the right to read users the code must do: only `ImageNotFound` is
            // known to mean "no photo".
            403 => Err(self.err(
                ErrorKind::UserNotFound,
                op,
                key,
                format!("Graph answered {}", first.describe()),
            )),
            _ => Err(self.ctx(a.to_error(Call::Lookup), op, key)),
        }
    }

    /// `prefetch`: the `$filter` lookups for the keys not yet known.
    pub(super) async fn resolve_all(&self, keys: &[UserKey]) -> Result<()> {
        let Addressing::Filter(prop) = &self.inner.addressing else {
            return Ok(());
        };
        let todo: Vec<UserKey> = {
            let cache = lock(&self.inner.resolved);
            let mut seen = std::collections::HashSet::new();
            keys.iter()
                .filter(|k| !k.is_empty() && !cache.contains_key(k.folded()))
                .filter(|k| seen.insert(k.folded().to_owned()))
                .cloned()
                .collect()
        };
        let results = futures::future::join_all(
            todo.chunks(LOOKUP_CHUNK)
                .map(|chunk| self.lookup(prop, chunk)),
        )
        .await;
        for r in results {
            if let Err(e) = r {
                if e.is_run_level() {
                    return Err(e
                        .with_backend(self.inner.name.clone())
                        .with_operation("prefetch"));
                }
            }
        }
        Ok(())
    }
}

/// `/users/{key}` for an id or UPN: percent-encoded; a key starting with `$` in the
/// `users('…')` form (contract 1.1), which the caller's `/users/` prefix is dropped for.
fn path_segment(key: &str) -> String {
    if key.starts_with('$') {
        format!(
            "users('{}')",
            utf8_percent_encode(&key.replace('\'', "''"), PATH)
        )
    } else {
        format!("users/{}", utf8_percent_encode(key, PATH))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments() {
        assert_eq!(path_segment("alice@contoso.com"), "users/alice@contoso.com");
        assert_eq!(
            path_segment("bob_fabrikam.com#EXT#@contoso.onmicrosoft.com"),
            "users/bob_fabrikam.com%23EXT%23@contoso.onmicrosoft.com"
        );
        assert_eq!(
            path_segment("$admin@contoso.com"),
            "users('$admin@contoso.com')"
        );
        assert_eq!(
            path_segment("$o'brien@contoso.com"),
            "users('$o''brien@contoso.com')"
        );
        assert_eq!(path_segment("a/b?c d%"), "users/a%2Fb%3Fc%20d%25");
    }
}
