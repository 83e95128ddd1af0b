//! dcap-qvl's sample SGX quote and collateral (engine/testdata/attest, see its README) as
//! vectors for `kiln_engine::attest`, natively and in headless Chromium: the real quote
//! verifies at a time inside the collateral's validity with status
//! ConfigurationAndSWHardeningNeeded (advisories INTEL-SA-00289, INTEL-SA-00615), which
//! passes only when that status is allowed; every single-byte change of the quote's
//! signed body (header and report) is refused by the real verifier (natively every byte,
//! in wasm a sample); expired collateral, a wrong expected MRENCLAVE, a bad collateral
//! signature and certificates whose key the quote does not bind are refused.

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use kiln_engine::attest::{
    read_collateral, read_evidence, verify_evidence, AttestPolicy, AttestReport, ImageEnclaves,
    QuoteCollateralV3, RaTlsFormat, TrustRoot,
};
use kiln_engine::verify::CheckStatus;

const QUOTE: &[u8] = include_bytes!("../testdata/attest/sgx_quote");
const COLLATERAL: &[u8] = include_bytes!("../testdata/attest/sgx_quote_collateral.json");
const CERT_LEGACY: &[u8] = include_bytes!("../testdata/attest/ratls-legacy.pem");
const CERT_GRAMINE_OID: &[u8] = include_bytes!("../testdata/attest/ratls-gramine-legacy-oid.pem");
const CERT_DICE: &[u8] = include_bytes!("../testdata/attest/ratls-tcg-dice.pem");
const MRENCLAVE: &str = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";
const MRSIGNER: &str = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6";
/// SHA-256 of the test certificates' SubjectPublicKeyInfo, computed by OpenSSL.
const SPKI_SHA256: &str = "db2d1ec6605b11baff6dfe208511cc41019a2431a598f4a8fd74062d0c0db03e";
/// 2025-07-01T00:00:00Z: inside every validity window of the sample collateral.
const INSIDE: u64 = 1_751_328_000;
/// 2025-08-01T00:00:00Z: after the TCB info's and QE identity's nextUpdate (2025-07-19).
const AFTER: u64 = 1_754_006_400;
/// Header (48 bytes) and SGX report body (384 bytes): what the attestation key signs.
const SIGNED_LEN: usize = 48 + 384;

fn collateral() -> QuoteCollateralV3 {
    read_collateral(COLLATERAL).expect("sample collateral parses")
}

fn allowing_sample_status() -> AttestPolicy {
    AttestPolicy {
        allowed_tcb_statuses: vec![
            "UpToDate".into(),
            "ConfigurationAndSWHardeningNeeded".into(),
        ],
        ..AttestPolicy::default()
    }
}

fn verify_with(
    evidence: &[u8],
    c: &QuoteCollateralV3,
    at: u64,
    policy: &AttestPolicy,
    image: Option<&ImageEnclaves>,
) -> AttestReport {
    let ev = read_evidence(evidence).expect("evidence reads");
    verify_evidence(&ev, c, at, policy, &TrustRoot::Intel, image).expect("quote parses")
}

fn verify(evidence: &[u8], at: u64, policy: &AttestPolicy) -> AttestReport {
    verify_with(evidence, &collateral(), at, policy, None)
}

fn status(r: &AttestReport, id: &str) -> Option<CheckStatus> {
    r.checks.iter().find(|c| c.id == id).map(|c| c.status)
}

fn failed(r: &AttestReport) -> Vec<&str> {
    r.failures().map(|c| c.id.as_str()).collect()
}

fn explanation<'a>(r: &'a AttestReport, id: &str) -> &'a str {
    r.checks
        .iter()
        .find(|c| c.id == id)
        .map_or("", |c| c.explanation.as_str())
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn sample_quote_passes_when_its_status_is_allowed() {
    let r = verify(QUOTE, INSIDE, &allowing_sample_status());
    assert!(r.passed, "{r:#?}");
    assert_eq!(
        r.tcb_status.as_deref(),
        Some("ConfigurationAndSWHardeningNeeded")
    );
    assert_eq!(r.advisory_ids, ["INTEL-SA-00289", "INTEL-SA-00615"]);
    assert_eq!(r.quote_version, 3);
    assert_eq!(r.evidence, "quote");
    assert_eq!(r.verified_at, "2025-07-01T00:00:00Z");
    let e = r.enclave.as_ref().expect("SGX report");
    assert_eq!(e.mrenclave, MRENCLAVE);
    assert_eq!(e.mrsigner, MRSIGNER);
    assert_eq!((e.isv_prod_id, e.isv_svn), (0, 0));
    assert!(!e.debug && e.mode64bit);
    assert!(e.report_data.starts_with(&hex::encode(b"Hello, world!")));
    let ids: Vec<_> = r.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "tee",
            "collateral-time",
            "quote-signature",
            "tcb-status",
            "debug"
        ]
    );
    // The hex form of the same quote reads the same.
    let hex_quote = hex::encode(QUOTE);
    assert_eq!(
        verify(hex_quote.as_bytes(), INSIDE, &allowing_sample_status()),
        r
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn default_policy_refuses_the_sample_status_and_nothing_else() {
    let r = verify(QUOTE, INSIDE, &AttestPolicy::default());
    assert!(!r.passed);
    assert_eq!(failed(&r), ["tcb-status"], "{r:#?}");
    assert!(explanation(&r, "tcb-status").contains("ConfigurationAndSWHardeningNeeded"));
    assert!(explanation(&r, "tcb-status").contains("INTEL-SA-00615"));
    // Allowing a different non-UpToDate status does not help.
    let other = AttestPolicy {
        allowed_tcb_statuses: vec!["SWHardeningNeeded".into(), "ConfigurationNeeded".into()],
        ..AttestPolicy::default()
    };
    assert_eq!(failed(&verify(QUOTE, INSIDE, &other)), ["tcb-status"]);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn expired_and_not_yet_valid_collateral_is_refused() {
    let r = verify(QUOTE, AFTER, &allowing_sample_status());
    assert!(!r.passed);
    let f = failed(&r);
    assert!(
        f.contains(&"collateral-time") && f.contains(&"quote-signature"),
        "{r:#?}"
    );
    assert!(explanation(&r, "collateral-time").contains("expired at 2025-07-19T10:"));
    assert!(
        explanation(&r, "quote-signature").contains("expired"),
        "{r:#?}"
    );
    assert_eq!(r.tcb_status, None);
    // 2025-01-01: before the collateral was issued.
    let r = verify(QUOTE, 1_735_689_600, &allowing_sample_status());
    assert!(explanation(&r, "collateral-time").contains("not yet valid"));
    assert_eq!(status(&r, "quote-signature"), Some(CheckStatus::Fail));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn expected_measurements() {
    let mut p = allowing_sample_status();
    p.expect_mrenclave = Some(MRENCLAVE.to_uppercase());
    p.expect_mrsigner = Some(MRSIGNER.into());
    let r = verify(QUOTE, INSIDE, &p);
    assert!(r.passed, "{r:#?}");
    assert_eq!(status(&r, "expected-mrenclave"), Some(CheckStatus::Pass));
    p.expect_mrenclave = Some("00".repeat(32));
    let r = verify(QUOTE, INSIDE, &p);
    assert_eq!(failed(&r), ["expected-mrenclave"]);
    assert!(explanation(&r, "expected-mrenclave").contains(MRENCLAVE));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn image_enclaves_name_the_running_one() {
    let image = |sgx1: &str, edmm: &str| ImageEnclaves {
        image: "registry.example/app:1".into(),
        manifest_digest: "sha256:00".into(),
        image_verified: true,
        mrenclaves: vec![("sgx1".into(), sgx1.into()), ("edmm".into(), edmm.into())],
        mrsigner: Some(MRSIGNER.into()),
    };
    let other = "11".repeat(32);
    let p = allowing_sample_status();
    let r = verify_with(
        QUOTE,
        &collateral(),
        INSIDE,
        &p,
        Some(&image(&other, MRENCLAVE)),
    );
    assert!(r.passed, "{r:#?}");
    assert_eq!(r.image_enclave.as_deref(), Some("edmm"));
    assert!(explanation(&r, "image-enclave").contains("EDMM enclave (mrenclave2)"));
    let r = verify_with(
        QUOTE,
        &collateral(),
        INSIDE,
        &p,
        Some(&image(MRENCLAVE, &other)),
    );
    assert_eq!(r.image_enclave.as_deref(), Some("sgx1"));
    let r = verify_with(
        QUOTE,
        &collateral(),
        INSIDE,
        &p,
        Some(&image(&other, &other)),
    );
    assert_eq!(failed(&r), ["image-enclave"]);
    assert_eq!(r.image_enclave, None);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn collateral_signature_changes_are_refused() {
    // Bad signature: one bit of the TCB info's signature, then of the signed TCB info.
    let mut c = collateral();
    c.tcb_info_signature[10] ^= 1;
    let r = verify_with(QUOTE, &c, INSIDE, &allowing_sample_status(), None);
    assert_eq!(status(&r, "quote-signature"), Some(CheckStatus::Fail));
    assert!(
        explanation(&r, "quote-signature").contains("tcb_info"),
        "{r:#?}"
    );
    let mut c = collateral();
    assert!(c.tcb_info.contains("\"tcbEvaluationDataNumber\":17"));
    c.tcb_info = c.tcb_info.replacen(
        "\"tcbEvaluationDataNumber\":17",
        "\"tcbEvaluationDataNumber\":18",
        1,
    );
    let r = verify_with(QUOTE, &c, INSIDE, &allowing_sample_status(), None);
    assert_eq!(status(&r, "quote-signature"), Some(CheckStatus::Fail));
    let mut c = collateral();
    c.qe_identity_signature[0] ^= 0x80;
    let r = verify_with(QUOTE, &c, INSIDE, &allowing_sample_status(), None);
    assert_eq!(status(&r, "quote-signature"), Some(CheckStatus::Fail));
}

fn tamper_refused(i: usize) {
    let mut q = QUOTE.to_vec();
    q[i] ^= 0x01;
    let ev = match read_evidence(&q) {
        Ok(ev) => ev,
        Err(_) => return, // refused before verification: fine
    };
    let r = match verify_evidence(
        &ev,
        &collateral(),
        INSIDE,
        &allowing_sample_status(),
        &TrustRoot::Intel,
        None,
    ) {
        Ok(r) => r,
        Err(_) => return, // the changed quote no longer parses: refused
    };
    assert!(!r.passed, "byte {i} changed and still verified: {r:#?}");
    assert!(
        r.checks
            .iter()
            .any(|c| c.status == CheckStatus::Fail && (c.id == "quote-signature" || c.id == "tee")),
        "byte {i}: {r:#?}"
    );
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn every_single_byte_change_of_the_signed_body_is_refused() {
    for i in 0..SIGNED_LEN {
        tamper_refused(i);
    }
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
fn a_sample_of_single_byte_changes_is_refused() {
    // Header bytes, MRENCLAVE, MRSIGNER, attributes, ISV ids, report data: every 7th byte.
    for i in (0..SIGNED_LEN).step_by(7) {
        tamper_refused(i);
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn changes_of_the_signature_and_qe_data_are_refused() {
    // Past the signed body: the ECDSA signature (64 bytes after the 4-byte length),
    // the attestation key, the QE report, its signature.
    for i in (SIGNED_LEN..SIGNED_LEN + 4 + 64 + 64 + 384 + 64).step_by(5) {
        tamper_refused(i);
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn certificates_carry_the_quote_but_do_not_bind_their_key() {
    for (pem, format) in [
        (CERT_LEGACY, RaTlsFormat::Legacy),
        (CERT_GRAMINE_OID, RaTlsFormat::Legacy),
        (CERT_DICE, RaTlsFormat::TcgDice),
    ] {
        let ev = read_evidence(pem).expect("certificate reads");
        assert_eq!(ev.quote, QUOTE);
        let cert = ev.certificate.as_ref().expect("a certificate");
        assert_eq!(cert.format, format);
        assert_eq!(hex::encode(cert.spki_sha256), SPKI_SHA256);
        assert_eq!(cert.claims_bind_key, Ok(()));
        assert!(
            cert.subject.contains("kiln attest test"),
            "{}",
            cert.subject
        );
        let r = verify(pem, INSIDE, &allowing_sample_status());
        assert_eq!(failed(&r), ["report-data-binding"], "{r:#?}");
        assert!(
            explanation(&r, "report-data-binding").contains("not made for this certificate's key")
        );
        assert!(r.evidence.starts_with("ra-tls certificate"));
    }
}

/// Hostile input never panics: every truncation of the quote, and every single-byte change
/// and truncation of a DER RA-TLS certificate, is either refused or read.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn damaged_quotes_and_certificates_do_not_panic() {
    let c = collateral();
    for len in 0..QUOTE.len() {
        if let Ok(ev) = read_evidence(&QUOTE[..len]) {
            if let Ok(r) = verify_evidence(
                &ev,
                &c,
                INSIDE,
                &allowing_sample_status(),
                &TrustRoot::Intel,
                None,
            ) {
                assert!(!r.passed, "quote cut to {len} bytes verified");
            }
        }
    }
    let pem = std::str::from_utf8(CERT_DICE).expect("PEM text");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64")
    };
    assert_eq!(
        read_evidence(&der).map(|e| e.quote).ok().as_deref(),
        Some(QUOTE)
    );
    for i in 0..der.len() {
        let mut d = der.clone();
        d[i] ^= 0xff;
        let _ = read_evidence(&d);
        let _ = read_evidence(&der[..i]);
    }
}
