//! Rate limits: per API token on the conversion endpoints, per client address on the
//! anonymous ones (`/verify-image`, `/proxy/...`).
//!
//! The counter lives in a Durable Object (class `RateLimiter`, binding `KILN_RATE_LIMITER`),
//! one object per key (`token:NAME`, `verify:ADDRESS`, `proxy:ADDRESS`), so every isolate
//! and every colo counts against the same window. The window logic ([`Window`]) is pure and
//! unit-tested natively; the object and its client exist only on wasm32. A refused request
//! is answered 429 `RateLimited` with `Retry-After`.
//!
//! The client address is `CF-Connecting-IP` (set by Cloudflare's edge; in bare workerd any
//! client can send it, so local limits per address are only as good as the caller).
//! Without the binding (a deployment that did not declare the object) nothing is limited
//! and the worker logs that once per isolate.

/// Binding: the Durable Object namespace of the limiter.
pub const BINDING: &str = "KILN_RATE_LIMITER";
/// Binding: conversions per token per minute (default [`DEFAULT_CONVERT_PER_MIN`]).
pub const CONVERT_PER_MIN: &str = "KILN_RATE_LIMIT_CONVERT_PER_MIN";
/// Binding: `/verify-image` calls per client address per minute.
pub const VERIFY_PER_MIN: &str = "KILN_RATE_LIMIT_VERIFY_PER_MIN";
/// Binding: `/proxy/...` requests per client address per minute.
pub const PROXY_PER_MIN: &str = "KILN_RATE_LIMIT_PROXY_PER_MIN";
/// Default of [`CONVERT_PER_MIN`].
pub const DEFAULT_CONVERT_PER_MIN: u32 = 10;
/// Default of [`VERIFY_PER_MIN`].
pub const DEFAULT_VERIFY_PER_MIN: u32 = 30;
/// Default of [`PROXY_PER_MIN`]: a browser conversion of a large image makes a few hundred
/// registry requests.
pub const DEFAULT_PROXY_PER_MIN: u32 = 3000;

/// One fixed window of `limit` hits per `window_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    start_ms: u64,
    count: u32,
}

impl Window {
    /// A window starting now.
    pub fn new(now_ms: u64) -> Self {
        Window {
            start_ms: now_ms,
            count: 0,
        }
    }

    /// Counts one hit. `Err(seconds)`: over the limit, retry after that many seconds (>= 1).
    pub fn hit(&mut self, now_ms: u64, limit: u32, window_ms: u64) -> Result<(), u64> {
        if now_ms.saturating_sub(self.start_ms) >= window_ms || now_ms < self.start_ms {
            *self = Window::new(now_ms);
        }
        if self.count >= limit {
            let left = (self.start_ms + window_ms).saturating_sub(now_ms);
            return Err(left.div_ceil(1000).max(1));
        }
        self.count += 1;
        Ok(())
    }
}

/// The limits, from the bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Conversions per token per minute.
    pub convert: u32,
    /// Verifications per address per minute.
    pub verify: u32,
    /// Proxy requests per address per minute.
    pub proxy: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            convert: DEFAULT_CONVERT_PER_MIN,
            verify: DEFAULT_VERIFY_PER_MIN,
            proxy: DEFAULT_PROXY_PER_MIN,
        }
    }
}

#[cfg(target_arch = "wasm32")]
pub use object::{check, RateLimiter};

#[cfg(target_arch = "wasm32")]
#[allow(missing_docs)] // what #[durable_object] generates
mod object {
    use super::{Window, BINDING};
    use std::cell::RefCell;
    use worker::{durable_object, Env, Request, Response, Result, State};

    /// The Durable Object: one [`Window`] per object (one object per key), in memory.
    #[durable_object]
    pub struct RateLimiter {
        window: RefCell<Option<Window>>,
    }

    impl worker::DurableObject for RateLimiter {
        fn new(_state: State, _env: Env) -> Self {
            RateLimiter {
                window: RefCell::new(None),
            }
        }

        /// `GET https://limiter/hit?limit=N&windowMs=M` → `{"ok": true}` or
        /// `{"ok": false, "retryAfter": S}`.
        async fn fetch(&self, req: Request) -> Result<Response> {
            let url = req.url()?;
            let mut limit = 0u32;
            let mut window_ms = 60_000u64;
            for (k, v) in url.query_pairs() {
                match k.as_ref() {
                    "limit" => limit = v.parse().unwrap_or(0),
                    "windowMs" => window_ms = v.parse().unwrap_or(60_000),
                    _ => {}
                }
            }
            let now = js_sys::Date::now() as u64;
            let mut w = self.window.borrow_mut();
            let window = w.get_or_insert_with(|| Window::new(now));
            match window.hit(now, limit, window_ms) {
                Ok(()) => Response::from_json(&serde_json::json!({"ok": true})),
                Err(s) => Response::from_json(&serde_json::json!({"ok": false, "retryAfter": s})),
            }
        }
    }

    thread_local! {
        static WARNED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Counts a hit on `key` against `limit` per minute. `Ok(None)`: allowed;
    /// `Ok(Some(s))`: refused, retry after `s` seconds. Without the binding: allowed (logged
    /// once per isolate).
    pub async fn check(env: &Env, key: &str, limit: u32) -> Result<Option<u64>> {
        let Ok(ns) = env.durable_object(BINDING) else {
            if !WARNED.with(|w| w.replace(true)) {
                worker::console_log!("rate limits off: no {BINDING} Durable Object binding");
            }
            return Ok(None);
        };
        let stub = ns.id_from_name(key)?.get_stub()?;
        crate::metrics::count_subrequest();
        let mut resp = stub
            .fetch_with_str(&format!("https://limiter/hit?limit={limit}&windowMs=60000"))
            .await?;
        let v: serde_json::Value = resp.json().await?;
        if v["ok"].as_bool() == Some(true) {
            Ok(None)
        } else {
            Ok(Some(v["retryAfter"].as_u64().unwrap_or(60).max(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window() {
        let mut w = Window::new(1_000);
        for i in 0..3 {
            assert_eq!(w.hit(1_000 + i, 3, 60_000), Ok(()));
        }
        assert_eq!(w.hit(2_000, 3, 60_000), Err(59));
        assert_eq!(w.hit(60_999, 3, 60_000), Err(1));
        // The next window.
        assert_eq!(w.hit(61_000, 3, 60_000), Ok(()));
        // A clock that goes back starts over instead of refusing forever.
        assert_eq!(w.hit(10, 3, 60_000), Ok(()));
        // Limit 0 refuses everything.
        let mut z = Window::new(0);
        assert!(z.hit(0, 0, 1_000).is_err());
    }
}
