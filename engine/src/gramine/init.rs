//! Certificates provisioned inside the enclave by kiln-init (init/, in the runtime image
//! at `<prefix>/kiln-init`). When a request has `certificates`, the manifests start
//! kiln-init instead of the app (`libos.entrypoint`), with the app's `loader.argv`
//! unchanged; kiln-init reads [`INIT_JSON_PATH`] (this module's [`init_json`]), generates
//! each RSA key in the enclave, writes it and a self-signed certificate carrying the SGX
//! quote over the key (Gramine RA-TLS's legacy quote extension), and execs the app. Both
//! kiln-init and `init.json` are trusted files; `sgx.remote_attestation = "dcap"` makes
//! Gramine provide `/dev/attestation`.
//!
//! When the conversion fixes a manager URL ([`crate::pipeline::PipelineEnv::manager_url`],
//! checked by [`check_manager_url`]), each MANAGER_CA entry of `init.json` carries it as
//! `"manager"` (so it is measured), and kiln-init has that certificate issued by the
//! manager's CA (`POST {manager}/certificates/issue`) instead of self-signing it. Without
//! it `init.json` is byte for byte what it was before.

use sha2::{Digest as _, Sha256};

use super::dirs::{DirKind, DirRules};
use super::runtime_descriptor::RuntimeDescriptor;
use super::spec::TrustedFile;
use super::validate::{Certificate, Issuer};

/// Where the kiln layer puts kiln-init's configuration.
pub const INIT_JSON_PATH: &str = "/opt/kiln/init.json";
/// kiln-init's path relative to the runtime prefix.
pub const KILN_INIT: &str = "kiln-init";
/// The error when the runtime image has no kiln-init.
pub const NO_KILN_INIT: &str = "runtime image lacks kiln-init; repack it with `kiln runtime pack`";
/// `sgx.remote_attestation` when kiln-init needs quotes.
pub const REMOTE_ATTESTATION: &str = "dcap";

/// What the manifests need for kiln-init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSetup {
    /// `libos.entrypoint`: kiln-init's absolute path.
    pub entrypoint: String,
    /// The bytes of [`INIT_JSON_PATH`].
    pub init_json: Vec<u8>,
    /// kiln-init and `init.json` as trusted files.
    pub trusted_files: Vec<TrustedFile>,
}

/// kiln-init's absolute path in the runtime.
pub fn kiln_init_path(runtime: &RuntimeDescriptor) -> String {
    runtime.path_of(KILN_INIT)
}

/// The manager URL check kiln-init makes too (`init.json`'s format lives in kiln-init's
/// `config` module, [`kiln_init::config`], and is written with its types).
pub use kiln_init::config::{check_manager_url, MAX_MANAGER_URL};

/// `init.json`: `{"version":1,"program":…,"certificates":[{subject,keySize,keyPath,certPath,issuer[,manager]}]}`
/// (compact, fields in this order, newline-terminated). `manager` is written for
/// MANAGER_CA entries only, and only when `manager_url` is set.
pub fn init_json(
    program: &str,
    certificates: &[Certificate],
    manager_url: Option<&str>,
) -> Vec<u8> {
    kiln_init::config::InitConfig {
        version: kiln_init::config::VERSION,
        program: program.to_string(),
        certificates: certificates
            .iter()
            .map(|c| kiln_init::config::CertRequest {
                subject: c.subject.clone(),
                key_size: c.rsa_bits,
                key_path: c.key_path.clone(),
                cert_path: c.cert_path.clone(),
                issuer: c.issuer.as_str().to_string(),
                manager: manager_url
                    .filter(|_| c.issuer == Issuer::ManagerCa)
                    .map(str::to_string),
            })
            .collect(),
    }
    .to_json()
}

/// The setup, given kiln-init's hash from the runtime layer and the conversion's manager
/// URL (if any).
pub fn setup(
    program: &str,
    certificates: &[Certificate],
    runtime: &RuntimeDescriptor,
    kiln_init_sha256: [u8; 32],
    manager_url: Option<&str>,
) -> InitSetup {
    let init_json = init_json(program, certificates, manager_url);
    let entrypoint = kiln_init_path(runtime);
    let trusted_files = vec![
        TrustedFile {
            path: INIT_JSON_PATH.to_string(),
            sha256: Sha256::digest(&init_json).into(),
        },
        TrustedFile {
            path: entrypoint.clone(),
            sha256: kiln_init_sha256,
        },
    ];
    InitSetup {
        entrypoint,
        init_json,
        trusted_files,
    }
}

/// What the user is told about the certificates: how they are made, per issuer what is
/// not available (or, for MANAGER_CA with a manager URL, where it comes from), and paths
/// that will not work.
pub fn warnings(
    certificates: &[Certificate],
    rules: &DirRules,
    manager_url: Option<&str>,
) -> Vec<String> {
    if certificates.is_empty() {
        return Vec::new();
    }
    let mut first = "certificates: generated inside the enclave at start-up by kiln-init: an RSA key and a certificate self-signed with it that embeds the SGX quote over the key (Gramine RA-TLS style, extension 1.2.840.113741.1337.6); verifiers check the quote, not a CA chain"
        .to_string();
    if manager_url.is_some() && certificates.iter().any(|c| c.issuer == Issuer::ManagerCa) {
        first.push_str("; MANAGER_CA certificates are issued by the manager's CA instead (below)");
    }
    let mut out = vec![first];
    for (i, c) in certificates.iter().enumerate() {
        match c.issuer {
            Issuer::ManagerCa => out.push(match manager_url {
                Some(url) => format!(
                    "certificates[{i}].issuer MANAGER_CA: kiln-init requests the certificate from the manager at {url} at start-up (POST {url}/certificates/issue with a CSR and the SGX quote over its key); the app does not start until an operator approves this conversion there, nor outside SGX (no quote)"
                ),
                None => format!(
                    "certificates[{i}].issuer MANAGER_CA: this conversion names no manager (kiln convert --manager-url, or a worker with KILN_MANAGER_CA_KEY); the certificate is self-signed"
                ),
            }),
            Issuer::Node => out.push(format!(
                "certificates[{i}].issuer NODE: issuance by the node agent needs the commercial platform's CA and is not available; the certificate is self-signed"
            )),
            Issuer::SelfIas => {}
        }
        for (name, path) in [("keyPath", &c.key_path), ("certPath", &c.cert_path)] {
            match rules.classify(path) {
                Some(DirKind::Encrypted) => {}
                Some(DirKind::ReadWrite) if name == "keyPath" => out.push(format!(
                    "certificates[{i}].keyPath `{path}` lies under rwDirs: the private key is written unencrypted to the host; put it under encryptedDirs"
                )),
                Some(DirKind::ReadWrite) => {}
                _ => out.push(format!(
                    "certificates[{i}].{name} `{path}` is not under encryptedDirs or rwDirs: kiln-init cannot write it unless manifestOptions mount something writable there, and the app will not start"
                )),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(issuer: Issuer, key: &str, crt: &str) -> Certificate {
        Certificate {
            issuer,
            subject: "app.example".into(),
            rsa_bits: 3072,
            key_path: key.into(),
            cert_path: crt.into(),
        }
    }

    #[test]
    fn init_json_is_fixed() {
        let j = init_json(
            "/usr/bin/app",
            &[cert(Issuer::Node, "/data/k.pem", "/data/c.pem")],
            None,
        );
        assert_eq!(
            String::from_utf8(j).unwrap(),
            "{\"version\":1,\"program\":\"/usr/bin/app\",\"certificates\":[{\"subject\":\"app.example\",\"keySize\":3072,\"keyPath\":\"/data/k.pem\",\"certPath\":\"/data/c.pem\",\"issuer\":\"NODE\"}]}\n"
        );
    }

    #[test]
    fn warnings_per_issuer_and_path() {
        let rules = DirRules::new(&["/".into()], &["/rw".into()], &["/enc".into()]);
        assert!(warnings(&[], &rules, None).is_empty());
        let w = warnings(
            &[
                cert(Issuer::ManagerCa, "/enc/k", "/enc/c"),
                cert(Issuer::SelfIas, "/rw/k", "/rw/c"),
                cert(Issuer::Node, "/etc/k", "/enc/c"),
            ],
            &rules,
            None,
        );
        assert!(w[0].contains("self-signed") && w[0].contains("1.2.840.113741.1337.6"));
        assert!(w
            .iter()
            .any(|x| x.starts_with("certificates[0].issuer MANAGER_CA")));
        assert!(!w.iter().any(|x| x.starts_with("certificates[1].issuer")));
        assert!(w
            .iter()
            .any(|x| x.starts_with("certificates[1].keyPath `/rw/k` lies under rwDirs")));
        assert!(!w.iter().any(|x| x.starts_with("certificates[1].certPath")));
        assert!(w
            .iter()
            .any(|x| x.starts_with("certificates[2].issuer NODE")));
        assert!(w
            .iter()
            .any(|x| x.starts_with("certificates[2].keyPath `/etc/k` is not under")));
        assert_eq!(w.len(), 5, "{w:#?}");
    }

    #[test]
    fn the_manager_url_goes_to_manager_ca_entries_only() {
        let certs = [
            cert(Issuer::ManagerCa, "/enc/k", "/enc/c"),
            cert(Issuer::Node, "/enc/k2", "/enc/c2"),
        ];
        let unset = init_json("/app", &certs, None);
        assert!(!String::from_utf8_lossy(&unset).contains("manager"));
        let j = init_json("/app", &certs, Some("https://kiln.example"));
        assert_eq!(
            String::from_utf8(j).unwrap(),
            "{\"version\":1,\"program\":\"/app\",\"certificates\":[{\"subject\":\"app.example\",\"keySize\":3072,\"keyPath\":\"/enc/k\",\"certPath\":\"/enc/c\",\"issuer\":\"MANAGER_CA\",\"manager\":\"https://kiln.example\"},{\"subject\":\"app.example\",\"keySize\":3072,\"keyPath\":\"/enc/k2\",\"certPath\":\"/enc/c2\",\"issuer\":\"NODE\"}]}\n"
        );
        let rules = DirRules::new(&["/".into()], &[], &["/enc".into()]);
        let w = warnings(&certs, &rules, Some("https://kiln.example"));
        assert!(w.iter().any(|x| x
            == "certificates[0].issuer MANAGER_CA: kiln-init requests the certificate from the manager at https://kiln.example at start-up (POST https://kiln.example/certificates/issue with a CSR and the SGX quote over its key); the app does not start until an operator approves this conversion there, nor outside SGX (no quote)"));
        assert!(w
            .iter()
            .any(|x| x.starts_with("certificates[1].issuer NODE")));
        assert!(!w
            .iter()
            .any(|x| x.contains("self-signed") && x.starts_with("certificates[0]")));
    }

    #[test]
    fn manager_urls_are_checked() {
        for ok in [
            "https://kiln.example",
            "http://127.0.0.1:8787/",
            "https://k.example/base",
        ] {
            check_manager_url(ok).unwrap();
        }
        for (bad, why) in [
            ("kiln.example", "absolute"),
            ("file:///x", "absolute"),
            ("https://", "no host"),
            ("https://u:p@k.example", "userinfo"),
            ("https://k.example/?q", "query"),
            ("https://k.example/#f", "fragment"),
            ("https://k.example/ x", "whitespace"),
        ] {
            let e = check_manager_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
