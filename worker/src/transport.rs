//! The engine's [`Transport`] on the worker's `fetch` (wasm only). Every URL, including each
//! redirect target, passes the proxy's guard ([`crate::policy`]) before anything connects.
//! Request bodies are buffered (the engine uploads in chunks here); response bodies stream.

use bytes::Bytes;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use js_sys::{Promise, Uint8Array};
use kiln_engine::image::transport::{
    Body, Headers, Request, Response, Transport, TransportError, TransportErrorKind,
};
use url::Url;
use wasm_bindgen::JsCast;
use web_sys::{AbortController, RequestInit, RequestRedirect};
use worker::wasm_bindgen_futures::JsFuture;

use crate::policy::Policy;

/// Redirects followed for one GET/HEAD.
const MAX_REDIRECTS: usize = 5;

/// Largest request body buffered (a streamed body is collected before sending).
const MAX_BUFFERED_BODY: usize = 64 << 20;

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

fn js_err(e: wasm_bindgen::JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "unknown error".to_string())
}

fn invalid(msg: impl Into<String>) -> TransportError {
    TransportError::new(TransportErrorKind::InvalidRequest, msg)
}

async fn buffer(body: Body) -> Result<Option<Vec<u8>>, TransportError> {
    match body {
        Body::Empty => Ok(None),
        Body::Bytes(b) => Ok(Some(b.to_vec())),
        Body::Stream { mut stream, .. } => {
            let mut out = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if out.len().saturating_add(chunk.len()) > MAX_BUFFERED_BODY {
                    return Err(invalid(format!(
                        "request body larger than {MAX_BUFFERED_BODY} bytes; use chunked uploads"
                    )));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(Some(out))
        }
    }
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
        let mut url = Url::parse(&request.url).map_err(|e| invalid(format!("bad URL: {e}")))?;
        let mut current = guard(&self.policy, &url)?;
        let method = request.method.as_str();
        let headers = web_sys::Headers::new().map_err(|e| invalid(js_err(e)))?;
        for (n, v) in request.headers.iter() {
            headers
                .append(n, v)
                .map_err(|e| invalid(format!("header {n}: {}", js_err(e))))?;
        }
        let body = buffer(request.body).await?;
        let has_body = body.is_some();
        let body = body.map(|b| Uint8Array::from(b.as_slice()));
        let timeout_ms = if has_body {
            self.upload_timeout_ms
        } else {
            self.timeout_ms
        };
        let follow = matches!(method, "GET" | "HEAD");
        let controller = AbortController::new().map_err(|e| invalid(js_err(e)))?;
        let deadline = worker::Delay::from(std::time::Duration::from_millis(u64::from(timeout_ms)));
        let mut deadline = std::pin::pin!(deadline);
        for _hop in 0..=MAX_REDIRECTS {
            let init = RequestInit::new();
            init.set_method(method);
            init.set_headers(&headers);
            init.set_redirect(RequestRedirect::Manual);
            init.set_signal(Some(&controller.signal()));
            if let Some(b) = &body {
                init.set_body(b);
            }
            let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
            let promise: Promise = global.fetch_with_str_and_init(url.as_str(), &init);
            let fetch = std::pin::pin!(JsFuture::from(promise));
            let resp = match select(fetch, deadline.as_mut()).await {
                Either::Left((Ok(v), _)) => v
                    .dyn_into::<web_sys::Response>()
                    .map_err(|e| TransportError::new(TransportErrorKind::Other, js_err(e)))?,
                Either::Left((Err(e), _)) => {
                    return Err(TransportError::new(
                        TransportErrorKind::Connect,
                        format!("{}: {}", current.origin(), js_err(e)),
                    ))
                }
                Either::Right(((), _)) => {
                    controller.abort();
                    return Err(TransportError::new(
                        TransportErrorKind::Timeout,
                        format!("{} did not answer within {timeout_ms} ms", current.origin()),
                    ));
                }
            };
            let status = resp.status();
            let location = resp.headers().get("location").ok().flatten();
            match (follow, status, location) {
                (true, 301 | 302 | 303 | 307 | 308, Some(loc)) => {
                    let next = url
                        .join(loc.trim())
                        .map_err(|e| invalid(format!("unusable redirect: {e}")))?;
                    let next_target = guard(&self.policy, &next)?;
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
                _ => return Ok(convert_response(resp)),
            }
        }
        Err(TransportError::new(
            TransportErrorKind::Other,
            format!("more than {MAX_REDIRECTS} redirects"),
        ))
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
