//! MANAGER_CA issuance (kiln_engine::attest::issue) on quotes minted under a TEST root:
//! an approved enclave gets a chain that `openssl verify` accepts; every failed check is
//! a refusal that names it.

use kiln_engine::attest::issue::{
    issue, ApprovalRecord, ApprovalStatus, IssueError, IssueRequest, Issued, Issuer,
};
use kiln_engine::attest::{AttestPolicy, TrustRoot};
use kiln_tests::test_quotes::{MintedQuote, QuoteSpec, TestPki};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use sha2::{Digest as _, Sha256};

const NOW: u64 = 1_790_000_000;
const MRENCLAVE: [u8; 32] = [0x11; 32];
const MRSIGNER: [u8; 32] = [0x22; 32];
const SUBJECT: &str = "app.example.com";

struct Ca {
    key_pem: String,
    cert_pem: String,
}

fn make_ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "kiln test manager CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.self_signed(&key).unwrap();
    Ca {
        key_pem: key.serialize_pem(),
        cert_pem: cert.pem(),
    }
}

struct Enclave {
    key: KeyPair,
    csr_pem: String,
}

fn enclave_key() -> Enclave {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "ignored");
    let csr_pem = p.serialize_request(&key).unwrap().pem().unwrap();
    Enclave { key, csr_pem }
}

fn binding(key: &KeyPair) -> [u8; 64] {
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&Sha256::digest(key.public_key_der()));
    rd
}

fn record(status: ApprovalStatus) -> ApprovalRecord {
    ApprovalRecord {
        id: "rec-1".into(),
        mrenclave: hex::encode([0x99; 32]),
        mrenclave2: Some(hex::encode(MRENCLAVE)),
        mrsigner: hex::encode(MRSIGNER),
        isv_prod_id: 0,
        isv_svn: 0,
        image: "registry.example/app:kiln".into(),
        allowed_subjects: vec![SUBJECT.into(), "other.example.com".into()],
        status,
        created_at: 0,
        updated_at: 0,
    }
}

struct Fixture {
    pki: TestPki,
    ca: Ca,
    issuer: Issuer,
    enclave: Enclave,
    /// The CSR [`Fixture::request`] sends (the enclave's, unless a test brings its own).
    csr_pem: String,
    minted: MintedQuote,
    root: TrustRoot,
    policy: AttestPolicy,
}

/// A P-256 enclave key, its CSR and a quote binding it.
fn fixture() -> Fixture {
    let enclave = enclave_key();
    let (csr_pem, report_data) = (enclave.csr_pem.clone(), binding(&enclave.key));
    fixture_for(enclave, csr_pem, report_data)
}

/// The test PKI and CA, and a quote over `report_data`; requests send `csr_pem`.
fn fixture_for(enclave: Enclave, csr_pem: String, report_data: [u8; 64]) -> Fixture {
    let pki = TestPki::new(NOW).unwrap();
    let ca = make_ca();
    let issuer = Issuer::new(&ca.key_pem, &ca.cert_pem).unwrap();
    let minted = pki
        .mint(&QuoteSpec::new(NOW, MRENCLAVE, MRSIGNER, report_data))
        .unwrap();
    let root = TrustRoot::Custom(minted.root_der.clone());
    Fixture {
        pki,
        ca,
        issuer,
        enclave,
        csr_pem,
        minted,
        root,
        policy: AttestPolicy::default(),
    }
}

impl Fixture {
    fn request<'a>(&'a self, rec: Option<&'a ApprovalRecord>) -> IssueRequest<'a> {
        IssueRequest {
            csr: self.csr_pem.as_bytes(),
            evidence: &self.minted.quote,
            collateral: &self.minted.collateral,
            policy: &self.policy,
            root: &self.root,
            approval: rec,
            subject: SUBJECT,
            lifetime_secs: None,
            now: NOW,
        }
    }
}

#[track_caller]
fn refusal(r: Result<Issued, IssueError>) -> (String, String) {
    match r {
        Err(IssueError::Refused { check, message }) => (check, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn openssl_verify(ca_pem: &str, leaf_pem: &str, at: u64) {
    if !kiln_tests::have_tool("openssl") {
        eprintln!("SKIPPED: openssl verify (openssl not installed)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    std::fs::write(dir.path().join("leaf.pem"), leaf_pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "verify",
            "-attime",
            &at.to_string(),
            "-purpose",
            "sslserver",
            "-CAfile",
        ])
        .arg(dir.path().join("ca.pem"))
        .arg(dir.path().join("leaf.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(dir.path().join("leaf.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("DNS:app.example.com"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
}

#[test]
fn an_approved_enclave_gets_a_chain_openssl_accepts() {
    let f = fixture();
    let rec = record(ApprovalStatus::Approved);
    let issued = issue(&f.issuer, &f.request(Some(&rec))).unwrap();
    assert_eq!(issued.approval_id, "rec-1");
    assert_eq!(issued.not_after - NOW, 24 * 3600);
    assert!(issued.not_before < NOW);
    assert!(issued.chain.starts_with(&issued.certificate));
    assert!(issued.chain.ends_with(f.issuer.ca_pem()));
    assert!(issued.report.passed);
    openssl_verify(&f.ca.cert_pem, &issued.certificate, NOW);
    // openssl refuses it after its lifetime.
    if kiln_tests::have_tool("openssl") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &f.ca.cert_pem).unwrap();
        std::fs::write(dir.path().join("leaf.pem"), &issued.certificate).unwrap();
        let ok = std::process::Command::new("openssl")
            .args([
                "verify",
                "-attime",
                &(NOW + 25 * 3600).to_string(),
                "-CAfile",
            ])
            .arg(dir.path().join("ca.pem"))
            .arg(dir.path().join("leaf.pem"))
            .output()
            .unwrap()
            .status
            .success();
        assert!(!ok, "expired leaf accepted");
    }

    // A shorter lifetime is honoured; a longer one than the maximum is refused.
    let mut req = f.request(Some(&rec));
    req.lifetime_secs = Some(600);
    let short = issue(&f.issuer, &req).unwrap();
    assert_eq!(short.not_after, NOW + 600);
    req.lifetime_secs = Some(f.issuer.max_lifetime_secs + 1);
    assert_eq!(refusal(issue(&f.issuer, &req)).0, "lifetime");

    // The leaf names the key of the CSR.
    let pem = x509_cert::der::DecodePem::from_pem(issued.certificate.as_bytes());
    let cert: x509_cert::Certificate = pem.unwrap();
    let spki =
        x509_cert::der::Encode::to_der(cert.tbs_certificate().subject_public_key_info()).unwrap();
    assert_eq!(spki, f.enclave.key.public_key_der());
}

#[test]
fn pending_revoked_and_missing_records_are_refused() {
    let f = fixture();
    let (c, m) = refusal(issue(&f.issuer, &f.request(None)));
    assert!(c == "approval" && m.contains("no approval record"), "{m}");
    let rec = record(ApprovalStatus::Pending);
    let (c, m) = refusal(issue(&f.issuer, &f.request(Some(&rec))));
    assert!(c == "approval" && m.contains("pending"), "{m}");
    let rec = record(ApprovalStatus::Revoked);
    let (c, m) = refusal(issue(&f.issuer, &f.request(Some(&rec))));
    assert!(c == "approval" && m.contains("revoked"), "{m}");
    // A record for other enclaves.
    let mut rec = record(ApprovalStatus::Approved);
    rec.mrenclave2 = None;
    let (c, _) = refusal(issue(&f.issuer, &f.request(Some(&rec))));
    assert_eq!(c, "approval");
}

#[test]
fn record_mismatches_are_refused() {
    let f = fixture();
    let mut rec = record(ApprovalStatus::Approved);
    rec.mrsigner = hex::encode([0x33; 32]);
    assert_eq!(
        refusal(issue(&f.issuer, &f.request(Some(&rec)))).0,
        "mrsigner"
    );
    let mut rec = record(ApprovalStatus::Approved);
    rec.isv_prod_id = 7;
    assert_eq!(
        refusal(issue(&f.issuer, &f.request(Some(&rec)))).0,
        "isv-prod-id"
    );
    let mut rec = record(ApprovalStatus::Approved);
    rec.isv_svn = 3;
    assert_eq!(
        refusal(issue(&f.issuer, &f.request(Some(&rec)))).0,
        "isv-svn"
    );
    let rec = record(ApprovalStatus::Approved);
    let mut req = f.request(Some(&rec));
    req.subject = "evil.example.com";
    let (c, m) = refusal(issue(&f.issuer, &req));
    assert!(c == "subject" && m.contains(SUBJECT), "{m}");
    req.subject = "not a name";
    assert!(matches!(
        issue(&f.issuer, &req),
        Err(IssueError::Input {
            field: "subject",
            ..
        })
    ));
}

#[test]
fn bad_evidence_is_refused() {
    let f = fixture();
    let rec = record(ApprovalStatus::Approved);

    // A quote made for another key.
    let other = enclave_key();
    let m = f
        .pki
        .mint(&QuoteSpec::new(
            NOW,
            MRENCLAVE,
            MRSIGNER,
            binding(&other.key),
        ))
        .unwrap();
    let mut req = f.request(Some(&rec));
    req.evidence = &m.quote;
    let (c, m) = refusal(issue(&f.issuer, &req));
    assert!(
        c == "key-binding" && m.contains("not made for this key"),
        "{m}"
    );

    // A changed signature byte.
    let mut q = f.minted.quote.clone();
    q[48 + 384 + 4 + 10] ^= 1;
    let mut req = f.request(Some(&rec));
    req.evidence = &q;
    assert_eq!(refusal(issue(&f.issuer, &req)).0, "quote/quote-signature");

    // A debug enclave, even when the policy would allow it.
    let mut s = QuoteSpec::new(NOW, MRENCLAVE, MRSIGNER, binding(&f.enclave.key));
    s.debug = true;
    let m = f.pki.mint(&s).unwrap();
    let allow = AttestPolicy {
        allow_debug: true,
        ..AttestPolicy::default()
    };
    let mut req = f.request(Some(&rec));
    req.evidence = &m.quote;
    req.policy = &allow;
    assert_eq!(refusal(issue(&f.issuer, &req)).0, "quote/debug");

    // Without the test root configured (Intel's root).
    let mut req = f.request(Some(&rec));
    req.root = &TrustRoot::Intel;
    assert_eq!(refusal(issue(&f.issuer, &req)).0, "quote/quote-signature");

    // Expired collateral.
    let mut req = f.request(Some(&rec));
    req.now = NOW + 31 * 86_400;
    assert_eq!(refusal(issue(&f.issuer, &req)).0, "quote/collateral-time");

    // An unaccepted TCB status.
    let mut s = QuoteSpec::new(NOW, MRENCLAVE, MRSIGNER, binding(&f.enclave.key));
    s.tcb_status = "OutOfDate".into();
    let m = f.pki.mint(&s).unwrap();
    let mut req = f.request(Some(&rec));
    req.evidence = &m.quote;
    req.collateral = &m.collateral;
    assert_eq!(refusal(issue(&f.issuer, &req)).0, "quote/tcb-status");

    // Garbage evidence is an input error, not a panic.
    let mut req = f.request(Some(&rec));
    req.evidence = b"\x03\x00garbage";
    assert!(matches!(
        issue(&f.issuer, &req),
        Err(IssueError::Input {
            field: "evidence",
            ..
        })
    ));
}

#[test]
fn bad_csrs_are_refused() {
    let f = fixture();
    let rec = record(ApprovalStatus::Approved);
    let mut req = f.request(Some(&rec));
    req.csr = b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    assert!(matches!(
        issue(&f.issuer, &req),
        Err(IssueError::Input { field: "csr", .. })
    ));
    // A CSR whose signature does not verify: change a byte of its signature.
    let der = pem_der(&f.enclave.csr_pem);
    let mut bad = der.clone();
    let n = bad.len();
    bad[n - 5] ^= 1;
    req.csr = &bad;
    assert_eq!(refusal(issue(&f.issuer, &req)).0, "csr");
    // The DER form of the good CSR is read too.
    req.csr = &der;
    issue(&f.issuer, &req).unwrap();
}

/// kiln-init's keys are RSA (2048..16384 bits): a CSR signed sha256WithRSAEncryption
/// issues, the leaf keeps the RSA key (the CA still signs with P-256), and a changed RSA
/// signature is refused by `csr`.
#[test]
fn an_rsa_csr_issues_and_a_changed_rsa_signature_is_refused() {
    let key = KeyPair::from_pem_and_sign_algo(
        kiln_tests::certs::TOKEN_SIGNING_KEY_PEM,
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, SUBJECT);
    let csr_pem = p.serialize_request(&key).unwrap().pem().unwrap();
    let csr_der = pem_der(&csr_pem);
    let parsed =
        <x509_cert::request::CertReq as x509_cert::der::Decode>::from_der(&csr_der).unwrap();
    assert_eq!(parsed.algorithm.oid.to_string(), "1.2.840.113549.1.1.11");
    let spki = x509_cert::der::Encode::to_der(&parsed.info.public_key).unwrap();
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&Sha256::digest(&spki));
    let f = fixture_for(enclave_key(), csr_pem, rd);
    let rec = record(ApprovalStatus::Approved);
    let mut req = f.request(Some(&rec));
    let issued = issue(&f.issuer, &req).unwrap();
    openssl_verify(&f.ca.cert_pem, &issued.certificate, NOW);
    let cert: x509_cert::Certificate =
        x509_cert::der::DecodePem::from_pem(issued.certificate.as_bytes()).unwrap();
    let tbs = cert.tbs_certificate();
    assert_eq!(
        x509_cert::der::Encode::to_der(tbs.subject_public_key_info()).unwrap(),
        spki
    );
    assert_eq!(
        tbs.subject_public_key_info().algorithm.oid.to_string(),
        "1.2.840.113549.1.1.1"
    );
    assert_eq!(
        cert.signature_algorithm().oid.to_string(),
        "1.2.840.10045.4.3.2"
    );

    let mut bad = csr_der.clone();
    let n = bad.len();
    bad[n - 7] ^= 0x10;
    req.csr = &bad;
    let (c, m) = refusal(issue(&f.issuer, &req));
    assert!(c == "csr" && m.contains("does not verify"), "{c}: {m}");
}

/// The interface kiln-init and the manager share: kiln-init's CSR (RSA, x509-cert's
/// builder) and its report data (`kiln_init::cert::report_data` of the CSR's key) pass
/// `csr` and `key-binding`, and the chain's leaf carries kiln-init's key.
#[test]
fn kiln_inits_csr_and_report_data_issue() {
    let key = kiln_init::cert::generate_key(2048).unwrap();
    let (csr, spki) = kiln_init::cert::build_csr(&key, SUBJECT).unwrap();
    assert_eq!(spki, key.spki_der);
    let f = fixture_for(enclave_key(), csr, kiln_init::cert::report_data(&spki));
    let rec = record(ApprovalStatus::Approved);
    let issued = issue(&f.issuer, &f.request(Some(&rec))).unwrap();
    let cert: x509_cert::Certificate =
        x509_cert::der::DecodePem::from_pem(issued.certificate.as_bytes()).unwrap();
    assert_eq!(
        x509_cert::der::Encode::to_der(cert.tbs_certificate().subject_public_key_info()).unwrap(),
        key.spki_der
    );
    openssl_verify(&f.ca.cert_pem, &issued.certificate, NOW);
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

#[test]
fn ra_tls_certificates_bind_their_key() {
    let f = fixture();
    let rec = record(ApprovalStatus::Approved);
    // An RA-TLS certificate (legacy extension, as kiln-init writes it) for the enclave key.
    let mut p = CertificateParams::new(vec![SUBJECT.to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "ra-tls");
    p.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 2, 840, 113741, 1337, 6],
        f.minted.quote.clone(),
    )];
    let cert = p.self_signed(&f.enclave.key).unwrap().pem();
    let mut req = f.request(Some(&rec));
    req.evidence = cert.as_bytes();
    issue(&f.issuer, &req).unwrap();
    // A CSR for another key with that certificate.
    let other = enclave_key();
    req.csr = other.csr_pem.as_bytes();
    assert_eq!(refusal(issue(&f.issuer, &req)).0, "key-binding");
}

#[test]
fn unusable_ca_configuration_is_named() {
    let ca = make_ca();
    let other = make_ca();
    let e = Issuer::new(&ca.key_pem, &other.cert_pem).unwrap_err();
    assert!(
        matches!(e, IssueError::Config(_))
            && e.to_string().contains("not the CA certificate's key"),
        "{e}"
    );
    let e = Issuer::new("", &ca.cert_pem).unwrap_err().to_string();
    assert!(e.contains("CA key"), "{e}");
    let e = Issuer::new(&ca.key_pem, "nope").unwrap_err().to_string();
    assert!(e.contains("CA certificate"), "{e}");
    // An RSA key is not supported.
    let rsa = KeyPair::from_pem_and_sign_algo(
        kiln_tests::certs::TOKEN_SIGNING_KEY_PEM,
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap()
    .serialize_pem();
    let e = Issuer::new(&rsa, &ca.cert_pem).unwrap_err().to_string();
    assert!(e.contains("P-256") && !e.contains("BEGIN"), "{e}");
}
