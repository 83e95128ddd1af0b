//! kiln-init: provisions the certificates listed in `/opt/kiln/init.json`, then execs the
//! app (see the library docs). Exit status 1, with one line on stderr naming the
//! certificate and file, when anything fails.

use std::time::SystemTime;

use kiln_init::attest::{Attestation, ATTESTATION_DIR};
use kiln_init::config::{InitConfig, INIT_JSON};
use kiln_init::provision::provision_one;

fn fail(msg: &str) -> ! {
    eprintln!("kiln-init: {msg}");
    std::process::exit(1)
}

fn main() {
    let bytes = std::fs::read(INIT_JSON).unwrap_or_else(|e| fail(&format!("{INIT_JSON}: {e}")));
    let config = InitConfig::parse(&bytes).unwrap_or_else(|e| fail(&format!("{INIT_JSON}: {e}")));
    let attestation = Attestation::default();
    if !config.certificates.is_empty() && !attestation.available() {
        eprintln!(
            "kiln-init: {ATTESTATION_DIR} is not available (not running under SGX with remote attestation): certificates carry no SGX quote"
        );
    }
    for (i, req) in config.certificates.iter().enumerate() {
        if let Err(e) = provision_one(i, req, &attestation, SystemTime::now()) {
            fail(&e.to_string());
        }
    }
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let err = kiln_init::exec::exec(&config.program, &argv);
    fail(&format!("exec {}: {err}", config.program))
}
