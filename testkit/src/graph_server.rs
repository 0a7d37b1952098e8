//! A local fake of Microsoft Graph v1.0 (user photos, user lookup, JSON batching) and of the
//! Microsoft identity platform token endpoint (client credentials), built to the contract in
//! `shared/reference/graph-contract.md`, for tests of the Graph sink.
//!
//! Use it as `userphoto_testkit::graph_server` (a dev-dependency) and start one server
//! per test with [`GraphServer::start`]. Clients add `/v1.0/...` to [`GraphServer::base_url`] and
//! `/{tenant}/oauth2/v2.0/token` to [`GraphServer::login_url`]. Every request is recorded
//! ([`RequestRecord`]) so tests can check waits after `Retry-After`, the concurrency the client
//! used and how often it fetched tokens.
//!
//! The managed identity endpoints of Azure resources (App Service's `/msi/token`, Azure Arc's
//! challenge, the instance metadata service) and federated credentials for workload identity
//! are in `graph_server/identity.rs` and `graph_server/managed_identity.rs`
//! ([`GraphServer::enable_managed_identity`], [`GraphServer::add_federated_credential`],
//! [`TestIssuer`]). Certificates (client credentials, the HTTPS test CA) are made in-process
//! with `rcgen` ([`TestCertificate`], [`TestCa`]).
//!
//! Where the contract leaves a behaviour open, the choice made here is named in the doc comment
//! of the item that implements it (search for "Contract choice").
// The internal `Reply` is the error type of a few helpers; boxing it buys nothing in a test fake.
#![allow(clippy::result_large_err)]

// The modules, by job, from the bottom up (a module uses only modules of earlier lines):
// - time (clock, dates, GUIDs), images (test images, type and size of uploads), odata (the
//   `$select`/`$filter` parsers), recorder (records and what is computed from them), certs
//   (rcgen certificates and the test CA);
// - tls (acceptor and listener), config (constants, error codes, configuration);
// - jwt (client assertions: make and check);
// - identity (managed identity and federated credential types, the federated check);
// - reply (requests, correlation ids, replies, Graph error bodies, HTTP responses);
// - state (the directory, tokens, records and counters behind one mutex);
// - tokens (signer, issuing, bearer check);
// - users, photos (the operations); routes (paths to operations, role checks);
// - admission (concurrency, failure knobs, latency); batch (`$batch`);
// - managed_identity, token_endpoint (the identity platform's endpoints);
// - entry (the axum handler and router); server (the `GraphServer` handle).
mod admission;
mod batch;
mod certs;
mod config;
mod entry;
mod identity;
mod images;
mod jwt;
mod managed_identity;
mod odata;
mod photos;
mod recorder;
mod reply;
mod routes;
mod server;
mod state;
mod time;
mod tls;
mod token_endpoint;
mod tokens;
mod users;

pub use certs::{
    x5t_from_hex, x5t_s256, RegisteredCertificate, ServerCert, TestCa, TestCertificate,
};
pub use config::{
    codes, AppRegistration, Failure, GraphServerConfig, RetryAfter, Throttle, UserSeed,
    CLIENT_ASSERTION_TYPE, DEFAULT_APP_ROLES, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT_DOMAIN, DEFAULT_TENANT_ID, DIRECTORY_READ_ROLES, GRAPH_APP_ID, GRAPH_RESOURCE,
    MAX_PHOTO_BYTES, ODATA_JSON, PHOTO_READ_ROLES, PHOTO_WRITE_ROLES, STANDARD_SIZES,
};
pub use identity::{
    FederatedCredential, IdentityAnswer, ManagedIdentityConfig, TestIssuer, TOKEN_EXCHANGE_AUDIENCE,
};
pub use images::{detect_image, image_size, test_jpeg, test_png};
pub use jwt::{
    assertion_claims, assertion_header, client_assertion, sign_jwt, AssertionAlg, ThumbprintHeader,
};
pub use recorder::{max_overlap, RequestKind, RequestRecord, RetryViolation, ThrottleCause};
pub use server::GraphServer;
pub use state::UserSnapshot;
pub use time::{entra_timestamp, iso_datetime};
pub use tokens::{auth_messages, token_signer};
