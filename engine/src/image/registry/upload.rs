//! Blob uploads: cross-repository mount, monolithic (POST, then one PUT with the body)
//! and chunked (POST, PATCH per chunk with `Content-Range`, then PUT `?digest=`).
//! Bodies stream: a chunked upload holds one chunk at a time, a monolithic one none.
//!
//! (distribution 2.8 has no single-POST monolithic upload, so kiln never uses one.)

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::auth::{query_escape, Scope};
use super::client::{check_repository, resolve_url, RegistryClient};
use super::error::RegistryError;
use crate::image::reference::Digest;
use crate::image::transport::{stream_from_chunks, Body, ByteStream, Method, Request, Response};

/// Default chunk size for chunked uploads (8 MiB).
pub const DEFAULT_CHUNK_SIZE: usize = 8 * 1024 * 1024;

/// How to send a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadMode {
    /// One PUT carrying the whole (streamed) body.
    Monolithic,
    /// PATCH chunks of this many bytes (raised to the registry's
    /// `OCI-Chunk-Min-Length` if larger), then PUT.
    Chunked {
        /// Bytes per PATCH.
        chunk_size: usize,
    },
}

/// An upload session opened by `POST /v2/<name>/blobs/uploads/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    /// The repository uploaded to.
    pub repository: String,
    /// The absolute URL of the session (from `Location`).
    pub location: String,
    /// The registry's minimum chunk size (`OCI-Chunk-Min-Length`), if it told one.
    pub min_chunk: Option<usize>,
}

/// What a mount request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// 201: the blob is now in the target repository; nothing to upload.
    Mounted,
    /// 202: the registry did not mount but opened an upload session instead; upload
    /// the blob with it.
    NotMounted(UploadSession),
}

impl RegistryClient {
    /// The session a `POST` (sent to `url`) opened: its `Location` resolved against
    /// `url` (absolute, `/path`, or relative, with or without a query).
    fn session_from(
        &self,
        repository: &str,
        url: &str,
        resp: &Response,
        op: &str,
    ) -> Result<UploadSession, RegistryError> {
        let loc = resp
            .headers
            .get("location")
            .ok_or_else(|| RegistryError::InvalidResponse {
                registry: self.host.clone(),
                operation: op.to_string(),
                detail: "no Location header".into(),
            })?;
        Ok(UploadSession {
            repository: repository.to_string(),
            location: resolve_url(url, loc),
            min_chunk: resp
                .headers
                .get("oci-chunk-min-length")
                .and_then(|v| v.parse().ok()),
        })
    }

    /// Opens an upload session.
    pub async fn start_upload(&self, repository: &str) -> Result<UploadSession, RegistryError> {
        check_repository(repository)?;
        let op = format!("start upload to {repository}");
        let url = self.url(&format!("/v2/{repository}/blobs/uploads/"));
        let req = Request::new(Method::Post, url.clone()).header("Content-Length", "0");
        let resp = self.send(&[Scope::push(repository)], req, &op).await?;
        // 202 by the spec; some registries answer 201. Either way the Location is
        // the session.
        let resp = self
            .expect(resp, &[201, 202], &op, &format!("repository {repository}"))
            .await?;
        self.session_from(repository, &url, &resp, &op)
    }

    /// Asks the registry to mount `digest` from repository `from` into `repository`
    /// (`POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<from>`). The token asked
    /// for carries `repository:<from>:pull` as well as push on the target.
    pub async fn mount_blob(
        &self,
        repository: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<MountOutcome, RegistryError> {
        check_repository(repository)?;
        check_repository(from)?;
        let op = format!("mount {digest} from {from} into {repository}");
        let url = self.url(&format!(
            "/v2/{repository}/blobs/uploads/?mount={}&from={}",
            query_escape(&digest.to_string()),
            query_escape(from)
        ));
        let req = Request::new(Method::Post, url.clone()).header("Content-Length", "0");
        let scopes = [Scope::push(repository), Scope::pull(from)];
        let resp = self.send(&scopes, req, &op).await?;
        let resp = self
            .expect(resp, &[201, 202], &op, &format!("repository {repository}"))
            .await?;
        if resp.status == 201 {
            return Ok(MountOutcome::Mounted);
        }
        Ok(MountOutcome::NotMounted(
            self.session_from(repository, &url, &resp, &op)?,
        ))
    }

    fn with_digest(location: &str, digest: &Digest) -> String {
        let sep = if location.contains('?') { '&' } else { '?' };
        format!(
            "{location}{sep}digest={}",
            query_escape(&digest.to_string())
        )
    }

    /// Finishes a session with one PUT carrying the whole body (streamed as given).
    pub async fn upload_monolithic(
        &self,
        session: UploadSession,
        digest: &Digest,
        body: Body,
    ) -> Result<(), RegistryError> {
        let op = format!("upload {digest} to {}", session.repository);
        let mut req = Request::new(Method::Put, Self::with_digest(&session.location, digest))
            .header("Content-Type", "application/octet-stream");
        if let Some(len) = body.len() {
            req.headers.set("Content-Length", len.to_string());
        }
        req.body = body;
        let resp = self
            .send(&[Scope::push(&session.repository)], req, &op)
            .await?;
        self.finish_upload(resp, digest, &op).await
    }

    /// Checks the answer to the upload's final `PUT`: any 2xx the registries send for it
    /// (201 by the spec; 200, 202, 204 seen), and a `Docker-Content-Digest`, when the
    /// registry sends one, must be `digest`. kiln knows the digest itself (it hashed or
    /// was given the bytes), so a registry that sends none is fine.
    async fn finish_upload(
        &self,
        resp: Response,
        digest: &Digest,
        op: &str,
    ) -> Result<(), RegistryError> {
        let resp = self
            .expect(resp, &[200, 201, 202, 204], op, "upload session")
            .await?;
        if let Some(got) = resp.headers.get("docker-content-digest") {
            if got.trim() != digest.to_string() {
                return Err(RegistryError::ContentMismatch {
                    what: format!("uploaded blob {digest} (Docker-Content-Digest)"),
                    expected: digest.to_string(),
                    actual: got.chars().take(100).collect(),
                });
            }
        }
        Ok(())
    }

    /// Uploads the body in PATCH chunks of `chunk_size` bytes (one chunk held at a
    /// time), then finishes with `PUT ?digest=`.
    pub async fn upload_chunked(
        &self,
        session: UploadSession,
        digest: &Digest,
        body: Body,
        chunk_size: usize,
    ) -> Result<(), RegistryError> {
        let mut at = session.location.clone();
        self.upload_chunked_at(session, digest, body, chunk_size, &mut at)
            .await
    }

    /// [`Self::upload_chunked`], keeping the session's latest `Location` in `at` (a
    /// registry may move it with every `PATCH`), so a failed upload can be cancelled.
    async fn upload_chunked_at(
        &self,
        session: UploadSession,
        digest: &Digest,
        body: Body,
        chunk_size: usize,
        at: &mut String,
    ) -> Result<(), RegistryError> {
        let op = format!("chunked upload {digest} to {}", session.repository);
        let chunk_size = chunk_size.max(session.min_chunk.unwrap_or(1)).max(1);
        let scopes = [Scope::push(&session.repository)];
        let mut stream: ByteStream = match body {
            Body::Empty => stream_from_chunks(Vec::new()),
            Body::Bytes(b) => stream_from_chunks(vec![b]),
            Body::Stream { stream, .. } => stream,
        };
        let mut location = session.location.clone();
        let mut offset: u64 = 0;
        let mut buf = BytesMut::new();
        loop {
            let next = stream.next().await;
            let finished = next.is_none();
            if let Some(chunk) = next {
                let chunk = chunk.map_err(|e| self.transport_err(&op, e))?;
                buf.extend_from_slice(&chunk);
            }
            while buf.len() >= chunk_size || (finished && !buf.is_empty()) {
                let take = buf.len().min(chunk_size);
                let part = buf.split_to(take).freeze();
                location = self
                    .patch_chunk(&location, offset, part, &scopes, &op)
                    .await?;
                at.clone_from(&location);
                offset += take as u64;
            }
            if finished {
                break;
            }
        }
        let req = Request::new(Method::Put, Self::with_digest(&location, digest))
            .header("Content-Length", "0");
        let resp = self.send(&scopes, req, &op).await?;
        self.finish_upload(resp, digest, &op).await
    }

    async fn patch_chunk(
        &self,
        location: &str,
        offset: u64,
        part: Bytes,
        scopes: &[Scope],
        op: &str,
    ) -> Result<String, RegistryError> {
        let len = part.len() as u64;
        let req = Request::new(Method::Patch, location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{offset}-{}", offset + len - 1))
            .header("Content-Length", len.to_string())
            .body(part);
        let resp = self.send(scopes, req, op).await?;
        // 202 by the spec; 201, 204 and 200 seen.
        let resp = self
            .expect(resp, &[200, 201, 202, 204], op, "upload session")
            .await?;
        match resp.headers.get("location") {
            Some(l) => Ok(resolve_url(location, l)),
            None => Ok(location.to_string()),
        }
    }

    /// Uploads a blob to `repository` (a new session, then `mode`). Callers first
    /// check [`RegistryClient::blob_exists`] or try [`RegistryClient::mount_blob`].
    ///
    /// With a [`Retry`](super::Retry) ([`RegistryClient::with_retry`]) and a body in
    /// memory, an upload that fails on the way ([`super::retry::restartable`]: a 5xx,
    /// 408, 429, a broken or timed-out connection, on any step) starts over in a new
    /// session, as the retry policy allows (each restart an observer notice). The
    /// failed session is cancelled ([`Self::upload_session`]); no step of it is re-sent.
    pub async fn push_blob(
        &self,
        repository: &str,
        digest: &Digest,
        body: Body,
        mode: UploadMode,
    ) -> Result<(), RegistryError> {
        let replay = match &body {
            Body::Empty => Some(Bytes::new()),
            Body::Bytes(b) => Some(b.clone()),
            Body::Stream { .. } => None,
        };
        let (Some(retry), Some(bytes)) = (self.retry.clone(), replay) else {
            let session = self.start_upload(repository).await?;
            return self.upload_session(session, digest, body, mode).await;
        };
        drop(body);
        let op = format!("upload {digest} to {repository}");
        let mut attempt = 1u32;
        let mut waited = 0u64;
        loop {
            let result = async {
                let session = self.start_upload(repository).await?;
                self.upload_session(session, digest, Body::Bytes(bytes.clone()), mode)
                    .await
            }
            .await;
            match result {
                Err(e)
                    if super::retry::restartable(&e)
                        && retry
                            .wait_before_next(
                                &format!("{op} (in a new session)"),
                                attempt,
                                &mut waited,
                                e.to_string(),
                            )
                            .await =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Uploads a blob through an open session (e.g. the one a refused mount opened).
    /// When the registry answers a step with an error, the session is cancelled
    /// ([`Self::cancel_upload`]) so no partial upload is left behind; a session whose
    /// connection broke is left for the registry to expire (it may not be reachable).
    pub async fn upload_session(
        &self,
        session: UploadSession,
        digest: &Digest,
        body: Body,
        mode: UploadMode,
    ) -> Result<(), RegistryError> {
        let repository = session.repository.clone();
        let mut at = session.location.clone();
        let result = match mode {
            UploadMode::Monolithic => self.upload_monolithic(session, digest, body).await,
            UploadMode::Chunked { chunk_size } => {
                self.upload_chunked_at(session, digest, body, chunk_size, &mut at)
                    .await
            }
        };
        if let Err(e) = &result {
            if !matches!(e, RegistryError::Transport { .. }) {
                self.cancel_upload(&repository, &at).await;
            }
        }
        result
    }

    /// Cancels an upload session (`DELETE` on its `Location`), best effort: the answer
    /// is not checked (a session the registry already dropped answers 404), and the
    /// caller's error stays the one reported.
    pub async fn cancel_upload(&self, repository: &str, location: &str) {
        let op = format!("cancel upload to {repository}");
        let req = Request::new(Method::Delete, location).header("Content-Length", "0");
        if let Ok(resp) = self.send(&[Scope::push(repository)], req, &op).await {
            drop(resp.bytes_limited(4096).await);
        }
    }
}
