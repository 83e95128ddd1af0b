//! The result panel: every field of a convert-image response, each with a copy button.

use kiln_engine::api::ConvertResponse;
use leptos::prelude::*;

use super::widgets::CopyButton;
use crate::sample::response_rows;

/// Shows a response (or nothing). `sample` labels it as not a real conversion.
#[component]
pub fn ResultPanel(
    /// The response to show.
    #[prop(into)]
    response: Signal<Option<ConvertResponse>>,
    /// Whether it is a sample (stub) rather than a real result.
    #[prop(into)]
    sample: Signal<bool>,
) -> impl IntoView {
    move || {
        response.get().map(|r| {
            let json = serde_json::to_string_pretty(&r).unwrap_or_default();
            let rows = response_rows(&r)
                .into_iter()
                .map(|(name, value)| {
                    let v = value.clone();
                    view! {
                        <div class="kv" data-field=name>
                            <dt>{name}</dt>
                            <dd><code class="mono">{value}</code></dd>
                            <CopyButton text=Signal::derive(move || v.clone()) label=format!("Copy {name}") />
                        </div>
                    }
                })
                .collect_view();
            let warnings = r
                .warnings
                .iter()
                .map(|w| view! { <li>{w.clone()}</li> })
                .collect_view();
            view! {
                <section class="card result" aria-labelledby="result-h" data-testid="result-panel">
                    <h2 id="result-h">
                        "Result"
                        {move || sample.get().then(|| view! { <span class="badge warn">"sample — not a real conversion"</span> })}
                    </h2>
                    <dl class="kvs">{rows}</dl>
                    {move || (!sample.get()).then(|| {
                        let href = crate::links::verify_href(&r.new_image, &r.mrenclave, &r.mrsigner);
                        view! {
                            <p class="buttons">
                                <a class="button" data-testid="verify-link" href=href>
                                    "Verify this image in its registry →"
                                </a>
                            </p>
                        }
                    })}
                    <ul class="warnings">{warnings}</ul>
                    <details>
                        <summary>"Response JSON"</summary>
                        <pre class="code">{json.clone()}</pre>
                        <CopyButton text=Signal::derive(move || json.clone()) label="Copy the response JSON" />
                    </details>
                </section>
            }
        })
    }
}
