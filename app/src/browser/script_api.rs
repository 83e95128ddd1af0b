//! The runtime for scripts and end-to-end tests: the page exports (from the app's
//! `main.rs`) `kiln_convert(requestJson, pem, onEvent)` and
//! `kiln_verify(image, expectMrsigner, onEvent)`, which start the same Web Worker jobs as
//! the UI and call `onEvent` with each event as JSON (`{"type": "progress" | "converted" |
//! "verified" | "failed", ...}`, the worker's message form). Both return a function that
//! cancels the job.

use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

use super::protocol::WorkerMessage;
use crate::engine_bridge::{start_convert, start_verify, JobEvent, JobHandle, KeyChoice};

fn relay(on_event: js_sys::Function) -> impl Fn(JobEvent) + 'static {
    move |e: JobEvent| {
        let json = serde_json::to_string(&WorkerMessage::from(e)).unwrap_or_default();
        let _ = on_event.call1(&JsValue::NULL, &JsValue::from_str(&json));
    }
}

fn canceller(handle: JobHandle) -> JsValue {
    Closure::once_into_js(move || handle.cancel())
}

/// Starts a conversion of `request_json` signed with the PEM key `pem`; returns a
/// function that cancels it.
pub fn convert(
    request_json: &str,
    pem: String,
    on_event: js_sys::Function,
) -> Result<JsValue, JsValue> {
    let req = kiln_engine::api::parse_request(request_json.as_bytes())
        .map_err(|e| JsValue::from_str(&e.reason))?;
    start_convert(req, KeyChoice::Pem(Zeroizing::new(pem)), relay(on_event))
        .map(canceller)
        .map_err(|e| JsValue::from_str(&e))
}

/// Starts a verification of `image` (no credentials), expecting `expect_mrsigner` if
/// given; returns a function that cancels it.
pub fn verify(
    image: String,
    expect_mrsigner: Option<String>,
    on_event: js_sys::Function,
) -> Result<JsValue, JsValue> {
    start_verify(image, None, None, expect_mrsigner, relay(on_event))
        .map(canceller)
        .map_err(|e| JsValue::from_str(&e))
}
