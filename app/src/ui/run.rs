//! Running a conversion in this browser: the signing key (a stored WebCrypto key or a
//! PEM held in memory), Convert and Cancel, progress, errors as `errorType: reason`, and
//! the layer cache's usage with a control to clear it.

use kiln_engine::api::{ConvertRequest, ConvertResponse};
use leptos::prelude::*;
use leptos::task::spawn_local;
use zeroize::Zeroizing;

use super::bridge::{self, JobEvent, JobHandle, KeyChoice};
use super::progress::{human_bytes, ProgressModel, ProgressPanel};
use crate::engine_bridge::import_pem;
use crate::keystore::{self, KeyInfo, KeyKind};

#[wasm_bindgen::prelude::wasm_bindgen(module = "/src/js/kiln_web.js")]
extern "C" {
    fn scroll_into_view_soon(selector: &str);
}

/// The value of the key select meaning "a PEM pasted below".
const PEM_CHOICE: &str = "pem";

/// How the last job ended, for the status line.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing ran yet.
    Idle,
    /// Running.
    Running,
    /// Finished.
    Done,
    /// Stopped by the user.
    Cancelled,
    /// `errorType`, `reason`.
    Failed(String, String),
}

/// The layer cache line: usage and a Clear button.
#[component]
pub fn LayerCacheControl(
    /// Bumped by the owner to re-read usage (after a job).
    #[prop(into)]
    refresh: Signal<u32>,
) -> impl IntoView {
    let usage = RwSignal::new(String::from("…"));
    let reload = move || {
        spawn_local(async move {
            usage.set(match bridge::layer_cache_usage().await {
                Ok((n, bytes)) => format!(
                    "{n} layer{} cached ({})",
                    if n == 1 { "" } else { "s" },
                    human_bytes(bytes)
                ),
                Err(e) => format!("unknown ({e})"),
            });
        });
    };
    Effect::new(move |_| {
        refresh.track();
        reload();
    });
    let clear = move |_| {
        usage.set("clearing…".into());
        spawn_local(async move {
            if let Err(e) = bridge::clear_layer_cache().await {
                usage.set(format!("could not clear: {e}"));
                return;
            }
            reload();
        });
    };
    view! {
        <div class="cache-line">
            <span>"Layer cache: " <span data-testid="cache-usage">{move || usage.get()}</span></span>
            <button type="button" class="ghost" data-testid="cache-clear" on:click=clear>
                "Clear the layer cache"
            </button>
        </div>
        <p class="help">"Summaries of layers already scanned (file names and hashes, no file contents), kept in this browser's IndexedDB so a second conversion of the same base image fetches less."</p>
    }
}

/// The "Convert in this browser" card.
#[component]
pub fn RunCard(
    /// The request as the form builds it (`None` while the form has errors).
    #[prop(into)]
    request: Signal<Option<ConvertRequest>>,
    /// Called when Convert is pressed on an invalid form (shows every error).
    on_invalid: Callback<()>,
    /// Whether the form asks for a KMS key (not available in the browser).
    #[prop(into)]
    sdkms: Signal<bool>,
    /// Where a real response goes.
    result: RwSignal<Option<ConvertResponse>>,
    /// Set when `result` holds a real response (not the sample).
    real: RwSignal<bool>,
) -> impl IntoView {
    let keys: RwSignal<Vec<KeyInfo>> = RwSignal::new(Vec::new());
    let key_choice = RwSignal::new(String::from(PEM_CHOICE));
    let pem = RwSignal::new(String::new());
    let passphrase = RwSignal::new(String::new());
    let key_error = RwSignal::new(String::new());
    spawn_local(async move {
        match keystore::list().await {
            Ok(k) => {
                if let Some(first) = k.first() {
                    key_choice.set(first.id.clone());
                }
                keys.set(k);
            }
            Err(e) => key_error.set(format!("Could not read the key store: {e}")),
        }
    });
    // MRSIGNER of the chosen key, computed here (the PEM never leaves this page).
    let mrsigner = Memo::new(move |_| {
        let choice = key_choice.get();
        if choice == PEM_CHOICE {
            let text = pem.get();
            if text.trim().is_empty() {
                return Err(String::new());
            }
            import_pem(&text, None).map(|k| k.mrsigner)
        } else {
            keys.get()
                .into_iter()
                .find(|k| k.id == choice)
                .map(|k| k.mrsigner)
                .ok_or_else(|| "choose a key".to_string())
        }
    });

    let model = RwSignal::new(ProgressModel::default());
    let outcome = RwSignal::new(Outcome::Idle);
    let job: StoredValue<Option<JobHandle>, LocalStorage> = StoredValue::new_local(None);
    let cache_refresh = RwSignal::new(0u32);
    let running = Signal::derive(move || outcome.get() == Outcome::Running);
    // Elapsed time: when the job started and ended, and a clock ticking each second while
    // it runs (the interval is dropped with this card).
    let started = RwSignal::new(0.0f64);
    let ended: RwSignal<Option<f64>> = RwSignal::new(None);
    let now = RwSignal::new(js_sys::Date::now());
    let tick = gloo_timers::callback::Interval::new(1000, move || {
        if outcome.try_get_untracked() == Some(Outcome::Running) {
            let _ = now.try_set(js_sys::Date::now());
        }
    });
    let _tick = StoredValue::new_local(tick);
    let elapsed = move || {
        let end = ended.get().unwrap_or_else(|| now.get());
        format!("{:.0} s", ((end - started.get()) / 1000.0).max(0.0))
    };
    Effect::new(move |_| {
        if outcome.get() != Outcome::Running && outcome.get() != Outcome::Idle {
            ended.set(Some(js_sys::Date::now()));
        }
    });

    let convert = move |_| {
        let Some(req) = request.get_untracked() else {
            on_invalid.run(());
            return;
        };
        if sdkms.get_untracked() {
            outcome.set(Outcome::Failed(
                "BadRequest".into(),
                "signingKey.sdkms: a KMS key cannot sign in the browser; choose the service's default in the form and a browser key here".into(),
            ));
            return;
        }
        let choice = key_choice.get_untracked();
        let key = if choice == PEM_CHOICE {
            let text = Zeroizing::new(pem.get_untracked());
            if let Err(e) = import_pem(&text, None) {
                key_error.set(if text.trim().is_empty() {
                    "Paste a PEM private key or choose a stored key.".into()
                } else {
                    format!("This PEM cannot sign: {e}")
                });
                return;
            }
            KeyChoice::Pem(text)
        } else {
            let sealed = keys
                .get_untracked()
                .iter()
                .any(|k| k.id == choice && k.kind == KeyKind::SealedPem);
            if sealed {
                let pass = Zeroizing::new(passphrase.get_untracked());
                if pass.is_empty() {
                    key_error.set("This key is stored encrypted: type its passphrase.".into());
                    return;
                }
                KeyChoice::Sealed {
                    id: choice,
                    passphrase: pass,
                }
            } else {
                KeyChoice::Stored { id: choice }
            }
        };
        key_error.set(String::new());
        let mut req = req;
        // The key chosen here signs; the request itself asks for the default.
        req.signing_key = None;
        model.set(ProgressModel::default());
        result.set(None);
        real.set(false);
        started.set(js_sys::Date::now());
        now.set(js_sys::Date::now());
        ended.set(None);
        outcome.set(Outcome::Running);
        // The progress where the user is looking, then the result.
        scroll_into_view_soon("[data-testid=run-status]");
        let on_event = move |ev: JobEvent| match ev {
            JobEvent::Progress(p) => model.update(|m| m.apply(&p)),
            JobEvent::Converted(r) => {
                job.set_value(None);
                real.set(true);
                result.set(Some(r));
                outcome.set(Outcome::Done);
                scroll_into_view_soon("[data-testid=result-panel]");
                cache_refresh.update(|n| *n += 1);
            }
            JobEvent::Verified(..) => {}
            JobEvent::Failed { error_type, reason } => {
                job.set_value(None);
                outcome.set(Outcome::Failed(error_type, reason));
                cache_refresh.update(|n| *n += 1);
            }
        };
        match bridge::start_convert(req, key, on_event) {
            Ok(h) => {
                // A job that ended synchronously has already set its outcome.
                if outcome.get_untracked() == Outcome::Running {
                    job.set_value(Some(h));
                }
            }
            Err(e) => outcome.set(Outcome::Failed("Internal".into(), e)),
        }
    };
    let cancel = move |_| {
        job.update_value(|j| {
            if let Some(h) = j.take() {
                h.cancel();
            }
        });
        outcome.set(Outcome::Cancelled);
        cache_refresh.update(|n| *n += 1);
    };

    let status = move || {
        match outcome.get() {
        Outcome::Idle => None,
        Outcome::Running => Some(view! {
            <p class="verdict" data-testid="run-status" role="status">"Converting… " <span data-testid="elapsed">{elapsed}</span></p>
        }.into_any()),
        Outcome::Done => Some(view! {
            <p class="verdict ok" data-testid="run-status" role="status">"Converted and pushed in " {elapsed} ". The result is below."</p>
        }.into_any()),
        Outcome::Cancelled => Some(view! {
            <p class="verdict bad" data-testid="run-status" role="status">"Cancelled. Nothing was tagged: kiln writes the tag last."</p>
        }.into_any()),
        Outcome::Failed(t, r) => Some(view! {
            <p class="verdict bad" data-testid="run-error" role="alert">
                <code data-testid="run-error-type">{t}</code> ": " <span data-testid="run-error-reason">{r}</span>
            </p>
        }.into_any()),
    }
    };

    view! {
        <section class="card run" aria-labelledby="s-run">
            <h2 id="s-run">"Convert in this browser"</h2>
            <p class="help">
                "The conversion runs in a Web Worker in this page: layers stream through this site's registry proxy and are measured here; the key below signs here and never leaves the page. Passwords stay in memory."
            </p>
            <div class="field">
                <label for="c-key">"Signing key"</label>
                <select id="c-key" prop:value=move || key_choice.get()
                    on:change=move |ev| key_choice.set(event_target_value(&ev))>
                    {move || keys.get().into_iter().map(|k| {
                        let text = format!("{} ({}, MRSIGNER {}…)", k.label, k.kind.as_str(), k.mrsigner.get(..12).unwrap_or_default());
                        view! { <option value=k.id.clone()>{text}</option> }
                    }).collect_view()}
                    <option value=PEM_CHOICE>"a PEM private key, pasted below (memory only)"</option>
                </select>
                <p class="help">"Keys from the Keys page, or an RSA-3072 (e = 3) PEM held only in this tab's memory."</p>
            </div>
            <Show when=move || key_choice.get() == PEM_CHOICE>
                <div class="field">
                    <label for="c-pem">"PEM private key"</label>
                    <textarea id="c-pem" rows="4" spellcheck="false" autocomplete="off"
                        placeholder="-----BEGIN PRIVATE KEY-----"
                        prop:value=move || pem.get()
                        on:input=move |ev| pem.set(event_target_value(&ev))></textarea>
                </div>
            </Show>
            <Show when=move || {
                let c = key_choice.get();
                keys.get().iter().any(|k| k.id == c && k.kind == KeyKind::SealedPem)
            }>
                <div class="field">
                    <label for="c-pass">"Passphrase of the stored key"</label>
                    <input id="c-pass" type="password" autocomplete="off"
                        prop:value=move || passphrase.get()
                        on:input=move |ev| passphrase.set(event_target_value(&ev)) />
                </div>
            </Show>
            <p class="muted">
                "MRSIGNER: "
                <code class="mono" data-testid="run-mrsigner">
                    {move || match mrsigner.get() { Ok(m) => m, Err(e) if e.is_empty() => "—".into(), Err(e) => e }}
                </code>
            </p>
            <p class="error" role="alert">{move || key_error.get()}</p>
            <div class="buttons">
                <button type="button" class="primary" data-testid="convert" disabled=move || running.get() on:click=convert>
                    "Convert in this browser"
                </button>
                <button type="button" data-testid="cancel" disabled=move || !running.get() on:click=cancel>
                    "Cancel"
                </button>
            </div>
            {status}
            <Show when=move || outcome.get() != Outcome::Idle>
                <ProgressPanel model running />
            </Show>
            <LayerCacheControl refresh=cache_refresh />
        </section>
    }
}
