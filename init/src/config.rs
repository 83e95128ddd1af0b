//! `/opt/kiln/init.json`, written by the kiln engine into the kiln layer (a trusted file,
//! so its contents are measured):
//!
//! ```json
//! {"version": 1, "program": "/abs/app",
//!  "certificates": [{"subject": "app.example", "keySize": 2048,
//!                    "keyPath": "/data/k.pem", "certPath": "/data/c.pem",
//!                    "issuer": "MANAGER_CA",
//!                    "manager": "https://kiln.example"}]}
//! ```
//!
//! `manager` (optional, MANAGER_CA entries only, written when the conversion fixed a
//! manager URL) is the manager's base URL: kiln-init then has the certificate issued by
//! `POST {manager}/certificates/issue` instead of self-signing it (see
//! [`crate::manager`]). Absent, the certificate is self-signed as before.

use serde::{Deserialize, Serialize};

/// Where the engine puts the configuration.
pub const INIT_JSON: &str = "/opt/kiln/init.json";

/// The only format version.
pub const VERSION: u32 = 1;

/// Smallest RSA key accepted, in bits.
pub const MIN_KEY_BITS: u32 = 2048;
/// Largest RSA key accepted, in bits.
pub const MAX_KEY_BITS: u32 = 16384;

/// The configuration. The engine serialises it (compact JSON, fields in this order, a
/// trailing newline: [`InitConfig::to_json`]); kiln-init parses it ([`InitConfig::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// only: what kiln-init does depends on [`Self::manager`].
    pub issuer: String,
    /// The manager's base URL (absolute `http`/`https`, no userinfo, query or fragment):
    /// when present the certificate is issued by the manager's CA
    /// ([`crate::manager`]); absent, it is self-signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
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

/// Longest manager URL accepted.
pub const MAX_MANAGER_URL: usize = 2048;

/// Checks a manager base URL: `http://` or `https://`, a host, no userinfo, query,
/// fragment, whitespace or control characters, at most [`MAX_MANAGER_URL`] bytes. The
/// problem, without the URL's value beyond its scheme, on failure.
pub fn check_manager_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_MANAGER_URL {
        return Err(format!(
            "{} bytes is more than the {MAX_MANAGER_URL}-byte limit",
            url.len()
        ));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must be an absolute http:// or https:// URL")?;
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain whitespace or control characters".into());
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err("has no host".into());
    }
    if authority.contains('@') {
        return Err("must not contain userinfo (user:password@)".into());
    }
    if url.contains('?') || url.contains('#') {
        return Err("must not contain a query or fragment".into());
    }
    Ok(())
}

impl InitConfig {
    /// The bytes of `init.json`: compact JSON, fields in declaration order, `manager` only
    /// when set, newline-terminated. They are measured: change nothing here lightly.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising strings, numbers and options cannot fail.
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

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
            if let Some(m) = &r.manager {
                check_manager_url(m).map_err(|problem| field(f("manager"), problem))?;
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
                manager: None,
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

    fn with_manager(url: &str) -> String {
        GOOD.replace(
            "\"issuer\":\"NODE\"",
            &format!(
                "\"issuer\":\"MANAGER_CA\",\"manager\":{}",
                serde_json::json!(url)
            ),
        )
    }

    #[test]
    fn the_manager_field_is_an_optional_base_url() {
        for url in [
            "https://kiln.example",
            "https://kiln.example:8443/base/",
            "http://127.0.0.1:8787",
        ] {
            let c = InitConfig::parse(with_manager(url).as_bytes()).unwrap();
            assert_eq!(c.certificates[0].manager.as_deref(), Some(url));
            assert_eq!(c.certificates[0].issuer, "MANAGER_CA");
        }
        for (url, problem) in [
            ("kiln.example", "absolute http"),
            ("ftp://kiln.example", "absolute http"),
            ("https://", "no host"),
            ("https:///x", "no host"),
            ("https://u:p@kiln.example", "userinfo"),
            ("https://kiln.example/?a=b", "query"),
            ("https://kiln.example/#f", "fragment"),
            ("https://kiln.example/a b", "whitespace"),
        ] {
            let e = err(&with_manager(url));
            assert!(
                e.starts_with("certificates[0].manager: ") && e.contains(problem),
                "{url}: {e}"
            );
            assert!(!e.contains("u:p"), "{e}");
        }
        let long = format!("https://kiln.example/{}", "a".repeat(MAX_MANAGER_URL));
        assert!(err(&with_manager(&long)).contains("2048-byte limit"));
        assert!(
            err(&GOOD.replace("\"issuer\":\"NODE\"", "\"issuer\":\"NODE\",\"manager\":7"))
                .contains("invalid type")
        );
    }
}
