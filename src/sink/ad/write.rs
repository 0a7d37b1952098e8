//! Writes: `put` and `delete` replace the photo attribute.

use std::collections::HashSet;

use bytes::Bytes;
use ldap3::Mod;

use super::{AdSink, AD_MAX_BYTES};
use crate::digest::sha256_hex;
use crate::ldap::OpClass;
use crate::{Error, ErrorKind, Result, UserKey};

impl AdSink {
    /// A write refused for one user (50 or 53): that user's failure, with what to do.
    fn refused(&self, op: &'static str, key: &UserKey, dn: &str, server: &str) -> Error {
        self.fail(
            ErrorKind::PermissionDenied,
            op,
            key,
            format!(
                "no write access to {} on {dn}: {server}; as for protected admin accounts (AdminSDHolder keeps delegated rights off them): delegate on AdminSDHolder or leave them out",
                self.attribute
            ),
        )
        .user_level()
        .permanent()
    }

    pub(super) async fn write(
        &self,
        op: &'static str,
        key: &UserKey,
        jpeg: Option<&Bytes>,
    ) -> Result<()> {
        let (id, dn, _) = self.resolve(op, key).await?;
        let new_sha = jpeg.map(|j| sha256_hex(j));
        // The photo the sink knows for the entry before this write (see `snapshot`).
        let before = self.lock().space.entries.get(&id).map(|e| e.sha256.clone());
        let attr = Bytes::from(self.attribute.clone().into_bytes());
        let t = self.pool.timeout();
        let r = self
            .pool
            .run(OpClass::Write, op, Some(key), |mut ldap| {
                let values: HashSet<Bytes> = jpeg.into_iter().cloned().collect();
                let m = vec![Mod::Replace(attr.clone(), values)];
                let dn = dn.as_str();
                async move {
                    let r = ldap.with_timeout(t).modify(dn, m).await?;
                    // A delete of an absent value is done already.
                    if r.rc == 16 && jpeg.is_none() {
                        return Ok(());
                    }
                    r.success().map(|_| ())
                }
            })
            .await;
        match r {
            Ok(()) => {
                let mut st = self.lock();
                let st = &mut *st;
                if let Some(e) = st.space.entries.get_mut(&id) {
                    e.sha256 = new_sha.clone();
                }
                st.unsure.remove(&id);
                if let Some(run) = &mut st.run {
                    match before {
                        // It changed the photo the sink knew: one USN, unless somebody
                        // wrote these very bytes in between (and raised it for us).
                        Some(b) if b != new_sha => run.mods += 1,
                        // It may have changed nothing at all: the watermark stays put.
                        _ => run.exact = false,
                    }
                }
                Ok(())
            }
            Err(e) => {
                let gone = e.kind() == ErrorKind::UserNotFound;
                if gone {
                    self.forget(key, &id);
                } else {
                    // It may have landed or not: `current` reads the photo again; the
                    // snapshot keeps what was certain (the USNs tell the next run).
                    self.lock().unsure.insert(id);
                }
                let e = self.named(e);
                Err(if gone {
                    self.fail(
                        ErrorKind::UserNotFound,
                        op,
                        key,
                        format!("{dn}: {}", e.message()),
                    )
                    .user_level()
                } else if e.kind() == ErrorKind::PermissionDenied && !e.is_run_level() {
                    self.refused(op, key, &dn, e.message())
                } else {
                    e
                })
            }
        }
    }

    /// `put`: the size checks, then the write.
    pub(super) async fn put_photo(&self, key: &UserKey, jpeg: &Bytes) -> Result<Option<String>> {
        if jpeg.len() > self.max_bytes {
            let why = if self.pool.config().gssapi_without_tls() && self.max_bytes < AD_MAX_BYTES {
                " (Kerberos without TLS: ldap3 cannot send a request above the SASL buffer; use ldaps:// or StartTLS for larger photos)"
            } else {
                ""
            };
            return Err(self.fail(
                ErrorKind::PhotoTooLarge,
                "put",
                key,
                format!(
                    "{} bytes, above the limit of {}{why}; nothing sent",
                    jpeg.len(),
                    self.max_bytes
                ),
            ));
        }
        if jpeg.is_empty() {
            return Err(self.fail(
                ErrorKind::InvalidPhoto,
                "put",
                key,
                "an empty photo; nothing sent".into(),
            ));
        }
        self.write("put", key, Some(jpeg)).await?;
        Ok(None)
    }
}
