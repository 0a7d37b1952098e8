//! The read-only preflight of the Graph sink: [`GraphSink::preflight`].

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;

use super::http::{Call, Limits};
use super::GraphSink;
use crate::Result;

/// The application permissions (app roles) either of which lets an app write users' photos.
pub const GRAPH_PHOTO_WRITE_ROLES: [&str; 2] = ["ProfilePhoto.ReadWrite.All", "User.ReadWrite.All"];

/// What [`GraphSink::preflight`] found: the token's app roles and one user read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct GraphPreflight {
    /// Whether the access token is a JWT whose payload could be read. When it is not (a
    /// token format this client does not know), [`roles`](Self::roles) is empty and unknown.
    pub token_decoded: bool,
    /// The `roles` claim of the access token: the application permissions granted to the app
    /// and consented in the tenant.
    pub roles: Vec<String>,
    /// The first of [`GRAPH_PHOTO_WRITE_ROLES`] the token holds, if any.
    pub photo_role: Option<String>,
    /// The user read (`GET /users?$top=1`): its `userPrincipalName` (or id); `None` when the
    /// read was refused or the tenant has no users.
    pub user: Option<String>,
    /// Why the user read was refused (Graph's status, code and message), if it was.
    pub user_error: Option<String>,
}

impl GraphPreflight {
    /// Whether a sync could run: the token holds a photo-writing role (or could not be
    /// decoded, so its roles are unknown) and a user could be read.
    pub fn can_sync(&self) -> bool {
        self.reason().is_none()
    }

    /// Why a sync could not run, in words (`None` when it could).
    pub fn reason(&self) -> Option<String> {
        if self.token_decoded && self.photo_role.is_none() {
            return Some(format!(
                "the access token holds neither {} (its roles: {})",
                GRAPH_PHOTO_WRITE_ROLES.join(" nor "),
                if self.roles.is_empty() {
                    "none".to_owned()
                } else {
                    self.roles.join(", ")
                }
            ));
        }
        self.user_error
            .as_ref()
            .map(|e| format!("reading a user was refused: {e}"))
    }
}

/// The `roles` claim of a JWT's payload, read without verifying the signature (the token is
/// the one the token endpoint just gave us over TLS; this only reports what it says).
/// `None` when `token` is not a JWT with a JSON payload.
///
/// Hand-written: a JWT crate would verify signatures, which needs the tenant's signing keys
/// and is not the point here; reading the payload is a base64url decode and a JSON parse.
pub(crate) fn jwt_roles(token: &str) -> Option<Vec<String>> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .or_else(|_| URL_SAFE.decode(payload))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    if !claims.is_object() {
        return None;
    }
    Some(
        claims
            .get("roles")
            .and_then(|r| r.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

impl GraphSink {
    /// Checks, without writing anything, that a sync could run: gets an access token (a
    /// refused credential is an [`Unauthenticated`](crate::ErrorKind::Unauthenticated)
    /// error, as for a sync), reads its `roles` claim (the JWT's payload, not verified) for
    /// `ProfilePhoto.ReadWrite.All` or `User.ReadWrite.All`, and reads one user
    /// (`GET /users?$top=1`). A refused user read is a finding
    /// ([`GraphPreflight::user_error`]), not an error.
    ///
    /// ```no_run
    /// # use userphoto::sink::{GraphSink, Secret};
    /// # async fn f() -> userphoto::Result<()> {
    /// let sink = GraphSink::builder("contoso.onmicrosoft.com", "app-id", Secret::from_env("S")?)
    ///     .build()?;
    /// let p = sink.preflight().await?;
    /// if let Some(why) = p.reason() {
    ///     eprintln!("a sync would fail: {why}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn preflight(&self) -> Result<GraphPreflight> {
        let token = self.inner.token.token().await.map_err(|e| {
            e.with_backend(self.inner.name.clone())
                .with_operation("preflight")
        })?;
        let roles = jwt_roles(&token);
        drop(token);
        let token_decoded = roles.is_some();
        let roles = roles.unwrap_or_default();
        let photo_role = GRAPH_PHOTO_WRITE_ROLES
            .iter()
            .find(|r| roles.iter().any(|x| x.eq_ignore_ascii_case(r)))
            .map(|r| (*r).to_owned());
        let url = format!(
            "{}/users?$top=1&$select=id,userPrincipalName",
            self.inner.api
        );
        let a = self
            .send(hyper::Method::GET, &url, None, Limits::JSON)
            .await
            .map_err(|e| {
                e.with_backend(self.inner.name.clone())
                    .with_operation("preflight")
            })?;
        let (user, user_error) = if a.is_success() {
            let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
            let first = v.get("value").and_then(|x| x.get(0));
            let name = first.and_then(|u| {
                u.get("userPrincipalName")
                    .or_else(|| u.get("id"))
                    .and_then(|x| x.as_str())
                    .map(str::to_owned)
            });
            (name, None)
        } else {
            (None, Some(a.to_error(Call::Lookup).message().to_owned()))
        };
        Ok(GraphPreflight {
            token_decoded,
            roles,
            photo_role,
            user,
            user_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn roles_are_read_from_the_payload() {
        let t = jwt(
            r#"{"aud":"https://graph.microsoft.com","roles":["User.Read.All","ProfilePhoto.ReadWrite.All"]}"#,
        );
        assert_eq!(
            jwt_roles(&t).unwrap(),
            vec!["User.Read.All", "ProfilePhoto.ReadWrite.All"]
        );
        assert_eq!(
            jwt_roles(&jwt(r#"{"aud":"x"}"#)).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_token_that_is_not_a_jwt_has_no_roles() {
        assert_eq!(jwt_roles("fakegraph.0123abcd"), None);
        assert_eq!(jwt_roles("a.b.c.d"), None);
        assert_eq!(jwt_roles(&jwt("[1,2]")), None);
        assert_eq!(jwt_roles("x.!!!.y"), None);
    }

    #[test]
    fn the_reason_names_the_missing_role_or_the_refused_read() {
        let mut p = GraphPreflight {
            token_decoded: true,
            roles: vec!["User.Read.All".into()],
            photo_role: None,
            user: Some("ann@contoso.com".into()),
            user_error: None,
        };
        assert!(p.reason().unwrap().contains("ProfilePhoto.ReadWrite.All"));
        assert!(!p.can_sync());
        p.photo_role = Some("User.ReadWrite.All".into());
        assert!(p.can_sync());
        p.user_error = Some("HTTP 403".into());
        assert!(p.reason().unwrap().contains("HTTP 403"));
        p.user_error = None;
        p.token_decoded = false;
        p.photo_role = None;
        assert!(p.can_sync(), "unknown roles do not stop a sync");
    }
}
