//! Certificates provisioned inside the enclave by kiln-init (init/, in the runtime image
//! at `<prefix>/kiln-init`). When a request has `certificates`, the manifests start
//! kiln-init instead of the app (`libos.entrypoint`), with the app's `loader.argv`
//! unchanged; kiln-init reads [`INIT_JSON_PATH`] (this module's [`init_json`]), generates
//! each RSA key in the enclave, writes it and a self-signed certificate carrying the SGX
//! quote over the key (Gramine RA-TLS's legacy quote extension), and execs the app. Both
//! kiln-init and `init.json` are trusted files; `sgx.remote_attestation = "dcap"` makes
//! Gramine provide `/dev/attestation`.

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

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct InitJson<'a> {
    version: u32,
    program: &'a str,
    certificates: Vec<InitCert<'a>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct InitCert<'a> {
    subject: &'a str,
    key_size: u32,
    key_path: &'a str,
    cert_path: &'a str,
    issuer: &'static str,
}

/// `init.json`: `{"version":1,"program":…,"certificates":[{subject,keySize,keyPath,certPath,issuer}]}`
/// (compact, fields in this order, newline-terminated).
pub fn init_json(program: &str, certificates: &[Certificate]) -> Vec<u8> {
    let v = InitJson {
        version: 1,
        program,
        certificates: certificates
            .iter()
            .map(|c| InitCert {
                subject: &c.subject,
                key_size: c.rsa_bits,
                key_path: &c.key_path,
                cert_path: &c.cert_path,
                issuer: c.issuer.as_str(),
            })
            .collect(),
    };
    // Serialising plain strings and numbers cannot fail.
    let mut out = serde_json::to_vec(&v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The setup, given kiln-init's hash from the runtime layer.
pub fn setup(
    program: &str,
    certificates: &[Certificate],
    runtime: &RuntimeDescriptor,
    kiln_init_sha256: [u8; 32],
) -> InitSetup {
    let init_json = init_json(program, certificates);
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
/// not available, and paths that will not work.
pub fn warnings(certificates: &[Certificate], rules: &DirRules) -> Vec<String> {
    if certificates.is_empty() {
        return Vec::new();
    }
    let mut out = vec![
        "certificates: generated inside the enclave at start-up by kiln-init: an RSA key and a certificate self-signed with it that embeds the SGX quote over the key (Gramine RA-TLS style, extension 1.2.840.113741.1337.6); verifiers check the quote, not a CA chain"
            .to_string(),
    ];
    for (i, c) in certificates.iter().enumerate() {
        match c.issuer {
            Issuer::ManagerCa => out.push(format!(
                "certificates[{i}].issuer MANAGER_CA: issuance by the manager's CA needs the commercial platform's CA and is not available; the certificate is self-signed"
            )),
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
        );
        assert_eq!(
            String::from_utf8(j).unwrap(),
            "{\"version\":1,\"program\":\"/usr/bin/app\",\"certificates\":[{\"subject\":\"app.example\",\"keySize\":3072,\"keyPath\":\"/data/k.pem\",\"certPath\":\"/data/c.pem\",\"issuer\":\"NODE\"}]}\n"
        );
    }

    #[test]
    fn warnings_per_issuer_and_path() {
        let rules = DirRules::new(&["/".into()], &["/rw".into()], &["/enc".into()]);
        assert!(warnings(&[], &rules).is_empty());
        let w = warnings(
            &[
                cert(Issuer::ManagerCa, "/enc/k", "/enc/c"),
                cert(Issuer::SelfIas, "/rw/k", "/rw/c"),
                cert(Issuer::Node, "/etc/k", "/enc/c"),
            ],
            &rules,
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
}
