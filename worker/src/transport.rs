//! The engine's [`Transport`] on the worker's `fetch` (wasm only). Every URL, including each
//! redirect target, passes the proxy's guard ([`crate::policy`]) before anything connects.
//! Bodies stream both ways: a streamed request body (a layer upload) becomes a JS
//! `ReadableStream` that `fetch` pulls as it sends (no chunk is held beyond the one in flight),
//! behind a `FixedLengthStream` when its length is known (so it goes with `Content-Length`, and
//! a body of another length fails), else chunked. So the pipeline uploads each blob in one
//! request here ([`kiln_engine::image::registry::UploadMode::Monolithic`]).

use bytes::Bytes;
use futures_util::StreamExt;
use js_sys::Uint8Array;
use kiln_engine::image::transport::{
    Body, Headers, Request, Response, Transport, TransportError, TransportErrorKind,
};
use url::Url;
use wasm_bindgen::JsValue;

use kiln_engine::image::transport::ByteStream;
use wasm_bindgen::JsCast;
use worker::worker_sys::FixedLengthStream;

use crate::guarded_fetch::{fetch_guarded, js_err, FetchFailure, MAX_REDIRECTS};
use crate::policy::Policy;

/// `fetch`, guarded by the registry allowlist and address policy.
pub struct FetchTransport {
    policy: Policy,
    timeout_ms: u32,
    upload_timeout_ms: u32,
}

impl FetchTransport {
    /// A transport reaching only what `policy` allows; header timeouts in milliseconds.
    pub fn new(policy: Policy, timeout_ms: u32, upload_timeout_ms: u32) -> Self {
        FetchTransport {
            policy,
            timeout_ms,
            upload_timeout_ms,
        }
    }
}

fn invalid(msg: impl Into<String>) -> TransportError {
    TransportError::new(TransportErrorKind::InvalidRequest, msg)
}

/// The body as `fetch` takes it: bytes as a `Uint8Array`, a stream as a `ReadableStream`
/// pulled chunk by chunk (wrapped in a `FixedLengthStream` when the length is known).
fn js_body(body: Body) -> Result<Option<JsValue>, TransportError> {
    match body {
        Body::Empty => Ok(None),
        Body::Bytes(b) => Ok(Some(Uint8Array::from(b.as_ref()).into())),
        Body::Stream { stream, length } => Ok(Some(js_stream(stream, length)?)),
    }
}

fn js_stream(stream: ByteStream, length: Option<u64>) -> Result<JsValue, TransportError> {
    // Each chunk is copied into a fresh Uint8Array (a view into wasm memory would be
    // invalidated when the memory grows); the Rust chunk is dropped right after.
    let chunks = stream.map(|c| match c {
        Ok(b) => Ok(JsValue::from(Uint8Array::from(b.as_ref()))),
        Err(e) => Err(JsValue::from(js_sys::Error::new(&format!(
            "upload body: {e}"
        )))),
    });
    let readable = wasm_streams::ReadableStream::from_stream(chunks).into_raw();
    let Some(len) = length else {
        return Ok(readable.into());
    };
    let fixed = match u32::try_from(len) {
        Ok(l) if l < u32::MAX => FixedLengthStream::new(l),
        _ => FixedLengthStream::new_big_int(js_sys::BigInt::from(len)),
    }
    .map_err(|e| invalid(format!("FixedLengthStream({len}): {}", js_err(e))))?;
    let transform: &web_sys::TransformStream = fixed.unchecked_ref();
    // A failed body errors the pipe, which errors the readable side `fetch` is sending, so
    // the request fails; the pipe's own promise is awaited only so that its rejection is
    // handled.
    let piped = readable.pipe_to(&transform.writable());
    worker::wasm_bindgen_futures::spawn_local(async move {
        let _ = worker::wasm_bindgen_futures::JsFuture::from(piped).await;
    });
    Ok(transform.readable().into())
}

fn guard(policy: &Policy, url: &Url) -> Result<crate::policy::Target, TransportError> {
    policy.check_url(url).map_err(|e| {
        TransportError::new(
            TransportErrorKind::Connect,
            format!("registry not allowed: {e}"),
        )
    })
}

#[async_trait::async_trait(?Send)]
impl Transport for FetchTransport {
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        let url = Url::parse(&request.url).map_err(|e| invalid(format!("bad URL: {e}")))?;
        let current = guard(&self.policy, &url)?;
        let method = request.method.as_str();
        let headers = web_sys::Headers::new().map_err(|e| invalid(js_err(e)))?;
        let streamed = request.body.is_stream();
        for (n, v) in request.headers.iter() {
            // A streamed body's length is the FixedLengthStream's (or none: chunked).
            if streamed && n.eq_ignore_ascii_case("content-length") {
                continue;
            }
            headers
                .append(n, v)
                .map_err(|e| invalid(format!("header {n}: {}", js_err(e))))?;
        }
        let body = js_body(request.body)?;
        let has_body = body.is_some();
        let timeout_ms = if has_body {
            self.upload_timeout_ms
        } else {
            self.timeout_ms
        };
        let (resp, _url) = fetch_guarded(
            &self.policy,
            url,
            current,
            method,
            &headers,
            body.as_ref(),
            timeout_ms,
        )
        .await
        .map_err(|f| match f {
            FetchFailure::RedirectRefused(m) => TransportError::new(TransportErrorKind::Connect, m),
            FetchFailure::BadRedirect(m) => invalid(m),
            FetchFailure::Unreachable(m) => TransportError::new(TransportErrorKind::Connect, m),
            FetchFailure::Timeout(m) => TransportError::new(TransportErrorKind::Timeout, m),
            FetchFailure::TooManyRedirects => TransportError::new(
                TransportErrorKind::Other,
                format!("more than {MAX_REDIRECTS} redirects"),
            ),
            FetchFailure::Internal(m) => TransportError::new(TransportErrorKind::Other, m),
        })?;
        Ok(convert_response(resp))
    }
}

fn convert_response(resp: web_sys::Response) -> Response {
    let status = resp.status();
    let mut resp = worker::Response::from(resp);
    let headers: Headers = resp.headers().entries().collect();
    let body = match resp.stream() {
        Ok(s) => s
            .map(|c| {
                c.map(Bytes::from)
                    .map_err(|e| TransportError::new(TransportErrorKind::Io, e.to_string()))
            })
            .boxed_local(),
        Err(_) => futures_util::stream::empty().boxed_local(),
    };
    Response {
        status,
        headers,
        body,
    }
}
