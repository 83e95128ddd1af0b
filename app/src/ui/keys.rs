//! The Keys page: generate a WebCrypto SGX signing key, import a PEM, list keys with
//! their MRSIGNER, export public keys, delete.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::widgets::{text_data_url, CopyButton};
use crate::engine_bridge::{import_pem, pkcs8_der};
use crate::keystore::{self, KeyInfo, KeyKind};
use crate::webcrypto::{self, JwkPublic};

fn short_date(ms: f64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms));
    String::from(d.to_iso_string())
        .get(..16)
        .unwrap_or_default()
        .replace('T', " ")
}

/// The Keys page.
#[component]
pub fn KeysPage() -> impl IntoView {
    let keys: RwSignal<Vec<KeyInfo>> = RwSignal::new(Vec::new());
    // Imported keys not stored: this tab's memory only.
    let session: RwSignal<Vec<KeyInfo>> = RwSignal::new(Vec::new());
    let busy = RwSignal::new(false);
    let status = RwSignal::new(String::new());
    let error = RwSignal::new(String::new());

    let reload = move || {
        spawn_local(async move {
            match keystore::list().await {
                Ok(k) => keys.set(k),
                Err(e) => error.set(format!("Could not read the key store: {e}")),
            }
        })
    };
    reload();

    let label = RwSignal::new(String::new());
    let generate = move |_| {
        busy.set(true);
        error.set(String::new());
        status.set("Generating an RSA-3072 key (e = 3) in WebCrypto…".into());
        spawn_local(async move {
            let l = label.get_untracked();
            let l = if l.trim().is_empty() {
                "browser key".to_string()
            } else {
                l
            };
            let res = async {
                let k = webcrypto::generate_key().await?;
                keystore::store_generated(&l, &k).await
            }
            .await;
            match res {
                Ok(info) => {
                    let kept = match keystore::request_persistence().await {
                        Some(true) => "storage is persistent",
                        _ => "the browser did not make storage persistent: it may evict this key",
                    };
                    status.set(format!(
                        "Generated “{}”: MRSIGNER {} ({kept})",
                        info.label, info.mrsigner
                    ));
                    label.set(String::new());
                }
                Err(e) => {
                    status.set(String::new());
                    error.set(format!("Key generation failed: {e}"));
                }
            }
            busy.set(false);
            reload();
        });
    };

    let pem = RwSignal::new(String::new());
    let pem_pass = RwSignal::new(String::new());
    let keep = RwSignal::new(false);
    let store_pass = RwSignal::new(String::new());
    let import_label = RwSignal::new(String::new());
    let import_error = RwSignal::new(String::new());
    let import = move |_| {
        import_error.set(String::new());
        let text = pem.get_untracked();
        let pass = pem_pass.get_untracked();
        let key = match import_pem(&text, (!pass.is_empty()).then_some(pass.as_str())) {
            Ok(k) => k,
            Err(e) => {
                import_error.set(format!("PEM: {e}"));
                return;
            }
        };
        let jwk = JwkPublic {
            n: crate::mrsigner::b64url_encode(&key.public.modulus_be),
            e: crate::mrsigner::b64url_encode(&key.public.exponent_be),
        };
        let l = import_label.get_untracked();
        let mut info = KeyInfo {
            id: keystore::fresh_id(),
            label: if l.trim().is_empty() {
                "imported key".into()
            } else {
                l
            },
            kind: KeyKind::SessionPem,
            created: keystore::now_ms(),
            jwk,
            mrsigner: key.mrsigner.clone(),
        };
        if !keep.get_untracked() {
            pem.set(String::new());
            pem_pass.set(String::new());
            status.set(format!(
                "Imported “{}” for this tab: MRSIGNER {}",
                info.label, info.mrsigner
            ));
            session.update(|s| s.push(info));
            return;
        }
        let passphrase = store_pass.get_untracked();
        if passphrase.chars().count() < 8 {
            import_error.set("To keep the key, give a passphrase of at least 8 characters.".into());
            return;
        }
        busy.set(true);
        spawn_local(async move {
            let res = async {
                let der = pkcs8_der(&key)?;
                let sealed = webcrypto::seal_bytes(&passphrase, &der).await?;
                info.kind = KeyKind::SealedPem;
                keystore::store_sealed(&info, &sealed).await?;
                let _ = keystore::request_persistence().await;
                Ok::<_, String>(info)
            }
            .await;
            match res {
                Ok(info) => {
                    pem.set(String::new());
                    pem_pass.set(String::new());
                    store_pass.set(String::new());
                    status.set(format!(
                        "Stored “{}” encrypted: MRSIGNER {}",
                        info.label, info.mrsigner
                    ));
                }
                Err(e) => import_error.set(format!("Storing the key failed: {e}")),
            }
            busy.set(false);
            reload();
        });
    };

    let all = Memo::new(move |_| {
        let mut v = keys.get();
        v.extend(session.get());
        v
    });

    view! {
        <h1>"Signing keys"</h1>
        <p class="lead">
            "SGX signing keys are RSA-3072 with public exponent 3. Keys made here live in WebCrypto and cannot be exported; "
            "MRSIGNER is the SHA-256 of the key's modulus (little-endian), the identity SGX gives the signer."
        </p>
        <p class="warning" data-testid="keys-profile-warning">
            <strong>"A key lives only in this browser profile. "</strong>
            "Clearing this site's data, another browser or profile, or the browser evicting storage loses it, "
            "and with it its MRSIGNER: every enclave that trusts that MRSIGNER. kiln asks the browser to keep "
            "this site's storage when a key is made; for a key you cannot lose, generate it outside the browser "
            "and import it sealed under a passphrase, keeping the PEM safe."
        </p>
        <p class="error" role="alert">{move || error.get()}</p>
        <p class="status" role="status" data-testid="keys-status">{move || status.get()}</p>

        <div class="grid2">
            <section class="card" aria-labelledby="k-gen">
                <h2 id="k-gen">"Generate a key in this browser"</h2>
                <div class="field">
                    <label for="k-label">"Label"</label>
                    <input id="k-label" type="text" placeholder="browser key" autocomplete="off"
                        prop:value=move || label.get() on:input=move |ev| label.set(event_target_value(&ev)) />
                </div>
                <p class="help">"Non-extractable: the private key never leaves WebCrypto, not even to this page."</p>
                <button type="button" class="primary" disabled=move || busy.get() on:click=generate>
                    "Generate RSA-3072 e=3 key"
                </button>
            </section>

            <section class="card" aria-labelledby="k-imp">
                <h2 id="k-imp">"Import a PEM private key"</h2>
                <div class="field">
                    <label for="k-pem">"PEM (PKCS#1, PKCS#8 or encrypted PKCS#8)"</label>
                    <textarea id="k-pem" rows="5" spellcheck="false" autocomplete="off"
                        placeholder="-----BEGIN PRIVATE KEY-----"
                        prop:value=move || pem.get() on:input=move |ev| pem.set(event_target_value(&ev))></textarea>
                </div>
                <div class="grid2">
                    <div class="field">
                        <label for="k-pem-pass">"PEM passphrase (if encrypted)"</label>
                        <input id="k-pem-pass" type="password" autocomplete="off"
                            prop:value=move || pem_pass.get() on:input=move |ev| pem_pass.set(event_target_value(&ev)) />
                    </div>
                    <div class="field">
                        <label for="k-imp-label">"Label"</label>
                        <input id="k-imp-label" type="text" placeholder="imported key" autocomplete="off"
                            prop:value=move || import_label.get() on:input=move |ev| import_label.set(event_target_value(&ev)) />
                    </div>
                </div>
                <div class="field check">
                    <input id="k-keep" type="checkbox" prop:checked=move || keep.get()
                        on:change=move |ev| keep.set(event_target_checked(&ev)) />
                    <label for="k-keep">"Keep it in this browser, encrypted with a passphrase"</label>
                </div>
                <Show when=move || keep.get()>
                    <div class="field">
                        <label for="k-store-pass">"Storage passphrase (8+ characters)"</label>
                        <input id="k-store-pass" type="password" autocomplete="new-password"
                            prop:value=move || store_pass.get() on:input=move |ev| store_pass.set(event_target_value(&ev)) />
                        <p class="help">"AES-256-GCM under a PBKDF2-SHA-256 key (600 000 rounds). Without it the key lives in this tab only."</p>
                    </div>
                </Show>
                <p class="error" role="alert">{move || import_error.get()}</p>
                <button type="button" disabled=move || busy.get() on:click=import>"Import"</button>
            </section>
        </div>

        <section class="card" aria-labelledby="k-list">
            <h2 id="k-list">"Your keys"</h2>
            <Show when=move || !all.get().is_empty() fallback=|| view! { <p class="help">"No keys yet."</p> }>
                <ul class="keys" data-testid="key-list">
                    <For each=move || all.get() key=|k| k.id.clone() let:k>
                        <KeyItem k=k.clone() on_deleted=move |id: String| {
                            session.update(|s| s.retain(|x| x.id != id));
                            reload();
                        } />
                    </For>
                </ul>
            </Show>
        </section>
    }
}

#[component]
fn KeyItem(k: KeyInfo, on_deleted: impl Fn(String) + Copy + 'static) -> impl IntoView {
    let pem: RwSignal<Option<String>> = RwSignal::new(None);
    let err = RwSignal::new(String::new());
    let jwk = k.jwk.clone();
    let export = move |_| {
        let jwk = jwk.clone();
        spawn_local(async move {
            match jwk.spki_pem().await {
                Ok(p) => pem.set(Some(p)),
                Err(e) => err.set(e),
            }
        });
    };
    let id = k.id.clone();
    let kind = k.kind;
    let label = k.label.clone();
    let delete = move |_| {
        let id = id.clone();
        let confirmed = web_sys::window()
            .and_then(|w| {
                w.confirm_with_message(&format!("Delete the key “{label}”? This cannot be undone."))
                    .ok()
            })
            .unwrap_or(false);
        if !confirmed {
            return;
        }
        spawn_local(async move {
            if kind != KeyKind::SessionPem {
                if let Err(e) = keystore::delete(&id).await {
                    err.set(e);
                    return;
                }
            }
            on_deleted(id);
        });
    };
    let mrsigner = k.mrsigner.clone();
    let file = format!(
        "{}.pub.pem",
        k.label.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    view! {
        <li class="key" data-kind=kind.as_str()>
            <div class="key-head">
                <strong>{k.label.clone()}</strong>
                <span class="badge">{kind.describe()}</span>
                <span class="muted">{short_date(k.created)}</span>
            </div>
            <div class="kv">
                <dt>"MRSIGNER"</dt>
                <dd><code class="mono" data-testid="mrsigner">{k.mrsigner.clone()}</code></dd>
                <CopyButton text=Signal::derive(move || mrsigner.clone()) label="Copy MRSIGNER" />
            </div>
            <div class="buttons">
                <button type="button" on:click=export>"Export public key"</button>
                <button type="button" class="danger" on:click=delete>"Delete"</button>
            </div>
            <p class="error" role="alert">{move || err.get()}</p>
            {move || pem.get().map(|p| {
                let href = text_data_url("application/x-pem-file", &p);
                let copy = p.clone();
                view! {
                    <pre class="code">{p}</pre>
                    <div class="buttons">
                        <CopyButton text=Signal::derive(move || copy.clone()) label="Copy the public key" />
                        <a class="button" href=href download=file.clone()>"Download .pem"</a>
                    </div>
                }
            })}
        </li>
    }
}
