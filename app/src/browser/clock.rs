//! The engine's clock in the browser: JavaScript's `Date.now()` (page or worker).

use kiln_engine::pipeline::env::Clock;

/// Wall-clock seconds from `Date.now()` (progress timing only).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsClock;

impl Clock for JsClock {
    fn now_unix(&self) -> i64 {
        (js_sys::Date::now() / 1000.0) as i64
    }
}

/// Milliseconds from `Date.now()`, for progress rates.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}
