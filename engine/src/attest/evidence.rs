//! Reading attestation evidence: a raw SGX quote (binary or hex), or an RA-TLS
//! certificate (PEM or DER) that carries one.
//!
//! Two certificate formats are understood, both made by Gramine's `ra_tls_attest.c`
//! (tools/sgx/ra-tls) and the second also by kiln-init:
//!
//! - **TCG DICE "tagged evidence"**, extension `2.23.133.5.4.9` (Gramine ≥ 1.8): CBOR
//!   tag 60000 over `[quote, claims]`, both byte strings; `claims` is a CBOR map whose
//!   `"pubkey-hash"` entry is a serialised CBOR array `[hash-alg-id, hash]` (IANA named
//!   information ids: 1 = SHA-256, 7 = SHA-384, 8 = SHA-512) over the certificate's
//!   SubjectPublicKeyInfo DER. The quote's REPORTDATA starts with SHA-256(claims).
//! - **Legacy "SGX quote"**, the raw quote as the extension's value. kiln-init writes it
//!   under `1.2.840.113741.1337.6`; Gramine writes the same bytes *including* a stray
//!   DER tag and length as the OID's content (`06 09 2A 86 48 86 F8 4D 8A 39 06`, which
//!   decodes as `0.6.9.42.840.113741.1337.6`; see the comment in Gramine's `ra_tls.h`), so
//!   both spellings are accepted. The quote's REPORTDATA starts with
//!   SHA-256(SubjectPublicKeyInfo DER).
//!
//! When a certificate carries both (Gramine writes both), the TCG DICE evidence is used,
//! as Gramine's own verifier does. Whether the binding holds is decided later
//! ([`CertificateEvidence::binding`]), against the quote's verified report data.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use x509_cert::der::{Decode as _, DecodePem as _, Encode as _};
use x509_cert::Certificate;

use super::cbor::{self, Item};
use super::AttestError;

/// Largest evidence file read (a certificate with a quote is a few KiB).
pub const MAX_EVIDENCE_BYTES: usize = 1 << 20;
/// Largest quote accepted (DCAP quotes with their PCK chain are about 5 KiB).
pub const MAX_QUOTE_BYTES: usize = 64 * 1024;

/// kiln-init's (and the correctly encoded) legacy quote extension, `1.2.840.113741.1337.6`.
pub const LEGACY_QUOTE_OID: &str = "1.2.840.113741.1337.6";
/// The content bytes of the OID Gramine writes for the legacy extension (its `ra_tls.h`
/// `NON_STANDARD_INTEL_SGX_QUOTE_OID`, tag and length included by mistake).
pub const GRAMINE_LEGACY_OID_CONTENT: [u8; 11] = [
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF8, 0x4D, 0x8A, 0x39, 0x06,
];
/// TCG DICE "tagged evidence", `2.23.133.5.4.9`.
pub const TCG_DICE_EVIDENCE_OID: &str = "2.23.133.5.4.9";
/// CBOR tag of a TEE quote in TCG DICE tagged evidence.
pub const TEE_QUOTE_CBOR_TAG: u64 = 60000;

/// Which RA-TLS extension the quote came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RaTlsFormat {
    /// TCG DICE tagged evidence (`2.23.133.5.4.9`).
    TcgDice,
    /// The legacy raw-quote extension (`1.2.840.113741.1337.6`, either spelling).
    Legacy,
}

/// What an RA-TLS certificate says, before the quote is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateEvidence {
    /// The extension used.
    pub format: RaTlsFormat,
    /// The certificate's subject, as text.
    pub subject: String,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo DER.
    pub spki_sha256: [u8; 32],
    /// What the first 32 bytes of REPORTDATA must be: SHA-256(SPKI) (legacy) or
    /// SHA-256(claims) (TCG DICE).
    pub expected_report_data: [u8; 32],
    /// For TCG DICE: whether the claims' `pubkey-hash` names this certificate's key
    /// (`Err` says why not). Always `Ok` for the legacy format.
    pub claims_bind_key: Result<(), String>,
}

impl CertificateEvidence {
    /// Whether `report_data` (the verified quote's) binds this certificate's key; the
    /// `Err` explains the mismatch.
    pub fn binding(&self, report_data: &[u8; 64]) -> Result<String, String> {
        self.claims_bind_key.clone()?;
        let got = &report_data[..32];
        if got != self.expected_report_data {
            let what = match self.format {
                RaTlsFormat::Legacy => "SHA-256 of the certificate's public key",
                RaTlsFormat::TcgDice => "SHA-256 of the evidence's claims",
            };
            return Err(format!(
                "report data starts with {} but the {what} is {}: the quote was not made for this certificate's key",
                hex::encode(got),
                hex::encode(self.expected_report_data)
            ));
        }
        Ok(match self.format {
            RaTlsFormat::Legacy => format!(
                "report data starts with SHA-256 of the certificate's public key ({})",
                hex::encode(self.spki_sha256)
            ),
            RaTlsFormat::TcgDice => format!(
                "report data starts with SHA-256 of the claims, whose pubkey-hash is the certificate's public key (SHA-256 {})",
                hex::encode(self.spki_sha256)
            ),
        })
    }
}

/// Evidence read from a file or a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The raw quote.
    pub quote: Vec<u8>,
    /// The certificate it came from, if any.
    pub certificate: Option<CertificateEvidence>,
}

/// Reads evidence: a PEM certificate (the first `CERTIFICATE` block), a hex-encoded
/// quote (blanks around it ignored), a DER certificate (starts with a SEQUENCE tag), or a
/// binary quote (anything else).
pub fn read_evidence(bytes: &[u8]) -> Result<Evidence, AttestError> {
    if bytes.len() > MAX_EVIDENCE_BYTES {
        return Err(AttestError::Evidence(format!(
            "{} bytes is more than the {MAX_EVIDENCE_BYTES}-byte limit for evidence",
            bytes.len()
        )));
    }
    let trimmed = trim_ascii(bytes);
    if trimmed.starts_with(b"-----BEGIN") {
        return read_pem_certificate(trimmed);
    }
    // Hex text first: its first digit may well be '0' (0x30, a DER SEQUENCE's tag).
    if !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_hexdigit) {
        let quote = hex::decode(trimmed)
            .map_err(|e| AttestError::Evidence(format!("hex-encoded quote: {e}")))?;
        return quote_evidence(quote);
    }
    if bytes.first() == Some(&0x30) {
        let cert = Certificate::from_der(bytes)
            .map_err(|e| AttestError::Evidence(format!("DER certificate: {e}")))?;
        return read_certificate(&cert);
    }
    quote_evidence(bytes.to_vec())
}

fn quote_evidence(quote: Vec<u8>) -> Result<Evidence, AttestError> {
    if quote.len() > MAX_QUOTE_BYTES {
        return Err(AttestError::Evidence(format!(
            "quote of {} bytes is more than the {MAX_QUOTE_BYTES}-byte limit",
            quote.len()
        )));
    }
    Ok(Evidence {
        quote,
        certificate: None,
    })
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

fn read_pem_certificate(pem: &[u8]) -> Result<Evidence, AttestError> {
    let text = std::str::from_utf8(pem)
        .map_err(|_| AttestError::Evidence("PEM input is not UTF-8".into()))?;
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let start = text.find(begin).ok_or_else(|| {
        AttestError::Evidence(
            "PEM input has no CERTIFICATE block (expected an RA-TLS certificate)".into(),
        )
    })?;
    let stop = text[start..]
        .find(end)
        .map(|i| start + i + end.len())
        .ok_or_else(|| AttestError::Evidence("PEM CERTIFICATE block has no END line".into()))?;
    let cert = Certificate::from_pem(&text[start..stop])
        .map_err(|e| AttestError::Evidence(format!("PEM certificate: {e}")))?;
    read_certificate(&cert)
}

fn read_certificate(cert: &Certificate) -> Result<Evidence, AttestError> {
    let tbs = cert.tbs_certificate();
    let spki_der = tbs
        .subject_public_key_info()
        .to_der()
        .map_err(|e| AttestError::Evidence(format!("certificate public key: {e}")))?;
    let spki_sha256: [u8; 32] = Sha256::digest(&spki_der).into();
    let subject = tbs.subject().to_string();
    let mut legacy = None;
    let mut dice = None;
    for ext in tbs.extensions().into_iter().flatten() {
        let id = ext.extn_id.to_string();
        if id == TCG_DICE_EVIDENCE_OID {
            dice = Some(ext.extn_value.as_bytes().to_vec());
        } else if id == LEGACY_QUOTE_OID || ext.extn_id.as_bytes() == GRAMINE_LEGACY_OID_CONTENT {
            legacy = Some(ext.extn_value.as_bytes().to_vec());
        }
    }
    if let Some(d) = dice {
        let (quote, claims) = read_tagged_evidence(&d)?;
        let claims_bind_key = claims_name_key(&claims, &spki_der);
        let q = quote_evidence(quote)?;
        return Ok(Evidence {
            quote: q.quote,
            certificate: Some(CertificateEvidence {
                format: RaTlsFormat::TcgDice,
                subject,
                spki_sha256,
                expected_report_data: Sha256::digest(&claims).into(),
                claims_bind_key,
            }),
        });
    }
    if let Some(quote) = legacy {
        let q = quote_evidence(quote)?;
        return Ok(Evidence {
            quote: q.quote,
            certificate: Some(CertificateEvidence {
                format: RaTlsFormat::Legacy,
                subject,
                spki_sha256,
                expected_report_data: spki_sha256,
                claims_bind_key: Ok(()),
            }),
        });
    }
    Err(AttestError::Evidence(format!(
        "certificate {subject:?} carries no SGX quote: neither the TCG DICE evidence extension {TCG_DICE_EVIDENCE_OID} nor the RA-TLS quote extension {LEGACY_QUOTE_OID}"
    )))
}

/// `tag(60000, [quote bstr, claims bstr])` → (quote, claims).
fn read_tagged_evidence(value: &[u8]) -> Result<(Vec<u8>, Vec<u8>), AttestError> {
    let bad = |why: String| {
        AttestError::Evidence(format!(
            "TCG DICE evidence ({TCG_DICE_EVIDENCE_OID}): {why}"
        ))
    };
    let item = cbor::decode(value).map_err(bad)?;
    let Item::Tag(tag, inner) = item else {
        return Err(bad("not a CBOR tag".into()));
    };
    if tag != TEE_QUOTE_CBOR_TAG {
        return Err(bad(format!(
            "CBOR tag {tag}, expected {TEE_QUOTE_CBOR_TAG} (TEE quote)"
        )));
    }
    match *inner {
        Item::Array(v) => match <[Item; 2]>::try_from(v) {
            Ok([Item::Bytes(q), Item::Bytes(c)]) if !c.is_empty() => Ok((q, c)),
            _ => Err(bad(
                "expected an array of two byte strings [quote, claims]".into()
            )),
        },
        _ => Err(bad(
            "expected an array of two byte strings [quote, claims]".into()
        )),
    }
}

/// Whether the claims map's `pubkey-hash` is a hash of `spki_der`.
fn claims_name_key(claims: &[u8], spki_der: &[u8]) -> Result<(), String> {
    let map = match cbor::decode(claims) {
        Ok(Item::Map(m)) => m,
        Ok(_) => return Err("TCG DICE claims are not a CBOR map".into()),
        Err(e) => return Err(format!("TCG DICE claims: {e}")),
    };
    let entry = map
        .iter()
        .find_map(|(k, v)| match (k, v) {
            (Item::Text(k), Item::Bytes(v)) if k == "pubkey-hash" => Some(v),
            _ => None,
        })
        .ok_or("TCG DICE claims have no \"pubkey-hash\" byte string: nothing binds the certificate's key")?;
    let (alg, hash) = match cbor::decode(entry) {
        Ok(Item::Array(v)) => match <[Item; 2]>::try_from(v) {
            Ok([Item::Uint(a), Item::Bytes(h)]) => (a, h),
            _ => return Err("pubkey-hash is not [hash-alg-id, hash]".into()),
        },
        Ok(_) => return Err("pubkey-hash is not [hash-alg-id, hash]".into()),
        Err(e) => return Err(format!("pubkey-hash: {e}")),
    };
    let want: Vec<u8> = match alg {
        1 => Sha256::digest(spki_der).to_vec(),
        7 => Sha384::digest(spki_der).to_vec(),
        8 => Sha512::digest(spki_der).to_vec(),
        other => {
            return Err(format!(
                "pubkey-hash uses hash algorithm {other}; only 1 (SHA-256), 7 (SHA-384) and 8 (SHA-512) are known"
            ))
        }
    };
    if hash != want {
        return Err(format!(
            "the claims' pubkey-hash {} is not the hash of the certificate's public key ({})",
            hex::encode(&hash),
            hex::encode(&want)
        ));
    }
    Ok(())
}

/// Builds TCG DICE tagged evidence the way Gramine's `ra_tls_attest.c` does, for tests.
#[cfg(test)]
pub(crate) fn tcg_dice_evidence(quote: &[u8], spki_der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut entry = Vec::new();
    cbor::encode(
        &Item::Array(vec![
            Item::Uint(1),
            Item::Bytes(Sha256::digest(spki_der).to_vec()),
        ]),
        &mut entry,
    );
    let mut claims = Vec::new();
    cbor::encode(
        &Item::Map(vec![(Item::Text("pubkey-hash".into()), Item::Bytes(entry))]),
        &mut claims,
    );
    let mut ev = Vec::new();
    cbor::encode(
        &Item::Tag(
            TEE_QUOTE_CBOR_TAG,
            Box::new(Item::Array(vec![
                Item::Bytes(quote.to_vec()),
                Item::Bytes(claims.clone()),
            ])),
        ),
        &mut ev,
    );
    (ev, claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_hex_quotes() {
        let q = vec![3u8, 0, 2, 0, 0xff];
        assert_eq!(read_evidence(&q).map(|e| e.quote), Ok(q.clone()));
        let hex_text = format!("  {}\n", hex::encode(&q));
        assert_eq!(read_evidence(hex_text.as_bytes()).map(|e| e.quote), Ok(q));
        let big = vec![3u8; MAX_QUOTE_BYTES + 1];
        assert!(read_evidence(&big)
            .unwrap_err()
            .to_string()
            .contains("limit"));
        let huge = vec![3u8; MAX_EVIDENCE_BYTES + 1];
        assert!(read_evidence(&huge)
            .unwrap_err()
            .to_string()
            .contains("limit"));
    }

    #[test]
    fn bad_certificates_are_named() {
        let e = read_evidence(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        assert!(e.unwrap_err().to_string().contains("no CERTIFICATE block"));
        let e = read_evidence(b"-----BEGIN CERTIFICATE-----\nAAAA\n");
        assert!(e.unwrap_err().to_string().contains("no END line"));
        let e = read_evidence(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(e.unwrap_err().to_string().contains("PEM certificate"));
        let e = read_evidence(&[0x30, 0x03, 0x02, 0x01]);
        assert!(e.unwrap_err().to_string().contains("DER certificate"));
    }

    #[test]
    fn tagged_evidence_shapes() {
        let spki = b"spki bytes";
        let (ev, claims) = tcg_dice_evidence(b"quote", spki);
        assert_eq!(
            read_tagged_evidence(&ev).ok(),
            Some((b"quote".to_vec(), claims.clone()))
        );
        assert_eq!(claims_name_key(&claims, spki), Ok(()));
        let other = claims_name_key(&claims, b"another key").unwrap_err();
        assert!(
            other.contains("not the hash of the certificate's public key"),
            "{other}"
        );
        // Wrong tag, wrong shape, empty claims map.
        let mut wrong_tag = Vec::new();
        cbor::encode(&Item::Tag(1, Box::new(Item::Uint(0))), &mut wrong_tag);
        assert!(read_tagged_evidence(&wrong_tag)
            .unwrap_err()
            .to_string()
            .contains("tag 1"));
        let mut one = Vec::new();
        cbor::encode(
            &Item::Tag(60000, Box::new(Item::Array(vec![Item::Bytes(vec![1])]))),
            &mut one,
        );
        assert!(read_tagged_evidence(&one)
            .unwrap_err()
            .to_string()
            .contains("two byte strings"));
        let mut empty_map = Vec::new();
        cbor::encode(&Item::Map(vec![]), &mut empty_map);
        assert!(claims_name_key(&empty_map, spki)
            .unwrap_err()
            .contains("no \"pubkey-hash\""));
    }

    #[test]
    fn binding_compares_the_first_32_bytes_of_report_data() {
        // The comparator on report data chosen to match (no quote can be minted for a
        // fresh key here; the real sample quote's refusal is in tests/attest_vectors.rs).
        let spki = b"a public key";
        let (_, claims) = tcg_dice_evidence(b"q", spki);
        let legacy = CertificateEvidence {
            format: RaTlsFormat::Legacy,
            subject: "CN=x".into(),
            spki_sha256: Sha256::digest(spki).into(),
            expected_report_data: Sha256::digest(spki).into(),
            claims_bind_key: Ok(()),
        };
        let mut rd = [0xeeu8; 64];
        rd[..32].copy_from_slice(&Sha256::digest(spki));
        assert!(legacy.binding(&rd).is_ok());
        rd[31] ^= 1;
        assert!(legacy
            .binding(&rd)
            .unwrap_err()
            .contains("not made for this certificate's key"));
        let dice = CertificateEvidence {
            format: RaTlsFormat::TcgDice,
            expected_report_data: Sha256::digest(&claims).into(),
            claims_bind_key: claims_name_key(&claims, spki),
            ..legacy.clone()
        };
        let mut rd = [0u8; 64];
        rd[..32].copy_from_slice(&Sha256::digest(&claims));
        assert!(dice.binding(&rd).unwrap().contains("pubkey-hash"));
        // Claims naming another key fail even when the report data matches the claims.
        let other = CertificateEvidence {
            claims_bind_key: claims_name_key(&claims, b"another key"),
            ..dice
        };
        assert!(other.binding(&rd).is_err());
    }
}
