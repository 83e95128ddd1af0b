//! What a conversion needs from its host: HTTP, storage, keys, a clock, progress, and a
//! way to run layer scans in parallel. Everything is a trait object so the app (wasm,
//! browser), the worker (wasm, edge) and the CLI (native) share one pipeline.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::api::ApiError;
use crate::image::cache::{CacheError, LayerCacheStore};
use crate::image::limits::ImageLimits;
use crate::image::registry::{Credentials, RegistryConfig, RetryPolicy, Timer, UploadMode};
use crate::image::scan::{LayerScanner, ScanError};
use crate::image::transport::Transport;
use crate::sgx::signer::Signer;
use crate::util::MaybeSend;

use super::progress::{NoProgress, Progress};

/// A boxed future: `Send` natively, not on wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
/// A boxed future: `Send` natively, not on wasm32.
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + 'static>>;

/// The current time (for progress timing; never for anything measured or signed).
pub trait Clock: MaybeSend {
    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> i64;
}

/// A clock that always says 0 (tests, or hosts without a clock).
#[derive(Debug, Clone, Copy, Default)]
pub struct ZeroClock;

impl Clock for ZeroClock {
    fn now_unix(&self) -> i64 {
        0
    }
}

/// Wall-clock seconds from JavaScript's `Date.now()`: the clock of the wasm hosts (the
/// worker and the web app).
#[cfg(target_arch = "wasm32")]
#[derive(Debug, Clone, Copy, Default)]
pub struct JsClock;

#[cfg(target_arch = "wasm32")]
impl Clock for JsClock {
    fn now_unix(&self) -> i64 {
        (js_sys::Date::now() / 1000.0) as i64
    }
}

/// Builds a signer for `signingKey.sdkms` (a remote KMS). Not configured by default:
/// then a request naming `sdkms` is refused with a 400 that says so.
pub trait SdkmsSignerFactory: MaybeSend {
    /// A signer for the key `name`, authenticated with `api_key`. The error must not
    /// quote the API key.
    fn signer(&self, name: &str, api_key: &str) -> Result<Arc<dyn Signer>, ApiError>;
}

/// How layer scans run. Natively: scanners that walk the tar on a second thread
/// ([`LayerScanner::threaded`]) and scans spawned on the runtime's worker threads,
/// several at once; on wasm: one at a time, on the caller's task.
pub trait ScanDriver: MaybeSend {
    /// A scanner for one layer blob that holds `share` (0–1) of the compressed bytes
    /// of the layers being scanned (a native driver gives a big share a second thread).
    fn scanner(
        &self,
        digest: &str,
        media_type: &str,
        share: f64,
    ) -> Result<LayerScanner, ScanError> {
        let _ = share;
        LayerScanner::new(digest, media_type)
    }

    /// How many layers are scanned at once (at least 1).
    fn parallelism(&self) -> usize {
        1
    }

    /// Runs one layer's scan. The default polls it in place; a native driver spawns it
    /// (e.g. `tokio::spawn`) so that scans use several cores.
    fn spawn(
        &self,
        scan: BoxFuture<Result<ScanDone, ApiError>>,
    ) -> BoxFuture<Result<ScanDone, ApiError>> {
        scan
    }

    /// Starts `task` so that it makes progress without being polled (natively
    /// `tokio::spawn`) and returns a future of its result, which stops the task when
    /// dropped unfinished; or hands `task` back (`Err`) when the host cannot (the
    /// default, and wasm: one thread), and the caller then polls it beside its own work.
    ///
    /// The pipeline uses it for a teed layer's upload, so that the scan's result is
    /// ready as soon as its bytes are read, while the registry is still storing the
    /// blob: manifests, measurement and signing run meanwhile, and the manifest is
    /// pushed only after every upload ended well.
    fn run_in_background(&self, task: BoxFuture<Result<(), ApiError>>) -> Background {
        Err(task)
    }
}

/// What [`ScanDriver::run_in_background`] returns: `Ok` a future of the started task's
/// result, or `Err` the task itself, not started.
pub type Background = Result<BoxFuture<Result<(), ApiError>>, BoxFuture<Result<(), ApiError>>>;

/// The result of one layer scan, as handed back through [`ScanDriver::spawn`].
pub struct ScanDone {
    /// The layer's summary.
    pub summary: crate::image::scan::LayerSummary,
    /// True when it came from the cache (no blob was fetched).
    pub cached: bool,
    /// The layer's upload to the output registry, when it was teed from the scan and
    /// is still running in the background ([`ScanDriver::run_in_background`]).
    pub upload: Option<BoxFuture<Result<(), ApiError>>>,
}

impl std::fmt::Debug for ScanDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanDone")
            .field("summary", &self.summary)
            .field("cached", &self.cached)
            .field("upload", &self.upload.as_ref().map(|_| "running"))
            .finish()
    }
}

/// One layer at a time, no threads (wasm, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct SequentialScans;

impl ScanDriver for SequentialScans {}

/// A layer cache that remembers nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCache;

#[kiln_macros::async_trait]
impl LayerCacheStore for NoCache {
    async fn get_bytes(&self, _digest: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(None)
    }
    async fn put_bytes(&self, _digest: &str, _bytes: Vec<u8>) -> Result<(), CacheError> {
        Ok(())
    }
}

/// Credentials for registries the request does not name (the runtime image's), by
/// registry host as written in references.
pub type ExtraCredentials = HashMap<String, Credentials>;

/// Everything the host provides to [`super::convert`].
pub struct PipelineEnv {
    /// HTTP.
    pub transport: Arc<dyn Transport>,
    /// Which registries are plain HTTP.
    pub registry: RegistryConfig,
    /// Layer summaries (and runtime PALs) by layer digest.
    pub cache: Arc<dyn LayerCacheStore>,
    /// The signer for `signingKey: {default: {}}` (the service's key). `None`: refused.
    pub default_signer: Option<Arc<dyn Signer>>,
    /// The hook for `signingKey: {sdkms: ...}`. `None`: refused as not configured.
    pub sdkms: Option<Arc<dyn SdkmsSignerFactory>>,
    /// A clock, for progress timing only.
    pub clock: Arc<dyn Clock>,
    /// The kiln runtime image (`registry/repo:tag` or `@digest`).
    pub runtime_image: String,
    /// Pull credentials for the runtime image's registry, if it needs some and the
    /// request's credentials do not apply (see [`super::resolve`]).
    pub runtime_credentials: Option<Credentials>,
    /// Where progress goes.
    pub progress: Arc<dyn Progress>,
    /// How layer scans run.
    pub scans: Arc<dyn ScanDriver>,
    /// How blobs are uploaded.
    pub upload_mode: UploadMode,
    /// `SOURCE_DATE_EPOCH`, if the host has it: the SIGSTRUCT date and every mtime.
    pub source_date_epoch: Option<i64>,
    /// Whether the host looked `externalPackages` up before calling the pipeline
    /// (natively the CLI stages the runtime image from that directory and sets
    /// [`Self::runtime_image`]). `false` (browser, worker): a request naming
    /// `externalPackages` is refused, since there is no filesystem to look in.
    pub external_packages_staged: bool,
    /// What the input image may make the pipeline read and hold (see
    /// [`ImageLimits`]; the CLI's defaults unless the host sets others, e.g. the
    /// Worker's [`ImageLimits::edge`]). A hit is a 400 naming the layer and the limit,
    /// before anything is tagged.
    pub limits: ImageLimits,
    /// The host's timer, for waiting between retries of failed registry requests.
    /// `None` (the default): nothing is retried.
    pub timer: Option<Arc<dyn Timer>>,
    /// How registry requests are retried when [`Self::timer`] is set (idempotent
    /// `GET`/`HEAD` only; each retry is a [`super::progress::Event::Retry`]).
    pub retry: RetryPolicy,
    /// The MANAGER_CA manager's base URL (CLI `--manager-url`, worker `KILN_MANAGER_URL`):
    /// when set, every `certificates[]` entry with issuer `MANAGER_CA` gets it in
    /// `init.json` (measured), and kiln-init has that certificate issued by
    /// `POST {url}/certificates/issue` at start-up instead of self-signing it
    /// ([`crate::gramine::init`]). Checked before anything is fetched
    /// ([`crate::gramine::init::check_manager_url`]: absolute http(s), no userinfo,
    /// query or fragment). `None` (the default): self-signed, `init.json` unchanged.
    pub manager_url: Option<String>,
    /// Runtime PALs already read this process, by runtime layer digest.
    pub(crate) pal_memo: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

impl std::fmt::Debug for PipelineEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineEnv")
            .field("registry", &self.registry)
            .field("runtime_image", &self.runtime_image)
            .field("upload_mode", &self.upload_mode)
            .field("source_date_epoch", &self.source_date_epoch)
            .field("manager_url", &self.manager_url)
            .finish_non_exhaustive()
    }
}

impl PipelineEnv {
    /// An environment with the defaults: no cache, no default key, no sdkms, a zero
    /// clock, no progress, sequential scans, monolithic uploads, no
    /// `SOURCE_DATE_EPOCH`. Set the fields you need.
    pub fn new(transport: Arc<dyn Transport>, runtime_image: impl Into<String>) -> Self {
        PipelineEnv {
            transport,
            registry: RegistryConfig::new(),
            cache: Arc::new(NoCache),
            default_signer: None,
            sdkms: None,
            clock: Arc::new(ZeroClock),
            runtime_image: runtime_image.into(),
            runtime_credentials: None,
            progress: Arc::new(NoProgress),
            scans: Arc::new(SequentialScans),
            upload_mode: UploadMode::Monolithic,
            source_date_epoch: None,
            external_packages_staged: false,
            limits: ImageLimits::default(),
            timer: None,
            retry: RetryPolicy::default(),
            manager_url: None,
            pal_memo: Mutex::new(HashMap::new()),
        }
    }
}
