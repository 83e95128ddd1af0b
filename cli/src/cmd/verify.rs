//! `kiln verify IMAGE`: rebuilds each enclave from the image's own contents and checks
//! every claim (see the engine's `verify::check`). Exit code 0 only when no check fails;
//! 2 when a check fails; 1 for usage errors (bad flags, an `--expect-*` value that is
//! not 64 hex digits) and errors reading the image.

use std::fmt::Write as _;

use kiln_engine::verify::{verify, Check, CheckStatus, Expectations, VerifyReport};

use super::registry_args::{self, RegistryArgs};

/// Exit code when the image was read but a check failed.
pub const EXIT_CHECK_FAILED: i32 = 2;

/// Arguments of `kiln verify`.
#[derive(clap::Args)]
pub struct Args {
    /// The image: a registry reference, or `oci:DIR[:TAG]`.
    pub image: String,
    /// The MRENCLAVE you expect (of either enclave): 64 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_measurement)]
    pub expect_mrenclave: Option<String>,
    /// The MRSIGNER you expect: 64 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_measurement)]
    pub expect_mrsigner: Option<String>,
    /// Print the engine's `VerifyReport` as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// An `--expect-*` value: a 32-byte SHA-256 measurement as 64 hex digits (either case,
/// surrounding blanks ignored), returned in lower case. clap names the flag in the error.
pub fn parse_measurement(v: &str) -> Result<String, String> {
    let t = v.trim();
    if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        let what = if t.bytes().all(|b| b.is_ascii_hexdigit()) {
            format!("{} hex digits", t.len())
        } else {
            "characters that are not hex digits".to_string()
        };
        return Err(format!(
            "expected 64 hex digits (a 32-byte SHA-256 measurement, as `kiln inspect` prints it), got {what}"
        ));
    }
    Ok(t.to_ascii_lowercase())
}

/// Runs the command; returns the process exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let contents = registry_args::tokio_runtime()?
        .block_on(registry_args::read(&args.image, &args.registry))?;
    let report = verify(
        &contents,
        &Expectations {
            mrenclave: args.expect_mrenclave,
            mrsigner: args.expect_mrsigner,
        },
    );
    let json = args.json.then(|| serde_json::to_string_pretty(&report));
    emit(json, || render_text(&report), report.passed)
}

/// Prints a report as JSON or in its text form; the exit code is 0 when every check
/// passed, else [`EXIT_CHECK_FAILED`] (verify and attest).
pub fn emit(
    json: Option<serde_json::Result<String>>,
    text: impl FnOnce() -> String,
    passed: bool,
) -> anyhow::Result<i32> {
    match json {
        Some(j) => println!("{}", j?),
        None => print!("{}", text()),
    }
    Ok(if passed { 0 } else { EXIT_CHECK_FAILED })
}

/// The text form: one line per check, then the verdict.
pub fn render_text(r: &VerifyReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "image {}", r.manifest_digest);
    write_checks(&mut s, &r.checks);
    for (name, m) in &r.mrenclaves {
        let _ = writeln!(s, "mrenclave {name}: {m}");
    }
    if let Some(m) = &r.mrsigner {
        let _ = writeln!(s, "mrsigner: {m}");
    }
    if let (Some(p), Some(v)) = (r.isv_prod_id, r.isv_svn) {
        let _ = writeln!(s, "isv: prod id {p}, svn {v}");
    }
    write_verdict(&mut s, r.passed, r.failures().count());
    s
}

/// One line per check: `PASS|FAIL|INFO subject/id: explanation` (verify and attest).
pub fn write_checks(s: &mut String, checks: &[Check]) {
    for c in checks {
        let mark = match c.status {
            CheckStatus::Pass => "PASS",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Info => "INFO",
        };
        let _ = writeln!(s, "{mark} {}/{}: {}", c.subject, c.id, c.explanation);
    }
}

/// The last line of a report: verified, or how many checks failed.
pub fn write_verdict(s: &mut String, passed: bool, failed: usize) {
    if passed {
        let _ = writeln!(s, "verified: every check passed");
    } else {
        let _ = writeln!(s, "NOT verified: {failed} check(s) failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_are_64_hex_digits() {
        let good = "AB".repeat(32);
        assert_eq!(parse_measurement(&format!(" {good} ")), Ok("ab".repeat(32)));
        let short = parse_measurement("00112233").unwrap_err();
        assert!(short.contains("expected 64 hex digits"), "{short}");
        assert!(short.contains("got 8 hex digits"), "{short}");
        let bad = parse_measurement(&"zz".repeat(32)).unwrap_err();
        assert!(bad.contains("not hex digits"), "{bad}");
        assert!(parse_measurement("").is_err());
        assert!(parse_measurement(&"0".repeat(65)).is_err());
    }
}
