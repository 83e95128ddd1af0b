//! [`BrowserTransport`]: the engine's [`Transport`] on `fetch` (the global one: works on a
//! page and in a Web Worker), every request going through the kiln worker's CORS proxy
//! ([`super::proxy_url`]).
//!
//! Response bodies stream (a `ReadableStream` read chunk by chunk). Request bodies are
//! sent from memory: Chrome cannot stream an upload over HTTP/1.1, so a streamed body is
//! collected first (bounded by [`MAX_BUFFERED_BODY`]); the pipeline uploads in chunks
//! ([`UPLOAD_CHUNK_SIZE`]) to keep that small. Redirects are followed by `fetch` (the
//! proxy itself follows registry redirects server-side and re-checks every hop).
//!
//! A response that goes [`IDLE_TIMEOUT_MS`] without a byte (its headers, or the next
//! chunk of its body) fails as a [`TransportErrorKind::Timeout`] and its request is
//! aborted, as the native transport's read timeout does: a stalled registry or proxy
//! ends the conversion with an error instead of leaving it waiting forever.

use bytes::Bytes;
use futures_util::StreamExt;
use js_sys::{Array, Promise, Uint8Array};
use kiln_engine::image::transport::{
    Body, ByteStream, Headers, Request, Response, Transport, TransportError, TransportErrorKind,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::proxy_url::{to_proxy, without_query};
use crate::webcrypto::js_error;

/// Bytes per PATCH of a chunked upload (the request bodies this transport buffers).
pub const UPLOAD_CHUNK_SIZE: usize = 4 << 20;

/// Largest request body collected from a stream.
pub const MAX_BUFFERED_BODY: usize = 64 << 20;

/// How long a response may go without a byte before it fails as a timeout: the native
/// transport's read timeout (300 s). Uploads are sent whole, so this also bounds how long
/// the proxy may take to answer one (its own upload timeout is the same 300 s).
pub const IDLE_TIMEOUT_MS: u32 = 300_000;

/// Headers `fetch` sets itself (setting them is refused or ignored).
const BROWSER_OWNED: [&str; 6] = [
    "content-length",
    "host",
    "connection",
    "transfer-encoding",
    "expect",
    "te",
];

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (`window.fetch` or `self.fetch` in a worker).
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(request: &web_sys::Request) -> Promise;
}

/// `fetch` through the kiln worker's proxy.
#[derive(Debug, Clone)]
pub struct BrowserTransport {
    proxy: String,
    idle_timeout_ms: u32,
}

impl BrowserTransport {
    /// A transport sending everything through the proxy at `proxy` (absolute,
    /// e.g. `https://kiln.example/proxy`), with the [`IDLE_TIMEOUT_MS`] idle timeout.
    pub fn new(proxy: impl Into<String>) -> Self {
        BrowserTransport {
            proxy: proxy.into().trim_end_matches('/').to_string(),
            idle_timeout_ms: IDLE_TIMEOUT_MS,
        }
    }

    /// The same transport with another idle timeout, in milliseconds.
    pub fn with_idle_timeout(mut self, ms: u32) -> Self {
        self.idle_timeout_ms = ms;
        self
    }

    /// The proxy's base URL.
    pub fn proxy(&self) -> &str {
        &self.proxy
    }
}

fn invalid(url: &str, msg: impl std::fmt::Display) -> TransportError {
    TransportError::new(
        TransportErrorKind::InvalidRequest,
        format!("{}: {msg}", without_query(url)),
    )
}

async fn collect(url: &str, body: Body) -> Result<Option<Vec<u8>>, TransportError> {
    match body {
        Body::Empty => Ok(None),
        Body::Bytes(b) => Ok(Some(b.to_vec())),
        Body::Stream { mut stream, .. } => {
            let mut out = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if out.len().saturating_add(chunk.len()) > MAX_BUFFERED_BODY {
                    return Err(invalid(
                        url,
                        format!(
                            "request body larger than {MAX_BUFFERED_BODY} bytes \
                             (the browser uploads in chunks)"
                        ),
                    ));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(Some(out))
        }
    }
}

fn response_headers(h: &web_sys::Headers) -> Headers {
    let mut out = Headers::new();
    if let Ok(Some(iter)) = js_sys::try_iter(h) {
        for entry in iter.flatten() {
            let pair = Array::from(&entry);
            if let (Some(n), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                out.push(n, v);
            }
        }
    }
    out
}

fn timed_out(where_: &str, what: &str, ms: u32) -> TransportError {
    let after = if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    };
    TransportError::new(
        TransportErrorKind::Timeout,
        format!("{where_}: no {what} for {after}"),
    )
}

/// `future`, or `None` when it takes longer than `ms` milliseconds (the timer is cleared
/// either way).
pub async fn within<F: std::future::Future + Unpin>(future: F, ms: u32) -> Option<F::Output> {
    match futures_util::future::select(future, gloo_timers::future::TimeoutFuture::new(ms)).await {
        futures_util::future::Either::Left((out, _)) => Some(out),
        futures_util::future::Either::Right(_) => None,
    }
}

/// `stream`, failing with a [`TransportErrorKind::Timeout`] naming `where_` when the next
/// chunk takes longer than `ms` milliseconds; `on_timeout` runs then (it aborts the
/// request), and the stream ends after the error.
pub fn idle_limited(
    stream: ByteStream,
    ms: u32,
    where_: String,
    on_timeout: impl FnOnce() + 'static,
) -> ByteStream {
    // The state: the stream (`None` once it timed out) and, until then, the abort.
    let state = (Some(stream), Some(on_timeout), where_);
    Box::pin(futures_util::stream::unfold(
        state,
        move |(stream, on_timeout, where_)| async move {
            let mut stream = stream?;
            match within(stream.next(), ms).await {
                Some(Some(item)) => Some((item, (Some(stream), on_timeout, where_))),
                Some(None) => None,
                None => {
                    if let Some(abort) = on_timeout {
                        abort();
                    }
                    let e = timed_out(&where_, "data", ms);
                    Some((Err(e), (None, None, where_)))
                }
            }
        },
    ))
}

fn body_stream(url: &str, resp: &web_sys::Response) -> ByteStream {
    let Some(raw) = resp.body() else {
        return Box::pin(futures_util::stream::empty());
    };
    let where_ = without_query(url).to_string();
    let stream = wasm_streams::ReadableStream::from_raw(raw.unchecked_into()).into_stream();
    Box::pin(stream.map(move |chunk| {
        chunk
            .map(|v| Bytes::from(Uint8Array::new(&v).to_vec()))
            .map_err(|e| {
                TransportError::new(
                    TransportErrorKind::Io,
                    format!("{where_}: reading the body: {}", js_error(&e)),
                )
            })
    }))
}

#[async_trait::async_trait(?Send)]
impl Transport for BrowserTransport {
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        let url = request.url.clone();
        let target = to_proxy(&url, &self.proxy).map_err(|e| invalid(&url, e))?;
        let headers = web_sys::Headers::new().map_err(|e| invalid(&url, js_error(&e)))?;
        for (n, v) in request.headers.iter() {
            if BROWSER_OWNED.iter().any(|b| n.eq_ignore_ascii_case(b)) {
                continue;
            }
            // Never quote the value: it may be a credential.
            headers
                .append(n, v)
                .map_err(|e| invalid(&url, format!("header {n}: {}", js_error(&e))))?;
        }
        let init = web_sys::RequestInit::new();
        init.set_method(request.method.as_str());
        init.set_mode(web_sys::RequestMode::Cors);
        // No cookies or cached HTTP auth, and so no browser login prompt on a registry's
        // `401` + `WWW-Authenticate: Basic` (the engine answers challenges itself with the
        // Authorization header it sets, which is sent regardless).
        init.set_credentials(web_sys::RequestCredentials::Omit);
        // Registry answers must never come from the browser's HTTP cache (a tag moves).
        init.set_cache(web_sys::RequestCache::NoStore);
        init.set_redirect(web_sys::RequestRedirect::Follow);
        init.set_headers(&headers);
        // Aborts the request when it stalls (see `IDLE_TIMEOUT_MS`).
        let abort = web_sys::AbortController::new().map_err(|e| invalid(&url, js_error(&e)))?;
        init.set_signal(Some(&abort.signal()));
        if let Some(body) = collect(&url, request.body).await? {
            init.set_body(&Uint8Array::from(body.as_slice()));
        }
        let req = web_sys::Request::new_with_str_and_init(&target, &init)
            .map_err(|e| invalid(&url, js_error(&e)))?;
        let where_ = without_query(&url).to_string();
        let Some(resp) = within(JsFuture::from(global_fetch(&req)), self.idle_timeout_ms).await
        else {
            abort.abort();
            return Err(timed_out(&where_, "response", self.idle_timeout_ms));
        };
        let resp = resp.map_err(|e| {
            TransportError::new(
                TransportErrorKind::Connect,
                format!(
                    "{where_} (through the proxy {}): {}",
                    self.proxy,
                    js_error(&e)
                ),
            )
        })?;
        let resp: web_sys::Response = resp
            .dyn_into()
            .map_err(|_| invalid(&url, "fetch did not return a Response"))?;
        Ok(Response {
            status: resp.status(),
            headers: response_headers(&resp.headers()),
            body: idle_limited(
                body_stream(&url, &resp),
                self.idle_timeout_ms,
                where_,
                move || abort.abort(),
            ),
        })
    }
}
