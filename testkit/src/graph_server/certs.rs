//! Certificates, made in-process with `rcgen` (RSA keys from the `rsa` crate, which `rcgen`'s
//! ring backend can sign with but not generate):
//!
//! * [`TestCertificate`]: a self-signed RSA-2048 certificate and its key, for certificate
//!   credentials (client assertions), the fake's token signer and test token issuers;
//! * [`TestCa`] and [`ServerCert`]: a throwaway EC P-256 certificate authority and the server
//!   certificates it issues, for the fake over HTTPS.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::sha2::{Digest, Sha256};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

/// How long every certificate made here is valid, from now (as `openssl … -days 2` did).
const VALIDITY: Duration = Duration::from_secs(2 * 24 * 3600);

/// The public part of a certificate credential, as uploaded to an app registration.
#[derive(Clone, Debug)]
pub struct RegisteredCertificate {
    /// DER of the X.509 certificate.
    pub der: Vec<u8>,
    /// Its SubjectPublicKeyInfo as PEM (`-----BEGIN PUBLIC KEY-----`).
    pub public_key_pem: String,
    /// base64url(SHA-256(DER)), matched against the assertion header's `x5t#S256`.
    pub x5t_s256: String,
    /// base64url(SHA-1(DER)), matched against the legacy `x5t` header.
    pub x5t_sha1: Option<String>,
}

/// A self-signed RSA-2048 certificate (SHA-256 with RSA, `CN=<common name>`, a CA certificate
/// as `openssl req -x509` makes one, valid two days) and its key.
#[derive(Clone, Debug)]
pub struct TestCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_key_pem: String,
    /// The public key, SPKI PEM.
    pub public_key_pem: String,
    /// base64url(SHA-256(DER)), computed with the `sha2` crate ([`x5t_s256`]).
    pub x5t_s256: String,
    /// base64url(SHA-1(DER)).
    pub x5t_sha1: String,
    /// The SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` shows it (upper-case hex
    /// without colons). Computed with `ring` over the DER read back from [`Self::cert_pem`], a
    /// path independent of [`Self::x5t_s256`]'s, to cross-check it. (The name is from when the
    /// `openssl` command made these certificates.)
    pub openssl_sha256_hex: String,
}

impl TestCertificate {
    /// Generates a fresh key and certificate (`CN=<common_name>`, valid 2 days).
    pub fn generate(common_name: &str) -> Self {
        let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("RSA-2048 key");
        let pkcs8 = key.to_pkcs8_der().expect("PKCS#8 DER of the RSA key");
        let private_key_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("PKCS#8 PEM of the RSA key")
            .to_string();
        let public_key_pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("SPKI PEM of the RSA key");
        let signing_key = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8.as_bytes()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .expect("rcgen RSA key pair");
        // `openssl req -x509` with the default configuration's v3_ca section: basicConstraints
        // CA:TRUE (critical), subject and authority key identifiers.
        let mut params = base_params(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params
            .self_signed(&signing_key)
            .expect("self-signed certificate");
        let cert_pem = cert.pem();
        let cert_der = cert.der().to_vec();
        let reread = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("certificate PEM");
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &reread);
        let sha256 = ring::digest::digest(&ring::digest::SHA256, &reread);
        Self {
            x5t_s256: x5t_s256(&cert_der),
            x5t_sha1: URL_SAFE_NO_PAD.encode(sha1.as_ref()),
            openssl_sha256_hex: hex_upper(sha256.as_ref()),
            cert_pem,
            cert_der,
            private_key_pem,
            public_key_pem,
        }
    }

    /// What an app registration stores of this certificate.
    pub fn registered(&self) -> RegisteredCertificate {
        RegisteredCertificate {
            der: self.cert_der.clone(),
            public_key_pem: self.public_key_pem.clone(),
            x5t_s256: self.x5t_s256.clone(),
            x5t_sha1: Some(self.x5t_sha1.clone()),
        }
    }
}

/// `x5t#S256` of a DER certificate: base64url (no padding) of its SHA-256.
pub fn x5t_s256(cert_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(cert_der))
}

/// A hex thumbprint (as the portal shows it) in `x5t` form: base64url of the bytes.
pub fn x5t_from_hex(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex thumbprint"))
        .collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Upper-case hex without separators.
pub(super) fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// `CN=<common_name>`, valid from now for [`VALIDITY`], a random positive serial, with an
/// authority key identifier; no SAN, not a CA (callers set the rest).
fn base_params(common_name: &str) -> CertificateParams {
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).expect("random serial number");
    serial[0] &= 0x7f;
    serial_params(common_name, SerialNumber::from_slice(&serial))
}

fn serial_params(common_name: &str, serial: SerialNumber) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + VALIDITY;
    params.serial_number = Some(serial);
    params.use_authority_key_identifier_extension = true;
    params
}

/// A throwaway certificate authority (EC P-256 key, `CN=<name>`, basicConstraints CA:TRUE and
/// keyUsage keyCertSign, cRLSign, both critical, valid two days). Its certificate, what a
/// client is told to trust, is a PEM file in a temporary folder that goes away with it.
pub struct TestCa {
    /// Holds [`Self::cert_path`]; removed on drop.
    _dir: tempfile::TempDir,
    /// The CA certificate file (PEM).
    pub cert_path: PathBuf,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    serial: AtomicU32,
}

/// A server certificate and its key (PEM), issued by a [`TestCa`].
#[derive(Clone)]
pub struct ServerCert {
    /// The certificate chain (leaf first, then the CA).
    pub chain_pem: Vec<u8>,
    /// The private key.
    pub key_pem: Vec<u8>,
}

impl TestCa {
    /// A new CA named `name`, its certificate in a fresh folder under the system's temporary
    /// folder.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("userphoto-test-ca-")
            .tempdir()
            .expect("CA folder");
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut params = base_params(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        let cert_pem = cert.pem();
        let cert_path = dir.path().join("ca.pem");
        std::fs::write(&cert_path, &cert_pem).expect("write the CA certificate");
        Self {
            _dir: dir,
            cert_path,
            cert_pem,
            issuer: Issuer::new(params, key),
            serial: AtomicU32::new(1),
        }
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> Vec<u8> {
        self.cert_pem.clone().into_bytes()
    }

    /// A server certificate for these DNS names and IP addresses (subjectAltName): EC P-256,
    /// `CN=` the first name (or address), basicConstraints CA:FALSE and keyUsage
    /// digitalSignature (critical), extendedKeyUsage serverAuth, valid two days.
    pub fn issue(&self, dns: &[&str], ips: &[&str]) -> ServerCert {
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("server key");
        let cn = dns.first().or(ips.first()).unwrap_or(&"server");
        let mut params = serial_params(cn, SerialNumber::from_slice(&n.to_be_bytes()));
        let mut san: Vec<SanType> = dns
            .iter()
            .map(|d| SanType::DnsName((*d).try_into().expect("DNS name (IA5)")))
            .collect();
        san.extend(
            ips.iter()
                .map(|i| SanType::IpAddress(i.parse::<IpAddr>().expect("IP address"))),
        );
        params.subject_alt_names = san;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        let mut chain_pem = cert.pem().into_bytes();
        chain_pem.extend(self.cert_pem());
        ServerCert {
            chain_pem,
            key_pem: key.serialize_pem().into_bytes(),
        }
    }
}
