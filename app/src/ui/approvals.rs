//! The Approvals page (`#/approvals`): the operator's view of the MANAGER_CA approval
//! records of a kiln worker (docs/attestation.md). The operator gives the edge URL (the
//! worker that serves this app, by default) and an API token with the `admin` scope; the
//! page lists the records (filter by status), approves and revokes them (revocation asks
//! for confirmation: it is final), and registers an image converted elsewhere.
//!
//! The token lives in this page's memory only (a signal, dropped when the page is left or
//! "Forget token" is pressed): never in storage, the URL, a log or an error text. The HTTP
//! calls are [`crate::approvals::client`].

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::widgets::{dropped_files, file_bytes, input_files, CopyButton};
use crate::approvals::{
    abbreviate, client, edge_origin, status_name, utc_time, Action, ApprovalRecord, ApprovalStatus,
    RegisterForm, StatusFilter, MAX_REPORT_BYTES,
};

/// A record time cell: UTC to the minute, the Unix seconds in `data-secs`.
fn time_cell(testid: &'static str, secs: u64) -> impl IntoView {
    view! { <span data-testid=testid data-secs=secs.to_string()>{utc_time(secs)}</span> }
}

/// A measurement cell: abbreviated, the full value on hover (title) and by its copy button.
fn hex_cell(what: &'static str, value: Option<String>) -> impl IntoView {
    match value {
        None => view! { <span class="muted">"none"</span> }.into_any(),
        Some(v) => {
            let full = v.clone();
            view! {
                <code class="mono" title=v.clone() data-full=v.clone()>{abbreviate(&v)}</code>
                " "
                <CopyButton text=Signal::derive(move || full.clone()) label=format!("Copy {what}") />
            }
            .into_any()
        }
    }
}

/// The page.
#[component]
pub fn ApprovalsPage() -> impl IntoView {
    let origin = RwSignal::new(crate::browser::spawn::api_origin().unwrap_or_default());
    // Memory only; see the module doc.
    let token = RwSignal::new(String::new());
    let records: RwSignal<Option<Vec<ApprovalRecord>>> = RwSignal::new(None);
    let filter = RwSignal::new(StatusFilter::All);
    let busy = RwSignal::new(false);
    let status = RwSignal::new(String::new());
    let error = RwSignal::new(String::new());
    // The record whose revocation waits for confirmation.
    let confirming: RwSignal<Option<String>> = RwSignal::new(None);

    // The edge's origin and the token, or the error naming the field.
    let target = move || -> Result<(String, String), String> {
        let o = edge_origin(&origin.get_untracked())?;
        let t = token.get_untracked();
        crate::approvals::check_token(&t)?;
        Ok((o, t))
    };

    let load = move || {
        error.set(String::new());
        let (o, t) = match target() {
            Ok(x) => x,
            Err(e) => return error.set(e),
        };
        busy.set(true);
        spawn_local(async move {
            match client::list(&o, &t).await {
                Ok(list) => {
                    status.set(format!(
                        "{} record{} on {o}.",
                        list.len(),
                        if list.len() == 1 { "" } else { "s" }
                    ));
                    records.set(Some(list));
                }
                Err(e) => {
                    records.set(None);
                    status.set(String::new());
                    error.set(e);
                }
            }
            busy.set(false);
        });
    };

    let act = move |id: String, action: Action| {
        error.set(String::new());
        confirming.set(None);
        let (o, t) = match target() {
            Ok(x) => x,
            Err(e) => return error.set(e),
        };
        busy.set(true);
        spawn_local(async move {
            match client::act(&o, &t, &id, action).await {
                Ok(r) => {
                    status.set(format!("Record {} is now {}.", r.id, status_name(r.status)));
                    records.update(|rs| {
                        if let Some(x) = rs.iter_mut().flatten().find(|x| x.id == r.id) {
                            *x = r;
                        }
                    });
                }
                Err(e) => error.set(e),
            }
            busy.set(false);
        });
    };

    let row = move |r: ApprovalRecord| {
        let id = r.id.clone();
        let st = status_name(r.status);
        let subjects = if r.allowed_subjects.is_empty() {
            "none".to_string()
        } else {
            r.allowed_subjects.join(", ")
        };
        let image = if r.image.is_empty() {
            "not given".to_string()
        } else {
            r.image.clone()
        };
        let (approve_id, revoke_id) = (id.clone(), id.clone());
        let approve = (r.status == ApprovalStatus::Pending).then(|| {
            let label = format!("Approve record {id}");
            view! {
                <button type="button" class="primary" data-testid="ap-approve" aria-label=label
                    disabled=move || busy.get()
                    on:click=move |_| act(approve_id.clone(), Action::Approve)>"Approve"</button>
            }
        });
        let revoke = (r.status != ApprovalStatus::Revoked).then(|| {
            let label = format!("Revoke record {id}");
            view! {
                <button type="button" class="danger" data-testid="ap-revoke" aria-label=label
                    disabled=move || busy.get()
                    on:click=move |_| confirming.set(Some(revoke_id.clone()))>"Revoke…"</button>
            }
        });
        view! {
            <tr data-id=id.clone() data-status=st>
                <td><code class="mono" title=id.clone()>{abbreviate(&id)}</code></td>
                <td><span class=format!("badge {st}") data-testid="ap-status-cell">{st}</span></td>
                <td>{hex_cell("MRENCLAVE", Some(r.mrenclave.clone()))}</td>
                <td>{hex_cell("mrenclave2", r.mrenclave2.clone())}</td>
                <td>{hex_cell("MRSIGNER", Some(r.mrsigner.clone()))}</td>
                <td>{format!("{} / {}", r.isv_prod_id, r.isv_svn)}</td>
                <td class="wrap">{image}</td>
                <td class="wrap">{subjects}</td>
                <td class="time">{time_cell("ap-created", r.created_at)}</td>
                <td class="time">{time_cell("ap-updated", r.updated_at)}</td>
                <td class="actions">{approve}" "{revoke}</td>
            </tr>
        }
    };

    let confirm_panel = move || {
        let id = confirming.get()?;
        let go = id.clone();
        Some(view! {
            <div class="confirm" role="alertdialog" aria-labelledby="ap-confirm-title" aria-describedby="ap-confirm-text" data-testid="ap-confirm">
                <p id="ap-confirm-title"><strong>{format!("Revoke record {id}?")}</strong></p>
                <p id="ap-confirm-text">
                    "Revocation is final: the record can never be approved again, and MANAGER_CA "
                    "issues no more certificates to these enclaves (registering them again does not undo it)."
                </p>
                <button type="button" class="danger" data-testid="ap-revoke-confirm"
                    on:click=move |_| act(go.clone(), Action::Revoke)>"Revoke for good"</button>
                " "
                <button type="button" data-testid="ap-revoke-cancel" on:click=move |_| confirming.set(None)>"Cancel"</button>
            </div>
        })
    };

    let table = move || {
        let all = records.get()?;
        let f = filter.get();
        let shown: Vec<ApprovalRecord> = all.into_iter().filter(|r| f.keeps(r)).collect();
        Some(if shown.is_empty() {
            view! { <p class="muted" data-testid="ap-empty">"No records to show."</p> }.into_any()
        } else {
            view! {
                <div class="table-wrap">
                    <table class="approvals" data-testid="ap-table">
                        <caption>"Approval records, oldest first"</caption>
                        <thead><tr>
                            <th scope="col">"Id"</th>
                            <th scope="col">"Status"</th>
                            <th scope="col">"MRENCLAVE"</th>
                            <th scope="col">"mrenclave2 (EDMM)"</th>
                            <th scope="col">"MRSIGNER"</th>
                            <th scope="col">"ISVPRODID / ISVSVN"</th>
                            <th scope="col">"Image"</th>
                            <th scope="col">"Allowed subjects"</th>
                            <th scope="col">"Recorded (UTC)"</th>
                            <th scope="col">"Last change (UTC)"</th>
                            <th scope="col">"Actions"</th>
                        </tr></thead>
                        <tbody>{shown.into_iter().map(row).collect_view()}</tbody>
                    </table>
                </div>
            }
            .into_any()
        })
    };

    view! {
        <h1>"Approvals"</h1>
        <p class="lead">
            "Enclave builds that may receive MANAGER_CA certificates. Each conversion the kiln worker signs "
            "is recorded as pending; approve it to let its enclaves get certificates, revoke it to stop them "
            "for good. Each record shows when it was recorded and when it last changed (UTC)."
        </p>
        <form class="card" aria-labelledby="ap-conn" on:submit=move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            load();
        }>
            <h2 id="ap-conn">"Operator access"</h2>
            <div class="grid2">
                <div class="field">
                    <label for="ap-origin">"Edge URL"</label>
                    <input id="ap-origin" type="url" spellcheck="false" autocomplete="off"
                        placeholder="https://kiln.example.workers.dev"
                        prop:value=move || origin.get() on:input=move |ev| origin.set(event_target_value(&ev)) />
                </div>
                <div class="field">
                    <label for="ap-token">"API token (admin scope)"</label>
                    <input id="ap-token" type="password" spellcheck="false" autocomplete="off"
                        aria-describedby="ap-token-help"
                        prop:value=move || token.get() on:input=move |ev| token.set(event_target_value(&ev)) />
                    <p class="help" id="ap-token-help">"Kept in this page's memory only: never stored, never in the URL."</p>
                </div>
            </div>
            <button type="submit" class="primary" data-testid="ap-load" disabled=move || busy.get()>"Load records"</button>
            " "
            <button type="button" data-testid="ap-forget" on:click=move |_| {
                token.set(String::new());
                records.set(None);
                status.set("Token forgotten.".into());
            }>"Forget token"</button>
        </form>
        <p class="verdict bad" role="alert" data-testid="ap-error" hidden=move || error.get().is_empty()>{move || error.get()}</p>
        <p role="status" data-testid="ap-status">{move || status.get()}</p>
        <section class="card" aria-labelledby="ap-records">
            <h2 id="ap-records">"Records"</h2>
            <div class="field">
                <label for="ap-filter">"Show"</label>
                <select id="ap-filter" data-testid="ap-filter"
                    on:change=move |ev| filter.set(StatusFilter::from_value(&event_target_value(&ev)))>
                    <option value="all">"all records"</option>
                    <option value="pending">"pending"</option>
                    <option value="approved">"approved"</option>
                    <option value="revoked">"revoked"</option>
                </select>
            </div>
            {confirm_panel}
            {move || records.with(|r| r.is_none()).then(|| view! {
                <p class="muted">"Give the edge URL and an admin token, then load the records."</p>
            })}
            {table}
        </section>
        <RegisterCard origin=origin token=token records=records status=status error=error busy=busy />
    }
}

/// The "register an image converted elsewhere" form (`POST /approvals`).
#[component]
fn RegisterCard(
    origin: RwSignal<String>,
    token: RwSignal<String>,
    records: RwSignal<Option<Vec<ApprovalRecord>>>,
    status: RwSignal<String>,
    error: RwSignal<String>,
    busy: RwSignal<bool>,
) -> impl IntoView {
    let form = RwSignal::new(RegisterForm::default());
    let field = move |id: &'static str,
                      label: &'static str,
                      hint: &'static str,
                      get: fn(&RegisterForm) -> &String,
                      set: fn(&mut RegisterForm, String)| {
        view! {
            <div class="field">
                <label for=id>{label}</label>
                <input id=id type="text" spellcheck="false" autocomplete="off" class="mono" placeholder=hint
                    prop:value=move || form.with(|f| get(f).clone())
                    on:input=move |ev| { let v = event_target_value(&ev); form.update(|f| set(f, v)); } />
            </div>
        }
    };
    // A report file (picked or dropped) is read into the textarea.
    let take_file = move |files: Vec<web_sys::File>| {
        let Some(f) = files.into_iter().next() else {
            return;
        };
        error.set(String::new());
        if f.size() > MAX_REPORT_BYTES as f64 {
            return error.set(format!(
                "verifyReport: {} is {} bytes, more than the {MAX_REPORT_BYTES} read",
                f.name(),
                f.size()
            ));
        }
        spawn_local(async move {
            match file_bytes(&f).await {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => form.update(|x| x.verify_report = text),
                    Err(_) => error.set(format!("verifyReport: {} is not UTF-8 text", f.name())),
                },
                Err(e) => error.set(format!("verifyReport: reading {}: {e}", f.name())),
            }
        });
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        error.set(String::new());
        let body = match form.get_untracked().to_body() {
            Ok(b) => b,
            Err(e) => return error.set(e),
        };
        let o = match edge_origin(&origin.get_untracked()) {
            Ok(o) => o,
            Err(e) => return error.set(e),
        };
        let t = token.get_untracked();
        if let Err(e) = crate::approvals::check_token(&t) {
            return error.set(e);
        }
        busy.set(true);
        spawn_local(async move {
            match client::register(&o, &t, &body).await {
                Ok(r) => {
                    status.set(format!(
                        "Registered as record {} ({}).",
                        r.id,
                        status_name(r.status)
                    ));
                    form.set(RegisterForm::default());
                    match client::list(&o, &t).await {
                        Ok(list) => records.set(Some(list)),
                        Err(e) => error.set(e),
                    }
                }
                Err(e) => error.set(e),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="card" aria-labelledby="ap-reg" on:submit=submit data-testid="ap-register-form">
            <h2 id="ap-reg">"Register an image converted elsewhere"</h2>
            <p class="help">
                "For an image this worker did not sign: paste or drop its "<code>"kiln verify --json"</code>
                " report (the enclaves are then the report's, and it must have passed), or type the values from "
                <code>"kiln inspect"</code>". It is recorded as pending; registering the same enclaves again adds the subjects."
            </p>
            <div class="field">
                <label for="ap-r-report">"Verify report (kiln verify --json, optional)"</label>
                <textarea id="ap-r-report" class="mono" rows="5" spellcheck="false" data-testid="ap-r-report"
                    aria-describedby="ap-r-report-help"
                    placeholder="{\"format\": \"kiln\", \"passed\": true, \"mrenclaves\": [...], ...}"
                    prop:value=move || form.with(|f| f.verify_report.clone())
                    on:input=move |ev| { let v = event_target_value(&ev); form.update(|f| f.verify_report = v); }
                    on:dragover=move |ev: leptos::ev::DragEvent| ev.prevent_default()
                    on:drop=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); take_file(dropped_files(&ev)); }
                ></textarea>
                <p class="help" id="ap-r-report-help">
                    "Paste it, or drop the report file here. When a report is given, the MRENCLAVE, MRSIGNER "
                    "and ISV fields below are not sent; the image and subjects are."
                </p>
            </div>
            <div class="field">
                <label for="ap-r-report-file">"…or choose the report file"</label>
                <input id="ap-r-report-file" type="file" accept=".json,application/json" data-testid="ap-r-report-file"
                    on:change=move |ev| take_file(input_files(&ev)) />
            </div>
            <div class="grid2">
                {field("ap-r-mrenclave", "MRENCLAVE", "64 hex digits", |f| &f.mrenclave, |f, v| f.mrenclave = v)}
                {field("ap-r-mrenclave2", "mrenclave2 (EDMM, optional)", "64 hex digits", |f| &f.mrenclave2, |f, v| f.mrenclave2 = v)}
                {field("ap-r-mrsigner", "MRSIGNER", "64 hex digits", |f| &f.mrsigner, |f, v| f.mrsigner = v)}
                {field("ap-r-image", "Image (optional)", "registry.example/app-sgx:1", |f| &f.image, |f, v| f.image = v)}
                {field("ap-r-isvprodid", "ISVPRODID", "0", |f| &f.isv_prod_id, |f, v| f.isv_prod_id = v)}
                {field("ap-r-isvsvn", "ISVSVN", "0", |f| &f.isv_svn, |f, v| f.isv_svn = v)}
            </div>
            {field("ap-r-subjects", "Allowed subjects (DNS names, comma-separated)", "app.example.com", |f| &f.allowed_subjects, |f, v| f.allowed_subjects = v)}
            <button type="submit" class="primary" data-testid="ap-register" disabled=move || busy.get()>"Register as pending"</button>
        </form>
    }
}
