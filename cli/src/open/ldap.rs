//! The LDAP connection of `--sink ad` and `--source ldap`, and the AD sink.

use userphoto::sink::{AdSink, LdapConfig, Secret};
use userphoto::MatchAttribute;

use crate::args::{LdapArgs, SinkArgs};
use crate::hint::explain;

/// The LDAP settings of `--ldap-url` and its options; `what` names the option that needs
/// them in messages (`--sink ad`).
pub(crate) fn ldap_config(l: &LdapArgs, what: &str) -> Result<LdapConfig, String> {
    let url = l
        .ldap_url
        .as_deref()
        .ok_or_else(|| format!("{what} needs --ldap-url ldaps://HOST or ldap://HOST --starttls"))?;
    let base = l
        .base_dn
        .as_deref()
        .ok_or_else(|| format!("{what} needs --base-dn"))?;
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
    let user = l
        .bind_dn
        .as_deref()
        .ok_or_else(|| format!("{what} needs --bind-dn (a DN, UPN or DOMAIN\\user)"))?;
    let password = match (&l.bind_password_env, &l.bind_password_file) {
        (Some(var), _) => Secret::from_env(var).map_err(|e| format!("--bind-password-env: {}", e.message()))?,
        (None, Some(file)) => {
            Secret::from_file(file).map_err(|e| format!("--bind-password-file: {}", e.message()))?
        }
        (None, None) => {
            return Err(
                "--bind-dn needs --bind-password-env VAR or --bind-password-file FILE (never the password itself)"
                    .into(),
            )
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
