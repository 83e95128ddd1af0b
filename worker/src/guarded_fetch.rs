//! One upstream `fetch` behind the registry guard (wasm only), shared by the proxy and the
//! engine's transport: a header deadline, and GET/HEAD redirects followed here, each target
//! checked by [`Policy::check_url`] before anything connects, `Authorization` dropped when
//! the host changes.

use futures_util::future::{select, Either};
use js_sys::Promise;
use url::Url;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{AbortController, Headers, RequestInit, RequestRedirect};
use worker::wasm_bindgen_futures::JsFuture;

use crate::policy::{Policy, Target};

/// Redirects followed for one GET/HEAD.
pub const MAX_REDIRECTS: usize = 5;

/// Why a guarded fetch failed; each caller maps it to its own error type.
#[derive(Debug)]
pub enum FetchFailure {
    /// A redirect pointed somewhere the guard refuses.
    RedirectRefused(String),
    /// A redirect's `Location` is unusable.
    BadRedirect(String),
    /// The upstream could not be reached.
    Unreachable(String),
    /// No response headers before the deadline.
    Timeout(String),
    /// More than [`MAX_REDIRECTS`] redirects.
    TooManyRedirects,
    /// A JavaScript call failed unexpectedly.
    Internal(String),
}

/// The message of a JavaScript error value.
pub fn js_err(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "unknown error".to_string())
}

/// Sends `method url` (already accepted by the guard as `current`) with `headers` and an
/// optional body (sent on the first hop only; redirects are followed for GET/HEAD only, which
/// carry none). Returns the final response and its URL.
pub async fn fetch_guarded(
    policy: &Policy,
    mut url: Url,
    mut current: Target,
    method: &str,
    headers: &Headers,
    body: Option<&JsValue>,
    timeout_ms: u32,
) -> Result<(web_sys::Response, Url), FetchFailure> {
    let follow = matches!(method, "GET" | "HEAD");
    let controller = AbortController::new().map_err(|e| FetchFailure::Internal(js_err(e)))?;
    let deadline = worker::Delay::from(std::time::Duration::from_millis(u64::from(timeout_ms)));
    let mut deadline = std::pin::pin!(deadline);
    let mut body = body;
    for _hop in 0..=MAX_REDIRECTS {
        let init = RequestInit::new();
        init.set_method(method);
        init.set_headers(headers);
        init.set_redirect(RequestRedirect::Manual);
        init.set_signal(Some(&controller.signal()));
        if let Some(b) = body.take() {
            init.set_body(b);
        }
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        crate::metrics::count_subrequest();
        let promise: Promise = global.fetch_with_str_and_init(url.as_str(), &init);
        let fetch = std::pin::pin!(JsFuture::from(promise));
        let resp = match select(fetch, deadline.as_mut()).await {
            Either::Left((Ok(v), _)) => v
                .dyn_into::<web_sys::Response>()
                .map_err(|e| FetchFailure::Internal(format!("fetch result: {}", js_err(e))))?,
            Either::Left((Err(e), _)) => {
                return Err(FetchFailure::Unreachable(format!(
                    "{}: {}",
                    current.origin(),
                    js_err(e)
                )))
            }
            Either::Right(((), _)) => {
                controller.abort();
                return Err(FetchFailure::Timeout(format!(
                    "{} did not answer within {timeout_ms} ms",
                    current.origin()
                )));
            }
        };
        let status = resp.status();
        let location = resp.headers().get("location").ok().flatten();
        match (follow, status, location) {
            (true, 301 | 302 | 303 | 307 | 308, Some(loc)) => {
                let next = url
                    .join(loc.trim())
                    .map_err(|e| FetchFailure::BadRedirect(format!("unusable redirect: {e}")))?;
                // Guard before connecting anywhere.
                let next_target = policy
                    .check_url(&next)
                    .map_err(|e| FetchFailure::RedirectRefused(format!("redirect refused: {e}")))?;
                if next_target != current {
                    // Credentials belong to the registry, not to its blob store.
                    let _ = headers.delete("authorization");
                }
                if let Some(b) = resp.body() {
                    let _ = b.cancel();
                }
                current = next_target;
                url = next;
            }
            _ => return Ok((resp, url)),
        }
    }
    Err(FetchFailure::TooManyRedirects)
}
