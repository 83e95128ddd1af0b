//! The engine's [`Timer`] in the Worker: `setTimeout` through `worker::Delay`, so registry
//! requests are retried at the edge as in the CLI (the engine owns the policy:
//! `kiln_engine::image::registry::retry`).

use std::sync::Arc;
use std::time::Duration;

use kiln_engine::image::registry::{Retry, RetryPolicy, Timer};

/// Waits with the Workers runtime's timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerTimer;

#[async_trait::async_trait(?Send)]
impl Timer for WorkerTimer {
    async fn sleep_ms(&self, ms: u64) {
        worker::Delay::from(Duration::from_millis(ms)).await;
    }
}

/// `policy` (the configuration's, `KILN_RETRY_*`) on this timer, for registry clients
/// built outside the pipeline (`/verify-image`).
pub fn retry(policy: RetryPolicy) -> Retry {
    Retry {
        policy,
        timer: Arc::new(WorkerTimer),
        observer: None,
    }
}
