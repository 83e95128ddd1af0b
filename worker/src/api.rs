//! The edge API (wasm only): `POST /verify-image` and `POST /convert-image`, running the
//! engine in the worker over [`FetchTransport`] (guarded by the registry allowlist).

use std::sync::Arc;

use kiln_engine::image::reference::Reference;
use kiln_engine::image::registry::{Credentials, RegistryClient, RegistryConfig};
use kiln_engine::verify::{read_remote, verify, Expectations};
use serde::Deserialize;

use kiln_engine::image::registry::UploadMode;
use kiln_engine::pipeline::{convert, PipelineEnv};
use kiln_engine::sgx::signer::PrivateKeySigner;

use crate::auth::Caller;
use crate::config::Config;
use crate::error::{ApiError, ErrorType};
use crate::transport::FetchTransport;

/// Largest JSON request body accepted.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

fn bad_request(reason: impl Into<String>) -> ApiError {
    ApiError::bad_request(reason)
}

/// The engine's transport and registry configuration for this worker's policy.
pub fn engine_transport(cfg: &Config) -> (Arc<FetchTransport>, RegistryConfig) {
    let mut reg = RegistryConfig::new();
    for a in cfg.policy.plain_http_authorities() {
        reg = reg.with_insecure(&a);
    }
    let t = FetchTransport::new(cfg.policy.clone(), cfg.timeout_ms, cfg.upload_timeout_ms);
    (Arc::new(t), reg)
}

/// `authConfig` of a verify request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Auth {
    username: String,
    #[serde(default)]
    password: Option<String>,
}

/// The body of `POST /verify-image`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VerifyBody {
    image: String,
    #[serde(default)]
    auth_config: Option<Auth>,
    #[serde(default)]
    expect_mrenclave: Option<String>,
    #[serde(default)]
    expect_mrsigner: Option<String>,
}

/// Parses a JSON body: errors name the field and the kind, never quote a value.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    crate::body::parse_json(body)
}

/// `POST /verify-image`: reads the image from its registry and runs every check. Returns the
/// engine's `VerifyReport` as JSON.
pub async fn verify_image(cfg: &Config, body: &[u8]) -> Result<String, ApiError> {
    let req: VerifyBody = parse(body)?;
    let reference = Reference::parse(&req.image).map_err(|e| bad_request(format!("image: {e}")))?;
    cfg.policy
        .check_authority(reference.api_host())
        .map_err(|e| ApiError::from(e).in_field("image"))?;
    let (transport, reg) = engine_transport(cfg);
    let creds = req
        .auth_config
        .map(|a| Credentials::new(a.username, a.password.unwrap_or_default()));
    let client = RegistryClient::for_reference(transport, &reference, &reg, creds)
        .with_limits(cfg.image_limits)
        .with_retry(crate::timer::retry(cfg.retry));
    let contents = read_remote(&client, &reference, "image").await?;
    let report = verify(
        &contents,
        &Expectations {
            mrenclave: req.expect_mrenclave,
            mrsigner: req.expect_mrsigner,
        },
    );
    serde_json::to_string(&report).map_err(|e| ApiError::internal(e.to_string()))
}

/// How the worker uploads a blob: one request each (POST, then one PUT whose body streams
/// from the scan or the source registry; see [`crate::transport`]), so a conversion's
/// subrequests do not grow with the bytes it moves.
pub const UPLOAD_MODE: UploadMode = UploadMode::Monolithic;

/// The engine's environment for a conversion in this worker: its transport and registry
/// settings, the runtime image (`KILN_RUNTIME_IMAGE`), the edge image limits, the worker's
/// timer and clock, one streamed upload per blob ([`UPLOAD_MODE`]), a log line per registry
/// retry ([`crate::timer::RetryLog`]), the manager URL ([`Config::manager_url`]). No signer: the caller
/// adds one (`/convert-image`) or signs itself (the two-step).
pub fn engine_env(cfg: &Config) -> Result<PipelineEnv, ApiError> {
    let Some(runtime) = cfg.runtime_image.clone() else {
        return Err(ApiError::new(
            ErrorType::ConfigurationError,
            "this worker has no runtime image configured (KILN_RUNTIME_IMAGE)",
        ));
    };
    let (transport, reg) = engine_transport(cfg);
    let mut penv = PipelineEnv::new(transport, runtime);
    penv.registry = reg;
    penv.limits = cfg.image_limits;
    penv.timer = Some(Arc::new(crate::timer::WorkerTimer));
    penv.retry = cfg.retry;
    // Each registry retry logged (the edge API has no progress stream).
    penv.progress = Arc::new(crate::timer::RetryLog);
    penv.upload_mode = UPLOAD_MODE;
    penv.clock = Arc::new(kiln_engine::pipeline::env::JsClock);
    // MANAGER_CA certificates are issued by this worker (or KILN_MANAGER_URL) when it is a
    // MANAGER_CA: the URL is measured into init.json.
    penv.manager_url = cfg.manager_url.clone();
    Ok(penv)
}

/// The `signingKey.sdkms` signer factory: Fortanix DSM at `KILN_KMS_URL`, reached through
/// a [`FetchTransport`] that may reach only that origin (its own exemption, under the same
/// address guard). `None` when unset: the engine then refuses `signingKey.sdkms` (400).
// wasm32 runs on one thread; the engine's transports are `!Send` there.
#[allow(clippy::arc_with_non_send_sync)]
pub fn sdkms_factory(
    cfg: &Config,
) -> Result<Option<Arc<dyn kiln_engine::pipeline::SdkmsSignerFactory>>, ApiError> {
    let Some(url) = cfg.kms_endpoint.as_deref() else {
        return Ok(None);
    };
    let transport = FetchTransport::new(
        cfg.kms_policy.clone(),
        cfg.timeout_ms,
        cfg.upload_timeout_ms,
    );
    let factory = kiln_engine::kms::sdkms::SdkmsFactory::new(Arc::new(transport), url)
        .map_err(|e| ApiError::new(ErrorType::ConfigurationError, format!("KILN_KMS_URL: {e}")))?;
    Ok(Some(Arc::new(factory)))
}

/// Checks a conversion request against the allowlist (both images, by their registry's API
/// host: `busybox` and `docker.io/...` are checked as `registry-1.docker.io`) and the caller's output prefixes.
pub fn check_request(
    cfg: &Config,
    caller: &Caller,
    request: &kiln_engine::api::ConvertRequest,
) -> Result<(), ApiError> {
    cfg.check_mem_size(request.mem_size.as_deref())
        .map_err(bad_request)?;
    for (field, name) in [
        ("inputImageName", &request.input_image_name),
        ("outputImageName", &request.output_image_name),
    ] {
        let r = Reference::parse(name).map_err(|e| bad_request(format!("{field}: {e}")))?;
        // The host the engine connects to (registry-1.docker.io for docker.io names).
        cfg.policy
            .check_authority(r.api_host())
            .map_err(|e| ApiError::from(e).in_field(field))?;
        if field == "outputImageName" {
            caller.check_output(&format!("{}/{}", r.domain(), r.repository()))?;
        }
    }
    Ok(())
}

/// `POST /convert-image`: runs the engine's pipeline in the worker. `signingKey.default`
/// (or no `signingKey`) signs with the secret `KILN_DEFAULT_SIGNING_KEY`; the runtime image
/// is `KILN_RUNTIME_IMAGE`. The signed conversion is recorded as a pending approval
/// ([`crate::approvals::record_conversion`]).
pub async fn convert_image(
    cfg: &Config,
    env: &worker::Env,
    caller: &Caller,
    body: &[u8],
) -> Result<String, ApiError> {
    let request: kiln_engine::api::ConvertRequest = parse(body)?;
    check_request(cfg, caller, &request)?;
    let mut penv = engine_env(cfg)?;
    let pem = env
        .secret("KILN_DEFAULT_SIGNING_KEY")
        .map(|s| s.to_string())
        .or_else(|_| env.var("KILN_DEFAULT_SIGNING_KEY").map(|s| s.to_string()))
        .ok()
        .filter(|s| !s.trim().is_empty());
    let uses_default = matches!(
        request.signing_key,
        None | Some(kiln_engine::api::SigningKey::Default(_))
    );
    if uses_default {
        let Some(pem) = pem else {
            return Err(ApiError::new(
                ErrorType::ConfigurationError,
                "signingKey: no default signing key is configured on this worker \
                 (secret KILN_DEFAULT_SIGNING_KEY); pass signingKey.sdkms or configure one",
            ));
        };
        let signer = PrivateKeySigner::from_pem(&pem, None).map_err(|e| {
            ApiError::new(
                ErrorType::ConfigurationError,
                format!("the configured default signing key is unusable: {e}"),
            )
        })?;
        penv.default_signer = Some(Arc::new(signer));
    }
    penv.sdkms = sdkms_factory(cfg)?;
    let certificates = request.certificates.clone();
    let mut out = convert(request, &penv).await?;
    // Every conversion the service signs is recorded as pending for MANAGER_CA approval; a
    // failure to record is a warning in the response, never a silent loss.
    let warnings =
        crate::approvals::record_conversion(env, &out.response, certificates.as_deref()).await;
    out.response.warnings.extend(warnings);
    serde_json::to_string(&out.response).map_err(|e| ApiError::internal(e.to_string()))
}
