//! Mints an SGX DCAP quote (v3) under a TEST root CA (`kiln_tests::test_quotes`) for tests
//! outside Rust (the worker's node tests), and prints one JSON line:
//! `{"quoteHex", "quoteBase64", "collateral", "rootPem", "mrenclave", "mrsigner",
//! "reportData", "debug", "tcbStatus", "issuedAt", "nextUpdate"}`; `collateral` is the
//! object `kiln attest verify --collateral` and `POST /attest/verify` take.
//!
//! ```sh
//! cargo run -p kiln-tests --example mint_quote -- --pki /tmp/pki \
//!   --mrenclave 11..11 --mrsigner 22..22 --report-data ab..ab [--debug] \
//!   [--isv-prod-id N] [--isv-svn N] [--tcb-status OutOfDate] [--advisory INTEL-SA-00615] \
//!   [--now UNIX] [--validity-secs N]
//! ```
//!
//! `--pki DIR` keeps the test keys there (made on first use), so that every quote minted
//! with the same DIR chains to the same root. The root is a TEST root: kiln accepts these
//! quotes only where a test configures it as the trust root.

use std::io::Write;
use std::path::PathBuf;

use base64::Engine as _;
use kiln_tests::test_quotes::{QuoteSpec, TestPki};
use kiln_tests::HarnessError;

fn hex_bytes<const N: usize>(flag: &str, v: &str, pad: bool) -> Result<[u8; N], HarnessError> {
    let b = hex::decode(v.trim()).map_err(|e| format!("{flag}: {e}"))?;
    if b.len() > N || (!pad && b.len() != N) {
        return Err(format!("{flag}: expected {N} bytes of hex, got {}", b.len()).into());
    }
    let mut out = [0u8; N];
    out[..b.len()].copy_from_slice(&b);
    Ok(out)
}

fn main() -> Result<(), HarnessError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut pki_dir: Option<PathBuf> = None;
    let mut spec = QuoteSpec::new(now, [0; 32], [0; 32], [0; 64]);
    let mut at = now;
    let mut validity = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--pki" => pki_dir = Some(PathBuf::from(val()?)),
            "--mrenclave" => spec.mrenclave = hex_bytes(&flag, &val()?, false)?,
            "--mrsigner" => spec.mrsigner = hex_bytes(&flag, &val()?, false)?,
            "--report-data" => spec.report_data = hex_bytes(&flag, &val()?, true)?,
            "--isv-prod-id" => spec.isv_prod_id = val()?.parse()?,
            "--isv-svn" => spec.isv_svn = val()?.parse()?,
            "--debug" => spec.debug = true,
            "--tcb-status" => spec.tcb_status = val()?,
            "--advisory" => spec.advisory_ids.push(val()?),
            "--now" => at = val()?.parse()?,
            "--validity-secs" => validity = Some(val()?.parse()?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    spec.issued_at = at.saturating_sub(3600);
    if let Some(v) = validity {
        spec.validity_secs = v;
    }
    let pki = match &pki_dir {
        Some(d) if d.join("root.key.pem").exists() => TestPki::load(d)?,
        Some(d) => {
            let p = TestPki::new(at)?;
            p.save(d)?;
            p
        }
        None => TestPki::new(at)?,
    };
    let m = pki.mint(&spec)?;
    let collateral: serde_json::Value = serde_json::from_str(&m.collateral_json)?;
    let line = serde_json::json!({
        "quoteHex": hex::encode(&m.quote),
        "quoteBase64": base64::engine::general_purpose::STANDARD.encode(&m.quote),
        "collateral": collateral,
        "rootPem": m.root_pem,
        "mrenclave": hex::encode(spec.mrenclave),
        "mrsigner": hex::encode(spec.mrsigner),
        "reportData": hex::encode(spec.report_data),
        "debug": spec.debug,
        "tcbStatus": spec.tcb_status,
        "issuedAt": spec.issued_at,
        "nextUpdate": spec.issued_at + spec.validity_secs,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}
