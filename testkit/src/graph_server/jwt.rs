//! JWTs of the certificate credential: making client assertions for tests (header, claims,
//! RS256/PS256 signatures with the `rsa` crate) and checking them at the token endpoint
//! (contract 4.2), independently of any JWT code in the library under test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use serde_json::{json, Map, Value};

use super::certs::{hex_upper, TestCertificate};
use super::config::AppRegistration;
use super::time::{iso_datetime, new_guid, unix_secs};

/// Signature algorithm of a client assertion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssertionAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (older doc, many clients).
    Rs256,
    /// RSASSA-PSS with SHA-256, salt = 32 bytes (current doc).
    Ps256,
}

/// Which thumbprint the assertion header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThumbprintHeader {
    /// `x5t#S256` (current doc).
    S256,
    /// `x5t` (SHA-1, older doc).
    Sha1,
    /// Neither.
    None,
}

/// The JOSE header of a client assertion for `cert`.
pub fn assertion_header(
    cert: &TestCertificate,
    alg: AssertionAlg,
    thumb: ThumbprintHeader,
) -> Value {
    let mut h = Map::new();
    h.insert(
        "alg".into(),
        json!(match alg {
            AssertionAlg::Rs256 => "RS256",
            AssertionAlg::Ps256 => "PS256",
        }),
    );
    h.insert("typ".into(), json!("JWT"));
    match thumb {
        ThumbprintHeader::S256 => {
            h.insert("x5t#S256".into(), json!(cert.x5t_s256));
        }
        ThumbprintHeader::Sha1 => {
            h.insert("x5t".into(), json!(cert.x5t_sha1));
        }
        ThumbprintHeader::None => {}
    }
    Value::Object(h)
}

/// Standard assertion claims: `aud`, `iss` = `sub` = client id, a fresh `jti`, `nbf` = `iat` =
/// now, `exp` = now + 10 min.
pub fn assertion_claims(client_id: &str, audience: &str) -> Value {
    let now = unix_secs(SystemTime::now());
    json!({
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": new_guid(),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    })
}

/// Signs `header.claims` with a PKCS#8 PEM RSA key, by the header's `alg` (RS256 or PS256).
pub fn sign_jwt(header: &Value, claims: &Value, private_key_pem: &str) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));
    let input = format!("{}.{}", enc(header), enc(claims));
    let key = rsa::PrivateKey::from_pkcs8_pem(private_key_pem).expect("PKCS#8 RSA key");
    let sig: Vec<u8> = match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => rsa::pkcs1v15::SigningKey::<Sha256>::new(key)
            .sign(input.as_bytes())
            .to_vec(),
        Some("PS256") => rsa::pss::SigningKey::<Sha256>::new(key)
            .sign(input.as_bytes())
            .to_vec(),
        other => panic!("sign_jwt: unsupported alg {other:?}"),
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// A valid client assertion for `client_id` at `token_url`, signed by `cert`'s key.
pub fn client_assertion(
    cert: &TestCertificate,
    client_id: &str,
    token_url: &str,
    alg: AssertionAlg,
) -> String {
    sign_jwt(
        &assertion_header(cert, alg, ThumbprintHeader::S256),
        &assertion_claims(client_id, token_url),
        &cert.private_key_pem,
    )
}

const ASSERTION_DOC: &str = "Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .";

/// Checks a client assertion (contract 4.2): compact JWS, `alg` RS256 or PS256, `x5t#S256` (or
/// legacy `x5t`) naming a registered certificate, a valid signature by that certificate's key,
/// `iss` = `sub` = client id, `aud` = the token endpoint, `exp`/`nbf` around now, `jti` present.
/// Returns the `jti`, or the AADSTS code and message.
pub(super) fn verify_assertion(
    jwt: &str,
    app: &AppRegistration,
    audiences: &[String],
    skew: Duration,
) -> Result<String, (u32, String)> {
    let malformed = |why: &str| (50027, format!("JWT token is invalid or malformed. {why}"));
    let parts: Vec<&str> = jwt.trim().split('.').collect();
    if parts.len() != 3 {
        return Err(malformed("It is not a compact JWS."));
    }
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p.trim_end_matches('='));
    let header: Value = decode(parts[0])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| malformed("The header is not base64url JSON."))?;
    let claims: Value = decode(parts[1])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| malformed("The payload is not base64url JSON."))?;
    let signature = decode(parts[2]).map_err(|_| malformed("The signature is not base64url."))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let s256 = header.get("x5t#S256").and_then(Value::as_str);
    let sha1 = header.get("x5t").and_then(Value::as_str);
    let cert = app.certificates.iter().find(|c| {
        s256.is_some_and(|t| t == c.x5t_s256)
            || sha1.is_some_and(|t| c.x5t_sha1.as_deref() == Some(t))
    });
    let Some(cert) = cert else {
        let thumb = s256
            .or(sha1)
            .and_then(|t| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')).ok())
            .map(|b| hex_upper(&b))
            .unwrap_or_default();
        return Err((
            700027,
            format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumb}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]", app.client_id),
        ));
    };
    let key = rsa::PublicKey::from_public_key_pem(&cert.public_key_pem)
        .map_err(|_| malformed("The registered certificate has no RSA key."))?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    let valid = match alg {
        "RS256" => rsa::pkcs1v15::Signature::try_from(signature.as_slice())
            .map(|s| {
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key)
                    .verify(signed.as_bytes(), &s)
                    .is_ok()
            })
            .unwrap_or(false),
        "PS256" => rsa::pss::Signature::try_from(signature.as_slice())
            .map(|s| {
                rsa::pss::VerifyingKey::<Sha256>::new(key)
                    .verify(signed.as_bytes(), &s)
                    .is_ok()
            })
            .unwrap_or(false),
        other => {
            return Err(malformed(&format!(
                "Unsupported signing algorithm '{other}'."
            )))
        }
    };
    if !valid {
        return Err((
            700027,
            "Client assertion failed signature validation.".to_string(),
        ));
    }
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let number = |k: &str| claims.get(k).and_then(Value::as_f64);
    let mut missing = Vec::new();
    for k in ["aud", "iss", "sub", "jti"] {
        if text(k).is_none_or(|v| v.is_empty()) {
            missing.push(k);
        }
    }
    for k in ["exp", "nbf"] {
        if number(k).is_none() {
            missing.push(k);
        }
    }
    if !missing.is_empty() {
        return Err(malformed(&format!(
            "Missing claim(s): {}.",
            missing.join(", ")
        )));
    }
    let (aud, iss, sub) = (
        text("aud").unwrap_or_default(),
        text("iss").unwrap_or_default(),
        text("sub").unwrap_or_default(),
    );
    if !iss.eq_ignore_ascii_case(&app.client_id) || !sub.eq_ignore_ascii_case(&app.client_id) {
        return Err((
            700021,
            format!("Client assertion application identifier doesn't match 'client_id' parameter. {ASSERTION_DOC}"),
        ));
    }
    if !audiences.iter().any(|a| a.eq_ignore_ascii_case(&aud)) {
        return Err((
            700023,
            format!("Client assertion audience claim does not match Realm issuer. {ASSERTION_DOC}"),
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let (exp, nbf) = (number("exp").unwrap_or(0.0), number("nbf").unwrap_or(0.0));
    let skew = skew.as_secs_f64();
    if now >= exp + skew || now + skew < nbf {
        let at = |t: f64| iso_datetime(UNIX_EPOCH + Duration::from_secs(t.max(0.0) as u64));
        return Err((
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. {ASSERTION_DOC}",
                at(now),
                at(nbf),
                at(exp)
            ),
        ));
    }
    Ok(text("jti").unwrap_or_default())
}
