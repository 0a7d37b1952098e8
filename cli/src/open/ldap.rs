//! The LDAP connection of `--sink ad` and `--source ldap`, and the AD sink.

use userphoto::sink::{AdSink, LdapConfig, Secret};
use userphoto::MatchAttribute;

use crate::args::{LdapArgs, SinkArgs};
use crate::hint::explain;

/// The LDAP settings of `--ldap-url` and its options; `what` names the option that needs
/// them in messages (`--sink ad`). Every required option that is missing is named in one
/// message, with its config-file key.
pub(crate) fn ldap_config(l: &LdapArgs, what: &str) -> Result<LdapConfig, String> {
    #[cfg(feature = "gssapi")]
    let kerberos = l.gssapi;
    #[cfg(not(feature = "gssapi"))]
    let kerberos = false;
    let mut missing = Vec::new();
    if l.ldap_url.is_none() {
        missing.push((
            "--ldap-url ldaps://HOST (or ldap://HOST with --starttls)",
            "ldap-url",
        ));
    }
    if !kerberos && l.bind_dn.is_none() {
        missing.push(("--bind-dn (a DN, a UPN or DOMAIN\\user)", "bind-dn"));
    }
    if !kerberos && l.bind_password_env.is_none() && l.bind_password_file.is_none() {
        missing.push((
            "--bind-password-env VAR or --bind-password-file FILE (never the password itself)",
            "bind-password-env or bind-password-file",
        ));
    }
    if l.base_dn.is_none() {
        missing.push(("--base-dn DN (where users are searched)", "base-dn"));
    }
    let (Some(url), Some(base), true) = (&l.ldap_url, &l.base_dn, missing.is_empty()) else {
        let flags: Vec<&str> = missing.iter().map(|(f, _)| *f).collect();
        let keys: Vec<&str> = missing.iter().map(|(_, k)| *k).collect();
        return Err(format!(
            "{what} needs {} (config file: {})",
            flags.join(", "),
            keys.join(", ")
        ));
    };
    let mut cfg = LdapConfig::new(url, base)
        .starttls(l.starttls)
        .allow_plain(l.allow_plain_ldap)
        .insecure_skip_tls_verify(l.insecure_skip_tls_verify)
        .operation_timeout(std::time::Duration::from_secs(l.ldap_timeout.max(1)))
        .connections(l.ldap_connections);
    if let Some(ca) = &l.ca_cert {
        cfg = cfg.ca_file(ca);
    }
    #[cfg(feature = "gssapi")]
    if l.gssapi {
        cfg = match &l.gssapi_host {
            Some(h) => cfg.gssapi_service_host(h),
            None => cfg.gssapi_bind(),
        };
        return Ok(cfg);
    }
    let user = l.bind_dn.as_deref().unwrap_or_default();
    let password =
        match (&l.bind_password_env, &l.bind_password_file) {
            (Some(var), _) => Secret::from_env(var)
                .map_err(|e| format!("--bind-password-env: {}", e.message()))?,
            (None, Some(file)) => Secret::from_file(file)
                .map_err(|e| format!("--bind-password-file: {}", e.message()))?,
            (None, None) => {
                return Err(format!(
                    "{what} needs --bind-password-env VAR or --bind-password-file FILE"
                ))
            }
        };
    Ok(cfg.simple_bind(user, password))
}

/// The AD sink of `--sink ad[:NAME]`.
pub(crate) fn ad_sink(
    a: &SinkArgs,
    spec: &str,
    name: &str,
    matcher: &MatchAttribute,
) -> Result<AdSink, String> {
    let cfg = ldap_config(&a.ldap, "--sink ad")?;
    let mut b = AdSink::builder(cfg)
        .match_attribute(matcher.clone())
        .attribute(&a.attribute);
    if !name.is_empty() {
        b = b.name(name);
    }
    if let Some(f) = &a.ldap.ldap_filter {
        b = b.user_filter(f);
    }
    b.build()
        .map_err(|e| format!("--sink {spec}: {}", explain(&e)))
}
