//! The page's side of the engine's Web Worker: starts one worker per job, relays its
//! messages as [`JobEvent`]s, and terminates it at the end or on cancel.
//!
//! The worker runs the app's own wasm (one binary): a small module script, made on the
//! fly as a `blob:` URL of this origin, imports the app's wasm-bindgen glue by its URL
//! (`import.meta.url` of the glue, so Trunk's file hashes need no configuration),
//! stores the job in `globalThis.kilnJob` and initialises the glue with the page's own
//! compiled `WebAssembly.Module` (posted to it; nothing is fetched or compiled twice).
//! The app's `main` then sees no `window` and runs the job ([`super::runner`]).

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::protocol::{JobSpec, WorkerMessage};
use crate::engine_bridge::JobEvent;
use crate::webcrypto::js_error;

#[wasm_bindgen]
extern "C" {
    /// `import.meta.url` of the app's wasm-bindgen glue module.
    #[wasm_bindgen(thread_local_v2, js_namespace = ["import", "meta"], js_name = url)]
    static GLUE_URL: String;
}

/// The kiln worker's origin: `KILN_APP_API_ORIGIN` at build time (tests serving the app
/// and the worker on different ports), else the page's origin.
pub fn api_origin() -> Result<String, String> {
    if let Some(o) = option_env!("KILN_APP_API_ORIGIN").filter(|o| !o.is_empty()) {
        return Ok(o.trim_end_matches('/').to_string());
    }
    let global = js_sys::global();
    let location =
        js_sys::Reflect::get(&global, &JsValue::from_str("location")).map_err(|e| js_error(&e))?;
    js_sys::Reflect::get(&location, &JsValue::from_str("origin"))
        .ok()
        .and_then(|o| o.as_string())
        .ok_or_else(|| "no page origin".to_string())
}

/// The module script the worker runs (the glue's URL JSON-quoted into it).
pub fn worker_script(glue_url: &str) -> String {
    let quoted = serde_json::to_string(glue_url).unwrap_or_else(|_| "\"\"".into());
    format!(
        r#"import init from {quoted};
self.onmessage = async (e) => {{
  self.onmessage = null;
  try {{
    globalThis.{job} = e.data.job;
    await init({{ module_or_path: e.data.module }});
  }} catch (err) {{
    self.postMessage(JSON.stringify({{ type: "failed", errorType: "Internal",
      reason: "engine worker: " + ((err && err.message) || String(err)) }}));
  }}
}};
"#,
        job = super::runner::JOB_GLOBAL
    )
}

struct Running {
    worker: web_sys::Worker,
    script_url: String,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

type Slot = Rc<RefCell<Option<Running>>>;

/// A running conversion or verification. Dropping the handle does not stop the job.
#[derive(Clone)]
pub struct JobHandle {
    slot: Slot,
}

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle")
            .field("running", &self.is_running())
            .finish()
    }
}

impl JobHandle {
    /// Stops the job now (terminates its worker). Nothing is half-pushed: the engine
    /// writes the output tag last. No further event is delivered.
    pub fn cancel(&self) {
        finish(&self.slot);
    }

    /// Whether the job has not ended yet.
    pub fn is_running(&self) -> bool {
        self.slot.try_borrow().map(|s| s.is_some()).unwrap_or(true)
    }
}

/// Terminates the worker and drops its handlers later (not from inside them).
fn finish(slot: &Slot) {
    let running = slot.try_borrow_mut().ok().and_then(|mut s| s.take());
    if let Some(r) = running {
        r.worker.terminate();
        let _ = web_sys::Url::revoke_object_url(&r.script_url);
        wasm_bindgen_futures::spawn_local(async move { drop(r) });
    }
}

/// Starts `job` in a new Web Worker; `on_event` gets its events.
pub fn spawn(job: JobSpec, on_event: impl Fn(JobEvent) + 'static) -> Result<JobHandle, String> {
    let job_json = serde_json::to_string(&job).map_err(|e| format!("job: {e}"))?;
    let glue = GLUE_URL.with(String::clone);
    let parts = js_sys::Array::of1(&JsValue::from_str(&worker_script(&glue)));
    let bag = web_sys::BlobPropertyBag::new();
    bag.set_type("text/javascript");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &bag)
        .map_err(|e| format!("engine worker script: {}", js_error(&e)))?;
    let script_url = web_sys::Url::create_object_url_with_blob(&blob)
        .map_err(|e| format!("engine worker script: {}", js_error(&e)))?;
    let opts = web_sys::WorkerOptions::new();
    opts.set_type(web_sys::WorkerType::Module);
    opts.set_name("kiln-engine");
    let worker = web_sys::Worker::new_with_options(&script_url, &opts).map_err(|e| {
        let _ = web_sys::Url::revoke_object_url(&script_url);
        format!("starting the engine worker: {}", js_error(&e))
    })?;

    let slot: Slot = Rc::new(RefCell::new(None));
    let on_event = Rc::new(on_event);
    let on_message = {
        let slot = slot.clone();
        let on_event = on_event.clone();
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
            if !slot.try_borrow().map(|s| s.is_some()).unwrap_or(false) {
                return;
            }
            let text = e.data().as_string().unwrap_or_default();
            let msg = serde_json::from_str::<WorkerMessage>(&text).unwrap_or_else(|err| {
                WorkerMessage::failed("Internal", format!("engine worker: bad message: {err}"))
            });
            let terminal = msg.is_terminal();
            on_event(JobEvent::from(msg));
            if terminal {
                finish(&slot);
            }
        })
    };
    let on_error = {
        let slot = slot.clone();
        let on_event = on_event.clone();
        // An ErrorEvent for an uncaught error; a plain Event when the script fails to load.
        Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
            e.prevent_default();
            if !slot.try_borrow().map(|s| s.is_some()).unwrap_or(false) {
                return;
            }
            let message = js_sys::Reflect::get(&e, &JsValue::from_str("message"))
                .ok()
                .and_then(|m| m.as_string())
                .unwrap_or_else(|| "the worker script could not be loaded".into());
            on_event(JobEvent::Failed {
                error_type: "Internal".into(),
                reason: format!("engine worker: {message}"),
            });
            finish(&slot);
        })
    };
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));

    let msg = js_sys::Object::new();
    let set = |k: &str, v: &JsValue| js_sys::Reflect::set(&msg, &JsValue::from_str(k), v);
    set("module", &wasm_bindgen::module()).map_err(|e| js_error(&e))?;
    set("job", &JsValue::from_str(&job_json)).map_err(|e| js_error(&e))?;
    if let Err(e) = worker.post_message(&msg) {
        worker.terminate();
        let _ = web_sys::Url::revoke_object_url(&script_url);
        return Err(format!("starting the engine worker: {}", js_error(&e)));
    }
    *slot.borrow_mut() = Some(Running {
        worker,
        script_url,
        _on_message: on_message,
        _on_error: on_error,
    });
    Ok(JobHandle { slot })
}
