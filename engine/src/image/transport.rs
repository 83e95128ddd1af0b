//! The HTTP transport trait: the engine's only way to reach a registry.
//!
//! The engine builds [`Request`]s and reads [`Response`]s; a [`Transport`] moves the
//! bytes. Implementations: natively `kiln_native::HttpTransport` (reqwest + rustls); in
//! the browser and in the Cloudflare worker, their `fetch`.
//!
//! Contract for implementors:
//! - send exactly the method, URL, headers and body given; never add credentials;
//! - follow redirects (a blob GET is often redirected to storage), and never forward an
//!   `Authorization` header to another origin;
//! - stream both bodies: a request body of [`Body::Stream`] is sent as it is produced,
//!   and the response body is handed over chunk by chunk, never buffered whole;
//! - report connection, TLS and timeout failures as [`TransportError`], and every HTTP
//!   status (including 4xx and 5xx) as a [`Response`].

use std::fmt;
use std::pin::Pin;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;

use crate::util::MaybeSend;

/// A stream of body chunks. `Send` natively, not on wasm32 (browser futures are `!Send`).
#[cfg(not(target_arch = "wasm32"))]
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;

/// A stream of body chunks. `Send` natively, not on wasm32 (browser futures are `!Send`).
#[cfg(target_arch = "wasm32")]
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>>>>;

/// HTTP methods the registry protocol uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// PUT
    Put,
    /// POST
    Post,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    /// The method's name as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request body.
pub enum Body {
    /// No body.
    Empty,
    /// A body held in memory (manifests, small blobs, chunks).
    Bytes(Bytes),
    /// A streamed body (layer uploads), sent as it is produced.
    Stream {
        /// The chunks.
        stream: ByteStream,
        /// The total length when known (sent as `Content-Length`).
        length: Option<u64>,
    },
}

impl Body {
    /// The body's length when known.
    pub fn len(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Bytes(b) => Some(b.len() as u64),
            Body::Stream { length, .. } => *length,
        }
    }

    /// True for an empty body.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// True for a streamed body (which cannot be replayed).
    pub fn is_stream(&self) -> bool {
        matches!(self, Body::Stream { .. })
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Body::Empty"),
            Body::Bytes(b) => write!(f, "Body::Bytes({} bytes)", b.len()),
            Body::Stream { length, .. } => write!(f, "Body::Stream(length {length:?})"),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Body::Bytes(Bytes::from(v))
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::Bytes(b)
    }
}

/// An ordered list of HTTP headers; names compare case-insensitively.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// Appends a header (several with one name are allowed).
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Replaces every header of this name by one value.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.0.push((name.to_string(), value.into()));
    }

    /// The first value of a header, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// Debug output hides the values of credential-bearing headers.
impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_list();
        for (n, v) in &self.0 {
            if is_sensitive_header(n) {
                m.entry(&format_args!("{n}: <redacted>"));
            } else {
                m.entry(&format_args!("{n}: {v}"));
            }
        }
        m.finish()
    }
}

fn is_sensitive_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("authorization")
        || name.eq_ignore_ascii_case("proxy-authorization")
        || name.eq_ignore_ascii_case("cookie")
        || name.eq_ignore_ascii_case("set-cookie")
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Headers(
            iter.into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        )
    }
}

/// One HTTP request.
#[derive(Debug)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The absolute URL (`http://` or `https://`), query included.
    pub url: String,
    /// Request headers.
    pub headers: Headers,
    /// The body.
    pub body: Body,
}

impl Request {
    /// A request without headers or body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Headers::new(),
            body: Body::Empty,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.set(name, value);
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }
}

/// One HTTP response, its body still streaming.
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: Headers,
    /// The body's chunks.
    pub body: ByteStream,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl Response {
    /// A response with an in-memory body (for tests and simple transports).
    pub fn from_bytes(status: u16, headers: Headers, body: impl Into<Bytes>) -> Self {
        let b: Bytes = body.into();
        Response {
            status,
            headers,
            body: Box::pin(futures_util::stream::iter(std::iter::once(Ok(b)))),
        }
    }

    /// Reads the whole body, failing past `limit` bytes (so a hostile server cannot
    /// make the engine hold an unbounded body).
    pub async fn bytes_limited(self, limit: usize) -> Result<Vec<u8>, TransportError> {
        let mut out = Vec::new();
        let mut body = self.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if out.len().saturating_add(chunk.len()) > limit {
                return Err(TransportError::new(
                    TransportErrorKind::BodyTooLarge,
                    format!("response body larger than {limit} bytes"),
                ));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// What kind of transport failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// Could not connect (DNS, refused, unreachable).
    Connect,
    /// TLS failed (certificate not trusted, handshake).
    Tls,
    /// Timed out.
    Timeout,
    /// The connection broke while sending or receiving a body.
    Io,
    /// A response body exceeded the caller's limit.
    BodyTooLarge,
    /// The request itself was invalid (bad URL, header).
    InvalidRequest,
    /// Anything else.
    Other,
}

/// A transport failure: no HTTP status could be obtained (or a body broke).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct TransportError {
    /// The kind of failure.
    pub kind: TransportErrorKind,
    /// What happened (never contains credentials).
    pub message: String,
}

impl TransportError {
    /// A new error.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }
}

/// Sends HTTP requests. See the module documentation for the contract.
#[kiln_macros::async_trait]
pub trait Transport: MaybeSend {
    /// Sends one request and returns the response with its body still streaming.
    async fn send(&self, request: Request) -> Result<Response, TransportError>;
}

/// Wraps an in-memory chunk list as a [`ByteStream`] (handy for tests and small bodies).
pub fn stream_from_chunks(chunks: Vec<Bytes>) -> ByteStream {
    Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_case_insensitive_and_redacted() {
        let mut h = Headers::new();
        h.push("Content-Type", "application/json");
        h.push("Authorization", "Basic c2VjcmV0");
        assert_eq!(h.get("content-type"), Some("application/json"));
        let dbg = format!("{h:?}");
        assert!(!dbg.contains("c2VjcmV0"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
        h.set("content-type", "text/plain");
        assert_eq!(h.get_all("Content-Type").count(), 1);
    }

    #[test]
    fn body_lengths() {
        assert_eq!(Body::Empty.len(), Some(0));
        assert_eq!(Body::from(vec![1, 2, 3]).len(), Some(3));
        let s = Body::Stream {
            stream: stream_from_chunks(vec![]),
            length: None,
        };
        assert!(s.is_stream());
        assert_eq!(s.len(), None);
    }

    #[test]
    fn bytes_limited_enforces_limit() {
        let r = Response::from_bytes(200, Headers::new(), vec![0u8; 10]);
        let e = futures_util::FutureExt::now_or_never(r.bytes_limited(5));
        assert!(matches!(e, Some(Err(ref e)) if e.kind == TransportErrorKind::BodyTooLarge));
        let r = Response::from_bytes(200, Headers::new(), vec![7u8; 4]);
        let ok = futures_util::FutureExt::now_or_never(r.bytes_limited(5));
        assert_eq!(ok, Some(Ok(vec![7u8; 4])));
    }
}
