//! Resuming a blob download that broke mid-body: a `Range` request from the last byte
//! received, so a 5 GiB layer whose connection dropped at 4 GiB does not start over.
//!
//! [`ResumingBody`] sits under the [`VerifiedStream`](super::VerifiedStream) of
//! [`RegistryClient::get_blob`](super::RegistryClient::get_blob) when the client has a
//! [`Retry`]: the digest is computed over exactly the bytes handed on, so it still covers
//! every byte of the blob, whichever connections they came from. What counts as broken:
//! the body fails with a connection error or a read timeout (a stall: the host's
//! transport cuts a response that sends nothing for its idle timeout, natively
//! `HttpOptions::read_timeout`, in the browser the page's `idleTimeoutSecs`), or it ends
//! before the descriptor's size.
//!
//! The answer to `Range: bytes=N-`:
//! - `206` whose `Content-Range` starts at `N`: its bytes continue the stream (one that
//!   starts earlier has the bytes before `N` dropped; later is an error);
//! - `200` (the registry ignored the range): the blob again from byte 0; its first `N`
//!   bytes are dropped (they were handed on already) and the stream continues at `N`;
//! - anything else fails the stream with the registry's answer.
//!
//! Bounds: resumes count as retries of the blob's `GET` under the client's
//! [`RetryPolicy`](super::RetryPolicy) (attempts, backoff, total wait; each one reported
//! to the observer as a retry, `resuming at byte N`), except that a connection which
//! delivered at least [`RESUME_PROGRESS_RESET`] bytes before breaking starts the count
//! again: a long download over a flaky network can resume many times, a registry that
//! sends a few bytes per connection cannot keep kiln busy.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;

use super::client::RegistryClient;
use super::error::RegistryError;
use super::retry::{salt_of, Retry, RetryNotice};
use crate::image::transport::{ByteStream, Response, TransportError, TransportErrorKind};

/// Bytes one connection must deliver for the resume count to start again (1 MiB).
pub const RESUME_PROGRESS_RESET: u64 = 1024 * 1024;

#[cfg(not(target_arch = "wasm32"))]
type Pending = Pin<Box<dyn Future<Output = Result<Response, RegistryError>> + Send>>;
#[cfg(target_arch = "wasm32")]
type Pending = Pin<Box<dyn Future<Output = Result<Response, RegistryError>>>>;

/// A blob body that resumes itself with `Range` requests; see the module documentation.
pub struct ResumingBody {
    client: RegistryClient,
    retry: Retry,
    repository: String,
    url: String,
    op: String,
    size: Option<u64>,
    body: Option<ByteStream>,
    pending: Option<Pending>,
    /// Bytes handed on.
    delivered: u64,
    /// Bytes of the current answer still to drop (a `200` to a `Range` request).
    skip: u64,
    /// Bytes the current connection delivered.
    since_restart: u64,
    /// The attempt that failed last (1 = the first request).
    attempt: u32,
    waited: u64,
    done: bool,
}

impl ResumingBody {
    /// Wraps the body of the first answer to `GET url`, as a [`ByteStream`].
    pub(super) fn wrap(
        client: RegistryClient,
        retry: Retry,
        repository: &str,
        url: String,
        op: String,
        size: Option<u64>,
        body: ByteStream,
    ) -> ByteStream {
        Box::pin(ResumingBody {
            client,
            retry,
            repository: repository.to_string(),
            url,
            op,
            size,
            body: Some(body),
            pending: None,
            delivered: 0,
            skip: 0,
            since_restart: 0,
            attempt: 1,
            waited: 0,
            done: false,
        })
    }

    /// Plans the next request after `error`, or returns the error when the policy says
    /// no more.
    fn resume(&mut self, error: TransportError) -> Result<(), TransportError> {
        if self.since_restart >= RESUME_PROGRESS_RESET {
            self.attempt = 1;
        }
        let policy = self.retry.policy;
        if self.attempt >= policy.max_tries {
            return Err(error);
        }
        let delay = policy.delay_ms(self.attempt, None, salt_of(&self.op));
        if self.waited.saturating_add(delay) > policy.max_total_ms {
            return Err(error);
        }
        let operation = format!("{} (resuming at byte {})", self.op, self.delivered);
        if let Some(o) = &self.retry.observer {
            o.retrying(&RetryNotice {
                operation,
                attempt: self.attempt,
                delay_ms: delay,
                reason: error.to_string(),
            });
        }
        self.attempt += 1;
        self.waited += delay;
        self.since_restart = 0;
        self.body = None;
        let client = self.client.share();
        let timer = self.retry.timer.clone();
        let (repository, url, op, from) = (
            self.repository.clone(),
            self.url.clone(),
            self.op.clone(),
            self.delivered,
        );
        self.pending = Some(Box::pin(async move {
            if delay > 0 {
                timer.sleep_ms(delay).await;
            }
            client.fetch_blob(&repository, &url, from, &op).await
        }));
        Ok(())
    }

    /// Takes the answer to a resume request: where its bytes start decides how many
    /// to drop.
    fn answer(&mut self, resp: Response) -> Result<(), TransportError> {
        let start = match resp.status {
            200 => 0,
            206 if self.delivered > 0 => resp
                .headers
                .get("content-range")
                .and_then(content_range_start)
                .ok_or_else(|| {
                    TransportError::new(
                        TransportErrorKind::Other,
                        "resumed blob: HTTP 206 without a usable Content-Range",
                    )
                })?,
            status => {
                return Err(TransportError::new(
                    TransportErrorKind::Other,
                    format!(
                        "resuming at byte {}: the registry answered HTTP {status}",
                        self.delivered
                    ),
                ))
            }
        };
        if start > self.delivered {
            return Err(TransportError::new(
                TransportErrorKind::Other,
                format!(
                    "resuming at byte {}: the registry sent bytes from {start} on",
                    self.delivered
                ),
            ));
        }
        self.skip = self.delivered - start;
        self.body = Some(resp.body);
        Ok(())
    }

    fn fail(&mut self, e: TransportError) -> Poll<Option<Result<Bytes, TransportError>>> {
        self.done = true;
        self.body = None;
        self.pending = None;
        Poll::Ready(Some(Err(e)))
    }
}

/// The first byte position of `Content-Range: bytes A-B/N`.
fn content_range_start(v: &str) -> Option<u64> {
    let range = v.trim().strip_prefix("bytes")?.trim_start();
    range.split('-').next()?.trim().parse().ok()
}

impl Stream for ResumingBody {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(p) = this.pending.as_mut() {
                match p.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(result) => {
                        this.pending = None;
                        let answered = result
                            .map_err(|e| {
                                let kind = match &e {
                                    RegistryError::Transport { source, .. } => source.kind,
                                    _ => TransportErrorKind::Other,
                                };
                                TransportError::new(kind, format!("resuming the blob: {e}"))
                            })
                            .and_then(|resp| this.answer(resp));
                        if let Err(e) = answered {
                            return this.fail(e);
                        }
                        continue;
                    }
                }
            }
            let Some(body) = this.body.as_mut() else {
                return Poll::Ready(None);
            };
            match body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(mut chunk))) => {
                    if this.skip > 0 {
                        let drop = this.skip.min(chunk.len() as u64);
                        this.skip -= drop;
                        chunk = chunk.slice(drop as usize..);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    this.delivered += chunk.len() as u64;
                    this.since_restart += chunk.len() as u64;
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Ready(Some(Err(e))) => {
                    if !matches!(e.kind, TransportErrorKind::Io | TransportErrorKind::Timeout) {
                        return this.fail(e);
                    }
                    if let Err(e) = this.resume(e) {
                        return this.fail(e);
                    }
                }
                Poll::Ready(None) => {
                    let short = this.size.is_some_and(|s| this.delivered < s) || this.skip > 0;
                    if !short {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    let e = TransportError::new(
                        TransportErrorKind::Io,
                        format!("the body ended after {} bytes", this.delivered),
                    );
                    if let Err(e) = this.resume(e) {
                        // The verifying stream above names the size mismatch.
                        let _ = e;
                        this.done = true;
                        return Poll::Ready(None);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::{FutureExt, StreamExt};

    use super::*;
    use crate::image::reference::Digest;
    use crate::image::registry::{ClientOptions, Credentials, RetryObserver, RetryPolicy, Timer};
    use crate::image::transport::{Headers, Request, Transport};

    /// URL, `Range`, `Authorization` of one request.
    type SeenRequest = (String, Option<String>, Option<String>);

    /// A registry at `https://reg.test` (Basic auth) that redirects blob GETs to
    /// `https://storage.test` (when `redirect`), whose `n`th answer stops after
    /// `cuts[n]` bytes with `kind` (none past the list), and which answers `Range`
    /// with 206 (or 200 when `ignore_range`); `tamper` changes the bytes of answers
    /// after the first.
    struct Flaky {
        blob: Vec<u8>,
        cuts: Vec<usize>,
        kind: TransportErrorKind,
        ignore_range: bool,
        redirect: bool,
        tamper: bool,
        /// url, Range, Authorization of every request.
        seen: Mutex<Vec<SeenRequest>>,
        answers: Mutex<usize>,
    }

    impl Flaky {
        fn new(blob: Vec<u8>, cuts: Vec<usize>) -> Self {
            Flaky {
                blob,
                cuts,
                kind: TransportErrorKind::Io,
                ignore_range: false,
                redirect: false,
                tamper: false,
                seen: Mutex::new(Vec::new()),
                answers: Mutex::new(0),
            }
        }

        fn seen(&self) -> Vec<SeenRequest> {
            self.seen.lock().map(|s| s.clone()).unwrap_or_default()
        }
    }

    #[kiln_macros::async_trait]
    impl Transport for Flaky {
        async fn send(&self, req: Request) -> Result<Response, TransportError> {
            let range = req.headers.get("range").map(str::to_string);
            let auth = req.headers.get("authorization").map(str::to_string);
            if let Ok(mut s) = self.seen.lock() {
                s.push((req.url.clone(), range.clone(), auth.clone()));
            }
            if req.url.starts_with("https://reg.test/") {
                if auth.is_none() {
                    let h: Headers = [("WWW-Authenticate", "Basic realm=\"r\"")]
                        .into_iter()
                        .collect();
                    return Ok(Response::from_bytes(401, h, Vec::new()));
                }
                if self.redirect {
                    let h: Headers = [("Location", "https://storage.test/b/1?sig=abc")]
                        .into_iter()
                        .collect();
                    return Ok(Response::from_bytes(307, h, Vec::new()));
                }
            }
            let n = {
                let mut a = self.answers.lock().unwrap_or_else(|p| p.into_inner());
                *a += 1;
                *a - 1
            };
            let from = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|r| r.parse::<usize>().ok())
                .filter(|_| !self.ignore_range)
                .unwrap_or(0);
            let mut data = self.blob[from..].to_vec();
            if self.tamper && n > 0 {
                data.iter_mut().for_each(|b| *b ^= 1);
            }
            let (status, mut headers) = if from > 0 {
                let h: Headers = [(
                    "Content-Range",
                    format!("bytes {from}-{}/{}", self.blob.len() - 1, self.blob.len()),
                )]
                .into_iter()
                .collect();
                (206, h)
            } else {
                (200, Headers::new())
            };
            headers.push("Content-Length", data.len().to_string());
            let mut items: Vec<Result<Bytes, TransportError>> = Vec::new();
            match self.cuts.get(n) {
                Some(&cut) => {
                    let cut = cut.min(data.len());
                    // Two chunks, then the break.
                    items.push(Ok(Bytes::copy_from_slice(&data[..cut / 2])));
                    items.push(Ok(Bytes::copy_from_slice(&data[cut / 2..cut])));
                    items.push(Err(TransportError::new(self.kind, "connection reset")));
                }
                None => items.push(Ok(Bytes::from(data))),
            }
            Ok(Response {
                status,
                headers,
                body: Box::pin(futures_util::stream::iter(items)),
            })
        }
    }

    #[derive(Default)]
    struct Counting {
        sleeps: Mutex<Vec<u64>>,
        notices: Mutex<Vec<RetryNotice>>,
    }

    #[kiln_macros::async_trait]
    impl Timer for Counting {
        async fn sleep_ms(&self, ms: u64) {
            if let Ok(mut s) = self.sleeps.lock() {
                s.push(ms);
            }
        }
    }

    impl RetryObserver for Counting {
        fn retrying(&self, notice: &RetryNotice) {
            if let Ok(mut n) = self.notices.lock() {
                n.push(notice.clone());
            }
        }
    }

    fn blob() -> Vec<u8> {
        (0..1000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Reads the blob through a client with retries; returns the bytes or the error
    /// and the retry notices.
    fn fetch(t: Arc<Flaky>) -> (Result<Vec<u8>, RegistryError>, Vec<RetryNotice>) {
        let counting = Arc::new(Counting::default());
        let client = RegistryClient::new(
            t.clone(),
            "reg.test",
            ClientOptions {
                insecure: false,
                credentials: Some(Credentials::new("u", "pw-secret")),
            },
        )
        .with_retry(Retry {
            policy: RetryPolicy {
                base_delay_ms: 10,
                ..RetryPolicy::default()
            },
            timer: counting.clone(),
            observer: Some(counting.clone()),
        });
        let d = Digest::sha256_of(&t.blob);
        let result = async {
            let mut s = client
                .get_blob("a/b", &d, Some(t.blob.len() as u64))
                .await?;
            let mut out = Vec::new();
            while let Some(chunk) = s.next().await {
                out.extend_from_slice(&chunk?);
            }
            Ok(out)
        }
        .now_or_never()
        .unwrap_or_else(|| panic!("nothing pends"));
        let notices = counting
            .notices
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default();
        (result, notices)
    }

    fn ranges(t: &Flaky) -> Vec<String> {
        t.seen().into_iter().filter_map(|(_, r, _)| r).collect()
    }

    #[test]
    fn a_broken_body_resumes_from_the_last_byte() {
        for kind in [TransportErrorKind::Io, TransportErrorKind::Timeout] {
            let mut f = Flaky::new(blob(), vec![300, 300]);
            f.kind = kind;
            let t = Arc::new(f);
            let (got, notices) = fetch(t.clone());
            assert_eq!(got.ok(), Some(blob()), "{kind:?}");
            assert_eq!(ranges(&t), ["bytes=300-", "bytes=600-"], "{kind:?}");
            assert_eq!(notices.len(), 2);
            assert!(notices[1].operation.contains("resuming at byte 600"));
            assert_eq!((notices[0].attempt, notices[1].attempt), (1, 2));
        }
    }

    #[test]
    fn a_registry_ignoring_range_restarts_from_zero_and_drops_what_was_sent() {
        let mut f = Flaky::new(blob(), vec![300, 500]);
        f.ignore_range = true;
        let t = Arc::new(f);
        let (got, notices) = fetch(t.clone());
        // 300 bytes, then a 200 whose first 300 are dropped, cut at 500 (200 new),
        // then a 200 whose first 500 are dropped.
        assert_eq!(got.ok(), Some(blob()));
        assert_eq!(ranges(&t), ["bytes=300-", "bytes=500-"]);
        assert_eq!(notices.len(), 2);
    }

    #[test]
    fn resumed_bytes_that_differ_fail_the_digest() {
        let mut f = Flaky::new(blob(), vec![300]);
        f.tamper = true;
        let (got, _) = fetch(Arc::new(f));
        assert!(
            matches!(got, Err(RegistryError::ContentMismatch { .. })),
            "{got:?}"
        );
    }

    #[test]
    fn resumes_are_bounded_by_the_policy() {
        // Every answer breaks after 10 bytes: five attempts in all, then the error.
        let t = Arc::new(Flaky::new(blob(), vec![10; 100]));
        let (got, notices) = fetch(t.clone());
        let Err(RegistryError::Transport { source, .. }) = &got else {
            panic!("{got:?}")
        };
        assert_eq!(source.kind, TransportErrorKind::Io);
        assert_eq!(notices.len(), 4);
        assert_eq!(ranges(&t).len(), 4);
    }

    #[test]
    fn redirected_blobs_go_without_credentials_and_resume_there() {
        let mut f = Flaky::new(blob(), vec![400]);
        f.redirect = true;
        let t = Arc::new(f);
        let (got, _) = fetch(t.clone());
        assert_eq!(got.ok(), Some(blob()));
        let seen = t.seen();
        let storage: Vec<_> = seen
            .iter()
            .filter(|(u, _, _)| u.starts_with("https://storage.test/"))
            .collect();
        assert_eq!(storage.len(), 2, "{seen:?}");
        assert!(storage.iter().all(|(_, _, a)| a.is_none()), "{seen:?}");
        assert_eq!(storage[1].1.as_deref(), Some("bytes=400-"));
        // The registry itself got the credentials (after its challenge).
        assert!(seen
            .iter()
            .any(|(u, _, a)| u.starts_with("https://reg.test/") && a.is_some()));
    }

    #[test]
    fn content_ranges() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes  7-/ *"), Some(7));
        assert_eq!(content_range_start("items 1-2/3"), None);
        assert_eq!(content_range_start("bytes x-1/2"), None);
    }
}
