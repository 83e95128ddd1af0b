//! Runs the stand-in Fortanix DSM (`kiln_tests::dsm_server`) on 127.0.0.1 for tests outside
//! Rust (the worker's node tests): prints one JSON line, `{"url", "apiKey", "key",
//! "wrongExponentKey", "mrsigner"}`, then serves until the process is killed.
//!
//! `cargo run -p kiln-tests --example dsm_standin`

use std::io::Write;

use kiln_tests::dsm_server::DsmServer;
use kiln_tests::HarnessError;

fn main() -> Result<(), HarnessError> {
    let dsm = DsmServer::start()?;
    let line = serde_json::json!({
        "url": dsm.url(),
        "apiKey": DsmServer::API_KEY,
        "key": DsmServer::SGX_KEY,
        "wrongExponentKey": DsmServer::WRONG_EXPONENT_KEY,
        "mrsigner": dsm.sgx_mrsigner_hex(),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    drop(out);
    // The server runs on its own threads; keep `dsm` alive until killed.
    loop {
        std::thread::park();
        let _ = &dsm;
    }
}
