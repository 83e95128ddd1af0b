//! Making a blob present in a target repository the cheapest way: already there →
//! nothing; same registry → cross-repository mount; else (or when the mount is
//! refused, or not granted to the destination's account) stream it from the source
//! straight into the upload, verified on the way, never held whole. When the source fails mid-copy, the error is the source's.

use super::blob_stream::blob_to_body_stream;
use super::client::RegistryClient;
use super::error::{ErrorClass, RegistryError};
use super::upload::{MountOutcome, UploadMode};
use crate::image::reference::Digest;
use crate::image::transport::Body;

/// What [`BlobCopy::copy`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyOutcome {
    /// The target already had the blob.
    AlreadyPresent,
    /// Mounted from the source repository (same registry).
    Mounted,
    /// Streamed from the source and uploaded.
    Uploaded,
}

/// One blob to make present: `digest` (of `size` bytes, from the descriptor, checked while
/// streaming) taken from `src_repo` on `src` into `dst_repo` on `dst`, uploaded with `mode`.
#[derive(Clone, Copy)]
pub struct BlobCopy<'a> {
    /// Where the blob is.
    pub src: &'a RegistryClient,
    /// Its repository there.
    pub src_repo: &'a str,
    /// Where it has to be.
    pub dst: &'a RegistryClient,
    /// The repository there.
    pub dst_repo: &'a str,
    /// The blob.
    pub digest: &'a Digest,
    /// Its size from the descriptor, when known.
    pub size: Option<u64>,
    /// How to upload it when it is neither present nor mountable.
    pub mode: UploadMode,
}

impl BlobCopy<'_> {
    /// Ensures the blob is in the destination. With a retry policy on `dst`, an upload
    /// that fails on the destination's side ([`super::retry::restartable`]) starts over:
    /// the blob fetched again from `src`, a new upload session on `dst`.
    pub async fn copy(&self) -> Result<CopyOutcome, RegistryError> {
        let dst = self.dst;
        if dst.blob_exists(self.dst_repo, self.digest).await?.is_some() {
            return Ok(CopyOutcome::AlreadyPresent);
        }
        let session = if self.src.base_url() == dst.base_url() {
            match dst
                .mount_blob(self.dst_repo, self.digest, self.src_repo)
                .await
            {
                Ok(MountOutcome::Mounted) => return Ok(CopyOutcome::Mounted),
                Ok(MountOutcome::NotMounted(s)) => s,
                // The destination's account may not read the source repository (Docker
                // Hub leaves `pull` on it out of the mount's token): upload instead, with
                // the source read by the source's own credentials.
                Err(e) if matches!(e.class(), ErrorClass::Unauthorized | ErrorClass::Forbidden) => {
                    dst.start_upload(self.dst_repo).await?
                }
                Err(e) => return Err(e),
            }
        } else {
            dst.start_upload(self.dst_repo).await?
        };
        self.upload_from(session, 1, 0).await
    }

    /// Starts over an upload of the blob that failed with `failure` (e.g. a layer teed
    /// into its upload while scanned): when the failure is
    /// [`restartable`](super::retry::restartable) and `dst`'s retry policy allows (the
    /// failed upload was attempt 1), the blob is fetched again from the source into a new
    /// session, as [`Self::copy`] does; else `failure` is returned.
    pub async fn restart_upload(
        &self,
        failure: RegistryError,
    ) -> Result<CopyOutcome, RegistryError> {
        let mut waited = 0u64;
        if !self.again(&failure, 1, &mut waited).await {
            return Err(failure);
        }
        let session = self.dst.start_upload(self.dst_repo).await?;
        self.upload_from(session, 2, waited).await
    }

    /// Whether to start over after attempt `attempt` failed with `e` (waits the backoff).
    async fn again(&self, e: &RegistryError, attempt: u32, waited: &mut u64) -> bool {
        match self.dst.retry() {
            Some(retry) if super::retry::restartable(e) => {
                retry
                    .wait_before_next(
                        &format!(
                            "upload {} to {} (in a new session)",
                            self.digest, self.dst_repo
                        ),
                        attempt,
                        waited,
                        e.to_string(),
                    )
                    .await
            }
            _ => false,
        }
    }

    /// Streams the blob from the source into `session`, starting over in a new session as
    /// the retry policy allows (`attempt` and `waited` so far).
    async fn upload_from(
        &self,
        mut session: super::upload::UploadSession,
        mut attempt: u32,
        mut waited: u64,
    ) -> Result<CopyOutcome, RegistryError> {
        loop {
            let blob = self
                .src
                .get_blob(self.src_repo, self.digest, self.size)
                .await?;
            let (stream, source_error) = blob_to_body_stream(blob);
            let body = Body::Stream {
                stream,
                length: self.size,
            };
            let e = match self
                .dst
                .upload_session(session, self.digest, body, self.mode)
                .await
            {
                Ok(()) => return Ok(CopyOutcome::Uploaded),
                Err(e) => e,
            };
            // An upload cut short by its source fails with the source's error (the
            // source's stream already resumed what it could).
            if let Some(source) = source_error.take() {
                return Err(source);
            }
            // A failed upload starts over: the blob fetched again, a new session.
            if !self.again(&e, attempt, &mut waited).await {
                return Err(e);
            }
            attempt += 1;
            session = self.dst.start_upload(self.dst_repo).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures_util::{FutureExt, StreamExt};

    use super::*;
    use crate::image::registry::error::ErrorClass;
    use crate::image::registry::ClientOptions;
    use crate::image::transport::{
        ByteStream, Headers, Method, Request, Response, Transport, TransportError,
        TransportErrorKind,
    };

    /// Registry `src` serves a blob whose body breaks off after 3 bytes with `kind`;
    /// registry `dst` takes uploads and reads their bodies, as a real transport does.
    struct BreakingSource {
        kind: TransportErrorKind,
    }

    #[kiln_macros::async_trait]
    impl Transport for BreakingSource {
        async fn send(&self, request: Request) -> Result<Response, TransportError> {
            if request.url.starts_with("https://src/") {
                let body: ByteStream = Box::pin(futures_util::stream::iter(vec![
                    Ok(Bytes::from_static(b"abc")),
                    Err(TransportError::new(self.kind, "no data for 300 s")),
                ]));
                return Ok(Response {
                    status: 200,
                    headers: Headers::new(),
                    body,
                });
            }
            let (status, location) = match request.method {
                Method::Head => (404, None),
                Method::Post => (202, Some("/v2/b/blobs/uploads/u")),
                _ => {
                    if let Body::Stream { mut stream, .. } = request.body {
                        while let Some(chunk) = stream.next().await {
                            chunk?;
                        }
                    }
                    (202, None)
                }
            };
            let headers: Headers = location
                .map(|l| ("Location", l.to_string()))
                .into_iter()
                .collect();
            Ok(Response::from_bytes(status, headers, Vec::new()))
        }
    }

    #[test]
    fn a_source_that_fails_mid_copy_is_the_error() {
        for kind in [TransportErrorKind::Timeout, TransportErrorKind::Io] {
            for mode in [
                UploadMode::Monolithic,
                UploadMode::Chunked { chunk_size: 2 },
            ] {
                let t = Arc::new(BreakingSource { kind });
                let src = RegistryClient::new(t.clone(), "src", ClientOptions::default());
                let dst = RegistryClient::new(t, "dst", ClientOptions::default());
                let d = Digest::sha256_of(b"abcdef");
                let copy = BlobCopy {
                    src: &src,
                    src_repo: "a",
                    dst: &dst,
                    dst_repo: "b",
                    digest: &d,
                    size: Some(6),
                    mode,
                };
                let r = copy.copy().now_or_never().expect("nothing pends");
                let Err(RegistryError::Transport {
                    registry, source, ..
                }) = &r
                else {
                    panic!("{kind:?} {mode:?}: {r:?}");
                };
                assert_eq!(registry, "src", "{mode:?}");
                assert_eq!(source.kind, kind, "{mode:?}");
                let class = r.err().map(|e| e.class());
                let want = match kind {
                    TransportErrorKind::Timeout => ErrorClass::Timeout,
                    _ => ErrorClass::Upstream,
                };
                assert_eq!(class, Some(want), "{kind:?} {mode:?}");
            }
        }
    }
}
