//! Reading an image's enclave material: which kind of image it is, its labels and
//! environment, the manifests and SIGSTRUCTs, the runtime descriptor and the SGX PAL.
//!
//! Only the layers that matter are fetched: for kiln's images the last two (runtime and
//! kiln layer), for GSC images every layer (Gramine's install may sit in any of them),
//! for images that carry only `ENCLAVEOS_SIGNATURE*` none.

use std::collections::BTreeMap;

use base64::Engine as _;
use oci_spec::image::Descriptor;

use super::source::{scan_layer, BlobSource, SourceError};
use crate::gramine::runtime_descriptor::{RuntimeDescriptor, DEFAULT_RUNTIME_PREFIX};
use crate::image::file_index::{FileEntry, FileIndex, FileKind};
use crate::image::reference::Digest;
use crate::image::registry::ResolvedImage;
use crate::image::scan::{CaptureSet, EntryKind, LayerSummary};
use sha2::{Digest as _, Sha256};

pub use crate::converted_image::{labels, paths};

/// Where GSC images keep their enclave material.
pub mod gsc_paths {
    /// GSC's manifest.
    pub const GSC_MANIFEST: &str = "/gramine/app_files/entrypoint.manifest.sgx";
    /// GSC's SIGSTRUCT.
    pub const GSC_SIG: &str = "/gramine/app_files/entrypoint.sig";
    /// Suffix of an SGX PAL inside a Gramine install
    /// (`/gramine/meson_build_output/lib/x86_64-linux-gnu/gramine/sgx/libpal.so` in GSC).
    pub const GRAMINE_SGX_LIBPAL_SUFFIX: &str = "/gramine/sgx/libpal.so";
}

/// Largest manifest, SIGSTRUCT or JSON file read from a kiln or GSC layer.
pub const SMALL_FILE_LIMIT: u64 = 16 << 20;
/// Largest libpal.so read.
pub const LIBPAL_LIMIT: u64 = 64 << 20;

/// What kind of enclave image this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageKind {
    /// kiln's converted image (docs/image-formats.md).
    Kiln,
    /// A Gramine Shielded Containers image.
    Gsc,
    /// An image carrying only `ENCLAVEOS_SIGNATURE*` (the compatible platform).
    EnclaveOsEnv,
    /// None of the above.
    Unknown,
}

/// One enclave of an image: its manifest and SIGSTRUCT, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnclaveFiles {
    /// `sgx1`, `edmm`, `gsc`, or the env var's name.
    pub name: String,
    /// Path of the `.manifest.sgx`, if the image kind has one.
    pub manifest_path: Option<String>,
    /// Its bytes, if present.
    pub manifest: Option<Vec<u8>>,
    /// Path of the `.sig`, if the image kind has one.
    pub sig_path: Option<String>,
    /// Its bytes, if present.
    pub sig: Option<Vec<u8>>,
    /// The env var that should carry the SIGSTRUCT too.
    pub env_var: Option<String>,
    /// The env var's decoded value: `None` when absent, `Err` when not base64.
    pub env_sig: Option<Result<Vec<u8>, String>>,
    /// The label holding this enclave's MRENCLAVE.
    pub label: Option<String>,
}

/// The SGX PAL found in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibpalFile {
    /// Its absolute path.
    pub path: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Everything read from an image that inspect and verify need.
#[derive(Debug, Clone)]
pub struct ImageContents {
    /// The kind.
    pub kind: ImageKind,
    /// The image manifest digest.
    pub manifest_digest: String,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// Config environment (`KEY=VALUE` split at the first `=`).
    pub env: BTreeMap<String, String>,
    /// Config entrypoint.
    pub entrypoint: Vec<String>,
    /// The enclaves.
    pub enclaves: Vec<EnclaveFiles>,
    /// The runtime descriptor (kiln images).
    pub runtime: Option<RuntimeDescriptor>,
    /// The runtime layer's digest (kiln images).
    pub runtime_layer: Option<String>,
    /// SHA-256 of every regular file of the runtime layer, by path (kiln images).
    pub runtime_files: BTreeMap<String, [u8; 32]>,
    /// The SGX PAL.
    pub libpal: Option<LibpalFile>,
    /// `/opt/kiln/launcher.json` (kiln images).
    pub launcher_json: Option<Vec<u8>>,
    /// `/opt/kiln/conversion.json` (kiln images).
    pub conversion_json: Option<Vec<u8>>,
    /// Problems met while reading that do not stop inspection (shown by inspect,
    /// failing the checks that need what is missing).
    pub problems: Vec<String>,
}

/// Why an image cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The config blob is not a JSON image config.
    #[error("image config: {0}")]
    Config(String),
    /// A layer descriptor is unusable.
    #[error("layer {index}: {message}")]
    Layer {
        /// Index in the manifest.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// A kiln image has too few layers.
    #[error("kiln image: expected at least 2 layers (runtime and kiln layer), found {0}")]
    TooFewLayers(usize),
    /// A layer could not be fetched or scanned.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// The config facts used here.
struct ConfigFacts {
    labels: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    entrypoint: Vec<String>,
}

fn config_facts(config: &[u8]) -> Result<ConfigFacts, ReadError> {
    let v: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| ReadError::Config(e.to_string()))?;
    let c = v.get("config");
    let strings = |key: &str| -> Vec<String> {
        c.and_then(|c| c.get(key))
            .and_then(|x| x.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let labels = c
        .and_then(|c| c.get("Labels"))
        .and_then(|l| l.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let env = strings("Env")
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv, String::new()),
        })
        .collect();
    Ok(ConfigFacts {
        labels,
        env,
        entrypoint: strings("Entrypoint"),
    })
}

fn decode_env_sig(env: &BTreeMap<String, String>, var: &str) -> Option<Result<Vec<u8>, String>> {
    env.get(var).map(|v| {
        base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|e| format!("{var} is not base64: {e}"))
    })
}

struct LayerRef {
    digest: Digest,
    size: u64,
    media_type: String,
}

fn layer_ref(index: usize, d: &Descriptor) -> Result<LayerRef, ReadError> {
    let digest = Digest::try_from(d.digest()).map_err(|e| ReadError::Layer {
        index,
        message: e.to_string(),
    })?;
    Ok(LayerRef {
        digest,
        size: d.size(),
        media_type: d.media_type().to_string(),
    })
}

async fn scan(
    blobs: &dyn BlobSource,
    l: &LayerRef,
    capture: CaptureSet,
) -> Result<LayerSummary, SourceError> {
    scan_layer(blobs, &l.digest, l.size, &l.media_type, capture).await
}

/// Resolves `reference` to linux/amd64 through `client` and reads what inspect and verify
/// need: the one entry point the edge API, the web app and the CLI share for an image in a
/// registry. Errors are API errors naming `field` (the request field that names the image).
pub async fn read_remote(
    client: &crate::image::registry::RegistryClient,
    reference: &crate::image::reference::Reference,
    field: &str,
) -> Result<ImageContents, crate::api::ApiError> {
    let resolved = client
        .resolve_image(
            reference,
            &crate::image::manifest::PlatformSpec::linux_amd64(),
        )
        .await
        .map_err(|e| crate::pipeline::errors::registry_read(field, &e))?;
    let blobs = super::source::RegistryBlobs::new(client, reference.repository());
    read_image(&resolved, &blobs).await.map_err(|e| {
        // A limit of the client's (the front's) hit by a layer is the image's fault: a 400
        // naming the layer and the limit, as in a conversion.
        let kind = match &e {
            ReadError::Source(SourceError::Scan(s)) if s.limit().is_some() => {
                crate::api::ErrorType::BadRequest
            }
            _ => crate::api::ErrorType::RegistryError,
        };
        crate::api::ApiError::new(kind, format!("{field}: reading its contents: {e}"))
    })
}

/// Reads what inspect and verify need from a resolved image, fetching layers from
/// `blobs` as the image kind requires.
pub async fn read_image(
    image: &ResolvedImage,
    blobs: &dyn BlobSource,
) -> Result<ImageContents, ReadError> {
    let facts = config_facts(&image.config)?;
    let layers = image
        .image_manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(i, d)| layer_ref(i, d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut contents = ImageContents {
        kind: ImageKind::Unknown,
        manifest_digest: image.manifest.digest().to_string(),
        labels: facts.labels,
        env: facts.env,
        entrypoint: facts.entrypoint,
        enclaves: Vec::new(),
        runtime: None,
        runtime_layer: None,
        runtime_files: BTreeMap::new(),
        libpal: None,
        launcher_json: None,
        conversion_json: None,
        problems: Vec::new(),
    };
    if contents.labels.contains_key(labels::FORMAT) {
        read_kiln(&mut contents, &layers, blobs).await?;
    } else if contents.env.contains_key(paths::ENV_SIGNATURE) {
        contents.kind = ImageKind::EnclaveOsEnv;
        for var in [paths::ENV_SIGNATURE, paths::ENV_SIGNATURE2] {
            if contents.env.contains_key(var) {
                contents.enclaves.push(EnclaveFiles {
                    name: var.to_string(),
                    manifest_path: None,
                    manifest: None,
                    sig_path: None,
                    sig: None,
                    env_var: Some(var.to_string()),
                    env_sig: decode_env_sig(&contents.env, var),
                    label: None,
                });
            }
        }
    } else {
        read_gsc(&mut contents, &layers, blobs).await?;
    }
    Ok(contents)
}

/// The runtime prefix of a kiln image: `runtimeDir` of launcher.json, else the
/// entrypoint's directory, else the default.
fn runtime_prefix(launcher_json: Option<&[u8]>, entrypoint: &[String]) -> String {
    let from_launcher = launcher_json
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("runtimeDir")?.as_str().map(str::to_string));
    let from_entrypoint = entrypoint
        .first()
        .and_then(|e| e.rsplit_once('/'))
        .map(|(dir, _)| dir.to_string())
        .filter(|d| !d.is_empty());
    from_launcher
        .or(from_entrypoint)
        .unwrap_or_else(|| DEFAULT_RUNTIME_PREFIX.to_string())
}

async fn read_kiln(
    contents: &mut ImageContents,
    layers: &[LayerRef],
    blobs: &dyn BlobSource,
) -> Result<(), ReadError> {
    contents.kind = ImageKind::Kiln;
    let [.., runtime_layer, kiln_layer] = layers else {
        return Err(ReadError::TooFewLayers(layers.len()));
    };
    let capture = CaptureSet::empty(SMALL_FILE_LIMIT).paths([
        paths::LAUNCHER_JSON,
        paths::CONVERSION_JSON,
        paths::SGX1_MANIFEST,
        paths::SGX1_SIG,
        paths::EDMM_MANIFEST,
        paths::EDMM_SIG,
        paths::DIRECT_MANIFEST,
    ]);
    let mut kiln = scan(blobs, kiln_layer, capture).await?.captured;
    contents.launcher_json = kiln.remove(paths::LAUNCHER_JSON);
    contents.conversion_json = kiln.remove(paths::CONVERSION_JSON);
    for (name, m, s, var, label) in [
        (
            "sgx1",
            paths::SGX1_MANIFEST,
            paths::SGX1_SIG,
            paths::ENV_SIGNATURE,
            labels::MRENCLAVE,
        ),
        (
            "edmm",
            paths::EDMM_MANIFEST,
            paths::EDMM_SIG,
            paths::ENV_SIGNATURE2,
            labels::MRENCLAVE2,
        ),
    ] {
        contents.enclaves.push(EnclaveFiles {
            name: name.to_string(),
            manifest_path: Some(m.to_string()),
            manifest: kiln.remove(m),
            sig_path: Some(s.to_string()),
            sig: kiln.remove(s),
            env_var: Some(var.to_string()),
            env_sig: decode_env_sig(&contents.env, var),
            label: Some(label.to_string()),
        });
    }

    let prefix = runtime_prefix(contents.launcher_json.as_deref(), &contents.entrypoint);
    contents.runtime_layer = Some(runtime_layer.digest.to_string());
    let descriptor_path = format!("{prefix}/runtime.json");
    let standard_libpal = format!("{prefix}/sgx/libpal.so");
    let capture = CaptureSet::empty(LIBPAL_LIMIT).paths([descriptor_path.clone(), standard_libpal]);
    let summary = scan(blobs, runtime_layer, capture).await?;
    contents.runtime_files = summary
        .entries
        .iter()
        .filter_map(|e| match e.kind {
            EntryKind::Regular { sha256, .. } => Some((e.path.clone(), sha256)),
            _ => None,
        })
        .collect();
    let mut rt = summary.captured;
    let Some(json) = rt.remove(&descriptor_path) else {
        contents.problems.push(format!(
            "runtime layer {}: no {descriptor_path} (is the second-to-last layer kiln's runtime?)",
            runtime_layer.digest
        ));
        return Ok(());
    };
    let descriptor = match RuntimeDescriptor::from_json(&json) {
        Ok(d) => d,
        Err(e) => {
            contents.problems.push(format!("{descriptor_path}: {e}"));
            return Ok(());
        }
    };
    let libpal_path = descriptor.path_of(&descriptor.sgx_libpal);
    let libpal = match rt.remove(&libpal_path) {
        Some(b) => Some(b),
        None => {
            // A descriptor with a non-standard libpal path: one more pass.
            let capture = CaptureSet::empty(LIBPAL_LIMIT).paths([libpal_path.clone()]);
            scan(blobs, runtime_layer, capture)
                .await?
                .captured
                .remove(&libpal_path)
        }
    };
    match libpal {
        Some(bytes) => {
            contents.libpal = Some(LibpalFile {
                path: libpal_path,
                bytes,
            })
        }
        None => contents.problems.push(format!(
            "runtime layer {}: no {libpal_path}",
            runtime_layer.digest
        )),
    }
    contents.runtime = Some(descriptor);
    Ok(())
}

async fn read_gsc(
    contents: &mut ImageContents,
    layers: &[LayerRef],
    blobs: &dyn BlobSource,
) -> Result<(), ReadError> {
    let capture = CaptureSet::empty(LIBPAL_LIMIT)
        .paths([gsc_paths::GSC_MANIFEST, gsc_paths::GSC_SIG])
        .suffix(gsc_paths::GRAMINE_SGX_LIBPAL_SUFFIX);
    let mut summaries = Vec::with_capacity(layers.len());
    for l in layers {
        summaries.push(scan(blobs, l, capture.clone()).await?);
    }
    let index = match FileIndex::from_layers_limited(&summaries, &blobs.limits()) {
        Ok(i) => i,
        Err(e) => {
            contents.problems.push(e.to_string());
            return Ok(());
        }
    };
    let mut captured = merged_captures(&index, &summaries);
    let manifest = captured.remove(gsc_paths::GSC_MANIFEST);
    let sig = captured.remove(gsc_paths::GSC_SIG);
    if manifest.is_none() && sig.is_none() {
        return Ok(());
    }
    contents.kind = ImageKind::Gsc;
    contents.enclaves.push(EnclaveFiles {
        name: "gsc".into(),
        manifest_path: Some(gsc_paths::GSC_MANIFEST.into()),
        manifest,
        sig_path: Some(gsc_paths::GSC_SIG.into()),
        sig,
        env_var: None,
        env_sig: None,
        label: None,
    });
    let mut pals: Vec<(String, Vec<u8>)> = captured
        .into_iter()
        .filter(|(p, _)| p.ends_with(gsc_paths::GRAMINE_SGX_LIBPAL_SUFFIX))
        .collect();
    match pals.len() {
        0 => contents.problems.push(format!(
            "no Gramine SGX PAL (*{}) in the image",
            gsc_paths::GRAMINE_SGX_LIBPAL_SUFFIX
        )),
        1 => {}
        n => contents.problems.push(format!(
            "{n} Gramine SGX PALs in the image; using {}",
            pals.first().map(|p| p.0.as_str()).unwrap_or("")
        )),
    }
    if !pals.is_empty() {
        let (path, bytes) = pals.swap_remove(0);
        contents.libpal = Some(LibpalFile { path, bytes });
    }
    Ok(())
}

/// The captured files as they stand in the merged image: a path counts when the merged
/// index holds a regular file there, and its bytes are the captured copy with that
/// file's hash (whiteouts and later replacements thus respected).
fn merged_captures(index: &FileIndex, layers: &[LayerSummary]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for layer in layers.iter().rev() {
        for (path, bytes) in &layer.captured {
            if out.contains_key(path) {
                continue;
            }
            if let Some(FileEntry {
                kind: FileKind::Regular { sha256, .. },
                ..
            }) = index.get(path)
            {
                if Sha256::digest(bytes).as_slice() == sha256.as_slice() {
                    out.insert(path.clone(), bytes.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_facts_and_prefix() {
        let f = config_facts(
            br#"{"config":{"Env":["A=b=c","NOEQ"],"Entrypoint":["/x/y/kiln-launcher"],"Labels":{"k":"v","n":1}}}"#,
        )
        .unwrap();
        assert_eq!(f.env["A"], "b=c");
        assert_eq!(f.env["NOEQ"], "");
        assert_eq!(f.labels.len(), 1);
        assert_eq!(runtime_prefix(None, &f.entrypoint), "/x/y");
        assert_eq!(
            runtime_prefix(Some(br#"{"runtimeDir":"/r"}"#), &f.entrypoint),
            "/r"
        );
        assert_eq!(runtime_prefix(None, &[]), DEFAULT_RUNTIME_PREFIX);
        assert!(config_facts(b"[").is_err());
    }

    #[test]
    fn env_signature_decoding() {
        let env: BTreeMap<String, String> = [
            ("A".to_string(), "AAEC".to_string()),
            ("B".to_string(), "!!".to_string()),
        ]
        .into();
        assert_eq!(decode_env_sig(&env, "A"), Some(Ok(vec![0, 1, 2])));
        assert!(matches!(decode_env_sig(&env, "B"), Some(Err(_))));
        assert_eq!(decode_env_sig(&env, "C"), None);
    }
}
