//! OCI image layouts (`oci:DIR[:TAG]`) as registries, so the engine's pipeline, which
//! speaks only the registry API, can convert from and to a directory.
//!
//! [`LayoutTransport`] wraps the real [`Transport`]: requests to a pseudo host it was
//! given (`*.kiln.invalid`, a reserved name that never resolves) are answered from that
//! host's layout directory; every other request goes to the inner transport. The
//! registry API subset served is what `kiln_engine::image::registry` sends:
//!
//! - `GET /v2/`; `GET`/`HEAD /v2/<repo>/manifests/<tag|digest>` (a tag is the
//!   `org.opencontainers.image.ref.name` of an `index.json` entry);
//! - `GET`/`HEAD /v2/<repo>/blobs/<digest>` (streamed from `blobs/sha256/`);
//! - uploads: `POST /v2/<repo>/blobs/uploads/` (with `?mount=`: 201 when the blob is
//!   present), `PATCH` chunks, `PUT ...?digest=` (the bytes are hashed while written to
//!   a temporary file beside the blobs, and renamed into place only when the digest
//!   matches);
//! - `PUT /v2/<repo>/manifests/<ref>`: by digest writes the blob; by tag also names it
//!   in `index.json` (replacing an earlier manifest of that tag).
//!
//! The repository name is ignored: a layout has one namespace. What it writes is a plain
//! OCI layout that `skopeo copy oci:DIR:TAG ...` and `skopeo inspect oci:DIR:TAG` read.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use kiln_engine::image::digest::Sha256Counter;
use kiln_engine::image::manifest::{RawManifest, OCI_INDEX};
use kiln_engine::image::reference::Digest;
use kiln_engine::image::transport::{
    Body, ByteStream, Headers, Method, Request, Response, Transport, TransportError,
    TransportErrorKind,
};

use crate::{OciLayout, OciLayoutWriter};

/// The repository name kiln uses in the pseudo references of layouts.
pub const LAYOUT_REPOSITORY: &str = "layout";

/// Largest manifest accepted by `PUT` (the engine's own limit).
const MANIFEST_MAX: usize = kiln_engine::image::manifest::MANIFEST_SIZE_MAX;

/// Chunk size of blob reads.
const READ_CHUNK: usize = 256 * 1024;

/// One upload session: a temporary file and the hash of what was written.
struct Upload {
    tmp: PathBuf,
    file: std::fs::File,
    hash: Sha256Counter,
}

/// A [`Transport`] that serves some pseudo registry hosts from OCI layout directories
/// (see the module docs).
pub struct LayoutTransport {
    inner: Arc<dyn Transport>,
    layouts: Vec<(String, PathBuf)>,
    uploads: Mutex<HashMap<u64, Upload>>,
    next: AtomicU64,
}

impl std::fmt::Debug for LayoutTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayoutTransport")
            .field("layouts", &self.layouts)
            .finish_non_exhaustive()
    }
}

fn err(kind: TransportErrorKind, path: &Path, what: impl std::fmt::Display) -> TransportError {
    TransportError::new(kind, format!("OCI layout {}: {what}", path.display()))
}

fn json_error(status: u16, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    let mut h = Headers::new();
    h.set("Content-Type", "application/json");
    Response::from_bytes(status, h, serde_json::to_vec(&body).unwrap_or_default())
}

fn empty(status: u16, headers: Headers) -> Response {
    Response::from_bytes(status, headers, Bytes::new())
}

/// The value of query parameter `name` (percent-decoded `%3A` only: digests).
fn query_param<'a>(query: &'a str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv: &'a str| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.replace("%3A", ":").replace("%3a", ":"))
    })
}

impl LayoutTransport {
    /// Wraps `inner`; no layouts yet.
    pub fn new(inner: Arc<dyn Transport>) -> Self {
        LayoutTransport {
            inner,
            layouts: Vec::new(),
            uploads: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }

    /// Serves `host` (`NAME.kiln.invalid`) from the layout `dir`, created when missing
    /// (`create`), else required to exist.
    pub fn with_layout(
        mut self,
        host: &str,
        dir: &Path,
        create: bool,
    ) -> Result<Self, crate::OciLayoutError> {
        if create {
            OciLayoutWriter::create(dir)?;
            // A valid (empty) layout from the start: index.json is required by readers.
            let index = dir.join("index.json");
            if !index.exists() {
                let empty = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
                std::fs::write(&index, empty.to_string()).map_err(|e| {
                    crate::OciLayoutError::Io {
                        path: index.clone(),
                        detail: e.to_string(),
                    }
                })?;
            }
        } else {
            OciLayout::open(dir)?;
        }
        self.layouts.push((host.to_string(), dir.to_path_buf()));
        Ok(self)
    }

    /// The layout directory and the path (from `/v2/`) of a URL on one of our hosts.
    fn route(&self, url: &str) -> Option<(PathBuf, String)> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let dir = self
            .layouts
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))?;
        Some((dir.1.clone(), format!("/{path}")))
    }

    async fn serve(
        &self,
        dir: &Path,
        path: &str,
        req: Request,
    ) -> Result<Response, TransportError> {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        if path == "/v2/" || path == "/v2" {
            return Ok(empty(200, Headers::new()));
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return Ok(json_error(404, "NOT_FOUND", "not a registry API path"));
        };
        if let Some((_, r)) = rest.rsplit_once("/manifests/") {
            return match req.method {
                Method::Get | Method::Head => self.get_manifest(dir, r, req.method == Method::Get),
                Method::Put => self.put_manifest(dir, r, req).await,
                _ => Ok(json_error(405, "UNSUPPORTED", "method not allowed")),
            };
        }
        if let Some((_, u)) = rest.rsplit_once("/blobs/uploads") {
            let id = u.trim_start_matches('/');
            return match (req.method, id.is_empty()) {
                (Method::Post, true) => self.start_upload(dir, path, query),
                (Method::Patch, false) => self.patch_upload(dir, path, id, req).await,
                (Method::Put, false) => self.finish_upload(dir, id, query, req).await,
                _ => Ok(json_error(405, "UNSUPPORTED", "method not allowed")),
            };
        }
        if let Some((_, d)) = rest.rsplit_once("/blobs/") {
            return match req.method {
                Method::Get | Method::Head => self.get_blob(dir, d, req.method == Method::Get),
                _ => Ok(json_error(405, "UNSUPPORTED", "method not allowed")),
            };
        }
        Ok(json_error(404, "NOT_FOUND", "not a registry API path"))
    }

    fn get_manifest(&self, dir: &Path, r: &str, body: bool) -> Result<Response, TransportError> {
        let layout = OciLayout::open(dir).map_err(|e| err(TransportErrorKind::Io, dir, e))?;
        let (digest, media_type) = if r.contains(':') {
            let Ok(d) = Digest::parse(r) else {
                return Ok(json_error(400, "DIGEST_INVALID", "invalid digest"));
            };
            (d, None)
        } else {
            match layout.find(Some(r)) {
                Ok(desc) => match Digest::try_from(desc.digest()) {
                    Ok(d) => (d, Some(desc.media_type().to_string())),
                    Err(e) => return Err(err(TransportErrorKind::Io, dir, e)),
                },
                Err(crate::OciLayoutError::TagNotFound { .. }) => {
                    return Ok(json_error(404, "MANIFEST_UNKNOWN", "no such tag"))
                }
                Err(crate::OciLayoutError::Io { .. }) if !dir.join("index.json").exists() => {
                    return Ok(json_error(404, "MANIFEST_UNKNOWN", "no index.json"))
                }
                Err(e) => return Err(err(TransportErrorKind::Io, dir, e)),
            }
        };
        let bytes = match layout.read_blob(&digest, MANIFEST_MAX as u64) {
            Ok(b) => b,
            Err(crate::OciLayoutError::Io { .. }) if !layout.blob_path(&digest).exists() => {
                return Ok(json_error(404, "MANIFEST_UNKNOWN", "no such manifest"))
            }
            Err(e) => return Err(err(TransportErrorKind::Io, dir, e)),
        };
        let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
            .or(media_type)
            .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
        let mut h = Headers::new();
        h.set("Content-Type", media_type);
        h.set("Docker-Content-Digest", digest.to_string());
        h.set("Content-Length", bytes.len().to_string());
        Ok(Response::from_bytes(
            200,
            h,
            if body { bytes } else { Bytes::new() },
        ))
    }

    async fn put_manifest(
        &self,
        dir: &Path,
        r: &str,
        req: Request,
    ) -> Result<Response, TransportError> {
        let content_type = req.headers.get("content-type").map(str::to_string);
        let body = read_body(req.body, MANIFEST_MAX, dir).await?;
        let raw = match RawManifest::from_bytes(body, content_type.as_deref()) {
            Ok(m) => m,
            Err(e) => return Ok(json_error(400, "MANIFEST_INVALID", &e.to_string())),
        };
        let w = OciLayoutWriter::create(dir).map_err(|e| err(TransportErrorKind::Io, dir, e))?;
        if r.contains(':') {
            match Digest::parse(r) {
                Ok(d) if &d == raw.digest() => {}
                _ => return Ok(json_error(400, "DIGEST_INVALID", "digest does not match")),
            }
            w.put_blob(raw.bytes())
        } else {
            w.put_manifest(&raw, Some(r))
        }
        .map_err(|e| err(TransportErrorKind::Io, dir, e))?;
        let mut h = Headers::new();
        h.set("Docker-Content-Digest", raw.digest().to_string());
        Ok(empty(201, h))
    }

    fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
        dir.join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    fn get_blob(&self, dir: &Path, d: &str, body: bool) -> Result<Response, TransportError> {
        let Ok(digest) = Digest::parse(d) else {
            return Ok(json_error(400, "DIGEST_INVALID", "invalid digest"));
        };
        let path = Self::blob_path(dir, &digest);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(json_error(404, "BLOB_UNKNOWN", "blob unknown"))
            }
            Err(e) => return Err(err(TransportErrorKind::Io, &path, e)),
        };
        let len = file
            .metadata()
            .map_err(|e| err(TransportErrorKind::Io, &path, e))?
            .len();
        let mut h = Headers::new();
        h.set("Content-Length", len.to_string());
        h.set("Docker-Content-Digest", digest.to_string());
        h.set("Content-Type", "application/octet-stream");
        if !body {
            return Ok(empty(200, h));
        }
        Ok(Response {
            status: 200,
            headers: h,
            body: file_stream(file, path),
        })
    }

    fn start_upload(
        &self,
        dir: &Path,
        path: &str,
        query: &str,
    ) -> Result<Response, TransportError> {
        if let Some(d) = query_param(query, "mount") {
            if let Ok(digest) = Digest::parse(&d) {
                if Self::blob_path(dir, &digest).is_file() {
                    let mut h = Headers::new();
                    h.set("Docker-Content-Digest", digest.to_string());
                    return Ok(empty(201, h));
                }
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| err(TransportErrorKind::Io, &blobs, e))?;
        let tmp = blobs.join(format!(".kiln-upload-{}-{id}", std::process::id()));
        let file = std::fs::File::create(&tmp).map_err(|e| err(TransportErrorKind::Io, &tmp, e))?;
        self.lock_uploads()?.insert(
            id,
            Upload {
                tmp,
                file,
                hash: Sha256Counter::new(),
            },
        );
        let mut h = Headers::new();
        h.set(
            "Location",
            format!("{}{id}", path.trim_end_matches('/').to_string() + "/"),
        );
        h.set("Range", "0-0");
        Ok(empty(202, h))
    }

    fn lock_uploads(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<u64, Upload>>, TransportError> {
        self.uploads.lock().map_err(|_| {
            TransportError::new(
                TransportErrorKind::Other,
                "OCI layout: upload table poisoned",
            )
        })
    }

    /// Takes the upload `id` out of the table (it is put back by a PATCH).
    fn take_upload(&self, id: &str) -> Result<Option<(u64, Upload)>, TransportError> {
        let Ok(n) = id.parse::<u64>() else {
            return Ok(None);
        };
        Ok(self.lock_uploads()?.remove(&n).map(|u| (n, u)))
    }

    async fn append(dir: &Path, up: &mut Upload, body: Body) -> Result<(), TransportError> {
        let mut stream = body_stream(body);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            up.hash.update(&chunk);
            up.file.write_all(&chunk).map_err(|e| {
                err(
                    TransportErrorKind::Io,
                    dir,
                    format!("{}: {e}", up.tmp.display()),
                )
            })?;
        }
        Ok(())
    }

    async fn patch_upload(
        &self,
        dir: &Path,
        path: &str,
        id: &str,
        req: Request,
    ) -> Result<Response, TransportError> {
        let Some((n, mut up)) = self.take_upload(id)? else {
            return Ok(json_error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown"));
        };
        let appended = Self::append(dir, &mut up, req.body).await;
        let written = up.hash.len();
        if let Err(e) = appended {
            let _ = std::fs::remove_file(&up.tmp);
            return Err(e);
        }
        self.lock_uploads()?.insert(n, up);
        let mut h = Headers::new();
        h.set("Location", path.to_string());
        h.set("Range", format!("0-{}", written.saturating_sub(1)));
        Ok(empty(202, h))
    }

    async fn finish_upload(
        &self,
        dir: &Path,
        id: &str,
        query: &str,
        req: Request,
    ) -> Result<Response, TransportError> {
        let Some((_, mut up)) = self.take_upload(id)? else {
            return Ok(json_error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown"));
        };
        let result = self.finish(dir, &mut up, query, req.body).await;
        let _ = std::fs::remove_file(&up.tmp);
        result
    }

    async fn finish(
        &self,
        dir: &Path,
        up: &mut Upload,
        query: &str,
        body: Body,
    ) -> Result<Response, TransportError> {
        let Some(Ok(want)) = query_param(query, "digest").map(|d| Digest::parse(&d)) else {
            return Ok(json_error(
                400,
                "DIGEST_INVALID",
                "no valid ?digest= on the final PUT",
            ));
        };
        Self::append(dir, up, body).await?;
        up.file
            .sync_all()
            .map_err(|e| err(TransportErrorKind::Io, &up.tmp, e))?;
        let hash = std::mem::take(&mut up.hash);
        let (sum, _) = hash.finish();
        if want.algorithm() != "sha256" || want.hex() != hex_lower(&sum) {
            return Ok(json_error(
                400,
                "DIGEST_INVALID",
                &format!("the uploaded bytes are not {want}"),
            ));
        }
        let dest = Self::blob_path(dir, &want);
        if !dest.is_file() {
            std::fs::rename(&up.tmp, &dest).map_err(|e| err(TransportErrorKind::Io, &dest, e))?;
        }
        let mut h = Headers::new();
        h.set("Docker-Content-Digest", want.to_string());
        Ok(empty(201, h))
    }
}

fn hex_lower(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn body_stream(body: Body) -> ByteStream {
    match body {
        Body::Empty => Box::pin(futures_util::stream::empty()),
        Body::Bytes(b) => Box::pin(futures_util::stream::iter(std::iter::once(Ok(b)))),
        Body::Stream { stream, .. } => stream,
    }
}

async fn read_body(body: Body, limit: usize, dir: &Path) -> Result<Vec<u8>, TransportError> {
    let mut out = Vec::new();
    let mut s = body_stream(body);
    while let Some(chunk) = s.next().await {
        let chunk = chunk?;
        if out.len().saturating_add(chunk.len()) > limit {
            return Err(err(
                TransportErrorKind::BodyTooLarge,
                dir,
                format!("manifest larger than {limit} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A file as a stream of chunks.
fn file_stream(mut file: std::fs::File, path: PathBuf) -> ByteStream {
    let mut done = false;
    let chunks = std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut buf = vec![0u8; READ_CHUNK];
        match file.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some(Ok(Bytes::from(buf)))
            }
            Err(e) => {
                done = true;
                Some(Err(err(TransportErrorKind::Io, &path, e)))
            }
        }
    });
    Box::pin(futures_util::stream::iter(chunks))
}

#[async_trait::async_trait]
impl Transport for LayoutTransport {
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        match self.route(&request.url) {
            Some((dir, path)) => self.serve(&dir, &path, request).await,
            None => self.inner.send(request).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inner transport: answers 418 to anything, so a test sees what was not routed.
    struct Teapot;

    #[async_trait::async_trait]
    impl Transport for Teapot {
        async fn send(&self, _: Request) -> Result<Response, TransportError> {
            Ok(empty(418, Headers::new()))
        }
    }

    const H: &str = "http://out.kiln.invalid";

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn transport(dir: &Path) -> LayoutTransport {
        LayoutTransport::new(Arc::new(Teapot))
            .with_layout("out.kiln.invalid", dir, true)
            .unwrap()
    }

    async fn send(t: &LayoutTransport, req: Request) -> (u16, Headers, Vec<u8>) {
        let r = t.send(req).await.unwrap();
        let (s, h) = (r.status, r.headers.clone());
        (s, h, r.bytes_limited(1 << 20).await.unwrap())
    }

    #[test]
    fn upload_in_chunks_then_read_back_and_mount() {
        let d = tempfile::tempdir().unwrap();
        let t = transport(d.path());
        block_on(async {
            let (s, h, _) = send(
                &t,
                Request::new(Method::Post, format!("{H}/v2/layout/blobs/uploads/")),
            )
            .await;
            assert_eq!(s, 202);
            let loc = h.get("location").unwrap().to_string();
            let (s, h, _) = send(
                &t,
                Request::new(Method::Patch, format!("{H}{loc}")).body(b"hello ".to_vec()),
            )
            .await;
            assert_eq!(s, 202);
            assert_eq!(h.get("range"), Some("0-5"));
            let digest = Digest::sha256_of(b"hello world");
            let put = format!("{H}{loc}?digest={}", digest.to_string().replace(':', "%3A"));
            let (s, _, _) = send(&t, Request::new(Method::Put, put).body(b"world".to_vec())).await;
            assert_eq!(s, 201);
            let get = format!("{H}/v2/layout/blobs/{digest}");
            let (s, h, body) = send(&t, Request::new(Method::Get, get.clone())).await;
            assert_eq!((s, body.as_slice()), (200, &b"hello world"[..]));
            assert_eq!(h.get("content-length"), Some("11"));
            let (s, _, _) = send(&t, Request::new(Method::Head, get)).await;
            assert_eq!(s, 200);
            let mount = format!("{H}/v2/layout/blobs/uploads/?mount={digest}&from=other");
            let (s, _, _) = send(&t, Request::new(Method::Post, mount)).await;
            assert_eq!(s, 201);
            // Other hosts go to the inner transport.
            let (s, _, _) = send(
                &t,
                Request::new(Method::Get, "https://registry.example/v2/"),
            )
            .await;
            assert_eq!(s, 418);
        });
    }

    #[test]
    fn a_wrong_digest_stores_nothing() {
        let d = tempfile::tempdir().unwrap();
        let t = transport(d.path());
        block_on(async {
            let (_, h, _) = send(
                &t,
                Request::new(Method::Post, format!("{H}/v2/layout/blobs/uploads/")),
            )
            .await;
            let loc = h.get("location").unwrap().to_string();
            let wrong = Digest::sha256_of(b"other");
            let put = format!("{H}{loc}?digest={wrong}");
            let (s, _, body) =
                send(&t, Request::new(Method::Put, put).body(b"bytes".to_vec())).await;
            assert_eq!(s, 400, "{}", String::from_utf8_lossy(&body));
            let (s, _, _) = send(
                &t,
                Request::new(Method::Head, format!("{H}/v2/layout/blobs/{wrong}")),
            )
            .await;
            assert_eq!(s, 404);
            // The session is gone, and so is its temporary file.
            let (s, _, _) = send(
                &t,
                Request::new(Method::Put, format!("{H}{loc}?digest={wrong}")),
            )
            .await;
            assert_eq!(s, 404);
        });
        let left: Vec<_> = std::fs::read_dir(d.path().join("blobs/sha256"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn manifests_by_tag_and_digest() {
        let d = tempfile::tempdir().unwrap();
        let t = transport(d.path());
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
        let digest = Digest::sha256_of(m);
        block_on(async {
            let (s, _, _) = send(
                &t,
                Request::new(Method::Get, format!("{H}/v2/layout/manifests/v1")),
            )
            .await;
            assert_eq!(s, 404);
            let put = |r: String| {
                Request::new(Method::Put, format!("{H}/v2/layout/manifests/{r}"))
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .body(m.to_vec())
            };
            let (s, h, _) = send(&t, put(digest.to_string())).await;
            assert_eq!(s, 201);
            assert_eq!(
                h.get("docker-content-digest"),
                Some(digest.to_string().as_str())
            );
            let (s, _, _) = send(&t, put(Digest::sha256_of(b"x").to_string())).await;
            assert_eq!(s, 400);
            let (s, _, _) = send(&t, put("v1".into())).await;
            assert_eq!(s, 201);
            let (s, h, body) = send(
                &t,
                Request::new(Method::Get, format!("{H}/v2/layout/manifests/v1")),
            )
            .await;
            assert_eq!((s, body.as_slice()), (200, &m[..]));
            assert_eq!(
                h.get("content-type"),
                Some("application/vnd.oci.image.manifest.v1+json")
            );
            let (s, _, _) = send(
                &t,
                Request::new(Method::Head, format!("{H}/v2/layout/manifests/{digest}")),
            )
            .await;
            assert_eq!(s, 200);
        });
        let found = OciLayout::open(d.path()).unwrap().find(Some("v1")).unwrap();
        assert_eq!(found.digest().to_string(), digest.to_string());
    }

    #[test]
    fn an_input_layout_must_exist() {
        let d = tempfile::tempdir().unwrap();
        let e = LayoutTransport::new(Arc::new(Teapot))
            .with_layout("in.kiln.invalid", &d.path().join("none"), false)
            .unwrap_err();
        assert!(e.to_string().contains("none"), "{e}");
    }
}
