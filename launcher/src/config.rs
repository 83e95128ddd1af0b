//! The launcher configuration: a small JSON file that kiln's converter writes into the
//! kiln layer at [`CONFIG_PATH`].
//!
//! Version 1, every key spelled out (unknown keys are refused, so a typo is an error):
//!
//! ```json
//! {
//!   "version": 1,
//!   "runtimeDir": "/opt/kiln/runtime",
//!   "sgxLoaderStart": "bundledLdso",
//!   "sgx1App": "/opt/kiln/sgx1/app",
//!   "edmmApp": "/opt/kiln/edmm/app",
//!   "directApp": "/opt/kiln/direct/app",
//!   "allowCmdlineArgs": false,
//!   "fixedArgs": [],
//!   "defaultArgs": [],
//!   "enclave": {"maxThreads": 16, "enclaveSize": 268435456},
//!   "attestation": false,
//!   "sgx1Exinfo": false
//! }
//! ```
//!
//! - `runtimeDir`: where the runtime layer put Gramine: `sgx/loader`, `sgx/libpal.so`,
//!   `direct/libpal.so`, `libsysdb.so`, and the SGX loader's own `lib/ld-linux-x86-64.so.2`,
//!   `lib/libc.so.6`, `lib/libprotobuf-c.so.1`.
//! - `sgx1App`, `edmmApp`, `directApp`: Gramine "application paths" P. Gramine's SGX loader
//!   (`pal/src/host/linux-sgx/host_main.c`, v1.9) reads `P.manifest.sgx` and `P.sig`; the
//!   direct PAL (`pal/src/host/linux/pal_main.c`) reads `P.manifest`. Neither looks at any
//!   other file next to P; the app binary itself is `libos.entrypoint` inside the manifest.
//!   `edmmApp` may be absent (`null` or missing): then the launcher always uses SGX1.
//! - `sgxLoaderStart`: how the SGX loader is started. `bundledLdso` (default):
//!   `lib/ld-linux-x86-64.so.2 --library-path <runtimeDir>/lib <runtimeDir>/sgx/loader ...`,
//!   which works with an unmodified loader. `exec`: `<runtimeDir>/sgx/loader ...` directly,
//!   for a runtime image whose loader has its ELF interpreter and RUNPATH pointed at
//!   `<runtimeDir>/lib` (e.g. with patchelf). Gramine spawns child processes (fork/exec in
//!   the app) by re-executing `/proc/self/exe`, which under `bundledLdso` is the dynamic
//!   linker, not the loader; only `exec` supports apps that start processes under SGX.
//! - `allowCmdlineArgs`: mirrors the request's `allowCmdlineArgs`. When false, the manifest
//!   holds the measured `loader.argv` and the launcher refuses run-time arguments (exit 2,
//!   one line on stderr) instead of letting Gramine drop them silently. When true, the
//!   manifest has `loader.insecure__use_cmdline_argv = true` (which Gramine makes mutually
//!   exclusive with `loader.argv`), and the launcher passes
//!   `fixedArgs ++ (run-time args, or defaultArgs when there are none)`, Docker's
//!   ENTRYPOINT/CMD rule: `fixedArgs` is the entrypoint's own arguments, `defaultArgs` the
//!   image's CMD. Both must be empty when `allowCmdlineArgs` is false.
//! - `enclave` (optional; absent: no limits known): the enclave's limits as the manifests
//!   set them, `maxThreads` = `sgx.max_threads` (at least 1) and `enclaveSize` =
//!   `sgx.enclave_size` in bytes of the SGX1 enclave (a power of two, as Gramine requires).
//!   Only the rehearsal in direct mode uses them ([`crate::rehearsal`]): every process of
//!   the app is watched against both, since under SGX each process is its own enclave.
//! - `attestation` (default false): the enclave asks for remote attestation
//!   (`sgx.remote_attestation = "dcap"`), so Gramine's loader contacts the quoting enclave
//!   through AESM's socket before the app starts. On the SGX path the launcher then checks
//!   that [`crate::facts::AESM_SOCKET`] exists and otherwise refuses with one line naming
//!   the mount.
//! - `sgx1Exinfo` (default false): the SGX1 enclave was built with `sgx.use_exinfo = true`
//!   (MISCSELECT.EXINFO, part of the signed identity). Before choosing SGX1 the launcher
//!   checks that the CPU reports EXINFO (CPUID.(EAX=0x12,ECX=0):EBX bit 0) and otherwise
//!   refuses with one line, since that enclave cannot be initialised on such a CPU.
//!
//! The three newer keys are optional so that files written by older converters still
//! parse, and [`LauncherConfig::to_json`] writes each only when it differs from its
//! default (`enclave` when set, `attestation` / `sgx1Exinfo` when true), so a conversion
//! that sets none of them produces the same bytes as before.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the launcher reads its configuration (in the kiln layer).
pub const CONFIG_PATH: &str = "/opt/kiln/launcher.json";

/// Where the runtime layer puts Gramine's runtime and the launcher.
pub const RUNTIME_DIR: &str = "/opt/kiln/runtime";

/// Where the runtime layer puts the launcher itself (the image's ENTRYPOINT).
pub const LAUNCHER_PATH: &str = "/opt/kiln/runtime/kiln-launcher";

/// Gramine app path of the SGX1 variant: the kiln layer holds `app.manifest.sgx`, `app.sig`.
pub const SGX1_APP: &str = "/opt/kiln/sgx1/app";

/// Gramine app path of the SGX2/EDMM variant: `app.manifest.sgx`, `app.sig`.
pub const EDMM_APP: &str = "/opt/kiln/edmm/app";

/// Gramine app path of the direct-mode variant: `app.manifest`.
pub const DIRECT_APP: &str = "/opt/kiln/direct/app";

/// The only configuration version this launcher understands.
pub const CONFIG_VERSION: u32 = 1;

/// The log relays (see the engine's `gramine::log_links`): for stdout and stderr, the path
/// in the kiln layer that the enclave opens (a symlink to `/proc/self/fd/N`) and the
/// descriptor N on which the launcher hands Gramine's loader the relay's pseudo-terminal.
pub const LOG_RELAYS: [(&str, i32); 2] =
    [("/opt/kiln/logs/stdout", 61), ("/opt/kiln/logs/stderr", 62)];

/// How the SGX host loader is started (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SgxLoaderStart {
    /// Through the runtime's bundled dynamic linker, `lib/ld-linux-x86-64.so.2`.
    #[default]
    BundledLdso,
    /// Directly: the loader's interpreter and RUNPATH already point into the runtime.
    Exec,
}

/// The launcher configuration, version 1 (see the module documentation for each key).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LauncherConfig {
    /// Configuration format version; must be [`CONFIG_VERSION`].
    pub version: u32,
    /// Absolute directory holding Gramine's runtime.
    pub runtime_dir: PathBuf,
    /// How the SGX loader is started.
    #[serde(default)]
    pub sgx_loader_start: SgxLoaderStart,
    /// Gramine application path of the SGX1 variant (`P.manifest.sgx`, `P.sig`).
    pub sgx1_app: PathBuf,
    /// Gramine application path of the SGX2/EDMM variant, if the image has one.
    #[serde(default)]
    pub edmm_app: Option<PathBuf>,
    /// Gramine application path for the insecure direct mode (`P.manifest`).
    pub direct_app: PathBuf,
    /// Whether run-time arguments reach the app.
    #[serde(default)]
    pub allow_cmdline_args: bool,
    /// Arguments always passed before the run-time ones (only with `allowCmdlineArgs`).
    #[serde(default)]
    pub fixed_args: Vec<String>,
    /// Arguments passed when none are given at run time (only with `allowCmdlineArgs`).
    #[serde(default)]
    pub default_args: Vec<String>,
    /// The enclave's thread and size limits, for the direct-mode rehearsal (written only
    /// when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enclave: Option<EnclaveLimits>,
    /// The enclave uses DCAP remote attestation: check for the AESM socket before starting
    /// an SGX enclave (written only when true).
    #[serde(default, skip_serializing_if = "is_false")]
    pub attestation: bool,
    /// The SGX1 enclave was built with `sgx.use_exinfo = true`: require EXINFO in CPUID
    /// before choosing it (written only when true).
    #[serde(default, skip_serializing_if = "is_false")]
    pub sgx1_exinfo: bool,
    /// The manifests mount log files onto [`LOG_RELAYS`]: start the relays before the
    /// loader (written only when true; see `log_relay`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub log_relays: bool,
}

/// The enclave limits the rehearsal checks the app against (`"enclave"` in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnclaveLimits {
    /// `sgx.max_threads`: thread slots (TCSs) per enclave, i.e. per process. At least 1.
    pub max_threads: u32,
    /// `sgx.enclave_size` of the SGX1 enclave in bytes: the address space each process
    /// has. A power of two.
    pub enclave_size: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The file is not valid JSON for this schema.
    #[error("{path}: invalid launcher configuration: {reason}")]
    Parse {
        /// The configuration file.
        path: String,
        /// serde_json's description (names the key and position).
        reason: String,
    },
    /// `version` is not one this launcher knows.
    #[error("{path}: unsupported launcher configuration version {found} (this launcher reads version {CONFIG_VERSION})")]
    Version {
        /// The configuration file.
        path: String,
        /// The version found.
        found: u32,
    },
    /// A path key is not an absolute path, or holds a NUL byte.
    #[error("{path}: {key} must be an absolute path without NUL bytes, got {value:?}")]
    BadPath {
        /// The configuration file.
        path: String,
        /// The offending key.
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// An argument holds a NUL byte (cannot be passed through exec).
    #[error("{path}: {key}[{index}] contains a NUL byte")]
    NulInArg {
        /// The configuration file.
        path: String,
        /// `fixedArgs` or `defaultArgs`.
        key: &'static str,
        /// Position in the list.
        index: usize,
    },
    /// A value of `enclave` is out of range.
    #[error("{path}: enclave.{key} must be {want}, got {value}")]
    BadLimit {
        /// The configuration file.
        path: String,
        /// `maxThreads` or `enclaveSize`.
        key: &'static str,
        /// What it must be.
        want: &'static str,
        /// The value found.
        value: u64,
    },
    /// `fixedArgs`/`defaultArgs` given although `allowCmdlineArgs` is false.
    #[error("{path}: {key} must be empty when allowCmdlineArgs is false (the manifest's measured loader.argv is used)")]
    ArgsWithoutCmdline {
        /// The configuration file.
        path: String,
        /// The offending key.
        key: &'static str,
    },
}

impl LauncherConfig {
    /// The configuration for kiln's standard layout ([`RUNTIME_DIR`], [`SGX1_APP`],
    /// [`EDMM_APP`] when `edmm`, [`DIRECT_APP`]), loader started through the bundled ld.so.
    pub fn standard(
        edmm: bool,
        allow_cmdline_args: bool,
        fixed_args: Vec<String>,
        default_args: Vec<String>,
    ) -> Self {
        LauncherConfig {
            version: CONFIG_VERSION,
            runtime_dir: RUNTIME_DIR.into(),
            sgx_loader_start: SgxLoaderStart::BundledLdso,
            sgx1_app: SGX1_APP.into(),
            edmm_app: edmm.then(|| EDMM_APP.into()),
            direct_app: DIRECT_APP.into(),
            allow_cmdline_args,
            fixed_args,
            default_args,
            enclave: None,
            attestation: false,
            sgx1_exinfo: false,
            log_relays: false,
        }
    }

    /// Sets the enclave's limits (`sgx.max_threads`, `sgx.enclave_size` of the SGX1
    /// enclave in bytes), which the direct-mode rehearsal checks the app against.
    #[must_use]
    pub fn with_enclave_limits(mut self, max_threads: u32, enclave_size: u64) -> Self {
        self.enclave = Some(EnclaveLimits {
            max_threads,
            enclave_size,
        });
        self
    }

    /// Marks the enclave as using DCAP remote attestation (`sgx.remote_attestation =
    /// "dcap"`): the launcher checks for the AESM socket before starting it under SGX.
    #[must_use]
    pub fn with_attestation(mut self, attestation: bool) -> Self {
        self.attestation = attestation;
        self
    }

    /// Marks the SGX1 enclave as built with `sgx.use_exinfo = true`: the launcher requires
    /// EXINFO in CPUID before choosing it.
    #[must_use]
    pub fn with_sgx1_exinfo(mut self, sgx1_exinfo: bool) -> Self {
        self.sgx1_exinfo = sgx1_exinfo;
        self
    }

    /// Marks the manifests as mounting log files onto the launcher's relays
    /// ([`LOG_RELAYS`]).
    #[must_use]
    pub fn with_log_relays(mut self, log_relays: bool) -> Self {
        self.log_relays = log_relays;
        self
    }

    /// The file's bytes as kiln's converter writes them: every version-1 key explicit, then
    /// `enclave`, `attestation`, `sgx1Exinfo`, `logRelays` only when set (not `None` / not false), in
    /// declaration order, pretty-printed, with a final newline (deterministic). Validates first, so the
    /// converter never writes a file the launcher would refuse.
    pub fn to_json(&self) -> Result<Vec<u8>, ConfigError> {
        self.validate(CONFIG_PATH)?;
        let mut out = serde_json::to_vec_pretty(self).map_err(|e| ConfigError::Parse {
            path: CONFIG_PATH.to_owned(),
            reason: e.to_string(),
        })?;
        out.push(b'\n');
        Ok(out)
    }

    /// Parses and validates a configuration; `path` only names the file in errors.
    pub fn parse(bytes: &[u8], path: &str) -> Result<Self, ConfigError> {
        let config: LauncherConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if self.version != CONFIG_VERSION {
            return Err(ConfigError::Version {
                path: path.to_owned(),
                found: self.version,
            });
        }
        let mut paths: Vec<(&'static str, &Path)> = vec![
            ("runtimeDir", &self.runtime_dir),
            ("sgx1App", &self.sgx1_app),
            ("directApp", &self.direct_app),
        ];
        if let Some(edmm) = &self.edmm_app {
            paths.push(("edmmApp", edmm));
        }
        for (key, value) in paths {
            let text = value.to_string_lossy();
            // Container (Linux) paths: `Path::is_absolute` is false for everything on
            // wasm32-unknown-unknown, where the engine also validates this config.
            if !text.starts_with('/') || text.contains('\0') {
                return Err(ConfigError::BadPath {
                    path: path.to_owned(),
                    key,
                    value: text.into_owned(),
                });
            }
        }
        if let Some(limits) = &self.enclave {
            if limits.max_threads == 0 {
                return Err(ConfigError::BadLimit {
                    path: path.to_owned(),
                    key: "maxThreads",
                    want: "at least 1",
                    value: 0,
                });
            }
            if !limits.enclave_size.is_power_of_two() {
                return Err(ConfigError::BadLimit {
                    path: path.to_owned(),
                    key: "enclaveSize",
                    want: "a power of two (bytes)",
                    value: limits.enclave_size,
                });
            }
        }
        for (key, list) in [
            ("fixedArgs", &self.fixed_args),
            ("defaultArgs", &self.default_args),
        ] {
            if !self.allow_cmdline_args && !list.is_empty() {
                return Err(ConfigError::ArgsWithoutCmdline {
                    path: path.to_owned(),
                    key,
                });
            }
            if let Some(index) = list.iter().position(|a| a.contains('\0')) {
                return Err(ConfigError::NulInArg {
                    path: path.to_owned(),
                    key,
                    index,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{
        "version": 1,
        "runtimeDir": "/opt/kiln/runtime",
        "sgxLoaderStart": "exec",
        "sgx1App": "/opt/kiln/sgx1/app",
        "edmmApp": "/opt/kiln/edmm/app",
        "directApp": "/opt/kiln/direct/app",
        "allowCmdlineArgs": true,
        "fixedArgs": ["-c"],
        "defaultArgs": ["echo hi"]
    }"#;

    const MINIMAL: &str = r#"{
        "version": 1,
        "runtimeDir": "/opt/kiln/runtime",
        "sgx1App": "/opt/kiln/sgx1/app",
        "directApp": "/opt/kiln/direct/app"
    }"#;

    #[test]
    fn parses_every_key() {
        let c = LauncherConfig::parse(FULL.as_bytes(), "t").unwrap();
        assert_eq!(c.runtime_dir, PathBuf::from("/opt/kiln/runtime"));
        assert_eq!(c.sgx_loader_start, SgxLoaderStart::Exec);
        assert_eq!(c.edmm_app, Some(PathBuf::from("/opt/kiln/edmm/app")));
        assert!(c.allow_cmdline_args);
        assert_eq!(c.fixed_args, vec!["-c"]);
        assert_eq!(c.default_args, vec!["echo hi"]);
    }

    #[test]
    fn minimal_gets_defaults() {
        let c = LauncherConfig::parse(MINIMAL.as_bytes(), "t").unwrap();
        assert_eq!(c.sgx_loader_start, SgxLoaderStart::BundledLdso);
        assert_eq!(c.edmm_app, None);
        assert!(!c.allow_cmdline_args);
        assert!(c.fixed_args.is_empty() && c.default_args.is_empty());
    }

    #[test]
    fn refuses_unknown_key() {
        let bad = MINIMAL.replace("\"version\"", "\"allowCmdLineArgs\": true, \"version\"");
        let err = LauncherConfig::parse(bad.as_bytes(), "t").unwrap_err();
        assert!(
            matches!(&err, ConfigError::Parse { reason, .. } if reason.contains("allowCmdLineArgs")),
            "{err}"
        );
    }

    #[test]
    fn refuses_other_version() {
        let bad = MINIMAL.replace("\"version\": 1", "\"version\": 2");
        assert_eq!(
            LauncherConfig::parse(bad.as_bytes(), "f").unwrap_err(),
            ConfigError::Version {
                path: "f".into(),
                found: 2
            }
        );
    }

    #[test]
    fn refuses_relative_path() {
        let bad = MINIMAL.replace("\"/opt/kiln/sgx1/app\"", "\"opt/kiln/sgx1/app\"");
        let err = LauncherConfig::parse(bad.as_bytes(), "f").unwrap_err();
        assert!(matches!(err, ConfigError::BadPath { key: "sgx1App", .. }));
    }

    #[test]
    fn refuses_nul_in_path_and_args() {
        let bad = MINIMAL.replace("/opt/kiln/runtime", "/opt/ki\\u0000ln");
        let err = LauncherConfig::parse(bad.as_bytes(), "f").unwrap_err();
        assert!(matches!(
            err,
            ConfigError::BadPath {
                key: "runtimeDir",
                ..
            }
        ));
        let bad = FULL.replace("\"echo hi\"", "\"ok\", \"a\\u0000b\"");
        let err = LauncherConfig::parse(bad.as_bytes(), "f").unwrap_err();
        assert!(matches!(
            err,
            ConfigError::NulInArg {
                key: "defaultArgs",
                index: 1,
                ..
            }
        ));
    }

    #[test]
    fn refuses_args_without_cmdline() {
        let bad = FULL.replace("\"allowCmdlineArgs\": true", "\"allowCmdlineArgs\": false");
        let err = LauncherConfig::parse(bad.as_bytes(), "f").unwrap_err();
        assert!(matches!(
            err,
            ConfigError::ArgsWithoutCmdline {
                key: "fixedArgs",
                ..
            }
        ));
    }

    #[test]
    fn standard_round_trips_with_every_key() {
        let c = LauncherConfig::standard(true, true, vec!["-c".into()], vec!["x".into()]);
        let bytes = c.to_json().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        for key in [
            "version",
            "runtimeDir",
            "sgxLoaderStart",
            "sgx1App",
            "edmmApp",
            "directApp",
            "allowCmdlineArgs",
            "fixedArgs",
            "defaultArgs",
        ] {
            assert!(
                text.contains(&format!("\"{key}\"")),
                "{key} missing: {text}"
            );
        }
        assert!(text.contains("\"bundledLdso\""));
        assert_eq!(LauncherConfig::parse(&bytes, "t").unwrap(), c);
        let no_edmm = LauncherConfig::standard(false, false, vec![], vec![]);
        let bytes = no_edmm.to_json().unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("\"edmmApp\": null"));
        assert_eq!(LauncherConfig::parse(&bytes, "t").unwrap(), no_edmm);
        assert_eq!(no_edmm.to_json().unwrap(), bytes);
    }

    #[test]
    fn to_json_refuses_invalid() {
        let c = LauncherConfig::standard(false, false, vec!["a".into()], vec![]);
        assert!(matches!(
            c.to_json(),
            Err(ConfigError::ArgsWithoutCmdline { .. })
        ));
    }

    #[test]
    fn refuses_garbage() {
        assert!(matches!(
            LauncherConfig::parse(b"\xff{", "f"),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            LauncherConfig::parse(b"", "f"),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn new_keys_default_when_absent() {
        let c = LauncherConfig::parse(FULL.as_bytes(), "t").unwrap();
        assert_eq!(c.enclave, None);
        assert!(!c.attestation && !c.sgx1_exinfo);
    }

    #[test]
    fn parses_new_keys() {
        let text = MINIMAL.replace(
            "\"version\": 1,",
            "\"version\": 1, \"enclave\": {\"maxThreads\": 16, \"enclaveSize\": 1099511627776}, \
             \"attestation\": true, \"sgx1Exinfo\": true,",
        );
        let c = LauncherConfig::parse(text.as_bytes(), "t").unwrap();
        assert_eq!(
            c.enclave,
            Some(EnclaveLimits {
                max_threads: 16,
                enclave_size: 1 << 40
            })
        );
        assert!(c.attestation && c.sgx1_exinfo);
    }

    #[test]
    fn refuses_bad_enclave_limits() {
        for (enclave, key) in [
            (
                r#"{"maxThreads": 0, "enclaveSize": 268435456}"#,
                "maxThreads",
            ),
            (
                r#"{"maxThreads": 4, "enclaveSize": 268435457}"#,
                "enclaveSize",
            ),
            (r#"{"maxThreads": 4, "enclaveSize": 0}"#, "enclaveSize"),
        ] {
            let text = MINIMAL.replace(
                "\"version\": 1,",
                &format!("\"version\": 1, \"enclave\": {enclave},"),
            );
            let err = LauncherConfig::parse(text.as_bytes(), "f").unwrap_err();
            assert!(
                matches!(&err, ConfigError::BadLimit { key: k, .. } if *k == key),
                "{err}"
            );
            assert!(err.to_string().contains(&format!("enclave.{key}")), "{err}");
        }
        for enclave in [
            r#"{"maxThreads": 4}"#,
            r#"{"maxThreads": 4, "enclaveSize": 256, "stack": 1}"#,
            r#"{"maxThreads": -1, "enclaveSize": 256}"#,
            r#"{"maxThreads": 4, "enclaveSize": "256M"}"#,
        ] {
            let text = MINIMAL.replace(
                "\"version\": 1,",
                &format!("\"version\": 1, \"enclave\": {enclave},"),
            );
            assert!(
                matches!(
                    LauncherConfig::parse(text.as_bytes(), "f"),
                    Err(ConfigError::Parse { .. })
                ),
                "{enclave}"
            );
        }
        let c =
            LauncherConfig::standard(true, false, vec![], vec![]).with_enclave_limits(4, 3 << 20);
        assert!(matches!(
            c.to_json(),
            Err(ConfigError::BadLimit {
                key: "enclaveSize",
                ..
            })
        ));
    }

    #[test]
    fn new_keys_written_only_when_set() {
        let plain = LauncherConfig::standard(true, false, vec![], vec![]);
        let bytes = plain.to_json().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        for key in ["enclave", "attestation", "sgx1Exinfo"] {
            assert!(!text.contains(&format!("\"{key}\"")), "{key}: {text}");
        }
        // The builders with their defaults change nothing.
        let same = plain
            .clone()
            .with_attestation(false)
            .with_sgx1_exinfo(false);
        assert_eq!(same.to_json().unwrap(), bytes);

        let full = plain
            .with_enclave_limits(16, 256 << 20)
            .with_attestation(true)
            .with_sgx1_exinfo(true);
        let bytes = full.to_json().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.ends_with(
                "  \"defaultArgs\": [],\n  \"enclave\": {\n    \"maxThreads\": 16,\n    \
                 \"enclaveSize\": 268435456\n  },\n  \"attestation\": true,\n  \"sgx1Exinfo\": true\n}\n"
            ),
            "{text}"
        );
        assert_eq!(LauncherConfig::parse(&bytes, "t").unwrap(), full);
        assert_eq!(full.to_json().unwrap(), bytes);
    }

    /// The bytes of a conversion that sets none of the newer keys, exactly as version 1
    /// wrote them before `enclave`, `attestation` and `sgx1Exinfo` existed (so the kiln
    /// layer, and the digests of such conversions, do not change).
    #[test]
    fn bytes_without_new_keys_are_unchanged() {
        let mut c = LauncherConfig::standard(true, false, vec![], vec![]);
        c.sgx_loader_start = SgxLoaderStart::Exec;
        assert_eq!(
            String::from_utf8(c.to_json().unwrap()).unwrap(),
            "{\n  \"version\": 1,\n  \"runtimeDir\": \"/opt/kiln/runtime\",\n  \
             \"sgxLoaderStart\": \"exec\",\n  \"sgx1App\": \"/opt/kiln/sgx1/app\",\n  \
             \"edmmApp\": \"/opt/kiln/edmm/app\",\n  \"directApp\": \"/opt/kiln/direct/app\",\n  \
             \"allowCmdlineArgs\": false,\n  \"fixedArgs\": [],\n  \"defaultArgs\": []\n}\n"
        );
    }
}
