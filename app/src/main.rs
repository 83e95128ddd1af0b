//! The app's entry point: mounts the Leptos UI (wasm32). Natively there is nothing to
//! run; build it with `scripts/build-app.sh`.

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(kiln_app::ui::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("kiln-app is a browser app: build it with scripts/build-app.sh");
}
