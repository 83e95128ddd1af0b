//! Certificates made at test time with rcgen: a private CA with a leaf certificate for
//! 127.0.0.1/localhost (CA:FALSE, serverAuth: rustls refuses a CA certificate as a
//! server certificate), and the token issuer's self-signed RSA certificate.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::HarnessError;

/// A private CA and a server certificate it signed.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// The CA certificate (PEM): what clients must trust.
    pub ca_pem: String,
    /// The server certificate (PEM).
    pub server_cert_pem: String,
    /// The server key (PKCS#8 PEM).
    pub server_key_pem: String,
}

/// Makes a fresh CA and a leaf for `127.0.0.1`, `::1` and `localhost`.
pub fn make_tls() -> Result<TlsMaterial, HarnessError> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "kiln test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;

    let mut leaf = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "::1".to_string(),
        "localhost".to_string(),
    ])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key)?;
    Ok(TlsMaterial {
        ca_pem: ca_cert.pem(),
        server_cert_pem: leaf_cert.pem(),
        server_key_pem: leaf_key.serialize_pem(),
    })
}

/// The token issuer's RSA key (a fixed test-only key, tests/testdata) and a fresh
/// self-signed certificate for it (the registry's `rootcertbundle`, and the JWT `x5c`).
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    /// The issuer name (`iss`).
    pub issuer: String,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER (for `x5c`).
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER (for signing with ring).
    pub key_pkcs8_der: Vec<u8>,
}

/// A test-only RSA-2048 key: generating one at test time in a debug build is slow, and
/// ring (which signs here) cannot generate RSA keys.
pub const TOKEN_SIGNING_KEY_PEM: &str = include_str!("../testdata/token-signing-key.pem");

/// Makes the token issuer's certificate.
pub fn make_token_issuer(issuer: &str) -> Result<TokenIssuer, HarnessError> {
    let key = KeyPair::from_pem_and_sign_algo(TOKEN_SIGNING_KEY_PEM, &rcgen::PKCS_RSA_SHA256)?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, issuer);
    let cert = p.self_signed(&key)?;
    Ok(TokenIssuer {
        issuer: issuer.to_string(),
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pkcs8_der: key.serialize_der(),
    })
}
