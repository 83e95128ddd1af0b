//! The engine's quote verifier (dcap-qvl) on quotes minted under a TEST root
//! (kiln_tests::test_quotes): it passes them only when that root is configured, and
//! refuses each kind of bad evidence.

use kiln_engine::attest::{
    read_collateral, read_evidence, verify_evidence, AttestPolicy, AttestReport, TrustRoot,
};
use kiln_engine::verify::CheckStatus;
use kiln_tests::test_quotes::{MintedQuote, QuoteSpec, TestPki};

const NOW: u64 = 1_790_000_000; // 2026-09-21

fn spec() -> QuoteSpec {
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&[0xAB; 32]);
    QuoteSpec::new(NOW, [0x11; 32], [0x22; 32], rd)
}

fn verify(
    m: &MintedQuote,
    quote: &[u8],
    at: u64,
    policy: &AttestPolicy,
    root: &TrustRoot,
) -> AttestReport {
    let ev = read_evidence(quote).expect("evidence");
    verify_evidence(&ev, &m.collateral, at, policy, root, None).expect("report")
}

fn failed(r: &AttestReport) -> Vec<String> {
    r.checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| format!("{}: {}", c.id, c.explanation))
        .collect()
}

fn has_failed(r: &AttestReport, id: &str) -> bool {
    r.checks
        .iter()
        .any(|c| c.id == id && c.status == CheckStatus::Fail)
}

#[test]
fn minted_quote_passes_under_its_test_root_only() {
    let pki = TestPki::new(NOW).unwrap();
    let m = pki.mint(&spec()).unwrap();
    let root = TrustRoot::Custom(m.root_der.clone());
    let r = verify(&m, &m.quote, NOW, &AttestPolicy::default(), &root);
    assert!(r.passed, "{:#?}", failed(&r));
    assert_eq!(r.tcb_status.as_deref(), Some("UpToDate"));
    let e = r.enclave.as_ref().unwrap();
    assert_eq!(e.mrenclave, "11".repeat(32));
    assert_eq!(e.mrsigner, "22".repeat(32));
    assert!(!e.debug && e.mode64bit);
    assert_eq!(&e.report_data[..64], "ab".repeat(32));

    // The collateral JSON is what the engine's parser reads.
    let c = read_collateral(m.collateral_json.as_bytes()).unwrap();
    assert_eq!(c, m.collateral);

    // Hex text evidence, as mint_quote prints it, reads the same.
    let hex = hex::encode(&m.quote);
    let r = verify(&m, hex.as_bytes(), NOW, &AttestPolicy::default(), &root);
    assert!(r.passed, "{:#?}", failed(&r));

    // Without a configured root, Intel's is used: the test chain is refused.
    let r = verify(
        &m,
        &m.quote,
        NOW,
        &AttestPolicy::default(),
        &TrustRoot::Intel,
    );
    assert!(
        !r.passed && has_failed(&r, "quote-signature"),
        "{:#?}",
        r.checks
    );

    // A second PKI's root does not verify the first one's quotes.
    let other = TestPki::new(NOW).unwrap();
    let r = verify(
        &m,
        &m.quote,
        NOW,
        &AttestPolicy::default(),
        &TrustRoot::Custom(other.root_der()),
    );
    assert!(has_failed(&r, "quote-signature"), "{:#?}", r.checks);
}

#[test]
fn changed_bytes_are_refused() {
    let pki = TestPki::new(NOW).unwrap();
    let m = pki.mint(&spec()).unwrap();
    let root = TrustRoot::Custom(m.root_der.clone());
    // header 48 + report 384 + auth length 4: the ISV signature, then the attestation
    // key, the QE report, its signature.
    let isv_sig = 48 + 384 + 4;
    let places = [
        ("header", 10),
        ("mrenclave", 48 + 64),
        ("report data", 48 + 320),
        ("isv signature", isv_sig + 5),
        ("attestation key", isv_sig + 64 + 7),
        ("qe report", isv_sig + 128 + 100),
        ("qe report signature", isv_sig + 128 + 384 + 3),
        ("qe auth data", isv_sig + 128 + 384 + 64 + 2 + 1),
    ];
    for (what, at) in places {
        let mut q = m.quote.clone();
        q[at] ^= 0x01;
        let r = verify(&m, &q, NOW, &AttestPolicy::default(), &root);
        assert!(
            has_failed(&r, "quote-signature"),
            "{what} (byte {at}) changed but passed: {:#?}",
            r.checks
        );
    }
}

#[test]
fn expired_and_future_collateral_is_refused() {
    let pki = TestPki::new(NOW).unwrap();
    let s = spec();
    let m = pki.mint(&s).unwrap();
    let root = TrustRoot::Custom(m.root_der.clone());
    let after = s.issued_at + s.validity_secs + 1;
    let r = verify(&m, &m.quote, after, &AttestPolicy::default(), &root);
    assert!(has_failed(&r, "collateral-time"), "{:#?}", r.checks);
    assert!(has_failed(&r, "quote-signature"), "{:#?}", r.checks);
    let before = s.issued_at - 1;
    let r = verify(&m, &m.quote, before, &AttestPolicy::default(), &root);
    assert!(has_failed(&r, "collateral-time"), "{:#?}", r.checks);

    // Short-lived collateral: expired a minute after issue.
    let mut short = spec();
    short.validity_secs = 60;
    let m = pki.mint(&short).unwrap();
    let r = verify(&m, &m.quote, NOW, &AttestPolicy::default(), &root);
    assert!(has_failed(&r, "collateral-time"), "{:#?}", r.checks);
}

#[test]
fn debug_enclaves_are_refused_by_default() {
    let pki = TestPki::new(NOW).unwrap();
    let mut s = spec();
    s.debug = true;
    let m = pki.mint(&s).unwrap();
    let root = TrustRoot::Custom(m.root_der.clone());
    let r = verify(&m, &m.quote, NOW, &AttestPolicy::default(), &root);
    assert!(!r.passed, "{:#?}", r.checks);
    assert_eq!(failed(&r).len(), 1, "{:#?}", failed(&r));
    assert!(has_failed(&r, "debug"));
    assert!(r.enclave.as_ref().unwrap().debug);
    let allow = AttestPolicy {
        allow_debug: true,
        ..AttestPolicy::default()
    };
    let r = verify(&m, &m.quote, NOW, &allow, &root);
    assert!(r.passed, "{:#?}", failed(&r));
}

#[test]
fn tcb_status_must_be_accepted() {
    let pki = TestPki::new(NOW).unwrap();
    let mut s = spec();
    s.tcb_status = "OutOfDate".into();
    s.advisory_ids = vec!["INTEL-SA-00615".into()];
    let m = pki.mint(&s).unwrap();
    let root = TrustRoot::Custom(m.root_der.clone());
    let r = verify(&m, &m.quote, NOW, &AttestPolicy::default(), &root);
    assert_eq!(r.tcb_status.as_deref(), Some("OutOfDate"));
    assert_eq!(r.advisory_ids, ["INTEL-SA-00615"]);
    assert!(has_failed(&r, "tcb-status") && !r.passed, "{:#?}", r.checks);
    let allow = AttestPolicy {
        allowed_tcb_statuses: vec!["UpToDate".into(), "OutOfDate".into()],
        ..AttestPolicy::default()
    };
    let r = verify(&m, &m.quote, NOW, &allow, &root);
    assert!(r.passed, "{:#?}", failed(&r));

    // Revoked is refused whatever the policy.
    s.tcb_status = "Revoked".into();
    let m = pki.mint(&s).unwrap();
    let r = verify(&m, &m.quote, NOW, &allow, &root);
    assert!(has_failed(&r, "quote-signature"), "{:#?}", r.checks);
}

#[test]
fn a_saved_pki_mints_quotes_under_the_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(NOW).unwrap();
    pki.save(dir.path()).unwrap();
    let m = pki.mint(&spec()).unwrap();
    let again = TestPki::load(dir.path()).unwrap();
    let m2 = again.mint(&spec()).unwrap();
    // Either root certificate (same key and name) verifies either quote.
    for root in [&m.root_der, &m2.root_der] {
        for q in [&m, &m2] {
            let r = verify(
                q,
                &q.quote,
                NOW,
                &AttestPolicy::default(),
                &TrustRoot::Custom(root.clone()),
            );
            assert!(r.passed, "{:#?}", failed(&r));
        }
    }
}

#[test]
fn the_cli_never_trusts_the_test_root() {
    // `kiln attest verify` has no way to configure another root: a TEST-root quote with
    // its own collateral is refused (exit 2, quote-signature FAIL).
    let pki = TestPki::new(NOW).unwrap();
    let m = pki.mint(&spec()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("quote.hex");
    let c = dir.path().join("collateral.json");
    std::fs::write(&q, hex::encode(&m.quote)).unwrap();
    std::fs::write(&c, &m.collateral_json).unwrap();
    let kiln = kiln_tests::cli::kiln_bin().unwrap();
    let out = std::process::Command::new(kiln)
        .args(["attest", "verify"])
        .arg(&q)
        .arg("--collateral")
        .arg(&c)
        .args(["--at", &NOW.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("FAIL quote/quote-signature"), "{text}");
}
