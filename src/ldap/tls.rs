//! TLS for LDAP connections: rustls with the system's roots or a CA file, and the lab-only
//! verifier that accepts any certificate.

use std::sync::Arc;

use ldap3::LdapError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::LdapConfig;
use crate::{Error, ErrorKind, Result};

pub(super) fn tls_cause(e: &LdapError) -> Option<String> {
    match e {
        LdapError::Rustls { source } => Some(source.to_string()),
        LdapError::DNSName { source } => Some(source.to_string()),
        LdapError::Io { source } => source
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .map(|r| r.to_string()),
        _ => None,
    }
}

/// A certificate verifier that accepts any certificate but still checks the handshake
/// signatures (for [`LdapConfig::insecure_skip_tls_verify`]).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(super) fn tls_config(cfg: &LdapConfig, backend: &'static str) -> Result<Arc<ClientConfig>> {
    let err = |msg: String| {
        Error::new(ErrorKind::Config, msg)
            .with_backend(backend)
            .with_operation("connect")
    };
    // aws-lc-rs, rustls's default provider (post-quantum key exchange preferred), named
    // explicitly so that an embedder's other rustls features never make the choice ambiguous.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(format!("TLS setup: {e}")))?;
    let config = if cfg.insecure_skip_tls_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        match &cfg.ca_file {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                    .map_err(|e| err(format!("CA file {}: {e}", path.display())))?;
                for c in certs {
                    roots
                        .add(c)
                        .map_err(|e| err(format!("CA file {}: {e}", path.display())))?;
                }
                if roots.is_empty() {
                    return Err(err(format!(
                        "CA file {} holds no certificate",
                        path.display()
                    )));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(err(format!(
                        "no system root certificates found and no CA file given ({})",
                        crate::cited::LDAP_CA_FILE
                    )));
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}
