//! MANAGER_CA issuance (`kiln_engine::attest::issue`), natively and in headless Chromium,
//! on the TEST-root fixture in engine/testdata/attest/manager (written by
//! `cargo run -p kiln-tests --example issue_fixture`; see its README). The TEST root is
//! passed explicitly: with Intel's root the same quote is refused. The full matrix of
//! refusals (with freshly minted quotes and `openssl verify`) is tests/tests/manager_issue.rs.

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use kiln_engine::attest::issue::{
    issue, ApprovalRecord, ApprovalStatus, IssueError, IssueRequest, Issued, Issuer,
};
use kiln_engine::attest::{read_collateral, AttestPolicy, QuoteCollateralV3, TrustRoot};
use x509_cert::der::{DecodePem as _, Encode as _};

const ROOT: &[u8] = include_bytes!("../testdata/attest/manager/root.der");
const COLLATERAL: &[u8] = include_bytes!("../testdata/attest/manager/collateral.json");
const QUOTE: &[u8] = include_bytes!("../testdata/attest/manager/quote.bin");
const QUOTE_DEBUG: &[u8] = include_bytes!("../testdata/attest/manager/quote-debug.bin");
const CSR: &[u8] = include_bytes!("../testdata/attest/manager/csr.pem");
const CSR_OTHER: &[u8] = include_bytes!("../testdata/attest/manager/csr-other.pem");
const CA_KEY: &str = include_str!("../testdata/attest/manager/ca-key.pem");
const CA: &str = include_str!("../testdata/attest/manager/ca.pem");
const NOW: u64 = 1_790_000_000;

fn record(status: ApprovalStatus) -> ApprovalRecord {
    ApprovalRecord {
        id: "r1".into(),
        mrenclave: "11".repeat(32),
        mrenclave2: None,
        mrsigner: "22".repeat(32),
        isv_prod_id: 0,
        isv_svn: 0,
        image: "registry.example/app:kiln".into(),
        allowed_subjects: vec!["app.example.com".into()],
        status,
        created_at: NOW,
        updated_at: NOW,
    }
}

struct F {
    issuer: Issuer,
    collateral: QuoteCollateralV3,
    root: TrustRoot,
    policy: AttestPolicy,
}

fn f() -> F {
    F {
        issuer: Issuer::new(CA_KEY, CA).expect("test CA"),
        collateral: read_collateral(COLLATERAL).expect("collateral"),
        root: TrustRoot::Custom(ROOT.to_vec()),
        policy: AttestPolicy::default(),
    }
}

impl F {
    fn req<'a>(&'a self, rec: &'a ApprovalRecord) -> IssueRequest<'a> {
        IssueRequest {
            csr: CSR,
            evidence: QUOTE,
            collateral: &self.collateral,
            policy: &self.policy,
            root: &self.root,
            approval: Some(rec),
            subject: "app.example.com",
            lifetime_secs: None,
            now: NOW,
        }
    }
}

#[track_caller]
fn check_of(r: Result<Issued, IssueError>) -> String {
    match r {
        Err(IssueError::Refused { check, .. }) => check,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn approved_enclave_gets_a_leaf_signed_by_the_ca() {
    let f = f();
    let rec = record(ApprovalStatus::Approved);
    let issued = issue(&f.issuer, &f.req(&rec)).expect("issued");
    assert_eq!(issued.not_after, NOW + 24 * 3600);
    let leaf = x509_cert::Certificate::from_pem(issued.certificate.as_bytes()).unwrap();
    let ca = x509_cert::Certificate::from_pem(CA.as_bytes()).unwrap();
    assert_eq!(
        leaf.tbs_certificate().issuer().to_der().unwrap(),
        ca.tbs_certificate().subject().to_der().unwrap()
    );
    assert_eq!(
        leaf.tbs_certificate().subject().to_string(),
        "CN=app.example.com"
    );
    // The same inputs give the same certificate (deterministic signatures and serial).
    let again = issue(&f.issuer, &f.req(&rec)).unwrap();
    assert_eq!(again.certificate, issued.certificate);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn refusals_name_the_check() {
    let f = f();
    let approved = record(ApprovalStatus::Approved);
    let pending = record(ApprovalStatus::Pending);
    let revoked = record(ApprovalStatus::Revoked);
    assert_eq!(check_of(issue(&f.issuer, &f.req(&pending))), "approval");
    assert_eq!(check_of(issue(&f.issuer, &f.req(&revoked))), "approval");
    let mut r = f.req(&approved);
    r.approval = None;
    assert_eq!(check_of(issue(&f.issuer, &r)), "approval");

    let mut r = f.req(&approved);
    r.csr = CSR_OTHER;
    assert_eq!(check_of(issue(&f.issuer, &r)), "key-binding");

    let mut r = f.req(&approved);
    r.evidence = QUOTE_DEBUG;
    assert_eq!(check_of(issue(&f.issuer, &r)), "quote/debug");

    let mut bad = QUOTE.to_vec();
    bad[48 + 384 + 4 + 1] ^= 1;
    let mut r = f.req(&approved);
    r.evidence = &bad;
    assert_eq!(check_of(issue(&f.issuer, &r)), "quote/quote-signature");

    let mut r = f.req(&approved);
    r.root = &TrustRoot::Intel;
    assert_eq!(check_of(issue(&f.issuer, &r)), "quote/quote-signature");

    let mut r = f.req(&approved);
    r.now = NOW + 40 * 86_400;
    assert_eq!(check_of(issue(&f.issuer, &r)), "quote/collateral-time");

    let mut r = f.req(&approved);
    r.subject = "other.example.com";
    assert_eq!(check_of(issue(&f.issuer, &r)), "subject");
}
