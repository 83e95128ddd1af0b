//! The Keys page: generate a WebCrypto SGX signing key with its encrypted backup file
//! ([`crate::backup`]), import a backup or a PEM, list keys with their MRSIGNER, export
//! public keys, delete.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::widgets::{file_bytes, input_files, text_data_url, CopyButton};
use crate::backup::{self, KeyBackup};
use crate::engine_bridge::{import_pem, pkcs8_der};
use crate::keystore::{self, KeyInfo, KeyKind};
use crate::webcrypto::{self, JwkPublic};
use zeroize::Zeroizing;

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
    let gen_pass = RwSignal::new(String::new());
    let gen_pass2 = RwSignal::new(String::new());
    let gen_error = RwSignal::new(String::new());
    // The backup of the key just made, until the user dismisses it: (file name, JSON).
    // Encrypted; the passphrase is never kept.
    let fresh_backup: RwSignal<Option<(String, String)>> = RwSignal::new(None);
    let generate = move |_| {
        gen_error.set(String::new());
        error.set(String::new());
        let passphrase = Zeroizing::new(gen_pass.get_untracked());
        if let Err(e) = backup::check_new_passphrase(&passphrase, &gen_pass2.get_untracked()) {
            gen_error.set(format!("{e}."));
            return;
        }
        busy.set(true);
        fresh_backup.set(None);
        status.set(
            "Generating an RSA-3072 key (e = 3) in WebCrypto and its encrypted backup…".into(),
        );
        spawn_local(async move {
            let l = label.get_untracked();
            let l = if l.trim().is_empty() {
                "browser key".to_string()
            } else {
                l
            };
            let res = async {
                let (k, b) = webcrypto::generate_key_with_backup(&l, &passphrase).await?;
                let info = keystore::store_generated(&l, &k).await?;
                Ok::<_, String>((info, b))
            }
            .await;
            drop(passphrase);
            match res {
                Ok((info, b)) => {
                    gen_pass.set(String::new());
                    gen_pass2.set(String::new());
                    let kept = match keystore::request_persistence().await {
                        Some(true) => "storage is persistent",
                        _ => "the browser did not make storage persistent: it may evict this key",
                    };
                    status.set(format!(
                        "Generated “{}”: MRSIGNER {} ({kept}). Download its backup now.",
                        info.label, info.mrsigner
                    ));
                    fresh_backup.set(Some((b.file_name(), b.to_json())));
                    label.set(String::new());
                }
                Err(e) => {
                    status.set(String::new());
                    gen_error.set(format!("Key generation failed: {e}"));
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
    let is_backup = Memo::new(move |_| backup::looks_like_backup(&pem.get()));
    let import_backup = move |text: String, pass: Zeroizing<String>| {
        let b = match KeyBackup::parse(&text) {
            Ok(b) => b,
            Err(e) => {
                import_error.set(format!("Backup file: {e}"));
                return;
            }
        };
        if pass.is_empty() {
            import_error.set("Backup file: give the passphrase it was made with.".into());
            return;
        }
        busy.set(true);
        status.set("Unwrapping the backup (PBKDF2, a second or two)…".into());
        spawn_local(async move {
            let mut b = b;
            let l = import_label.get_untracked();
            if !l.trim().is_empty() {
                b.label = l;
            }
            let res = async {
                let key = webcrypto::unwrap_backup(&b, &pass).await?;
                keystore::store_restored(&b, &key).await
            }
            .await;
            drop(pass);
            match res {
                Ok(info) => {
                    pem.set(String::new());
                    pem_pass.set(String::new());
                    import_label.set(String::new());
                    let _ = keystore::request_persistence().await;
                    status.set(format!(
                        "Restored “{}” from its backup: MRSIGNER {}",
                        info.label, info.mrsigner
                    ));
                }
                Err(e) => {
                    status.set(String::new());
                    import_error.set(format!("Backup file: {e}. Nothing was stored."));
                }
            }
            busy.set(false);
            reload();
        });
    };
    let import = move |_| {
        import_error.set(String::new());
        let text = pem.get_untracked();
        let pass = pem_pass.get_untracked();
        if backup::looks_like_backup(&text) {
            import_backup(text, Zeroizing::new(pass));
            return;
        }
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
            "SGX signing keys are RSA-3072 with public exponent 3. "
            "MRSIGNER is the SHA-256 of the key's modulus (little-endian), the identity SGX gives the signer."
        </p>
        <p class="warning" data-testid="keys-profile-warning">
            <strong>"A key lives only in this browser profile. "</strong>
            "Clearing this site's data, another browser or profile, or the browser evicting storage loses it, "
            "and with it its MRSIGNER: every enclave that trusts that MRSIGNER. kiln asks the browser to keep "
            "this site's storage when a key is made, and makes an encrypted backup file of every key it "
            "generates: keep that file, and its passphrase apart from it. Import it here (or in another "
            "browser) to get the same key and MRSIGNER back."
        </p>
        <p class="error" role="alert">{move || error.get()}</p>
        <p class="status" role="status" data-testid="keys-status">{move || status.get()}</p>
        {move || fresh_backup.get().map(|(name, json)| {
            let href = text_data_url("application/json", &json);
            view! {
                <section class="card callout" data-testid="backup-callout" aria-labelledby="k-backup">
                    <h2 id="k-backup">"Save the key's backup now"</h2>
                    <p>
                        "This file is the only copy of the private key that can leave this browser: "
                        "AES-256-GCM under your passphrase (PBKDF2-SHA-256, 600 000 rounds). "
                        "Without it and the passphrase, a lost browser profile is a lost MRSIGNER."
                    </p>
                    <div class="buttons">
                        <a class="button primary" data-testid="backup-download" href=href download=name.clone()>
                            "Download encrypted backup"
                        </a>
                        <button type="button" on:click=move |_| fresh_backup.set(None)>"I saved it"</button>
                    </div>
                    <p class="help mono">{name}</p>
                </section>
            }
        })}

        <div class="grid2">
            <section class="card" aria-labelledby="k-gen">
                <h2 id="k-gen">"Generate a key in this browser"</h2>
                <div class="field">
                    <label for="k-label">"Label"</label>
                    <input id="k-label" type="text" placeholder="browser key" autocomplete="off"
                        prop:value=move || label.get() on:input=move |ev| label.set(event_target_value(&ev)) />
                </div>
                <div class="grid2">
                    <div class="field">
                        <label for="k-gen-pass">"Backup passphrase (12+ characters)"</label>
                        <input id="k-gen-pass" type="password" autocomplete="new-password"
                            prop:value=move || gen_pass.get() on:input=move |ev| gen_pass.set(event_target_value(&ev)) />
                    </div>
                    <div class="field">
                        <label for="k-gen-pass2">"Passphrase again"</label>
                        <input id="k-gen-pass2" type="password" autocomplete="new-password"
                            prop:value=move || gen_pass2.get() on:input=move |ev| gen_pass2.set(event_target_value(&ev)) />
                    </div>
                </div>
                <p class="help">
                    "The key is stored here non-extractable: no page, script or extension can read it. "
                    "It is extractable only for the moment WebCrypto wraps it into its encrypted backup; "
                    "the stored key is that backup unwrapped, so the file is known to restore. "
                    "The passphrase is not kept."
                </p>
                <p class="error" role="alert" data-testid="gen-error">{move || gen_error.get()}</p>
                <button type="button" class="primary" disabled=move || busy.get() on:click=generate>
                    "Generate RSA-3072 e=3 key"
                </button>
            </section>

            <section class="card" aria-labelledby="k-imp">
                <h2 id="k-imp">"Import a key"</h2>
                <div class="field">
                    <label for="k-file">"A kiln backup file (.kilnkey.json) or a PEM file"</label>
                    <input id="k-file" type="file" accept=".json,.pem,.key,application/json"
                        on:change=move |ev| {
                            let Some(f) = input_files(&ev).into_iter().next() else { return };
                            import_error.set(String::new());
                            if f.size() > backup::MAX_FILE_BYTES as f64 {
                                import_error.set(format!(
                                    "{}: {} bytes; a key file is at most {} bytes",
                                    f.name(), f.size(), backup::MAX_FILE_BYTES
                                ));
                                return;
                            }
                            spawn_local(async move {
                                match file_bytes(&f).await {
                                    Ok(b) => match String::from_utf8(b) {
                                        Ok(t) => pem.set(t),
                                        Err(_) => import_error.set(format!("{}: not a text file", f.name())),
                                    },
                                    Err(e) => import_error.set(format!("{}: {e}", f.name())),
                                }
                            });
                        } />
                </div>
                <div class="field">
                    <label for="k-pem">"… or paste it (backup JSON, PKCS#1, PKCS#8 or encrypted PKCS#8 PEM)"</label>
                    <textarea id="k-pem" rows="5" spellcheck="false" autocomplete="off"
                        placeholder="-----BEGIN PRIVATE KEY-----"
                        prop:value=move || pem.get() on:input=move |ev| pem.set(event_target_value(&ev))></textarea>
                </div>
                <div class="grid2">
                    <div class="field">
                        <label for="k-pem-pass">"Passphrase (backup file, or an encrypted PEM)"</label>
                        <input id="k-pem-pass" type="password" autocomplete="off"
                            prop:value=move || pem_pass.get() on:input=move |ev| pem_pass.set(event_target_value(&ev)) />
                    </div>
                    <div class="field">
                        <label for="k-imp-label">"Label"</label>
                        <input id="k-imp-label" type="text" placeholder="imported key" autocomplete="off"
                            prop:value=move || import_label.get() on:input=move |ev| import_label.set(event_target_value(&ev)) />
                    </div>
                </div>
                <Show when=move || is_backup.get()>
                    <p class="help" data-testid="import-kind">
                        "A kiln backup: its key is unwrapped by WebCrypto straight into a non-extractable key and stored in this browser."
                    </p>
                </Show>
                <Show when=move || !is_backup.get()>
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
                </Show>
                <p class="error" role="alert" data-testid="import-error">{move || import_error.get()}</p>
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
