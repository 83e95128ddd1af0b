//! Protocol tests against a scripted in-memory transport (no network): the auth
//! dance, token caching and re-challenge, digest checks, upload request shapes.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::FutureExt;

use super::*;
use crate::image::manifest::OCI_MANIFEST;
use crate::image::reference::Digest;
use crate::image::transport::{
    stream_from_chunks, Body, Headers, Method, Request, Response, Transport, TransportError,
};

/// What the mock saw: method, URL, Authorization header, body bytes (if in memory).
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    url: String,
    auth: Option<String>,
    content_type: Option<String>,
    content_range: Option<String>,
}

type Handler = dyn Fn(&Request, usize) -> (u16, Vec<(&'static str, String)>, Vec<u8>) + Send + Sync;

struct Mock {
    handler: Box<Handler>,
    seen: Mutex<Vec<Seen>>,
}

#[kiln_macros::async_trait]
impl Transport for Mock {
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        let n = {
            let mut s = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            s.push(Seen {
                method: request.method,
                url: request.url.clone(),
                auth: request.headers.get("authorization").map(str::to_string),
                content_type: request.headers.get("content-type").map(str::to_string),
                content_range: request.headers.get("content-range").map(str::to_string),
            });
            s.len()
        };
        let (status, headers, body) = (self.handler)(&request, n);
        let h: Headers = headers.into_iter().collect();
        Ok(Response::from_bytes(status, h, body))
    }
}

fn mock(handler: Box<Handler>) -> Arc<Mock> {
    Arc::new(Mock {
        handler,
        seen: Mutex::new(Vec::new()),
    })
}

fn seen(m: &Mock) -> Vec<Seen> {
    m.seen.lock().map(|s| s.clone()).unwrap_or_default()
}

fn manifest_bytes() -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[]}}"#,
        Digest::sha256_of(b"{}")
    )
    .into_bytes()
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    match f.now_or_never() {
        Some(v) => v,
        None => panic!("the mock never pends"),
    }
}

const CHALLENGE: &str =
    r#"Bearer realm="https://auth.test/token",service="svc",scope="repository:a/b:pull""#;

fn creds() -> Credentials {
    Credentials::new("u", "secret-pw")
}

#[test]
fn bearer_flow_fetches_caches_and_rechallenges() {
    let tokens = Arc::new(Mutex::new(0u32));
    let t2 = tokens.clone();
    let m = mock(Box::new(move |req, _| {
        if req.url.starts_with("https://auth.test/token") {
            if req.headers.get("authorization") != Some(&creds().basic_header()) {
                return (401, vec![], vec![]);
            }
            let mut n = t2.lock().unwrap_or_else(|p| p.into_inner());
            *n += 1;
            return (200, vec![], format!(r#"{{"token":"T{n}"}}"#).into_bytes());
        }
        // the registry accepts only the newest token
        let n = *t2.lock().unwrap_or_else(|p| p.into_inner());
        if req.headers.get("authorization") == Some(&format!("Bearer T{n}")) && n > 0 {
            (
                200,
                vec![("Content-Type", OCI_MANIFEST.to_string())],
                manifest_bytes(),
            )
        } else {
            (
                401,
                vec![("WWW-Authenticate", CHALLENGE.to_string())],
                vec![],
            )
        }
    }));
    let c = RegistryClient::new(
        m.clone(),
        "reg.test",
        ClientOptions {
            insecure: false,
            credentials: Some(creds()),
        },
    );
    let r = run(c.get_manifest("a/b", "latest"));
    assert!(r.is_ok(), "{r:?}");
    let s = seen(&m);
    assert_eq!(s.len(), 3, "{s:?}");
    assert_eq!(s[0].auth, None);
    assert!(s[1]
        .url
        .starts_with("https://auth.test/token?service=svc&scope=repository%3Aa%2Fb%3Apull"));
    assert_eq!(s[2].auth.as_deref(), Some("Bearer T1"));
    assert_eq!(s[2].url, "https://reg.test/v2/a/b/manifests/latest");

    // cached: one request
    assert!(run(c.get_manifest("a/b", "latest")).is_ok());
    assert_eq!(seen(&m).len(), 4);

    // the token server rotates: the cached token is refused, a fresh one fetched
    *tokens.lock().unwrap_or_else(|p| p.into_inner()) += 1; // registry now wants T3
                                                            // token server will hand out T3 next
    let r = run(c.get_manifest("a/b", "latest"));
    assert!(r.is_ok(), "{r:?}");
    let s = seen(&m);
    assert_eq!(
        s.last().and_then(|x| x.auth.clone()).as_deref(),
        Some("Bearer T3")
    );
}

#[test]
fn bearer_wrong_password_is_unauthorized_without_leaking() {
    let m = mock(Box::new(|req, _| {
        if req.url.starts_with("https://auth.test/token") {
            return (401, vec![], b"bad".to_vec());
        }
        (
            401,
            vec![("WWW-Authenticate", CHALLENGE.to_string())],
            vec![],
        )
    }));
    let c = RegistryClient::new(
        m,
        "reg.test",
        ClientOptions {
            insecure: false,
            credentials: Some(creds()),
        },
    );
    let e = run(c.get_manifest("a/b", "latest"));
    let Err(e) = e else { panic!("must fail") };
    assert_eq!(e.http_status(), 401);
    assert!(!format!("{e} {e:?} {c:?}").contains("secret-pw"));
}

/// A token server that only speaks OAuth2 (GET answers 404): the password grant by POST.
#[test]
fn password_falls_back_to_the_oauth2_post_grant() {
    let m = mock(Box::new(|req, _| {
        if req.url.starts_with("https://auth.test/token") {
            if req.method == Method::Get {
                return (404, vec![], vec![]);
            }
            let body = match &req.body {
                Body::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            };
            if body.contains("grant_type=password")
                && body.contains("username=u&password=secret-pw")
                && req.headers.get("content-type") == Some("application/x-www-form-urlencoded")
            {
                return (200, vec![], br#"{"access_token":"OA"}"#.to_vec());
            }
            return (400, vec![], br#"{"error":"invalid_grant"}"#.to_vec());
        }
        if req.headers.get("authorization") == Some("Bearer OA") {
            (
                200,
                vec![("Content-Type", OCI_MANIFEST.to_string())],
                manifest_bytes(),
            )
        } else {
            (
                401,
                vec![("WWW-Authenticate", CHALLENGE.to_string())],
                vec![],
            )
        }
    }));
    let c = RegistryClient::new(
        m.clone(),
        "reg.test",
        ClientOptions {
            insecure: false,
            credentials: Some(creds()),
        },
    );
    let r = run(c.get_manifest("a/b", "latest"));
    assert!(r.is_ok(), "{r:?}");
    let methods: Vec<Method> = seen(&m).iter().map(|s| s.method).collect();
    assert_eq!(
        methods,
        [Method::Get, Method::Get, Method::Post, Method::Get]
    );
    // The POST carries no Basic header: the password travels only in the form.
    assert_eq!(seen(&m)[2].auth, None);
}

#[test]
fn basic_flow_and_rejection() {
    let m = mock(Box::new(|req, _| match req.headers.get("authorization") {
        Some(a) if a == creds().basic_header() => (200, vec![], vec![]),
        _ => (
            401,
            vec![("WWW-Authenticate", r#"Basic realm="r""#.to_string())],
            vec![],
        ),
    }));
    let c = RegistryClient::new(
        m.clone(),
        "reg.test:5000",
        ClientOptions {
            insecure: true,
            credentials: Some(creds()),
        },
    );
    assert!(run(c.ping()).is_ok());
    let s = seen(&m);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].url, "http://reg.test:5000/v2/");
    // known scheme: credentials sent up front
    assert!(run(c.ping()).is_ok());
    assert_eq!(seen(&m).len(), 3);

    let wrong = RegistryClient::new(
        m.clone(),
        "reg.test:5000",
        ClientOptions {
            insecure: true,
            credentials: Some(Credentials::new("u", "nope")),
        },
    );
    let e = run(wrong.ping());
    assert!(
        matches!(e, Err(RegistryError::Unauthorized { .. })),
        "{e:?}"
    );
    let anon = RegistryClient::new(m, "reg.test:5000", ClientOptions::default());
    let e = run(anon.ping());
    assert!(
        matches!(e, Err(RegistryError::Unauthorized { .. })),
        "{e:?}"
    );
}

#[test]
fn digest_checks_on_fetch() {
    let body = manifest_bytes();
    let b2 = body.clone();
    let m = mock(Box::new(move |_, _| {
        (
            200,
            vec![
                ("Content-Type", OCI_MANIFEST.to_string()),
                (
                    "Docker-Content-Digest",
                    Digest::sha256_of(b"other").to_string(),
                ),
            ],
            b2.clone(),
        )
    }));
    let c = RegistryClient::new(m, "r", ClientOptions::default());
    // by tag: the header disagrees with the bytes
    let e = run(c.get_manifest("a", "t"));
    assert!(matches!(e, Err(RegistryError::Manifest(_))), "{e:?}");
    // by digest: the bytes must hash to it
    let e = run(c.get_manifest("a", &Digest::sha256_of(b"x").to_string()));
    assert!(matches!(e, Err(RegistryError::Manifest(_))), "{e:?}");
    assert_eq!(e.err().map(|e| e.http_status()), Some(502));
    // a repository name that could break the URL is refused before sending
    let e = run(c.get_manifest("../etc", "t"));
    assert!(matches!(e, Err(RegistryError::Reference(_))), "{e:?}");
}

#[test]
fn chunked_upload_request_shapes() {
    let m = mock(Box::new(|req, n| match req.method {
        Method::Post => (
            202,
            vec![("Location", "/v2/a/blobs/uploads/u1?_state=s".to_string())],
            vec![],
        ),
        Method::Patch => (
            202,
            vec![("Location", format!("/v2/a/blobs/uploads/u1?_state=s{n}"))],
            vec![],
        ),
        Method::Put => (201, vec![], vec![]),
        _ => (500, vec![], vec![]),
    }));
    let c = RegistryClient::new(m.clone(), "r", ClientOptions::default());
    let data: Vec<u8> = (0..25u8).collect();
    let d = Digest::sha256_of(&data);
    let body = Body::Stream {
        stream: stream_from_chunks(vec![
            Bytes::from(data[..7].to_vec()),
            Bytes::from(data[7..].to_vec()),
        ]),
        length: Some(25),
    };
    let r = run(c.push_blob("a", &d, body, UploadMode::Chunked { chunk_size: 10 }));
    assert!(r.is_ok(), "{r:?}");
    let s = seen(&m);
    let ranges: Vec<_> = s.iter().filter_map(|x| x.content_range.clone()).collect();
    assert_eq!(ranges, vec!["0-9", "10-19", "20-24"]);
    let put = s.last().map(|x| x.url.clone()).unwrap_or_default();
    assert_eq!(
        put,
        format!(
            "https://r/v2/a/blobs/uploads/u1?_state=s4&digest=sha256%3A{}",
            d.hex()
        )
    );
    assert_eq!(s[0].method, Method::Post);
    assert_eq!(s[1].method, Method::Patch);
    assert!(s[1].content_type.as_deref() == Some("application/octet-stream"));
}

#[test]
fn manifest_put_sends_exact_bytes_and_type() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g2 = got.clone();
    let m = mock(Box::new(move |req, _| {
        if let Body::Bytes(b) = &req.body {
            *g2.lock().unwrap_or_else(|p| p.into_inner()) = b.to_vec();
        }
        (201, vec![], vec![])
    }));
    let c = RegistryClient::new(m.clone(), "r", ClientOptions::default());
    let mut bytes = manifest_bytes();
    bytes.extend_from_slice(b"\n  ");
    let raw = crate::image::manifest::RawManifest::from_bytes(bytes.clone(), None);
    let Ok(raw) = raw else { panic!("manifest") };
    let d = run(c.push_manifest("a", &raw));
    assert_eq!(d.ok().as_ref(), Some(raw.digest()));
    assert_eq!(*got.lock().unwrap_or_else(|p| p.into_inner()), bytes);
    let s = seen(&m);
    assert_eq!(s[0].content_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(
        s[0].url,
        format!("https://r/v2/a/manifests/{}", raw.digest())
    );
    assert!(run(c.tag_manifest("a", "bad:tag", &raw)).is_err());
}

/// Natively the client and its futures must be `Send` (the CLI spawns them on tokio).
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn client_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    fn is_sync<T: Sync>(_: &T) {}
    let m = mock(Box::new(|_, _| (200, vec![], vec![])));
    let c = RegistryClient::new(m, "r", ClientOptions::default());
    is_sync(&c);
    let d = Digest::sha256_of(b"");
    is_send(&c.get_manifest("a", "t"));
    is_send(&c.get_blob("a", &d, None));
    is_send(&c.push_blob("a", &d, Body::Empty, UploadMode::Monolithic));
    is_send(&c.mount_blob("a", &d, "b"));
    is_send(&c.list_tags("a"));
    is_send(
        &c.resolve_image(
            &crate::image::reference::Reference::from_parts("r", "a", Some("t"), None)
                .unwrap_or_else(|e| panic!("{e}")),
            &crate::image::manifest::PlatformSpec::linux_amd64(),
        ),
    );
}

/// A manifest with `layers` layer descriptors and a config descriptor of `config_size`.
fn big_manifest(layers: usize, config_size: u64) -> Vec<u8> {
    let layer = format!(
        r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":1}}"#,
        Digest::sha256_of(b"x")
    );
    let all = vec![layer; layers].join(",");
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{config_size}}},"layers":[{all}]}}"#,
        Digest::sha256_of(b"{}")
    )
    .into_bytes()
}

fn resolve_with(
    body: Vec<u8>,
    limits: crate::image::limits::ImageLimits,
) -> (Result<ResolvedImage, RegistryError>, usize) {
    let m = mock(Box::new(move |req, _| {
        if req.url.contains("/manifests/") {
            (
                200,
                vec![("content-type", OCI_MANIFEST.to_string())],
                body.clone(),
            )
        } else {
            (200, vec![], b"{}".to_vec())
        }
    }));
    let c = RegistryClient::new(m.clone(), "r", ClientOptions::default()).with_limits(limits);
    let r = run(c.resolve_image(
        &crate::image::reference::Reference::from_parts("r", "a", Some("t"), None)
            .unwrap_or_else(|e| panic!("{e}")),
        &crate::image::manifest::PlatformSpec::linux_amd64(),
    ));
    (r, seen(&m).len())
}

#[test]
fn limits_refuse_huge_manifests_and_configs_before_fetching_them() {
    use crate::image::limits::ImageLimits;
    let limit_of = |e: &RegistryError| match e {
        RegistryError::Limit { source, .. } => source.name,
        _ => "none",
    };
    // 10,000 layers: refused after the one manifest GET, before the config.
    let (r, requests) = resolve_with(big_manifest(10_000, 2), ImageLimits::default());
    let e = r.err().unwrap_or_else(|| panic!("accepted"));
    assert_eq!(limit_of(&e), "manifest-layers", "{e}");
    assert!(e.to_string().contains("manifest-layers=1000"), "{e}");
    assert_eq!(e.http_status(), 400);
    assert_eq!(requests, 1);
    // A 16 MiB config: refused from its descriptor, never fetched.
    let (r, requests) = resolve_with(big_manifest(1, 16 << 20), ImageLimits::default());
    let e = r.err().unwrap_or_else(|| panic!("accepted"));
    assert_eq!(limit_of(&e), "config-bytes", "{e}");
    assert_eq!(requests, 1);
    // A manifest larger than manifest-bytes.
    let small = ImageLimits {
        manifest_bytes: 1000,
        ..ImageLimits::default()
    };
    let (r, _) = resolve_with(big_manifest(20, 2), small);
    let e = r.err().unwrap_or_else(|| panic!("accepted"));
    assert_eq!(limit_of(&e), "manifest-bytes", "{e}");
    // Within the limits, the same shapes resolve.
    let (r, requests) = resolve_with(big_manifest(3, 2), ImageLimits::default());
    assert!(r.is_ok(), "{:?}", r.err());
    assert_eq!(requests, 2);
}

/// A timer that records the waits and returns at once.
#[derive(Default)]
struct InstantTimer(Mutex<Vec<u64>>);

#[kiln_macros::async_trait]
impl Timer for InstantTimer {
    async fn sleep_ms(&self, ms: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(ms);
    }
}

#[derive(Default)]
struct Notices(Mutex<Vec<RetryNotice>>);

impl RetryObserver for Notices {
    fn retrying(&self, notice: &RetryNotice) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(notice.clone());
    }
}

#[test]
fn idempotent_requests_are_retried_with_retry_after_and_bounded() {
    let failures = 2;
    let m = mock(Box::new(move |req, n| {
        if req.method == Method::Get && n <= failures {
            return (
                if n == 1 { 429 } else { 503 },
                vec![("retry-after", "2".to_string())],
                vec![],
            );
        }
        if req.method == Method::Put {
            return (503, vec![], vec![]);
        }
        (
            200,
            vec![("content-type", OCI_MANIFEST.to_string())],
            manifest_bytes(),
        )
    }));
    let timer = Arc::new(InstantTimer::default());
    let notices = Arc::new(Notices::default());
    let retry = Retry {
        policy: RetryPolicy::default(),
        timer: timer.clone(),
        observer: Some(notices.clone()),
    };
    let c = RegistryClient::new(m.clone(), "r", ClientOptions::default()).with_retry(retry.clone());
    let raw = run(c.get_manifest("a", "t")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(raw.bytes().as_ref(), manifest_bytes().as_slice());
    assert_eq!(seen(&m).len(), 3);
    assert_eq!(*timer.0.lock().unwrap(), vec![2000, 2000]);
    let n = notices.0.lock().unwrap().clone();
    assert_eq!(n.len(), 2);
    assert_eq!((n[0].attempt, n[0].reason.as_str()), (1, "HTTP 429"));
    assert!(n[1].operation.contains("GET manifest a:t"), "{:?}", n[1]);

    // A PUT is never retried.
    let before = seen(&m).len();
    let raw = crate::image::manifest::RawManifest::from_bytes(manifest_bytes(), Some(OCI_MANIFEST))
        .unwrap();
    assert!(run(c.put_manifest("a", "t", &raw)).is_err());
    assert_eq!(seen(&m).len(), before + 1);

    // Persistent failures: max_tries attempts, then the registry's error.
    let always = mock(Box::new(|_, _| (502, vec![], vec![])));
    let timer2 = Arc::new(InstantTimer::default());
    let c = RegistryClient::new(always.clone(), "r", ClientOptions::default()).with_retry(Retry {
        policy: RetryPolicy {
            max_tries: 4,
            ..RetryPolicy::default()
        },
        timer: timer2.clone(),
        observer: None,
    });
    let e = run(c.get_manifest("a", "t"))
        .err()
        .unwrap_or_else(|| panic!("ok"));
    assert!(e.to_string().contains("502"), "{e}");
    assert_eq!(seen(&always).len(), 4);
    let waits = timer2.0.lock().unwrap().clone();
    assert_eq!(waits.len(), 3);
    for (i, w) in waits.iter().enumerate() {
        assert!(*w <= 500 << i, "{waits:?}");
    }
    // And bounded in total time: a Retry-After beyond max_total_ms is not waited for.
    let slow = mock(Box::new(|_, _| {
        (503, vec![("retry-after", "100".to_string())], vec![])
    }));
    let c = RegistryClient::new(slow.clone(), "r", ClientOptions::default()).with_retry(Retry {
        policy: RetryPolicy {
            max_delay_ms: 1_000_000,
            max_total_ms: 60_000,
            ..RetryPolicy::default()
        },
        timer: Arc::new(InstantTimer::default()),
        observer: None,
    });
    assert!(run(c.get_manifest("a", "t")).is_err());
    assert_eq!(seen(&slow).len(), 1);
}

#[test]
fn uploads_from_memory_start_over_in_new_sessions_and_quirks_pass() {
    // POST answers 201 (not 202) with a path-relative Location; the first PUT fails with
    // 503 (its session then cancelled with DELETE), the second succeeds with 202 and no
    // Docker-Content-Digest.
    let m = mock(Box::new(move |req, n| match req.method {
        Method::Post => (201, vec![("Location", format!("s{n}?_state=x"))], vec![]),
        Method::Put if n == 2 => (503, vec![], vec![]),
        Method::Put => (202, vec![], vec![]),
        _ => (404, vec![], vec![]),
    }));
    let timer = Arc::new(InstantTimer::default());
    let notices = Arc::new(Notices::default());
    let retry = Retry {
        policy: RetryPolicy::default(),
        timer: timer.clone(),
        observer: Some(notices.clone()),
    };
    let c = RegistryClient::new(m.clone(), "r", ClientOptions::default()).with_retry(retry);
    let d = Digest::sha256_of(b"data");
    let r = run(c.push_blob(
        "a",
        &d,
        Body::Bytes(Bytes::from_static(b"data")),
        UploadMode::Monolithic,
    ));
    assert!(r.is_ok(), "{r:?}");
    let s = seen(&m);
    let urls: Vec<_> = s.iter().map(|x| (x.method, x.url.as_str())).collect();
    assert_eq!(
        urls,
        vec![
            (Method::Post, "https://r/v2/a/blobs/uploads/"),
            (
                Method::Put,
                &*format!(
                    "https://r/v2/a/blobs/uploads/s1?_state=x&digest={}",
                    d.to_string().replace(':', "%3A")
                )
            ),
            // The failed session is cancelled before the new one starts.
            (Method::Delete, "https://r/v2/a/blobs/uploads/s1?_state=x"),
            (Method::Post, "https://r/v2/a/blobs/uploads/"),
            (
                Method::Put,
                &*format!(
                    "https://r/v2/a/blobs/uploads/s4?_state=x&digest={}",
                    d.to_string().replace(':', "%3A")
                )
            ),
        ]
    );
    let n = notices.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(n.len(), 1);
    assert!(n[0].operation.contains("in a new session"), "{n:?}");

    // A registry that reports another digest for the upload is an error, not retried.
    let m = mock(Box::new(move |req, _| match req.method {
        Method::Post => (202, vec![("Location", "/u".to_string())], vec![]),
        _ => (
            201,
            vec![(
                "Docker-Content-Digest",
                Digest::sha256_of(b"other").to_string(),
            )],
            vec![],
        ),
    }));
    let c = RegistryClient::new(m.clone(), "r", ClientOptions::default());
    let r = run(c.push_blob(
        "a",
        &d,
        Body::Bytes(Bytes::from_static(b"data")),
        UploadMode::Monolithic,
    ));
    assert!(
        matches!(r, Err(RegistryError::ContentMismatch { .. })),
        "{r:?}"
    );

    // A 4xx refusal is final: one session only, cancelled.
    let m = mock(Box::new(move |req, _| match req.method {
        Method::Post => (202, vec![("Location", "/u".to_string())], vec![]),
        _ => (400, vec![], vec![]),
    }));
    let retry = Retry {
        policy: RetryPolicy::default(),
        timer: timer.clone(),
        observer: None,
    };
    let c = RegistryClient::new(m.clone(), "r", ClientOptions::default()).with_retry(retry);
    assert!(run(c.push_blob(
        "a",
        &d,
        Body::Bytes(Bytes::from_static(b"data")),
        UploadMode::Monolithic
    ))
    .is_err());
    let methods: Vec<Method> = seen(&m).iter().map(|x| x.method).collect();
    assert_eq!(methods, [Method::Post, Method::Put, Method::Delete]);
}

#[test]
fn manifest_head_refused_falls_back_to_get() {
    for refused in [405u16, 404, 400] {
        let m = mock(Box::new(move |req, _| match req.method {
            Method::Head => (refused, vec![], vec![]),
            _ if req.url.ends_with("/missing") => (404, vec![], vec![]),
            _ => (
                200,
                vec![("Content-Type", OCI_MANIFEST.to_string())],
                manifest_bytes(),
            ),
        }));
        let c = RegistryClient::new(m.clone(), "r", ClientOptions::default());
        let info = run(c.head_manifest("a", "t"))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{refused}: absent"));
        assert_eq!(info.digest, Some(Digest::sha256_of(&manifest_bytes())));
        assert_eq!(info.size, Some(manifest_bytes().len() as u64));
        assert_eq!(run(c.head_manifest("a", "missing")).ok(), Some(None));
        let methods: Vec<_> = seen(&m).iter().map(|s| s.method).collect();
        assert_eq!(
            methods,
            [Method::Head, Method::Get, Method::Head, Method::Get],
            "{refused}"
        );
    }
    // A HEAD without Docker-Content-Digest: GET computes it.
    let m = mock(Box::new(move |req, _| match req.method {
        Method::Head => (
            200,
            vec![("Content-Type", OCI_MANIFEST.to_string())],
            vec![],
        ),
        _ => (
            200,
            vec![("Content-Type", OCI_MANIFEST.to_string())],
            manifest_bytes(),
        ),
    }));
    let c = RegistryClient::new(m.clone(), "r", ClientOptions::default());
    let info = run(c.head_manifest("a", "t")).ok().flatten();
    assert_eq!(
        info.and_then(|i| i.digest),
        Some(Digest::sha256_of(&manifest_bytes()))
    );
}
