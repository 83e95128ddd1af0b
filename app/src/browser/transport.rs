//! [`BrowserTransport`]: the engine's [`Transport`] on `fetch` (the global one: works on a
//! page and in a Web Worker), every request going through the kiln worker's CORS proxy
//! ([`super::proxy_url`]).
//!
//! Response bodies stream (a `ReadableStream` read chunk by chunk). Request bodies are
//! sent from memory: Chrome cannot stream an upload over HTTP/1.1, so a streamed body is
//! collected first (bounded by [`MAX_BUFFERED_BODY`]); the pipeline uploads in chunks
//! ([`UPLOAD_CHUNK_SIZE`]) to keep that small. Redirects are followed by `fetch` (the
//! proxy itself follows registry redirects server-side and re-checks every hop).

use bytes::Bytes;
use futures_util::StreamExt;
use js_sys::{Array, Promise, Uint8Array};
use kiln_engine::image::transport::{
    Body, Headers, Request, Response, Transport, TransportError, TransportErrorKind,
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
}

impl BrowserTransport {
    /// A transport sending everything through the proxy at `proxy` (absolute,
    /// e.g. `https://kiln.example/proxy`).
    pub fn new(proxy: impl Into<String>) -> Self {
        BrowserTransport {
            proxy: proxy.into().trim_end_matches('/').to_string(),
        }
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

fn body_stream(url: &str, resp: &web_sys::Response) -> kiln_engine::image::transport::ByteStream {
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
        init.set_redirect(web_sys::RequestRedirect::Follow);
        init.set_headers(&headers);
        if let Some(body) = collect(&url, request.body).await? {
            init.set_body(&Uint8Array::from(body.as_slice()));
        }
        let req = web_sys::Request::new_with_str_and_init(&target, &init)
            .map_err(|e| invalid(&url, js_error(&e)))?;
        let resp = JsFuture::from(global_fetch(&req)).await.map_err(|e| {
            TransportError::new(
                TransportErrorKind::Connect,
                format!(
                    "{} (through the proxy {}): {}",
                    without_query(&url),
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
            body: body_stream(&url, &resp),
        })
    }
}
