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
//!
//! Moved items keep their old public paths as re-exports (`userphoto::sink::LdapConfig`,
//! `userphoto::sink::Secret`); the paths above are the canonical ones.
//!
//! ## Cargo features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `mozjpeg` | yes | JPEG through libjpeg-turbo's code (vendored by `mozjpeg-sys`): DCT-scaled decoding, the fastest path. Needs a C compiler; uses SIMD when `nasm` is installed at build time. |
//! | `ad` | yes | The Active Directory sink ([`sink::AdSink`]), the LDAP source ([`source::LdapSource`]) and their LDAP transport ([`ldap`]): ldap3 and rustls (ring provider). |
//! | `graph` | yes | The Microsoft Graph sink ([`sink::GraphSink`]): hyper, hyper-rustls, rustls and ring. |
//! | `heic` | no | HEIC/HEIF input (iPhone photos) through the system libheif (`apt install libheif-dev`). Without it HEIC is a typed `Unsupported` error naming the format. |
//! | `conformance` | no | `userphoto::conformance`: the contract suites that every source and sink implementation must pass (not covered by semver). |
//! | `gssapi` | no | Kerberos (GSSAPI) binds for the AD sink and the LDAP source, through the system's MIT Kerberos (`apt install libkrb5-dev libclang-dev`). Turns on `ad`. |
//! | `pure-rust` | no | JPEG through zune-jpeg and jpeg-encoder when `mozjpeg` is off: no C toolchain, slower on large photos. |
//!
//! With `default-features = false, features = ["mozjpeg"]` (or `["pure-rust"]`) the crate is
//! the normalizer and the offline path: the folder, CSV and memory sources, the LDIF and memory
//! sinks, the engine, its state store and backups, without ldap3, hyper, rustls or ring.
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
mod secret;
pub mod sink;
pub mod source;
pub mod sync;

pub use error::{Error, ErrorKind, Result};
pub use key::{MatchAttribute, UserKey};
pub use secret::Secret;

/// The LDIF reader's entry point for the fuzz target (`fuzz/fuzz_targets/ldif.rs`); not a
/// stable API.
#[doc(hidden)]
pub use ldif::read::fuzz_read as __fuzz_ldif_read;

/// The README's examples, compiled as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
