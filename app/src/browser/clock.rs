//! The engine's clock and timer in the browser: JavaScript's `Date.now()` and `setTimeout`
//! (page or worker).

use std::sync::Arc;

use kiln_engine::image::registry::{Retry, RetryPolicy, Timer};

/// Wall-clock seconds from `Date.now()` (progress timing only): the engine's, shared with
/// the worker.
pub use kiln_engine::pipeline::env::JsClock;

/// Milliseconds from `Date.now()`, for progress rates.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Waits with `setTimeout` (gloo-timers): registry requests are retried in the browser with
/// the engine's policy, as in the CLI and the worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsTimer;

#[async_trait::async_trait(?Send)]
impl Timer for JsTimer {
    async fn sleep_ms(&self, ms: u64) {
        gloo_timers::future::TimeoutFuture::new(u32::try_from(ms).unwrap_or(u32::MAX)).await;
    }
}

/// `policy` (from `/kiln-config.json`) on [`JsTimer`], for registry clients built outside
/// the pipeline (verification).
pub fn retry(policy: RetryPolicy) -> Retry {
    Retry {
        policy,
        timer: Arc::new(JsTimer),
        observer: None,
    }
}
