//! Paged searches, and search result entries read without trusting the server.

use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapError, ResultEntry, Scope, SearchEntry};

/// A paged search on `ldap` with these extra controls (the paging control is added);
/// search references and intermediate messages are dropped.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn paged_search(
    ldap: &mut Ldap,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: Vec<String>,
    page: i32,
    timeout: Duration,
    controls: Vec<RawControl>,
) -> std::result::Result<Vec<SearchEntry>, LdapError> {
    paged_search_with(
        ldap, base, scope, filter, attrs, page, timeout, controls, Some,
    )
    .await
}

/// [`paged_search`], keeping what `keep` makes of each entry as it arrives.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn paged_search_with<T>(
    ldap: &mut Ldap,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: Vec<String>,
    page: i32,
    timeout: Duration,
    controls: Vec<RawControl>,
    keep: impl Fn(SearchEntry) -> Option<T>,
) -> std::result::Result<Vec<T>, LdapError> {
    let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(page)),
    ];
    let l = ldap.with_timeout(timeout);
    if !controls.is_empty() {
        l.with_controls(controls);
    }
    let mut stream = l
        .streaming_search_with(adapters, base, scope, filter, attrs)
        .await?;
    let mut out = Vec::new();
    while let Some(entry) = stream.next().await? {
        if entry.is_ref() || entry.is_intermediate() {
            continue;
        }
        if let Some(v) = keep(entry_of_result(entry)?) {
            out.push(v);
        }
    }
    let res = stream.finish().await;
    // 10 (referral) only says some entries live elsewhere: ignored like search references.
    if res.rc != 10 {
        res.success()?;
    }
    Ok(out)
}

/// What an [`LdapError::AdapterInit`] made by [`entry_of_result`] starts with (mapped to
/// [`ErrorKind::InvalidData`](crate::ErrorKind::InvalidData)).
pub(crate) const MALFORMED: &str = "the directory sent a malformed entry: ";

/// A search result entry as a [`SearchEntry`] (every value in `bin_attrs`), without
/// `ldap3`'s `SearchEntry::construct`, which panics on a malformed entry. A malformed one
/// (not a sequence, a DN that is not UTF-8, an attribute without values, an `objectGUID`
/// that is not 16 bytes) is an error.
pub(crate) fn entry_of_result(re: ResultEntry) -> std::result::Result<SearchEntry, LdapError> {
    entry_parts(re).map_err(|m| LdapError::AdapterInit(format!("{MALFORMED}{m}")))
}

fn entry_parts(re: ResultEntry) -> std::result::Result<SearchEntry, String> {
    use std::collections::HashMap;
    let tag = re.0;
    if tag.id != 4 {
        return Err(format!(
            "a message with tag {}, not a search entry (4)",
            tag.id
        ));
    }
    let mut parts = tag
        .expect_constructed()
        .ok_or("the entry is not a sequence")?
        .into_iter();
    let dn = parts
        .next()
        .and_then(|t| t.expect_primitive())
        .ok_or("the entry has no DN")?;
    let dn = String::from_utf8(dn).map_err(|e| {
        format!(
            "a DN that is not UTF-8 ({} bytes, invalid at byte {})",
            e.as_bytes().len(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let attrs = parts
        .next()
        .and_then(|t| t.expect_constructed())
        .ok_or_else(|| format!("{dn}: no attribute list"))?;
    let mut bin_attrs: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for a in attrs {
        let mut pa = a
            .expect_constructed()
            .ok_or_else(|| format!("{dn}: an attribute that is not a sequence"))?
            .into_iter();
        let name = pa
            .next()
            .and_then(|t| t.expect_primitive())
            .and_then(|n| String::from_utf8(n).ok())
            .ok_or_else(|| format!("{dn}: an attribute without a valid name"))?;
        let vals = pa
            .next()
            .and_then(|t| t.expect_constructed())
            .ok_or_else(|| format!("{dn}: attribute {name} has no set of values"))?;
        let vals: Vec<Vec<u8>> = vals
            .into_iter()
            .map(|t| t.expect_primitive())
            .collect::<Option<_>>()
            .ok_or_else(|| format!("{dn}: a value of {name} is not an octet string"))?;
        let guid = ["objectGUID", "invocationId"]
            .iter()
            .any(|g| g.eq_ignore_ascii_case(&name));
        if let Some(v) = vals.iter().find(|v| guid && v.len() != 16) {
            return Err(format!("{dn}: {name} of {} bytes (a GUID has 16)", v.len()));
        }
        bin_attrs.entry(name).or_default().extend(vals);
    }
    Ok(SearchEntry {
        dn,
        attrs: HashMap::new(),
        bin_attrs,
    })
}

/// Every value of `attr` in an entry, as bytes (the attribute may be in either map of a
/// `SearchEntry`, and its name in another case than asked).
pub(crate) fn values<'a>(e: &'a SearchEntry, attr: &str) -> Vec<&'a [u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for (k, vs) in &e.attrs {
        if k.eq_ignore_ascii_case(attr) {
            out.extend(vs.iter().map(|s| s.as_bytes()));
        }
    }
    for (k, vs) in &e.bin_attrs {
        if k.eq_ignore_ascii_case(attr) {
            out.extend(vs.iter().map(|v| v.as_slice()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    mod hostile {
        use super::super::*;
        use crate::ldap::{LdapConfig, OpClass, Pool};
        use crate::{Error, ErrorKind};
        use ldap3::asn1::{StructureTag, TagClass, PL};

        fn prim(b: &[u8]) -> StructureTag {
            StructureTag {
                class: TagClass::Universal,
                id: 4,
                payload: PL::P(b.to_vec()),
            }
        }
        fn cons(id: u64, v: Vec<StructureTag>) -> StructureTag {
            StructureTag {
                class: TagClass::Universal,
                id,
                payload: PL::C(v),
            }
        }
        fn attr(name: &str, vals: Vec<StructureTag>) -> StructureTag {
            cons(16, vec![prim(name.as_bytes()), cons(17, vals)])
        }
        /// A search result entry (APPLICATION 4) of these parts.
        fn entry(parts: Vec<StructureTag>) -> ResultEntry {
            ResultEntry::new(StructureTag {
                class: TagClass::Application,
                id: 4,
                payload: PL::C(parts),
            })
        }
        fn err(re: ResultEntry) -> Error {
            let e = entry_of_result(re).unwrap_err();
            Pool::new(
                LdapConfig::new("ldap://dc1", "DC=x").allow_plain(true),
                "ad",
            )
            .unwrap()
            .op_error(e, OpClass::Search, "prefetch", None)
        }
        /// Whether ldap3's own constructor panics on it (the hostile value is real).
        fn ldap3_panics(re: impl FnOnce() -> ResultEntry + std::panic::UnwindSafe) -> bool {
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let r = std::panic::catch_unwind(|| SearchEntry::construct(re()));
            std::panic::set_hook(hook);
            r.is_err()
        }

        #[test]
        fn a_good_entry_keeps_its_dn_and_every_value_as_bytes() {
            let guid = [7u8; 16];
            let e = entry_of_result(entry(vec![
                prim(b"CN=Ann,DC=x"),
                cons(
                    16,
                    vec![
                        attr("sAMAccountName", vec![prim(b"ann")]),
                        attr("thumbnailPhoto", vec![prim(&[0xFF, 0xD8, 0x00])]),
                        attr("objectGUID", vec![prim(&guid)]),
                    ],
                ),
            ]))
            .unwrap();
            assert_eq!(e.dn, "CN=Ann,DC=x");
            assert_eq!(values(&e, "samaccountname"), vec![&b"ann"[..]]);
            assert_eq!(
                values(&e, "thumbnailPhoto"),
                vec![&[0xFFu8, 0xD8, 0x00][..]]
            );
            assert_eq!(values(&e, "objectGUID"), vec![&guid[..]]);
        }

        #[test]
        fn a_dn_that_is_not_utf8_is_invalid_data_not_a_panic() {
            let re = || entry(vec![prim("CN=Zoë,DC=x".as_bytes()), cons(16, vec![])]);
            let bad = || {
                entry(vec![
                    prim(&[b'C', b'N', b'=', 0xFF, 0xFE]),
                    cons(16, vec![]),
                ])
            };
            assert!(entry_of_result(re()).is_ok());
            assert!(ldap3_panics(bad));
            let e = err(bad());
            assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
            assert!(e.to_string().contains("a DN that is not UTF-8"), "{e}");
        }

        #[test]
        fn malformed_structures_are_invalid_data_not_a_panic() {
            type Case = (fn() -> ResultEntry, &'static str);
            let cases: [Case; 8] = [
                (|| entry(vec![]), "no DN"),
                (|| entry(vec![prim(b"CN=a")]), "no attribute list"),
                (
                    || entry(vec![prim(b"CN=a"), prim(b"not a sequence")]),
                    "no attribute list",
                ),
                (
                    || entry(vec![prim(b"CN=a"), cons(16, vec![prim(b"x")])]),
                    "not a sequence",
                ),
                (
                    || {
                        entry(vec![
                            prim(b"CN=a"),
                            cons(16, vec![cons(16, vec![prim(b"cn")])]),
                        ])
                    },
                    "no set of values",
                ),
                (
                    || {
                        entry(vec![
                            prim(b"CN=a"),
                            cons(16, vec![attr("cn", vec![cons(16, vec![])])]),
                        ])
                    },
                    "not an octet string",
                ),
                (
                    || {
                        entry(vec![
                            prim(b"CN=a"),
                            cons(16, vec![cons(16, vec![prim(&[0xFF]), cons(17, vec![])])]),
                        ])
                    },
                    "without a valid name",
                ),
                (
                    || ResultEntry::new(prim(b"a primitive, not an entry")),
                    "the entry is not a sequence",
                ),
            ];
            for (make, why) in cases {
                assert!(ldap3_panics(make), "ldap3 takes the case {why:?}");
                let e = err(make());
                assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
                assert!(e.to_string().contains(why), "{why:?}: {e}");
                assert!(!e.is_run_level());
            }
        }

        #[test]
        fn a_guid_of_the_wrong_length_is_invalid_data() {
            for n in [0usize, 15, 17, 36] {
                let e = err(entry(vec![
                    prim(b"CN=a,DC=x"),
                    cons(16, vec![attr("objectGUID", vec![prim(&vec![1u8; n])])]),
                ]));
                assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
                assert!(
                    e.to_string()
                        .contains(&format!("objectGUID of {n} bytes (a GUID has 16)")),
                    "{e}"
                );
            }
        }
    }
}
