//! Provisioning: for each requested certificate, generate the key, obtain the quote when
//! attestation is available, build the certificate, and write both files (the key mode
//! 0600, the certificate 0644, parent directories created).
//!
//! With a `manager` URL the certificate is not self-signed: the CSR and the quote over its
//! key go to the manager ([`crate::manager`]), whose chain (leaf then CA) is written to
//! `certPath`. Without `/dev/attestation` that fails ([`ProvisionError::NoAttestation`]):
//! there is no self-signed fallback.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::SystemTime;

use crate::attest::ATTESTATION_DIR;
use crate::attest::{AttestError, Attestation};
use crate::cert::{build_certificate, build_csr, generate_key, report_data, to_pem, CertError};
use crate::config::CertRequest;
use crate::manager::{ManagerClient, ManagerError};

/// One certificate failed; the message names it and the file involved.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Key or certificate generation.
    #[error("certificate `{subject}` (certificates[{index}]): {source}")]
    Cert {
        /// Position in `init.json`.
        index: usize,
        /// Its subject.
        subject: String,
        /// What failed.
        #[source]
        source: CertError,
    },
    /// The attestation files.
    #[error("certificate `{subject}` (certificates[{index}]): SGX quote: {source}")]
    Attest {
        /// Position in `init.json`.
        index: usize,
        /// Its subject.
        subject: String,
        /// What failed.
        #[source]
        source: AttestError,
    },
    /// A manager URL is set but there is no attestation to send it.
    #[error("certificate `{subject}` (certificates[{index}]): the manager at {url} needs an SGX quote, but {ATTESTATION_DIR} is not available (not running under SGX with remote attestation)")]
    NoAttestation {
        /// Position in `init.json`.
        index: usize,
        /// Its subject.
        subject: String,
        /// The manager's base URL.
        url: String,
    },
    /// The manager did not issue the certificate.
    #[error("certificate `{subject}` (certificates[{index}]): {source}")]
    Manager {
        /// Position in `init.json`.
        index: usize,
        /// Its subject.
        subject: String,
        /// What failed.
        #[source]
        source: ManagerError,
    },
    /// Writing the key or the certificate.
    #[error("certificate `{subject}` (certificates[{index}]): writing {path}: {source}")]
    Write {
        /// Position in `init.json`.
        index: usize,
        /// Its subject.
        subject: String,
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// What was provisioned for one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// Where the key went.
    pub key_path: String,
    /// Where the certificate went.
    pub cert_path: String,
    /// Whether the SGX quote was embedded (self-signed certificates).
    pub quote_embedded: bool,
    /// Whether the manager's CA issued the certificate.
    pub manager_issued: bool,
}

/// Writes `data` to `path` with `mode`, creating parent directories; an existing file is
/// replaced and gets `mode` too.
pub fn write_file(path: &str, data: &[u8], mode: u32) -> std::io::Result<()> {
    let p = Path::new(path);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(p)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(data)?;
    f.sync_all()
}

/// Provisions one certificate (`manager` is used only for entries with a `manager` URL).
pub fn provision_one(
    index: usize,
    req: &CertRequest,
    attestation: &Attestation,
    manager: &ManagerClient,
    now: SystemTime,
) -> Result<Provisioned, ProvisionError> {
    let subject = req.subject.clone();
    let cert_err = |source| ProvisionError::Cert {
        index,
        subject: subject.clone(),
        source,
    };
    let write_err = |path: &str| {
        let path = path.to_string();
        let subject = subject.clone();
        move |source| ProvisionError::Write {
            index,
            subject,
            path,
            source,
        }
    };
    let attest_err = |source| ProvisionError::Attest {
        index,
        subject: subject.clone(),
        source,
    };
    if let Some(url) = &req.manager {
        // Checked before the (slow) key generation.
        if !attestation.available() {
            return Err(ProvisionError::NoAttestation {
                index,
                subject,
                url: url.clone(),
            });
        }
    }
    let key = generate_key(req.key_size).map_err(cert_err)?;
    let (pem, quote_embedded) = match &req.manager {
        Some(url) => {
            let (csr, spki) = build_csr(&key, &req.subject).map_err(cert_err)?;
            let quote = attestation
                .quote_for(&report_data(&spki))
                .map_err(attest_err)?;
            let label = format!("certificate `{subject}` (certificates[{index}])");
            let chain = manager
                .issue(url, &label, &csr, &spki, &quote, &req.subject)
                .map_err(|source| ProvisionError::Manager {
                    index,
                    subject: subject.clone(),
                    source,
                })?;
            (chain, false)
        }
        None => {
            let quote = if attestation.available() {
                Some(
                    attestation
                        .quote_for(&report_data(&key.spki_der))
                        .map_err(attest_err)?,
                )
            } else {
                None
            };
            let cert =
                build_certificate(&key, &req.subject, now, quote.as_deref()).map_err(cert_err)?;
            (to_pem(&cert).map_err(cert_err)?, quote.is_some())
        }
    };
    write_file(&req.key_path, key.pkcs8_pem.as_bytes(), 0o600).map_err(write_err(&req.key_path))?;
    write_file(&req.cert_path, pem.as_bytes(), 0o644).map_err(write_err(&req.cert_path))?;
    Ok(Provisioned {
        key_path: req.key_path.clone(),
        cert_path: req.cert_path.clone(),
        quote_embedded,
        manager_issued: req.manager.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_cert::der::DecodePem as _;

    #[test]
    fn writes_key_and_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_str().unwrap();
        let req = CertRequest {
            subject: "svc.local".into(),
            key_size: 2048,
            key_path: format!("{base}/a/b/key.pem"),
            cert_path: format!("{base}/c/cert.pem"),
            issuer: "MANAGER_CA".into(),
            manager: None,
        };
        let att = tempfile::tempdir().unwrap();
        let attestation = Attestation::at(att.path());
        let client = ManagerClient::default();
        let p = provision_one(0, &req, &attestation, &client, SystemTime::now()).unwrap();
        assert!(!p.quote_embedded);
        let meta = std::fs::metadata(&req.key_path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let key = std::fs::read_to_string(&req.key_path).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let cert = std::fs::read(&req.cert_path).unwrap();
        let cert = x509_cert::Certificate::from_pem(&cert).unwrap();
        assert_eq!(cert.tbs_certificate().subject().to_string(), "CN=svc.local");

        // With attestation files, the quote is embedded and the report data written.
        std::fs::write(attestation.user_report_data(), b"").unwrap();
        std::fs::write(attestation.quote(), b"Q").unwrap();
        let p = provision_one(0, &req, &attestation, &client, SystemTime::now()).unwrap();
        assert!(p.quote_embedded && !p.manager_issued);
        let cert =
            x509_cert::Certificate::from_pem(std::fs::read(&req.cert_path).unwrap()).unwrap();
        let spki = x509_cert::der::Encode::to_der(cert.tbs_certificate().subject_public_key_info())
            .unwrap();
        assert_eq!(
            std::fs::read(attestation.user_report_data()).unwrap(),
            report_data(&spki).to_vec()
        );
    }

    #[test]
    fn a_write_failure_names_the_certificate_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let req = CertRequest {
            subject: "svc.local".into(),
            key_size: 2048,
            key_path: format!("{}/key.pem", blocker.display()),
            cert_path: format!("{}/cert.pem", dir.path().display()),
            issuer: "NODE".into(),
            manager: None,
        };
        let client = ManagerClient::default();
        let e = provision_one(
            3,
            &req,
            &Attestation::at(dir.path()),
            &client,
            SystemTime::now(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("certificate `svc.local` (certificates[3]): writing "),
            "{e}"
        );
        assert!(e.contains("/file/key.pem"), "{e}");
    }

    #[test]
    fn a_manager_entry_without_attestation_fails_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let req = CertRequest {
            subject: "svc.example".into(),
            key_size: 2048,
            key_path: format!("{}/key.pem", dir.path().display()),
            cert_path: format!("{}/cert.pem", dir.path().display()),
            issuer: "MANAGER_CA".into(),
            manager: Some("http://127.0.0.1:9".into()),
        };
        let att = tempfile::tempdir().unwrap();
        let e = provision_one(
            1,
            &req,
            &Attestation::at(att.path()),
            &ManagerClient::default(),
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(matches!(e, ProvisionError::NoAttestation { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "certificate `svc.example` (certificates[1]): the manager at http://127.0.0.1:9 needs an SGX quote, but /dev/attestation is not available (not running under SGX with remote attestation)"
        );
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
