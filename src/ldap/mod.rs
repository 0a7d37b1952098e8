//! The LDAP transport shared by the Active Directory sink ([`AdSink`](crate::sink::AdSink))
//! and the LDAP source ([`LdapSource`](crate::source::LdapSource)).
//!
//! [`LdapConfig`] says where the directory is and how to bind to it; [`EntrySelector`] which
//! entries are people, how each is keyed and which attribute holds the photo. The rest is the
//! crate's own plumbing, used by both: TLS (the system's roots or a CA file), a pool of
//! connections that binds once, reconnects once after a drop and remembers a bind that
//! failed for good, paged searches that read entries without trusting the server, filter
//! escaping (RFC 4515), DN comparison, and the one table that turns LDAP result codes into
//! [`ErrorKind`](crate::ErrorKind)s. Nothing here knows about the sync engine.

mod codes;
mod config;
mod dn;
mod filter;
mod pool;
mod search;
mod selector;
mod tls;

pub(crate) use codes::OpClass;
pub use config::LdapConfig;
pub(crate) use dn::dn_within;
pub(crate) use filter::{escape_filter_bytes, escape_filter_value};
pub(crate) use pool::Pool;
pub(crate) use search::{entry_of_result, paged_search, paged_search_with, values};
pub use selector::{EntrySelector, AD_USER_FILTER};
