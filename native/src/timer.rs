//! The engine's [`Timer`] on tokio: waits between retries of registry requests.

use kiln_engine::image::registry::Timer;

/// `tokio::time::sleep` (needs a tokio runtime with the time driver enabled).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

#[async_trait::async_trait]
impl Timer for TokioTimer {
    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeps_at_least_the_time_asked() {
        let start = tokio::time::Instant::now();
        TokioTimer.sleep_ms(20).await;
        assert!(start.elapsed() >= std::time::Duration::from_millis(20));
    }
}
