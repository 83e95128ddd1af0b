//! The encrypted backup file of a browser signing key (`*.kilnkey.json`): its format,
//! parsing and checks. Pure (native and wasm); the cryptography runs in WebCrypto
//! (`webcrypto::wrap_pkcs8` / `unwrap_pkcs8`), so the private key's bytes are never in
//! this page's memory: WebCrypto wraps and unwraps them itself.
//!
//! Format, version 1 (JSON, one object, every field required, no others):
//!
//! ```json
//! {
//!   "format": "kiln-signing-key-backup",
//!   "version": 1,
//!   "label": "release key",
//!   "created": "2026-12-07T13:00:00.000Z",
//!   "mrsigner": "<64 hex>",
//!   "publicKey": { "kty": "RSA", "n": "<base64url>", "e": "Aw" },
//!   "kdf": { "name": "PBKDF2", "hash": "SHA-256", "iterations": 600000, "salt": "<base64, 16 bytes>" },
//!   "cipher": { "name": "AES-GCM", "length": 256, "iv": "<base64, 12 bytes>" },
//!   "wrappedKey": "<base64: AES-256-GCM(PKCS#8 DER of the private key), tag appended>"
//! }
//! ```
//!
//! The AES key is PBKDF2-HMAC-SHA-256(passphrase as UTF-8, salt, iterations). The GCM
//! additional data is [`KeyBackup::aad`]: `kiln-signing-key-backup/1`, `n` and `e`, one per
//! line, so the public key (and with it `mrsigner`) cannot be swapped without the tag
//! failing. `label` and `created` are informational and not authenticated. A file is
//! refused, naming the field, when a field is missing, unknown or out of range
//! (iterations [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`], salt 16–64 bytes, a 12-byte IV,
//! an RSA-3072 public key with e = 3, `mrsigner` matching `n`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::mrsigner::{b64url_decode, mrsigner_from_modulus_be};

/// The `format` value.
pub const FORMAT: &str = "kiln-signing-key-backup";
/// The version this kiln writes and reads.
pub const VERSION: u32 = 1;
/// PBKDF2 iterations of a new backup (OWASP's 2023 figure for PBKDF2-HMAC-SHA-256).
pub const ITERATIONS: u32 = 600_000;
/// The fewest iterations an imported backup may have.
pub const MIN_ITERATIONS: u32 = 100_000;
/// The most iterations an imported backup may have (a bound on the work a file can ask for).
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// The shortest passphrase a new backup accepts, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// The largest backup file read, in bytes.
pub const MAX_FILE_BYTES: usize = 64 * 1024;
/// Salt length of a new backup, in bytes.
pub const SALT_BYTES: usize = 16;
/// AES-GCM IV length, in bytes.
pub const IV_BYTES: usize = 12;
/// Bounds on the wrapped PKCS#8's length (an RSA-3072 PKCS#8 is about 1,790 bytes, plus
/// the 16-byte tag).
const WRAPPED_BYTES: std::ops::RangeInclusive<usize> = 1_000..=4_096;
/// The file name suffix of a backup.
pub const FILE_SUFFIX: &str = ".kilnkey.json";

/// Why a backup (or a passphrase for one) was refused. Never carries the passphrase or
/// key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    /// Larger than [`MAX_FILE_BYTES`].
    #[error("the backup file is {0} bytes; a kiln key backup is at most {MAX_FILE_BYTES}")]
    TooLarge(usize),
    /// Not JSON, or a field is missing, unknown or of the wrong type.
    #[error("not a kiln key backup: {0}")]
    Json(String),
    /// Another `format`.
    #[error("not a kiln key backup: `format` is not \"{FORMAT}\"")]
    Format,
    /// A `version` this kiln does not read.
    #[error("backup `version` {0}: this kiln reads version {VERSION} (made by a newer kiln?)")]
    Version(u32),
    /// A field out of range or malformed.
    #[error("backup `{field}`: {why}")]
    Field {
        /// The field's path (`kdf.iterations`).
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The passphrase of a new backup is too short.
    #[error("the backup passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")]
    ShortPassphrase,
    /// The two passphrase fields differ.
    #[error("the two passphrases differ")]
    PassphraseMismatch,
}

fn field(field: &'static str, why: impl Into<String>) -> BackupError {
    BackupError::Field {
        field,
        why: why.into(),
    }
}

/// The public key, as a JWK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupPublicKey {
    /// `RSA`.
    pub kty: String,
    /// Modulus, base64url big-endian.
    pub n: String,
    /// Exponent, base64url big-endian (`Aw` = 3).
    pub e: String,
}

/// The key derivation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupKdf {
    /// `PBKDF2`.
    pub name: String,
    /// `SHA-256`.
    pub hash: String,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// Salt, base64.
    pub salt: String,
}

/// The cipher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupCipher {
    /// `AES-GCM`.
    pub name: String,
    /// Key length in bits: 256.
    pub length: u32,
    /// IV, base64.
    pub iv: String,
}

/// A key backup file (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyBackup {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// The key's label (not authenticated).
    pub label: String,
    /// When the key was made, ISO 8601 (not authenticated).
    pub created: String,
    /// MRSIGNER of the key, hex (checked against `publicKey.n`).
    pub mrsigner: String,
    /// The public key.
    pub public_key: BackupPublicKey,
    /// The key derivation.
    pub kdf: BackupKdf,
    /// The cipher.
    pub cipher: BackupCipher,
    /// The private key: AES-256-GCM of its PKCS#8 DER, base64.
    pub wrapped_key: String,
}

/// What WebCrypto needs to unwrap a checked backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwrap {
    /// PBKDF2 salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// AES-GCM IV.
    pub iv: Vec<u8>,
    /// AES-GCM additional data ([`KeyBackup::aad`]).
    pub aad: Vec<u8>,
    /// The wrapped PKCS#8 with its tag.
    pub wrapped: Vec<u8>,
}

fn b64(s: &str, name: &'static str) -> Result<Vec<u8>, BackupError> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| field(name, "not base64"))
}

/// Checks a passphrase chosen for a new backup (length, typed twice alike).
pub fn check_new_passphrase(passphrase: &str, again: &str) -> Result<(), BackupError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(BackupError::ShortPassphrase);
    }
    if passphrase != again {
        return Err(BackupError::PassphraseMismatch);
    }
    Ok(())
}

/// Whether `text` looks like a backup file rather than a PEM (its first non-blank
/// character opens a JSON object).
pub fn looks_like_backup(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// The GCM additional data of a backup of the key `(n, e)` (JWK base64url strings).
pub fn aad_for(n: &str, e: &str) -> Vec<u8> {
    format!("{FORMAT}/{VERSION}\n{n}\n{e}").into_bytes()
}

impl KeyBackup {
    /// A new backup of the key `(n, e)` (JWK base64url) wrapped with `salt`, `iv` and
    /// `iterations`; `mrsigner` is computed from `n`. (Each argument is one field of the
    /// file, in the file's order.)
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        label: &str,
        created: &str,
        n: &str,
        e: &str,
        salt: &[u8],
        iterations: u32,
        iv: &[u8],
        wrapped: &[u8],
    ) -> Result<Self, BackupError> {
        let enc = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let b = KeyBackup {
            format: FORMAT.into(),
            version: VERSION,
            label: label.into(),
            created: created.into(),
            mrsigner: String::new(),
            public_key: BackupPublicKey {
                kty: "RSA".into(),
                n: n.into(),
                e: e.into(),
            },
            kdf: BackupKdf {
                name: "PBKDF2".into(),
                hash: "SHA-256".into(),
                iterations,
                salt: enc(salt),
            },
            cipher: BackupCipher {
                name: "AES-GCM".into(),
                length: 256,
                iv: enc(iv),
            },
            wrapped_key: enc(wrapped),
        };
        let mrsigner = b.checked_mrsigner()?;
        let b = KeyBackup { mrsigner, ..b };
        b.unwrap_params()?;
        Ok(b)
    }

    /// Parses and checks a backup file.
    pub fn parse(text: &str) -> Result<Self, BackupError> {
        if text.len() > MAX_FILE_BYTES {
            return Err(BackupError::TooLarge(text.len()));
        }
        // serde_json's messages quote values; keep only the field path and the problem's
        // kind (the file holds nothing secret in clear, but the rule is one for all bodies).
        let b: KeyBackup = serde_json::from_str(text).map_err(|e| {
            let msg = e.to_string();
            let kind = if msg.starts_with("missing field") {
                msg.split('`')
                    .nth(1)
                    .map(|f| format!("missing field `{f}`"))
            } else if msg.starts_with("unknown field") {
                msg.split('`')
                    .nth(1)
                    .map(|f| format!("unknown field `{f}`"))
            } else {
                None
            };
            BackupError::Json(kind.unwrap_or_else(|| match e.classify() {
                serde_json::error::Category::Data => {
                    format!("a field has the wrong type (line {})", e.line())
                }
                serde_json::error::Category::Eof => "the file is cut short".into(),
                _ => format!("not JSON (line {}, column {})", e.line(), e.column()),
            }))
        })?;
        if b.format != FORMAT {
            return Err(BackupError::Format);
        }
        if b.version != VERSION {
            return Err(BackupError::Version(b.version));
        }
        let mrsigner = b.checked_mrsigner()?;
        if !b.mrsigner.eq_ignore_ascii_case(&mrsigner) {
            return Err(field(
                "mrsigner",
                "does not match publicKey.n (the file was altered)",
            ));
        }
        b.unwrap_params()?;
        Ok(b)
    }

    /// The file's JSON (pretty, ends with a newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// A file name: `kiln-key-{label}-{mrsigner[..12]}.kilnkey.json`, the label reduced
    /// to ASCII letters, digits and dashes.
    pub fn file_name(&self) -> String {
        let label: String = self
            .label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let label = label.trim_matches('-');
        let short = self.mrsigner.get(..12).unwrap_or(&self.mrsigner);
        if label.is_empty() {
            format!("kiln-key-{short}{FILE_SUFFIX}")
        } else {
            format!("kiln-key-{label}-{short}{FILE_SUFFIX}")
        }
    }

    /// The GCM additional data ([`aad_for`] of the public key).
    pub fn aad(&self) -> Vec<u8> {
        aad_for(&self.public_key.n, &self.public_key.e)
    }

    /// The public key as big-endian (modulus, exponent), checked to be RSA-3072 e = 3.
    pub fn public_key_be(&self) -> Result<(Vec<u8>, Vec<u8>), BackupError> {
        if self.public_key.kty != "RSA" {
            return Err(field("publicKey.kty", "must be \"RSA\""));
        }
        let n =
            b64url_decode(&self.public_key.n).map_err(|_| field("publicKey.n", "not base64url"))?;
        let e =
            b64url_decode(&self.public_key.e).map_err(|_| field("publicKey.e", "not base64url"))?;
        kiln_engine::sgx::rsa3072::sgx_public_key(&n, &e)
            .map_err(|err| field("publicKey", err.to_string()))?;
        Ok((n, e))
    }

    fn checked_mrsigner(&self) -> Result<String, BackupError> {
        let (n, _) = self.public_key_be()?;
        mrsigner_from_modulus_be(&n).map_err(|e| field("publicKey.n", e.to_string()))
    }

    /// The decoded parameters for WebCrypto, each checked.
    pub fn unwrap_params(&self) -> Result<Unwrap, BackupError> {
        if self.kdf.name != "PBKDF2" {
            return Err(field("kdf.name", "must be \"PBKDF2\""));
        }
        if self.kdf.hash != "SHA-256" {
            return Err(field("kdf.hash", "must be \"SHA-256\""));
        }
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&self.kdf.iterations) {
            return Err(field(
                "kdf.iterations",
                format!(
                    "{} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}",
                    self.kdf.iterations
                ),
            ));
        }
        let salt = b64(&self.kdf.salt, "kdf.salt")?;
        if !(16..=64).contains(&salt.len()) {
            return Err(field(
                "kdf.salt",
                format!("{} bytes; 16 to 64 expected", salt.len()),
            ));
        }
        if self.cipher.name != "AES-GCM" {
            return Err(field("cipher.name", "must be \"AES-GCM\""));
        }
        if self.cipher.length != 256 {
            return Err(field("cipher.length", "must be 256"));
        }
        let iv = b64(&self.cipher.iv, "cipher.iv")?;
        if iv.len() != IV_BYTES {
            return Err(field(
                "cipher.iv",
                format!("{} bytes; {IV_BYTES} expected", iv.len()),
            ));
        }
        let wrapped = b64(&self.wrapped_key, "wrappedKey")?;
        if !WRAPPED_BYTES.contains(&wrapped.len()) {
            return Err(field(
                "wrappedKey",
                format!(
                    "{} bytes; an RSA-3072 PKCS#8 wraps to {}..={}",
                    wrapped.len(),
                    WRAPPED_BYTES.start(),
                    WRAPPED_BYTES.end()
                ),
            ));
        }
        Ok(Unwrap {
            salt,
            iterations: self.kdf.iterations,
            iv,
            aad: self.aad(),
            wrapped,
        })
    }

    /// Checks that `signature` (RSASSA-PKCS1-v1_5 SHA-256, big-endian) over `message`
    /// verifies under this backup's public key: proof that the unwrapped private key is
    /// the one the file names.
    pub fn check_signature(&self, message: &[u8], signature: &[u8]) -> Result<(), BackupError> {
        let (n, e) = self.public_key_be()?;
        let key = kiln_engine::sgx::rsa3072::sgx_public_key(&n, &e)
            .map_err(|err| field("publicKey", err.to_string()))?;
        kiln_engine::sgx::rsa3072::verify_sha256(&key, message, signature).map_err(|_| {
            field(
                "wrappedKey",
                "the private key does not match publicKey (the file was altered)",
            )
        })
    }
}

/// The message a freshly unwrapped key signs to prove it matches the backup's public key.
pub const CHECK_MESSAGE: &[u8] = b"kiln signing-key backup: key check";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine_bridge::import_pem;
    use crate::mrsigner::b64url_encode;

    const TEST_KEY: &str = include_str!("../../engine/testdata/gramine/test-key.pem");

    fn sample() -> KeyBackup {
        let k = import_pem(TEST_KEY, None).unwrap();
        KeyBackup::new(
            "release key (2026)",
            "2026-12-07T13:00:00.000Z",
            &b64url_encode(&k.public.modulus_be),
            &b64url_encode(&k.public.exponent_be),
            &[7; 16],
            ITERATIONS,
            &[9; 12],
            &[1; 1_808],
        )
        .unwrap()
    }

    #[test]
    fn round_trips_and_names_the_file() {
        let b = sample();
        let k = import_pem(TEST_KEY, None).unwrap();
        assert_eq!(b.mrsigner, k.mrsigner);
        let text = b.to_json();
        assert!(text.contains("\"wrappedKey\""), "{text}");
        assert!(text.contains("\"publicKey\""), "{text}");
        let back = KeyBackup::parse(&text).unwrap();
        assert_eq!(back, b);
        let p = back.unwrap_params().unwrap();
        assert_eq!((p.salt.len(), p.iv.len(), p.wrapped.len()), (16, 12, 1_808));
        assert_eq!(p.iterations, ITERATIONS);
        assert!(p.aad.starts_with(b"kiln-signing-key-backup/1\n"));
        assert_eq!(
            b.file_name(),
            format!(
                "kiln-key-release-key--2026-{}.kilnkey.json",
                &b.mrsigner[..12]
            )
        );
        assert!(looks_like_backup(&text) && !looks_like_backup(TEST_KEY));
    }

    fn mutated(f: impl Fn(&mut serde_json::Value)) -> Result<KeyBackup, BackupError> {
        let mut v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        f(&mut v);
        KeyBackup::parse(&v.to_string())
    }

    fn refused_field(f: impl Fn(&mut serde_json::Value)) -> &'static str {
        match mutated(f) {
            Err(BackupError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn refuses_bad_files_naming_the_field() {
        use serde_json::json;
        assert_eq!(
            refused_field(|v| v["kdf"]["iterations"] = json!(1000)),
            "kdf.iterations"
        );
        assert_eq!(
            refused_field(|v| v["kdf"]["iterations"] = json!(4_000_000_000u32)),
            "kdf.iterations"
        );
        assert_eq!(
            refused_field(|v| v["kdf"]["salt"] = json!("AAAA")),
            "kdf.salt"
        );
        assert_eq!(
            refused_field(|v| v["kdf"]["hash"] = json!("SHA-1")),
            "kdf.hash"
        );
        assert_eq!(
            refused_field(|v| v["cipher"]["iv"] = json!("%%")),
            "cipher.iv"
        );
        assert_eq!(
            refused_field(|v| v["cipher"]["length"] = json!(128)),
            "cipher.length"
        );
        assert_eq!(
            refused_field(|v| v["wrappedKey"] = json!("AAAA")),
            "wrappedKey"
        );
        assert_eq!(
            refused_field(|v| v["mrsigner"] = json!("00".repeat(32))),
            "mrsigner"
        );
        // e = 65537: SGX needs 3, and the error says so.
        match mutated(|v| v["publicKey"]["e"] = json!("AQAB")) {
            Err(
                e @ BackupError::Field {
                    field: "publicKey", ..
                },
            ) => {
                assert!(e.to_string().contains("e = 3"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            mutated(|v| v["format"] = json!("x")),
            Err(BackupError::Format)
        );
        assert_eq!(
            mutated(|v| v["version"] = json!(2)),
            Err(BackupError::Version(2))
        );
        let e = mutated(|v| v["extra"] = json!(1)).unwrap_err().to_string();
        assert!(e.contains("unknown field `extra`"), "{e}");
        let e = mutated(|v| {
            v.as_object_mut().unwrap().remove("kdf");
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing field `kdf`"), "{e}");
        // Wrong types and non-JSON: no value quoted back.
        let e = mutated(|v| v["label"] = json!(["secret-looking"]))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret-looking"), "{e}");
        assert!(matches!(
            KeyBackup::parse("{\"format\""),
            Err(BackupError::Json(_))
        ));
        assert!(matches!(
            KeyBackup::parse("-----BEGIN"),
            Err(BackupError::Json(_))
        ));
        assert_eq!(
            KeyBackup::parse(&" ".repeat(MAX_FILE_BYTES + 1)),
            Err(BackupError::TooLarge(MAX_FILE_BYTES + 1))
        );
    }

    #[test]
    fn passphrase_rules() {
        assert_eq!(
            check_new_passphrase("short", "short"),
            Err(BackupError::ShortPassphrase)
        );
        assert_eq!(
            check_new_passphrase("correct horse battery", "correct horse batery"),
            Err(BackupError::PassphraseMismatch)
        );
        assert!(check_new_passphrase("correct horse battery", "correct horse battery").is_ok());
    }

    #[test]
    fn signature_check_binds_the_private_key() {
        let b = sample();
        let k = import_pem(TEST_KEY, None).unwrap();
        let sig = k.signer.sign_message(CHECK_MESSAGE).unwrap();
        b.check_signature(CHECK_MESSAGE, &sig).unwrap();
        assert!(b.check_signature(b"another message", &sig).is_err());
    }
}
