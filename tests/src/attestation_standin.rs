//! A stand-in for Gramine's `/dev/attestation` outside SGX: a directory with two FIFOs,
//! `user_report_data` and `quote`, to bind-mount at `/dev/attestation` in a container (or
//! to point kiln-init's `Attestation::at` at). A thread plays Gramine's part, once per
//! request: it opens `user_report_data` for reading (blocking until the enclave side opens
//! it to write), reads the 64 bytes written before that side closes, mints a quote over
//! them under the TEST root ([`crate::test_quotes`]) with the template's MRENCLAVE,
//! MRSIGNER and ISV ids, opens `quote` for writing (blocking until the reader opens it),
//! writes the quote and closes. kiln-init does the other half (init/src/attest.rs): open
//! `user_report_data` write-only, write, close, then open `quote` and read to EOF.
//!
//! The quotes are TEST quotes: only a verifier given the TEST root accepts them (the worker
//! with `KILN_ATTEST_TEST_ROOT`); nothing here measures or signs like SGX.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::test_quotes::{QuoteSpec, TestPki};
use crate::HarnessError;

/// The report data Gramine takes: exactly 64 bytes.
pub const REPORT_DATA_LEN: usize = 64;

/// One request the stand-in served (or failed to serve).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// A quote over this report data was written to `quote`.
    Quote {
        /// The 64 bytes read from `user_report_data`.
        report_data: Vec<u8>,
        /// The quote written.
        quote: Vec<u8>,
    },
    /// The request could not be served (the reason names the file).
    Failed(String),
}

/// The running stand-in; [`AttestationStandIn::stop`] (or drop) ends its thread.
#[derive(Debug)]
pub struct AttestationStandIn {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    served: Arc<Mutex<Vec<Served>>>,
    thread: Option<JoinHandle<()>>,
}

fn mkfifo(path: &Path) -> Result<(), HarnessError> {
    crate::runc::run_ok(Command::new("mkfifo").args(["-m", "0666"]).arg(path))?;
    Ok(())
}

impl AttestationStandIn {
    /// Creates `dir` (if needed) with the two FIFOs and starts serving: each quote is
    /// minted under `pki` from `template` with the report data read.
    pub fn start(dir: &Path, pki: TestPki, template: QuoteSpec) -> Result<Self, HarnessError> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let urd = dir.join("user_report_data");
        let quote = dir.join("quote");
        mkfifo(&urd)?;
        mkfifo(&quote)?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, served) = (Arc::clone(&stop), Arc::clone(&served));
            std::thread::Builder::new()
                .name("attestation-stand-in".into())
                .spawn(move || serve(&urd, &quote, &pki, &template, &stop, &served))?
        };
        Ok(AttestationStandIn {
            dir: dir.to_path_buf(),
            stop,
            served,
            thread: Some(thread),
        })
    }

    /// The directory to mount at `/dev/attestation`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What was served so far, in order.
    pub fn served(&self) -> Vec<Served> {
        self.served.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Ends the thread: it is blocked opening one of the FIFOs, so the other end of each is
    /// opened without blocking (which wakes it), and it sees the stop flag.
    pub fn stop(&mut self) -> Vec<Served> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            while !t.is_finished() {
                // A writer on user_report_data that closes at once: the read sees EOF.
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(self.dir.join("user_report_data"));
                // A reader on quote: the thread's open for writing returns.
                let _ = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(self.dir.join("quote"));
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = t.join();
        }
        self.served()
    }
}

impl Drop for AttestationStandIn {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(
    urd: &Path,
    quote_path: &Path,
    pki: &TestPki,
    template: &QuoteSpec,
    stop: &AtomicBool,
    served: &Mutex<Vec<Served>>,
) {
    let record = |s: Served| {
        if let Ok(mut v) = served.lock() {
            v.push(s);
        }
    };
    while !stop.load(Ordering::SeqCst) {
        // Blocks until a writer opens the FIFO; reads until it closes.
        let mut data = Vec::new();
        let read = std::fs::File::open(urd)
            .and_then(|f| f.take(REPORT_DATA_LEN as u64 + 1).read_to_end(&mut data));
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = read {
            record(Served::Failed(format!("{}: {e}", urd.display())));
            return;
        }
        if data.len() != REPORT_DATA_LEN {
            record(Served::Failed(format!(
                "{}: {} bytes written, Gramine takes exactly {REPORT_DATA_LEN}",
                urd.display(),
                data.len()
            )));
            continue;
        }
        let mut spec = template.clone();
        spec.report_data.copy_from_slice(&data);
        let quote = match pki.quote(&spec) {
            Ok(q) => q,
            Err(e) => {
                record(Served::Failed(format!("minting the quote: {e}")));
                continue;
            }
        };
        // Blocks until the reader opens `quote`.
        let wrote = std::fs::OpenOptions::new()
            .write(true)
            .open(quote_path)
            .and_then(|mut f| f.write_all(&quote));
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match wrote {
            Ok(()) => record(Served::Quote {
                report_data: data,
                quote,
            }),
            Err(e) => record(Served::Failed(format!("{}: {e}", quote_path.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_engine::attest::{read_evidence, verify_evidence, AttestPolicy, TrustRoot};

    /// Plays kiln-init's half (as init/src/attest.rs does it) against the stand-in and
    /// verifies the quote it gets back with the engine under the TEST root.
    #[test]
    fn serves_a_quote_the_engine_accepts_over_the_written_report_data() -> Result<(), HarnessError>
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let pki = TestPki::new(now)?;
        let root = pki.root_der();
        let template = QuoteSpec::new(now, [0x11; 32], [0x22; 32], [0; 64]);
        let collateral = pki.collateral(&template)?;
        let tmp = tempfile::tempdir()?;
        let mut standin =
            AttestationStandIn::start(&tmp.path().join("attestation"), pki, template)?;
        let dir = standin.dir().to_path_buf();
        for round in 0..2u8 {
            let report_data = [0xA0 + round; 64];
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("user_report_data"))?
                .write_all(&report_data)?;
            let mut quote = Vec::new();
            std::fs::File::open(dir.join("quote"))?.read_to_end(&mut quote)?;
            let evidence = read_evidence(&quote)?;
            let policy = AttestPolicy {
                allowed_tcb_statuses: vec!["UpToDate".into()],
                allow_debug: false,
                expect_mrenclave: Some("11".repeat(32)),
                expect_mrsigner: Some("22".repeat(32)),
            };
            let report = verify_evidence(
                &evidence,
                &collateral,
                now,
                &policy,
                &TrustRoot::Custom(root.clone()),
                None,
            )?;
            assert!(report.passed, "{report:?}");
            let (_, body) = kiln_engine::attest::parse_quote(&quote)?;
            let body = body.ok_or("no report body")?;
            assert_eq!(body.report_data, report_data);
        }
        let served = standin.stop();
        assert_eq!(served.len(), 2, "{served:?}");
        assert!(matches!(&served[1], Served::Quote { report_data, .. } if report_data[0] == 0xA1));
        Ok(())
    }

    #[test]
    fn stops_while_waiting() -> Result<(), HarnessError> {
        let pki = TestPki::new(1_800_000_000)?;
        let tmp = tempfile::tempdir()?;
        let mut s = AttestationStandIn::start(
            tmp.path(),
            pki,
            QuoteSpec::new(1_800_000_000, [0; 32], [0; 32], [0; 64]),
        )?;
        assert!(s.stop().is_empty());
        Ok(())
    }
}
