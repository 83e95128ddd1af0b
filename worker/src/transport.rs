//! The engine's [`Transport`] on the worker's `fetch` (wasm only). Every URL, including each
//! redirect target, passes the proxy's guard ([`crate::policy`]) before anything connects.
//! Request bodies are buffered (the engine uploads in chunks here); response bodies stream.

use bytes::Bytes;
use futures_util::StreamExt;
use js_sys::Uint8Array;
use kiln_engine::image::transport::{
    Body, Headers, Request, Response, Transport, TransportError, TransportErrorKind,
};
use url::Url;
use wasm_bindgen::JsValue;

use crate::guarded_fetch::{fetch_guarded, js_err, FetchFailure, MAX_REDIRECTS};
use crate::policy::Policy;

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
        let url = Url::parse(&request.url).map_err(|e| invalid(format!("bad URL: {e}")))?;
        let current = guard(&self.policy, &url)?;
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
        let body = body.map(JsValue::from);
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
