//! MANAGER_CA issuance: an operator's CA signs a certificate for an enclave's key only
//! when the enclave proves, with an SGX quote, that it is an approved build.
//!
//! Sans-I/O (natively and in the worker): the caller brings the CSR, the evidence (a
//! quote, or an RA-TLS certificate carrying one), the collateral, the policy, the approval
//! record it found for the quote's MRENCLAVE, the CA key and certificate, the requested
//! subject and the time. [`issue`] checks, in this order, and refuses at the first
//! failure naming it ([`IssueError::Refused`]`.check`):
//!
//! | check | passes when |
//! |---|---|
//! | `csr` | the CSR's self-signature verifies with its own key (proof that the requester holds the key): ECDSA P-256 with ecdsa-with-SHA256, or RSA ([`MIN_CSR_RSA_BITS`]..=[`MAX_CSR_RSA_BITS`] bits, kiln-init's keys) with sha256WithRSAEncryption (PKCS#1 v1.5) |
//! | `quote/…` | [`super::verify_evidence`] passes every check under the policy (`quote-signature`, `collateral-time`, `tcb-status`, `debug`, and for certificates `report-data-binding`); debug enclaves are refused whatever the policy says |
//! | `key-binding` | the quote's REPORTDATA starts with SHA-256 of the CSR's SubjectPublicKeyInfo DER (as RA-TLS binds a certificate's key); for an RA-TLS certificate, the CSR's key is the certificate's key |
//! | `approval` | a record exists for the quote's MRENCLAVE (its `mrenclave` or `mrenclave2`) and is `approved` (not `pending`, not `revoked`) |
//! | `mrsigner`, `isv-prod-id`, `isv-svn` | the quote's values are the record's |
//! | `subject` | the requested subject is a DNS name the record allows |
//! | `lifetime` | the requested lifetime is at most the configured maximum |
//!
//! The leaf keeps the CSR's SubjectPublicKeyInfo whatever its type and is signed by the
//! CA key (ECDSA P-256 SHA-256): subject `CN=<subject>`, SAN
//! DNS `<subject>`, CA:FALSE, key usage digitalSignature, extended key usage serverAuth
//! and clientAuth, subject and authority key identifiers, valid from a minute before
//! `now` for the lifetime (default [`DEFAULT_LIFETIME_SECS`], never past the CA's
//! notAfter). X.509 is read with `x509-cert`/`der` and the leaf written with x509-cert's
//! `CertificateBuilder`;
//! signatures are RustCrypto's `p256` (deterministic RFC 6979, so no RNG is needed).

use std::str::FromStr as _;

use der::asn1::{GeneralizedTime, Ia5String, OctetString};
use der::oid::db::rfc5280::{ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH};
use der::oid::AssociatedOid;
use der::{Decode as _, DecodePem as _, Encode};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder as _, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::request::CertReq;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfo, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

/// The CA's signature, DER-encoded as X.509 carries it.
type DerSignature = p256::ecdsa::DerSignature;

use super::{
    read_evidence, verify_evidence, AttestPolicy, AttestReport, QuoteCollateralV3, TrustRoot,
};
use crate::verify::CheckStatus;

/// Default leaf lifetime: 24 hours.
pub const DEFAULT_LIFETIME_SECS: u64 = 24 * 3600;
/// Default upper bound on a requested lifetime: 7 days.
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 7 * 24 * 3600;
/// Largest CSR read.
pub const MAX_CSR_BYTES: usize = 64 * 1024;

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
/// Smallest RSA key a CSR may carry, in bits (kiln-init's smallest `keySize`).
pub const MIN_CSR_RSA_BITS: usize = 2048;
/// Largest RSA key a CSR may carry, in bits (kiln-init's largest `keySize`).
pub const MAX_CSR_RSA_BITS: usize = 16384;

/// Where an enclave build stands with the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    /// Recorded (at conversion, or registered), not yet approved: no certificates.
    Pending,
    /// Approved: certificates are issued.
    Approved,
    /// Revoked: no more certificates.
    Revoked,
}

/// What the operator approved: one converted image's enclaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    /// The record's id.
    pub id: String,
    /// The SGX1 enclave's MRENCLAVE, hex.
    pub mrenclave: String,
    /// The EDMM enclave's MRENCLAVE, hex, when the image has one.
    #[serde(default)]
    pub mrenclave2: Option<String>,
    /// MRSIGNER, hex.
    pub mrsigner: String,
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// ISVSVN.
    pub isv_svn: u16,
    /// The image reference it was converted as.
    #[serde(default)]
    pub image: String,
    /// The DNS names its certificates may carry (from the request's `certificates[]`).
    pub allowed_subjects: Vec<String>,
    /// Pending, approved or revoked.
    pub status: ApprovalStatus,
    /// When the record was first recorded, Unix seconds (0 in records stored before
    /// records had times).
    #[serde(default)]
    pub created_at: u64,
    /// When the record last changed (recorded, subjects or image added, approved,
    /// revoked), Unix seconds (0 in records stored before records had times).
    #[serde(default)]
    pub updated_at: u64,
}

impl ApprovalRecord {
    /// Whether `mrenclave` (hex, any case) is one of this record's enclaves.
    pub fn covers(&self, mrenclave: &str) -> bool {
        self.mrenclave.eq_ignore_ascii_case(mrenclave)
            || self
                .mrenclave2
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(mrenclave))
    }
}

/// The operator's CA: its key and certificate, and the lifetime bound.
pub struct Issuer {
    key: SigningKey,
    cert: Certificate,
    cert_der: Vec<u8>,
    cert_pem: String,
    /// The longest lifetime a request may ask for.
    pub max_lifetime_secs: u64,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Issuer")
            .field(
                "subject",
                &self.cert.tbs_certificate().subject().to_string(),
            )
            .field("max_lifetime_secs", &self.max_lifetime_secs)
            .finish_non_exhaustive()
    }
}

/// Why a certificate was not issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The CA key or certificate is unusable (the operator's configuration; the message
    /// never contains the key).
    #[error("manager CA configuration: {0}")]
    Config(String),
    /// An input is unreadable (names the field).
    #[error("{field}: {message}")]
    Input {
        /// `csr`, `evidence`, `subject`, `lifetimeSecs`.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A check failed: no certificate.
    #[error("refused by check {check}: {message}")]
    Refused {
        /// The failed check (`csr`, `quote/<id>`, `key-binding`, `approval`, `mrsigner`,
        /// `isv-prod-id`, `isv-svn`, `subject`, `lifetime`).
        check: String,
        /// Why, with the values compared.
        message: String,
    },
}

fn refused(check: &str, message: impl Into<String>) -> IssueError {
    IssueError::Refused {
        check: check.to_string(),
        message: message.into(),
    }
}

fn input(field: &'static str, message: impl Into<String>) -> IssueError {
    IssueError::Input {
        field,
        message: message.into(),
    }
}

/// What [`issue`] needs besides the issuer.
#[derive(Debug, Clone)]
pub struct IssueRequest<'a> {
    /// The CSR (PKCS#10), PEM or DER.
    pub csr: &'a [u8],
    /// A quote (binary or hex) or an RA-TLS certificate (PEM or DER).
    pub evidence: &'a [u8],
    /// The collateral for the quote.
    pub collateral: &'a QuoteCollateralV3,
    /// The verification policy (`allow_debug` is ignored: debug enclaves are refused).
    pub policy: &'a AttestPolicy,
    /// The trust root (Intel's unless a test configures its own).
    pub root: &'a TrustRoot,
    /// The approval record found for the quote's MRENCLAVE, if any.
    pub approval: Option<&'a ApprovalRecord>,
    /// The requested subject: a DNS name.
    pub subject: &'a str,
    /// The requested lifetime (default [`DEFAULT_LIFETIME_SECS`]).
    pub lifetime_secs: Option<u64>,
    /// Now, Unix seconds.
    pub now: u64,
}

/// An issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    /// The leaf, PEM.
    pub certificate: String,
    /// Leaf then CA certificate, PEM.
    pub chain: String,
    /// Serial number, hex.
    pub serial: String,
    /// notBefore, Unix seconds.
    pub not_before: u64,
    /// notAfter, Unix seconds.
    pub not_after: u64,
    /// The approval record it was issued under.
    pub approval_id: String,
    /// The enclave's verification report.
    pub report: AttestReport,
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl Issuer {
    /// The CA from its private key (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY` PEM,
    /// P-256) and certificate (PEM). The key must be the certificate's.
    pub fn new(key_pem: &str, cert_pem: &str) -> Result<Self, IssueError> {
        let key = if key_pem.contains("BEGIN EC PRIVATE KEY") {
            p256::SecretKey::from_sec1_pem(key_pem.trim())
                .map(SigningKey::from)
                .map_err(|_| {
                    IssueError::Config("the CA key is not a P-256 SEC1 EC PRIVATE KEY PEM".into())
                })?
        } else {
            SigningKey::from_pkcs8_pem(key_pem.trim()).map_err(|_| {
                IssueError::Config(
                    "the CA key is not a P-256 private key (PKCS#8 PRIVATE KEY or SEC1 EC PRIVATE KEY PEM; only ECDSA P-256 CA keys are supported)".into(),
                )
            })?
        };
        let cert = Certificate::from_pem(cert_pem.trim()).map_err(|e| {
            IssueError::Config(format!("the CA certificate is not a PEM certificate: {e}"))
        })?;
        let cert_der = cert
            .to_der()
            .map_err(|e| IssueError::Config(format!("the CA certificate: {e}")))?;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| IssueError::Config(format!("the CA certificate's key: {e}")))?;
        let cert_key = VerifyingKey::from_public_key_der(&spki).map_err(|_| {
            IssueError::Config("the CA certificate's key is not an ECDSA P-256 key".into())
        })?;
        if &cert_key != key.verifying_key() {
            return Err(IssueError::Config(
                "the CA key is not the CA certificate's key".into(),
            ));
        }
        Ok(Self {
            key,
            cert_pem: pem_block("CERTIFICATE", &cert_der),
            cert,
            cert_der,
            max_lifetime_secs: DEFAULT_MAX_LIFETIME_SECS,
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.cert_der
    }
}

/// The CSR's SubjectPublicKeyInfo DER, after checking its self-signature.
fn verify_ecdsa_csr(spki: &[u8], info: &[u8], sig: &[u8]) -> Result<(), IssueError> {
    let vk = VerifyingKey::from_public_key_der(spki)
        .map_err(|_| refused("csr", "the CSR's key is not an ECDSA P-256 key"))?;
    let sig = Signature::from_der(sig)
        .map_err(|_| refused("csr", "the CSR's signature is not a DER ECDSA signature"))?;
    vk.verify(info, &sig).map_err(|_| not_self_signed())
}

/// PKCS#1 v1.5 with SHA-256 over the request info, with the CSR's RSA key (modulus
/// [`MIN_CSR_RSA_BITS`]..=[`MAX_CSR_RSA_BITS`] bits, public exponent at most rsa's
/// `MAX_PUB_EXPONENT`).
fn verify_rsa_csr(req: &CertReq, info: &[u8], sig: &[u8]) -> Result<(), IssueError> {
    use rsa::pkcs1::der::Decode as _;
    use rsa::signature::Verifier as _;
    let bits = req
        .info
        .public_key
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| refused("csr", "the CSR's RSA key is not a whole number of bytes"))?;
    let pk = rsa::pkcs1::RsaPublicKeyRef::from_der(bits).map_err(|e| {
        refused(
            "csr",
            format!("the CSR's key is not a PKCS#1 RSA public key: {e}"),
        )
    })?;
    let n = pk.modulus.as_bytes();
    let e = pk.public_exponent.as_bytes();
    let width = |b: &[u8]| u32::try_from(b.len() * 8).unwrap_or(u32::MAX);
    let n_bits = n
        .iter()
        .position(|b| *b != 0)
        .map_or(0, |i| (n.len() - i) * 8 - n[i].leading_zeros() as usize);
    if !(MIN_CSR_RSA_BITS..=MAX_CSR_RSA_BITS).contains(&n_bits) {
        return Err(refused(
            "csr",
            format!(
                "the CSR's RSA key has {n_bits} bits; {MIN_CSR_RSA_BITS}..={MAX_CSR_RSA_BITS} are accepted"
            ),
        ));
    }
    let malformed = |_| refused("csr", "the CSR's RSA key is malformed");
    let key = rsa::PublicKey::new_with_size_limits(
        rsa::BoxedUint::from_be_slice(n, width(n)).map_err(malformed)?,
        rsa::BoxedUint::from_be_slice(e, width(e)).map_err(malformed)?,
        MIN_CSR_RSA_BITS..=MAX_CSR_RSA_BITS,
    )
    .map_err(|e| refused("csr", format!("the CSR's RSA key is not usable: {e}")))?;
    let sig = rsa::pkcs1v15::Signature::from_bytes_with_max_len(sig, MAX_CSR_RSA_BITS / 8)
        .map_err(|_| refused("csr", "the CSR's RSA signature is longer than its key"))?;
    rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(key)
        .verify(info, &sig)
        .map_err(|_| not_self_signed())
}

fn not_self_signed() -> IssueError {
    refused(
        "csr",
        "the CSR's signature does not verify with its own key (no proof the requester holds the key)",
    )
}

fn read_csr(csr: &[u8]) -> Result<Vec<u8>, IssueError> {
    if csr.len() > MAX_CSR_BYTES {
        return Err(input(
            "csr",
            format!(
                "{} bytes is more than the {MAX_CSR_BYTES}-byte limit",
                csr.len()
            ),
        ));
    }
    let text = std::str::from_utf8(csr).ok().map(str::trim);
    let req = match text {
        Some(t) if t.starts_with("-----BEGIN") => CertReq::from_pem(t)
            .map_err(|e| input("csr", format!("not a PEM CERTIFICATE REQUEST: {e}")))?,
        _ => CertReq::from_der(csr)
            .map_err(|e| input("csr", format!("not a DER PKCS#10 request: {e}")))?,
    };
    let spki = req
        .info
        .public_key
        .to_der()
        .map_err(|e| input("csr", format!("public key: {e}")))?;
    let info = req
        .info
        .to_der()
        .map_err(|e| input("csr", format!("request info: {e}")))?;
    let sig = req
        .signature
        .as_bytes()
        .ok_or_else(|| refused("csr", "the CSR's signature is not a whole number of bytes"))?;
    let alg = req.algorithm.oid.to_string();
    let key_alg = req.info.public_key.algorithm.oid.to_string();
    match (alg.as_str(), key_alg.as_str()) {
        (ECDSA_SHA256, EC_PUBLIC_KEY) => verify_ecdsa_csr(&spki, &info, sig)?,
        (RSA_SHA256, RSA_ENCRYPTION) => verify_rsa_csr(&req, &info, sig)?,
        _ => {
            return Err(refused(
                "csr",
                format!(
                    "the CSR must be an ECDSA P-256 key signed with ecdsa-with-SHA256 or an RSA key \
                     ({MIN_CSR_RSA_BITS}..={MAX_CSR_RSA_BITS} bits) signed with sha256WithRSAEncryption \
                     (signature algorithm {alg}, key algorithm {key_alg})"
                ),
            ))
        }
    }
    Ok(spki)
}

/// Whether `s` is a DNS name kiln issues for: labels of letters, digits and hyphens
/// (not at either end), 1..=63 bytes each, 253 in all, at least two labels; a leading
/// `*.` is not allowed.
pub fn valid_dns_name(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Checks everything and signs the leaf, or says which check refused it.
pub fn issue(issuer: &Issuer, req: &IssueRequest<'_>) -> Result<Issued, IssueError> {
    let subject = req
        .subject
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if !valid_dns_name(&subject) {
        return Err(input(
            "subject",
            format!("{:?} is not a DNS name (letters, digits, hyphens; at least two labels; no wildcards)", req.subject),
        ));
    }
    let lifetime = req.lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS);
    if lifetime == 0 {
        return Err(input("lifetimeSecs", "must be at least 1 second"));
    }

    // csr
    let spki = read_csr(req.csr)?;
    let spki_sha256: [u8; 32] = Sha256::digest(&spki).into();

    // quote
    let evidence = read_evidence(req.evidence).map_err(|e| input("evidence", e.to_string()))?;
    let policy = AttestPolicy {
        allow_debug: false,
        ..req.policy.clone()
    };
    let report = verify_evidence(&evidence, req.collateral, req.now, &policy, req.root, None)
        .map_err(|e| match e {
            super::AttestError::Policy(m) => input("policy", m),
            other => input("evidence", other.to_string()),
        })?;
    if let Some(c) = report.checks.iter().find(|c| c.status == CheckStatus::Fail) {
        return Err(refused(&format!("quote/{}", c.id), c.explanation.clone()));
    }
    let Some(enclave) = report.enclave.clone() else {
        return Err(refused("quote/tee", "not an SGX enclave quote"));
    };

    // key-binding
    match &evidence.certificate {
        Some(cert) => {
            if cert.spki_sha256 != spki_sha256 {
                return Err(refused(
                    "key-binding",
                    format!(
                        "the CSR's key (SHA-256 {}) is not the RA-TLS certificate's key (SHA-256 {})",
                        hex::encode(spki_sha256),
                        hex::encode(cert.spki_sha256)
                    ),
                ));
            }
        }
        None => {
            let rd = enclave.report_data.get(..64).unwrap_or_default();
            let want = hex::encode(spki_sha256);
            if rd != want {
                return Err(refused(
                    "key-binding",
                    format!(
                        "report data starts with {rd} but SHA-256 of the CSR's public key is {want}: the quote was not made for this key"
                    ),
                ));
            }
        }
    }

    // approval
    let Some(rec) = req.approval else {
        return Err(refused(
            "approval",
            format!("no approval record for MRENCLAVE {}", enclave.mrenclave),
        ));
    };
    if !rec.covers(&enclave.mrenclave) {
        return Err(refused(
            "approval",
            format!(
                "record {} is for MRENCLAVE {} / {}, not {}",
                rec.id,
                rec.mrenclave,
                rec.mrenclave2.as_deref().unwrap_or("-"),
                enclave.mrenclave
            ),
        ));
    }
    match rec.status {
        ApprovalStatus::Approved => {}
        ApprovalStatus::Pending => {
            return Err(refused(
                "approval",
                format!(
                    "record {} ({}) is pending: an operator has not approved it",
                    rec.id, rec.image
                ),
            ))
        }
        ApprovalStatus::Revoked => {
            return Err(refused(
                "approval",
                format!("record {} ({}) is revoked", rec.id, rec.image),
            ))
        }
    }
    // mrsigner, isv-prod-id, isv-svn: the record's values are the quote's.
    for (check, name, recorded, quoted) in [
        (
            "mrsigner",
            "MRSIGNER",
            rec.mrsigner.to_ascii_lowercase(),
            enclave.mrsigner.to_ascii_lowercase(),
        ),
        (
            "isv-prod-id",
            "ISVPRODID",
            rec.isv_prod_id.to_string(),
            enclave.isv_prod_id.to_string(),
        ),
        (
            "isv-svn",
            "ISVSVN",
            rec.isv_svn.to_string(),
            enclave.isv_svn.to_string(),
        ),
    ] {
        if recorded != quoted {
            return Err(refused(
                check,
                format!(
                    "record {} has {name} {recorded}, quote has {quoted}",
                    rec.id
                ),
            ));
        }
    }

    // subject
    if !rec.allowed_subjects.iter().any(|a| {
        a.trim()
            .trim_end_matches('.')
            .eq_ignore_ascii_case(&subject)
    }) {
        return Err(refused(
            "subject",
            format!(
                "{subject} is not one of the names record {} allows ({})",
                rec.id,
                if rec.allowed_subjects.is_empty() {
                    "none".to_string()
                } else {
                    rec.allowed_subjects.join(", ")
                }
            ),
        ));
    }

    // lifetime
    if lifetime > issuer.max_lifetime_secs {
        return Err(refused(
            "lifetime",
            format!(
                "{lifetime} s is more than the {} s maximum",
                issuer.max_lifetime_secs
            ),
        ));
    }

    let ca_not_after = issuer
        .cert
        .tbs_certificate()
        .validity()
        .not_after
        .to_unix_duration()
        .as_secs();
    let not_before = req.now.saturating_sub(60);
    let not_after = req.now.saturating_add(lifetime).min(ca_not_after);
    if not_after <= req.now {
        return Err(IssueError::Config(format!(
            "the CA certificate expired (notAfter {})",
            crate::pipeline::config::BuildTime { unix: ca_not_after }.rfc3339()
        )));
    }

    // A serial unique to this key, quote and time; positive, 16 bytes.
    let mut h = Sha256::new();
    h.update(spki_sha256);
    h.update(Sha256::digest(&evidence.quote));
    h.update(req.now.to_be_bytes());
    h.update(subject.as_bytes());
    let mut serial = h.finalize()[..16].to_vec();
    serial[0] &= 0x7f;
    serial[0] |= 0x01;

    let der = build_leaf(issuer, &spki, &subject, &serial, not_before, not_after)?;
    let certificate = pem_block("CERTIFICATE", &der);
    Ok(Issued {
        chain: format!("{certificate}{}", issuer.cert_pem),
        certificate,
        serial: hex::encode(&serial),
        not_before,
        not_after,
        approval_id: rec.id.clone(),
        report,
    })
}

/// The leaf's issuer, subject and extensions, for x509-cert's [`CertificateBuilder`].
struct LeafProfile {
    issuer: Name,
    subject: Name,
    dns_name: Ia5String,
    ca_key_id: OctetString,
}

/// An X.509 extension with its DER value.
fn extension<T: AssociatedOid + Encode>(critical: bool, value: &T) -> der::Result<Extension> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

impl BuilderProfile for LeafProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let key_id = OctetString::new(&Sha256::digest(spk.subject_public_key.raw_bytes())[..20])?;
        Ok(vec![
            extension(
                true,
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
            )?,
            extension(true, &KeyUsage(KeyUsages::DigitalSignature.into()))?,
            extension(
                false,
                &ExtendedKeyUsage(vec![ID_KP_SERVER_AUTH, ID_KP_CLIENT_AUTH]),
            )?,
            extension(
                false,
                &SubjectAltName(vec![GeneralName::DnsName(self.dns_name.clone())]),
            )?,
            extension(false, &SubjectKeyIdentifier(key_id))?,
            extension(
                false,
                &AuthorityKeyIdentifier {
                    key_identifier: Some(self.ca_key_id.clone()),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                },
            )?,
        ])
    }
}

/// The leaf certificate's DER, signed by the CA key.
fn build_leaf(
    issuer: &Issuer,
    spki: &[u8],
    subject: &str,
    serial: &[u8],
    not_before: u64,
    not_after: u64,
) -> Result<Vec<u8>, IssueError> {
    let config = |what: &str| {
        let what = what.to_string();
        move |e: der::Error| IssueError::Config(format!("{what}: {e}"))
    };
    let ca_tbs = issuer.cert.tbs_certificate();
    let ca_key_id = ca_tbs
        .extensions()
        .into_iter()
        .flatten()
        .find(|e| e.extn_id == SubjectKeyIdentifier::OID)
        .and_then(|e| OctetString::from_der(e.extn_value.as_bytes()).ok())
        .map(Ok)
        .unwrap_or_else(|| {
            OctetString::new(
                &Sha256::digest(
                    ca_tbs
                        .subject_public_key_info()
                        .subject_public_key
                        .raw_bytes(),
                )[..20],
            )
        })
        .map_err(config("the CA's key identifier"))?;
    let profile = LeafProfile {
        issuer: ca_tbs.subject().clone(),
        subject: Name::from_str(&format!("CN={subject}"))
            .map_err(|e| input("subject", e.to_string()))?,
        dns_name: Ia5String::new(subject).map_err(|e| input("subject", e.to_string()))?,
        ca_key_id,
    };
    let spki = SubjectPublicKeyInfo::from_der(spki)
        .map_err(|e| input("csr", format!("public key: {e}")))?;
    let time = |unix: u64| {
        // The builder writes UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280).
        GeneralizedTime::from_unix_duration(core::time::Duration::from_secs(unix))
            .map(Time::GeneralTime)
            .map_err(|e| IssueError::Config(format!("time {unix}: {e}")))
    };
    let validity = Validity::new(time(not_before)?, time(not_after)?);
    let serial = SerialNumber::new(serial).map_err(config("serial"))?;
    let builder = CertificateBuilder::new(profile, serial, validity, spki)
        .map_err(|e| IssueError::Config(format!("the leaf certificate: {e}")))?;
    let cert = builder
        .build::<_, DerSignature>(&issuer.key)
        .map_err(|e| IssueError::Config(format!("signing the leaf certificate: {e}")))?;
    cert.to_der().map_err(config("the leaf certificate"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(valid_dns_name("app.example.com"));
        assert!(valid_dns_name("a-1.b"));
        assert!(!valid_dns_name("localhost"));
        assert!(!valid_dns_name("*.example.com"));
        assert!(!valid_dns_name("-a.example.com"));
        assert!(!valid_dns_name("a..b"));
        assert!(!valid_dns_name("a b.c"));
        assert!(!valid_dns_name(&format!("{}.com", "a".repeat(64))));
    }

    #[test]
    fn bad_config_names_the_problem_without_the_key() {
        let e = Issuer::new(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("CA key") && !e.contains("AAAA"), "{e}");
    }

    /// A PKCS#10 request (CN=enclave) for `key_pem`'s RSA key, signed
    /// sha256WithRSAEncryption, DER.
    fn rsa_csr(key_pem: &str) -> Vec<u8> {
        use rsa::pkcs8::DecodePrivateKey as _;
        use x509_cert::builder::RequestBuilder;
        let key = rsa::PrivateKey::from_pkcs8_pem(key_pem).unwrap();
        let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(key);
        RequestBuilder::new(Name::from_str("CN=enclave").unwrap())
            .unwrap()
            .build::<_, rsa::pkcs1v15::Signature>(&signer)
            .unwrap()
            .to_der()
            .unwrap()
    }

    const RSA3072: &str = include_str!("../../testdata/keys/rsa3072-e65537.pem");
    const RSA2048_E3: &str = include_str!("../../testdata/keys/rsa2048-e3.pem");

    #[test]
    fn rsa_csrs_are_read_and_keep_their_key() {
        for pem in [RSA3072, RSA2048_E3] {
            let der = rsa_csr(pem);
            let spki = read_csr(&der).expect("RSA CSR");
            let req = CertReq::from_der(&der).unwrap();
            assert_eq!(spki, req.info.public_key.to_der().unwrap());
            // PEM as well as DER.
            let pem_csr = pem_block("CERTIFICATE REQUEST", &der);
            assert_eq!(read_csr(pem_csr.as_bytes()).unwrap(), spki);
        }
    }

    #[track_caller]
    fn csr_refusal(r: Result<Vec<u8>, IssueError>) -> String {
        match r {
            Err(IssueError::Refused { check, message }) if check == "csr" => message,
            other => panic!("expected a `csr` refusal, got {other:?}"),
        }
    }

    #[test]
    fn an_rsa_csr_with_a_changed_signature_or_info_is_refused() {
        let der = rsa_csr(RSA3072);
        // The signature is the last 384 bytes.
        let mut bad_sig = der.clone();
        let n = bad_sig.len();
        bad_sig[n - 10] ^= 0x01;
        let m = csr_refusal(read_csr(&bad_sig));
        assert!(m.contains("does not verify with its own key"), "{m}");
        // A changed subject (inside the signed info).
        let mut bad_info = der.clone();
        let at = bad_info.windows(7).position(|w| w == b"enclave").unwrap();
        bad_info[at] = b'E';
        csr_refusal(read_csr(&bad_info));

        // issue() refuses at `csr` before it reads the evidence.
        let issuer = Issuer::new(
            include_str!("../../testdata/attest/manager/ca-key.pem"),
            include_str!("../../testdata/attest/manager/ca.pem"),
        )
        .unwrap();
        let collateral = super::super::read_collateral(include_bytes!(
            "../../testdata/attest/manager/collateral.json"
        ))
        .unwrap();
        let r = issue(
            &issuer,
            &IssueRequest {
                csr: &bad_sig,
                evidence: b"not a quote",
                collateral: &collateral,
                policy: &AttestPolicy::default(),
                root: &TrustRoot::Intel,
                approval: None,
                subject: "app.example.com",
                lifetime_secs: None,
                now: 1_790_000_000,
            },
        );
        assert!(
            matches!(&r, Err(IssueError::Refused { check, .. }) if check == "csr"),
            "{r:?}"
        );
    }

    #[test]
    fn other_csr_algorithms_are_refused_naming_them() {
        // sha1WithRSAEncryption on an RSA key.
        let mut der = rsa_csr(RSA3072);
        let oid = |s: &str| der::oid::ObjectIdentifier::new_unwrap(s).to_der().unwrap();
        let sha256 = oid(RSA_SHA256);
        let sha1 = oid("1.2.840.113549.1.1.5");
        let at = der
            .windows(sha256.len())
            .rposition(|w| w == sha256.as_slice())
            .unwrap();
        der[at..at + sha256.len()].copy_from_slice(&sha1);
        let m = csr_refusal(read_csr(&der));
        assert!(m.contains("1.2.840.113549.1.1.5"), "{m}");
    }

    #[test]
    fn approval_records_read_camel_case() {
        let r: ApprovalRecord = serde_json::from_str(
            r#"{"id":"a1","mrenclave":"AB","mrsigner":"cd","isvProdId":1,"isvSvn":2,
                "allowedSubjects":["x.example"],"status":"approved"}"#,
        )
        .unwrap();
        assert!(r.covers("ab") && !r.covers("cd"));
        assert_eq!(r.status, ApprovalStatus::Approved);
    }
}
