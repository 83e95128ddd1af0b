//! Scanning the input layers: each one once, cache first. A miss streams the blob
//! (digest verified on the way) into a [`crate::image::scan::LayerScanner`], then
//! caches the summary by layer digest. Scans run through the environment's
//! [`super::env::ScanDriver`]: several on threads natively, one at a time on wasm.

use std::sync::Arc;

use futures_util::StreamExt;

use crate::api::ApiError;
use crate::image::cache::LayerCacheStore;
use crate::image::limits::{ImageLimits, LimitExceeded};
use crate::image::reference::Digest;
use crate::image::registry::retry::restartable;
use crate::image::registry::{BlobCopy, RegistryClient, RegistryError, UploadMode};
use crate::image::transport::{Body, TransportError, TransportErrorKind};

use super::progress::BlobPush;
use crate::image::scan::LayerSummary;

use super::env::{BoxFuture, PipelineEnv, ScanDone, ScanDriver};
use super::errors::{self, Side};
use super::progress::{Event, Progress};

/// Where a scanned layer's bytes also go: the output repository of another registry,
/// so each layer crosses the network once (fetched, then scanned and uploaded together).
#[derive(Debug, Clone)]
pub struct Tee {
    /// The output registry.
    pub client: Arc<RegistryClient>,
    /// The output repository.
    pub repository: String,
    /// How to upload.
    pub mode: UploadMode,
}

/// One layer of the input image, from its manifest descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerJob {
    /// Position (0 = base).
    pub index: usize,
    /// Blob digest.
    pub digest: String,
    /// Descriptor media type.
    pub media_type: String,
    /// Descriptor size.
    pub size: u64,
}

/// The input layers of a manifest.
pub fn layer_jobs(manifest: &oci_spec::image::ImageManifest) -> Vec<LayerJob> {
    manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(index, d)| LayerJob {
            index,
            digest: d.digest().to_string(),
            media_type: d.media_type().to_string(),
            size: d.size(),
        })
        .collect()
}

/// Looks a layer up in the cache; a broken entry or store counts as a miss.
async fn cached(cache: &dyn LayerCacheStore, digest: &str) -> Option<LayerSummary> {
    let bytes = cache.get_bytes(digest).await.ok()??;
    LayerSummary::from_bytes(&bytes)
        .ok()
        .filter(|s| s.digest == digest)
}

type Chunk = Result<bytes::Bytes, TransportError>;

/// Sends one chunk, waiting for room (back-pressure from the upload).
async fn send(
    tx: &mut futures_channel::mpsc::Sender<Chunk>,
    item: Chunk,
) -> Result<(), futures_channel::mpsc::SendError> {
    futures_util::future::poll_fn(|cx| tx.poll_ready(cx)).await?;
    tx.start_send(item)
}

/// Progress is reported every this many bytes.
const PROGRESS_STEP: u64 = 4 * 1024 * 1024;

/// What every layer scan shares: where summaries are cached, where progress goes, how
/// scanners are made.
#[derive(Clone)]
struct ScanContext {
    cache: Arc<dyn LayerCacheStore>,
    progress: Arc<dyn Progress>,
    driver: Arc<dyn ScanDriver>,
    limits: ImageLimits,
}

async fn scan_one(
    client: Arc<RegistryClient>,
    repository: String,
    job: LayerJob,
    ctx: ScanContext,
    tee: Option<Tee>,
    share: f64,
) -> Result<ScanDone, ApiError> {
    let ScanContext {
        cache,
        progress,
        driver,
        limits,
    } = ctx;
    progress.event(Event::LayerStarted {
        digest: job.digest.clone(),
        index: job.index,
        size: job.size,
    });
    if let Some(summary) = cached(cache.as_ref(), &job.digest).await {
        // Scanned earlier, perhaps under other limits: the per-layer ones still apply.
        check_cached(&summary, &limits)?;
        progress.event(Event::LayerDone {
            digest: job.digest.clone(),
            files: summary.entries.len() as u64,
            cached: true,
        });
        return Ok(ScanDone {
            summary,
            cached: true,
            upload: None,
        });
    }
    let digest = Digest::parse(&job.digest)
        .map_err(|e| ApiError::bad_request(format!("input image: layer digest: {e}")))?;
    // The blob stream below checks the digest itself (and fails the scan on a mismatch),
    // so the scanner does not hash the compressed bytes a second time.
    let mut scanner = driver
        .scanner(&job.digest, &job.media_type, share)
        .map_err(|e| errors::scan(&e))?
        .with_limits(limits)
        .source_verified();
    // Tee into the output registry unless the blob is there already.
    let mut upload = None;
    if let Some(t) = &tee {
        let present = t
            .client
            .blob_exists(&t.repository, &digest)
            .await
            .map_err(|e| errors::registry(Side::Output, &e))?;
        if present.is_none() {
            let session = t
                .client
                .start_upload(&t.repository)
                .await
                .map_err(|e| errors::registry(Side::Output, &e))?;
            let (tx, rx) = futures_channel::mpsc::channel::<Chunk>(4);
            upload = Some((tx, t.clone(), session, rx));
        }
    }
    let mut blob = client
        .get_blob(&repository, &digest, Some(job.size))
        .await
        .map_err(|e| errors::registry(Side::Input, &e))?;
    // With retries, a teed upload that fails on the output's side starts over as a
    // copy (the blob fetched again, a new session) while the scan goes on without it.
    let restart_tee = tee.as_ref().is_some_and(|t| t.client.retry().is_some());
    let source_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (mut sender, upload_fut) = match upload {
        Some((tx, t, session, rx)) => {
            let d = digest.clone();
            let size = job.size;
            let (src, src_repo) = (client.clone(), repository.clone());
            let source_failed = source_failed.clone();
            let fut: BoxFuture<Result<(), ApiError>> = Box::pin(async move {
                let body = Body::Stream {
                    stream: Box::pin(rx),
                    length: Some(size),
                };
                let e = match t.client.upload_session(session, &d, body, t.mode).await {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                };
                let source_ok = !source_failed.load(std::sync::atomic::Ordering::SeqCst);
                if !(restart_tee && source_ok && restartable(&e)) {
                    return Err(errors::registry(Side::Output, &e));
                }
                let copy = BlobCopy {
                    src: &src,
                    src_repo: &src_repo,
                    dst: &t.client,
                    dst_repo: &t.repository,
                    digest: &d,
                    size: Some(size),
                    mode: t.mode,
                };
                copy.restart_upload(e).await.map(|_| ()).map_err(|e| {
                    let side = match &e {
                        RegistryError::ContentMismatch { .. } => Side::Input,
                        RegistryError::Transport { registry, .. } if registry == src.host() => {
                            Side::Input
                        }
                        _ => Side::Output,
                    };
                    errors::registry(side, &e)
                })
            });
            (Some(tx), Some(fut))
        }
        None => (None, None),
    };
    // Feeds the scanner (and the upload); true when the upload stopped taking bytes,
    // and then at once: the conversion fails with the upload's error, so scanning the
    // rest of the layer would be wasted.
    let feed = async {
        let mut reported = 0u64;
        while let Some(chunk) = blob.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    source_failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    if let Some(tx) = sender.as_mut() {
                        let _ = send(
                            tx,
                            Err(TransportError::new(
                                TransportErrorKind::Io,
                                "source blob failed",
                            )),
                        )
                        .await;
                    }
                    return Err(errors::registry(Side::Input, &e));
                }
            };
            if let Some(tx) = sender.as_mut() {
                if send(tx, Ok(chunk.clone())).await.is_err() {
                    if !restart_tee {
                        // The upload ended early; its own error is reported below.
                        return Ok(true);
                    }
                    // The upload failed and starts over from the source by itself:
                    // the scan goes on without the tee.
                    sender = None;
                }
            }
            scanner.feed(&chunk).map_err(|e| errors::scan(&e))?;
            let fed = scanner.bytes_fed();
            if fed - reported >= PROGRESS_STEP {
                reported = fed;
                progress.event(Event::LayerBytes {
                    digest: job.digest.clone(),
                    bytes: fed,
                });
            }
        }
        // End of body for the upload.
        drop(sender.take());
        Ok::<_, ApiError>(false)
    };
    let copied = {
        let (progress, digest, size) = (progress.clone(), job.digest.clone(), job.size);
        move || {
            progress.event(Event::Blob {
                digest,
                size,
                how: BlobPush::Copied,
            })
        }
    };
    // Natively the upload runs on a task of its own (`Ok`), so the scan ends when its
    // bytes are read, not when the registry has stored (and synced) the blob; on wasm
    // (`Err`) it is polled beside the scan.
    let upload = match upload_fut.map(|up| driver.run_in_background(up)) {
        Some(Err(up)) => {
            let (fed, uploaded) = futures_util::future::join(feed, up).await;
            let upload_stopped = fed?;
            uploaded?;
            if upload_stopped {
                return Err(upload_cut_short(tee.as_ref(), &job.digest));
            }
            copied();
            None
        }
        Some(Ok(handle)) => {
            if feed.await? {
                // The upload failed before the blob was sent: report its error now.
                handle.await?;
                return Err(upload_cut_short(tee.as_ref(), &job.digest));
            }
            let pending: BoxFuture<Result<(), ApiError>> = Box::pin(async move {
                handle.await?;
                copied();
                Ok(())
            });
            Some(pending)
        }
        None => {
            feed.await?;
            None
        }
    };
    let fed = scanner.bytes_fed();
    let summary = scanner.finish().map_err(|e| errors::scan(&e))?;
    progress.event(Event::LayerBytes {
        digest: job.digest.clone(),
        bytes: fed,
    });
    // A cache that cannot store is not a reason to fail the conversion.
    let _ = cache.put_bytes(&summary.digest, summary.to_bytes()).await;
    progress.event(Event::LayerDone {
        digest: job.digest.clone(),
        files: summary.entries.len() as u64,
        cached: false,
    });
    Ok(ScanDone {
        summary,
        cached: false,
        upload,
    })
}

/// Applies the per-layer limits to a summary from the cache.
fn check_cached(summary: &LayerSummary, limits: &ImageLimits) -> Result<(), ApiError> {
    let entries = summary.entries.len() as u64;
    ImageLimits::check("layer-entries", limits.layer_entries, entries, || {
        format!("{entries} entries (cached summary)")
    })
    .and_then(|()| {
        ImageLimits::check(
            "layer-bytes",
            limits.layer_bytes,
            summary.uncompressed_size,
            || {
                format!(
                    "{} uncompressed bytes (cached summary)",
                    summary.uncompressed_size
                )
            },
        )
    })
    .map_err(|hit| errors::limit(&summary.digest, &hit))
}

/// The error for an upload that stopped taking bytes but did not fail (it should not
/// happen: an upload only ends early on an error, which is reported instead).
fn upload_cut_short(tee: Option<&Tee>, digest: &str) -> ApiError {
    errors::registry(
        Side::Output,
        &RegistryError::InvalidResponse {
            registry: tee.map(|t| t.client.host().to_string()).unwrap_or_default(),
            operation: format!("upload of {digest}"),
            detail: "the upload ended before the blob was sent".to_string(),
        },
    )
}

/// The input layers, scanned: summaries in layer order, how many came from the cache,
/// and the uploads still running.
#[derive(Debug, Default)]
pub struct ScannedLayers {
    /// One summary per layer, base first.
    pub summaries: Vec<LayerSummary>,
    /// Per layer: whether its summary came from the cache (then its blob was neither
    /// fetched nor teed).
    pub cached: Vec<bool>,
    /// Teed uploads still storing their blobs.
    pub uploads: PendingUploads,
}

impl ScannedLayers {
    /// How many summaries came from the cache.
    pub fn hits(&self) -> usize {
        self.cached.iter().filter(|c| **c).count()
    }
}

/// Teed layer uploads that outlived their scans ([`ScanDriver::run_in_background`]).
/// Dropping them unfinished stops them; the manifest is pushed only after
/// [`PendingUploads::finish`].
#[derive(Default)]
pub struct PendingUploads(Vec<BoxFuture<Result<(), ApiError>>>);

impl std::fmt::Debug for PendingUploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PendingUploads({})", self.0.len())
    }
}

impl PendingUploads {
    /// Waits for every upload; the first failure is the result.
    pub async fn finish(self) -> Result<(), ApiError> {
        futures_util::future::try_join_all(self.0).await.map(|_| ())
    }
}

/// Scans every layer (in parallel as the driver allows), teeing fetched layers into
/// `tee` when given.
pub async fn scan_layers(
    client: &Arc<RegistryClient>,
    repository: &str,
    jobs: &[LayerJob],
    tee: Option<Tee>,
    env: &PipelineEnv,
) -> Result<ScannedLayers, ApiError> {
    let parallel = env.scans.parallelism().max(1);
    let total = jobs.iter().map(|j| j.size).sum::<u64>().max(1);
    // Each scan is spawned when `buffered` first polls it, so at most `parallel` run at
    // once.
    let futures: Vec<_> = jobs
        .iter()
        .map(|job| {
            let scan = scan_one(
                client.clone(),
                repository.to_string(),
                job.clone(),
                ScanContext {
                    cache: env.cache.clone(),
                    progress: env.progress.clone(),
                    driver: env.scans.clone(),
                    limits: env.limits,
                },
                tee.clone(),
                job.size as f64 / total as f64,
            );
            let driver = env.scans.clone();
            async move { driver.spawn(Box::pin(scan)).await }
        })
        .collect();
    let results: Vec<Result<ScanDone, ApiError>> = futures_util::stream::iter(futures)
        .buffered(parallel)
        .collect()
        .await;
    let mut out = ScannedLayers::default();
    let mut image_bytes = 0u64;
    for r in results {
        let done = r?;
        image_bytes = image_bytes.saturating_add(done.summary.uncompressed_size);
        let max = env.limits.image_bytes;
        if image_bytes > max {
            let hit = LimitExceeded::new(
                "image-bytes",
                max,
                format!("more than {max} uncompressed bytes in all layers"),
            );
            return Err(errors::limit(&done.summary.digest, &hit));
        }
        out.cached.push(done.cached);
        out.summaries.push(done.summary);
        out.uploads.0.extend(done.upload);
    }
    Ok(out)
}
