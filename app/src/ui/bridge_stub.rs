//! TEMPORARY stand-in for the browser runtime's job API (s2-browser adds it to
//! `crate::engine_bridge`); the UI codes against this shape until that lands. Every job
//! fails at once with a clear reason.

#![allow(dead_code)] // a stand-in: parts are used only once the real API lands

use kiln_engine::api::{AuthConfig, ConvertRequest, ConvertResponse};
use kiln_engine::verify::VerifyReport;

/// Which key signs an in-browser conversion.
pub enum KeyChoice {
    /// A WebCrypto key stored in IndexedDB, by id.
    Stored {
        /// Key id.
        id: String,
    },
    /// A sealed imported key, by id, with its passphrase.
    Sealed {
        /// Key id.
        id: String,
        /// Passphrase.
        passphrase: zeroize::Zeroizing<String>,
    },
    /// A PEM private key held in this page's memory.
    Pem(zeroize::Zeroizing<String>),
}

/// What a [`ProgressView`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressKind {
    /// A step began.
    StepStarted,
    /// A step ended.
    StepDone,
    /// A layer scan began.
    LayerStarted,
    /// Bytes of a layer fetched.
    LayerBytes,
    /// A layer scanned.
    LayerDone,
    /// A blob is in the output repository.
    Blob,
}

/// One progress event, as the UI shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressView {
    /// What happened.
    pub kind: ProgressKind,
    /// Step name.
    pub step: Option<String>,
    /// Seconds the step took.
    pub seconds: Option<i64>,
    /// Short layer digest.
    pub layer: Option<String>,
    /// Layer position.
    pub layer_index: Option<usize>,
    /// Bytes so far.
    pub bytes_done: Option<u64>,
    /// Size.
    pub bytes_total: Option<u64>,
    /// Files.
    pub files: Option<u64>,
    /// From the cache.
    pub cached: Option<bool>,
    /// Bytes per second.
    pub rate: Option<f64>,
    /// How a blob got there.
    pub how: Option<String>,
}

/// What a job reports.
pub enum JobEvent {
    /// Progress.
    Progress(ProgressView),
    /// A conversion finished.
    Converted(ConvertResponse),
    /// A verification finished.
    Verified(VerifyReport),
    /// The job failed.
    Failed {
        /// API error type.
        error_type: String,
        /// Why.
        reason: String,
    },
}

/// A running job.
pub struct JobHandle;

impl JobHandle {
    /// Stops the job.
    pub fn cancel(&self) {}
}

/// Starts a conversion.
pub fn start_convert(
    _req: ConvertRequest,
    _key: KeyChoice,
    on_event: impl Fn(JobEvent) + 'static,
) -> Result<JobHandle, String> {
    on_event(JobEvent::Failed {
        error_type: "Unavailable".into(),
        reason: "the browser runtime is not built in yet".into(),
    });
    Ok(JobHandle)
}

/// Starts a verification.
pub fn start_verify(
    _image: String,
    _auth: Option<AuthConfig>,
    _expect_mrenclave: Option<String>,
    _expect_mrsigner: Option<String>,
    on_event: impl Fn(JobEvent) + 'static,
) -> Result<JobHandle, String> {
    on_event(JobEvent::Failed {
        error_type: "Unavailable".into(),
        reason: "the browser runtime is not built in yet".into(),
    });
    Ok(JobHandle)
}

/// Layer cache entries and bytes.
pub async fn layer_cache_usage() -> Result<(u64, u64), String> {
    Ok((0, 0))
}

/// Empties the layer cache.
pub async fn clear_layer_cache() -> Result<(), String> {
    Ok(())
}
