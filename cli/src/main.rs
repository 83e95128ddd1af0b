//! `kiln`: the native command line on kiln's engine.

mod cmd;

use clap::{Parser, Subcommand};

/// kiln: run unmodified container images inside Intel SGX enclaves under Gramine.
#[derive(Parser)]
#[command(name = "kiln", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// SGX tools on an existing Gramine manifest: measure, sign, show a SIGSTRUCT.
    #[command(subcommand)]
    Sgx(SgxCommand),
    /// Convert an image, registry to registry; prints the convert-image API response.
    Convert(Box<cmd::convert::Args>),
    /// The Gramine runtime image.
    #[command(subcommand)]
    Runtime(RuntimeCommand),
    /// Show what a converted (or GSC) image says about its enclaves.
    Inspect(cmd::inspect::Args),
    /// Recompute a converted (or GSC) image's enclaves and check every claim.
    Verify(cmd::verify::Args),
}

#[derive(Subcommand)]
enum RuntimeCommand {
    /// Build the runtime image from an installed Gramine.
    Pack(cmd::runtime_pack::Args),
}

#[derive(Subcommand)]
enum SgxCommand {
    /// Print the MRENCLAVE of a final .manifest.sgx with its libpal.so.
    Measure(cmd::sgx_measure::Args),
    /// Measure and sign: write the SIGSTRUCT, print mrenclave and mrsigner.
    Sign(cmd::sgx_sign::Args),
    /// Print every field of a SIGSTRUCT (.sig) file.
    Show(cmd::sgx_show::Args),
}

fn main() {
    restore_default_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sgx(SgxCommand::Measure(args)) => cmd::sgx_measure::run(args),
        Command::Sgx(SgxCommand::Sign(args)) => cmd::sgx_sign::run(args),
        Command::Sgx(SgxCommand::Show(args)) => cmd::sgx_show::run(args),
        Command::Convert(args) => cmd::convert::run(*args),
        Command::Runtime(RuntimeCommand::Pack(args)) => cmd::runtime_pack::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Verify(args) => match cmd::verify::run(args) {
            Ok(0) => Ok(()),
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
    };
    if let Err(err) = result {
        eprintln!("kiln: error: {}", error_chain(&err));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already
/// ends with (engine errors often carry their source's message in their own).
fn error_chain(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Rust ignores SIGPIPE, so `println!` panics when stdout is a closed pipe
/// (`kiln sgx sign ... | head -1`). Restore the default: the process ends quietly,
/// like other command-line tools.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_DFL at start-up, before any thread
    // exists, has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
