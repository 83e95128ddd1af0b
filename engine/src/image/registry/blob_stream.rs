//! A blob stream that checks size and digest as the bytes pass: the last item is an
//! error when the content does not match, so a consumer that reads to the end has
//! verified every byte without holding them.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use sha2::{Digest as _, Sha256};

use super::error::RegistryError;
use crate::image::reference::Digest;
use crate::image::transport::{ByteStream, TransportError, TransportErrorKind};

/// A stream of verified blob chunks; see [`VerifiedStream`].
#[cfg(not(target_arch = "wasm32"))]
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>;
/// A stream of verified blob chunks; see [`VerifiedStream`].
#[cfg(target_arch = "wasm32")]
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>>>>;

/// Wraps a body stream; yields its chunks, then fails at the end (or as soon as the
/// size is exceeded) if the bytes do not hash to the expected `sha256:` digest.
pub struct VerifiedStream {
    inner: ByteStream,
    hasher: Option<Sha256>,
    seen: u64,
    expected: Digest,
    expected_size: Option<u64>,
    what: String,
    registry: String,
    done: bool,
}

impl VerifiedStream {
    /// Wraps `inner`, expecting `digest` (sha256) and, when known, `size` bytes.
    /// `registry` and `what` name the source in errors.
    pub fn new(
        inner: ByteStream,
        digest: Digest,
        size: Option<u64>,
        registry: &str,
        what: &str,
    ) -> Self {
        VerifiedStream {
            inner,
            hasher: Some(Sha256::new()),
            seen: 0,
            expected: digest,
            expected_size: size,
            what: what.to_string(),
            registry: registry.to_string(),
            done: false,
        }
    }

    fn mismatch(&self, expected: String, actual: String) -> RegistryError {
        RegistryError::ContentMismatch {
            what: self.what.clone(),
            expected,
            actual,
        }
    }
}

impl Stream for VerifiedStream {
    type Item = Result<Bytes, RegistryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(RegistryError::Transport {
                    registry: self.registry.clone(),
                    operation: format!("reading {}", self.what),
                    source: e,
                })))
            }
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen += chunk.len() as u64;
                if let Some(max) = self.expected_size {
                    if self.seen > max {
                        self.done = true;
                        let e =
                            self.mismatch(format!("{max} bytes"), format!("more than {max} bytes"));
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                if let Some(h) = self.hasher.as_mut() {
                    h.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                self.done = true;
                if let Some(max) = self.expected_size {
                    if self.seen != max {
                        let e =
                            self.mismatch(format!("{max} bytes"), format!("{} bytes", self.seen));
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                let Some(h) = self.hasher.take() else {
                    return Poll::Ready(None);
                };
                let actual = Digest::from_sha256(h.finalize().into());
                if actual != self.expected {
                    let e = self.mismatch(self.expected.to_string(), actual.to_string());
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None)
            }
        }
    }
}

/// The first error of a blob stream that [`blob_to_body_stream`] turned into a request
/// body. An upload that failed because its source did reports this, the source's own
/// error (its registry, its class: a source that timed out is a timeout), not the
/// upload's.
#[derive(Debug, Clone, Default)]
pub struct SourceError(Arc<Mutex<Option<RegistryError>>>);

impl SourceError {
    /// The source's error, if it failed (taken: a second call gives `None`).
    pub fn take(&self) -> Option<RegistryError> {
        self.0.lock().ok().and_then(|mut e| e.take())
    }

    fn note(&self, e: RegistryError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(e);
        }
    }
}

/// Turns a blob stream into a request body stream (to copy a blob between registries
/// without holding it): errors become transport errors that abort the upload, and are
/// kept in the returned [`SourceError`].
pub fn blob_to_body_stream(blob: BlobStream) -> (ByteStream, SourceError) {
    use futures_util::StreamExt;
    let failed = SourceError::default();
    let noted = failed.clone();
    let stream = Box::pin(blob.map(move |r| {
        r.map_err(|e| {
            let t = TransportError::new(TransportErrorKind::Other, e.to_string());
            noted.note(e);
            t
        })
    }));
    (stream, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::transport::stream_from_chunks;
    use futures_util::{FutureExt, StreamExt};

    fn collect(s: VerifiedStream) -> Vec<Result<Bytes, RegistryError>> {
        s.collect::<Vec<_>>().now_or_never().unwrap_or_default()
    }

    #[test]
    fn passes_good_content() {
        let d = Digest::sha256_of(b"hello world");
        let s = stream_from_chunks(vec![
            Bytes::from_static(b"hello "),
            Bytes::from_static(b"world"),
        ]);
        let out = collect(VerifiedStream::new(s, d, Some(11), "r", "blob"));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r.is_ok()));
    }

    #[test]
    fn fails_bad_digest_at_end() {
        let d = Digest::sha256_of(b"hello world");
        let s = stream_from_chunks(vec![Bytes::from_static(b"hello there")]);
        let out = collect(VerifiedStream::new(s, d, None, "r", "blob"));
        assert!(matches!(
            out.last(),
            Some(Err(RegistryError::ContentMismatch { .. }))
        ));
    }

    #[test]
    fn fails_wrong_size() {
        let d = Digest::sha256_of(b"abc");
        let s = stream_from_chunks(vec![Bytes::from_static(b"abc")]);
        let out = collect(VerifiedStream::new(s, d.clone(), Some(2), "r", "blob"));
        assert!(matches!(
            out.last(),
            Some(Err(RegistryError::ContentMismatch { .. }))
        ));
        let s = stream_from_chunks(vec![Bytes::from_static(b"abc")]);
        let out = collect(VerifiedStream::new(s, d, Some(4), "r", "blob"));
        assert!(matches!(
            out.last(),
            Some(Err(RegistryError::ContentMismatch { .. }))
        ));
    }
}
