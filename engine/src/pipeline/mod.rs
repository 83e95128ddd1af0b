//! The conversion pipeline: one async entry point, [`convert`], that the app and the
//! worker (wasm) and the CLI (native) all call with their own [`PipelineEnv`].
//!
//! validate → resolve input (index → linux/amd64) → scan each layer once (cache
//! first; input layers copied to the output meanwhile) and read the runtime image (its
//! layer reused in the output meanwhile) → file index → enclave spec → manifests (SGX1,
//! EDMM, direct) → measure both → sign both → kiln layer → config + manifest → push
//! (kiln layer and config uploaded while teed input-layer uploads finish, manifest by
//! digest, tag LAST) → response.
//!
//! Modules: [`env`](mod@env) (what the host provides), [`progress`], [`errors`] (API error
//! mapping), [`resolve`], [`scan`], [`runtime`] (runtime image reader), [`kiln_layer`],
//! [`config`] (output config/manifest, reproducible time), [`push`], [`response`].

pub mod config;
pub mod env;
pub mod errors;
pub mod kiln_layer;
pub mod progress;
pub mod push;
pub mod resolve;
pub mod response;
pub mod runtime;
pub mod scan;
pub mod two_step;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::api::{ApiError, ConvertRequest, ConvertResponse, SigningKey};
use crate::gramine::manifest::{render_manifest, render_with_params, RenderedManifest, Variant};
use crate::gramine::spec::{build_spec_with_init, EnclaveSpec};
use crate::gramine::validate::{validate, ValidRequest};
use crate::image::digest::sha256_digest;
use crate::image::file_index::FileIndex;
use crate::sgx::gramine_layout::measure_with;
use crate::sgx::signer::{gramine_sigstruct_body, sign, Signer};
use crate::sgx::sigstruct::Sigstruct;

pub use env::{PipelineEnv, ScanDriver, SdkmsSignerFactory};
pub use progress::{Event, Progress, Step};
pub use two_step::{complete, prepare, ExternalSignatures, Prepared, PreparedState};

/// kiln's version, recorded in the output image.
pub const KILN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a conversion produced, beyond the response.
#[derive(Debug, Clone)]
pub struct ConvertOutcome {
    /// The API response.
    pub response: ConvertResponse,
    /// The output manifest (exact bytes).
    pub manifest: Vec<u8>,
    /// The output config (exact bytes).
    pub config: Vec<u8>,
    /// Input layers served from the cache.
    pub layers_cached: usize,
    /// Input layers in the image.
    pub layers_total: usize,
}

struct Timer<'a> {
    env: &'a PipelineEnv,
    step: Step,
    start: i64,
}

impl<'a> Timer<'a> {
    fn start(env: &'a PipelineEnv, step: Step) -> Self {
        env.progress.event(Event::StepStarted(step));
        Timer {
            env,
            step,
            start: env.clock.now_unix(),
        }
    }
    fn done(self) {
        self.env.progress.event(Event::StepDone {
            step: self.step,
            seconds: self.env.clock.now_unix() - self.start,
        });
    }
}

fn signer_for(req: &ValidRequest, env: &PipelineEnv) -> Result<Arc<dyn Signer>, ApiError> {
    match &req.signing_key {
        SigningKey::Default(_) => env.default_signer.clone().ok_or_else(|| {
            ApiError::bad_request(
                "signingKey.default: this kiln has no default signing key configured",
            )
        }),
        SigningKey::Sdkms(k) => match &env.sdkms {
            Some(f) => f.signer(&k.name, &k.api_key),
            None => Err(ApiError::bad_request(
                "signingKey.sdkms: SDKMS signing is not configured on this kiln",
            )),
        },
    }
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

fn measure_one(
    manifest: &RenderedManifest,
    libpal: &[u8],
    what: &str,
) -> Result<crate::sgx::gramine_layout::GramineMeasurement, ApiError> {
    measure_with(manifest.text.as_bytes(), &manifest.params, libpal)
        .map_err(|e| ApiError::internal(format!("measuring the {what} enclave: {e}")))
}

async fn sign_one(
    m: &crate::sgx::gramine_layout::GramineMeasurement,
    date: crate::sgx::sigstruct_date::SigstructDate,
    signer: &dyn Signer,
    what: &str,
) -> Result<Sigstruct, ApiError> {
    let body = gramine_sigstruct_body(m.mrenclave, &m.params, date);
    sign(body, signer).await.map_err(|e| match e {
        crate::sgx::signer::SignError::Key(k) => ApiError::bad_request(format!("signingKey: {k}")),
        crate::sgx::signer::SignError::Api(e) => e,
        other => ApiError::new(
            crate::api::ErrorType::RegistryError,
            format!("signing the {what} enclave: {other}"),
        ),
    })
}

/// Converts one image, registry to registry. See the module docs for the steps.
pub async fn convert(
    request: ConvertRequest,
    env: &PipelineEnv,
) -> Result<ConvertOutcome, ApiError> {
    match run(request, env, two_step::Mode::Convert).await? {
        two_step::Ran::Converted(o) => Ok(*o),
        two_step::Ran::Prepared(_) => Err(ApiError::internal("convert stopped before signing")),
    }
}

/// The pipeline, in one of its [`two_step::Mode`]s: a whole conversion with the request's
/// signer, or up to the SIGSTRUCT bodies (prepare), or with signatures made elsewhere
/// (complete; nothing tagged before they verify).
pub(crate) async fn run(
    request: ConvertRequest,
    env: &PipelineEnv,
    mode: two_step::Mode<'_>,
) -> Result<two_step::Ran, ApiError> {
    let t = Timer::start(env, Step::Validate);
    let req = validate(&request).map_err(|e| errors::validation(&e))?;
    if req.external_packages.is_some() && !env.external_packages_staged {
        return Err(ApiError::bad_request(
            "externalPackages: this kiln has no filesystem to look runtime packages up in \
             (browser or edge); convert with the kiln CLI, which reads the directory",
        ));
    }
    let signer = match mode {
        two_step::Mode::Convert => Some(signer_for(&req, env)?),
        _ => None,
    };
    let mut ends = resolve::endpoints(&req, env)?;
    mode.pin(&mut ends)?;
    t.done();

    let t = Timer::start(env, Step::ResolveInput);
    let input = resolve::resolve_input(&ends.input).await?;
    let input_config: Value = serde_json::from_slice(&input.config)
        .map_err(|e| ApiError::bad_request(format!("input image: config: {e}")))?;
    let image_config: oci_spec::image::ImageConfiguration =
        serde_json::from_slice(&input.config)
            .map_err(|e| ApiError::bad_request(format!("input image: config: {e}")))?;
    let input_manifest: Value = serde_json::from_slice(input.manifest.bytes())
        .map_err(|e| ApiError::bad_request(format!("input image: manifest: {e}")))?;
    let input_layers: Vec<Value> = input_manifest
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let jobs = scan::layer_jobs(&input.image_manifest);
    t.done();

    // Scan the layers, copy them to the output, and read the runtime, all at once.
    let t = Timer::start(env, Step::ScanLayers);
    let reused: Vec<push::Reused> = jobs
        .iter()
        .map(|j| push::Reused {
            digest: j.digest.clone(),
            size: j.size,
        })
        .collect();
    // The runtime image is read, and its layer made present in the output (mounted or
    // copied), while the input layers are scanned.
    let read_rt = async {
        let t = Timer::start(env, Step::ReadRuntime);
        let rt = runtime::read_runtime(&ends.runtime, env).await?;
        t.done();
        push::reuse_blobs(
            &ends.runtime,
            errors::Side::Runtime,
            &ends.output,
            &[push::Reused {
                digest: rt.layer_digest.clone(),
                size: rt.layer_size,
            }],
            env,
        )
        .await?;
        Ok(rt)
    };
    let same_registry = ends.input.client.base_url() == ends.output.client.base_url();
    let (scanned, rt) = if same_registry {
        // Mounts are cheap: copy (mount) while scanning.
        let (scanned, (), rt) = futures_util::future::try_join3(
            scan::scan_layers(
                &ends.input.client,
                ends.input.repository(),
                &jobs,
                None,
                env,
            ),
            push::reuse_blobs(&ends.input, errors::Side::Input, &ends.output, &reused, env),
            read_rt,
        )
        .await?;
        (scanned, rt)
    } else {
        // Across registries each fetched layer is uploaded as it is scanned (natively the
        // upload may still be storing the blob when the next steps start; it is awaited
        // before the manifest is pushed); layers served from the cache are copied
        // afterwards.
        let tee = scan::Tee {
            client: ends.output.client.clone(),
            repository: ends.output.repository().to_string(),
            mode: env.upload_mode,
        };
        let (scanned, rt) = futures_util::future::try_join(
            scan::scan_layers(
                &ends.input.client,
                ends.input.repository(),
                &jobs,
                Some(tee),
                env,
            ),
            read_rt,
        )
        .await?;
        // Only layers served from the cache still need copying: the others were teed.
        let from_cache: Vec<push::Reused> = reused
            .into_iter()
            .zip(&scanned.cached)
            .filter(|(_, cached)| **cached)
            .map(|(r, _)| r)
            .collect();
        push::reuse_blobs(
            &ends.input,
            errors::Side::Input,
            &ends.output,
            &from_cache,
            env,
        )
        .await?;
        (scanned, rt)
    };
    let hits = scanned.hits();
    let scan::ScannedLayers {
        summaries,
        mut uploads,
        ..
    } = scanned;
    let index = FileIndex::from_layers_limited(summaries.iter(), &env.limits)
        .map_err(|e| ApiError::bad_request(format!("input image layers: {e}")))?;
    t.done();

    let t = Timer::start(env, Step::Manifests);
    if !req.certificates.is_empty() && rt.kiln_init_sha256.is_none() {
        return Err(errors::runtime(format!(
            "{}: {}",
            env.runtime_image,
            crate::gramine::init::NO_KILN_INIT
        )));
    }
    let spec: EnclaveSpec = build_spec_with_init(
        &req,
        &image_config,
        &index,
        &rt.descriptor,
        rt.kiln_init_sha256,
    )?;
    let bad = |e: &dyn std::fmt::Display| ApiError::bad_request(e.to_string());
    let render = |v| render_with_params(&spec, v).map_err(|e| bad(&e));
    let (sgx1, edmm, direct) = (
        render(Variant::Sgx1)?,
        render(Variant::Edmm)?,
        render_manifest(&spec, Variant::Direct).map_err(|e| bad(&e))?,
    );
    t.done();

    let sgx1_exinfo = sgx1.params.use_exinfo;
    let t = Timer::start(env, Step::Measure);
    let m1 = measure_one(&sgx1, &rt.libpal, "SGX1")?;
    let m2 = measure_one(&edmm, &rt.libpal, "EDMM")?;
    let (mr1, mr2) = (m1.mrenclave, m2.mrenclave);
    t.done();

    let t = Timer::start(env, Step::Sign);
    let time = mode.build_time(config::BuildTime::choose(
        env.source_date_epoch,
        &input_config,
    ));
    let date = time.sigstruct_date()?;
    let (sig1, sig2) = match (&mode, &signer) {
        (two_step::Mode::Convert, Some(signer)) => {
            let signed = match sign_one(&m1, date, signer.as_ref(), "SGX1").await {
                Ok(s1) => sign_one(&m2, date, signer.as_ref(), "EDMM")
                    .await
                    .map(|s2| (s1, s2)),
                Err(e) => Err(e),
            };
            // A remote signer's session ends here, whatever happened.
            signer.finish().await;
            signed?
        }
        _ => {
            // What `prepare` returns must not depend on uploads still running.
            std::mem::take(&mut uploads).finish().await?;
            let facts = two_step::Facts {
                request: &request,
                input_digest: input.manifest.digest().to_string(),
                runtime_digest: rt.manifest_digest.clone(),
                time,
                sgx1: gramine_sigstruct_body(m1.mrenclave, &m1.params, date),
                edmm: gramine_sigstruct_body(m2.mrenclave, &m2.params, date),
            };
            match mode.sign(facts)? {
                two_step::Signed::Prepared(p) => return Ok(two_step::Ran::Prepared(p)),
                two_step::Signed::Sigstructs(s1, s2) => (*s1, *s2),
            }
        }
    };
    let mrsigner = sig1.mrsigner();
    t.done();

    let t = Timer::start(env, Step::BuildImage);
    let (fixed, default) = launcher_args(&req, &input_config);
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
    let launcher_json = lc
        .to_json()
        .map_err(|e| ApiError::internal(format!("launcher config: {e}")))?;
    let conversion = json!({
        "kilnVersion": KILN_VERSION,
        "input": {"reference": req.input_image, "digest": input.manifest.digest().to_string()},
        "runtime": {"reference": env.runtime_image, "digest": rt.manifest_digest},
        "request": redacted_request(&request),
        "result": {
            "mrenclave": hex::encode(mr1),
            "mrenclave2": hex::encode(mr2),
            "mrsigner": hex::encode(mrsigner),
            "isvprodid": req.isvprodid,
            "isvsvn": req.isvsvn,
            "memSize": req.mem_size.bytes,
        },
    });
    let mut conversion_json = serde_json::to_vec_pretty(&conversion)
        .map_err(|e| ApiError::internal(format!("conversion.json: {e}")))?;
    conversion_json.push(b'\n');
    let layer = kiln_layer::build(
        &kiln_layer::KilnFiles {
            launcher_json,
            sgx1_manifest: sgx1.text.into_bytes(),
            sgx1_sig: sig1.to_bytes().to_vec(),
            edmm_manifest: edmm.text.into_bytes(),
            edmm_sig: sig2.to_bytes().to_vec(),
            direct_manifest: direct.into_bytes(),
            conversion_json,
            init_json: spec.init.as_ref().map(|i| i.init_json.clone()),
            host_dirs: spec.host_dirs(),
            needs_resolv_conf: spec.runtime_domain_names,
            log_links: spec
                .log_links
                .iter()
                .map(|(path, stream)| (path.clone(), stream.relay_path()))
                .collect(),
        },
        &index,
        time.unix,
    )?;
    let mut labels = BTreeMap::new();
    for (k, v) in [
        ("dev.kiln.format", "1".to_string()),
        ("dev.kiln.version", KILN_VERSION.to_string()),
        ("dev.kiln.mrenclave", hex::encode(mr1)),
        ("dev.kiln.mrenclave2", hex::encode(mr2)),
        ("dev.kiln.mrsigner", hex::encode(mrsigner)),
        ("dev.kiln.isvprodid", req.isvprodid.to_string()),
        ("dev.kiln.isvsvn", req.isvsvn.to_string()),
        ("dev.kiln.runtime", rt.manifest_digest.clone()),
    ] {
        labels.insert(k.to_string(), v);
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let changes = config::ConfigChanges {
        entrypoint: kiln_launcher::config::LAUNCHER_PATH.to_string(),
        env: vec![
            format!("ENCLAVEOS_SIGNATURE={}", b64.encode(sig1.to_bytes())),
            format!("ENCLAVEOS_SIGNATURE2={}", b64.encode(sig2.to_bytes())),
        ],
        labels: labels.clone(),
        diff_ids: vec![rt.diff_id.clone(), layer.diff_id.clone()],
        created_by: vec![
            format!("kiln convert: runtime layer of {}", env.runtime_image),
            "kiln convert: kiln layer (launcher, signed manifests)".to_string(),
        ],
        time,
    };
    let config_bytes = config::output_config(&input_config, &changes)?;
    let config_digest = sha256_digest(&config_bytes);
    let mut layers = input_layers;
    layers.push(rt.layer.clone());
    layers.push(
        json!({"mediaType": config::OCI_LAYER_GZIP, "digest": layer.digest, "size": layer.size}),
    );
    let image_size = config_bytes.len() as u64
        + layers
            .iter()
            .filter_map(|l| l.get("size").and_then(Value::as_u64))
            .sum::<u64>();
    let manifest =
        config::output_manifest(&config_digest, config_bytes.len() as u64, layers, &labels)?;
    t.done();

    let t = Timer::start(env, Step::Push);
    // The input layers' uploads finish while the kiln layer and the config go up; the
    // manifest only after all of them.
    let own_blobs = async {
        push::upload_blob(&ends.output, &layer.digest, Bytes::from(layer.blob), env).await?;
        push::upload_blob(
            &ends.output,
            &config_digest,
            Bytes::from(config_bytes.clone()),
            env,
        )
        .await
    };
    futures_util::future::try_join(uploads.finish(), own_blobs).await?;
    let digest = push::push_manifest(&ends.output, manifest.clone()).await?;
    t.done();

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
    if let Some(sig) = config::foreign_stop_signal(&input_config) {
        warnings.push(format!(
            "StopSignal: {sig} replaced by SIGTERM: Gramine passes only SIGTERM from the host to \
             the app, so `docker stop` now sends SIGTERM (for nginx that is a fast shutdown \
             instead of a graceful one)"
        ));
    }
    warnings.dedup();
    let response = response::response(response::Facts {
        new_image: req.output_image.clone(),
        config_digest,
        manifest_digest: digest.to_string(),
        image_size,
        isvprodid: req.isvprodid,
        isvsvn: req.isvsvn,
        mrenclave: mr1,
        mrenclave2: mr2,
        mrsigner,
        mem_size: req.mem_size.bytes,
        warnings,
    });
    Ok(two_step::Ran::Converted(Box::new(ConvertOutcome {
        response,
        manifest,
        config: config_bytes,
        layers_cached: hits,
        layers_total: jobs.len(),
    })))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Native servers can spawn a conversion on a multi-threaded runtime.
    #[test]
    fn convert_future_is_send() {
        struct NoTransport;
        #[async_trait::async_trait]
        impl crate::image::transport::Transport for NoTransport {
            async fn send(
                &self,
                _req: crate::image::transport::Request,
            ) -> Result<crate::image::transport::Response, crate::image::transport::TransportError>
            {
                Err(crate::image::transport::TransportError::new(
                    crate::image::transport::TransportErrorKind::Connect,
                    "none",
                ))
            }
        }
        let env = PipelineEnv::new(Arc::new(NoTransport), "r/runtime:1");
        let f = convert(ConvertRequest::default(), &env);
        assert_send(&f);
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;
    use crate::image::transport::{Request, Response, Transport, TransportError};

    /// A transport that fails the test if the pipeline touches the network at all.
    struct NoNetwork;

    #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
    #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
    impl Transport for NoNetwork {
        async fn send(&self, request: Request) -> Result<Response, TransportError> {
            panic!(
                "no request expected, got {} {}",
                request.method, request.url
            );
        }
    }

    /// Runs a future that completes on its first poll (everything here is synchronous underneath).
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("the future never pends")
    }

    fn request(extra: &str) -> ConvertRequest {
        crate::api::parse_request(
            format!(
                r#"{{"inputImageName":"r.example/a:1","outputImageName":"r.example/b:1"{extra}}}"#
            )
            .as_bytes(),
        )
        .expect("request parses")
    }

    #[test]
    fn external_packages_refused_where_the_host_cannot_stage_them() {
        let env = PipelineEnv::new(Arc::new(NoNetwork), "r.example/kiln/runtime:1");
        let e = block_on(convert(request(r#","externalPackages":"/pkgs""#), &env))
            .expect_err("refused");
        assert_eq!(e.status, 400);
        assert!(e.reason.contains("externalPackages"), "{}", e.reason);
    }

    #[test]
    fn refusals_happen_before_any_request() {
        let env = PipelineEnv::new(Arc::new(NoNetwork), "r.example/kiln/runtime:1");
        // No default key configured: refused by name, nothing fetched.
        let e = block_on(convert(request(""), &env)).expect_err("refused");
        assert!(e.reason.contains("signingKey.default"), "{}", e.reason);
        let e = block_on(convert(request(r#","isvsvn":70000"#), &env)).expect_err("refused");
        assert!(e.reason.contains("isvsvn"), "{}", e.reason);
    }
}
