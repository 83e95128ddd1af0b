//! kiln-init: provisions the certificates listed in `/opt/kiln/init.json`, then execs the
//! app (see the library docs). Exit status 1, with one line on stderr naming the
//! certificate and file (or the manager and its refusal), when anything fails.

use std::time::SystemTime;

use kiln_init::attest::{Attestation, ATTESTATION_DIR};
use kiln_init::config::{InitConfig, INIT_JSON};
use kiln_init::manager::ManagerClient;
use kiln_init::provision::provision_one;

fn fail(msg: &str) -> ! {
    eprintln!("kiln-init: {msg}");
    std::process::exit(1)
}

fn main() {
    let bytes = std::fs::read(INIT_JSON).unwrap_or_else(|e| fail(&format!("{INIT_JSON}: {e}")));
    let config = InitConfig::parse(&bytes).unwrap_or_else(|e| fail(&format!("{INIT_JSON}: {e}")));
    let attestation = Attestation::default();
    let self_signed = config.certificates.iter().any(|c| c.manager.is_none());
    if self_signed && !attestation.available() {
        eprintln!(
            "kiln-init: {ATTESTATION_DIR} is not available (not running under SGX with remote attestation): certificates carry no SGX quote"
        );
    }
    let manager = ManagerClient::default();
    for (i, req) in config.certificates.iter().enumerate() {
        if let Err(e) = provision_one(i, req, &attestation, &manager, SystemTime::now()) {
            fail(&e.to_string());
        }
    }
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let err = kiln_init::exec::exec(&config.program, &argv);
    fail(&format!("exec {}: {err}", config.program))
}
