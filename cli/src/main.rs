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
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sgx(SgxCommand::Measure(args)) => cmd::sgx_measure::run(args),
        Command::Sgx(SgxCommand::Sign(args)) => cmd::sgx_sign::run(args),
        Command::Sgx(SgxCommand::Show(args)) => cmd::sgx_show::run(args),
    };
    if let Err(err) = result {
        eprintln!("kiln: error: {err:#}");
        std::process::exit(1);
    }
}
