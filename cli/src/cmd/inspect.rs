//! `kiln inspect IMAGE`: what a converted (or GSC, or compatible-platform) image says
//! about its enclaves: labels, both SIGSTRUCTs, the runtime, the conversion options and
//! the launcher configuration. `--json` prints the engine's `InspectReport`.
//! An image that is none of these (format `unknown`) is an error (exit 1) saying so;
//! with `--json` the report is printed first.

use std::fmt::Write as _;

use anyhow::bail;
use kiln_engine::verify::{inspect, ImageKind, InspectReport};

use super::registry_args::{self, RegistryArgs};

/// Arguments of `kiln inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// The image: a registry reference, or `oci:DIR[:TAG]`.
    pub image: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let contents = registry_args::tokio_runtime()?
        .block_on(registry_args::read(&args.image, &args.registry))?;
    let report = inspect(&contents);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if report.format == ImageKind::Unknown {
        bail!("{}", not_an_enclave_image(&args.image, &report));
    }
    if !args.json {
        print!("{}", render_text(&report));
    }
    Ok(())
}

/// The error for an image with no enclave in it.
fn not_an_enclave_image(image: &str, r: &InspectReport) -> String {
    format!(
        "{image} ({}) is not a kiln-converted image: it has no kiln labels, no Gramine \
         Shielded Containers (GSC) files and no ENCLAVEOS_SIGNATURE variables, so there is \
         nothing to inspect. Convert it first: kiln convert --input {image} --output REF",
        r.manifest_digest
    )
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

/// The text form.
pub fn render_text(r: &InspectReport) -> String {
    let mut s = String::new();
    let format = serde_json::to_value(r.format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let _ = writeln!(s, "format:          {format}");
    let _ = writeln!(s, "manifest digest: {}", r.manifest_digest);
    let _ = writeln!(s, "mrenclave:       {}", opt(&r.mrenclave));
    let _ = writeln!(s, "mrenclave2:      {}", opt(&r.mrenclave2));
    let _ = writeln!(s, "mrsigner:        {}", opt(&r.mrsigner));
    let _ = writeln!(s, "isvprodid:       {}", opt(&r.isvprodid));
    let _ = writeln!(s, "isvsvn:          {}", opt(&r.isvsvn));
    let _ = writeln!(s, "kiln version:    {}", opt(&r.kiln_version));
    let _ = writeln!(s, "runtime image:   {}", opt(&r.runtime_digest));
    let _ = writeln!(s, "gramine:         {}", opt(&r.gramine_version));
    let _ = writeln!(s, "libpal:          {}", opt(&r.libpal_path));
    for e in &r.enclaves {
        let _ = writeln!(s, "enclave {}:", e.name);
        if let Some(p) = &e.manifest_path {
            let size = e
                .manifest_size
                .map(|n| format!("{n} bytes"))
                .unwrap_or_else(|| "MISSING".into());
            let _ = writeln!(s, "  manifest:      {p} ({size})");
        }
        if let Some(p) = &e.sig_path {
            let _ = writeln!(s, "  sigstruct:     {p}");
        }
        if let Some(v) = &e.env_var {
            let _ = writeln!(s, "  env var:       {v}");
        }
        match (&e.sigstruct, &e.sigstruct_error) {
            (Some(v), _) => {
                let _ = writeln!(s, "  enclavehash:   {}", v.enclavehash);
                let _ = writeln!(s, "  mrsigner:      {}", v.mrsigner);
                let _ = writeln!(s, "  isvprodid/svn: {}/{}", v.isvprodid, v.isvsvn);
                let _ = writeln!(s, "  date:          {}", v.date);
                let _ = writeln!(
                    s,
                    "  attributes:    {} [{}] xfrm {}",
                    v.attributes.flags,
                    v.attributes.flags_names.join(", "),
                    v.attributes.xfrm
                );
                let _ = writeln!(
                    s,
                    "  signature:     {}",
                    if v.signature_valid {
                        "valid"
                    } else {
                        "INVALID"
                    }
                );
            }
            (None, Some(err)) => {
                let _ = writeln!(s, "  sigstruct:     UNREADABLE: {err}");
            }
            (None, None) => {}
        }
    }
    if let Some(c) = &r.conversion {
        let _ = writeln!(
            s,
            "conversion:\n{}",
            indent(&serde_json::to_string_pretty(c).unwrap_or_default())
        );
    }
    if let Some(l) = &r.launcher {
        let _ = writeln!(
            s,
            "launcher:\n{}",
            indent(&serde_json::to_string_pretty(l).unwrap_or_default())
        );
    }
    for p in &r.problems {
        let _ = writeln!(s, "problem: {p}");
    }
    s
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
