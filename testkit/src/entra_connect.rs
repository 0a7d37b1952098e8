//! A simulated Microsoft Entra Connect sync cycle, for the hybrid tests: AD's
//! `thumbnailPhoto` of each synced user copied into the Graph fake's photo.
//!
//! What it copies follows the documented behaviour (`../shared/reference/domain.md`, hybrid
//! tenants): Entra Connect syncs `thumbnailPhoto` to the Microsoft 365 photo of users whose
//! cloud account is synced from AD (`onPremisesSyncEnabled` true), the last writer wins, and
//! the cloud keeps what AD holds (a 96-pixel thumbnail becomes a 96-pixel cloud photo, with a
//! new `@odata.mediaEtag`). The on-premises user is matched to its cloud user by
//! `userPrincipalName`. A user without a thumbnail in AD leaves the cloud photo as it is (the
//! simulation never deletes), and cloud-only users are never touched.

use ldap3::{Scope, SearchEntry};

use crate::ad::Ou;
use crate::graph_server::GraphServer;

/// One Entra Connect cycle over the users below `ou` (read over LDAP through the OU's admin
/// connection): each user with a `userPrincipalName` and a `thumbnailPhoto` whose cloud user
/// (same UPN) in `graph` is synced gets the thumbnail's bytes as its cloud photo, as another
/// writer would set it (a new etag). Returns the UPNs whose photo was copied, sorted.
pub async fn sync_thumbnails(ou: &Ou, graph: &GraphServer) -> Vec<String> {
    let mut l = ou.conns[0].clone();
    let mut stream = l
        .streaming_search(
            &ou.dn,
            Scope::Subtree,
            "(&(objectClass=user)(userPrincipalName=*)(thumbnailPhoto=*))",
            vec!["userPrincipalName", "thumbnailPhoto"],
        )
        .await
        .expect("search the synced users");
    let mut found: Vec<(String, Vec<u8>)> = Vec::new();
    while let Some(entry) = stream.next().await.expect("read a synced user") {
        let e = SearchEntry::construct(entry);
        let upn = e
            .attrs
            .get("userPrincipalName")
            .and_then(|v| v.first().cloned());
        let photo = e
            .bin_attrs
            .get("thumbnailPhoto")
            .and_then(|v| v.first().cloned())
            .or_else(|| {
                e.attrs
                    .get("thumbnailPhoto")
                    .and_then(|v| v.first().map(|s| s.clone().into_bytes()))
            });
        if let (Some(upn), Some(photo)) = (upn, photo) {
            found.push((upn, photo));
        }
    }
    stream.finish().await.success().expect("end of the search");
    found.sort();
    let mut copied = Vec::new();
    for (upn, photo) in found {
        let synced = graph
            .user(&upn)
            .is_some_and(|u| u.on_premises_sync_enabled == Some(true));
        if synced && graph.set_photo(&upn, photo).is_some() {
            copied.push(upn);
        }
    }
    copied
}
