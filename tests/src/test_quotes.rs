//! SGX DCAP quotes (version 3) minted under a **test** root CA, with the collateral that
//! verifies them: test support only, never shipped, and never accepted by kiln unless a
//! test configures this root ([`kiln_engine::attest::TrustRoot::Custom`]).
//!
//! The chain has the shape of Intel's, so that the engine's verifier (dcap-qvl) runs every
//! one of its checks on it:
//!
//! - a self-signed test root CA (ECDSA P-256), which also signs the root CA CRL;
//! - a "PCK Platform CA" under it (the word `Platform` in its name is how dcap-qvl tells
//!   the PCK CA kind), which signs the PCK CRL and the PCK leaf certificate;
//! - the PCK leaf, with the SGX extension `1.2.840.113741.1.13.1` carrying PPID, the TCB
//!   (16 CPUSVN components, PCESVN, CPUSVN), PCE-ID, FMSPC and SGX type, as dcap-qvl reads
//!   them;
//! - a "TCB signing" certificate under the root, which signs the TCB info and QE identity
//!   JSON (raw `r || s` ECDSA P-256 signatures, as Intel's are);
//! - the quote: its QE report is signed by the PCK key, the QE report's data is
//!   SHA-256(attestation key || QE authentication data), and the ISV enclave report
//!   (chosen MRENCLAVE, MRSIGNER, ISV ids, attributes, report data) is signed by the
//!   attestation key; the certification data is the PEM chain (type 5, as Gramine's).
//!
//! Every name says TEST; the QE identity's MRSIGNER is a test value, not Intel's QE's.
//! The keys can be saved and loaded ([`TestPki::save`], [`TestPki::load`]) so that several
//! quotes (e.g. minted by `tests/examples/mint_quote.rs` for the worker's tests) chain to
//! one root.

use std::path::Path;

use kiln_engine::attest::QuoteCollateralV3;
use kiln_engine::pipeline::config::BuildTime;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams,
    CustomExtension, DnType, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use sha2::{Digest as _, Sha256};

use crate::HarnessError;

/// Intel's QE vendor id (a constant of the quote format, not a key or signature):
/// dcap-qvl refuses quotes with another.
pub const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9A, 0x72, 0x33, 0xF7, 0x9C, 0x4C, 0xA9, 0x94, 0x0A, 0x0D, 0xB3, 0x95, 0x7F, 0x06, 0x07,
];
/// The test platform's FMSPC.
pub const TEST_FMSPC: [u8; 6] = [0x00, 0x90, 0x6E, 0xD5, 0x00, 0x00];
/// The test platform's CPUSVN (also its 16 TCB components).
pub const TEST_CPU_SVN: [u8; 16] = [7, 7, 2, 2, 255, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// The test platform's PCESVN.
pub const TEST_PCE_SVN: u16 = 13;
/// The test Quoting Enclave's ISVSVN.
pub const TEST_QE_SVN: u16 = 8;
/// The test QE identity's MRSIGNER: SHA-256 of a label, not Intel's QE signer.
pub fn test_qe_mrsigner() -> [u8; 32] {
    Sha256::digest(b"kiln TEST quoting enclave signer (not Intel)").into()
}

/// The SGX extension of PCK certificates and its parts.
const SGX_EXT: [u64; 7] = [1, 2, 840, 113741, 1, 13, 1];
const ONE_DAY: u64 = 86_400;

/// What to put in a minted quote and its collateral.
#[derive(Debug, Clone)]
pub struct QuoteSpec {
    /// REPORTDATA (64 bytes).
    pub report_data: [u8; 64],
    /// MRENCLAVE.
    pub mrenclave: [u8; 32],
    /// MRSIGNER.
    pub mrsigner: [u8; 32],
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// ISVSVN.
    pub isv_svn: u16,
    /// Sets ATTRIBUTES.DEBUG (0x02).
    pub debug: bool,
    /// The TCB status of the one TCB level the platform matches (`UpToDate`,
    /// `SWHardeningNeeded`, `OutOfDate`, `Revoked`, ...).
    pub tcb_status: String,
    /// Its advisory ids.
    pub advisory_ids: Vec<String>,
    /// When the collateral (TCB info, QE identity, CRLs) was issued, Unix seconds.
    pub issued_at: u64,
    /// How long it stays valid (its nextUpdate is `issued_at` plus this).
    pub validity_secs: u64,
}

impl QuoteSpec {
    /// A production (non-debug) enclave on an `UpToDate` platform, collateral issued an
    /// hour before `now` and valid for 30 days.
    pub fn new(now: u64, mrenclave: [u8; 32], mrsigner: [u8; 32], report_data: [u8; 64]) -> Self {
        Self {
            report_data,
            mrenclave,
            mrsigner,
            isv_prod_id: 0,
            isv_svn: 0,
            debug: false,
            tcb_status: "UpToDate".into(),
            advisory_ids: Vec::new(),
            issued_at: now.saturating_sub(3600),
            validity_secs: 30 * ONE_DAY,
        }
    }
}

/// A minted quote with its collateral and the test root that verifies it.
#[derive(Debug, Clone)]
pub struct MintedQuote {
    /// The raw quote.
    pub quote: Vec<u8>,
    /// The collateral (the engine's [`QuoteCollateralV3`]).
    pub collateral: QuoteCollateralV3,
    /// The collateral as JSON text, the shape `kiln_engine::attest::read_collateral` reads.
    pub collateral_json: String,
    /// The test root certificate, DER.
    pub root_der: Vec<u8>,
    /// The test root certificate, PEM.
    pub root_pem: String,
}

/// The test PKI: root, PCK platform CA and TCB signing keys and certificates.
pub struct TestPki {
    root_key: KeyPair,
    root: Certificate,
    pck_ca_key: KeyPair,
    pck_ca: Certificate,
    tcb_key: KeyPair,
    tcb: Certificate,
    pck_key: KeyPair,
    pck: Certificate,
    created: u64,
}

fn time_of(unix: u64) -> Result<time::OffsetDateTime, HarnessError> {
    let secs = i64::try_from(unix).map_err(|_| format!("time {unix} out of range"))?;
    Ok(time::OffsetDateTime::from_unix_timestamp(secs)?)
}

/// DER TLV with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &a in &arcs[2..] {
        let mut groups = vec![(a & 0x7f) as u8];
        let mut v = a >> 7;
        while v > 0 {
            groups.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        groups.reverse();
        body.extend(groups);
    }
    tlv(0x06, &body)
}

fn integer(v: u16) -> Vec<u8> {
    let b = v.to_be_bytes();
    let mut content: Vec<u8> = if v < 0x100 { vec![b[1]] } else { b.to_vec() };
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    tlv(0x02, &content)
}

fn sub(arc: &[u64]) -> Vec<u64> {
    let mut v = SGX_EXT.to_vec();
    v.extend_from_slice(arc);
    v
}

fn entry(arc: &[u64], value: Vec<u8>) -> Vec<u8> {
    let mut c = oid(&sub(arc));
    c.extend(value);
    tlv(0x30, &c)
}

/// The SGX extension's value (a SEQUENCE of `(OID, value)` entries), as in Intel's PCK
/// certificates.
fn sgx_extension(cpu_svn: &[u8; 16], pce_svn: u16, fmspc: &[u8; 6]) -> Vec<u8> {
    let mut tcb = Vec::new();
    for (i, svn) in cpu_svn.iter().enumerate() {
        tcb.extend(entry(&[2, i as u64 + 1], integer(u16::from(*svn))));
    }
    tcb.extend(entry(&[2, 17], integer(pce_svn)));
    tcb.extend(entry(&[2, 18], tlv(0x04, cpu_svn)));
    let mut all = Vec::new();
    all.extend(entry(
        &[1],
        tlv(0x04, &Sha256::digest(b"kiln TEST PPID")[..16]),
    ));
    all.extend(entry(&[2], tlv(0x30, &tcb)));
    all.extend(entry(&[3], tlv(0x04, &[0, 0])));
    all.extend(entry(&[4], tlv(0x04, fmspc)));
    all.extend(entry(&[5], tlv(0x0A, &[0])));
    tlv(0x30, &all)
}

fn ca_params(cn: &str, from: u64) -> Result<CertificateParams, HarnessError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "kiln TEST (not Intel)");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = time_of(from)?;
    p.not_after = time_of(from + 20 * 365 * ONE_DAY)?;
    Ok(p)
}

fn leaf_params(cn: &str, from: u64) -> Result<CertificateParams, HarnessError> {
    let mut p = ca_params(cn, from)?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    Ok(p)
}

/// Raw `r || s` ECDSA P-256 SHA-256 signature.
fn sign_raw(key: &KeyPair, msg: &[u8]) -> Result<Vec<u8>, HarnessError> {
    let rng = SystemRandom::new();
    let k = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &rng)
        .map_err(|e| format!("ECDSA key: {e}"))?;
    Ok(k.sign(&rng, msg)
        .map_err(|e| format!("ECDSA sign: {e}"))?
        .as_ref()
        .to_vec())
}

fn rfc3339(unix: u64) -> String {
    BuildTime { unix }.rfc3339()
}

fn report_body(r: &ReportFields) -> Vec<u8> {
    let mut b = Vec::with_capacity(384);
    b.extend_from_slice(&r.cpu_svn);
    b.extend_from_slice(&r.misc_select.to_le_bytes());
    b.extend_from_slice(&[0; 28]);
    b.extend_from_slice(&r.attributes);
    b.extend_from_slice(&r.mrenclave);
    b.extend_from_slice(&[0; 32]);
    b.extend_from_slice(&r.mrsigner);
    b.extend_from_slice(&[0; 96]);
    b.extend_from_slice(&r.isv_prod_id.to_le_bytes());
    b.extend_from_slice(&r.isv_svn.to_le_bytes());
    b.extend_from_slice(&[0; 60]);
    b.extend_from_slice(&r.report_data);
    debug_assert_eq!(b.len(), 384);
    b
}

struct ReportFields {
    cpu_svn: [u8; 16],
    misc_select: u32,
    attributes: [u8; 16],
    mrenclave: [u8; 32],
    mrsigner: [u8; 32],
    isv_prod_id: u16,
    isv_svn: u16,
    report_data: [u8; 64],
}

impl TestPki {
    /// A fresh test PKI whose certificates are valid from a day before `now` for 20 years.
    pub fn new(now: u64) -> Result<Self, HarnessError> {
        let from = now.saturating_sub(ONE_DAY);
        let root_key = KeyPair::generate()?;
        let pck_ca_key = KeyPair::generate()?;
        let tcb_key = KeyPair::generate()?;
        let pck_key = KeyPair::generate()?;
        Self::from_keys(root_key, pck_ca_key, tcb_key, pck_key, from)
    }

    fn from_keys(
        root_key: KeyPair,
        pck_ca_key: KeyPair,
        tcb_key: KeyPair,
        pck_key: KeyPair,
        from: u64,
    ) -> Result<Self, HarnessError> {
        let root = ca_params("kiln TEST SGX Root CA (not Intel)", from)?.self_signed(&root_key)?;
        let pck_ca = ca_params("kiln TEST SGX PCK Platform CA (not Intel)", from)?.signed_by(
            &pck_ca_key,
            &root,
            &root_key,
        )?;
        let tcb = leaf_params("kiln TEST SGX TCB Signing (not Intel)", from)?
            .signed_by(&tcb_key, &root, &root_key)?;
        let mut pck = leaf_params("kiln TEST SGX PCK Certificate (not Intel)", from)?;
        pck.custom_extensions = vec![CustomExtension::from_oid_content(
            &SGX_EXT,
            sgx_extension(&TEST_CPU_SVN, TEST_PCE_SVN, &TEST_FMSPC),
        )];
        let pck = pck.signed_by(&pck_key, &pck_ca, &pck_ca_key)?;
        Ok(Self {
            root_key,
            root,
            pck_ca_key,
            pck_ca,
            tcb_key,
            tcb,
            pck_key,
            pck,
            created: from,
        })
    }

    /// Saves the keys (PKCS#8 PEM) and the creation time into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<(), HarnessError> {
        std::fs::create_dir_all(dir)?;
        for (name, k) in [
            ("root", &self.root_key),
            ("pck-ca", &self.pck_ca_key),
            ("tcb", &self.tcb_key),
            ("pck", &self.pck_key),
        ] {
            std::fs::write(dir.join(format!("{name}.key.pem")), k.serialize_pem())?;
        }
        std::fs::write(dir.join("created"), self.created.to_string())?;
        Ok(())
    }

    /// Loads keys saved by [`TestPki::save`]; the certificates are made again from them
    /// (same keys, names and validity, so earlier quotes and collateral still verify
    /// under the new root certificate).
    pub fn load(dir: &Path) -> Result<Self, HarnessError> {
        let key = |name: &str| -> Result<KeyPair, HarnessError> {
            let p = dir.join(format!("{name}.key.pem"));
            let pem = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(KeyPair::from_pem(&pem)?)
        };
        let created: u64 = std::fs::read_to_string(dir.join("created"))?
            .trim()
            .parse()
            .map_err(|e| format!("{}: {e}", dir.join("created").display()))?;
        Self::from_keys(
            key("root")?,
            key("pck-ca")?,
            key("tcb")?,
            key("pck")?,
            created,
        )
    }

    /// The test root certificate, DER.
    pub fn root_der(&self) -> Vec<u8> {
        self.root.der().to_vec()
    }

    /// The test root certificate, PEM.
    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    /// Mints a quote and its collateral.
    pub fn mint(&self, spec: &QuoteSpec) -> Result<MintedQuote, HarnessError> {
        let quote = self.quote(spec)?;
        let collateral = self.collateral(spec)?;
        let collateral_json = serde_json::to_string_pretty(&collateral)?;
        Ok(MintedQuote {
            quote,
            collateral,
            collateral_json,
            root_der: self.root_der(),
            root_pem: self.root_pem(),
        })
    }

    /// The quote alone.
    pub fn quote(&self, spec: &QuoteSpec) -> Result<Vec<u8>, HarnessError> {
        let rng = SystemRandom::new();
        let ak_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| format!("attestation key: {e}"))?;
        let ak =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ak_pkcs8.as_ref(), &rng)
                .map_err(|e| format!("attestation key: {e}"))?;
        let ak_pub = &ak.public_key().as_ref()[1..];

        let mut header = Vec::with_capacity(48);
        header.extend_from_slice(&3u16.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes()); // ECDSA P-256 attestation key
        header.extend_from_slice(&0u32.to_le_bytes()); // SGX
        header.extend_from_slice(&TEST_QE_SVN.to_le_bytes());
        header.extend_from_slice(&TEST_PCE_SVN.to_le_bytes());
        header.extend_from_slice(&INTEL_QE_VENDOR_ID);
        header.extend_from_slice(&[0; 20]);

        let mut attributes = [0u8; 16];
        // INIT | MODE64BIT, DEBUG on request; XFRM x87 | SSE | AVX.
        attributes[0] = 0x01 | 0x04 | if spec.debug { 0x02 } else { 0 };
        attributes[8] = 0x07;
        let isv = report_body(&ReportFields {
            cpu_svn: TEST_CPU_SVN,
            misc_select: 0,
            attributes,
            mrenclave: spec.mrenclave,
            mrsigner: spec.mrsigner,
            isv_prod_id: spec.isv_prod_id,
            isv_svn: spec.isv_svn,
            report_data: spec.report_data,
        });

        let qe_auth_data = Sha256::digest(b"kiln TEST QE authentication data");
        let mut qe_report_data = [0u8; 64];
        let mut h = Sha256::new();
        h.update(ak_pub);
        h.update(qe_auth_data);
        qe_report_data[..32].copy_from_slice(&h.finalize());
        let mut qe_attributes = [0u8; 16];
        qe_attributes[0] = 0x11;
        let qe_report = report_body(&ReportFields {
            cpu_svn: TEST_CPU_SVN,
            misc_select: 0,
            attributes: qe_attributes,
            mrenclave: Sha256::digest(b"kiln TEST quoting enclave").into(),
            mrsigner: test_qe_mrsigner(),
            isv_prod_id: 1,
            isv_svn: TEST_QE_SVN,
            report_data: qe_report_data,
        });
        let qe_report_sig = sign_raw(&self.pck_key, &qe_report)?;

        let mut signed = header.clone();
        signed.extend_from_slice(&isv);
        let isv_sig = ak
            .sign(&rng, &signed)
            .map_err(|e| format!("attestation key sign: {e}"))?;

        let chain = format!("{}{}{}", self.pck.pem(), self.pck_ca.pem(), self.root.pem());
        let mut auth = Vec::new();
        auth.extend_from_slice(isv_sig.as_ref());
        auth.extend_from_slice(ak_pub);
        auth.extend_from_slice(&qe_report);
        auth.extend_from_slice(&qe_report_sig);
        auth.extend_from_slice(&32u16.to_le_bytes());
        auth.extend_from_slice(&qe_auth_data);
        auth.extend_from_slice(&5u16.to_le_bytes());
        auth.extend_from_slice(&u32::try_from(chain.len())?.to_le_bytes());
        auth.extend_from_slice(chain.as_bytes());

        let mut quote = signed;
        quote.extend_from_slice(&u32::try_from(auth.len())?.to_le_bytes());
        quote.extend(auth);
        Ok(quote)
    }

    /// The collateral for quotes of this PKI under `spec`'s TCB status and validity.
    pub fn collateral(&self, spec: &QuoteSpec) -> Result<QuoteCollateralV3, HarnessError> {
        let issued = spec.issued_at;
        let next = issued + spec.validity_secs;
        let components: Vec<_> = TEST_CPU_SVN
            .iter()
            .map(|s| serde_json::json!({ "svn": s }))
            .collect();
        let tcb_info = serde_json::json!({
            "id": "SGX",
            "version": 3,
            "issueDate": rfc3339(issued),
            "nextUpdate": rfc3339(next),
            "fmspc": hex::encode_upper(TEST_FMSPC),
            "pceId": "0000",
            "tcbType": 0,
            "tcbEvaluationDataNumber": 17,
            "tcbLevels": [{
                "tcb": { "sgxtcbcomponents": components, "pcesvn": TEST_PCE_SVN },
                "tcbDate": rfc3339(issued.saturating_sub(30 * ONE_DAY)),
                "tcbStatus": spec.tcb_status,
                "advisoryIDs": spec.advisory_ids,
            }],
        })
        .to_string();
        let qe_identity = serde_json::json!({
            "id": "QE",
            "version": 2,
            "issueDate": rfc3339(issued),
            "nextUpdate": rfc3339(next),
            "tcbEvaluationDataNumber": 17,
            "miscselect": "00000000",
            "miscselectMask": "FFFFFFFF",
            "attributes": "11000000000000000000000000000000",
            "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
            "mrsigner": hex::encode_upper(test_qe_mrsigner()),
            "isvprodid": 1,
            "tcbLevels": [{
                "tcb": { "isvsvn": TEST_QE_SVN },
                "tcbDate": rfc3339(issued.saturating_sub(30 * ONE_DAY)),
                "tcbStatus": "UpToDate",
            }],
        })
        .to_string();
        let crl = |issuer: &Certificate, key: &KeyPair| -> Result<Vec<u8>, HarnessError> {
            Ok(CertificateRevocationListParams {
                this_update: time_of(issued)?,
                next_update: time_of(next)?,
                crl_number: SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: Vec::new(),
                key_identifier_method: KeyIdMethod::Sha256,
            }
            .signed_by(issuer, key)?
            .der()
            .to_vec())
        };
        let tcb_chain = format!("{}{}", self.tcb.pem(), self.root.pem());
        Ok(QuoteCollateralV3 {
            pck_crl_issuer_chain: format!("{}{}", self.pck_ca.pem(), self.root.pem()),
            root_ca_crl: crl(&self.root, &self.root_key)?,
            pck_crl: crl(&self.pck_ca, &self.pck_ca_key)?,
            tcb_info_issuer_chain: tcb_chain.clone(),
            tcb_info_signature: sign_raw(&self.tcb_key, tcb_info.as_bytes())?,
            tcb_info,
            qe_identity_issuer_chain: tcb_chain,
            qe_identity_signature: sign_raw(&self.tcb_key, qe_identity.as_bytes())?,
            qe_identity,
            pck_certificate_chain: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_helpers() {
        assert_eq!(integer(13), [2, 1, 13]);
        assert_eq!(integer(255), [2, 2, 0, 255]);
        assert_eq!(integer(0x1234), [2, 2, 0x12, 0x34]);
        assert_eq!(integer(0x8000), [2, 3, 0, 0x80, 0]);
        assert_eq!(
            oid(&SGX_EXT),
            [6, 9, 0x2A, 0x86, 0x48, 0x86, 0xF8, 0x4D, 0x01, 0x0D, 0x01]
        );
        assert_eq!(tlv(4, &[0; 200])[..3], [4, 0x81, 200]);
    }
}
