//! `kiln sgx measure`: MRENCLAVE of a final `.manifest.sgx` with its libpal.so.

use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::Context;
use kiln_engine::sgx::{gramine_layout, sgxs};

/// Arguments of `kiln sgx measure`.
#[derive(clap::Args)]
pub struct Args {
    /// The final manifest (`.manifest.sgx`, as measured by Gramine).
    #[arg(long, value_name = "FILE.manifest.sgx")]
    manifest: PathBuf,
    /// Gramine's libpal.so (the SGX PAL).
    #[arg(long, value_name = "libpal.so")]
    libpal: PathBuf,
    /// Also write the layout as an SGXS stream to this file (for other tools).
    #[arg(long, value_name = "FILE.sgxs")]
    sgxs: Option<PathBuf>,
    /// Also print the areas and the record counts.
    #[arg(long, short)]
    verbose: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let manifest = std::fs::read(&args.manifest)
        .with_context(|| format!("reading {}", args.manifest.display()))?;
    let libpal = std::fs::read(&args.libpal)
        .with_context(|| format!("reading {}", args.libpal.display()))?;
    let g = gramine_layout::layout(&manifest, &libpal)
        .with_context(|| format!("laying out {}", args.manifest.display()))?;
    let m = g.layout.measure();
    if args.verbose {
        println!("enclave_size {:#x}", g.params.enclave_size);
        println!("max_threads {}", g.params.max_threads);
        println!("edmm_enable {}", g.params.edmm_enable);
        for a in &g.areas {
            println!(
                "area {:<9} {:#014x}-{:#014x}",
                a.name,
                a.addr,
                a.addr + a.size
            );
        }
        println!("eadd {}", m.eadd_count);
        println!("eextend {}", m.eextend_count);
    }
    if let Some(path) = &args.sgxs {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        sgxs::write_sgxs(&g.layout, BufWriter::new(file))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("mrenclave {}", hex::encode(m.mrenclave));
    Ok(())
}
