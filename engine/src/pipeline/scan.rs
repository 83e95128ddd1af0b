//! Scanning the input layers: each one once, cache first. A miss streams the blob
//! (digest verified on the way) into a [`crate::image::scan::LayerScanner`], then
//! caches the summary by layer digest. Scans run through the environment's
//! [`super::env::ScanDriver`]: several on threads natively, one at a time on wasm.

use std::sync::Arc;

use futures_util::StreamExt;

use crate::api::ApiError;
use crate::image::cache::LayerCacheStore;
use crate::image::reference::Digest;
use crate::image::registry::RegistryClient;
use crate::image::scan::LayerSummary;

use super::env::{PipelineEnv, ScanDone, ScanDriver};
use super::errors::{self, Side};
use super::progress::{Event, Progress};

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

/// Progress is reported every this many bytes.
const PROGRESS_STEP: u64 = 4 * 1024 * 1024;

async fn scan_one(
    client: Arc<RegistryClient>,
    repository: String,
    job: LayerJob,
    cache: Arc<dyn LayerCacheStore>,
    progress: Arc<dyn Progress>,
    driver: Arc<dyn ScanDriver>,
) -> Result<ScanDone, ApiError> {
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
    let mut scanner = driver
        .scanner(&job.digest, &job.media_type)
        .map_err(|e| errors::scan(&e))?;
    let mut blob = client
        .get_blob(&repository, &digest, Some(job.size))
        .await
        .map_err(|e| errors::registry(Side::Input, &e))?;
    let mut reported = 0u64;
    while let Some(chunk) = blob.next().await {
        let chunk = chunk.map_err(|e| errors::registry(Side::Input, &e))?;
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

/// Scans every layer (in parallel as the driver allows), returning the summaries in
/// layer order and how many came from the cache.
pub async fn scan_layers(
    client: &Arc<RegistryClient>,
    repository: &str,
    jobs: &[LayerJob],
    env: &PipelineEnv,
) -> Result<(Vec<LayerSummary>, usize), ApiError> {
    let parallel = env.scans.parallelism().max(1);
    let futures: Vec<_> = jobs
        .iter()
        .map(|job| {
            env.scans.spawn(Box::pin(scan_one(
                client.clone(),
                repository.to_string(),
                job.clone(),
                env.cache.clone(),
                env.progress.clone(),
                env.scans.clone(),
            )))
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
