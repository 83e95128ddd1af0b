//! Verify an image in a registry: reference, optional credentials (memory only) and
//! optional expected MRENCLAVE / MRSIGNER; the engine, in a Web Worker, rebuilds both
//! enclaves from the image's own manifests and runtime and checks every claim.

use kiln_engine::api::AuthConfig;
use kiln_engine::verify::{Check, CheckStatus, ImageKind, InspectReport, VerifyReport};
use leptos::prelude::*;

use super::bridge::{self, JobEvent, JobHandle};
use super::progress::{ProgressModel, ProgressPanel};
use super::verify::sigstruct_view;
use super::widgets::CopyButton;

/// The enclave names of the report, as the API calls their measurements.
fn enclave_title(name: &str) -> String {
    match name {
        "sgx1" => "MRENCLAVE (SGX1)".into(),
        "edmm" => "mrenclave2 (SGX2/EDMM)".into(),
        other => format!("MRENCLAVE ({other})"),
    }
}

fn kind_name(k: ImageKind) -> &'static str {
    match k {
        ImageKind::Kiln => "kiln converted image",
        ImageKind::Gsc => "Gramine Shielded Containers image",
        ImageKind::EnclaveOsEnv => "image with ENCLAVEOS_SIGNATURE (compatible platform)",
        ImageKind::Unknown => "not an enclave image kiln knows",
    }
}

/// The verdict line: what passed, or which claims failed and what that means.
pub fn verdict_text(r: &VerifyReport) -> String {
    if r.passed {
        let n = r
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Pass)
            .count();
        return format!(
            "Verified: all {n} checks passed. The enclaves rebuilt from this image's manifests and runtime are the ones its SIGSTRUCTs sign."
        );
    }
    let failed: Vec<&str> = r.failures().map(|c| c.id.as_str()).collect();
    let mut why = Vec::new();
    if failed.contains(&"expected-mrenclave") {
        why.push("the image's MRENCLAVE is not the one you expected (a different app, request, runtime or kiln version)");
    }
    if failed.contains(&"expected-mrsigner") {
        why.push("the image is signed by another key than the one you expected");
    }
    if failed.iter().any(|id| {
        matches!(
            *id,
            "mrenclave" | "signature" | "q1q2" | "sigstruct-body" | "sigstruct" | "env-signature"
        )
    }) {
        why.push("a SIGSTRUCT does not match the enclave rebuilt from the image (the image or its .sig was altered)");
    }
    if why.is_empty() {
        why.push("a claim of the image does not hold; see the failed checks below");
    }
    format!(
        "Mismatch: {} check{} failed ({}): {}.",
        failed.len(),
        if failed.len() == 1 { "" } else { "s" },
        failed.join(", "),
        why.join("; ")
    )
}

fn status_text(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Pass => "pass",
        CheckStatus::Fail => "fail",
        CheckStatus::Info => "info",
    }
}

/// Both SIGSTRUCTs as the image carries them, every field (collapsed, one per enclave).
fn sigstructs_view(i: InspectReport) -> impl IntoView {
    let sections = i
        .enclaves
        .into_iter()
        .map(|e| {
            let title = format!(
                "SIGSTRUCT of the {} enclave{}",
                enclave_title(&e.name),
                e.sig_path
                    .as_deref()
                    .or(e.env_var.as_deref())
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            );
            let body = match (e.sigstruct, e.sigstruct_error) {
                (Some(v), _) => sigstruct_view(v).into_any(),
                (None, err) => view! {
                    <p class="verdict bad">{err.unwrap_or_else(|| "no SIGSTRUCT".into())}</p>
                }
                .into_any(),
            };
            view! {
                <details class="sigstruct" data-enclave=e.name.clone()>
                    <summary>{title}</summary>
                    {body}
                </details>
            }
        })
        .collect_view();
    view! {
        <h3>"SIGSTRUCTs"</h3>
        <div data-testid="v-sigstructs">{sections}</div>
    }
}

/// Every check of a report (an image's or a running enclave's) as a table;
/// `subject_title` heads the column of each check's subject.
pub(super) fn checks_table(checks: &[Check], subject_title: &'static str) -> impl IntoView {
    let rows = checks
        .iter()
        .map(|c| {
            let status = status_text(c.status);
            view! {
                <tr data-check=c.id.clone() data-subject=c.subject.clone() data-status=status class=format!("check {status}")>
                    <td><span class=format!("badge st-{status}")>{status}</span></td>
                    <td><code>{c.id.clone()}</code></td>
                    <td>{c.subject.clone()}</td>
                    <td class="expl">{c.explanation.clone()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-wrap">
            <table class="checks" data-testid="checks">
                <thead><tr><th>"result"</th><th>"check"</th><th>{subject_title}</th><th>"what was compared"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

fn report_view(r: VerifyReport) -> impl IntoView {
    let ok = r.passed;
    let verdict = verdict_text(&r);
    let measurements = r
        .mrenclaves
        .iter()
        .map(|(name, hex)| {
            let h = hex.clone();
            view! {
                <div class="kv" data-field=format!("mrenclave-{name}")>
                    <dt>{enclave_title(name)}</dt>
                    <dd><code class="mono" data-testid=format!("v-mrenclave-{name}")>{hex.clone()}</code></dd>
                    <CopyButton text=Signal::derive(move || h.clone()) label=format!("Copy {}", enclave_title(name)) />
                </div>
            }
        })
        .collect_view();
    let mrsigner = r.mrsigner.clone().unwrap_or_else(|| "—".into());
    let ms = mrsigner.clone();
    let checks = checks_table(&r.checks, "enclave");
    view! {
        <div data-testid="image-report" data-passed=if ok { "true" } else { "false" }>
            <p class=if ok { "verdict ok" } else { "verdict bad" } data-testid="image-verdict" role="status">{verdict}</p>
            <dl class="kvs">
                <div class="kv" data-field="format"><dt>"Image"</dt><dd>{kind_name(r.format)}</dd></div>
                <div class="kv" data-field="manifest-digest"><dt>"Manifest digest"</dt><dd><code class="mono">{r.manifest_digest.clone()}</code></dd></div>
                {measurements}
                <div class="kv" data-field="mrsigner">
                    <dt>"MRSIGNER"</dt>
                    <dd><code class="mono" data-testid="v-mrsigner">{mrsigner}</code></dd>
                    <CopyButton text=Signal::derive(move || ms.clone()) label="Copy MRSIGNER" />
                </div>
            </dl>
            <h3>"Every check"</h3>
            {checks}
        </div>
    }
}

fn opt(s: String) -> Option<String> {
    let t = s.trim().to_string();
    (!t.is_empty()).then_some(t)
}

/// The "verify an image in a registry" card.
#[component]
pub fn VerifyImageCard() -> impl IntoView {
    // Pre-filled from the link a conversion's result gives (`links::verify_href`).
    let hash = web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default();
    let param = |name: &str| crate::links::hash_param(&hash, name).unwrap_or_default();
    let image = RwSignal::new(param("image"));
    let user = RwSignal::new(String::new());
    let pass = RwSignal::new(String::new());
    let exp_mrenclave = RwSignal::new(param("mrenclave"));
    let exp_mrsigner = RwSignal::new(param("mrsigner"));
    let running = RwSignal::new(false);
    let report: RwSignal<Option<VerifyReport>> = RwSignal::new(None);
    let inspected: RwSignal<Option<Box<InspectReport>>> = RwSignal::new(None);
    let error: RwSignal<Option<(String, String)>> = RwSignal::new(None);
    let model = RwSignal::new(ProgressModel::default());
    let job: StoredValue<Option<JobHandle>, LocalStorage> = StoredValue::new_local(None);

    let start = move |_| {
        let Some(img) = opt(image.get_untracked()) else {
            error.set(Some(("BadRequest".into(), "image: required".into())));
            return;
        };
        let auth = opt(user.get_untracked()).map(|username| AuthConfig {
            username,
            password: opt(pass.get_untracked()),
        });
        report.set(None);
        inspected.set(None);
        error.set(None);
        model.set(ProgressModel::default());
        running.set(true);
        let on_event = move |ev: JobEvent| match ev {
            JobEvent::Progress(p) => model.update(|m| m.apply(&p)),
            JobEvent::Verified(r, i) => {
                job.set_value(None);
                running.set(false);
                report.set(Some(r));
                inspected.set(i);
            }
            JobEvent::Converted(_) => {}
            JobEvent::Failed { error_type, reason } => {
                job.set_value(None);
                running.set(false);
                error.set(Some((error_type, reason)));
            }
        };
        match bridge::start_verify(
            img,
            auth,
            opt(exp_mrenclave.get_untracked()),
            opt(exp_mrsigner.get_untracked()),
            on_event,
        ) {
            Ok(h) => {
                if running.get_untracked() {
                    job.set_value(Some(h));
                }
            }
            Err(e) => {
                running.set(false);
                error.set(Some(("Internal".into(), e)));
            }
        }
    };
    let cancel = move |_| {
        job.update_value(|j| {
            if let Some(h) = j.take() {
                h.cancel();
            }
        });
        running.set(false);
        error.set(Some((
            "Cancelled".into(),
            "stopped before the checks finished".into(),
        )));
    };

    let field = |id: &'static str,
                 label: &'static str,
                 kind: &'static str,
                 placeholder: &'static str,
                 value: RwSignal<String>| {
        view! {
            <div class="field">
                <label for=id>{label}</label>
                <input id=id type=kind placeholder=placeholder spellcheck="false" autocomplete="off"
                    prop:value=move || value.get() on:input=move |ev| value.set(event_target_value(&ev)) />
            </div>
        }
    };

    view! {
        <section class="card" aria-labelledby="v-img">
            <h2 id="v-img">"Verify an image in a registry"</h2>
            <p class="help">"Fetches the converted image through this site's registry proxy, rebuilds both enclaves from its manifests and runtime in this browser, and checks every SIGSTRUCT, label and measurement. Credentials stay in this page's memory."</p>
            {field("v-image", "Image reference", "text", "registry.example/app-sgx:latest", image)}
            <div class="grid2">
                {field("v-user", "Username (optional)", "text", "(anonymous)", user)}
                {field("v-pass", "Password or token (optional)", "password", "", pass)}
                {field("v-exp-mrenclave", "Expected MRENCLAVE or mrenclave2 (optional)", "text", "64 hex digits", exp_mrenclave)}
                {field("v-exp-mrsigner", "Expected MRSIGNER (optional)", "text", "64 hex digits", exp_mrsigner)}
            </div>
            <div class="buttons">
                <button type="button" class="primary" data-testid="verify-image" disabled=move || running.get() on:click=start>
                    "Verify image"
                </button>
                <button type="button" data-testid="verify-cancel" disabled=move || !running.get() on:click=cancel>
                    "Cancel"
                </button>
            </div>
            <Show when=move || running.get()>
                <p class="verdict" role="status">"Verifying…"</p>
                <ProgressPanel model running />
            </Show>
            {move || error.get().map(|(t, r)| view! {
                <p class="verdict bad" data-testid="verify-error" role="alert"><code>{t}</code> ": " {r}</p>
            })}
            {move || report.get().map(report_view)}
            {move || inspected.get().map(|i| sigstructs_view(*i))}
        </section>
    }
}
