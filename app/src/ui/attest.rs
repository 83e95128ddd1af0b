//! The "running enclave" card of the Verify page: a quote or an RA-TLS certificate and
//! its collateral, verified in this tab by the engine's `attest` (dcap-qvl, Intel's root),
//! as `kiln attest verify` does: identity, TCB status and advisories, every check.
//!
//! A page cannot read the certificate a TLS server presents (neither `fetch` nor the
//! worker's sockets expose it), so the user brings the file (docs/attestation.md).

use kiln_engine::attest::{parse_time, AttestPolicy, AttestReport, TCB_STATUSES};
use leptos::prelude::*;

use super::verify::{FilePick, Picked};
use super::verify_image::checks_table;
use super::widgets::CopyButton;
use crate::engine_bridge::attest;

fn opt(s: String) -> Option<String> {
    let t = s.trim().to_string();
    (!t.is_empty()).then_some(t)
}

/// The verdict line of a report.
fn verdict_text(r: &AttestReport) -> String {
    if r.passed {
        return format!(
            "Verified: all {} checks passed. SGX hardware with an acceptable TCB signed this quote, and the enclave is the one named below.",
            r.checks.len()
        );
    }
    let failed: Vec<&str> = r.failures().map(|c| c.id.as_str()).collect();
    format!(
        "Not verified: {} check{} failed ({}). Do not trust this enclave; see the failed checks below.",
        failed.len(),
        if failed.len() == 1 { "" } else { "s" },
        failed.join(", ")
    )
}

fn kv(field: &'static str, title: &'static str, value: String) -> impl IntoView {
    view! {
        <div class="kv" data-field=field>
            <dt>{title}</dt>
            <dd><code class="mono" data-testid=format!("a-{field}")>{value}</code></dd>
        </div>
    }
}

fn report_view(r: AttestReport) -> impl IntoView {
    let ok = r.passed;
    let verdict = verdict_text(&r);
    let identity = r.enclave.clone().map(|e| {
        let (mre, mrs) = (e.mrenclave.clone(), e.mrsigner.clone());
        view! {
            <div class="kv" data-field="mrenclave">
                <dt>"MRENCLAVE"</dt>
                <dd><code class="mono" data-testid="a-mrenclave">{e.mrenclave.clone()}</code></dd>
                <CopyButton text=Signal::derive(move || mre.clone()) label="Copy MRENCLAVE" />
            </div>
            <div class="kv" data-field="mrsigner">
                <dt>"MRSIGNER"</dt>
                <dd><code class="mono" data-testid="a-mrsigner">{e.mrsigner.clone()}</code></dd>
                <CopyButton text=Signal::derive(move || mrs.clone()) label="Copy MRSIGNER" />
            </div>
            {kv("isv", "ISVPRODID / ISVSVN", format!("{} / {}", e.isv_prod_id, e.isv_svn))}
            {kv("attributes", "ATTRIBUTES", format!("{}{}", e.attributes, if e.debug { " (DEBUG: the host can read its memory)" } else { "" }))}
            {kv("miscselect", "MISCSELECT", format!("{:#010x}", e.misc_select))}
            {kv("report-data", "REPORTDATA", e.report_data.clone())}
        }
    });
    let advisories = if r.advisory_ids.is_empty() {
        "none".to_string()
    } else {
        r.advisory_ids.join(", ")
    };
    view! {
        <div data-testid="attest-report" data-passed=if ok { "true" } else { "false" }>
            <p class=if ok { "verdict ok" } else { "verdict bad" } data-testid="attest-verdict" role="status">{verdict}</p>
            <dl class="kvs">
                {kv("evidence", "Evidence", format!("{} (quote version {})", r.evidence, r.quote_version))}
                {r.certificate_subject.clone().map(|s| kv("subject", "Certificate subject", s))}
                {identity}
                {kv("tcb-status", "TCB status", r.tcb_status.clone().unwrap_or_else(|| "not known (the quote did not verify)".into()))}
                {kv("advisories", "Intel advisories", advisories)}
                {kv("verified-at", "Verified at", r.verified_at.clone())}
            </dl>
            <h3>"Every check"</h3>
            {checks_table(&r.checks, "part")}
        </div>
    }
}

/// The card: evidence and collateral files, policy, the report.
#[component]
pub fn AttestCard() -> impl IntoView {
    let evidence: RwSignal<Option<Picked>> = RwSignal::new(None);
    let collateral: RwSignal<Option<Picked>> = RwSignal::new(None);
    let at = RwSignal::new(String::new());
    let exp_mrenclave = RwSignal::new(String::new());
    let exp_mrsigner = RwSignal::new(String::new());
    let allow_debug = RwSignal::new(false);
    // UpToDate is always accepted; the others only when ticked.
    let extra: Vec<(&'static str, RwSignal<bool>)> = TCB_STATUSES
        .iter()
        .filter(|s| **s != "UpToDate")
        .map(|s| (*s, RwSignal::new(false)))
        .collect();
    let result: RwSignal<Option<Result<AttestReport, String>>> = RwSignal::new(None);

    let checks = extra.clone();
    let run = move |_| {
        let (Some(ev), Some(col)) = (evidence.get_untracked(), collateral.get_untracked()) else {
            result.set(Some(Err(
                "Choose the enclave's certificate or quote, and its collateral (JSON).".into(),
            )));
            return;
        };
        let when = match opt(at.get_untracked()) {
            None => (js_sys::Date::now() / 1000.0) as u64,
            Some(t) => match parse_time(&t) {
                Ok(v) => v,
                Err(e) => {
                    result.set(Some(Err(format!("Verify at: {e}"))));
                    return;
                }
            },
        };
        let mut allowed = vec!["UpToDate".to_string()];
        allowed.extend(
            checks
                .iter()
                .filter(|(_, on)| on.get_untracked())
                .map(|(s, _)| s.to_string()),
        );
        let policy = AttestPolicy {
            allowed_tcb_statuses: allowed,
            allow_debug: allow_debug.get_untracked(),
            expect_mrenclave: opt(exp_mrenclave.get_untracked()),
            expect_mrsigner: opt(exp_mrsigner.get_untracked()),
        };
        result.set(Some(attest(&ev.bytes, &col.bytes, when, &policy)));
    };

    let boxes = extra
        .into_iter()
        .map(|(name, on)| {
            let id = format!("a-tcb-{name}");
            let for_id = id.clone();
            view! {
                <label class="check" for=for_id>
                    <input id=id type="checkbox" prop:checked=move || on.get()
                        on:change=move |ev| on.set(event_target_checked(&ev)) />
                    {name}
                </label>
            }
        })
        .collect_view();

    view! {
        <section class="card" aria-labelledby="v-attest">
            <h2 id="v-attest">"A running enclave (quote or RA-TLS certificate)"</h2>
            <p class="help">
                "Check the enclave that actually answers you. Save the certificate it serves ("
                <code>"openssl s_client -connect HOST:PORT </dev/null | openssl x509 > enclave.pem"</code>
                ") or its SGX quote, and the collateral from your PCCS ("
                <code>"kiln attest verify --pccs URL"</code>
                " fetches it; see docs/attestation.md). Verified here, with Intel's root; nothing is uploaded."
            </p>
            <div class="grid2">
                <FilePick id="a-evidence" label="Certificate (PEM, DER) or quote" accept=".pem,.crt,.cer,.der,.bin,.quote,application/octet-stream" picked=evidence />
                <FilePick id="a-collateral" label="Collateral (JSON)" accept=".json,application/json" picked=collateral />
            </div>
            <div class="grid2">
                <div class="field">
                    <label for="a-expect-mrenclave">"Expected MRENCLAVE (optional)"</label>
                    <input id="a-expect-mrenclave" type="text" spellcheck="false" autocomplete="off" class="mono"
                        placeholder="64 hex digits"
                        prop:value=move || exp_mrenclave.get() on:input=move |ev| exp_mrenclave.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="a-expect-mrsigner">"Expected MRSIGNER (optional)"</label>
                    <input id="a-expect-mrsigner" type="text" spellcheck="false" autocomplete="off" class="mono"
                        placeholder="64 hex digits"
                        prop:value=move || exp_mrsigner.get() on:input=move |ev| exp_mrsigner.set(event_target_value(&ev)) />
                </div>
            </div>
            <div class="field">
                <label for="a-at">"Verify at (optional)"</label>
                <input id="a-at" type="text" spellcheck="false" autocomplete="off"
                    placeholder="now; or 2025-07-01T00:00:00Z, or Unix seconds, for old evidence"
                    prop:value=move || at.get() on:input=move |ev| at.set(event_target_value(&ev)) />
            </div>
            <fieldset class="field">
                <legend>"TCB statuses accepted besides UpToDate"</legend>
                <p class="help">"A platform that needs updates or configuration may still be acceptable to you; Revoked never is."</p>
                {boxes}
                <label class="check" for="a-debug">
                    <input id="a-debug" type="checkbox" prop:checked=move || allow_debug.get()
                        on:change=move |ev| allow_debug.set(event_target_checked(&ev)) />
                    "Accept a debug enclave (its memory is readable by the host)"
                </label>
            </fieldset>
            <button type="button" class="primary" data-testid="attest-verify" on:click=run>"Verify enclave"</button>
            {move || match result.get() {
                None => None,
                Some(Err(e)) => Some(view! { <p class="verdict bad" role="alert" data-testid="attest-error">{e}</p> }.into_any()),
                Some(Ok(r)) => Some(report_view(r).into_any()),
            }}
        </section>
    }
}
