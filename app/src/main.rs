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
