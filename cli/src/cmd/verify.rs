//! `kiln verify IMAGE`: rebuilds each enclave from the image's own contents and checks
//! every claim (see the engine's `verify::check`). Exit code 0 only when no check fails;
//! 2 when a check fails (1 stays for errors reading the image).

use std::fmt::Write as _;

use kiln_engine::verify::{verify, CheckStatus, Expectations, VerifyReport};

use super::registry_args::{self, RegistryArgs};

/// Exit code when the image was read but a check failed.
pub const EXIT_CHECK_FAILED: i32 = 2;

/// Arguments of `kiln verify`.
#[derive(clap::Args)]
pub struct Args {
    /// The image: a registry reference, or `oci:DIR[:TAG]`.
    pub image: String,
    /// The MRENCLAVE you expect (of either enclave), hex.
    #[arg(long, value_name = "HEX")]
    pub expect_mrenclave: Option<String>,
    /// The MRSIGNER you expect, hex.
    #[arg(long, value_name = "HEX")]
    pub expect_mrsigner: Option<String>,
    /// Print the engine's `VerifyReport` as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report));
    }
    Ok(if report.passed { 0 } else { EXIT_CHECK_FAILED })
}

/// The text form: one line per check, then the verdict.
pub fn render_text(r: &VerifyReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "image {}", r.manifest_digest);
    for c in &r.checks {
        let mark = match c.status {
            CheckStatus::Pass => "PASS",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Info => "INFO",
        };
        let _ = writeln!(s, "{mark} {}/{}: {}", c.subject, c.id, c.explanation);
    }
    for (name, m) in &r.mrenclaves {
        let _ = writeln!(s, "mrenclave {name}: {m}");
    }
    if let Some(m) = &r.mrsigner {
        let _ = writeln!(s, "mrsigner: {m}");
    }
    let failed = r.failures().count();
    if r.passed {
        let _ = writeln!(s, "verified: every check passed");
    } else {
        let _ = writeln!(s, "NOT verified: {failed} check(s) failed");
    }
    s
}
