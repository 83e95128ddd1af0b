//! Small shared widgets: copy button, file reading, clipboard.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/js/kiln_web.js")]
extern "C" {
    async fn copy_text(text: &str) -> JsValue;
    #[wasm_bindgen(catch)]
    async fn read_file(file: &web_sys::File) -> Result<JsValue, JsValue>;
}

/// Reads a picked or dropped file.
pub async fn file_bytes(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let v = read_file(file)
        .await
        .map_err(|e| crate::webcrypto::js_error(&e))?;
    Ok(js_sys::Uint8Array::new(&v).to_vec())
}

/// The files of an `<input type=file>` change event.
pub fn input_files(ev: &leptos::ev::Event) -> Vec<web_sys::File> {
    use wasm_bindgen::JsCast;
    let Some(input) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return Vec::new();
    };
    list_files(input.files())
}

/// The files of a drop event.
pub fn dropped_files(ev: &leptos::ev::DragEvent) -> Vec<web_sys::File> {
    list_files(ev.data_transfer().and_then(|d| d.files()))
}

fn list_files(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else {
        return Vec::new();
    };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

/// A button that copies `text` to the clipboard and says so.
#[component]
pub fn CopyButton(
    /// What to copy.
    #[prop(into)]
    text: Signal<String>,
    /// Accessible name, e.g. "Copy mrenclave".
    #[prop(into)]
    label: String,
) -> impl IntoView {
    let state = RwSignal::new("Copy");
    view! {
        <button
            type="button"
            class="copy"
            aria-label=label
            on:click=move |_| {
                let t = text.get_untracked();
                spawn_local(async move {
                    let ok = copy_text(&t).await.as_bool().unwrap_or(false);
                    state.set(if ok { "Copied" } else { "Copy failed" });
                });
            }
        >
            {move || state.get()}
        </button>
    }
}

/// A `data:` URL for downloading text.
pub fn text_data_url(mime: &str, text: &str) -> String {
    format!(
        "data:{mime};charset=utf-8,{}",
        String::from(js_sys::encode_uri_component(text))
    )
}
