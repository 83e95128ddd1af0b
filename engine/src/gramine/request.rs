//! The `POST /convert-image` request body, exactly as shared/spec/convert-image.md gives
//! it (camelCase field names, unknown fields rejected).
//!
//! These types hold the request as sent; [`super::validate`] checks every field, applies
//! the defaults and produces a [`super::validate::ValidRequest`]. Secrets (`password`,
//! `apiKey`) never appear in `Debug` output.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The convert-image request body.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConvertRequest {
    /// Image to convert (`registry/repository:tag` or `@digest`). Required.
    pub input_image_name: String,
    /// Where the converted image is pushed. Required.
    pub output_image_name: String,
    /// Credentials for pulling the input image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_auth_config: Option<AuthConfig>,
    /// Credentials for pushing the output image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_auth_config: Option<AuthConfig>,
    /// Credentials for both sides where the side-specific one is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_config: Option<AuthConfig>,
    /// Enclave product id, 0..=65535 (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isvprodid: Option<i64>,
    /// Enclave security version, 0..=65535 (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isvsvn: Option<i64>,
    /// Enclave size (`2048M`, `4g`, `1048576`); default `256M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_size: Option<String>,
    /// Enclave threads, 1..=1024 (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<i64>,
    /// Debug enclave (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    /// Replaces the image's ENTRYPOINT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint_args: Option<Vec<String>>,
    /// Encrypted (sealed) directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_dirs: Option<Vec<String>>,
    /// Read-only, integrity-protected directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ro_dirs: Option<Vec<String>>,
    /// Unprotected read-write files/directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rw_dirs: Option<Vec<String>>,
    /// Let `docker run` arguments reach the app (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_cmdline_args: Option<bool>,
    /// `KEY=VALUE` entries baked into the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_env: Option<Vec<String>>,
    /// Extra raw manifest options (dotted or nested keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_options: Option<serde_json::Map<String, serde_json::Value>>,
    /// Certificates the enclave obtains at start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<CertificateConfig>>,
    /// The key that signs the enclave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<SigningKey>,
    /// Mount point of extra runtime packages in the converter's filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_packages: Option<String>,
    /// Template for debug core dump file paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_dump_pattern: Option<String>,
    /// Where the runtime writes its log (`stderr` allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file_path: Option<String>,
    /// `JAVA-ORACLE`, `OPENJDK`, `OPENJ9` or `LIBERTY-JRE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub java_mode: Option<String>,
}

/// Registry credentials. The password never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthConfig {
    /// User name.
    pub username: String,
    /// Password or token (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One certificate the enclave obtains at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateConfig {
    /// `MANAGER_CA` (default), `NODE` or `SELF_IAS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The certificate's common name (typically a DNS name). Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `RSA` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    /// Key parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_param: Option<KeyParam>,
    /// Where the app finds the PEM private key. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_path: Option<String>,
    /// Where the app finds the PEM certificate. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<String>,
}

/// Key parameters of a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyParam {
    /// RSA key size in bits (>= 2048, even; default 2048).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

/// The enclave signing key: exactly one variant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum SigningKey {
    /// `{"default": {}}`: the service's default key.
    Default(DefaultKey),
    /// `{"sdkms": {"name": ..., "apiKey": ...}}`: a key held in a remote KMS.
    Sdkms(SdkmsKey),
}

impl Default for SigningKey {
    fn default() -> Self {
        SigningKey::Default(DefaultKey {})
    }
}

/// The (empty) body of `{"default": {}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultKey {}

/// A key held in a remote KMS. The API key never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SdkmsKey {
    /// The key's name in the KMS.
    pub name: String,
    /// The API key that authorises its use.
    pub api_key: String,
}

impl fmt::Debug for SdkmsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkmsKey")
            .field("name", &self.name)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// Field names whose values are secret: a parse error located at one of them is reported
/// without serde's message (which may quote the value).
const SECRET_FIELDS: [&str; 2] = ["password", "apiKey"];

/// Why a request body does not parse: the JSON path of the problem and what is wrong,
/// never quoting a secret value. `api` reports it as a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The path and the problem, e.g. `threads: invalid type: string "x", expected u32`.
    pub reason: String,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for RequestError {}

/// Parses a request body. Errors name the JSON path of the problem (and never quote a
/// secret).
pub fn parse_request(body: &[u8]) -> Result<ConvertRequest, RequestError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, ConvertRequest>(de) {
        Ok(r) => Ok(r),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let secret = SECRET_FIELDS
                .iter()
                .any(|s| path.split('.').any(|seg| seg == *s));
            let reason = if secret {
                format!("{path}: invalid value (must be a string)")
            } else if path == "." || path.is_empty() {
                format!("request body: {inner}")
            } else {
                format!("{path}: {inner}")
            };
            Err(RequestError { reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_request_parses() {
        let r = parse_request(br#"{"inputImageName":"a","outputImageName":"b"}"#).unwrap();
        assert_eq!(r.input_image_name, "a");
        assert_eq!(r.output_image_name, "b");
        assert_eq!(r.signing_key, None);
    }

    #[test]
    fn every_field_parses() {
        let body = r#"{
          "inputImageName": "in:1", "outputImageName": "out:1",
          "inputAuthConfig": {"username": "u1", "password": "p1"},
          "outputAuthConfig": {"username": "u2"},
          "authConfig": {"username": "u3", "password": "p3"},
          "isvprodid": 7, "isvsvn": 3, "memSize": "2048M", "threads": 8, "debug": true,
          "entrypoint": ["/bin/app"], "entrypointArgs": ["-x"],
          "encryptedDirs": ["/data"], "roDirs": ["/"], "rwDirs": ["/var/log"],
          "allowCmdlineArgs": true, "manifestEnv": ["A=1"],
          "manifestOptions": {"sys.stack.size": "1M"},
          "certificates": [{"issuer": "NODE", "subject": "app.example", "keyType": "RSA",
                            "keyParam": {"size": 3072}, "keyPath": "/data/k.pem",
                            "certPath": "/data/c.pem"}],
          "signingKey": {"sdkms": {"name": "k", "apiKey": "secret-key"}},
          "externalPackages": "/ext", "coreDumpPattern": "/data/core.%p",
          "logFilePath": "stderr", "javaMode": "OPENJDK"
        }"#;
        let r = parse_request(body.as_bytes()).unwrap();
        assert_eq!(r.isvprodid, Some(7));
        assert_eq!(r.threads, Some(8));
        assert_eq!(r.mem_size.as_deref(), Some("2048M"));
        assert_eq!(
            r.output_auth_config,
            Some(AuthConfig {
                username: "u2".into(),
                password: None
            })
        );
        assert_eq!(
            r.certificates.as_ref().unwrap()[0].key_param,
            Some(KeyParam { size: Some(3072) })
        );
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("p1") && !dbg.contains("p3") && !dbg.contains("secret-key"));
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_name() {
        let e = parse_request(br#"{"inputImageName":"a","outputImageName":"b","memsize":"1G"}"#)
            .unwrap_err();
        assert!(e.reason.contains("memsize"), "{}", e.reason);
        let e = parse_request(
            br#"{"inputImageName":"a","outputImageName":"b","inputAuthConfig":{"username":"u","pass":"x"}}"#,
        )
        .unwrap_err();
        assert!(e.reason.contains("inputAuthConfig"), "{}", e.reason);
        assert!(e.reason.contains("pass"), "{}", e.reason);
    }

    #[test]
    fn missing_required_field_is_named() {
        let e = parse_request(br#"{"inputImageName":"a"}"#).unwrap_err();
        assert!(e.reason.contains("outputImageName"), "{}", e.reason);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = parse_request(br#"{"inputImageName":"a","outputImageName":"b","threads":"x"}"#)
            .unwrap_err();
        assert!(e.reason.starts_with("threads:"), "{}", e.reason);
    }

    #[test]
    fn secret_values_are_not_echoed() {
        let e = parse_request(
            br#"{"inputImageName":"a","outputImageName":"b","authConfig":{"username":"u","password":123456789}}"#,
        )
        .unwrap_err();
        assert!(!e.reason.contains("123456789"), "{}", e.reason);
        assert!(e.reason.contains("authConfig.password"), "{}", e.reason);
        let e = parse_request(
            br#"{"inputImageName":"a","outputImageName":"b","signingKey":{"sdkms":{"name":"n","apiKey":987654321}}}"#,
        )
        .unwrap_err();
        assert!(!e.reason.contains("987654321"), "{}", e.reason);
    }

    #[test]
    fn signing_key_has_exactly_one_variant() {
        let ok = parse_request(
            br#"{"inputImageName":"a","outputImageName":"b","signingKey":{"default":{}}}"#,
        )
        .unwrap();
        assert_eq!(ok.signing_key, Some(SigningKey::Default(DefaultKey {})));
        for bad in [
            r#"{"default":{},"sdkms":{"name":"n","apiKey":"k"}}"#,
            r#"{}"#,
            r#"{"other":{}}"#,
            r#"{"default":{"x":1}}"#,
            r#"{"sdkms":{"name":"n"}}"#,
        ] {
            let body =
                format!(r#"{{"inputImageName":"a","outputImageName":"b","signingKey":{bad}}}"#);
            let e = parse_request(body.as_bytes()).unwrap_err();
            assert!(e.reason.starts_with("signingKey"), "{bad}: {}", e.reason);
        }
    }

    #[test]
    fn malformed_json_names_the_body() {
        let e = parse_request(b"{").unwrap_err();
        assert!(e.reason.contains("EOF while parsing"), "{e}");
    }
}
