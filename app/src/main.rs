//! The app's entry point (wasm32). On a page it mounts the Leptos UI; in the engine's
//! Web Worker (same wasm, no `window`) it runs the job the worker was started with
//! (`kiln_app::browser::runner`). Natively there is nothing to run; build it with
//! `scripts/build-app.sh`.

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    if web_sys::window().is_some() {
        leptos::mount::mount_to_body(kiln_app::ui::App);
    } else {
        kiln_app::browser::runner::start_from_global();
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("kiln-app is a browser app: build it with scripts/build-app.sh");
}

/// Starts a conversion in the engine's Web Worker (for scripts and end-to-end tests):
/// `onEvent` gets each event as JSON; returns a function that cancels it. See `kiln_app::browser::script_api`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn kiln_convert(
    request_json: &str,
    pem: String,
    on_event: js_sys::Function,
) -> Result<wasm_bindgen::JsValue, wasm_bindgen::JsValue> {
    kiln_app::browser::script_api::convert(request_json, pem, on_event)
}

/// Starts a verification in the engine's Web Worker (for scripts and end-to-end tests).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn kiln_verify(
    image: String,
    expect_mrsigner: Option<String>,
    on_event: js_sys::Function,
) -> Result<wasm_bindgen::JsValue, wasm_bindgen::JsValue> {
    kiln_app::browser::script_api::verify(image, expect_mrsigner, on_event)
}
