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
    /// Remote attestation: verify a running enclave's SGX quote or RA-TLS certificate.
    #[command(subcommand)]
    Attest(AttestCommand),
}

#[derive(Subcommand)]
enum AttestCommand {
    /// Verify a quote or RA-TLS certificate against Intel's collateral and a policy.
    Verify(Box<cmd::attest::Args>),
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` go to stdout with 0; a usage error exits 1 (clap's
            // default is 2, which `kiln verify` keeps for "a check failed").
            let _ = e.print();
            std::process::exit(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
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
        Command::Attest(AttestCommand::Verify(args)) => match cmd::attest::run(*args) {
            Ok(0) => Ok(()),
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
    };
    if let Err(err) = result {
        let line = error_chain(&err);
        eprintln!("kiln: error: {line}");
        if let Some(hint) = hint(&line) {
            eprintln!("kiln: hint: {hint}");
        }
        std::process::exit(1);
    }
}

/// Exit code of a usage error (bad or missing flags, invalid flag values).
const EXIT_USAGE: i32 = 1;

/// What to do about an error, when its text shows a common cause.
fn hint(line: &str) -> Option<String> {
    // The registry's name as the registry client writes it: "registry HOST[:PORT]: ...".
    let host = line
        .split("registry ")
        .skip(1)
        .find_map(|rest| rest.split_once(": ").map(|(h, _)| h))
        .filter(|h| !h.is_empty() && !h.contains(' '))
        .unwrap_or("HOST:PORT");
    // rustls reading a plain-HTTP answer as a TLS record: "received corrupt message of
    // type InvalidContentType".
    let plain_http = ["InvalidContentType", "corrupt message"];
    if plain_http.iter().any(|p| line.contains(p)) {
        return Some(format!(
            "the registry answered in plain HTTP where kiln expects HTTPS. If it serves plain \
             HTTP, pass --insecure-registry {host} (as written in the image reference; \
             repeatable for each such registry)"
        ));
    }
    if line.contains("Client sent an HTTP request to an HTTPS server") {
        return Some(format!(
            "{host} serves HTTPS: drop --insecure-registry {host} (add --registry-ca FILE if \
             its certificate comes from a private CA)"
        ));
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_hint() {
        let line = "resolving 127.0.0.1:5000/a:1: registry 127.0.0.1:5000: GET manifest a:1: \
                    Connect: error sending request: client error (Connect): received corrupt \
                    message of type InvalidContentType";
        let h = hint(line).unwrap_or_default();
        assert!(h.contains("--insecure-registry 127.0.0.1:5000 "), "{h}");
        let h = hint("Connect: received corrupt message of type InvalidContentType");
        assert!(h.is_some_and(|h| h.contains("--insecure-registry HOST:PORT")));
        assert!(hint("MANIFEST_UNKNOWN").is_none());
    }

    #[test]
    fn usage_errors_exit_1_help_exits_0() {
        let e = Cli::try_parse_from(["kiln", "verify", "x", "--expect-mrenclave", "00112233"])
            .err()
            .map(|e| (e.use_stderr(), e.to_string()));
        let (stderr, text) = e.unwrap_or_default();
        assert!(stderr);
        assert!(text.contains("--expect-mrenclave"), "{text}");
        assert!(text.contains("expected 64 hex digits"), "{text}");
        let help = Cli::try_parse_from(["kiln", "runtime", "pack", "--help"]).err();
        let help = help.map(|e| (e.use_stderr(), e.to_string()));
        let (stderr, text) = help.unwrap_or_default();
        assert!(!stderr);
        assert!(!text.contains("--runtime "), "{text}");
        assert!(!text.contains("--state-dir"), "{text}");
        assert!(text.contains("--insecure-registry"), "{text}");
    }
}
