//! Assembling the output image from what the earlier stages produced: the launcher's
//! configuration, the conversion record, the kiln layer, the config (entrypoint, the
//! signatures in the environment, labels, diff_ids, history) and the manifest
//! (docs/image-formats.md, "Converted image"). No I/O: [`super::push`] uploads it.

use base64::Engine as _;
use serde_json::{json, Value};

use super::config::{self, BuildTime};
use super::kiln_layer;
use super::runtime_reader::RuntimeImage;
use super::KILN_VERSION;
use crate::api::{ApiError, ConvertRequest};
use crate::converted_image::{self, paths, LabelFacts};
use crate::gramine::spec::EnclaveSpec;
use crate::gramine::validate::ValidRequest;
use crate::image::digest::sha256_digest;
use crate::image::file_index::FileIndex;
use crate::image::layer_writer::WrittenLayer;
use crate::sgx::sigstruct::Sigstruct;

/// The three manifests, as written (the SGX ones are the measured bytes).
#[derive(Debug, Clone)]
pub struct Manifests {
    /// SGX1 `.manifest.sgx`.
    pub sgx1: String,
    /// EDMM `.manifest.sgx`.
    pub edmm: String,
    /// Direct-mode `.manifest`.
    pub direct: String,
}

/// Both enclaves' SIGSTRUCTs and the identities they carry.
#[derive(Debug, Clone)]
pub struct Signed {
    /// SGX1 SIGSTRUCT.
    pub sgx1: Sigstruct,
    /// EDMM SIGSTRUCT.
    pub edmm: Sigstruct,
    /// SGX1 MRENCLAVE (as measured).
    pub mrenclave: [u8; 32],
    /// EDMM MRENCLAVE (as measured).
    pub mrenclave2: [u8; 32],
}

impl Signed {
    /// MRSIGNER.
    pub fn mrsigner(&self) -> [u8; 32] {
        self.sgx1.mrsigner()
    }
}

/// What the output image is made of.
pub struct Parts<'a> {
    /// The request as received (recorded without secrets).
    pub request: &'a ConvertRequest,
    /// The validated request.
    pub req: &'a ValidRequest,
    /// The input image's config.
    pub input_config: &'a Value,
    /// The input image's manifest digest.
    pub input_digest: &'a str,
    /// The input image's layer descriptors, verbatim.
    pub input_layers: Vec<Value>,
    /// The input's merged file index.
    pub index: &'a FileIndex,
    /// The enclave spec.
    pub spec: &'a EnclaveSpec,
    /// The runtime image.
    pub runtime: &'a RuntimeImage,
    /// The runtime image's reference.
    pub runtime_reference: &'a str,
    /// The manifests.
    pub manifests: Manifests,
    /// The SIGSTRUCTs.
    pub signed: &'a Signed,
    /// The build time.
    pub time: BuildTime,
    /// The SGX1 enclave has EXINFO (as rendered; `manifestOptions` may ask for it).
    pub sgx1_exinfo: bool,
}

/// The output image, ready to push.
#[derive(Debug, Clone)]
pub struct OutputImage {
    /// The kiln layer.
    pub kiln_layer: WrittenLayer,
    /// The config blob.
    pub config: Vec<u8>,
    /// Its digest.
    pub config_digest: String,
    /// The manifest (exact bytes).
    pub manifest: Vec<u8>,
    /// Config size plus every layer's size (the response's `imageSize`).
    pub size: u64,
}

/// Builds the output image.
pub fn assemble(p: Parts<'_>) -> Result<OutputImage, ApiError> {
    let (mr1, mr2, mrsigner) = (p.signed.mrenclave, p.signed.mrenclave2, p.signed.mrsigner());
    let conversion_json = conversion_json(&p)?;
    let kiln_layer = kiln_layer::build(
        &kiln_layer::KilnFiles {
            launcher_json: launcher_json(p.req, p.input_config, p.spec, p.sgx1_exinfo)?,
            sgx1_manifest: p.manifests.sgx1.into_bytes(),
            sgx1_sig: p.signed.sgx1.to_bytes().to_vec(),
            edmm_manifest: p.manifests.edmm.into_bytes(),
            edmm_sig: p.signed.edmm.to_bytes().to_vec(),
            direct_manifest: p.manifests.direct.into_bytes(),
            conversion_json,
            init_json: p.spec.init.as_ref().map(|i| i.init_json.clone()),
            host_dirs: p.spec.host_dirs(),
            needs_resolv_conf: p.spec.runtime_domain_names,
            log_links: p
                .spec
                .log_links
                .iter()
                .map(|(path, stream)| (path.clone(), stream.relay_path()))
                .collect(),
        },
        p.index,
        p.time.unix,
    )?;
    let labels = converted_image::config_labels(&LabelFacts {
        kiln_version: KILN_VERSION,
        mrenclave: mr1,
        mrenclave2: mr2,
        mrsigner,
        isvprodid: p.req.isvprodid,
        isvsvn: p.req.isvsvn,
        runtime_digest: &p.runtime.manifest_digest,
    });
    let b64 = base64::engine::general_purpose::STANDARD;
    let changes = config::ConfigChanges {
        entrypoint: kiln_launcher::config::LAUNCHER_PATH.to_string(),
        env: vec![
            format!(
                "{}={}",
                paths::ENV_SIGNATURE,
                b64.encode(p.signed.sgx1.to_bytes())
            ),
            format!(
                "{}={}",
                paths::ENV_SIGNATURE2,
                b64.encode(p.signed.edmm.to_bytes())
            ),
        ],
        labels: labels.clone(),
        diff_ids: vec![p.runtime.diff_id.clone(), kiln_layer.diff_id.clone()],
        created_by: vec![
            format!("kiln convert: runtime layer of {}", p.runtime_reference),
            "kiln convert: kiln layer (launcher, signed manifests)".to_string(),
        ],
        time: p.time,
    };
    let config = config::output_config(p.input_config, &changes)?;
    let config_digest = sha256_digest(&config);
    let mut layers = p.input_layers;
    layers.push(p.runtime.layer.clone());
    layers.push(json!({
        "mediaType": config::OCI_LAYER_GZIP,
        "digest": kiln_layer.digest,
        "size": kiln_layer.size,
    }));
    let size = config.len() as u64
        + layers
            .iter()
            .filter_map(|l| l.get("size").and_then(Value::as_u64))
            .sum::<u64>();
    let manifest = config::output_manifest(&config_digest, config.len() as u64, layers, &labels)?;
    Ok(OutputImage {
        kiln_layer,
        config,
        config_digest,
        manifest,
        size,
    })
}

/// `launcher.json`: the launcher's standard layout with this enclave's limits and needs.
fn launcher_json(
    req: &ValidRequest,
    input_config: &Value,
    spec: &EnclaveSpec,
    sgx1_exinfo: bool,
) -> Result<Vec<u8>, ApiError> {
    let (fixed, default) = launcher_args(req, input_config);
    let mut lc = kiln_launcher::config::LauncherConfig::standard(
        true,
        req.allow_cmdline_args,
        fixed,
        default,
    )
    .with_enclave_limits(spec.max_threads, spec.enclave_size)
    .with_attestation(spec.init.is_some())
    .with_sgx1_exinfo(sgx1_exinfo)
    .with_log_relays(!spec.log_links.is_empty());
    lc.sgx_loader_start = kiln_launcher::config::SgxLoaderStart::Exec;
    lc.to_json()
        .map_err(|e| ApiError::internal(format!("launcher config: {e}")))
}

/// `conversion.json`: what was converted, with what, and the result.
fn conversion_json(p: &Parts<'_>) -> Result<Vec<u8>, ApiError> {
    let conversion = json!({
        "kilnVersion": KILN_VERSION,
        "input": {"reference": p.req.input_image, "digest": p.input_digest},
        "runtime": {"reference": p.runtime_reference, "digest": p.runtime.manifest_digest},
        "request": redacted_request(p.request),
        "result": {
            "mrenclave": hex::encode(p.signed.mrenclave),
            "mrenclave2": hex::encode(p.signed.mrenclave2),
            "mrsigner": hex::encode(p.signed.mrsigner()),
            "isvprodid": p.req.isvprodid,
            "isvsvn": p.req.isvsvn,
            "memSize": p.req.mem_size.bytes,
        },
    });
    let mut bytes = serde_json::to_vec_pretty(&conversion)
        .map_err(|e| ApiError::internal(format!("conversion.json: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The request as recorded in `conversion.json`: no credential, no API key.
fn redacted_request(request: &ConvertRequest) -> Value {
    let mut v = serde_json::to_value(request).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("inputAuthConfig");
        o.remove("outputAuthConfig");
        o.remove("authConfig");
        if let Some(s) = o
            .get_mut("signingKey")
            .and_then(|k| k.get_mut("sdkms"))
            .and_then(Value::as_object_mut)
        {
            s.remove("apiKey");
        }
    }
    v
}

/// Launcher arguments for `allowCmdlineArgs` (Docker's ENTRYPOINT/CMD rule).
fn launcher_args(req: &ValidRequest, image: &Value) -> (Vec<String>, Vec<String>) {
    if !req.allow_cmdline_args {
        return (Vec::new(), Vec::new());
    }
    let list = |k: &str| -> Vec<String> {
        image
            .get("config")
            .and_then(|c| c.get(k))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (entry, args) = match &req.entrypoint {
        Some(e) => (e.clone(), req.entrypoint_args.clone().unwrap_or_default()),
        None => (
            list("Entrypoint"),
            req.entrypoint_args.clone().unwrap_or_else(|| list("Cmd")),
        ),
    };
    if entry.is_empty() {
        (Vec::new(), args.into_iter().skip(1).collect())
    } else {
        (entry.into_iter().skip(1).collect(), args)
    }
}

/// The conversion's warnings: the spec's, then what the output image itself changes.
pub fn warnings(spec: &EnclaveSpec, sgx1_exinfo: bool, input_config: &Value) -> Vec<String> {
    let mut warnings = spec.warnings.clone();
    if sgx1_exinfo {
        warnings.push(
            "SGX1 enclave: built with EXINFO (sgx.use_exinfo, SIGSTRUCT MISCSELECT 0x1) so that \
             the app can recover from SIGSEGV; it starts only on CPUs that report EXINFO \
             (SGX2-capable CPUs whose kernel lacks EDMM; the launcher checks), and attestation \
             policies must accept MISCSELECT 0x1"
                .to_string(),
        );
    }
    if let Some(sig) = config::foreign_stop_signal(input_config) {
        warnings.push(format!(
            "StopSignal: {sig} replaced by SIGTERM: Gramine passes only SIGTERM from the host to \
             the app, so `docker stop` now sends SIGTERM (for nginx that is a fast shutdown \
             instead of a graceful one)"
        ));
    }
    warnings.dedup();
    warnings
}
