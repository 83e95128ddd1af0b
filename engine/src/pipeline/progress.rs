//! Progress reports: one event per step change and per layer (bytes, files), so a UI
//! can draw bars and a CLI can print lines.

use crate::util::MaybeSend;

/// The pipeline's steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Checking the request.
    Validate,
    /// Fetching the input image's manifest and config.
    ResolveInput,
    /// Streaming and scanning the input layers.
    ScanLayers,
    /// Reading the runtime image (descriptor and SGX PAL).
    ReadRuntime,
    /// Enclave spec and manifests.
    Manifests,
    /// MRENCLAVE of both enclaves.
    Measure,
    /// SIGSTRUCTs.
    Sign,
    /// The kiln layer, config and manifest.
    BuildImage,
    /// Blobs, manifest, then the tag.
    Push,
}

impl Step {
    /// A short name (`scan-layers`).
    pub fn name(self) -> &'static str {
        match self {
            Step::Validate => "validate",
            Step::ResolveInput => "resolve-input",
            Step::ScanLayers => "scan-layers",
            Step::ReadRuntime => "read-runtime",
            Step::Manifests => "manifests",
            Step::Measure => "measure",
            Step::Sign => "sign",
            Step::BuildImage => "build-image",
            Step::Push => "push",
        }
    }
}

/// How a blob reached the output repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    /// Already there.
    Present,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Streamed from the source registry into an upload.
    Copied,
    /// Uploaded from memory (kiln layer, config).
    Uploaded,
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step began.
    StepStarted(Step),
    /// A step ended.
    StepDone {
        /// Which.
        step: Step,
        /// Seconds it took (by the environment's clock).
        seconds: i64,
    },
    /// A layer scan began (`cached`: served from the cache, nothing fetched).
    LayerStarted {
        /// Layer digest.
        digest: String,
        /// Position among the input layers (0 = base).
        index: usize,
        /// Compressed size from the descriptor.
        size: u64,
    },
    /// Bytes of a layer fetched so far.
    LayerBytes {
        /// Layer digest.
        digest: String,
        /// Compressed bytes so far.
        bytes: u64,
    },
    /// A layer scanned.
    LayerDone {
        /// Layer digest.
        digest: String,
        /// Entries in the layer.
        files: u64,
        /// True when the summary came from the cache.
        cached: bool,
    },
    /// A blob is present in the output repository.
    Blob {
        /// Blob digest.
        digest: String,
        /// Size in bytes.
        size: u64,
        /// How.
        how: BlobPush,
    },
    /// A registry request failed transiently and is retried after `delay_ms`
    /// ([`crate::image::registry::retry`]).
    Retry {
        /// The operation (`GET blob repo@sha256:...`), without credentials.
        operation: String,
        /// The attempt that failed (1 = the first).
        attempt: u32,
        /// The wait before the next attempt, in milliseconds.
        delay_ms: u64,
        /// Why (`HTTP 503`, a transport error).
        reason: String,
    },
}

/// Receives progress events. Must be cheap: called on the pipeline's task.
pub trait Progress: MaybeSend {
    /// One event.
    fn event(&self, event: Event);
}

/// Discards events.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: Event) {}
}

/// Collects events (tests).
#[derive(Debug, Default)]
pub struct RecordingProgress {
    events: std::sync::Mutex<Vec<Event>>,
}

impl RecordingProgress {
    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Progress for RecordingProgress {
    fn event(&self, event: Event) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event);
        }
    }
}
