//! Routing of `/v1.0/…` paths (the GUID, UPN and `users('…')` key forms, `$value` in any case
//! or percent-encoded) and the Graph operations behind each route, with the app-role checks of
//! contract 1.6.

use percent_encoding::percent_decode_str;

use super::config::{codes, DIRECTORY_READ_ROLES, PHOTO_READ_ROLES, PHOTO_WRITE_ROLES};
use super::photos::{
    delete_photo, image_not_found, photo_list, photo_metadata, photo_size, upload_photo,
};
use super::reply::{graph_error, Corr, Op, Payload, Reply};
use super::state::{Inner, ServerState, TokenInfo};
use super::users::{get_user, list_users};

#[derive(Debug, PartialEq, Eq)]
enum Target {
    User,
    Photo,
    PhotoValue,
    Photos,
    PhotoSize(String),
    PhotoSizeValue(String),
}

enum Route {
    ListUsers,
    OneUser(String, Target),
}

fn is_value_segment(s: &str) -> bool {
    s.eq_ignore_ascii_case("$value")
}

fn segment_not_found(seg: &str, corr: &Corr) -> Reply {
    graph_error(
        400,
        codes::BAD_REQUEST,
        &format!("Resource not found for the segment '{seg}'."),
        corr,
    )
}

/// Parses `/v1.0/users…` paths (segments already percent-decoded, so `%24value` is `$value`
/// and `%23EXT%23` is `#EXT#`).
fn route(path: &str, corr: &Corr) -> Result<Route, Reply> {
    let segs = decoded_segments(path);
    let version = segs.first().map(String::as_str).unwrap_or("");
    if version != "v1.0" {
        return Err(graph_error(
            400,
            codes::BAD_REQUEST,
            &format!("Invalid version: {version}"),
            corr,
        ));
    }
    let rest = &segs[1..];
    let Some(first) = rest.first() else {
        return Err(segment_not_found("", corr));
    };
    if first.eq_ignore_ascii_case("me") {
        return Err(graph_error(
            400,
            codes::BAD_REQUEST,
            "/me request is only valid with delegated authentication flow.",
            corr,
        ));
    }
    let (key, remainder) = if let Some(k) = key_form(first) {
        match k {
            Some(k) => (k, &rest[1..]),
            None => return Err(segment_not_found(first, corr)),
        }
    } else if first.eq_ignore_ascii_case("users") {
        match rest.get(1) {
            None => return Ok(Route::ListUsers),
            // Contract 1.1: OData reads a segment starting with `$` as a system segment, so a
            // UPN that starts with `$` only works in the `users('…')` key form.
            Some(k) if k.starts_with('$') || k.is_empty() => {
                return Err(segment_not_found(k, corr))
            }
            Some(k) => (k.clone(), &rest[2..]),
        }
    } else {
        return Err(segment_not_found(first, corr));
    };
    let lower: Vec<String> = remainder.iter().map(|s| s.to_ascii_lowercase()).collect();
    let target = match lower
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => Target::User,
        ["photo"] => Target::Photo,
        ["photo", v] if is_value_segment(v) => Target::PhotoValue,
        ["photos"] => Target::Photos,
        ["photos", s] => Target::PhotoSize(s.to_string()),
        ["photos", s, v] if is_value_segment(v) => Target::PhotoSizeValue(s.to_string()),
        _ => {
            let bad = remainder
                .iter()
                .find(|seg| {
                    !["photo", "photos", "$value"]
                        .iter()
                        .any(|k| seg.eq_ignore_ascii_case(k))
                })
                .or(remainder.last())
                .map(String::as_str)
                .unwrap_or("");
            return Err(segment_not_found(bad, corr));
        }
    };
    Ok(Route::OneUser(key, target))
}

/// `users('key')` → `Some(Some(key))`; `users(…)` malformed → `Some(None)`; other → `None`.
fn key_form(seg: &str) -> Option<Option<String>> {
    let lower = seg.to_ascii_lowercase();
    if !lower.starts_with("users(") {
        return None;
    }
    if !seg.ends_with(')') || seg.len() < 8 {
        return Some(None);
    }
    let inner = &seg[6..seg.len() - 1];
    if inner.len() >= 2 && inner.starts_with('\'') && inner.ends_with('\'') {
        Some(Some(inner[1..inner.len() - 1].replace("''", "'")))
    } else if !inner.is_empty() && !inner.contains('\'') {
        Some(Some(inner.to_string()))
    } else {
        Some(None)
    }
}

/// The object id of the user a path names, if any (for records, whatever the answer).
pub(super) fn path_user(st: &ServerState, path: &str) -> Option<String> {
    let corr = Corr {
        request_id: String::new(),
        client_request_id: String::new(),
        sent: None,
    };
    match route(path, &corr) {
        Ok(Route::OneUser(key, _)) => st.find_user(&key).map(|i| st.users[i].id.clone()),
        _ => None,
    }
}

fn has_role(token: &TokenInfo, allowed: &[&str]) -> bool {
    token
        .roles
        .iter()
        .any(|r| allowed.iter().any(|a| a.eq_ignore_ascii_case(r)))
}

pub(super) fn method_not_allowed(corr: &Corr) -> Reply {
    graph_error(
        405,
        codes::METHOD_NOT_ALLOWED,
        "Specified HTTP method is not allowed for the request target.",
        corr,
    )
}

/// Whether `path` is `/beta/admin/people/photoUpdateSettings` (case-insensitive).
fn is_photo_update_settings(path: &str) -> bool {
    let segs = decoded_segments(path);
    segs.len() == 4
        && ["beta", "admin", "people", "photoUpdateSettings"]
            .iter()
            .zip(&segs)
            .all(|(want, got)| want.eq_ignore_ascii_case(got))
}

/// `GET /beta/admin/people/photoUpdateSettings`: `{"source", "allowedRoles"}` from the
/// configuration, or 403 when [`photo_update_settings_denied`] is set.
///
/// [`photo_update_settings_denied`]: super::GraphServerConfig::photo_update_settings_denied
fn photo_update_settings(st: &ServerState, base: &str, op: &Op, corr: &Corr) -> Reply {
    if op.method != "GET" {
        return method_not_allowed(corr);
    }
    if st.cfg.photo_update_settings_denied {
        return directory_denied(corr);
    }
    let source = if st.cfg.cloud_updates_disabled {
        "onPremises"
    } else {
        "cloud"
    };
    Reply::odata(
        200,
        serde_json::json!({
            "@odata.context": format!("{base}/beta/$metadata#admin/people/photoUpdateSettings/$entity"),
            "source": source,
            "allowedRoles": st.cfg.photo_update_allowed_roles,
        }),
    )
}

pub(super) fn operation(inner: &Inner, op: &Op, token: &TokenInfo, corr: &Corr) -> Reply {
    if is_photo_update_settings(&op.path) {
        return photo_update_settings(&inner.lock(), &inner.base_url, op, corr);
    }
    let route = match route(&op.path, corr) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut st = inner.lock();
    let enforce = st.cfg.enforce_roles;
    let (key, target) = match route {
        Route::ListUsers => {
            if op.method != "GET" {
                return method_not_allowed(corr);
            }
            if enforce && !has_role(token, &DIRECTORY_READ_ROLES) {
                return directory_denied(corr);
            }
            return list_users(&st, &inner.base_url, op, corr);
        }
        Route::OneUser(key, target) => (key, target),
    };
    let method_ok = matches!(
        (&target, op.method.as_str()),
        (Target::User, "GET")
            | (Target::Photo, "GET" | "DELETE")
            | (Target::PhotoValue, "GET" | "PUT" | "PATCH" | "DELETE")
            | (
                Target::Photos | Target::PhotoSize(_) | Target::PhotoSizeValue(_),
                "GET"
            )
    );
    if !method_ok {
        return method_not_allowed(corr);
    }
    let writing = matches!(op.method.as_str(), "PUT" | "PATCH" | "DELETE");
    if enforce {
        let ok = match (&target, writing) {
            (Target::User, _) => has_role(token, &DIRECTORY_READ_ROLES),
            (_, true) => has_role(token, &PHOTO_WRITE_ROLES),
            (_, false) => has_role(token, &PHOTO_READ_ROLES),
        };
        if !ok {
            return if target == Target::User {
                directory_denied(corr)
            } else {
                graph_error(
                    403,
                    codes::ACCESS_DENIED,
                    "Access is denied. Check credentials and try again.",
                    corr,
                )
            };
        }
    }
    let Some(idx) = st.find_user(&key) else {
        return if target == Target::User {
            graph_error(
                404,
                codes::RESOURCE_NOT_FOUND,
                &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."),
                corr,
            )
        } else {
            graph_error(
                404,
                codes::ENTITY_NOT_FOUND,
                "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
                corr,
            )
        };
    };
    let mut reply = match (target, op.method.as_str()) {
        (Target::User, _) => get_user(&st, idx, &inner.base_url, op, corr),
        (Target::Photo | Target::PhotoValue, "DELETE") => delete_photo(&mut st, idx, corr),
        (Target::Photo, _) => photo_metadata(&mut st, idx, &inner.base_url, corr),
        (Target::PhotoValue, "GET") => match &st.users[idx].photo {
            Some(p) => Reply::new(200, Payload::Bytes(p.bytes.clone(), p.content_type)),
            None => image_not_found(corr),
        },
        (Target::PhotoValue, _) => upload_photo(&mut st, idx, op, corr),
        (Target::Photos, _) => photo_list(&st, idx, &inner.base_url),
        (Target::PhotoSize(s), _) => photo_size(&st, idx, &s, &inner.base_url, false, corr),
        (Target::PhotoSizeValue(s), _) => photo_size(&st, idx, &s, &inner.base_url, true, corr),
    };
    reply.user_id = Some(st.users[idx].id.clone());
    reply
}

fn directory_denied(corr: &Corr) -> Reply {
    graph_error(
        403,
        codes::AUTHORIZATION_REQUEST_DENIED,
        "Insufficient privileges to complete the operation.",
        corr,
    )
}

/// Path segments after the leading `/`, each percent-decoded on its own (invalid UTF-8 made
/// lossy).
pub(super) fn decoded_segments(path: &str) -> Vec<String> {
    path.strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}
