//! Gramine's attestation pseudo-files (`/dev/attestation`, present when the manifest sets
//! `sgx.remote_attestation`). Following Gramine's RA-TLS (tools/sgx/ra-tls,
//! `ra_tls_attest.c`): write the 64-byte report data (SHA-256 of the certificate's
//! SubjectPublicKeyInfo DER, zero-padded; see [`crate::cert::report_data`]) to
//! `user_report_data`, then read `quote`, which binds that report data to the enclave's
//! MRENCLAVE/MRSIGNER.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

/// Gramine's attestation directory.
pub const ATTESTATION_DIR: &str = "/dev/attestation";

/// Largest quote read (a DCAP quote with its certification data is a few KiB).
pub const QUOTE_MAX: u64 = 1 << 20;

/// An attestation-file failure, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct AttestError {
    /// The file.
    pub path: PathBuf,
    /// What failed.
    #[source]
    pub source: std::io::Error,
}

/// The attestation files under one directory.
#[derive(Debug, Clone)]
pub struct Attestation {
    dir: PathBuf,
}

impl Default for Attestation {
    fn default() -> Self {
        Self::at(ATTESTATION_DIR)
    }
}

impl Attestation {
    /// The files under `dir` (tests use a temporary directory).
    pub fn at(dir: impl AsRef<Path>) -> Self {
        Attestation {
            dir: dir.as_ref().to_path_buf(),
        }
    }

    /// `user_report_data`.
    pub fn user_report_data(&self) -> PathBuf {
        self.dir.join("user_report_data")
    }

    /// `quote`.
    pub fn quote(&self) -> PathBuf {
        self.dir.join("quote")
    }

    /// Whether both files exist (Gramine with remote attestation enabled).
    pub fn available(&self) -> bool {
        self.user_report_data().exists() && self.quote().exists()
    }

    /// Writes `report_data`, then reads and returns the quote.
    pub fn quote_for(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, AttestError> {
        let urd = self.user_report_data();
        let fail = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AttestError { path, source }
        };
        std::fs::OpenOptions::new()
            .write(true)
            .open(&urd)
            .and_then(|mut f| f.write_all(report_data))
            .map_err(fail(&urd))?;
        let q = self.quote();
        let mut quote = Vec::new();
        std::fs::File::open(&q)
            .and_then(|f| f.take(QUOTE_MAX).read_to_end(&mut quote))
            .map_err(fail(&q))?;
        if quote.is_empty() {
            return Err(AttestError {
                path: q,
                source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "empty quote"),
            });
        }
        Ok(quote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_report_data_then_reads_the_quote() {
        let dir = tempfile::tempdir().unwrap();
        let a = Attestation::at(dir.path());
        assert!(!a.available());
        std::fs::write(a.user_report_data(), b"").unwrap();
        std::fs::write(a.quote(), b"the quote").unwrap();
        assert!(a.available());
        let rd = [7u8; 64];
        assert_eq!(a.quote_for(&rd).unwrap(), b"the quote");
        assert_eq!(std::fs::read(a.user_report_data()).unwrap(), rd);

        std::fs::write(a.quote(), b"").unwrap();
        let e = a.quote_for(&rd).unwrap_err();
        assert_eq!(e.path, a.quote());
    }
}
