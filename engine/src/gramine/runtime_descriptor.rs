//! The runtime descriptor: where the Gramine runtime lives inside the runtime image and
//! the hashes the manifest and the measurement need. Serialised as JSON (camelCase) next
//! to the runtime image, so that every conversion can reference it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::paths::normalize_absolute;

/// The prefix kiln's runtime image installs Gramine under by default.
pub const DEFAULT_RUNTIME_PREFIX: &str = "/opt/kiln/runtime";

/// Describes one Gramine runtime build (all paths relative to `prefix`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeDescriptor {
    /// Gramine version, e.g. `"1.9"`.
    pub gramine_version: String,
    /// Absolute, normalised install prefix inside the image, e.g. `/opt/kiln/runtime`.
    pub prefix: String,
    /// The SGX PAL (measured into the enclave), e.g. `sgx/libpal.so`.
    pub sgx_libpal: String,
    /// The SGX host loader, e.g. `sgx/loader`.
    pub sgx_loader: String,
    /// The direct-mode PAL (static-pie, its own loader), e.g. `direct/libpal.so`.
    pub direct_libpal: String,
    /// The LibOS, e.g. `libsysdb.so` (`loader.entrypoint.uri`).
    pub libsysdb: String,
    /// Hex SHA-256 of the LibOS (`loader.entrypoint.sha256`).
    pub libsysdb_sha256: String,
    /// Hex SHA-256 of the SGX PAL.
    pub sgx_libpal_sha256: String,
    /// Directory of the host loader's bundled libraries (its `ld-linux-x86-64.so.2`,
    /// `libc.so.6`, `libprotobuf-c.so.1`), e.g. `lib`.
    #[serde(default = "default_lib_dir")]
    pub lib_dir: String,
    /// Gramine's patched glibc (its `runtime/glibc`), when the install has one: the app's
    /// C library inside the enclave for glibc images ([`super::runtime_libc`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glibc: Option<RuntimeGlibc>,
}

/// Gramine's patched glibc in a runtime image: its libraries' `syscall` instructions call
/// into the LibOS instead of trapping (an enclave exit per system call).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeGlibc {
    /// Its directory, relative to the prefix, e.g. `glibc`.
    pub dir: String,
    /// Its release, `MAJOR.MINOR` (e.g. `2.40`), read from `libc.so.6`.
    pub version: String,
    /// Hex SHA-256 of each library in `dir`, by file name (`libc.so.6`, ...; the
    /// interpreter `ld-linux-x86-64.so.2` included): the enclave's trusted files.
    pub files: BTreeMap<String, String>,
}

/// The files a [`RuntimeGlibc`] must have.
pub const GLIBC_REQUIRED: [&str; 2] = ["ld-linux-x86-64.so.2", "libc.so.6"];

impl RuntimeGlibc {
    fn validate(&self) -> Result<(), RuntimeError> {
        if !is_relative_normalised(&self.dir) {
            return Err(RuntimeError::BadRelativePath {
                field: "glibc.dir",
                value: self.dir.clone(),
            });
        }
        if crate::image::scan::libc_probe::compare_versions(&self.version, &self.version).is_none()
        {
            return Err(RuntimeError::Glibc(format!(
                "version `{}` is not MAJOR.MINOR",
                self.version
            )));
        }
        for name in GLIBC_REQUIRED {
            if !self.files.contains_key(name) {
                return Err(RuntimeError::Glibc(format!("files lack `{name}`")));
            }
        }
        for (name, hash) in &self.files {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(RuntimeError::Glibc(format!(
                    "file name `{name}` must be a plain file name"
                )));
            }
            if !is_hex64(hash) {
                return Err(RuntimeError::BadHash("glibc.files"));
            }
        }
        Ok(())
    }

    /// Absolute paths of its files inside the image, with their hex SHA-256.
    pub fn trusted_files<'a>(
        &'a self,
        runtime: &'a RuntimeDescriptor,
    ) -> impl Iterator<Item = (String, &'a str)> + 'a {
        self.files.iter().map(move |(name, hash)| {
            (
                runtime.path_of(&format!("{}/{name}", self.dir)),
                hash.as_str(),
            )
        })
    }
}

fn default_lib_dir() -> String {
    "lib".to_string()
}

/// A problem with a runtime descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// `prefix` is not an absolute, normalised path.
    #[error("runtime descriptor: prefix `{0}` must be an absolute, normalised path")]
    BadPrefix(String),
    /// A relative path is empty, absolute, or not normalised.
    #[error("runtime descriptor: {field} `{value}` must be a normalised relative path")]
    BadRelativePath {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// A hash is not 64 lowercase hex digits.
    #[error("runtime descriptor: {0} must be 64 lowercase hex digits")]
    BadHash(&'static str),
    /// The JSON does not parse.
    #[error("runtime descriptor: {0}")]
    Json(String),
    /// The `glibc` entry is inconsistent.
    #[error("runtime descriptor: glibc: {0}")]
    Glibc(String),
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_relative_normalised(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('/')
        && normalize_absolute(&format!("/{s}")).as_deref() == Some(&format!("/{s}"))
        && !s.split('/').any(|c| c == ".." || c == ".")
}

impl RuntimeDescriptor {
    /// The layout kiln's runtime images use under `prefix` (`sgx/libpal.so`,
    /// `sgx/loader`, `direct/libpal.so`, `libsysdb.so`, bundled libraries in `lib`), with
    /// the given hex SHA-256 of libsysdb.so and of the SGX libpal.so. Not validated.
    pub fn standard(
        gramine_version: &str,
        prefix: &str,
        libsysdb_sha256: String,
        sgx_libpal_sha256: String,
    ) -> Self {
        RuntimeDescriptor {
            gramine_version: gramine_version.into(),
            prefix: prefix.into(),
            sgx_libpal: "sgx/libpal.so".into(),
            sgx_loader: "sgx/loader".into(),
            direct_libpal: "direct/libpal.so".into(),
            libsysdb: "libsysdb.so".into(),
            libsysdb_sha256,
            sgx_libpal_sha256,
            lib_dir: default_lib_dir(),
            glibc: None,
        }
    }

    /// Parses and validates the JSON form.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RuntimeError> {
        let d: Self =
            serde_json::from_slice(bytes).map_err(|e| RuntimeError::Json(e.to_string()))?;
        d.validate()?;
        Ok(d)
    }

    /// The JSON form (pretty, stable field order).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks paths and hashes.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        if normalize_absolute(&self.prefix).as_deref() != Some(self.prefix.as_str())
            || self.prefix == "/"
        {
            return Err(RuntimeError::BadPrefix(self.prefix.clone()));
        }
        for (field, value) in [
            ("sgxLibpal", &self.sgx_libpal),
            ("sgxLoader", &self.sgx_loader),
            ("directLibpal", &self.direct_libpal),
            ("libsysdb", &self.libsysdb),
            ("libDir", &self.lib_dir),
        ] {
            if !is_relative_normalised(value) {
                return Err(RuntimeError::BadRelativePath {
                    field,
                    value: value.clone(),
                });
            }
        }
        if !is_hex64(&self.libsysdb_sha256) {
            return Err(RuntimeError::BadHash("libsysdbSha256"));
        }
        if !is_hex64(&self.sgx_libpal_sha256) {
            return Err(RuntimeError::BadHash("sgxLibpalSha256"));
        }
        if let Some(g) = &self.glibc {
            g.validate()?;
        }
        Ok(())
    }

    /// Absolute path of a file of the runtime.
    pub fn path_of(&self, rel: &str) -> String {
        format!("{}/{}", self.prefix, rel)
    }

    /// `loader.entrypoint.uri`: `file:` + the absolute path of libsysdb.so.
    pub fn libsysdb_uri(&self) -> String {
        format!("file:{}", self.path_of(&self.libsysdb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RuntimeDescriptor {
        RuntimeDescriptor::standard(
            "1.9",
            DEFAULT_RUNTIME_PREFIX,
            "ab".repeat(32),
            "cd".repeat(32),
        )
    }

    #[test]
    fn json_round_trip_and_paths() {
        let d = sample();
        let j = d.to_json();
        assert!(j.contains("\"libsysdbSha256\""));
        assert!(j.contains("\"sgxLibpal\""));
        assert_eq!(RuntimeDescriptor::from_json(j.as_bytes()).unwrap(), d);
        assert_eq!(d.libsysdb_uri(), "file:/opt/kiln/runtime/libsysdb.so");
        assert_eq!(d.path_of(&d.sgx_loader), "/opt/kiln/runtime/sgx/loader");
    }

    #[test]
    fn rejects_bad_descriptors() {
        let mut d = sample();
        d.prefix = "opt/x".into();
        assert!(matches!(d.validate(), Err(RuntimeError::BadPrefix(_))));
        let mut d = sample();
        d.libsysdb = "../libsysdb.so".into();
        assert!(matches!(
            d.validate(),
            Err(RuntimeError::BadRelativePath {
                field: "libsysdb",
                ..
            })
        ));
        let mut d = sample();
        d.sgx_libpal = "/abs".into();
        assert!(d.validate().is_err());
        let mut d = sample();
        d.libsysdb_sha256 = "AB".repeat(32);
        assert_eq!(d.validate(), Err(RuntimeError::BadHash("libsysdbSha256")));
        assert!(RuntimeDescriptor::from_json(b"{\"x\":1}").is_err());
    }
}
