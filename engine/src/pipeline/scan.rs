//! Scanning the input layers: each one once, cache first. A miss streams the blob
//! (digest verified on the way) into a [`crate::image::scan::LayerScanner`], then
//! caches the summary by layer digest. Scans run through the environment's
//! [`super::env::ScanDriver`]: several on threads natively, one at a time on wasm.

use std::sync::Arc;

use futures_util::StreamExt;

use crate::api::ApiError;
use crate::image::cache::LayerCacheStore;
use crate::image::reference::Digest;
use crate::image::registry::{RegistryClient, UploadMode};
use crate::image::transport::{Body, TransportError, TransportErrorKind};

use super::progress::BlobPush;
use crate::image::scan::LayerSummary;

use super::env::{PipelineEnv, ScanDone, ScanDriver};
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
    } = ctx;
    progress.event(Event::LayerStarted {
        digest: job.digest.clone(),
        index: job.index,
        size: job.size,
    });
    if let Some(summary) = cached(cache.as_ref(), &job.digest).await {
        progress.event(Event::LayerDone {
            digest: job.digest.clone(),
            files: summary.entries.len() as u64,
            cached: true,
        });
        return Ok(ScanDone {
            summary,
            cached: true,
        });
    }
    let digest = Digest::parse(&job.digest)
        .map_err(|e| ApiError::bad_request(format!("input image: layer digest: {e}")))?;
    // The blob stream below checks the digest itself (and fails the scan on a mismatch),
    // so the scanner does not hash the compressed bytes a second time.
    let mut scanner = driver
        .scanner(&job.digest, &job.media_type, share)
        .map_err(|e| errors::scan(&e))?
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
    let (mut sender, upload_fut) = match upload {
        Some((tx, t, session, rx)) => {
            let d = digest.clone();
            let size = job.size;
            let fut = async move {
                let body = Body::Stream {
                    stream: Box::pin(rx),
                    length: Some(size),
                };
                t.client
                    .upload_session(session, &d, body, t.mode)
                    .await
                    .map_err(|e| errors::registry(Side::Output, &e))
            };
            (Some(tx), Some(fut))
        }
        None => (None, None),
    };
    let feed = async {
        let mut reported = 0u64;
        while let Some(chunk) = blob.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
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
                    // The upload ended early; its own error is reported below.
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
        Ok::<_, ApiError>(())
    };
    match upload_fut {
        Some(up) => {
            let (fed, uploaded) = futures_util::future::join(feed, up).await;
            fed?;
            uploaded?;
            progress.event(Event::Blob {
                digest: job.digest.clone(),
                size: job.size,
                how: BlobPush::Copied,
            });
        }
        None => feed.await?,
    }
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
    })
}

/// Scans every layer (in parallel as the driver allows), teeing fetched layers into
/// `tee` when given,, returning the summaries in
/// layer order and how many came from the cache.
pub async fn scan_layers(
    client: &Arc<RegistryClient>,
    repository: &str,
    jobs: &[LayerJob],
    tee: Option<Tee>,
    env: &PipelineEnv,
) -> Result<(Vec<LayerSummary>, usize), ApiError> {
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
    let mut out = Vec::with_capacity(results.len());
    let mut hits = 0;
    for r in results {
        let done = r?;
        if done.cached {
            hits += 1;
        }
        out.push(done.summary);
    }
    Ok((out, hits))
}
