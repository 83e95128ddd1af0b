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
//! mapping), [`resolve`], [`scan`], [`runtime_reader`] (runtime image reader), [`output`] (the
//! output image assembled: [`kiln_layer`], [`config`] for config/manifest and the
//! reproducible time), [`push`], [`response`].

pub mod config;
pub mod env;
pub mod errors;
pub mod kiln_layer;
pub mod output;
pub mod progress;
pub mod push;
pub mod resolve;
pub mod response;
pub mod runtime_reader;
pub mod scan;
pub mod two_step;

use std::sync::Arc;

use serde_json::Value;

use crate::api::{ApiError, ConvertRequest, ConvertResponse, SigningKey};
use crate::gramine::manifest::{render_manifest, render_with_params, RenderedManifest, Variant};
use crate::gramine::spec::{build_spec_with_manager, EnclaveSpec};
use crate::gramine::validate::{validate, ValidRequest};
use crate::image::file_index::FileIndex;
use crate::sgx::gramine_layout::{measure_with, GramineMeasurement};
use crate::sgx::signer::{gramine_sigstruct_body, sign, Signer};
use crate::sgx::sigstruct::Sigstruct;
use crate::sgx::sigstruct_date::SigstructDate;

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

fn measure_one(
    manifest: &RenderedManifest,
    libpal: &[u8],
    what: &str,
) -> Result<GramineMeasurement, ApiError> {
    measure_with(manifest.text.as_bytes(), &manifest.params, libpal)
        .map_err(|e| ApiError::internal(format!("measuring the {what} enclave: {e}")))
}

async fn sign_one(
    m: &GramineMeasurement,
    date: SigstructDate,
    signer: &dyn Signer,
    what: &str,
) -> Result<Sigstruct, ApiError> {
    let body = gramine_sigstruct_body(m.mrenclave, &m.params, date);
    sign(body, signer)
        .await
        .map_err(|e| errors::signing(e, "signingKey", what))
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
/// (complete; nothing tagged before they verify). Each stage below is one step of the
/// module doc's story.
pub(crate) async fn run(
    request: ConvertRequest,
    env: &PipelineEnv,
    mode: two_step::Mode<'_>,
) -> Result<two_step::Ran, ApiError> {
    let t = Timer::start(env, Step::Validate);
    let (req, signer, ends) = inputs(&request, env, &mode)?;
    t.done();

    let t = Timer::start(env, Step::ResolveInput);
    let input = InputImage::resolve(&ends.input).await?;
    t.done();

    let t = Timer::start(env, Step::ScanLayers);
    let staged = scan_and_stage(&ends, &input.jobs, env).await?;
    t.done();
    let mut uploads = staged.uploads;
    let rt = staged.runtime;

    let t = Timer::start(env, Step::Manifests);
    let rendered = render(&req, &input, &staged.index, &rt, env)?;
    t.done();

    let t = Timer::start(env, Step::Measure);
    let m1 = measure_one(&rendered.sgx1, &rt.libpal, "SGX1")?;
    let m2 = measure_one(&rendered.edmm, &rt.libpal, "EDMM")?;
    t.done();

    let t = Timer::start(env, Step::Sign);
    let ms = [&m1, &m2];
    let (signed, time) =
        match sign_stage(&mode, signer, &request, &input, &rt, ms, env, &mut uploads).await? {
            SignStage::Signed(signed, time) => (*signed, time),
            SignStage::Prepared(p) => return Ok(two_step::Ran::Prepared(p)),
        };
    t.done();

    let t = Timer::start(env, Step::BuildImage);
    let sgx1_exinfo = rendered.sgx1.params.use_exinfo;
    let out = output::assemble(output::Parts {
        request: &request,
        req: &req,
        input_config: &input.config,
        input_digest: &input.resolved.manifest.digest().to_string(),
        input_layers: input.layers.clone(),
        index: &staged.index,
        spec: &rendered.spec,
        runtime: &rt,
        runtime_reference: &env.runtime_image,
        manifests: output::Manifests {
            sgx1: rendered.sgx1.text,
            edmm: rendered.edmm.text,
            direct: rendered.direct,
        },
        signed: &signed,
        time,
        sgx1_exinfo,
    })?;
    t.done();

    let t = Timer::start(env, Step::Push);
    let digest = push::push_image(&ends.output, &out, uploads, env).await?;
    t.done();

    let warnings = output::warnings(&rendered.spec, sgx1_exinfo, &input.config);
    let response = response::response(&req, &out, &digest, &signed, warnings);
    Ok(two_step::Ran::Converted(Box::new(ConvertOutcome {
        response,
        manifest: out.manifest,
        config: out.config,
        layers_cached: staged.hits,
        layers_total: input.jobs.len(),
    })))
}

/// Stage 1's result: the validated request, the signer (when this mode signs) and the
/// endpoints.
type Inputs = (ValidRequest, Option<Arc<dyn Signer>>, resolve::Endpoints);

/// Stage 1: what the request asks for. Every refusal here happens before any request is
/// sent.
fn inputs(
    request: &ConvertRequest,
    env: &PipelineEnv,
    mode: &two_step::Mode<'_>,
) -> Result<Inputs, ApiError> {
    let req = validate(request).map_err(|e| errors::validation(&e))?;
    if let Some(url) = &env.manager_url {
        crate::gramine::init::check_manager_url(url).map_err(|why| {
            ApiError::new(
                crate::api::ErrorType::ConfigurationError,
                format!("the manager URL (CLI --manager-url, worker KILN_MANAGER_URL): {why}"),
            )
        })?;
    }
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
    Ok((req, signer, ends))
}

/// Stage 2: the input image, resolved to linux/amd64, with its config and layers.
struct InputImage {
    resolved: crate::image::registry::ResolvedImage,
    /// The config as JSON (kept verbatim in the output config).
    config: Value,
    /// The config, typed.
    image_config: oci_spec::image::ImageConfiguration,
    /// The layer descriptors, verbatim.
    layers: Vec<Value>,
    /// What to scan.
    jobs: Vec<scan::LayerJob>,
}

impl InputImage {
    async fn resolve(input: &resolve::Endpoint) -> Result<Self, ApiError> {
        let resolved = resolve::resolve_input(input).await?;
        let bad = |what: &str, e: serde_json::Error| {
            ApiError::bad_request(format!("input image: {what}: {e}"))
        };
        let config: Value =
            serde_json::from_slice(&resolved.config).map_err(|e| bad("config", e))?;
        let image_config =
            serde_json::from_slice(&resolved.config).map_err(|e| bad("config", e))?;
        let manifest: Value =
            serde_json::from_slice(resolved.manifest.bytes()).map_err(|e| bad("manifest", e))?;
        let layers = manifest
            .get("layers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let jobs = scan::layer_jobs(&resolved.image_manifest);
        Ok(InputImage {
            resolved,
            config,
            image_config,
            layers,
            jobs,
        })
    }
}

/// Stage 3's result: the merged file index, the runtime image, and the input layers'
/// uploads still running.
struct Staged {
    index: FileIndex,
    runtime: runtime_reader::RuntimeImage,
    uploads: scan::PendingUploads,
    hits: usize,
}

/// Stage 3: scans every input layer once (cache first) while the layers are made present
/// in the output (mounted, or teed as they stream across registries) and the runtime image
/// is read (its layer reused in the output meanwhile); then merges the index.
async fn scan_and_stage(
    ends: &resolve::Endpoints,
    jobs: &[scan::LayerJob],
    env: &PipelineEnv,
) -> Result<Staged, ApiError> {
    let reused: Vec<push::Reused> = jobs
        .iter()
        .map(|j| push::Reused {
            digest: j.digest.clone(),
            size: j.size,
        })
        .collect();
    let read_rt = async {
        let t = Timer::start(env, Step::ReadRuntime);
        let rt = runtime_reader::read_runtime(&ends.runtime, env).await?;
        t.done();
        let layer = push::Reused {
            digest: rt.layer_digest.clone(),
            size: rt.layer_size,
        };
        push::reuse_blobs(
            &ends.runtime,
            errors::Side::Runtime,
            &ends.output,
            &[layer],
            env,
        )
        .await?;
        Ok(rt)
    };
    let input = (&ends.input.client, ends.input.repository());
    let (scanned, rt) = if ends.input.client.base_url() == ends.output.client.base_url() {
        // Mounts are cheap: copy (mount) while scanning.
        let (scanned, (), rt) = futures_util::future::try_join3(
            scan::scan_layers(input.0, input.1, jobs, None, env),
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
            scan::scan_layers(input.0, input.1, jobs, Some(tee), env),
            read_rt,
        )
        .await?;
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
    let index = FileIndex::from_layers_limited(scanned.summaries.iter(), &env.limits)
        .map_err(|e| ApiError::bad_request(format!("input image layers: {e}")))?;
    Ok(Staged {
        index,
        runtime: rt,
        uploads: scanned.uploads,
        hits,
    })
}

/// Stage 4's result: the enclave spec and the three manifests.
struct Rendered {
    spec: EnclaveSpec,
    sgx1: RenderedManifest,
    edmm: RenderedManifest,
    direct: String,
}

/// Stage 4: the enclave spec and the manifests (SGX1, EDMM, direct).
fn render(
    req: &ValidRequest,
    input: &InputImage,
    index: &FileIndex,
    rt: &runtime_reader::RuntimeImage,
    env: &PipelineEnv,
) -> Result<Rendered, ApiError> {
    if !req.certificates.is_empty() && rt.kiln_init_sha256.is_none() {
        return Err(errors::runtime(format!(
            "{}: {}",
            env.runtime_image,
            crate::gramine::init::NO_KILN_INIT
        )));
    }
    let spec = build_spec_with_manager(
        req,
        &input.image_config,
        index,
        &rt.descriptor,
        rt.kiln_init_sha256,
        env.manager_url.as_deref(),
    )?;
    let bad = |e: &dyn std::fmt::Display| ApiError::bad_request(e.to_string());
    let sgx1 = render_with_params(&spec, Variant::Sgx1).map_err(|e| bad(&e))?;
    let edmm = render_with_params(&spec, Variant::Edmm).map_err(|e| bad(&e))?;
    let direct = render_manifest(&spec, Variant::Direct).map_err(|e| bad(&e))?;
    Ok(Rendered {
        spec,
        sgx1,
        edmm,
        direct,
    })
}

/// What the signing stage ends with.
enum SignStage {
    /// Both SIGSTRUCTs and the build time they are dated by: the conversion goes on.
    Signed(Box<output::Signed>, config::BuildTime),
    /// `prepare` stops here with the payloads.
    Prepared(Box<two_step::Prepared>),
}

/// Stage 6: signs both enclaves with the request's signer, or hands the bodies to the
/// two-step mode (prepare stops; complete checks the external signatures).
#[allow(clippy::too_many_arguments)]
async fn sign_stage(
    mode: &two_step::Mode<'_>,
    signer: Option<Arc<dyn Signer>>,
    request: &ConvertRequest,
    input: &InputImage,
    rt: &runtime_reader::RuntimeImage,
    [m1, m2]: [&GramineMeasurement; 2],
    env: &PipelineEnv,
    uploads: &mut scan::PendingUploads,
) -> Result<SignStage, ApiError> {
    let chosen = config::BuildTime::choose(env.source_date_epoch, &input.config);
    let time = mode.build_time(chosen);
    let date = time.sigstruct_date()?;
    let (sgx1, edmm) = match (mode, signer) {
        (two_step::Mode::Convert, Some(signer)) => sign_both(m1, m2, date, signer.as_ref()).await?,
        _ => {
            // What `prepare` returns must not depend on uploads still running.
            std::mem::take(uploads).finish().await?;
            let facts = two_step::Facts {
                request,
                input_digest: input.resolved.manifest.digest().to_string(),
                runtime_digest: rt.manifest_digest.clone(),
                time,
                sgx1: gramine_sigstruct_body(m1.mrenclave, &m1.params, date),
                edmm: gramine_sigstruct_body(m2.mrenclave, &m2.params, date),
            };
            match mode.sign(facts)? {
                two_step::Signed::Prepared(p) => return Ok(SignStage::Prepared(p)),
                two_step::Signed::Sigstructs(s1, s2) => (*s1, *s2),
            }
        }
    };
    let signed = output::Signed {
        sgx1,
        edmm,
        mrenclave: m1.mrenclave,
        mrenclave2: m2.mrenclave,
    };
    Ok(SignStage::Signed(Box::new(signed), time))
}

/// Signs both enclaves with the request's signer; a remote signer's session ends here,
/// whatever happened.
async fn sign_both(
    m1: &GramineMeasurement,
    m2: &GramineMeasurement,
    date: SigstructDate,
    signer: &dyn Signer,
) -> Result<(Sigstruct, Sigstruct), ApiError> {
    let signed = match sign_one(m1, date, signer, "SGX1").await {
        Ok(s1) => sign_one(m2, date, signer, "EDMM").await.map(|s2| (s1, s2)),
        Err(e) => Err(e),
    };
    signer.finish().await;
    signed
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

    #[kiln_macros::async_trait]
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
