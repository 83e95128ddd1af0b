//! The engine's [`Timer`] in the Worker: `setTimeout` through `worker::Delay`, so registry
//! requests are retried at the edge as in the CLI (the engine owns the policy:
//! `kiln_engine::image::registry::retry`).

use std::sync::Arc;
use std::time::Duration;

use kiln_engine::image::registry::{Retry, RetryNotice, RetryObserver, RetryPolicy, Timer};
use kiln_engine::pipeline::{Event, Progress};

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
/// built outside the pipeline (`/verify-image`); each retry logged ([`RetryLog`]).
pub fn retry(policy: RetryPolicy) -> Retry {
    Retry {
        policy,
        timer: Arc::new(WorkerTimer),
        observer: Some(Arc::new(RetryLog)),
    }
}

/// Logs each registry retry, one line each ([`crate::retry_log::retry_line`]): as the
/// observer of `/verify-image`'s client and as the conversions' progress sink (which
/// ignores every other event).
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryLog;

impl RetryObserver for RetryLog {
    fn retrying(&self, n: &RetryNotice) {
        worker::console_log!(
            "{}",
            crate::retry_log::retry_line(&n.operation, n.attempt, n.delay_ms, &n.reason)
        );
    }
}

impl Progress for RetryLog {
    fn event(&self, event: Event) {
        if let Event::Retry {
            operation,
            attempt,
            delay_ms,
            reason,
        } = event
        {
            worker::console_log!(
                "{}",
                crate::retry_log::retry_line(&operation, attempt, delay_ms, &reason)
            );
        }
    }
}
