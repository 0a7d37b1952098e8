//! The OData query options the fake understands on `/users`: `$select` (a list of the user
//! properties below) and `$filter` (`eq` and `in (…)` on them, joined with `or`). Pure parsers:
//! the users routes turn their errors into Graph error answers.

/// The user properties the fake knows (canonical spelling).
pub(super) const USER_PROPERTIES: [&str; 6] = [
    "id",
    "userPrincipalName",
    "displayName",
    "mail",
    "employeeId",
    "onPremisesSyncEnabled",
];
/// What a user object shows without `$select`.
pub(super) const DEFAULT_SELECT: [&str; 4] = ["id", "displayName", "mail", "userPrincipalName"];

/// The canonical spelling of a user property (matched case-insensitively, trimmed).
pub(super) fn canonical_property(name: &str) -> Option<&'static str> {
    USER_PROPERTIES
        .iter()
        .copied()
        .find(|p| p.eq_ignore_ascii_case(name.trim()))
}

/// The properties of a `$select` value, in order; `Err` names the first unknown one.
pub(super) fn parse_select(sel: &str) -> Result<Vec<&'static str>, String> {
    let mut out = Vec::new();
    for name in sel.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match canonical_property(name) {
            Some(p) => out.push(p),
            None => return Err(name.to_string()),
        }
    }
    Ok(out)
}

/// Why a `$filter` was refused.
pub(super) enum FilterError {
    /// Not a filter the grammar above reads (400 `BadRequest`).
    Syntax(String),
    /// A property or operator the fake (or Graph) cannot filter on (400
    /// `Request_UnsupportedQuery`).
    Property(String),
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    Comma,
}

fn lex_filter(s: &str) -> Result<Vec<Tok>, FilterError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else if c == ',' {
            out.push(Tok::Comma);
            i += 1;
        } else if c == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(FilterError::Syntax("unterminated string".into())),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        v.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        v.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(v));
        } else if c.is_alphanumeric() || c == '_' || c == '.' || c == '/' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_./".contains(chars[i])) {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            return Err(FilterError::Syntax(format!("unexpected character '{c}'")));
        }
    }
    Ok(out)
}

/// The clauses of a `$filter`: (property, the values it may equal), any of which matches.
pub(super) fn parse_filter(s: &str) -> Result<Vec<(&'static str, Vec<String>)>, FilterError> {
    let toks = lex_filter(s)?;
    let mut it = toks.into_iter().peekable();
    let mut clauses = Vec::new();
    loop {
        let prop = match it.next() {
            Some(Tok::Word(w)) => w,
            other => {
                return Err(FilterError::Syntax(format!(
                    "expected a property, got {other:?}"
                )))
            }
        };
        let op = match it.next() {
            Some(Tok::Word(w)) => w.to_ascii_lowercase(),
            other => {
                return Err(FilterError::Syntax(format!(
                    "expected an operator, got {other:?}"
                )))
            }
        };
        let canonical = canonical_property(&prop).ok_or(FilterError::Property(prop.clone()));
        let values = match op.as_str() {
            "eq" => match it.next() {
                Some(Tok::Str(v)) => vec![v],
                other => {
                    return Err(FilterError::Syntax(format!(
                        "expected a string, got {other:?}"
                    )))
                }
            },
            "in" => {
                if it.next() != Some(Tok::Open) {
                    return Err(FilterError::Syntax("expected '(' after 'in'".into()));
                }
                let mut vals = Vec::new();
                loop {
                    match it.next() {
                        Some(Tok::Str(v)) => vals.push(v),
                        other => {
                            return Err(FilterError::Syntax(format!(
                                "expected a string, got {other:?}"
                            )))
                        }
                    }
                    match it.next() {
                        Some(Tok::Comma) => continue,
                        Some(Tok::Close) => break,
                        other => {
                            return Err(FilterError::Syntax(format!(
                                "expected ',' or ')', got {other:?}"
                            )))
                        }
                    }
                }
                vals
            }
            _ => return Err(FilterError::Property(prop)),
        };
        clauses.push((canonical?, values));
        match it.next() {
            None => break,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("or") => continue,
            Some(other) => return Err(FilterError::Syntax(format!("unsupported {other:?}"))),
        }
    }
    Ok(clauses)
}
