//! Writes the TEST-root fixture of engine/tests/attest_issue.rs (which runs natively and in
//! headless Chromium, where the quotes cannot be minted): into DIR (default
//! engine/testdata/attest/manager) `root.der` (the TEST root), `collateral.json`, quotes
//! `quote.bin` (production enclave, report data = SHA-256 of `csr.pem`'s key),
//! `quote-debug.bin` (same, DEBUG set), a second key's `csr-other.pem`, and a TEST manager
//! CA `ca-key.pem` / `ca.pem`. Everything is issued at 2026-09-21T14:13:20Z
//! (1790000000), the collateral valid 30 days from an hour before.
//!
//! `cargo run -p kiln-tests --example issue_fixture [-- DIR]`

use std::path::PathBuf;

use kiln_tests::test_quotes::{QuoteSpec, TestPki};
use kiln_tests::HarnessError;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use sha2::{Digest as _, Sha256};

const NOW: u64 = 1_790_000_000;

fn csr(key: &KeyPair) -> Result<String, HarnessError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, "enclave");
    Ok(p.serialize_request(key)?.pem()?)
}

fn main() -> Result<(), HarnessError> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("engine/testdata/attest/manager"));
    std::fs::create_dir_all(&dir)?;
    let pki = TestPki::new(NOW)?;
    let key = KeyPair::generate()?;
    let other = KeyPair::generate()?;
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&Sha256::digest(key.public_key_der()));
    let mut spec = QuoteSpec::new(NOW, [0x11; 32], [0x22; 32], rd);
    let m = pki.mint(&spec)?;
    spec.debug = true;
    let debug = pki.quote(&spec)?;

    let ca_key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name
        .push(DnType::CommonName, "kiln TEST manager CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = p.self_signed(&ca_key)?;

    std::fs::write(dir.join("root.der"), &m.root_der)?;
    std::fs::write(dir.join("collateral.json"), &m.collateral_json)?;
    std::fs::write(dir.join("quote.bin"), &m.quote)?;
    std::fs::write(dir.join("quote-debug.bin"), debug)?;
    std::fs::write(dir.join("csr.pem"), csr(&key)?)?;
    std::fs::write(dir.join("csr-other.pem"), csr(&other)?)?;
    std::fs::write(dir.join("ca-key.pem"), ca_key.serialize_pem())?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    println!("wrote {}", dir.display());
    Ok(())
}
