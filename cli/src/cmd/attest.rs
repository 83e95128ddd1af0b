//! `kiln attest verify EVIDENCE`: verifies a running enclave's evidence — an RA-TLS
//! certificate (PEM or DER, Gramine's or kiln-init's) or a raw SGX quote (binary or hex)
//! — against Intel's collateral (a dcap-qvl JSON file, or fetched from a PCCS) and a
//! policy, with the engine's `attest` module. One line per check, like `kiln verify`.
//! Exit codes: 0 every check passed; 2 a check failed; 1 usage errors and unreadable
//! evidence, collateral or image.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use kiln_engine::attest::{
    self, read_collateral, read_evidence, verify_evidence, AttestPolicy, AttestReport,
    ImageEnclaves, TrustRoot,
};
use kiln_engine::verify::{verify, Expectations};
use kiln_native::{HttpOptions, HttpTransport, StateDir};

use super::registry_args::{self, RegistryArgs};
use super::verify::{emit, parse_measurement, write_checks, write_verdict};

/// Largest collateral file read.
const MAX_COLLATERAL_BYTES: u64 = 4 << 20;

/// Arguments of `kiln attest verify`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("collateral-source").required(true).args(["collateral", "pccs"])))]
pub struct Args {
    /// The evidence: an RA-TLS certificate (PEM or DER) or an SGX quote (binary or hex).
    pub evidence: PathBuf,
    /// The quote's collateral as dcap-qvl's JSON (`QuoteCollateralV3`).
    #[arg(long, value_name = "FILE")]
    pub collateral: Option<PathBuf>,
    /// Fetch the collateral from this PCCS (or Intel's PCS,
    /// `https://api.trustedservices.intel.com`); the quote must carry its PCK chain.
    #[arg(long, value_name = "URL")]
    pub pccs: Option<String>,
    /// Extra CA certificates (PEM) trusted for the PCCS's TLS.
    #[arg(long, value_name = "FILE", requires = "pccs")]
    pub pccs_ca: Option<PathBuf>,
    /// Also write the collateral fetched from `--pccs` to FILE (dcap-qvl's JSON), for
    /// `--collateral` later, or the web app's Verify page.
    #[arg(long, value_name = "FILE", requires = "pccs")]
    pub save_collateral: Option<PathBuf>,
    /// Reuse collateral fetched from the same PCCS for the same platform (FMSPC) for at
    /// most this many seconds, and only before its `nextUpdate`; 0 always fetches. Kept
    /// under the state directory's `collateral/`.
    #[arg(long, value_name = "SECS", requires = "pccs",
          default_value_t = attest::collateral_cache::DEFAULT_MAX_AGE_SECS)]
    pub collateral_max_age: u64,
    /// kiln's state directory (the collateral cache).
    /// Default: `$XDG_STATE_HOME/kiln`, else `~/.local/state/kiln`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Verify at this time instead of now: RFC 3339 (2025-07-01T00:00:00Z) or Unix
    /// seconds. For old evidence with the collateral of its time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<u64>,
    /// Also accept this TCB status (repeatable; UpToDate is always accepted):
    /// SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded,
    /// OutOfDate, OutOfDateConfigurationNeeded. Revoked never is.
    #[arg(long = "allow-tcb", value_name = "STATUS", value_parser = parse_tcb)]
    pub allow_tcb: Vec<String>,
    /// Accept a debug enclave (its memory is open to the host; proves nothing).
    #[arg(long)]
    pub allow_debug: bool,
    /// A converted image: say which of its enclaves (SGX1 mrenclave or EDMM mrenclave2)
    /// is running, and check MRSIGNER against it. A registry reference or `oci:DIR[:TAG]`.
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// The MRENCLAVE you expect: 64 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_measurement)]
    pub expect_mrenclave: Option<String>,
    /// The MRSIGNER you expect: 64 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_measurement)]
    pub expect_mrsigner: Option<String>,
    /// Print the engine's `AttestReport` as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Registry access (for `--image`).
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `--at`: RFC 3339 or Unix seconds ([`attest::parse_time`], shared with the web app).
pub fn parse_time(v: &str) -> Result<u64, String> {
    attest::parse_time(v)
}

/// `--allow-tcb`: a TCB status name, any case, returned canonical.
pub fn parse_tcb(v: &str) -> Result<String, String> {
    attest::tcb_status_name(v).map(str::to_string)
}

fn read_limited(path: &std::path::Path, limit: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).with_context(|| format!("{what} {}", path.display()))?;
    let mut buf = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("{what} {}", path.display()))?;
    if buf.len() as u64 > limit {
        anyhow::bail!("{what} {}: larger than {limit} bytes", path.display());
    }
    Ok(buf)
}

/// The wall clock, Unix seconds.
fn unix_now() -> anyhow::Result<u64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs())
}

/// Runs the command; returns the process exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let bytes = read_limited(
        &args.evidence,
        attest::evidence::MAX_EVIDENCE_BYTES as u64,
        "evidence",
    )?;
    let evidence =
        read_evidence(&bytes).with_context(|| format!("evidence {}", args.evidence.display()))?;
    // The quote must parse before anything is fetched.
    attest::parse_quote(&evidence.quote)
        .with_context(|| format!("evidence {}", args.evidence.display()))?;
    let rt = registry_args::tokio_runtime()?;
    let collateral = match (&args.collateral, &args.pccs) {
        (Some(path), _) => {
            let json = read_limited(path, MAX_COLLATERAL_BYTES, "collateral")?;
            read_collateral(&json).with_context(|| format!("collateral {}", path.display()))?
        }
        (None, Some(url)) => {
            let mut o = HttpOptions::default();
            if let Some(ca) = &args.pccs_ca {
                o = o.with_ca_file(ca)?;
            }
            let transport = HttpTransport::with_options(o)?;
            let store = StateDir::new(match &args.state_dir {
                Some(d) => d.clone(),
                None => StateDir::default_root()?,
            })
            .collateral_cache();
            let (c, _) = rt
                .block_on(attest::collateral_cache::collateral(
                    &transport,
                    &store,
                    url,
                    &evidence.quote,
                    unix_now()?,
                    args.collateral_max_age,
                ))
                .with_context(|| format!("collateral from {url}"))?;
            if let Some(path) = &args.save_collateral {
                let json = serde_json::to_vec_pretty(&c).context("collateral as JSON")?;
                std::fs::write(path, json)
                    .with_context(|| format!("--save-collateral {}", path.display()))?;
            }
            c
        }
        (None, None) => anyhow::bail!("pass --collateral FILE or --pccs URL"),
    };
    let image = match &args.image {
        Some(image) => {
            let contents = rt.block_on(registry_args::read(image, &args.registry))?;
            let report = verify(&contents, &Expectations::default());
            Some(ImageEnclaves::from_report(image, &report))
        }
        None => None,
    };
    let now = match args.at {
        Some(t) => t,
        None => unix_now()?,
    };
    let mut allowed = vec!["UpToDate".to_string()];
    allowed.extend(args.allow_tcb.iter().cloned());
    let policy = AttestPolicy {
        allowed_tcb_statuses: allowed,
        allow_debug: args.allow_debug,
        expect_mrenclave: args.expect_mrenclave,
        expect_mrsigner: args.expect_mrsigner,
    };
    let report = verify_evidence(
        &evidence,
        &collateral,
        now,
        &policy,
        &TrustRoot::Intel,
        image.as_ref(),
    )?;
    let json = args.json.then(|| serde_json::to_string_pretty(&report));
    emit(json, || render_text(&report), report.passed)
}

/// The text form: what the evidence is, one line per check, the enclave, the verdict.
pub fn render_text(r: &AttestReport) -> String {
    let mut s = String::new();
    let _ = write!(s, "evidence: {}", r.evidence);
    if let Some(subject) = &r.certificate_subject {
        let _ = write!(s, ", subject {subject}");
    }
    let _ = writeln!(
        s,
        "; quote v{}, verified at {}",
        r.quote_version, r.verified_at
    );
    write_checks(&mut s, &r.checks);
    if let Some(e) = &r.enclave {
        let _ = writeln!(s, "mrenclave: {}", e.mrenclave);
        let _ = writeln!(s, "mrsigner: {}", e.mrsigner);
        let _ = writeln!(s, "isv prod id: {}, isv svn: {}", e.isv_prod_id, e.isv_svn);
        let _ = writeln!(
            s,
            "attributes: {} (debug: {}, 64-bit: {}), miscselect: {:#x}",
            e.attributes,
            if e.debug { "yes" } else { "no" },
            if e.mode64bit { "yes" } else { "no" },
            e.misc_select
        );
        let _ = writeln!(s, "report data: {}", e.report_data);
    }
    if let Some(t) = &r.tcb_status {
        let adv = if r.advisory_ids.is_empty() {
            "none".to_string()
        } else {
            r.advisory_ids.join(", ")
        };
        let _ = writeln!(s, "tcb status: {t} (advisories: {adv})");
    }
    if let Some(e) = &r.image_enclave {
        let _ = writeln!(s, "running enclave of the image: {e}");
    }
    write_verdict(&mut s, r.passed, r.failures().count());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_statuses() {
        assert_eq!(parse_time("1751328000"), Ok(1_751_328_000));
        assert_eq!(parse_time("2025-07-01T00:00:00Z"), Ok(1_751_328_000));
        assert_eq!(parse_time("2025-07-01T02:00:00+02:00"), Ok(1_751_328_000));
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse_time("99999999999999999999999").is_err());
        assert_eq!(
            parse_tcb("swhardeningneeded").as_deref(),
            Ok("SWHardeningNeeded")
        );
        assert!(parse_tcb("Revoked").unwrap_err().contains("never accepted"));
    }
}
