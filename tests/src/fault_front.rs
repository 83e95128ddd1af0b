//! A fault-injecting front for a registry, on loopback: an HTTP/1.1 proxy that reads
//! every request, relays it to the registry behind it (one upstream connection per
//! request) and relays the answer, injecting what [`FrontOptions`] asks on the way.
//!
//! Transient faults (`fault_percent`, by a seeded schedule over the `GET`/`HEAD`
//! requests, counted from 0): `503` with `Retry-After: 0`, `502`, `429` with
//! `Retry-After: 0`, or a reset (the connection closed without an answer). A faulted
//! answer closes its connection, so the client opens new ones.
//!
//! Registry quirks real registries show, each switched on per test:
//! - `redirect_blobs`: a blob `GET` is answered `307` to a second loopback host (a
//!   "storage" server on another port) with a signed URL; that host serves the blob
//!   from the registry's storage directory and counts the requests that arrived with an
//!   `Authorization` header (which must never follow a redirect to another host);
//! - `location`: upload `Location`s rewritten relative (`/v2/...`), absolute
//!   (`http://127.0.0.1:PORT/v2/...`), with or without their query;
//! - `upload_status_swap`: `202` answers on upload steps (POST, PATCH) become `201`, and
//!   the final PUT's `201` becomes `202`;
//! - `strip_content_digest`: no `Docker-Content-Digest` in any answer;
//! - `manifest_head_status`: a manifest `HEAD` is refused with this status while `GET`
//!   works;
//! - `blob_body`: the first answer to each blob `GET` (full or ranged) is cut after half
//!   its body (the connection closed, no reset) or stalls there (the connection held open
//!   without another byte until the client gives up); `ignore_range` answers `Range`
//!   requests `200` with the whole blob;
//! - `upload_faults`: the first N `PATCH`/`PUT` requests of blob uploads are answered
//!   `500` (their bodies read first), so an upload breaks mid-way.
//!
//! Counters ([`FrontStats`]) let tests assert what happened without timing anything.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::loopback_http::LoopbackServer;
use crate::HarnessError;

/// How upload `Location`s are rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocationStyle {
    /// As the registry sent them (distribution: relative with a query).
    #[default]
    AsIs,
    /// A path (`/v2/...`), query kept.
    Relative,
    /// A path with the query dropped (the session lives in the path).
    RelativeNoQuery,
    /// `http://HOST:PORT/v2/...` of the front, query kept.
    Absolute,
    /// `http://HOST:PORT/v2/...` of the front, query dropped.
    AbsoluteNoQuery,
}

/// What happens to blob bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlobBody {
    /// Relayed whole.
    #[default]
    Whole,
    /// The first answer to each blob GET stops after half its body and the connection
    /// is closed (a clean close, not a reset).
    CutOnce,
    /// The first answer to each blob GET stops after half its body and the connection
    /// stays open, silent, until the client closes it.
    StallOnce,
    /// Every answer to a blob GET stops after half its body (closed): a persistent
    /// fault.
    CutAlways,
}

/// What the front injects.
#[derive(Debug, Clone, Default)]
pub struct FrontOptions {
    /// Percent of `GET`/`HEAD` requests answered with a transient fault.
    pub fault_percent: u64,
    /// Seed of the fault schedule.
    pub seed: u64,
    /// Blob GETs redirected (307) to a second host with a signed URL; needs
    /// `storage_root`.
    pub redirect_blobs: bool,
    /// The registry's storage root (`TestRegistry::storage_root`), read by the
    /// redirect target.
    pub storage_root: Option<PathBuf>,
    /// How upload `Location`s are rewritten.
    pub location: LocationStyle,
    /// 202 ↔ 201 on upload steps.
    pub upload_status_swap: bool,
    /// No `Docker-Content-Digest` headers.
    pub strip_content_digest: bool,
    /// A manifest `HEAD` is answered with this status (e.g. 405, 404).
    pub manifest_head_status: Option<u16>,
    /// Blob bodies cut or stalled.
    pub blob_body: BlobBody,
    /// `Range` requests answered 200 with the whole body.
    pub ignore_range: bool,
    /// The first N blob-upload `PATCH`/`PUT` requests are answered 500.
    pub upload_faults: u64,
}

/// What the front did, counted.
#[derive(Debug, Default)]
pub struct FrontStats {
    /// Transient faults injected (on `GET`/`HEAD`).
    pub faults: AtomicU64,
    /// Blob GETs answered with a redirect.
    pub redirects: AtomicU64,
    /// Requests served by the redirect target.
    pub redirected_gets: AtomicU64,
    /// Requests at the redirect target that carried `Authorization`.
    pub redirected_with_authorization: AtomicU64,
    /// Requests at the redirect target with a bad signature (refused 403).
    pub bad_signatures: AtomicU64,
    /// Blob bodies cut mid-way.
    pub cuts: AtomicU64,
    /// Blob bodies stalled mid-way.
    pub stalls: AtomicU64,
    /// Blob GETs carrying a `Range` header.
    pub range_requests: AtomicU64,
    /// `Range` requests answered 200 (the range ignored).
    pub ranges_ignored: AtomicU64,
    /// Manifest `HEAD`s refused.
    pub manifest_heads_refused: AtomicU64,
    /// Upload `PATCH`/`PUT` requests answered 500.
    pub upload_faults: AtomicU64,
    /// Upload sessions opened (`POST .../blobs/uploads/`).
    pub upload_starts: AtomicU64,
    /// `Location` headers rewritten.
    pub locations_rewritten: AtomicU64,
    /// `Docker-Content-Digest` headers removed.
    pub digests_stripped: AtomicU64,
    /// Upload answers whose status was swapped.
    pub statuses_swapped: AtomicU64,
}

impl FrontStats {
    /// One counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

struct Shared {
    options: FrontOptions,
    upstream_port: u16,
    front_port: AtomicU64,
    storage_port: AtomicU64,
    stats: Arc<FrontStats>,
    requests: AtomicU64,
    /// Blob paths whose first GET was already cut or stalled.
    broken_once: Mutex<HashSet<String>>,
    /// Upload session path → the query a query-less `Location` dropped (as a
    /// registry keeping session state server-side would).
    sessions: Mutex<std::collections::HashMap<String, String>>,
}

/// The front (and its redirect target); both stop on drop.
pub struct FaultFront {
    server: LoopbackServer,
    _storage: Option<LoopbackServer>,
    stats: Arc<FrontStats>,
}

/// The redirect target's signing key (the front and its storage share it).
const SIGNING_KEY: &[u8] = b"kiln-fault-front-signing-key";

impl FaultFront {
    /// Fronts `127.0.0.1:{upstream_port}`, faulting `percent` % of the `GET`/`HEAD`
    /// requests, chosen by `seed`.
    pub fn start(upstream_port: u16, percent: u64, seed: u64) -> Result<Self, HarnessError> {
        Self::with_options(
            upstream_port,
            FrontOptions {
                fault_percent: percent,
                seed,
                ..FrontOptions::default()
            },
        )
    }

    /// Fronts `127.0.0.1:{upstream_port}` with `options`.
    pub fn with_options(upstream_port: u16, options: FrontOptions) -> Result<Self, HarnessError> {
        let stats = Arc::new(FrontStats::default());
        let shared = Arc::new(Shared {
            options,
            upstream_port,
            front_port: AtomicU64::new(0),
            storage_port: AtomicU64::new(0),
            stats: stats.clone(),
            requests: AtomicU64::new(0),
            broken_once: Mutex::new(HashSet::new()),
            sessions: Mutex::new(std::collections::HashMap::new()),
        });
        let storage = if shared.options.redirect_blobs {
            let s2 = shared.clone();
            let server = LoopbackServer::start(move |conn| {
                let _ = serve_storage(conn, &s2);
            })?;
            shared
                .storage_port
                .store(u64::from(server.port()), Ordering::SeqCst);
            Some(server)
        } else {
            None
        };
        let s2 = shared.clone();
        let server = LoopbackServer::start(move |conn| {
            let _ = serve(conn, &s2);
        })?;
        shared
            .front_port
            .store(u64::from(server.port()), Ordering::SeqCst);
        Ok(FaultFront {
            server,
            _storage: storage,
            stats,
        })
    }

    /// `127.0.0.1:PORT`, for references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// Transient faults injected so far.
    pub fn faults(&self) -> u64 {
        FrontStats::get(&self.stats.faults)
    }

    /// All counters.
    pub fn stats(&self) -> &FrontStats {
        &self.stats
    }
}

/// What a conversion through fronted registries ([`convert_fronted`]) ended with.
pub struct FrontedRun {
    /// The conversion's outcome.
    pub result: Result<kiln_engine::pipeline::ConvertOutcome, kiln_engine::api::ApiError>,
    /// Its progress events (retries among them).
    pub events: Vec<kiln_engine::pipeline::Event>,
    /// Whether the output tag exists afterwards.
    pub tagged: bool,
}

impl FrontedRun {
    /// How many `Event::Retry` the conversion reported.
    pub fn retries(&self) -> u64 {
        self.events
            .iter()
            .filter(|e| matches!(e, kiln_engine::pipeline::Event::Retry { .. }))
            .count() as u64
    }

    /// How many `Event::Retry` whose operation contains `what` (e.g. "resuming at byte").
    pub fn retries_of(&self, what: &str) -> u64 {
        self.events
            .iter()
            .filter(|e| {
                matches!(e, kiln_engine::pipeline::Event::Retry { operation, .. }
                    if operation.contains(what))
            })
            .count() as u64
    }

    /// Panics (naming `what`) unless the conversion succeeded and tagged its output.
    pub fn ok(&self, what: &str) {
        if let Err(e) = &self.result {
            panic!("{what}: conversion failed: {e}");
        }
        assert!(self.tagged, "{what}: no tag");
    }
}

/// The fault tests' conversion: `app:1` on `input_host` into `app-sgx:1` on
/// `output_host` (either may be a [`FaultFront`]'s host; both plain HTTP), the runtime
/// image `kiln/runtime:fixture` on `runtime_host`, over `transport`, signed with
/// engine/testdata's test key, retries quick (5–50 ms backoff on the tokio timer) and
/// progress recorded. `tune` adjusts the environment and the request (upload mode,
/// limits, credentials) before the conversion. The tag is looked up on `output`, the
/// registry behind `output_host`.
pub async fn convert_fronted(
    transport: Arc<dyn kiln_engine::image::transport::Transport>,
    input_host: &str,
    output_host: &str,
    runtime_host: &str,
    output: &crate::registry::TestRegistry,
    tune: impl FnOnce(&mut kiln_engine::pipeline::PipelineEnv, &mut kiln_engine::api::ConvertRequest),
) -> Result<FrontedRun, HarnessError> {
    use kiln_engine::pipeline::progress::RecordingProgress;
    let progress = Arc::new(RecordingProgress::default());
    let mut env = crate::runtime_fixture::test_pipeline_env(
        transport,
        format!("{runtime_host}/kiln/runtime:fixture"),
        input_host,
    )?;
    env.registry = env.registry.with_insecure(output_host);
    env.progress = progress.clone();
    env.timer = Some(Arc::new(kiln_native::TokioTimer));
    env.retry = kiln_engine::image::registry::RetryPolicy {
        base_delay_ms: 5,
        max_delay_ms: 50,
        ..kiln_engine::image::registry::RetryPolicy::default()
    };
    let mut req = kiln_engine::api::ConvertRequest {
        input_image_name: format!("{input_host}/app:1"),
        output_image_name: format!("{output_host}/app-sgx:1"),
        ..Default::default()
    };
    tune(&mut env, &mut req);
    let result = kiln_engine::pipeline::convert(req, &env).await;
    let tagged = crate::images::tag_exists(&output.client(None)?, "app-sgx", "1").await;
    Ok(FrontedRun {
        result,
        events: progress.events(),
        tagged,
    })
}

/// Whether the `n`th `GET`/`HEAD` request (0-based) is faulted under `seed` and `percent`.
pub fn faulted(seed: u64, n: u64, percent: u64) -> bool {
    mix(seed ^ n) % 100 < percent
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One HTTP message head and body.
struct Message {
    /// Request line or status line.
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn remove(&mut self, name: &str) -> bool {
        let before = self.headers.len();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        before != self.headers.len()
    }

    fn set(&mut self, name: &str, value: String) {
        self.remove(name);
        self.headers.push((name.to_string(), value));
    }
}

const HEAD_MAX: usize = 64 * 1024;
const BODY_MAX: usize = 512 * 1024 * 1024;

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// A start line and its headers.
type Head = (String, Vec<(String, String)>);

/// Reads a head; `None` on a clean EOF before any byte.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut start = String::new();
    if r.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    let mut total = start.len();
    loop {
        let mut line = String::new();
        let k = r.read_line(&mut line)?;
        total += k;
        if k == 0 || total > HEAD_MAX {
            return Err(invalid("head cut or too large"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some((start.trim_end().to_string(), headers)))
}

/// Reads a body framed by `headers`: chunked (decoded), `Content-Length`, or (for a
/// response with neither) up to EOF.
fn read_body(
    r: &mut impl BufRead,
    headers: &[(String, String)],
    to_eof: bool,
) -> std::io::Result<Vec<u8>> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            let size_hex = size_line.trim().split(';').next().unwrap_or("");
            let size =
                usize::from_str_radix(size_hex, 16).map_err(|_| invalid("bad chunk size"))?;
            if body.len() + size > BODY_MAX {
                return Err(invalid("body too large"));
            }
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l)? == 0 || l.trim().is_empty() {
                        return Ok(body);
                    }
                }
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    }
    if let Some(len) = get("content-length") {
        let len: usize = len.parse().map_err(|_| invalid("bad Content-Length"))?;
        if len > BODY_MAX {
            return Err(invalid("body too large"));
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        return Ok(body);
    }
    let mut body = Vec::new();
    if to_eof {
        r.take(BODY_MAX as u64).read_to_end(&mut body)?;
    }
    Ok(body)
}

/// Writes a message with a `Content-Length` framing (kept from the headers for a
/// `HEAD` answer, whose body is empty), then `len` bytes of its body.
fn write_message(
    w: &mut impl Write,
    m: &Message,
    head_answer: bool,
    body_len: usize,
    close: bool,
) -> std::io::Result<()> {
    let mut out = format!("{}\r\n", m.start);
    for (n, v) in &m.headers {
        let skip = n.eq_ignore_ascii_case("connection")
            || n.eq_ignore_ascii_case("keep-alive")
            || n.eq_ignore_ascii_case("transfer-encoding")
            || (n.eq_ignore_ascii_case("content-length") && !head_answer);
        if !skip {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    if !head_answer {
        out.push_str(&format!("Content-Length: {}\r\n", m.body.len()));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    w.write_all(out.as_bytes())?;
    w.write_all(&m.body[..body_len.min(m.body.len())])?;
    w.flush()
}

fn status_line(status: u16) -> String {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        206 => "Partial Content",
        307 => "Temporary Redirect",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Status",
    };
    format!("HTTP/1.1 {status} {reason}")
}

fn simple(status: u16, extra: &[(&str, String)]) -> Message {
    Message {
        start: status_line(status),
        headers: extra
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect(),
        body: Vec::new(),
    }
}

/// `/v2/<name>/blobs/sha256:<hex>` → (name, digest).
fn blob_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v2/")?;
    let (name, digest) = rest.rsplit_once("/blobs/")?;
    if digest.starts_with("sha256:") && !digest.contains('/') {
        Some((name, digest))
    } else {
        None
    }
}

fn signature(path: &str) -> String {
    let mut h = Sha256::new();
    h.update(SIGNING_KEY);
    h.update(path.as_bytes());
    hex::encode(h.finalize())
}

fn serve(conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    let opts = &shared.options;
    let stats = &shared.stats;
    loop {
        let Some((start, headers)) = read_head(&mut reader)? else {
            return Ok(());
        };
        let body = read_body(&mut reader, &headers, false)?;
        let mut req = Message {
            start,
            headers,
            body,
        };
        let mut parts = req.start.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let path = target.split('?').next().unwrap_or("").to_string();
        let idempotent = method == "GET" || method == "HEAD";
        let blob = blob_path(&path).map(|(n, d)| (n.to_string(), d.to_string()));
        let is_upload = path.contains("/blobs/uploads/");

        if idempotent {
            let n = shared.requests.fetch_add(1, Ordering::SeqCst);
            if opts.fault_percent > 0 && faulted(opts.seed, n, opts.fault_percent) {
                stats.faults.fetch_add(1, Ordering::SeqCst);
                let answer: &[u8] = match mix(opts.seed ^ n ^ 0xfa) % 4 {
                    0 => b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    1 => b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    2 => b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    _ => b"",
                };
                writer.write_all(answer)?;
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
        if method == "HEAD" && path.contains("/manifests/") {
            if let Some(status) = opts.manifest_head_status {
                stats.manifest_heads_refused.fetch_add(1, Ordering::SeqCst);
                write_message(&mut writer, &simple(status, &[]), false, 0, false)?;
                continue;
            }
        }
        if method == "GET" && opts.redirect_blobs {
            if let Some((name, digest)) = &blob {
                stats.redirects.fetch_add(1, Ordering::SeqCst);
                let port = shared.storage_port.load(Ordering::SeqCst);
                let spath = format!("/storage/{name}/{digest}");
                let loc = format!(
                    "http://127.0.0.1:{port}{spath}?X-Signature={}&expires=4102444800",
                    signature(&spath)
                );
                write_message(
                    &mut writer,
                    &simple(307, &[("Location", loc)]),
                    false,
                    0,
                    false,
                )?;
                continue;
            }
        }
        // Counted atomically, so concurrent uploads never fault more than N in all.
        if is_upload
            && (method == "PATCH" || method == "PUT")
            && stats
                .upload_faults
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < opts.upload_faults).then_some(n + 1)
                })
                .is_ok()
        {
            let m = Message {
                start: status_line(500),
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: br#"{"errors":[{"code":"UNKNOWN","message":"injected upload fault"}]}"#
                    .to_vec(),
            };
            write_message(&mut writer, &m, false, m.body.len(), true)?;
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
        if method == "POST" && is_upload {
            stats.upload_starts.fetch_add(1, Ordering::SeqCst);
        }
        if is_upload {
            // Give a session whose Location lost its query that query back.
            if let Some(kept) = lock(&shared.sessions).get(&path).cloned() {
                let client_query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                let query = if client_query.is_empty() {
                    kept
                } else {
                    format!("{kept}&{client_query}")
                };
                req.start = format!("{method} {path}?{query} HTTP/1.1");
            }
        }
        let ranged = method == "GET" && blob.is_some() && req.header("range").is_some();
        if ranged {
            stats.range_requests.fetch_add(1, Ordering::SeqCst);
            if opts.ignore_range {
                req.remove("range");
                stats.ranges_ignored.fetch_add(1, Ordering::SeqCst);
            }
        }

        // Relay to the registry.
        let mut resp = relay(shared.upstream_port, &mut req, method == "HEAD")?;
        let status: u16 = resp
            .start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);

        if opts.strip_content_digest && resp.remove("docker-content-digest") {
            stats.digests_stripped.fetch_add(1, Ordering::SeqCst);
        }
        if is_upload && opts.location != LocationStyle::AsIs {
            if let Some(loc) = resp.header("location").map(str::to_string) {
                let front = shared.front_port.load(Ordering::SeqCst);
                let new = rewrite_location(&loc, opts.location, front);
                if let (false, Some((_, q))) = (new.contains('?'), loc.split_once('?')) {
                    let p = rewrite_location(&loc, LocationStyle::RelativeNoQuery, front);
                    lock(&shared.sessions).insert(p, q.to_string());
                }
                resp.set("Location", new);
                stats.locations_rewritten.fetch_add(1, Ordering::SeqCst);
            }
        }
        if is_upload && opts.upload_status_swap {
            let new = match (method.as_str(), status) {
                ("POST" | "PATCH", 202) => Some(201),
                ("PUT", 201) => Some(202),
                _ => None,
            };
            if let Some(s) = new {
                resp.start = status_line(s);
                stats.statuses_swapped.fetch_add(1, Ordering::SeqCst);
            }
        }
        let break_body = method == "GET"
            && blob.is_some()
            && matches!(status, 200 | 206)
            && opts.blob_body != BlobBody::Whole
            && resp.body.len() >= 2
            && (opts.blob_body == BlobBody::CutAlways
                || lock(&shared.broken_once).insert(path.clone()));
        if break_body {
            let half = resp.body.len() / 2;
            write_message(&mut writer, &resp, false, half, false)?;
            match opts.blob_body {
                BlobBody::StallOnce => {
                    stats.stalls.fetch_add(1, Ordering::SeqCst);
                    // Silent until the client gives up (its read timeout) or 120 s.
                    let mut sink = [0u8; 1024];
                    while matches!(reader.read(&mut sink), Ok(k) if k > 0) {}
                }
                _ => {
                    stats.cuts.fetch_add(1, Ordering::SeqCst);
                }
            }
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
        write_message(&mut writer, &resp, method == "HEAD", resp.body.len(), false)?;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn rewrite_location(loc: &str, style: LocationStyle, front_port: u64) -> String {
    // Strip any scheme://authority first.
    let path_and_query = match loc.find("://") {
        Some(i) => {
            let rest = &loc[i + 3..];
            rest.find('/').map(|j| &rest[j..]).unwrap_or("/")
        }
        None => loc,
    };
    let path = path_and_query.split('?').next().unwrap_or("");
    match style {
        LocationStyle::AsIs => loc.to_string(),
        LocationStyle::Relative => path_and_query.to_string(),
        LocationStyle::RelativeNoQuery => path.to_string(),
        LocationStyle::Absolute => format!("http://127.0.0.1:{front_port}{path_and_query}"),
        LocationStyle::AbsoluteNoQuery => format!("http://127.0.0.1:{front_port}{path}"),
    }
}

/// Sends `req` to the registry on a fresh connection and reads its whole answer.
fn relay(upstream_port: u16, req: &mut Message, head: bool) -> std::io::Result<Message> {
    let up = TcpStream::connect(("127.0.0.1", upstream_port))?;
    up.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut w = up.try_clone()?;
    req.remove("connection");
    req.remove("transfer-encoding");
    req.remove("keep-alive");
    req.set("Content-Length", req.body.len().to_string());
    let mut out = format!("{}\r\n", req.start);
    for (n, v) in &req.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    w.write_all(out.as_bytes())?;
    w.write_all(&req.body)?;
    w.flush()?;
    let mut r = BufReader::new(up);
    let Some((start, headers)) = read_head(&mut r)? else {
        return Err(invalid("registry closed without an answer"));
    };
    let status: u16 = start
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head || status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else {
        read_body(&mut r, &headers, true)?
    };
    Ok(Message {
        start,
        headers,
        body,
    })
}

/// The redirect target: checks the signature, counts `Authorization`, serves the blob
/// from the registry's storage directory (honouring `Range`).
fn serve_storage(conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    let stats = &shared.stats;
    loop {
        let Some((start, headers)) = read_head(&mut reader)? else {
            return Ok(());
        };
        let _ = read_body(&mut reader, &headers, false)?;
        let req = Message {
            start,
            headers,
            body: Vec::new(),
        };
        stats.redirected_gets.fetch_add(1, Ordering::SeqCst);
        if req.header("authorization").is_some() {
            stats
                .redirected_with_authorization
                .fetch_add(1, Ordering::SeqCst);
        }
        let target = req.start.split(' ').nth(1).unwrap_or("").to_string();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let sig_ok = query
            .split('&')
            .any(|kv| kv == format!("X-Signature={}", signature(path)));
        let digest = path.rsplit('/').next().unwrap_or("");
        let hex_part = digest.strip_prefix("sha256:").unwrap_or("");
        let file = shared.options.storage_root.as_ref().and_then(|root| {
            if hex_part.len() != 64 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            std::fs::read(
                root.join("docker/registry/v2/blobs/sha256")
                    .join(&hex_part[..2])
                    .join(hex_part)
                    .join("data"),
            )
            .ok()
        });
        let resp = match (sig_ok, file) {
            (false, _) => {
                stats.bad_signatures.fetch_add(1, Ordering::SeqCst);
                simple(403, &[])
            }
            (true, None) => simple(404, &[]),
            (true, Some(data)) => {
                let range = req
                    .header("range")
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|s| s.parse::<usize>().ok())
                    .filter(|s| *s < data.len());
                match range {
                    Some(from) => Message {
                        start: status_line(206),
                        headers: vec![(
                            "Content-Range".into(),
                            format!("bytes {from}-{}/{}", data.len() - 1, data.len()),
                        )],
                        body: data[from..].to_vec(),
                    },
                    None => Message {
                        start: status_line(200),
                        headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                        body: data,
                    },
                }
            }
        };
        write_message(&mut writer, &resp, false, resp.body.len(), false)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_rewritten() {
        let loc = "/v2/a/blobs/uploads/u1?_state=xyz";
        assert_eq!(rewrite_location(loc, LocationStyle::Relative, 9), loc);
        assert_eq!(
            rewrite_location(loc, LocationStyle::RelativeNoQuery, 9),
            "/v2/a/blobs/uploads/u1"
        );
        assert_eq!(
            rewrite_location("http://127.0.0.1:5000/v2/a?q=1", LocationStyle::Absolute, 9),
            "http://127.0.0.1:9/v2/a?q=1"
        );
        assert_eq!(
            rewrite_location(loc, LocationStyle::AbsoluteNoQuery, 9),
            "http://127.0.0.1:9/v2/a/blobs/uploads/u1"
        );
        assert_eq!(
            blob_path("/v2/x/y/blobs/sha256:ab"),
            Some(("x/y", "sha256:ab"))
        );
        assert_eq!(blob_path("/v2/x/blobs/uploads/"), None);
    }
}
