//! The native HTTP transport: reqwest with rustls. TLS is verified against the
//! webpki and the system's roots, plus any extra CA given; plain HTTP is used only
//! when the engine's URL says `http://` (registries marked insecure).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kiln_engine::image::transport::{
    Body, Headers, Method, Request, Response, Transport, TransportError, TransportErrorKind,
};

/// Options for [`HttpTransport`].
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Extra trusted CA certificates (PEM bundles), e.g. a private registry's CA.
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// `User-Agent` sent with every request.
    pub user_agent: String,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// The idle timeout: how long a request may go without the network moving a byte
    /// while kiln has bytes to send or waits for an answer (response headers or the
    /// next body chunk). Time spent waiting for a streamed request body's own source (a
    /// layer teed from another registry) does not count, so a slow source never fails
    /// the upload it feeds, and a long upload that keeps sending never times out. A
    /// request or body that goes idle this long fails with
    /// [`TransportErrorKind::Timeout`] (and the registry client resumes or retries it
    /// when it may). Detected within one to two times this value.
    pub read_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            extra_ca_pem: Vec::new(),
            user_agent: format!("kiln/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(300),
        }
    }
}

impl HttpOptions {
    /// Adds the CA certificates of a PEM file.
    pub fn with_ca_file(mut self, path: &Path) -> Result<Self, HttpTransportError> {
        let pem = std::fs::read(path).map_err(|e| HttpTransportError::CaFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        self.extra_ca_pem.push(pem);
        Ok(self)
    }
}

/// Building the transport failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpTransportError {
    /// A CA file could not be read or holds no certificate.
    #[error("CA certificate file {path}: {detail}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A CA PEM could not be parsed.
    #[error("CA certificate PEM #{index}: {detail}")]
    CaPem {
        /// Which entry of [`HttpOptions::extra_ca_pem`].
        index: usize,
        /// What is wrong.
        detail: String,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

/// The native [`Transport`].
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    idle: Duration,
}

impl HttpTransport {
    /// A transport with default options (system and webpki roots).
    pub fn new() -> Result<Self, HttpTransportError> {
        Self::with_options(HttpOptions::default())
    }

    /// A transport with options.
    pub fn with_options(options: HttpOptions) -> Result<Self, HttpTransportError> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(true)
            .user_agent(options.user_agent)
            .connect_timeout(options.connect_timeout)
            .redirect(reqwest::redirect::Policy::limited(10));
        for (index, pem) in options.extra_ca_pem.iter().enumerate() {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                HttpTransportError::CaPem {
                    index,
                    detail: e.to_string(),
                }
            })?;
            if certs.is_empty() {
                return Err(HttpTransportError::CaPem {
                    index,
                    detail: "no certificate in the PEM".into(),
                });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b
            .build()
            .map_err(|e| HttpTransportError::Client(e.to_string()))?;
        Ok(HttpTransport {
            client,
            idle: options.read_timeout,
        })
    }
}

fn method(m: Method) -> reqwest::Method {
    match m {
        Method::Get => reqwest::Method::GET,
        Method::Head => reqwest::Method::HEAD,
        Method::Put => reqwest::Method::PUT,
        Method::Post => reqwest::Method::POST,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
    }
}

/// The error and its causes in one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The URL is left out of the message: the registry client's error already names the
/// registry and the operation, and an upload or redirect URL can carry a capability
/// (an upload session's state, a presigned blob URL's signature).
fn map_error(e: reqwest::Error) -> TransportError {
    let e = e.without_url();
    let msg = chain(&e);
    let lower = msg.to_ascii_lowercase();
    let kind = if e.is_timeout() {
        TransportErrorKind::Timeout
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        TransportErrorKind::Tls
    } else if e.is_connect() {
        TransportErrorKind::Connect
    } else if e.is_builder() {
        TransportErrorKind::InvalidRequest
    } else if e.is_body() || e.is_decode() || e.is_request() {
        TransportErrorKind::Io
    } else {
        TransportErrorKind::Other
    };
    TransportError::new(kind, msg)
}

/// Request bodies held in memory above this size are sent in slices of it.
const BODY_SLICE: usize = 256 * 1024;

/// What a request's body did, for the idle timeout: chunks handed to the network, and
/// whether it is waiting for its own source.
#[derive(Default)]
struct Activity {
    chunks: AtomicU64,
    waiting_for_source: AtomicBool,
}

/// A request body stream that reports its activity.
struct Watched {
    inner: kiln_engine::image::transport::ByteStream,
    activity: Arc<Activity>,
}

impl futures_util::Stream for Watched {
    type Item = Result<bytes::Bytes, TransportError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        let waiting = polled.is_pending();
        self.activity
            .waiting_for_source
            .store(waiting, Ordering::SeqCst);
        if !waiting {
            self.activity.chunks.fetch_add(1, Ordering::SeqCst);
        }
        polled
    }
}

/// Runs `fut` (a request up to its response headers) unless it goes `idle` with no
/// body chunk sent and no wait for the body's source: `Err(())` then.
async fn idle_guard<F: std::future::Future>(
    fut: F,
    activity: &Activity,
    idle: Duration,
) -> Result<F::Output, ()> {
    let mut fut = std::pin::pin!(fut);
    let mut seen = activity.chunks.load(Ordering::SeqCst);
    loop {
        let tick = std::pin::pin!(tokio::time::sleep(idle));
        match futures_util::future::select(fut.as_mut(), tick).await {
            futures_util::future::Either::Left((out, _)) => return Ok(out),
            futures_util::future::Either::Right(_) => {
                let now = activity.chunks.load(Ordering::SeqCst);
                if now == seen && !activity.waiting_for_source.load(Ordering::SeqCst) {
                    return Err(());
                }
                seen = now;
            }
        }
    }
}

fn idle_error(idle: Duration) -> TransportError {
    TransportError::new(
        TransportErrorKind::Timeout,
        format!("no data for {} s (idle timeout)", idle.as_secs_f64()),
    )
}

#[async_trait::async_trait]
impl Transport for HttpTransport {
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        let mut rb = self.client.request(method(request.method), &request.url);
        let has_length = request.headers.get("content-length").is_some();
        for (n, v) in request.headers.iter() {
            rb = rb.header(n, v);
        }
        if !has_length {
            if let Some(len) = request.body.len().filter(|_| request.body.is_stream()) {
                rb = rb.header("Content-Length", len.to_string());
            }
        }
        let activity = Arc::new(Activity::default());
        rb = match request.body {
            Body::Empty => rb,
            // Small bodies go whole; a large one in slices, so its sending counts as
            // activity as it goes.
            Body::Bytes(b) if b.len() <= BODY_SLICE => rb.body(b),
            Body::Bytes(b) => {
                if !has_length {
                    rb = rb.header("Content-Length", b.len().to_string());
                }
                let slices: Vec<Result<bytes::Bytes, TransportError>> = (0..b.len())
                    .step_by(BODY_SLICE)
                    .map(|i| Ok(b.slice(i..(i + BODY_SLICE).min(b.len()))))
                    .collect();
                let stream = Box::pin(futures_util::stream::iter(slices));
                rb.body(reqwest::Body::wrap_stream(Watched {
                    inner: stream,
                    activity: activity.clone(),
                }))
            }
            Body::Stream { stream, .. } => rb.body(reqwest::Body::wrap_stream(Watched {
                inner: stream,
                activity: activity.clone(),
            })),
        };
        let resp = idle_guard(rb.send(), &activity, self.idle)
            .await
            .map_err(|()| idle_error(self.idle))?
            .map_err(map_error)?;
        let status = resp.status().as_u16();
        let headers: Headers = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let idle = self.idle;
        let body =
            futures_util::stream::unfold(Some(resp.bytes_stream()), move |state| async move {
                let mut inner = state?;
                let next =
                    futures_util::future::select(inner.next(), Box::pin(tokio::time::sleep(idle)))
                        .await;
                match next {
                    futures_util::future::Either::Left((Some(Ok(chunk)), _)) => {
                        Some((Ok(chunk), Some(inner)))
                    }
                    futures_util::future::Either::Left((Some(Err(e)), _)) => {
                        Some((Err(map_error(e)), None))
                    }
                    futures_util::future::Either::Left((None, _)) => None,
                    futures_util::future::Either::Right(_) => Some((Err(idle_error(idle)), None)),
                }
            });
        Ok(Response {
            status,
            headers,
            body: Box::pin(body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server on loopback that records the request and answers 200.
    async fn one_shot() -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok();
        let Some(l) = l else { panic!("bind") };
        let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let h = tokio::spawn(async move {
            let Ok((mut s, _)) = l.accept().await else {
                return Vec::new();
            };
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                if got.windows(5).any(|w| w == b"hello") {
                    break;
                }
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: yes\r\n\r\nworld")
                .await;
            got
        });
        (addr, h)
    }

    #[tokio::test]
    async fn streams_request_and_response() {
        let (addr, server) = one_shot().await;
        let t = HttpTransport::new();
        let Ok(t) = t else { panic!("transport") };
        let body = Body::Stream {
            stream: kiln_engine::image::transport::stream_from_chunks(vec![
                bytes::Bytes::from_static(b"hel"),
                bytes::Bytes::from_static(b"lo"),
            ]),
            length: Some(5),
        };
        let req = Request::new(Method::Put, format!("http://{addr}/x")).body(body);
        let resp = t.send(req).await;
        let Ok(resp) = resp else {
            panic!("send: {resp:?}")
        };
        assert_eq!(resp.status, 200);
        assert_eq!(resp.headers.get("x-test"), Some("yes"));
        assert_eq!(resp.bytes_limited(100).await.ok(), Some(b"world".to_vec()));
        let got = server.await.unwrap_or_default();
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        assert!(text.starts_with("put /x http/1.1"), "{text}");
        assert!(text.contains("content-length: 5"), "{text}");
        assert!(text.ends_with("hello"), "{text}");
    }

    #[tokio::test]
    async fn refused_connection_is_a_connect_error() {
        // bind then drop: nothing listens on the port
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let Ok(t) = HttpTransport::new() else {
            panic!("transport")
        };
        let r = t
            .send(Request::new(
                Method::Get,
                format!("http://127.0.0.1:{port}/v2/x?X-Amz-Signature=s3cr3t"),
            ))
            .await;
        assert!(
            matches!(r, Err(ref e) if e.kind == TransportErrorKind::Connect),
            "{r:?}"
        );
        // The URL (here with a presigned URL's signature) is not in the message.
        let msg = format!("{:?}", r.err());
        assert!(!msg.contains("s3cr3t") && !msg.contains("/v2/x"), "{msg}");
    }

    /// A server that answers a request whose body it reads whole with headers and
    /// half a body, then says nothing more (the connection stays open).
    async fn stalling_server() -> (String, tokio::task::JoinHandle<usize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok();
        let Some(l) = l else { panic!("bind") };
        let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let h = tokio::spawn(async move {
            let Ok((mut s, _)) = l.accept().await else {
                return 0;
            };
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Head, then a 6-byte body.
            while !got.ends_with(b"abcdef") {
                let n = s.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return got.len();
                }
                got.extend_from_slice(&buf[..n]);
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
                .await;
            // Silent until the client hangs up.
            while s.read(&mut buf).await.unwrap_or(0) > 0 {}
            got.len()
        });
        (addr, h)
    }

    #[tokio::test]
    async fn a_slow_source_is_not_idle_but_a_silent_answer_is() {
        let (addr, server) = stalling_server().await;
        let idle = Duration::from_millis(200);
        let t = HttpTransport::with_options(HttpOptions {
            read_timeout: idle,
            ..HttpOptions::default()
        });
        let Ok(t) = t else { panic!("transport") };
        // The body's source waits 3 idle periods between its chunks: the request
        // still goes through.
        let slow = futures_util::stream::unfold(0u8, move |i| async move {
            if i == 2 {
                return None;
            }
            tokio::time::sleep(idle * 3).await;
            Some((
                Ok(bytes::Bytes::from_static(if i == 0 {
                    b"abc"
                } else {
                    b"def"
                })),
                i + 1,
            ))
        });
        let body = Body::Stream {
            stream: Box::pin(slow),
            length: Some(6),
        };
        let resp = t
            .send(Request::new(Method::Put, format!("http://{addr}/x")).body(body))
            .await;
        let Ok(resp) = resp else {
            panic!("a slow source timed the request out: {resp:?}")
        };
        // The answer stops after 5 of its 10 bytes: the body fails as a timeout.
        let r = resp.bytes_limited(100).await;
        assert!(
            matches!(r, Err(ref e) if e.kind == TransportErrorKind::Timeout),
            "{r:?}"
        );
        assert!(server.await.unwrap_or(0) > 6);
    }

    #[test]
    fn bad_ca_pem_is_reported() {
        let o = HttpOptions {
            extra_ca_pem: vec![b"not a pem".to_vec()],
            ..HttpOptions::default()
        };
        assert!(matches!(
            HttpTransport::with_options(o),
            Err(HttpTransportError::CaPem { index: 0, .. })
        ));
        let missing = HttpOptions::default().with_ca_file(Path::new("/nonexistent/ca.pem"));
        assert!(matches!(missing, Err(HttpTransportError::CaFile { .. })));
    }
}
