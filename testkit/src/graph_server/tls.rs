//! HTTPS for the fake: a rustls acceptor (aws-lc-rs provider) for a [`ServerCert`] and the listener
//! that completes each handshake before axum sees the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::certs::ServerCert;

/// A TLS acceptor (HTTP/1.1 by ALPN) that presents `cert`.
pub(super) fn acceptor(cert: &ServerCert) -> TlsAcceptor {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert.chain_pem)
        .collect::<Result<_, _>>()
        .expect("certificate chain PEM");
    let key = PrivateKeyDer::from_pem_slice(&cert.key_pem).expect("key PEM");
    // (aws-lc-rs, as the library's clients use)
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(cfg))
}

/// Accepts TCP connections and completes the TLS handshake (a client that refuses the
/// certificate only ends its own connection).
pub(super) struct TlsListener {
    pub(super) tcp: tokio::net::TcpListener,
    pub(super) acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let hs = tokio::time::timeout(Duration::from_secs(10), self.acceptor.accept(tcp));
            if let Ok(Ok(tls)) = hs.await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
