//! The browser transport's idle timeout in headless Chromium, on real browser timers: a
//! body that stalls fails as a timeout naming the URL and aborts its request; a slow body
//! that keeps coming, and a body's own error, pass through.
#![cfg(target_arch = "wasm32")]

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;
use futures_util::StreamExt;
use kiln_app::browser::transport::{idle_limited, within};
use kiln_engine::image::transport::{ByteStream, TransportError, TransportErrorKind};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WHERE: &str = "https://registry.example/v2/app/blobs/sha256:ab";

fn flag() -> (Rc<Cell<bool>>, impl FnOnce() + 'static) {
    let aborted = Rc::new(Cell::new(false));
    let set = aborted.clone();
    (aborted, move || set.set(true))
}

/// `n` chunks, one every `gap_ms` milliseconds.
fn trickle(n: usize, gap_ms: u32) -> ByteStream {
    Box::pin(futures_util::stream::unfold(0, move |i| async move {
        if i == n {
            return None;
        }
        gloo_timers::future::TimeoutFuture::new(gap_ms).await;
        Some((Ok(Bytes::from(vec![i as u8; 3])), i + 1))
    }))
}

#[wasm_bindgen_test]
async fn a_stalled_body_times_out_and_aborts() {
    let (aborted, abort) = flag();
    let stalled: ByteStream = Box::pin(
        futures_util::stream::iter([Ok(Bytes::from_static(b"first"))])
            .chain(futures_util::stream::pending()),
    );
    let mut s = idle_limited(stalled, 50, WHERE.to_string(), abort);
    assert_eq!(
        s.next().await.unwrap().unwrap(),
        Bytes::from_static(b"first")
    );
    assert!(!aborted.get());
    let e = s.next().await.unwrap().unwrap_err();
    assert_eq!(e.kind, TransportErrorKind::Timeout);
    assert_eq!(e.message, format!("{WHERE}: no data for 50 ms"));
    assert!(aborted.get(), "the request is aborted");
    assert!(
        s.next().await.is_none(),
        "the stream ends after the timeout"
    );
}

#[wasm_bindgen_test]
async fn a_slow_body_that_keeps_coming_passes() {
    let (aborted, abort) = flag();
    let s = idle_limited(trickle(5, 20), 400, WHERE.to_string(), abort);
    let chunks: Vec<_> = s.collect().await;
    assert_eq!(chunks.len(), 5);
    for (i, c) in chunks.into_iter().enumerate() {
        assert_eq!(c.unwrap(), Bytes::from(vec![i as u8; 3]));
    }
    assert!(!aborted.get());
}

#[wasm_bindgen_test]
async fn a_body_error_passes_through() {
    let (aborted, abort) = flag();
    let failing: ByteStream = Box::pin(futures_util::stream::iter([Err(TransportError::new(
        TransportErrorKind::Io,
        "reading the body: network error",
    ))]));
    let mut s = idle_limited(failing, 50, WHERE.to_string(), abort);
    let e = s.next().await.unwrap().unwrap_err();
    assert_eq!(e.kind, TransportErrorKind::Io);
    assert!(s.next().await.is_none());
    assert!(!aborted.get());
}

#[wasm_bindgen_test]
async fn within_gives_the_output_or_none() {
    assert_eq!(within(futures_util::future::ready(7), 50).await, Some(7));
    assert_eq!(
        within(futures_util::future::pending::<u8>(), 30).await,
        None
    );
}

/// The engine's retries wait on `JsTimer` (setTimeout) in the browser, on real timers.
#[wasm_bindgen_test]
async fn the_retry_timer_waits_on_real_timers() {
    use kiln_engine::image::registry::Timer;
    let start = js_sys::Date::now();
    kiln_app::browser::clock::JsTimer.sleep_ms(50).await;
    let waited = js_sys::Date::now() - start;
    assert!(waited >= 45.0, "waited {waited} ms");
    let retry = kiln_app::browser::clock::retry(Default::default());
    assert!(retry.policy.max_tries > 1);
}
