//! The convert form's state (strings as typed) and its translation into the API's
//! [`ConvertRequest`]. Pure: no browser, tested natively.
//!
//! Empty inputs are left out of the request, so the API's defaults apply; an empty list
//! is left out too (its default applies). Text that cannot become the field's JSON type
//! (`isvsvn` = `abc`) is reported against that field, like the engine's own checks.

use kiln_engine::api::{
    AuthConfig, CertificateConfig, ConvertRequest, KeyParam, SdkmsKey, SigningKey,
};
use kiln_engine::gramine::validate::FieldError;

/// One certificate row of the form.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CertRow {
    /// `MANAGER_CA`, `NODE`, `SELF_IAS` (empty: default).
    pub issuer: String,
    /// Common name.
    pub subject: String,
    /// `RSA` (empty: default).
    pub key_type: String,
    /// RSA bits (empty: default).
    pub key_size: String,
    /// Key path inside the app's filesystem.
    pub key_path: String,
    /// Certificate path inside the app's filesystem.
    pub cert_path: String,
}

/// Which key signs the enclave (the request's `signingKey`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SigningChoice {
    /// Omit `signingKey`: the service's default key.
    #[default]
    ServiceDefault,
    /// `{"sdkms": {name, apiKey}}`.
    Sdkms,
}

/// Registry credentials as typed. The password lives only in memory.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Creds {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Every field of the convert-image request, as the user typed it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FormState {
    /// `inputImageName`.
    pub input_image_name: String,
    /// `outputImageName`.
    pub output_image_name: String,
    /// `inputAuthConfig`.
    pub input_auth: Creds,
    /// `outputAuthConfig`.
    pub output_auth: Creds,
    /// `isvprodid`.
    pub isvprodid: String,
    /// `isvsvn`.
    pub isvsvn: String,
    /// `memSize`.
    pub mem_size: String,
    /// `threads`.
    pub threads: String,
    /// `debug`.
    pub debug: bool,
    /// `allowCmdlineArgs`.
    pub allow_cmdline_args: bool,
    /// `entrypoint`.
    pub entrypoint: Vec<String>,
    /// `entrypointArgs`.
    pub entrypoint_args: Vec<String>,
    /// `encryptedDirs`.
    pub encrypted_dirs: Vec<String>,
    /// `roDirs`.
    pub ro_dirs: Vec<String>,
    /// `rwDirs`.
    pub rw_dirs: Vec<String>,
    /// `manifestEnv`.
    pub manifest_env: Vec<String>,
    /// `manifestOptions` (a JSON object as text).
    pub manifest_options: String,
    /// `certificates`.
    pub certificates: Vec<CertRow>,
    /// `signingKey`.
    pub signing: SigningChoice,
    /// `signingKey.sdkms.name`.
    pub sdkms_name: String,
    /// `signingKey.sdkms.apiKey` (memory only).
    pub sdkms_api_key: String,
    /// `externalPackages`.
    pub external_packages: String,
    /// `coreDumpPattern`.
    pub core_dump_pattern: String,
    /// `logFilePath`.
    pub log_file_path: String,
    /// `javaMode` (empty: none).
    pub java_mode: String,
}

fn opt_string(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn opt_list(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn opt_int(errors: &mut Vec<FieldError>, field: &str, s: &str) -> Option<i64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    match t.parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => {
            errors.push(FieldError {
                field: field.to_string(),
                problem: format!("`{t}` is not a whole number"),
            });
            None
        }
    }
}

fn opt_auth(c: &Creds) -> Option<AuthConfig> {
    if c.username.is_empty() && c.password.is_empty() {
        return None;
    }
    Some(AuthConfig {
        username: c.username.trim().to_string(),
        password: (!c.password.is_empty()).then(|| c.password.clone()),
    })
}

impl FormState {
    /// The request this form describes, and the problems found while translating it
    /// (numbers that are not numbers, manifestOptions that is not a JSON object). The
    /// request leaves out a field that could not be read, so the engine's validation can
    /// still check the rest.
    pub fn to_request(&self) -> (ConvertRequest, Vec<FieldError>) {
        let mut errors = Vec::new();
        let manifest_options = match self.manifest_options.trim() {
            "" => None,
            text => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(m)) => Some(m),
                Ok(_) => {
                    errors.push(FieldError {
                        field: "manifestOptions".into(),
                        problem: "must be a JSON object, e.g. {\"sys.stack.size\": \"2M\"}".into(),
                    });
                    None
                }
                Err(e) => {
                    errors.push(FieldError {
                        field: "manifestOptions".into(),
                        problem: format!("not valid JSON: {e}"),
                    });
                    None
                }
            },
        };
        let certificates = if self.certificates.is_empty() {
            None
        } else {
            Some(
                self.certificates
                    .iter()
                    .enumerate()
                    .map(|(i, c)| CertificateConfig {
                        issuer: opt_string(&c.issuer),
                        subject: opt_string(&c.subject),
                        key_type: opt_string(&c.key_type),
                        key_param: opt_int(
                            &mut errors,
                            &format!("certificates[{i}].keyParam.size"),
                            &c.key_size,
                        )
                        .map(|size| KeyParam { size: Some(size) }),
                        key_path: opt_string(&c.key_path),
                        cert_path: opt_string(&c.cert_path),
                    })
                    .collect(),
            )
        };
        let signing_key = match self.signing {
            SigningChoice::ServiceDefault => None,
            SigningChoice::Sdkms => Some(SigningKey::Sdkms(SdkmsKey {
                name: self.sdkms_name.trim().to_string(),
                api_key: self.sdkms_api_key.clone(),
            })),
        };
        let req = ConvertRequest {
            input_image_name: self.input_image_name.trim().to_string(),
            output_image_name: self.output_image_name.trim().to_string(),
            input_auth_config: opt_auth(&self.input_auth),
            output_auth_config: opt_auth(&self.output_auth),
            auth_config: None,
            isvprodid: opt_int(&mut errors, "isvprodid", &self.isvprodid),
            isvsvn: opt_int(&mut errors, "isvsvn", &self.isvsvn),
            mem_size: opt_string(&self.mem_size),
            threads: opt_int(&mut errors, "threads", &self.threads),
            debug: self.debug.then_some(true),
            entrypoint: opt_list(&self.entrypoint),
            entrypoint_args: opt_list(&self.entrypoint_args),
            encrypted_dirs: opt_list(&self.encrypted_dirs),
            ro_dirs: opt_list(&self.ro_dirs),
            rw_dirs: opt_list(&self.rw_dirs),
            allow_cmdline_args: self.allow_cmdline_args.then_some(true),
            manifest_env: opt_list(&self.manifest_env),
            manifest_options,
            certificates,
            signing_key,
            external_packages: opt_string(&self.external_packages),
            core_dump_pattern: opt_string(&self.core_dump_pattern),
            log_file_path: opt_string(&self.log_file_path),
            java_mode: opt_string(&self.java_mode),
        };
        (req, errors)
    }
}

/// What of the form is kept across a reload (`sessionStorage`): every field but the
/// secrets. Registry passwords and the KMS API key are never saved; they must be typed
/// again after a reload.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SavedForm {
    version: u32,
    input_image_name: String,
    output_image_name: String,
    input_username: String,
    output_username: String,
    isvprodid: String,
    isvsvn: String,
    mem_size: String,
    threads: String,
    debug: bool,
    allow_cmdline_args: bool,
    entrypoint: Vec<String>,
    entrypoint_args: Vec<String>,
    encrypted_dirs: Vec<String>,
    ro_dirs: Vec<String>,
    rw_dirs: Vec<String>,
    manifest_env: Vec<String>,
    manifest_options: String,
    certificates: Vec<CertRow>,
    sdkms: bool,
    sdkms_name: String,
    external_packages: String,
    core_dump_pattern: String,
    log_file_path: String,
    java_mode: String,
}

/// The version of [`FormState::to_saved`]'s JSON.
const SAVED_VERSION: u32 = 1;
/// The largest saved form read back, in bytes.
const MAX_SAVED_BYTES: usize = 256 * 1024;

impl FormState {
    /// The form as JSON to keep in `sessionStorage`, without the registry passwords and
    /// the KMS API key.
    pub fn to_saved(&self) -> String {
        let s = SavedForm {
            version: SAVED_VERSION,
            input_image_name: self.input_image_name.clone(),
            output_image_name: self.output_image_name.clone(),
            input_username: self.input_auth.username.clone(),
            output_username: self.output_auth.username.clone(),
            isvprodid: self.isvprodid.clone(),
            isvsvn: self.isvsvn.clone(),
            mem_size: self.mem_size.clone(),
            threads: self.threads.clone(),
            debug: self.debug,
            allow_cmdline_args: self.allow_cmdline_args,
            entrypoint: self.entrypoint.clone(),
            entrypoint_args: self.entrypoint_args.clone(),
            encrypted_dirs: self.encrypted_dirs.clone(),
            ro_dirs: self.ro_dirs.clone(),
            rw_dirs: self.rw_dirs.clone(),
            manifest_env: self.manifest_env.clone(),
            manifest_options: self.manifest_options.clone(),
            certificates: self.certificates.clone(),
            sdkms: self.signing == SigningChoice::Sdkms,
            sdkms_name: self.sdkms_name.clone(),
            external_packages: self.external_packages.clone(),
            core_dump_pattern: self.core_dump_pattern.clone(),
            log_file_path: self.log_file_path.clone(),
            java_mode: self.java_mode.clone(),
        };
        serde_json::to_string(&s).unwrap_or_default()
    }

    /// A form from [`Self::to_saved`]'s JSON (passwords empty); `None` when the text is
    /// not a saved form of this version (or too large), so a damaged entry is ignored.
    pub fn from_saved(text: &str) -> Option<FormState> {
        if text.len() > MAX_SAVED_BYTES {
            return None;
        }
        let s: SavedForm = serde_json::from_str(text).ok()?;
        if s.version != SAVED_VERSION {
            return None;
        }
        Some(FormState {
            input_image_name: s.input_image_name,
            output_image_name: s.output_image_name,
            input_auth: Creds {
                username: s.input_username,
                password: String::new(),
            },
            output_auth: Creds {
                username: s.output_username,
                password: String::new(),
            },
            isvprodid: s.isvprodid,
            isvsvn: s.isvsvn,
            mem_size: s.mem_size,
            threads: s.threads,
            debug: s.debug,
            allow_cmdline_args: s.allow_cmdline_args,
            entrypoint: s.entrypoint,
            entrypoint_args: s.entrypoint_args,
            encrypted_dirs: s.encrypted_dirs,
            ro_dirs: s.ro_dirs,
            rw_dirs: s.rw_dirs,
            manifest_env: s.manifest_env,
            manifest_options: s.manifest_options,
            certificates: s.certificates,
            signing: if s.sdkms {
                SigningChoice::Sdkms
            } else {
                SigningChoice::ServiceDefault
            },
            sdkms_name: s.sdkms_name,
            sdkms_api_key: String::new(),
            external_packages: s.external_packages,
            core_dump_pattern: s.core_dump_pattern,
            log_file_path: s.log_file_path,
            java_mode: s.java_mode,
        })
    }
}

/// Whether an error's field belongs to a form field: `roDirs[1]` and `roDirs` belong to
/// `roDirs`, `inputAuthConfig.username` to `inputAuthConfig`.
pub fn belongs_to(error_field: &str, form_field: &str) -> bool {
    error_field == form_field
        || error_field
            .strip_prefix(form_field)
            .is_some_and(|rest| rest.starts_with('[') || rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine_bridge::validate_request;

    fn minimal() -> FormState {
        FormState {
            input_image_name: "reg.example/app:1".into(),
            output_image_name: "reg.example/app-sgx:1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn empty_fields_are_left_out() {
        let (req, errors) = minimal().to_request();
        assert!(errors.is_empty());
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"inputImageName": "reg.example/app:1",
                               "outputImageName": "reg.example/app-sgx:1"})
        );
        assert!(validate_request(&req).errors.is_empty());
    }

    #[test]
    fn every_field_reaches_the_request() {
        let f = FormState {
            input_auth: Creds {
                username: "u".into(),
                password: "p".into(),
            },
            output_auth: Creds {
                username: "o".into(),
                password: String::new(),
            },
            isvprodid: "7".into(),
            isvsvn: " 3 ".into(),
            mem_size: "2G".into(),
            threads: "8".into(),
            debug: true,
            allow_cmdline_args: true,
            entrypoint: vec!["/bin/app".into()],
            entrypoint_args: vec!["-x".into()],
            encrypted_dirs: vec!["/data".into()],
            ro_dirs: vec!["/".into()],
            rw_dirs: vec!["/var/log".into()],
            manifest_env: vec!["A=1".into()],
            manifest_options: r#"{"sys.stack.size": "2M"}"#.into(),
            certificates: vec![CertRow {
                issuer: "NODE".into(),
                subject: "app.example".into(),
                key_type: "RSA".into(),
                key_size: "3072".into(),
                key_path: "/data/k.pem".into(),
                cert_path: "/data/c.pem".into(),
            }],
            signing: SigningChoice::Sdkms,
            sdkms_name: "k".into(),
            sdkms_api_key: "secret".into(),
            external_packages: "/ext".into(),
            core_dump_pattern: "/data/core.%p".into(),
            log_file_path: "stderr".into(),
            java_mode: "OPENJDK".into(),
            ..minimal()
        };
        let (req, errors) = f.to_request();
        assert!(errors.is_empty(), "{errors:?}");
        let body = serde_json::to_vec(&req).unwrap();
        // The engine's parser reads back exactly what the form produced.
        let parsed = kiln_engine::api::parse_request(&body).unwrap();
        assert_eq!(parsed, req);
        assert_eq!(req.isvsvn, Some(3));
        assert_eq!(req.output_auth_config.as_ref().unwrap().password, None);
        let v = validate_request(&req);
        assert!(v.errors.is_empty(), "{:?}", v.errors);
    }

    #[test]
    fn unreadable_numbers_and_options_name_their_field() {
        let f = FormState {
            isvsvn: "abc".into(),
            threads: "1.5".into(),
            manifest_options: "[1]".into(),
            certificates: vec![CertRow {
                key_size: "big".into(),
                ..Default::default()
            }],
            ..minimal()
        };
        let (req, errors) = f.to_request();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "manifestOptions",
                "certificates[0].keyParam.size",
                "isvsvn",
                "threads"
            ]
        );
        assert_eq!(req.isvsvn, None);
    }

    #[test]
    fn field_ownership() {
        assert!(belongs_to("roDirs[1]", "roDirs"));
        assert!(belongs_to("roDirs", "roDirs"));
        assert!(belongs_to("inputAuthConfig.username", "inputAuthConfig"));
        assert!(!belongs_to("roDirsX", "roDirs"));
        assert!(!belongs_to("isvsvn", "isvprodid"));
    }

    #[test]
    fn debug_hides_secrets() {
        let f = FormState {
            input_auth: Creds {
                username: "u".into(),
                password: "hunter2".into(),
            },
            ..minimal()
        };
        assert!(!format!("{f:?}").contains("hunter2"));
    }

    #[test]
    fn saved_form_keeps_everything_but_secrets() {
        let mut f = minimal();
        f.input_auth = Creds {
            username: "alice".into(),
            password: "hunter2-in".into(),
        };
        f.output_auth = Creds {
            username: "bob".into(),
            password: "hunter2-out".into(),
        };
        f.signing = SigningChoice::Sdkms;
        f.sdkms_name = "release".into();
        f.sdkms_api_key = "sekrit-api-key".into();
        f.ro_dirs = vec!["/app".into()];
        f.certificates = vec![CertRow {
            subject: "app.example".into(),
            ..CertRow::default()
        }];
        f.debug = true;
        let text = f.to_saved();
        for secret in ["hunter2", "sekrit"] {
            assert!(!text.contains(secret), "{text}");
        }
        let back = FormState::from_saved(&text).unwrap();
        let mut expected = f.clone();
        expected.input_auth.password.clear();
        expected.output_auth.password.clear();
        expected.sdkms_api_key.clear();
        assert_eq!(back, expected);
        assert!(FormState::from_saved("not json").is_none());
        assert!(FormState::from_saved("{\"version\": 99}").is_none());
        assert!(FormState::from_saved(&"x".repeat(MAX_SAVED_BYTES + 1)).is_none());
    }
}
