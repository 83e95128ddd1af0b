//! `/opt/kiln/init.json`, written by the kiln engine into the kiln layer (a trusted file,
//! so its contents are measured):
//!
//! ```json
//! {"version": 1, "program": "/abs/app",
//!  "certificates": [{"subject": "app.example", "keySize": 2048,
//!                    "keyPath": "/data/k.pem", "certPath": "/data/c.pem",
//!                    "issuer": "MANAGER_CA"}]}
//! ```

use serde::Deserialize;

/// Where the engine puts the configuration.
pub const INIT_JSON: &str = "/opt/kiln/init.json";

/// The only format version.
pub const VERSION: u32 = 1;

/// Smallest RSA key accepted, in bits.
pub const MIN_KEY_BITS: u32 = 2048;
/// Largest RSA key accepted, in bits.
pub const MAX_KEY_BITS: u32 = 16384;

/// The parsed configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitConfig {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Absolute path of the app's executable (what `libos.entrypoint` was before).
    pub program: String,
    /// The certificates to provision, in order.
    pub certificates: Vec<CertRequest>,
}

/// One certificate to provision.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertRequest {
    /// Common name, also the certificate's DNS subject alternative name.
    pub subject: String,
    /// RSA modulus size in bits (even, 2048..=16384).
    pub key_size: u32,
    /// Absolute path of the PKCS#8 PEM private key.
    pub key_path: String,
    /// Absolute path of the PEM certificate.
    pub cert_path: String,
    /// The issuer the request asked for (`MANAGER_CA`, `NODE`, `SELF_IAS`); recorded
    /// only: every certificate is self-signed in the enclave.
    pub issuer: String,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON of the expected shape.
    #[error("not a valid init configuration: {0}")]
    Json(#[from] serde_json::Error),
    /// Unknown version.
    #[error("version {0} is not supported (expected {VERSION})")]
    Version(u32),
    /// A field is wrong.
    #[error("{field}: {problem}")]
    Field {
        /// The field, e.g. `certificates[0].keyPath`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn field(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

fn absolute(name: String, p: &str) -> Result<(), ConfigError> {
    if !p.starts_with('/') || p.ends_with('/') || p.contains('\0') {
        return Err(field(name, format!("`{p}` is not an absolute file path")));
    }
    Ok(())
}

impl InitConfig {
    /// Parses and checks the JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let c: InitConfig = serde_json::from_slice(bytes)?;
        if c.version != VERSION {
            return Err(ConfigError::Version(c.version));
        }
        absolute("program".into(), &c.program)?;
        for (i, r) in c.certificates.iter().enumerate() {
            let f = |n: &str| format!("certificates[{i}].{n}");
            if r.subject.is_empty() || r.subject.chars().any(char::is_control) {
                return Err(field(
                    f("subject"),
                    "must be a non-empty name without control characters",
                ));
            }
            if !(MIN_KEY_BITS..=MAX_KEY_BITS).contains(&r.key_size) || r.key_size % 2 != 0 {
                return Err(field(
                    f("keySize"),
                    format!(
                        "{} must be even and in {MIN_KEY_BITS}..={MAX_KEY_BITS}",
                        r.key_size
                    ),
                ));
            }
            absolute(f("keyPath"), &r.key_path)?;
            absolute(f("certPath"), &r.cert_path)?;
            if r.key_path == r.cert_path {
                return Err(field(f("certPath"), "must differ from keyPath"));
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"version":1,"program":"/bin/app","certificates":[
        {"subject":"app.example","keySize":3072,"keyPath":"/d/k.pem","certPath":"/d/c.pem","issuer":"NODE"}]}"#;

    #[test]
    fn parses_a_config() {
        let c = InitConfig::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(c.program, "/bin/app");
        assert_eq!(
            c.certificates,
            vec![CertRequest {
                subject: "app.example".into(),
                key_size: 3072,
                key_path: "/d/k.pem".into(),
                cert_path: "/d/c.pem".into(),
                issuer: "NODE".into(),
            }]
        );
        let none = InitConfig::parse(br#"{"version":1,"program":"/a","certificates":[]}"#).unwrap();
        assert!(none.certificates.is_empty());
    }

    fn err(s: &str) -> String {
        InitConfig::parse(s.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(err("[]").contains("not a valid"));
        assert!(err(&GOOD.replace("\"version\":1", "\"version\":2")).contains("version 2"));
        assert!(err(&GOOD.replace("/bin/app", "app")).starts_with("program:"));
        assert!(err(&GOOD.replace("3072", "3073")).starts_with("certificates[0].keySize"));
        assert!(err(&GOOD.replace("3072", "1024")).starts_with("certificates[0].keySize"));
        assert!(err(&GOOD.replace("/d/k.pem", "k.pem")).starts_with("certificates[0].keyPath"));
        assert!(err(&GOOD.replace("/d/c.pem", "/d/")).starts_with("certificates[0].certPath"));
        assert!(err(&GOOD.replace("/d/c.pem", "/d/k.pem")).starts_with("certificates[0].certPath"));
        assert!(err(&GOOD.replace("app.example", "")).starts_with("certificates[0].subject"));
        assert!(err(&GOOD.replace("\"issuer\"", "\"x\":1,\"issuer\"")).contains("unknown field"));
    }
}
