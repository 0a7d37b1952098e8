//! `GET /v1.0/users` (with `$filter` and `$select`) and `GET /v1.0/users/{id | upn}`.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

use super::config::codes;
use super::odata::{parse_filter, parse_select, FilterError, DEFAULT_SELECT};
use super::reply::{graph_error, Corr, Op, Reply};
use super::state::{ServerState, UserEntry};

fn user_value(u: &UserEntry, prop: &str) -> Value {
    match prop {
        "id" => json!(u.id),
        "userPrincipalName" => json!(u.upn),
        "displayName" => json!(u.display_name),
        "mail" => json!(u.mail),
        "employeeId" => json!(u.employee_id),
        "onPremisesSyncEnabled" => json!(u.on_premises_sync_enabled),
        _ => Value::Null,
    }
}

/// `$select` of the request: `None` when absent, 400 for an unknown property.
fn select_of(op: &Op, corr: &Corr) -> Result<Option<Vec<&'static str>>, Reply> {
    let Some(sel) = op.param("$select") else {
        return Ok(None);
    };
    // Graph always returns `id`, selected or not.
    parse_select(sel)
        .map(|mut s| {
            if !s.contains(&"id") {
                s.insert(0, "id");
            }
            Some(s)
        })
        .map_err(|name| {
        graph_error(
            400,
            codes::BAD_REQUEST,
            &format!("Parsing OData Select and Expand failed: Could not find a property named '{name}' on type 'microsoft.graph.user'."),
            corr,
        )
    })
}

fn user_object(u: &UserEntry, select: &Option<Vec<&'static str>>) -> Value {
    let props: Vec<&str> = match select {
        Some(s) => s.clone(),
        None => DEFAULT_SELECT.to_vec(),
    };
    let mut m = Map::new();
    for p in props {
        m.insert(p.to_string(), user_value(u, p));
    }
    Value::Object(m)
}

fn context_suffix(select: &Option<Vec<&'static str>>) -> String {
    match select {
        Some(s) => format!("users({})", s.join(",")),
        None => "users".to_string(),
    }
}

pub(super) fn get_user(st: &ServerState, idx: usize, base: &str, op: &Op, corr: &Corr) -> Reply {
    let select = match select_of(op, corr) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut v = user_object(&st.users[idx], &select);
    if let Value::Object(m) = &mut v {
        m.insert(
            "@odata.context".to_string(),
            json!(format!(
                "{base}/v1.0/$metadata#{}/$entity",
                context_suffix(&select)
            )),
        );
    }
    Reply::odata(200, v)
}

/// Characters percent-encoded in a query value of a next link: all but unreserved.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The opaque `$skiptoken` of the page that starts at `offset`.
fn skip_token(offset: usize) -> String {
    format!("RFNwdAIA{:x}AAAA", offset ^ 0x5a5a)
}

/// The offset a `$skiptoken` stands for; `None` when it is not one of ours.
fn skip_offset(token: &str) -> Option<usize> {
    let hex = token.strip_prefix("RFNwdAIA")?.strip_suffix("AAAA")?;
    usize::from_str_radix(hex, 16).ok().map(|n| n ^ 0x5a5a)
}

/// `GET /v1.0/users[?$filter=…][&$select=…][&$top=…]`: `eq` and `in (…)` on `id`,
/// `userPrincipalName`, `mail`, `employeeId`, `displayName`, joined with `or`; string
/// comparison is case-insensitive, as in the directory. In pages of `$top` (1 to 999) or
/// the configured page size, each but the last with an absolute `@odata.nextLink` that
/// repeats the query with an opaque `$skiptoken`.
pub(super) fn list_users(st: &ServerState, base: &str, op: &Op, corr: &Corr) -> Reply {
    let select = match select_of(op, corr) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let page = match op.param("$top") {
        None => st.cfg.page_size.max(1),
        Some(t) => match t.trim().parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => n,
            _ => {
                return graph_error(
                    400,
                    codes::BAD_REQUEST,
                    &format!(
                        "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
                    ),
                    corr,
                )
            }
        },
    };
    let offset = match op.param("$skiptoken") {
        None => 0,
        Some(t) => match skip_offset(t) {
            Some(n) => n,
            None => {
                return graph_error(
                    400,
                    codes::BAD_REQUEST,
                    "Invalid or expired skip token.",
                    corr,
                )
            }
        },
    };
    let filter = match op.param("$filter") {
        None => None,
        Some(f) => match parse_filter(f) {
            Ok(clauses) => Some(clauses),
            Err(FilterError::Syntax(m)) => {
                return graph_error(400, codes::BAD_REQUEST, &format!("Invalid filter clause: {m}"), corr)
            }
            Err(FilterError::Property(p)) => {
                return graph_error(
                    400,
                    codes::UNSUPPORTED_QUERY,
                    &format!("Unsupported or invalid query filter clause specified for property '{p}' of resource 'User'."),
                    corr,
                )
            }
        },
    };
    let value: Vec<Value> = st
        .users
        .iter()
        .filter(|u| match &filter {
            None => true,
            Some(clauses) => clauses.iter().any(|(prop, values)| {
                let have = user_value(u, prop);
                have.as_str()
                    .is_some_and(|h| values.iter().any(|v| v.to_lowercase() == h.to_lowercase()))
            }),
        })
        .skip(offset)
        .take(page + 1)
        .map(|u| user_object(u, &select))
        .collect();
    let mut value = value;
    let more = value.len() > page;
    value.truncate(page);
    let mut body = json!({
        "@odata.context": format!("{base}/v1.0/$metadata#{}", context_suffix(&select)),
        "value": value,
    });
    if more {
        let mut query: Vec<String> = op
            .params
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
            .collect();
        query.push(format!("$skiptoken={}", skip_token(offset + page)));
        body["@odata.nextLink"] = json!(format!("{base}/v1.0/users?{}", query.join("&")));
    }
    Reply::odata(200, body)
}
