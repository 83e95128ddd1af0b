//! The key and the certificate: an RSA key (e = 65537) generated from the OS RNG (inside
//! the enclave, Gramine's RDRAND-backed `getrandom`), and an X.509 v3 certificate
//! self-signed with it (sha256WithRSAEncryption): CN and dNSName = subject, a random
//! 16-byte serial, valid from one hour ago for 365 days, `basicConstraints CA:FALSE`,
//! `keyUsage digitalSignature, keyEncipherment`, `extKeyUsage serverAuth, clientAuth`,
//! and, when given, the SGX quote as a non-critical extension [`QUOTE_OID`] (Gramine
//! RA-TLS's legacy quote extension; see [`crate::attest`] for what the quote binds).

use std::time::{Duration, SystemTime};

use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::sha2::{Digest as _, Sha256};
use rsa::PrivateKey;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::der::asn1::{Any, Ia5String, OctetString, Utf8StringRef};
use x509_cert::der::oid::db::rfc4519::CN;
use x509_cert::der::oid::db::rfc5280::{ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH};
use x509_cert::der::oid::{AssociatedOid, ObjectIdentifier};
use x509_cert::der::{Decode, Encode, EncodePem};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
};
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};
use x509_cert::{attr::AttributeTypeAndValue, certificate::TbsCertificate, Certificate};
use zeroize_shim::Zeroizing;

/// Gramine RA-TLS's (legacy, non-standard) X.509 extension for a raw SGX quote:
/// `1.2.840.113741.1337.6` (tools/sgx/ra-tls, `g_quote_oid`).
pub const QUOTE_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1337.6");

/// How long before "now" the certificate becomes valid (clock skew).
pub const BACKDATE: Duration = Duration::from_secs(3600);
/// How long the certificate is valid after "now".
pub const LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a key or certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// RSA key generation failed.
    #[error("generating a {bits}-bit RSA key: {reason}")]
    KeyGen {
        /// The size asked for.
        bits: u32,
        /// What failed.
        reason: String,
    },
    /// Encoding the key (PKCS#8 / SubjectPublicKeyInfo) failed.
    #[error("encoding the key: {0}")]
    KeyEncoding(String),
    /// Building or encoding the certificate failed.
    #[error("building the certificate: {0}")]
    Build(String),
    /// The RNG failed.
    #[error("random number generator: {0}")]
    Rng(String),
}

mod zeroize_shim {
    //! A private-key PEM wrapper that wipes its bytes on drop (rsa's `Zeroizing`).
    pub use rsa::pkcs8::der::zeroize::Zeroizing;
}

/// A freshly generated key with its encodings.
pub struct KeyMaterial {
    /// The private key.
    pub key: PrivateKey,
    /// The key as unencrypted PKCS#8 PEM (`PRIVATE KEY`), wiped on drop.
    pub pkcs8_pem: Zeroizing<String>,
    /// The public key's SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("spki_der", &self.spki_der.len())
            .finish_non_exhaustive()
    }
}

/// Generates an RSA key of `bits` bits from the OS RNG.
pub fn generate_key(bits: u32) -> Result<KeyMaterial, CertError> {
    let key =
        PrivateKey::new(&mut getrandom::SysRng, bits as usize).map_err(|e| CertError::KeyGen {
            bits,
            reason: e.to_string(),
        })?;
    key_material(key)
}

/// Encodes a key.
pub fn key_material(key: PrivateKey) -> Result<KeyMaterial, CertError> {
    let pkcs8_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| CertError::KeyEncoding(e.to_string()))?;
    let spki_der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| CertError::KeyEncoding(e.to_string()))?
        .into_vec();
    Ok(KeyMaterial {
        key,
        pkcs8_pem,
        spki_der,
    })
}

/// The 64 bytes written to `/dev/attestation/user_report_data`: SHA-256 of the
/// SubjectPublicKeyInfo DER, zero-padded (Gramine RA-TLS's convention: its verifier
/// compares the first 32 bytes of the quote's REPORTDATA with this hash).
pub fn report_data(spki_der: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&Sha256::digest(spki_der));
    out
}

/// The subject name `CN=<subject>` (UTF8String).
pub fn subject_name(subject: &str) -> Result<Name, CertError> {
    let b = |e: x509_cert::der::Error| CertError::Build(format!("subject `{subject}`: {e}"));
    let value = Any::encode_from(&Utf8StringRef::new(subject).map_err(b)?).map_err(b)?;
    let rdn = RelativeDistinguishedName::try_from(vec![AttributeTypeAndValue { oid: CN, value }])
        .map_err(b)?;
    let mut seq = RdnSequence::default();
    seq.push(rdn);
    Name::from_der(&seq.to_der().map_err(b)?).map_err(b)
}

/// A self-signed profile: issuer = subject, no default extensions.
struct SelfSigned(Name);

impl BuilderProfile for SelfSigned {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }
    fn get_subject(&self) -> Name {
        self.0.clone()
    }
    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(Vec::new())
    }
}

fn extension<T: Encode>(
    oid: ObjectIdentifier,
    critical: bool,
    value: &T,
) -> Result<Extension, CertError> {
    let der = value
        .to_der()
        .map_err(|e| CertError::Build(format!("extension {oid}: {e}")))?;
    raw_extension(oid, critical, der)
}

fn raw_extension(
    oid: ObjectIdentifier,
    critical: bool,
    der: Vec<u8>,
) -> Result<Extension, CertError> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(der)
            .map_err(|e| CertError::Build(format!("extension {oid}: {e}")))?,
    })
}

/// A random positive 16-byte serial number.
fn random_serial() -> Result<SerialNumber, CertError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| CertError::Rng(e.to_string()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01 << 6; // positive, 16 significant bytes
    SerialNumber::new(&bytes).map_err(|e| CertError::Build(format!("serial: {e}")))
}

/// Builds the self-signed certificate for `key` at time `now`, with `quote` (if any) in
/// the [`QUOTE_OID`] extension.
pub fn build_certificate(
    key: &KeyMaterial,
    subject: &str,
    now: SystemTime,
    quote: Option<&[u8]>,
) -> Result<Certificate, CertError> {
    let b = |what: &str, e: &dyn std::fmt::Display| CertError::Build(format!("{what}: {e}"));
    let not_before = now.checked_sub(BACKDATE).unwrap_or(now);
    let not_after = now
        .checked_add(LIFETIME)
        .ok_or_else(|| CertError::Build("validity: time overflow".into()))?;
    let validity = Validity::new(
        Time::try_from(not_before).map_err(|e| b("notBefore", &e))?,
        Time::try_from(not_after).map_err(|e| b("notAfter", &e))?,
    );
    let spki =
        SubjectPublicKeyInfoOwned::from_der(&key.spki_der).map_err(|e| b("public key", &e))?;
    let mut builder = CertificateBuilder::new(
        SelfSigned(subject_name(subject)?),
        random_serial()?,
        validity,
        spki,
    )
    .map_err(|e| b("builder", &e))?;
    let mut exts = vec![
        extension(
            BasicConstraints::OID,
            true,
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
        )?,
        extension(
            KeyUsage::OID,
            true,
            &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
        )?,
        extension(
            ExtendedKeyUsage::OID,
            false,
            &ExtendedKeyUsage(vec![ID_KP_SERVER_AUTH, ID_KP_CLIENT_AUTH]),
        )?,
    ];
    // A dNSName is IA5 (ASCII); a non-ASCII subject stays in the CN only.
    if let Ok(dns) = Ia5String::new(subject) {
        exts.push(extension(
            SubjectAltName::OID,
            false,
            &SubjectAltName(vec![GeneralName::DnsName(dns)]),
        )?);
    }
    if let Some(q) = quote {
        exts.push(raw_extension(QUOTE_OID, false, q.to_vec())?);
    }
    for e in exts {
        builder.add_extension(e).map_err(|e| b("extension", &e))?;
    }
    let signer = SigningKey::<Sha256>::new(key.key.clone());
    builder
        .build::<_, rsa::pkcs1v15::Signature>(&signer)
        .map_err(|e| b("signing", &e))
}

/// A certificate signing request for MANAGER_CA: PKCS#10 with subject `CN=<subject>`, a
/// subjectAltName dNSName `<subject>` in its extension request (when the subject is
/// ASCII), the key's SubjectPublicKeyInfo, signed sha256WithRSAEncryption with the key.
/// Returns the PEM (`CERTIFICATE REQUEST`) and the request's SubjectPublicKeyInfo DER
/// (what the quote's report data must hash, [`report_data`]).
pub fn build_csr(key: &KeyMaterial, subject: &str) -> Result<(String, Vec<u8>), CertError> {
    use x509_cert::builder::RequestBuilder;
    let b = |what: &str, e: &dyn std::fmt::Display| CertError::Build(format!("CSR {what}: {e}"));
    let mut builder = RequestBuilder::new(subject_name(subject)?).map_err(|e| b("builder", &e))?;
    if let Ok(dns) = Ia5String::new(subject) {
        builder
            .add_extension((false, &SubjectAltName(vec![GeneralName::DnsName(dns)])))
            .map_err(|e| b("subjectAltName", &e))?;
    }
    let signer = SigningKey::<Sha256>::new(key.key.clone());
    let req = builder
        .build::<_, rsa::pkcs1v15::Signature>(&signer)
        .map_err(|e| b("signing", &e))?;
    let spki = req
        .info
        .public_key
        .to_der()
        .map_err(|e| b("public key", &e))?;
    let pem = req.to_pem(LineEnding::LF).map_err(|e| b("PEM", &e))?;
    Ok((pem, spki))
}

/// The certificate as PEM (`CERTIFICATE`).
pub fn to_pem(cert: &Certificate) -> Result<String, CertError> {
    cert.to_pem(LineEnding::LF)
        .map_err(|e| CertError::Build(format!("PEM: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::VerifyingKey;
    use rsa::signature::Verifier as _;
    use rsa::traits::PublicKeyParts as _;
    use x509_cert::der::DecodePem;

    fn key() -> KeyMaterial {
        generate_key(2048).unwrap()
    }

    fn ext(c: &Certificate, oid: ObjectIdentifier) -> Option<&Extension> {
        c.tbs_certificate()
            .extensions()
            .and_then(|e| e.iter().find(|x| x.extn_id == oid))
    }

    #[test]
    fn builds_a_self_signed_certificate_that_verifies() {
        let k = key();
        assert_eq!(k.key.size(), 256);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let cert = build_certificate(&k, "app.example", now, Some(b"QUOTE")).unwrap();
        let pem = to_pem(&cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        let back = Certificate::from_pem(pem.as_bytes()).unwrap();
        let der = back.to_der().unwrap();
        let back = Certificate::from_der(&der).unwrap();
        let tbs = back.tbs_certificate();

        assert_eq!(tbs.subject().to_string(), "CN=app.example");
        assert_eq!(tbs.issuer(), tbs.subject());
        assert_eq!(
            tbs.subject().common_name().unwrap().unwrap().value(),
            "app.example"
        );
        let v = tbs.validity();
        assert_eq!(v.not_before.to_system_time(), now - BACKDATE);
        assert_eq!(v.not_after.to_system_time(), now + LIFETIME);
        assert_eq!(tbs.serial_number().as_bytes().len(), 16);

        let san = ext(&back, SubjectAltName::OID).unwrap();
        let san = SubjectAltName::from_der(san.extn_value.as_bytes()).unwrap();
        assert_eq!(
            san.0,
            vec![GeneralName::DnsName(Ia5String::new("app.example").unwrap())]
        );
        let bc = ext(&back, BasicConstraints::OID).unwrap();
        assert!(bc.critical);
        assert!(
            !BasicConstraints::from_der(bc.extn_value.as_bytes())
                .unwrap()
                .ca
        );
        let ku = ext(&back, KeyUsage::OID).unwrap();
        let ku = KeyUsage::from_der(ku.extn_value.as_bytes()).unwrap();
        assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
        let eku = ext(&back, ExtendedKeyUsage::OID).unwrap();
        let eku = ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()).unwrap();
        assert_eq!(eku.0, vec![ID_KP_SERVER_AUTH, ID_KP_CLIENT_AUTH]);
        let q = ext(&back, QUOTE_OID).unwrap();
        assert!(!q.critical);
        assert_eq!(q.extn_value.as_bytes(), b"QUOTE");

        // The certificate's key is ours and its signature verifies with it.
        assert_eq!(tbs.subject_public_key_info().to_der().unwrap(), k.spki_der);
        let vk = VerifyingKey::<Sha256>::new(k.key.to_public_key());
        let sig = rsa::pkcs1v15::Signature::try_from(back.signature().raw_bytes()).unwrap();
        vk.verify(&tbs.to_der().unwrap(), &sig).unwrap();
        // ... and not over anything else.
        let mut other = tbs.to_der().unwrap();
        let last = other.len() - 1;
        other[last] ^= 1;
        assert!(vk.verify(&other, &sig).is_err());
    }

    #[test]
    fn without_a_quote_there_is_no_quote_extension_and_odd_subjects_work() {
        let k = key();
        let cert = build_certificate(&k, "Zürich, \"db\"+1", SystemTime::now(), None).unwrap();
        assert!(ext(&cert, QUOTE_OID).is_none());
        // Not IA5: no SAN, the CN is kept verbatim.
        assert!(ext(&cert, SubjectAltName::OID).is_none());
        assert_eq!(
            cert.tbs_certificate()
                .subject()
                .common_name()
                .unwrap()
                .unwrap()
                .value(),
            "Zürich, \"db\"+1"
        );
    }

    #[test]
    fn the_csr_names_the_subject_and_is_signed_by_the_key() {
        use x509_cert::request::{CertReq, ExtensionReq};
        let k = key();
        let (pem, spki) = build_csr(&k, "app.example.com").unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
        assert_eq!(spki, k.spki_der);
        let req = CertReq::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(req.info.subject.to_string(), "CN=app.example.com");
        assert_eq!(req.algorithm.oid.to_string(), "1.2.840.113549.1.1.11");
        let ext_req = req
            .info
            .attributes
            .iter()
            .find(|a| a.oid == ExtensionReq::OID)
            .unwrap();
        let ext_req: ExtensionReq = ext_req.values.get(0).unwrap().decode_as().unwrap();
        let san = ext_req
            .0
            .iter()
            .find(|e| e.extn_id == SubjectAltName::OID)
            .unwrap();
        let san = SubjectAltName::from_der(san.extn_value.as_bytes()).unwrap();
        assert_eq!(
            san.0,
            vec![GeneralName::DnsName(
                Ia5String::new("app.example.com").unwrap()
            )]
        );
        let vk = VerifyingKey::<Sha256>::new(k.key.to_public_key());
        let sig = rsa::pkcs1v15::Signature::try_from(req.signature.raw_bytes()).unwrap();
        vk.verify(&req.info.to_der().unwrap(), &sig).unwrap();
    }

    #[test]
    fn key_is_pkcs8_and_report_data_hashes_the_spki() {
        use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
        let k = key();
        assert!(k.pkcs8_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = PrivateKey::from_pkcs8_pem(&k.pkcs8_pem).unwrap();
        assert_eq!(back, k.key);
        assert!(rsa::PublicKey::from_public_key_der(&k.spki_der).is_ok());
        let rd = report_data(&k.spki_der);
        assert_eq!(&rd[..32], Sha256::digest(&k.spki_der).as_slice());
        assert_eq!(rd[32..], [0u8; 32]);
    }
}
