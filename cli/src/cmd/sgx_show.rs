//! `kiln sgx show`: prints every field of a SIGSTRUCT (.sig) file, MRSIGNER and whether
//! the signature and Q1/Q2 verify. `--json` prints the engine's `SigstructView`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use kiln_engine::sgx::sigstruct::Sigstruct;
use kiln_engine::sgx::sigstruct_view::{AttributeMaskView, AttributesView, SigstructView};

/// Arguments of `kiln sgx show`.
#[derive(clap::Args)]
pub struct Args {
    /// The SIGSTRUCT file (1808 bytes, e.g. app.sig).
    pub file: PathBuf,
    /// Print JSON (the same view the web app shows) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let sigstruct = Sigstruct::parse(&bytes)
        .with_context(|| format!("{} is not a valid SIGSTRUCT", args.file.display()))?;
    let view = SigstructView::new(&sigstruct);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", render_text(&view));
    }
    Ok(())
}

fn names(list: &[String]) -> String {
    format!("[{}]", list.join(", "))
}

fn attributes_lines(out: &mut String, label: &str, a: &AttributesView) {
    let _ = writeln!(
        out,
        "{:<22}{} {}",
        format!("{label}.flags:"),
        a.flags,
        names(&a.flags_names)
    );
    let _ = writeln!(
        out,
        "{:<22}{} {}",
        format!("{label}.xfrm:"),
        a.xfrm,
        names(&a.xfrm_names)
    );
}

fn mask_lines(out: &mut String, m: &AttributeMaskView) {
    let unchecked = |list: &[String]| {
        if list.is_empty() {
            String::new()
        } else {
            format!(" (unchecked: {})", list.join(", "))
        }
    };
    let _ = writeln!(
        out,
        "{:<22}{}{}",
        "attributemask.flags:",
        m.flags,
        unchecked(&m.flags_unchecked)
    );
    let _ = writeln!(
        out,
        "{:<22}{}{}",
        "attributemask.xfrm:",
        m.xfrm,
        unchecked(&m.xfrm_unchecked)
    );
}

fn verdict(valid: bool, error: &Option<String>) -> String {
    match (valid, error) {
        (true, _) => "valid".to_string(),
        (false, Some(e)) => format!("INVALID ({e})"),
        (false, None) => "INVALID".to_string(),
    }
}

/// The text form: one `name: value` line per field.
pub fn render_text(v: &SigstructView) -> String {
    let mut out = String::new();
    let mut line = |name: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{:<22}{}", format!("{name}:"), value);
    };
    line("header", &v.header);
    line("vendor", &v.vendor);
    line("date", &v.date);
    line("header2", &v.header2);
    line("swdefined", &v.swdefined);
    line("modulus (LE)", &v.modulus);
    line("exponent", &v.exponent);
    line("signature (LE)", &v.signature);
    line(
        "miscselect",
        &format!("{} {}", v.miscselect, names(&v.miscselect_names)),
    );
    line("miscmask", &v.miscmask);
    line("cet_attributes", &v.cet_attributes);
    line("cet_attributes_mask", &v.cet_attributes_mask);
    line("isvfamilyid", &v.isvfamilyid);
    attributes_lines(&mut out, "attributes", &v.attributes);
    mask_lines(&mut out, &v.attribute_mask);
    let mut line = |name: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{:<22}{}", format!("{name}:"), value);
    };
    line("enclavehash", &v.enclavehash);
    line("isvextprodid", &v.isvextprodid);
    line("isvprodid", &v.isvprodid);
    line("isvsvn", &v.isvsvn);
    line("q1 (LE)", &v.q1);
    line("q2 (LE)", &v.q2);
    line("mrenclave", &v.enclavehash);
    line("mrsigner", &v.mrsigner);
    line(
        "signature check",
        &verdict(v.signature_valid, &v.signature_error),
    );
    line("q1/q2 check", &verdict(v.q1_q2_valid, &v.q1_q2_error));
    out
}
