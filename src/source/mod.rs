//! Where photos come from: the [`PhotoSource`] trait and its implementations.
//!
//! * [`MemorySource`]: photos held in memory (tests, examples, integrators' adapters).
//! * [`FolderSource`]: a folder of image files named by user key.
//! * [`CsvSource`]: a CSV manifest of `key,path[,withheld]` rows (`,` `;` or tab separated,
//!   as Excel saves it).
//! * [`LdapSource`]: a directory's `thumbnailPhoto` or `jpegPhoto` over LDAP.
//! * [`GraphSource`]: Microsoft 365 profile photos through Microsoft Graph.
//!
//! Write your own for an HR system, a badge system or another directory: implement
//! `name`, `list` and `load` (see `examples/custom_source.rs`).

mod csv;
mod folder;
#[cfg(feature = "graph")]
mod graph;
#[cfg(feature = "ad")]
mod ldap;
mod memory;

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

pub use self::csv::CsvSource;
pub use folder::{FolderSource, KeyPattern, KeyRule, KeyTemplate};
#[cfg(feature = "graph")]
#[cfg_attr(docsrs, doc(cfg(feature = "graph")))]
pub use graph::{GraphSource, GraphSourceBuilder, GRAPH_SOURCE_PAGE_SIZE};
#[cfg(feature = "ad")]
#[cfg_attr(docsrs, doc(cfg(feature = "ad")))]
pub use ldap::{LdapSource, LdapSourceBuilder};
pub use memory::MemorySource;

use crate::normalize::Limits;
use crate::{Result, UserKey};

/// One person's photo as a source lists it: cheap metadata, no pixels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PhotoRef {
    /// Who the photo is of.
    pub key: UserKey,
    /// Changes whenever the photo may have changed (size and modification time, a content
    /// hash, a version number...). Two listings of an unchanged source give the same value.
    pub fingerprint: String,
    /// Where it is, for reports (a path, a URL, a row number).
    pub location: String,
    /// The person withdrew consent: the photo must not be shown, and is removed from sinks
    /// when the sync policy says so. [`PhotoSource::load`] is never called for it.
    pub withheld: bool,
}

/// A source of people's photos.
///
/// # Contract
///
/// * [`list`](Self::list) yields one item per person, each a `Result`: a broken row or file
///   is an `Err` item (with [`Error::with_user`](crate::Error::with_user) when the key is
///   known) and the stream goes on. Two listings of an unchanged source give the same keys
///   and fingerprints. An empty source is an empty stream.
/// * A key appears at most once. When the underlying data has several photos for one key,
///   the source yields a single `Err` of kind [`Conflict`](crate::ErrorKind::Conflict) for
///   that key, and no `Ok` item: neither photo is applied.
/// * [`load`](Self::load) returns the bytes of a listed photo and refuses anything larger
///   than `limits.max_input_bytes` with [`LimitExceeded`](crate::ErrorKind::LimitExceeded)
///   without reading it whole.
/// * Implementations are `Send + Sync` and object-safe: `Arc<dyn PhotoSource>` works.
#[async_trait]
pub trait PhotoSource: Send + Sync + Debug {
    /// A short name for logs and errors (`folder`, `csv`, `hr-export`...).
    fn name(&self) -> &str;

    /// Lists every person's photo.
    fn list(&self) -> BoxStream<'_, Result<PhotoRef>>;

    /// Reads one photo.
    async fn load(&self, photo: &PhotoRef, limits: &Limits) -> Result<Bytes>;
}

/// Forwards the trait through smart pointers, so `Arc<dyn PhotoSource>` and
/// `Box<dyn PhotoSource>` are sources too.
macro_rules! forward_source {
    ($($ptr:ident)::+) => {
        #[async_trait]
        impl<T: PhotoSource + ?Sized> PhotoSource for $($ptr)::+<T> {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn list(&self) -> BoxStream<'_, Result<PhotoRef>> {
                (**self).list()
            }
            async fn load(&self, photo: &PhotoRef, limits: &Limits) -> Result<Bytes> {
                (**self).load(photo, limits).await
            }
        }
    };
}

forward_source!(std::sync::Arc);
forward_source!(Box);

/// Compile-time proof that the trait is object-safe.
#[allow(dead_code)]
fn _object_safe(_: &dyn PhotoSource, _: std::sync::Arc<dyn PhotoSource>) {}

/// Reads a file of at most `limits.max_input_bytes` (shared by the file-based sources): a
/// larger one is refused by its size, and the read itself stops one byte past the limit
/// (a file that grows meanwhile, a FIFO). Blocking I/O runs on tokio's blocking pool.
pub(crate) async fn read_limited(
    path: std::path::PathBuf,
    limits: &Limits,
    backend: &'static str,
    key: &UserKey,
) -> Result<Bytes> {
    let max = limits.max_input_bytes;
    let k = key.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<Bytes> {
        match crate::bounded::read_file(&path, max)? {
            crate::bounded::Bounded::Read(bytes) => Ok(Bytes::from(bytes)),
            crate::bounded::Bounded::TooLarge(size) => {
                let size = match size {
                    Some(n) => format!("{n} bytes"),
                    None => format!("more than {max} bytes"),
                };
                Err(crate::Error::new(
                    crate::ErrorKind::LimitExceeded,
                    format!("{} is {size}, above the limit of {max}", path.display()),
                ))
            }
        }
    })
    .await
    .map_err(|e| crate::Error::new(crate::ErrorKind::Other, format!("reader task failed: {e}")))?;
    res.map_err(|e| e.with_backend(backend).with_operation("load").with_user(k))
}

/// Runs a blocking scan on tokio's blocking pool and streams its items (shared by the
/// file-based sources, whose listing is file-system work).
pub(crate) fn blocking_list<F>(
    backend: &'static str,
    scan: F,
) -> BoxStream<'static, Result<PhotoRef>>
where
    F: FnOnce() -> Vec<Result<PhotoRef>> + Send + 'static,
{
    use futures::stream::{self, StreamExt};
    stream::once(async move {
        tokio::task::spawn_blocking(scan).await.unwrap_or_else(|e| {
            vec![Err(crate::Error::new(
                crate::ErrorKind::Other,
                format!("scan failed: {e}"),
            )
            .with_backend(backend)
            .with_operation("list"))]
        })
    })
    .flat_map(stream::iter)
    .boxed()
}

/// A file's fingerprint: its size and modification time.
pub(crate) fn file_fingerprint(meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("size:{}:mtime:{mtime}", meta.len())
}
