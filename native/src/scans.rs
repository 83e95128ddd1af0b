//! Native layer scans: several at once, each spawned on the tokio runtime's worker
//! threads, each with a threaded scanner (tar walk on its own thread).

use kiln_engine::api::ApiError;
use kiln_engine::image::scan::{LayerScanner, ScanError};
use kiln_engine::pipeline::env::{BoxFuture, ScanDone, ScanDriver};

/// Parallel threaded scans on the current tokio runtime (multi-threaded runtime
/// recommended).
#[derive(Debug, Clone, Copy)]
pub struct ThreadedScans {
    /// Layers scanned at once (at least 1).
    pub parallelism: usize,
}

impl Default for ThreadedScans {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ThreadedScans {
            parallelism: cores.clamp(2, 4),
        }
    }
}

impl ScanDriver for ThreadedScans {
    fn scanner(&self, digest: &str, media_type: &str) -> Result<LayerScanner, ScanError> {
        LayerScanner::threaded(digest, media_type)
    }

    fn parallelism(&self) -> usize {
        self.parallelism.max(1)
    }

    fn spawn(
        &self,
        scan: BoxFuture<Result<ScanDone, ApiError>>,
    ) -> BoxFuture<Result<ScanDone, ApiError>> {
        let handle = tokio::spawn(scan);
        Box::pin(async move {
            handle
                .await
                .map_err(|e| ApiError::internal(format!("layer scan task: {e}")))?
        })
    }
}
