//! The converted image format (docs/image-formats.md, "Converted image (format 1)"):
//! where the kiln layer puts its files and which labels the config carries. The pipeline
//! writes with these names ([`crate::pipeline::kiln_layer`], [`config_labels`]) and
//! [`crate::verify`] reads with them; the launcher (a separate static binary) has the same
//! paths in `kiln_launcher::config`, held equal by a test here.

use std::collections::BTreeMap;

/// The converted image format written by this engine (label [`labels::FORMAT`]).
pub const FORMAT: &str = "1";

/// Where kiln's files live in a converted image.
pub mod paths {
    /// Launcher configuration.
    pub const LAUNCHER_JSON: &str = "/opt/kiln/launcher.json";
    /// What was converted.
    pub const CONVERSION_JSON: &str = "/opt/kiln/conversion.json";
    /// SGX1 manifest.
    pub const SGX1_MANIFEST: &str = "/opt/kiln/sgx1/app.manifest.sgx";
    /// SGX1 SIGSTRUCT.
    pub const SGX1_SIG: &str = "/opt/kiln/sgx1/app.sig";
    /// EDMM manifest.
    pub const EDMM_MANIFEST: &str = "/opt/kiln/edmm/app.manifest.sgx";
    /// EDMM SIGSTRUCT.
    pub const EDMM_SIG: &str = "/opt/kiln/edmm/app.sig";
    /// Direct-mode manifest (not measured).
    pub const DIRECT_MANIFEST: &str = "/opt/kiln/direct/app.manifest";
    /// Env var holding the base64 SGX1 SIGSTRUCT.
    pub const ENV_SIGNATURE: &str = "ENCLAVEOS_SIGNATURE";
    /// Env var holding the base64 EDMM SIGSTRUCT.
    pub const ENV_SIGNATURE2: &str = "ENCLAVEOS_SIGNATURE2";
}

/// Label names of converted images.
pub mod labels {
    /// Format (`1`).
    pub const FORMAT: &str = "dev.kiln.format";
    /// kiln's version.
    pub const VERSION: &str = "dev.kiln.version";
    /// SGX1 MRENCLAVE.
    pub const MRENCLAVE: &str = "dev.kiln.mrenclave";
    /// EDMM MRENCLAVE.
    pub const MRENCLAVE2: &str = "dev.kiln.mrenclave2";
    /// MRSIGNER.
    pub const MRSIGNER: &str = "dev.kiln.mrsigner";
    /// ISVPRODID.
    pub const ISVPRODID: &str = "dev.kiln.isvprodid";
    /// ISVSVN.
    pub const ISVSVN: &str = "dev.kiln.isvsvn";
    /// Runtime image manifest digest.
    pub const RUNTIME: &str = "dev.kiln.runtime";
}

/// What the converted image's config labels record.
#[derive(Debug, Clone)]
pub struct LabelFacts<'a> {
    /// kiln's version.
    pub kiln_version: &'a str,
    /// SGX1 MRENCLAVE.
    pub mrenclave: [u8; 32],
    /// EDMM MRENCLAVE.
    pub mrenclave2: [u8; 32],
    /// MRSIGNER.
    pub mrsigner: [u8; 32],
    /// ISV product id.
    pub isvprodid: u16,
    /// ISV svn.
    pub isvsvn: u16,
    /// The runtime image's manifest digest.
    pub runtime_digest: &'a str,
}

/// The `dev.kiln.*` labels of a converted image's config (and manifest annotations).
pub fn config_labels(f: &LabelFacts<'_>) -> BTreeMap<String, String> {
    [
        (labels::FORMAT, FORMAT.to_string()),
        (labels::VERSION, f.kiln_version.to_string()),
        (labels::MRENCLAVE, hex::encode(f.mrenclave)),
        (labels::MRENCLAVE2, hex::encode(f.mrenclave2)),
        (labels::MRSIGNER, hex::encode(f.mrsigner)),
        (labels::ISVPRODID, f.isvprodid.to_string()),
        (labels::ISVSVN, f.isvsvn.to_string()),
        (labels::RUNTIME, f.runtime_digest.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_launcher::config as launcher;

    /// The launcher reads what the pipeline writes.
    #[test]
    fn paths_agree_with_the_launchers() {
        assert_eq!(paths::LAUNCHER_JSON, launcher::CONFIG_PATH);
        assert_eq!(
            paths::SGX1_MANIFEST,
            format!("{}.manifest.sgx", launcher::SGX1_APP)
        );
        assert_eq!(paths::SGX1_SIG, format!("{}.sig", launcher::SGX1_APP));
        assert_eq!(
            paths::EDMM_MANIFEST,
            format!("{}.manifest.sgx", launcher::EDMM_APP)
        );
        assert_eq!(paths::EDMM_SIG, format!("{}.sig", launcher::EDMM_APP));
        assert_eq!(
            paths::DIRECT_MANIFEST,
            format!("{}.manifest", launcher::DIRECT_APP)
        );
    }

    #[test]
    fn labels_name_every_fact() {
        let l = config_labels(&LabelFacts {
            kiln_version: "9.9.9",
            mrenclave: [1; 32],
            mrenclave2: [2; 32],
            mrsigner: [3; 32],
            isvprodid: 4,
            isvsvn: 5,
            runtime_digest: "sha256:00",
        });
        assert_eq!(l.len(), 8);
        assert_eq!(l[labels::FORMAT], "1");
        assert_eq!(l[labels::MRENCLAVE2], "02".repeat(32));
        assert_eq!(l[labels::ISVSVN], "5");
        assert_eq!(l[labels::RUNTIME], "sha256:00");
    }
}
