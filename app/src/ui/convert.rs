//! The Convert page: a form for every field of the convert-image request, validated
//! inline by the engine's own rules, with the request JSON and the equivalent curl, and
//! the conversion run in this browser ([`super::run`]).

use std::sync::atomic::{AtomicU64, Ordering};

use kiln_engine::api::ConvertResponse;
use kiln_engine::gramine::validate::FieldError;
use leptos::prelude::*;

use super::result::ResultPanel;
use super::run::RunCard;
use super::widgets::CopyButton;
use crate::browser::protocol::KilnConfig;
use crate::curl::{curl_command, request_json};
use crate::engine_bridge::validate_request;
use crate::form::{belongs_to, CertRow, Creds, FormState, SigningChoice};
use crate::sample::sample_response;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The sessionStorage key of the saved form.
const SAVED_FORM_KEY: &str = "kiln-convert-form";

#[wasm_bindgen::prelude::wasm_bindgen(module = "/src/js/kiln_web.js")]
extern "C" {
    fn session_get(key: &str) -> Option<String>;
    fn session_set(key: &str, value: &str) -> bool;
    fn focus_first_invalid_soon();
}

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// An editable list of strings; each row keeps its own signal so typing keeps focus.
type Rows = RwSignal<Vec<(u64, RwSignal<String>)>>;

fn rows_values(rows: Rows) -> Vec<String> {
    rows.get().iter().map(|(_, s)| s.get()).collect()
}

#[derive(Clone, Copy)]
struct CertSig {
    id: u64,
    issuer: RwSignal<String>,
    subject: RwSignal<String>,
    key_type: RwSignal<String>,
    key_size: RwSignal<String>,
    key_path: RwSignal<String>,
    cert_path: RwSignal<String>,
}

impl CertSig {
    fn new() -> Self {
        Self {
            id: next_id(),
            issuer: RwSignal::new(String::new()),
            subject: RwSignal::new(String::new()),
            key_type: RwSignal::new(String::new()),
            key_size: RwSignal::new(String::new()),
            key_path: RwSignal::new(String::new()),
            cert_path: RwSignal::new(String::new()),
        }
    }

    fn row(&self) -> CertRow {
        CertRow {
            issuer: self.issuer.get(),
            subject: self.subject.get(),
            key_type: self.key_type.get(),
            key_size: self.key_size.get(),
            key_path: self.key_path.get(),
            cert_path: self.cert_path.get(),
        }
    }
}

fn text() -> RwSignal<String> {
    RwSignal::new(String::new())
}

fn rows() -> Rows {
    RwSignal::new(Vec::new())
}

/// Every input of the form as a signal.
#[derive(Clone, Copy)]
struct Form {
    input_image: RwSignal<String>,
    output_image: RwSignal<String>,
    in_user: RwSignal<String>,
    in_pass: RwSignal<String>,
    out_user: RwSignal<String>,
    out_pass: RwSignal<String>,
    isvprodid: RwSignal<String>,
    isvsvn: RwSignal<String>,
    mem_size: RwSignal<String>,
    threads: RwSignal<String>,
    debug: RwSignal<bool>,
    allow_cmdline_args: RwSignal<bool>,
    entrypoint: Rows,
    entrypoint_args: Rows,
    encrypted_dirs: Rows,
    ro_dirs: Rows,
    rw_dirs: Rows,
    manifest_env: Rows,
    manifest_options: RwSignal<String>,
    certificates: RwSignal<Vec<CertSig>>,
    signing: RwSignal<SigningChoice>,
    sdkms_name: RwSignal<String>,
    sdkms_api_key: RwSignal<String>,
    external_packages: RwSignal<String>,
    core_dump_pattern: RwSignal<String>,
    log_file_path: RwSignal<String>,
    java_mode: RwSignal<String>,
}

impl Form {
    fn new() -> Self {
        Self {
            input_image: text(),
            output_image: text(),
            in_user: text(),
            in_pass: text(),
            out_user: text(),
            out_pass: text(),
            isvprodid: text(),
            isvsvn: text(),
            mem_size: text(),
            threads: text(),
            debug: RwSignal::new(false),
            allow_cmdline_args: RwSignal::new(false),
            entrypoint: rows(),
            entrypoint_args: rows(),
            encrypted_dirs: rows(),
            ro_dirs: rows(),
            rw_dirs: rows(),
            manifest_env: rows(),
            manifest_options: text(),
            certificates: RwSignal::new(Vec::new()),
            signing: RwSignal::new(SigningChoice::ServiceDefault),
            sdkms_name: text(),
            sdkms_api_key: text(),
            external_packages: text(),
            core_dump_pattern: text(),
            log_file_path: text(),
            java_mode: text(),
        }
    }

    /// Sets every input from a saved form (`FormState::from_saved`).
    fn load(&self, f: FormState) {
        let set_rows = |rows: Rows, v: Vec<String>| {
            rows.set(
                v.into_iter()
                    .map(|x| (next_id(), RwSignal::new(x)))
                    .collect(),
            )
        };
        self.input_image.set(f.input_image_name);
        self.output_image.set(f.output_image_name);
        self.in_user.set(f.input_auth.username);
        self.out_user.set(f.output_auth.username);
        self.isvprodid.set(f.isvprodid);
        self.isvsvn.set(f.isvsvn);
        self.mem_size.set(f.mem_size);
        self.threads.set(f.threads);
        self.debug.set(f.debug);
        self.allow_cmdline_args.set(f.allow_cmdline_args);
        set_rows(self.entrypoint, f.entrypoint);
        set_rows(self.entrypoint_args, f.entrypoint_args);
        set_rows(self.encrypted_dirs, f.encrypted_dirs);
        set_rows(self.ro_dirs, f.ro_dirs);
        set_rows(self.rw_dirs, f.rw_dirs);
        set_rows(self.manifest_env, f.manifest_env);
        self.manifest_options.set(f.manifest_options);
        self.certificates.set(
            f.certificates
                .into_iter()
                .map(|c| {
                    let s = CertSig::new();
                    s.issuer.set(c.issuer);
                    s.subject.set(c.subject);
                    s.key_type.set(c.key_type);
                    s.key_size.set(c.key_size);
                    s.key_path.set(c.key_path);
                    s.cert_path.set(c.cert_path);
                    s
                })
                .collect(),
        );
        self.signing.set(f.signing);
        self.sdkms_name.set(f.sdkms_name);
        self.external_packages.set(f.external_packages);
        self.core_dump_pattern.set(f.core_dump_pattern);
        self.log_file_path.set(f.log_file_path);
        self.java_mode.set(f.java_mode);
    }

    fn state(&self) -> FormState {
        FormState {
            input_image_name: self.input_image.get(),
            output_image_name: self.output_image.get(),
            input_auth: Creds {
                username: self.in_user.get(),
                password: self.in_pass.get(),
            },
            output_auth: Creds {
                username: self.out_user.get(),
                password: self.out_pass.get(),
            },
            isvprodid: self.isvprodid.get(),
            isvsvn: self.isvsvn.get(),
            mem_size: self.mem_size.get(),
            threads: self.threads.get(),
            debug: self.debug.get(),
            allow_cmdline_args: self.allow_cmdline_args.get(),
            entrypoint: rows_values(self.entrypoint),
            entrypoint_args: rows_values(self.entrypoint_args),
            encrypted_dirs: rows_values(self.encrypted_dirs),
            ro_dirs: rows_values(self.ro_dirs),
            rw_dirs: rows_values(self.rw_dirs),
            manifest_env: rows_values(self.manifest_env),
            manifest_options: self.manifest_options.get(),
            certificates: self.certificates.get().iter().map(CertSig::row).collect(),
            signing: self.signing.get(),
            sdkms_name: self.sdkms_name.get(),
            sdkms_api_key: self.sdkms_api_key.get(),
            external_packages: self.external_packages.get(),
            core_dump_pattern: self.core_dump_pattern.get(),
            log_file_path: self.log_file_path.get(),
            java_mode: self.java_mode.get(),
        }
    }
}

/// Which errors are shown: those of fields the user has left, or all after "Check".
#[derive(Clone, Copy)]
struct Errs {
    all: Memo<Vec<FieldError>>,
    touched: RwSignal<Vec<&'static str>>,
    show_all: RwSignal<bool>,
}

impl Errs {
    fn touch(&self, field: &'static str) {
        if !self.touched.get_untracked().contains(&field) {
            self.touched.update(|t| t.push(field));
        }
    }

    fn messages(&self, field: &'static str) -> Vec<String> {
        if !self.show_all.get() && !self.touched.get().contains(&field) {
            return Vec::new();
        }
        self.all
            .get()
            .iter()
            .filter(|e| belongs_to(&e.field, field))
            .map(|e| e.to_string())
            .collect()
    }
}

#[component]
fn FieldErrors(id: String, msgs: Memo<Vec<String>>) -> impl IntoView {
    view! {
        <div class="errors" id=id aria-live="polite">
            {move || {
                msgs.get()
                    .into_iter()
                    .map(|m| view! { <p class="error" role="alert">{m}</p> })
                    .collect_view()
            }}
        </div>
    }
}

#[component]
fn TextField(
    label: &'static str,
    field: &'static str,
    value: RwSignal<String>,
    #[prop(default = "")] placeholder: &'static str,
    #[prop(default = "")] help: &'static str,
    #[prop(default = "text")] kind: &'static str,
    #[prop(default = "text")] inputmode: &'static str,
) -> impl IntoView {
    let errs = expect_context::<Errs>();
    let msgs = Memo::new(move |_| errs.messages(field));
    let id = format!("f-{field}");
    let err_id = format!("e-{field}");
    let help_id = format!("h-{field}");
    view! {
        <div class="field" class:invalid=move || !msgs.get().is_empty()>
            <label for=id.clone()>{label} " " <code class="api">{field}</code></label>
            <input
                id=id
                name=field
                type=kind
                inputmode=inputmode
                placeholder=placeholder
                autocomplete="off"
                spellcheck="false"
                prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))
                on:change=move |_| errs.touch(field)
                aria-invalid=move || if msgs.get().is_empty() { "false" } else { "true" }
                aria-describedby=format!("{help_id} {err_id}")
            />
            <p class="help" id=help_id>{help}</p>
            <FieldErrors id=err_id msgs />
        </div>
    }
}

#[component]
fn CheckField(
    label: &'static str,
    field: &'static str,
    value: RwSignal<bool>,
    help: &'static str,
) -> impl IntoView {
    let id = format!("f-{field}");
    view! {
        <div class="field check">
            <input
                id=id.clone()
                name=field
                type="checkbox"
                prop:checked=move || value.get()
                on:change=move |ev| value.set(event_target_checked(&ev))
            />
            <label for=id>{label} " " <code class="api">{field}</code></label>
            <p class="help">{help}</p>
        </div>
    }
}

#[component]
fn ListField(
    label: &'static str,
    field: &'static str,
    rows: Rows,
    help: &'static str,
    placeholder: &'static str,
) -> impl IntoView {
    let errs = expect_context::<Errs>();
    let msgs = Memo::new(move |_| errs.messages(field));
    let err_id = format!("e-{field}");
    view! {
        <fieldset class="field list" class:invalid=move || !msgs.get().is_empty() data-field=field>
            <legend>{label} " " <code class="api">{field}</code></legend>
            <p class="help">{help}</p>
            <ul class="rows">
                <For each=move || rows.get() key=|(id, _)| *id let:row>
                    {
                        let (id, value) = row;
                        let pos = move || rows.get().iter().position(|(i, _)| *i == id).unwrap_or(0);
                        view! {
                            <li class="row">
                                <input
                                    type="text"
                                    spellcheck="false"
                                    autocomplete="off"
                                    placeholder=placeholder
                                    aria-label=move || format!("{field}[{}]", pos())
                                    prop:value=move || value.get()
                                    on:input=move |ev| value.set(event_target_value(&ev))
                                    on:change=move |_| errs.touch(field)
                                />
                                <button
                                    type="button"
                                    class="ghost"
                                    aria-label=move || format!("Remove {field}[{}]", pos())
                                    on:click=move |_| {
                                        errs.touch(field);
                                        rows.update(|r| r.retain(|(i, _)| *i != id));
                                    }
                                >
                                    "Remove"
                                </button>
                            </li>
                        }
                    }
                </For>
            </ul>
            <button
                type="button"
                class="add"
                on:click=move |_| rows.update(|r| r.push((next_id(), RwSignal::new(String::new()))))
            >
                "+ Add to " {field}
            </button>
            <FieldErrors id=err_id msgs />
        </fieldset>
    }
}

#[component]
fn CertificatesField(certs: RwSignal<Vec<CertSig>>) -> impl IntoView {
    let errs = expect_context::<Errs>();
    let field = "certificates";
    let msgs = Memo::new(move |_| errs.messages(field));
    let input = move |label: &'static str, v: RwSignal<String>, ph: &'static str| {
        view! {
            <label class="mini">
                <span>{label}</span>
                <input
                    type="text"
                    spellcheck="false"
                    autocomplete="off"
                    placeholder=ph
                    prop:value=move || v.get()
                    on:input=move |ev| v.set(event_target_value(&ev))
                    on:change=move |_| errs.touch(field)
                />
            </label>
        }
    };
    view! {
        <fieldset class="field list" class:invalid=move || !msgs.get().is_empty() data-field=field>
            <legend>"Certificates " <code class="api">"certificates"</code></legend>
            <p class="help">
                "Certificates the enclave obtains at start-up. keyPath and certPath belong inside an encrypted directory."
            </p>
            <For each=move || certs.get() key=|c| c.id let:c>
                <div class="cert">
                    <label class="mini">
                        <span>"issuer"</span>
                        <select
                            prop:value=move || c.issuer.get()
                            on:change=move |ev| {
                                c.issuer.set(event_target_value(&ev));
                                errs.touch(field);
                            }
                        >
                            <option value="">"default (MANAGER_CA)"</option>
                            <option value="MANAGER_CA">"MANAGER_CA"</option>
                            <option value="NODE">"NODE"</option>
                            <option value="SELF_IAS">"SELF_IAS"</option>
                        </select>
                    </label>
                    {input("subject", c.subject, "app.example.com")}
                    {input("keyType", c.key_type, "RSA (default)")}
                    {input("keyParam.size", c.key_size, "2048 (default)")}
                    {input("keyPath", c.key_path, "/run/tls/key.pem")}
                    {input("certPath", c.cert_path, "/run/tls/cert.pem")}
                    <button
                        type="button"
                        class="ghost"
                        on:click=move |_| {
                            errs.touch(field);
                            certs.update(|v| v.retain(|x| x.id != c.id));
                        }
                    >
                        "Remove certificate"
                    </button>
                </div>
            </For>
            <button type="button" class="add" on:click=move |_| certs.update(|v| v.push(CertSig::new()))>
                "+ Add a certificate"
            </button>
            <FieldErrors id="e-certificates".to_string() msgs />
        </fieldset>
    }
}

fn default_origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_else(|| "http://127.0.0.1:8787".to_string())
}

/// The Convert page.
#[component]
pub fn ConvertPage() -> impl IntoView {
    let form = Form::new();
    // The form survives a reload: kept in this tab's sessionStorage without passwords or
    // the KMS API key (`FormState::to_saved`), restored here, saved on every change.
    if let Some(saved) = session_get(SAVED_FORM_KEY).and_then(|t| FormState::from_saved(&t)) {
        form.load(saved);
    }
    Effect::new(move |_| {
        session_set(SAVED_FORM_KEY, &form.state().to_saved());
    });
    let parsed = Memo::new(move |_| form.state().to_request());
    let all = Memo::new(move |_| {
        let (req, mut errors) = parsed.get();
        let v = validate_request(&req);
        // Fields the form could not read are left out of the request, so the engine
        // does not report them twice.
        errors.extend(v.errors);
        errors
    });
    let warnings = Memo::new(move |_| {
        let (req, _) = parsed.get();
        validate_request(&req).warnings
    });
    let errs = Errs {
        all,
        touched: RwSignal::new(Vec::new()),
        show_all: RwSignal::new(false),
    };
    provide_context(errs);

    // The service's configuration (its registry allowlist), to check the image fields
    // against; absent (nothing shown) where the page is not served by a kiln worker.
    let config: RwSignal<Option<KilnConfig>> = RwSignal::new(None);
    leptos::task::spawn_local(async move {
        if let Ok(origin) = crate::browser::spawn::api_origin() {
            if let Ok(c) = crate::browser::runner::fetch_config(&origin).await {
                config.set(Some(c));
            }
        }
    });
    let allow_line = move |image: String| -> Option<String> {
        config.get()?.registry_allowed(&image).map(|r| match r {
            Ok(host) => format!("✓ {host} is on this service's registry allowlist."),
            Err(why) => format!("✗ {why}."),
        })
    };
    let origin = RwSignal::new(default_origin());
    let json = Memo::new(move |_| request_json(&parsed.get().0));
    let curl = Memo::new(move |_| curl_command(&origin.get(), &parsed.get().0));
    let result: RwSignal<Option<ConvertResponse>> = RwSignal::new(None);
    let real = RwSignal::new(false);
    let runnable = Signal::derive(move || all.get().is_empty().then(|| parsed.get().0));
    let summary = move || {
        let n = all.get().len();
        if n == 0 {
            "The request is valid.".to_string()
        } else if n == 1 {
            "1 problem to fix.".to_string()
        } else {
            format!("{n} problems to fix.")
        }
    };

    view! {
        <h1>"Convert an image"</h1>
        <p class="lead">
            "Describe the conversion. Every field maps to the "
            <code>"POST /convert-image"</code>
            " API; empty fields take the API's defaults (shown as placeholders). The form is checked with the engine's own rules."
        </p>
        <form class="convert" novalidate on:submit=move |ev| ev.prevent_default()>
            <section class="card" aria-labelledby="s-images">
                <h2 id="s-images">"Images"</h2>
                <div class="grid2">
                    <TextField label="Input image" field="inputImageName" value=form.input_image
                        placeholder="registry.example/app:latest"
                        help="Required. registry/repository:tag or @digest; Docker Hub short names work." />
                    <TextField label="Output image" field="outputImageName" value=form.output_image
                        placeholder="registry.example/app-sgx:latest"
                        help="Required. Where the converted image is pushed." />
                </div>
                <div class="grid2">
                    <p class="help" data-testid="allow-input">{move || allow_line(form.input_image.get())}</p>
                    <p class="help" data-testid="allow-output">{move || allow_line(form.output_image.get())}</p>
                </div>
                {move || config.get().filter(|c| !c.registries.is_empty()).map(|c| view! {
                    <p class="help" data-testid="allowlist">
                        "This service's registry proxy reaches: "
                        {c.registries.join(", ")}
                    </p>
                })}
            </section>

            <details class="card more" id="d-creds" aria-labelledby="s-creds">
                <summary><h2 id="s-creds">"Registry credentials"</h2> <span class="muted">"for private registries; memory only"</span></summary>
                <p class="help">"Held in this page's memory only: never stored, never logged, replaced by a placeholder in the JSON and curl below."</p>
                <div class="grid2">
                    <div class="group">
                        <h3>"Input registry " <code class="api">"inputAuthConfig"</code></h3>
                        <TextField label="Username" field="inputAuthConfig.username" value=form.in_user
                            placeholder="(anonymous)" />
                        <TextField label="Password or token" field="inputAuthConfig.password" value=form.in_pass
                            kind="password" />
                    </div>
                    <div class="group">
                        <h3>"Output registry " <code class="api">"outputAuthConfig"</code></h3>
                        <TextField label="Username" field="outputAuthConfig.username" value=form.out_user
                            placeholder="(anonymous)" />
                        <TextField label="Password or token" field="outputAuthConfig.password" value=form.out_pass
                            kind="password" />
                    </div>
                </div>
            </details>

            <details class="card more" id="d-enclave" aria-labelledby="s-enclave">
                <summary><h2 id="s-enclave">"Enclave"</h2> <span class="muted">"product id, security version, memory, threads, debug, Java"</span></summary>
                <div class="grid4">
                    <TextField label="Product id" field="isvprodid" value=form.isvprodid placeholder="0"
                        inputmode="numeric" help="0..65535. Default 0." />
                    <TextField label="Security version" field="isvsvn" value=form.isvsvn placeholder="0"
                        inputmode="numeric" help="0..65535. Default 0." />
                    <TextField label="Memory size" field="memSize" value=form.mem_size placeholder="256M"
                        help="K, M, G or bytes; rounded up to a power of two. Default 256M." />
                    <TextField label="Threads" field="threads" value=form.threads placeholder="4"
                        inputmode="numeric" help="1..1024. Default 4." />
                </div>
                <div class="grid2">
                    <CheckField label="Debug enclave" field="debug" value=form.debug
                        help="Sets the DEBUG attribute: never for production. Default off." />
                    <CheckField label="Allow command-line arguments" field="allowCmdlineArgs" value=form.allow_cmdline_args
                        help="Lets docker run arguments reach the app (they are then not measured). Default off." />
                </div>
                <div class="field">
                    <label for="f-javaMode">"Java mode " <code class="api">"javaMode"</code></label>
                    <select id="f-javaMode" name="javaMode"
                        prop:value=move || form.java_mode.get()
                        on:change=move |ev| form.java_mode.set(event_target_value(&ev))>
                        <option value="">"none"</option>
                        <option value="JAVA-ORACLE">"JAVA-ORACLE"</option>
                        <option value="OPENJDK">"OPENJDK"</option>
                        <option value="OPENJ9">"OPENJ9"</option>
                        <option value="LIBERTY-JRE">"LIBERTY-JRE"</option>
                    </select>
                    <p class="help">"Tunes the enclave for that JVM."</p>
                </div>
            </details>

            <details class="card more" id="d-app" aria-labelledby="s-app">
                <summary><h2 id="s-app">"App"</h2> <span class="muted">"entrypoint, arguments, environment"</span></summary>
                <div class="grid2">
                    <ListField label="Entrypoint" field="entrypoint" rows=form.entrypoint
                        placeholder="/usr/bin/app"
                        help="Replaces the image's ENTRYPOINT. Empty: the image's own." />
                    <ListField label="Arguments" field="entrypointArgs" rows=form.entrypoint_args
                        placeholder="--port=8080"
                        help="Replaces the image's CMD. Empty: the image's own." />
                </div>
                <ListField label="Environment" field="manifestEnv" rows=form.manifest_env
                    placeholder="KEY=VALUE"
                    help="KEY=VALUE entries baked into the measured manifest." />
            </details>

            <details class="card more" id="d-fs" aria-labelledby="s-fs">
                <summary><h2 id="s-fs">"File system"</h2> <span class="muted">"read-only, read-write and encrypted directories"</span></summary>
                <p class="help">"A list left empty takes the default shown."</p>
                <div class="grid3">
                    <ListField label="Read-only, integrity-protected" field="roDirs" rows=form.ro_dirs
                        placeholder="/"
                        help="Default: /, /opt/fortanix/enclave-os/app-config/ro" />
                    <ListField label="Read-write, unprotected" field="rwDirs" rows=form.rw_dirs
                        placeholder="/etc/hosts"
                        help="Default: /etc/hosts, /etc/resolv.conf, /etc/hostname" />
                    <ListField label="Encrypted (sealed)" field="encryptedDirs" rows=form.encrypted_dirs
                        placeholder="/data"
                        help="Default: /tmp, /run, /ftx-efs, /opt/fortanix/enclave-os/app-config/rw" />
                </div>
            </details>

            <details class="card more" id="d-adv" aria-labelledby="s-adv">
                <summary><h2 id="s-adv">"Signing and advanced"</h2> <span class="muted">"signing key of the API request, certificates, manifest options"</span></summary>
                <div class="field">
                    <label for="f-signingKey">"Signing key of the API request (curl below) " <code class="api">"signingKey"</code></label>
                    <select id="f-signingKey" name="signingKey"
                        prop:value=move || if form.signing.get() == SigningChoice::Sdkms { "sdkms" } else { "default" }
                        on:change=move |ev| form.signing.set(if event_target_value(&ev) == "sdkms" { SigningChoice::Sdkms } else { SigningChoice::ServiceDefault })>
                        <option value="default">"the service's default key"</option>
                        <option value="sdkms">"a key in a KMS (sdkms)"</option>
                    </select>
                    <p class="help">"What the API request asks for. A conversion run in this browser is signed by the key chosen under “Convert in this browser”."</p>
                </div>
                <Show when=move || form.signing.get() == SigningChoice::Sdkms>
                    <div class="grid2">
                        <TextField label="KMS key name" field="signingKey.sdkms.name" value=form.sdkms_name />
                        <TextField label="KMS API key" field="signingKey.sdkms.apiKey" value=form.sdkms_api_key kind="password"
                            help="Memory only; replaced by a placeholder below." />
                    </div>
                </Show>
                <CertificatesField certs=form.certificates />
                <div class="field">
                    <label for="f-manifestOptions">"Manifest options " <code class="api">"manifestOptions"</code></label>
                    <textarea id="f-manifestOptions" name="manifestOptions" rows="4" spellcheck="false"
                        placeholder="{\"sys.stack.size\": \"2M\"}"
                        aria-describedby="e-manifestOptions"
                        prop:value=move || form.manifest_options.get()
                        on:input=move |ev| form.manifest_options.set(event_target_value(&ev))
                        on:change=move |_| errs.touch("manifestOptions")></textarea>
                    <p class="help">"A JSON object of extra Gramine manifest keys (dotted or nested)."</p>
                    <FieldErrors id="e-manifestOptions".to_string() msgs=Memo::new(move |_| errs.messages("manifestOptions")) />
                </div>
                <div class="grid3">
                    <TextField label="External packages" field="externalPackages" value=form.external_packages
                        placeholder="(none)" help="Mount point of extra runtime packages." />
                    <TextField label="Core dump pattern" field="coreDumpPattern" value=form.core_dump_pattern
                        placeholder="(none)" help="Debug enclaves only." />
                    <TextField label="Log file" field="logFilePath" value=form.log_file_path
                        placeholder="(none)" help="stderr or an absolute path." />
                </div>
            </details>

            <section class="card actions" aria-label="Actions">
                <p class="status" role="status" data-testid="form-status">
                    {move || if errs.show_all.get() { summary() } else { String::new() }}
                </p>
                <ul class="warnings">
                    {move || warnings.get().into_iter().map(|w| view! { <li>{w}</li> }).collect_view()}
                </ul>
                <div class="buttons">
                    <button type="button" data-testid="check" on:click=move |_| {
                        errs.show_all.set(true);
                        focus_first_invalid_soon();
                    }>
                        "Check the request"
                    </button>
                    <button type="button" class="ghost" on:click=move |_| {
                        real.set(false);
                        result.set(Some(sample_response(&form.output_image.get_untracked())));
                    }>
                        "Preview the result panel"
                    </button>
                </div>
            </section>
        </form>

        <RunCard request=runnable on_invalid=Callback::new(move |_| {
                errs.show_all.set(true);
                focus_first_invalid_soon();
            })
            sdkms=Signal::derive(move || form.signing.get() == SigningChoice::Sdkms) result real />

        <ResultPanel response=result sample=Signal::derive(move || !real.get()) />

        <section class="card" aria-labelledby="s-api">
            <h2 id="s-api">"The same request through the API"</h2>
            <div class="field">
                <label for="f-origin">"API origin"</label>
                <input id="f-origin" type="url" spellcheck="false" prop:value=move || origin.get()
                    on:input=move |ev| origin.set(event_target_value(&ev)) />
            </div>
            <h3>"curl"</h3>
            <pre class="code" data-testid="curl">{move || curl.get()}</pre>
            <CopyButton text=curl label="Copy the curl command" />
            <h3>"Request JSON"</h3>
            <pre class="code" data-testid="request-json">{move || json.get()}</pre>
            <CopyButton text=json label="Copy the request JSON" />
        </section>
    }
}
