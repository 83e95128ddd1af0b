//! `inspect`: what a converted image says about itself — kind, labels, both SIGSTRUCTs,
//! the runtime, the conversion options and the launcher configuration — without
//! judging it (that is [`super::check`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::read::{labels, ImageContents, ImageKind};
use crate::gramine::runtime_descriptor::RuntimeDescriptor;
use crate::sgx::sigstruct::Sigstruct;
use crate::sgx::sigstruct_view::SigstructView;

/// One enclave as found in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnclaveInfo {
    /// `sgx1`, `edmm`, `gsc`, or the env var's name.
    pub name: String,
    /// Path of the manifest, if any.
    pub manifest_path: Option<String>,
    /// Size of the manifest in bytes, if present.
    pub manifest_size: Option<usize>,
    /// Path of the SIGSTRUCT file, if any.
    pub sig_path: Option<String>,
    /// The SIGSTRUCT (from the file, else from the env var), parsed.
    pub sigstruct: Option<SigstructView>,
    /// Why there is no SIGSTRUCT view.
    pub sigstruct_error: Option<String>,
    /// The env var that carries this SIGSTRUCT, if any.
    pub env_var: Option<String>,
}

/// The result of [`inspect`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectReport {
    /// What kind of image.
    pub format: ImageKind,
    /// Image manifest digest.
    pub manifest_digest: String,
    /// `dev.kiln.*` labels (all labels for other kinds are not listed).
    pub labels: BTreeMap<String, String>,
    /// `dev.kiln.mrenclave`.
    pub mrenclave: Option<String>,
    /// `dev.kiln.mrenclave2`.
    pub mrenclave2: Option<String>,
    /// `dev.kiln.mrsigner`.
    pub mrsigner: Option<String>,
    /// `dev.kiln.isvprodid`.
    pub isvprodid: Option<String>,
    /// `dev.kiln.isvsvn`.
    pub isvsvn: Option<String>,
    /// `dev.kiln.version`.
    pub kiln_version: Option<String>,
    /// `dev.kiln.runtime`: the runtime image's manifest digest.
    pub runtime_digest: Option<String>,
    /// The runtime descriptor.
    pub runtime: Option<RuntimeDescriptor>,
    /// Gramine version (from the descriptor).
    pub gramine_version: Option<String>,
    /// Path of the SGX PAL found.
    pub libpal_path: Option<String>,
    /// The enclaves.
    pub enclaves: Vec<EnclaveInfo>,
    /// `/opt/kiln/conversion.json`.
    pub conversion: Option<serde_json::Value>,
    /// `/opt/kiln/launcher.json`.
    pub launcher: Option<serde_json::Value>,
    /// Problems met while reading.
    pub problems: Vec<String>,
}

fn json_of(
    bytes: Option<&[u8]>,
    what: &str,
    problems: &mut Vec<String>,
) -> Option<serde_json::Value> {
    let b = bytes?;
    match serde_json::from_slice(b) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(format!("{what}: not JSON: {e}"));
            None
        }
    }
}

/// Describes an image read by [`super::read_image`].
pub fn inspect(c: &ImageContents) -> InspectReport {
    let mut problems = c.problems.clone();
    let label = |k: &str| c.labels.get(k).cloned();
    let enclaves = c
        .enclaves
        .iter()
        .map(|e| {
            let raw: Result<&[u8], String> = match (&e.sig, &e.env_sig) {
                (Some(s), _) => Ok(s),
                (None, Some(Ok(s))) => Ok(s),
                (None, Some(Err(err))) => Err(err.clone()),
                (None, None) => Err(format!(
                    "no SIGSTRUCT ({} missing)",
                    e.sig_path.as_deref().unwrap_or("file")
                )),
            };
            let parsed = raw.and_then(|b| Sigstruct::parse(b).map_err(|x| x.to_string()));
            let (sigstruct, sigstruct_error) = match parsed {
                Ok(s) => (Some(SigstructView::new(&s)), None),
                Err(err) => (None, Some(err)),
            };
            EnclaveInfo {
                name: e.name.clone(),
                manifest_path: e.manifest_path.clone(),
                manifest_size: e.manifest.as_ref().map(Vec::len),
                sig_path: e.sig_path.clone(),
                sigstruct,
                sigstruct_error,
                env_var: e.env_var.clone(),
            }
        })
        .collect();
    let conversion = json_of(
        c.conversion_json.as_deref(),
        "/opt/kiln/conversion.json",
        &mut problems,
    );
    let launcher = json_of(
        c.launcher_json.as_deref(),
        "/opt/kiln/launcher.json",
        &mut problems,
    );
    InspectReport {
        format: c.kind,
        manifest_digest: c.manifest_digest.clone(),
        labels: c
            .labels
            .iter()
            .filter(|(k, _)| k.starts_with("dev.kiln."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        mrenclave: label(labels::MRENCLAVE),
        mrenclave2: label(labels::MRENCLAVE2),
        mrsigner: label(labels::MRSIGNER),
        isvprodid: label(labels::ISVPRODID),
        isvsvn: label(labels::ISVSVN),
        kiln_version: label(labels::VERSION),
        runtime_digest: label(labels::RUNTIME),
        gramine_version: c.runtime.as_ref().map(|r| r.gramine_version.clone()),
        runtime: c.runtime.clone(),
        libpal_path: c.libpal.as_ref().map(|l| l.path.clone()),
        enclaves,
        conversion,
        launcher,
        problems,
    }
}
