//! The job inside the engine's Web Worker: reads `/kiln-config.json`, builds the
//! [`PipelineEnv`] (BrowserTransport through the proxy, IdbLayerCache, the page's key as
//! the signer of `signingKey.default`, JsClock, sequential scans, chunked uploads) and
//! runs the conversion or verification, posting [`WorkerMessage`]s to the page.
//!
//! Boot: the page's worker script stores the job (a JSON [`JobSpec`]) in
//! `globalThis.kilnJob` and initialises the app's wasm in the worker; the app's `main`
//! sees no `window` and calls [`start_from_global`].

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use js_sys::Reflect;
use kiln_engine::api::{parse_request, ApiError, ErrorType, SigningKey};
use kiln_engine::image::reference::Reference;
use kiln_engine::image::registry::{Credentials, RegistryClient, RegistryConfig, UploadMode};
use kiln_engine::pipeline::progress::{Event, Progress};
use kiln_engine::pipeline::{convert, PipelineEnv};
use kiln_engine::verify::{inspect, read_remote, verify, Expectations};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::clock::{now_ms, JsClock};
use super::idb_cache::IdbLayerCache;
use super::progress::ProgressTracker;
use super::protocol::{JobSpec, KeySpec, KilnConfig, WorkerMessage};
use super::transport::{BrowserTransport, IDLE_TIMEOUT_MS, UPLOAD_CHUNK_SIZE};
use crate::webcrypto::js_error;

/// The global the worker script stores the job in.
pub const JOB_GLOBAL: &str = "kilnJob";

/// Where messages go (the page, from the worker; a test's collector otherwise).
pub type Post = Rc<dyn Fn(&WorkerMessage)>;

/// Posts a message to the page (from a dedicated worker).
fn post_to_page(m: &WorkerMessage) {
    let Ok(json) = serde_json::to_string(m) else {
        return;
    };
    if let Ok(scope) = js_sys::global().dyn_into::<web_sys::DedicatedWorkerGlobalScope>() {
        let _ = scope.post_message(&JsValue::from_str(&json));
    }
}

/// Runs the job stored in `globalThis.kilnJob` (see the module docs), posting to the page.
pub fn start_from_global() {
    let job = Reflect::get(&js_sys::global(), &JsValue::from_str(JOB_GLOBAL))
        .ok()
        .and_then(|v| v.as_string());
    let _ = Reflect::delete_property(&js_sys::global(), &JsValue::from_str(JOB_GLOBAL));
    let post: Post = Rc::new(post_to_page);
    let Some(job) = job else {
        post(&WorkerMessage::failed(
            "Internal",
            "engine worker started without a job",
        ));
        return;
    };
    wasm_bindgen_futures::spawn_local(async move {
        let msg = match serde_json::from_str::<JobSpec>(&job) {
            Ok(spec) => run(spec, post.clone()).await,
            Err(e) => WorkerMessage::failed("Internal", format!("engine worker: bad job: {e}")),
        };
        log_wasm_memory();
        post(&msg);
    });
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = debug)]
    fn console_debug(s: &str);
}

/// The prefix of the console line that reports the worker's wasm memory at the end of a
/// job (`kiln-engine-worker wasm memory: N bytes`), for tests that hold a hostile image's
/// cost flat (tests/e2e-app/hostile.test.mjs). Linear memory never shrinks, so the figure
/// at the end is the job's peak.
pub const WASM_MEMORY_LOG: &str = "kiln-engine-worker wasm memory:";

fn log_wasm_memory() {
    let bytes = wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .ok()
        .and_then(|m| m.buffer().dyn_into::<js_sys::ArrayBuffer>().ok())
        .map(|b| b.byte_length());
    if let Some(n) = bytes {
        console_debug(&format!("{WASM_MEMORY_LOG} {n} bytes"));
    }
}

fn api_failed(e: &ApiError) -> WorkerMessage {
    WorkerMessage::failed(e.error_type.as_str(), e.reason.clone())
}

/// Runs one job to its terminal message; progress goes to `post` meanwhile.
pub async fn run(spec: JobSpec, post: Post) -> WorkerMessage {
    match spec {
        JobSpec::Convert {
            request,
            key,
            api_origin,
        } => run_convert(&request, &key, &api_origin, post).await,
        JobSpec::Verify {
            image,
            auth,
            expect_mrenclave,
            expect_mrsigner,
            api_origin,
        } => {
            let creds = auth.map(|a| Credentials::new(a.username, a.password.unwrap_or_default()));
            run_verify(
                &image,
                creds,
                Expectations {
                    mrenclave: expect_mrenclave,
                    mrsigner: expect_mrsigner,
                },
                &api_origin,
            )
            .await
        }
    }
}

/// Fetches `{api_origin}/kiln-config.json` (directly: it is the kiln worker's own route).
pub async fn fetch_config(api_origin: &str) -> Result<KilnConfig, String> {
    let url = format!("{}/kiln-config.json", api_origin.trim_end_matches('/'));
    let what = || format!("the kiln service's configuration ({url})");
    let resp = JsFuture::from(fetch_str(&url))
        .await
        .map_err(|e| format!("{}: {}", what(), js_error(&e)))?;
    let resp: web_sys::Response = resp
        .dyn_into()
        .map_err(|_| format!("{}: not a Response", what()))?;
    if !resp.ok() {
        return Err(format!("{}: HTTP {}", what(), resp.status()));
    }
    let text = JsFuture::from(resp.text().map_err(|e| js_error(&e))?)
        .await
        .map_err(|e| format!("{}: {}", what(), js_error(&e)))?;
    serde_json::from_str(&text.as_string().unwrap_or_default())
        .map_err(|e| format!("{}: {e}", what()))
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch)]
    fn fetch_str(url: &str) -> js_sys::Promise;
}

fn registry_config(cfg: &KilnConfig) -> RegistryConfig {
    cfg.plain_http_authorities()
        .iter()
        .fold(RegistryConfig::new(), |r, a| r.with_insecure(a))
}

/// The jobs' transport: through the config's proxy, with its idle timeout.
fn transport(cfg: &KilnConfig, api_origin: &str) -> Arc<BrowserTransport> {
    Arc::new(
        BrowserTransport::new(cfg.proxy_base(api_origin))
            .with_idle_timeout(cfg.idle_timeout_ms(IDLE_TIMEOUT_MS)),
    )
}

/// Posts throttled progress views.
struct PostProgress {
    tracker: RefCell<ProgressTracker>,
    post: Post,
}

impl Progress for PostProgress {
    fn event(&self, event: Event) {
        let view = match self.tracker.try_borrow_mut() {
            Ok(mut t) => t.view(&event, now_ms()),
            Err(_) => None,
        };
        if let Some(event) = view {
            (self.post)(&WorkerMessage::Progress { event });
        }
    }
}

// Single-threaded wasm: the progress sink holds an Rc and is never sent anywhere.
#[allow(clippy::arc_with_non_send_sync)]
async fn run_convert(request: &str, key: &KeySpec, api_origin: &str, post: Post) -> WorkerMessage {
    let request = match parse_request(request.as_bytes()) {
        Ok(r) => r,
        Err(e) => return api_failed(&e),
    };
    if matches!(request.signing_key, Some(SigningKey::Sdkms(_))) {
        return WorkerMessage::failed(
            ErrorType::BadRequest.as_str(),
            "signingKey.sdkms: SDKMS signing is not available in the browser; \
             the page's key signs (signingKey.default)",
        );
    }
    let cfg = match fetch_config(api_origin).await {
        Ok(c) => c,
        Err(e) => return WorkerMessage::failed("ConfigurationError", e),
    };
    let Some(runtime) = cfg.runtime_image.clone() else {
        return WorkerMessage::failed(
            "ConfigurationError",
            "the kiln service has no runtime image configured (KILN_RUNTIME_IMAGE)",
        );
    };
    let signer = match super::keys::signer(key).await {
        Ok(s) => s,
        Err(e) => {
            return WorkerMessage::failed(
                ErrorType::BadRequest.as_str(),
                format!("signingKey: {e}"),
            )
        }
    };
    let transport = transport(&cfg, api_origin);
    let mut env = PipelineEnv::new(transport, runtime);
    env.registry = registry_config(&cfg);
    env.limits = cfg.limits;
    env.cache = Arc::new(IdbLayerCache::new());
    env.default_signer = Some(signer);
    env.clock = Arc::new(JsClock);
    env.timer = Some(Arc::new(crate::browser::clock::JsTimer));
    env.retry = cfg.retry;
    env.progress = Arc::new(PostProgress {
        tracker: RefCell::new(ProgressTracker::new().with_tries(cfg.retry.max_tries)),
        post,
    });
    env.upload_mode = UploadMode::Chunked {
        chunk_size: UPLOAD_CHUNK_SIZE,
    };
    match convert(request, &env).await {
        Ok(out) => WorkerMessage::Converted {
            response: out.response,
        },
        Err(e) => api_failed(&e),
    }
}

async fn run_verify(
    image: &str,
    creds: Option<Credentials>,
    expect: Expectations,
    api_origin: &str,
) -> WorkerMessage {
    let reference = match Reference::parse(image) {
        Ok(r) => r,
        Err(e) => {
            return WorkerMessage::failed(ErrorType::BadRequest.as_str(), format!("image: {e}"))
        }
    };
    let cfg = match fetch_config(api_origin).await {
        Ok(c) => c,
        Err(e) => return WorkerMessage::failed("ConfigurationError", e),
    };
    let transport = transport(&cfg, api_origin);
    let client =
        RegistryClient::for_reference(transport, &reference, &registry_config(&cfg), creds)
            .with_limits(cfg.limits)
            .with_retry(crate::browser::clock::retry(cfg.retry));
    match read_remote(&client, &reference, "image").await {
        Ok(contents) => WorkerMessage::Verified {
            report: verify(&contents, &expect),
            inspect: Some(Box::new(inspect(&contents))),
        },
        Err(e) => api_failed(&e),
    }
}
