//! The native HTTP transport: reqwest with rustls. TLS is verified against the
//! webpki and the system's roots, plus any extra CA given; plain HTTP is used only
//! when the engine's URL says `http://` (registries marked insecure).

use std::path::{Path, PathBuf};
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
    /// Time allowed without reading or writing anything (per read/write).
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
            .read_timeout(options.read_timeout)
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
        Ok(HttpTransport { client })
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
        rb = match request.body {
            Body::Empty => rb,
            Body::Bytes(b) => rb.body(b),
            Body::Stream { stream, .. } => rb.body(reqwest::Body::wrap_stream(stream)),
        };
        let resp = rb.send().await.map_err(map_error)?;
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
        let body = resp.bytes_stream().map(|r| r.map_err(map_error));
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
