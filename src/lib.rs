//! # userphoto
//!
//! One photo per person, kept once, written everywhere it is shown.
//!
//! This crate turns any common image into deterministic, size-bounded baseline JPEGs for
//! the places an organisation shows people's photos: on-premises Active Directory's
//! `thumbnailPhoto` (synced to Microsoft 365 by Entra Connect) and Microsoft 365 through
//! Microsoft Graph.
//!
//! The normalization core is [`normalize`]: see [`normalize::Normalizer`] and the built-in
//! [`normalize::Profile`]s. Photos come from a [`source::PhotoSource`] (folder, CSV manifest,
//! memory, another LDAP directory, or your own) and go to a [`sink::DirectorySink`]: Active
//! Directory over LDAP ([`sink::AdSink`]), Microsoft 365 through Microsoft Graph
//! ([`sink::GraphSink`]), an offline LDIF change file ([`sink::LdifSink`]) or memory. [`sync::Engine`] connects them: it plans what
//! to change ([`sync::plan`]), applies it with bounded concurrency and retries, keeps what
//! it replaces ([`sync::BackupStore`]), remembers what it wrote ([`sync::StateStore`]) and
//! reports ([`sync::Report`], [`sync::Event`]). Every failure is an [`Error`] with an
//! [`ErrorKind`].
//!
//! ## Workflows
//!
//! **Normalize** a photo for the built-in profiles (no I/O, no async):
//!
//! ```
//! use userphoto::normalize::{testimage, Normalizer, Profile};
//!
//! let photo = testimage::photo_jpeg(1200, 900, 7); // any common image format
//! let normalizer = Normalizer::new();
//! let renditions = normalizer
//!     .normalize_many(&photo, &[Profile::ad_thumbnail(), Profile::graph()])
//!     .expect("a readable photo");
//! let ad = renditions[0].as_ref().expect("fits");
//! assert_eq!((ad.width, ad.height), (96, 96));
//! assert!(ad.bytes.len() <= Profile::ad_thumbnail().max_bytes());
//! ```
//!
//! **Plan only** (a dry run): what a sync would change, nothing written. Here the source and
//! the sink are in memory; [`source::FolderSource`], [`source::CsvSource`] and
//! [`sink::LdifSink`] work the same way on files.
//!
//! ```
//! use std::sync::Arc;
//! use userphoto::normalize::{testimage, Profile};
//! use userphoto::sink::MemorySink;
//! use userphoto::source::MemorySource;
//! use userphoto::sync::{Action, Engine, Reason, Status};
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let source = MemorySource::new()
//!     .with_photo("alice", testimage::photo_jpeg(400, 500, 1))
//!     .with_photo("nobody", testimage::photo_jpeg(400, 500, 2));
//! let sink = Arc::new(MemorySink::new(102_400).with_users(["alice", "bob"]));
//! let engine = Engine::new(source).with_sink(sink.clone(), Profile::ad_thumbnail());
//!
//! let report = engine.dry_run().await?;
//! let alice = report.outcomes.iter().find(|o| o.key.as_str() == "alice").unwrap();
//! assert_eq!((alice.action, alice.status), (Action::Put, Status::Planned));
//! let nobody = report.outcomes.iter().find(|o| o.key.as_str() == "nobody").unwrap();
//! assert_eq!(nobody.reason, Reason::Unmatched); // not in the directory
//! assert!(sink.photo(&"alice".into()).is_none()); // nothing written
//! # Ok::<(), userphoto::Error>(()) }).unwrap();
//! ```
//!
//! **Sync** with a state store and backups: a re-run with nothing changed decodes nothing
//! and writes nothing; what a sync replaces can be restored.
//!
//! ```
//! use std::sync::Arc;
//! use userphoto::normalize::{testimage, Profile};
//! use userphoto::sink::MemorySink;
//! use userphoto::source::MemorySource;
//! use userphoto::sync::{BackupStore, Engine, StateStore};
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let dir = std::env::temp_dir().join(format!("userphoto-doc-sync-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let sink = Arc::new(
//!     MemorySink::new(102_400).with_photo("alice", testimage::photo_jpeg(96, 96, 9)),
//! );
//! let engine = || {
//!     Engine::new(MemorySource::new().with_photo("alice", testimage::photo_jpeg(400, 500, 1)))
//!         .with_sink(sink.clone(), Profile::ad_thumbnail())
//!         .with_state(StateStore::open(dir.join("state")).unwrap())
//!         .with_backups(BackupStore::open(dir.join("backup")).unwrap())
//! };
//! let first = engine().run().await?;
//! assert_eq!((first.sinks["memory"].put, first.is_success()), (1, true));
//! let again = engine().run().await?;
//! assert_eq!((again.sinks["memory"].unchanged, again.timings.decoded), (1, 0));
//! // The photo the first run replaced is in the backups; `BackupStore::restore` puts it back.
//! let backups = BackupStore::open(dir.join("backup"))?;
//! backups.restore(sink.as_ref(), None).await?;
//! assert_eq!(sink.photo(&"alice".into()).unwrap(), testimage::photo_jpeg(96, 96, 9));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), userphoto::Error>(()) }).unwrap();
//! ```
//!
//! **Into Active Directory or Microsoft 365**: the same engine with [`sink::AdSink`] (LDAPS,
//! a bind account that may write `thumbnailPhoto`) or [`sink::GraphSink`] (an app
//! registration with `ProfilePhoto.ReadWrite.All`); their docs show the builders. A source of
//! your own implements [`source::PhotoSource`] (`examples/custom_source.rs`).
//!
//! ## Modules and their layers
//!
//! * At the bottom, [`normalize`]: it imports nothing else of the crate.
//! * Beside it, the shared pieces: [`Error`] and [`ErrorKind`], [`UserKey`] and
//!   [`MatchAttribute`] (with the `objectGUID` byte layout), [`Secret`], [`ldap`] (the LDAP
//!   transport of the AD sink and the LDAP source: [`ldap::LdapConfig`], TLS, the connection
//!   pool, paged search, filter escaping, the result-code table), [`ldif`] (the reader of
//!   exports and the one LDIF writer), and the crate's one SHA-256/hex helper.
//! * Above them, [`source`] and [`sink`]. They never import the engine ([`sync`]), and
//!   sources never import sinks: what both need lives in the layer below.
//! * On top, [`sync`]: the engine, its state store, backups, retries and reports.
//! * Apart, [`review`]: the review page, an offline HTML page of a plan's (or a run's)
//!   photos side by side, rendered from a data model of its own; it imports nothing else of
//!   the crate.
//!
//! Moved items keep their old public paths as re-exports (`userphoto::sink::LdapConfig`,
//! `userphoto::sink::Secret`); the paths above are the canonical ones.
//!
//! ## Cargo features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `mozjpeg` | yes | JPEG through libjpeg-turbo's code (vendored by `mozjpeg-sys`): DCT-scaled decoding, the fastest path. Needs a C compiler; uses SIMD when `nasm` is installed at build time. |
//! | `ad` | yes | The Active Directory sink ([`sink::AdSink`]), the LDAP source ([`source::LdapSource`]) and their LDAP transport ([`ldap`]): ldap3 and rustls (aws-lc-rs provider). |
//! | `graph` | yes | The Microsoft Graph sink ([`sink::GraphSink`]): hyper, hyper-rustls, rustls and aws-lc-rs. |
//! | `heic` | no | HEIC/HEIF input (iPhone photos) through the system libheif (`apt install libheif-dev`). Without it HEIC is a typed `Unsupported` error naming the format. |
//! | `conformance` | no | `userphoto::conformance`: the contract suites that every source and sink implementation must pass (not covered by semver). |
//! | `gssapi` | no | Kerberos (GSSAPI) binds for the AD sink and the LDAP source, through the system's MIT Kerberos (`apt install libkrb5-dev libclang-dev`). Turns on `ad`. |
//! | `pure-rust` | no | JPEG through zune-jpeg and jpeg-encoder when `mozjpeg` is off: no C toolchain, slower on large photos. |
//!
//! With `default-features = false, features = ["mozjpeg"]` (or `["pure-rust"]`) the crate is
//! the normalizer and the offline path: the folder, CSV and memory sources, the LDIF and memory
//! sinks, the engine, its state store and backups, without ldap3, hyper, rustls or aws-lc-rs.
//!
//! ## Panics
//!
//! No input makes this crate panic. libjpeg reports fatal errors by unwinding, and panics
//! inside third-party decoders are contained, so both need the default `panic = "unwind"`
//! strategy: with `panic = "abort"` a corrupt JPEG would abort the process.
//!
//! ## Licences of bundled code
//!
//! With the default `mozjpeg` feature this software is based in part on the work of the
//! Independent JPEG Group (libjpeg, via libjpeg-turbo and mozjpeg).
#![cfg_attr(docsrs, feature(doc_cfg))]
// The crate and module docs name the AD and Graph backends; a build without one of them
// (`default-features = false`) has nothing for those links to point at.
#![cfg_attr(
    not(all(feature = "ad", feature = "graph")),
    allow(rustdoc::broken_intra_doc_links)
)]

// The libjpeg-turbo codec reports a corrupt JPEG by unwinding out of the C decoder into a
// `catch_unwind` (see `normalize::codec::mozjpeg`). With `panic = "abort"` that unwind would
// abort the process on the first corrupt photo of a bulk run, so such a build is refused.
// (cargo-fuzz builds with `-Cpanic=abort` and `--cfg fuzzing`: its targets that reach the codec
// accept the abort as a finding; the LDIF target never reaches it.)
#[cfg(all(panic = "abort", feature = "mozjpeg", not(fuzzing)))]
compile_error!(
    "userphoto with the `mozjpeg` feature needs panic = \"unwind\": the JPEG codec turns \
     libjpeg's errors into an unwind it catches; with panic = \"abort\" a corrupt photo would \
     abort the process. Build with panic = \"unwind\" (the default) or use the `pure-rust` codec."
);

mod bounded;
pub mod cited;
mod clock;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod digest;
mod error;
mod key;
#[cfg(feature = "ad")]
#[cfg_attr(docsrs, doc(cfg(feature = "ad")))]
pub mod ldap;
pub mod ldif;
pub mod normalize;
pub mod review;
mod secret;
pub mod sink;
pub mod source;
pub mod sync;
mod text;

pub use error::{human_message, Error, ErrorKind, Result};
pub use key::{MatchAttribute, OtherAttribute, UserKey};
pub use secret::Secret;

/// The LDIF reader's entry point for the fuzz target (`fuzz/fuzz_targets/ldif.rs`); not a
/// stable API.
#[doc(hidden)]
pub use ldif::read::fuzz_read as __fuzz_ldif_read;

/// The README's examples, compiled as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
