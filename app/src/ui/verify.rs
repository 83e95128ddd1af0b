//! The Verify page: an image in a registry ([`super::verify_image`]); offline a
//! SIGSTRUCT's fields and signature check, and MRENCLAVE computed from a final manifest
//! and libpal.so, compared to an expected value; and a running enclave's quote or RA-TLS
//! certificate ([`super::attest`]).

use kiln_engine::sgx::sigstruct_view::SigstructView;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::attest::AttestCard;
use super::verify_image::VerifyImageCard;
use super::widgets::{dropped_files, file_bytes, input_files, CopyButton};
use crate::engine_bridge::{hex_matches, measure, read_sigstruct, Measured};

/// A file the user picked or dropped.
#[derive(Clone, Default)]
pub(super) struct Picked {
    pub(super) name: String,
    pub(super) bytes: Vec<u8>,
}

/// A labelled file picker that also accepts a drop.
#[component]
pub(super) fn FilePick(
    id: &'static str,
    label: &'static str,
    accept: &'static str,
    picked: RwSignal<Option<Picked>>,
) -> impl IntoView {
    let over = RwSignal::new(false);
    let error = RwSignal::new(String::new());
    let take = move |files: Vec<web_sys::File>| {
        let Some(f) = files.into_iter().next() else {
            return;
        };
        spawn_local(async move {
            match file_bytes(&f).await {
                Ok(bytes) => {
                    error.set(String::new());
                    picked.set(Some(Picked {
                        name: f.name(),
                        bytes,
                    }));
                }
                Err(e) => error.set(format!("{}: {e}", f.name())),
            }
        });
    };
    view! {
        <div
            class="drop"
            class:over=move || over.get()
            on:dragover=move |ev| {
                ev.prevent_default();
                over.set(true);
            }
            on:dragleave=move |_| over.set(false)
            on:drop=move |ev| {
                ev.prevent_default();
                over.set(false);
                take(dropped_files(&ev));
            }
        >
            <label for=id>{label}</label>
            <input id=id type="file" accept=accept on:change=move |ev| take(input_files(&ev)) />
            <p class="help">
                {move || match picked.get() {
                    Some(p) => format!("{} ({} bytes)", p.name, p.bytes.len()),
                    None => "Drop a file here or choose one.".to_string(),
                }}
            </p>
            <p class="error" role="alert">{move || error.get()}</p>
        </div>
    }
}

fn row(name: &'static str, value: String) -> impl IntoView {
    view! {
        <div class="kv" data-field=name>
            <dt>{name}</dt>
            <dd><code class="mono">{value}</code></dd>
        </div>
    }
}

fn names(v: &[String]) -> String {
    if v.is_empty() {
        "—".into()
    } else {
        v.join(", ")
    }
}

/// Every field of a SIGSTRUCT, its signature verdict, MRENCLAVE and MRSIGNER.
pub(crate) fn sigstruct_view(v: SigstructView) -> impl IntoView {
    let ok = v.signature_valid && v.q1_q2_valid;
    let verdict = if ok {
        "Signature valid: the key with this MRSIGNER signed these fields.".to_string()
    } else {
        format!(
            "Signature check failed: {}",
            [v.signature_error.clone(), v.q1_q2_error.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    let mrsigner = v.mrsigner.clone();
    let mrenclave = v.enclavehash.clone();
    view! {
        <p class=if ok { "verdict ok" } else { "verdict bad" } data-testid="sig-verdict" role="status">{verdict}</p>
        <div class="kv" data-field="mrenclave">
            <dt>"MRENCLAVE (ENCLAVEHASH)"</dt>
            <dd><code class="mono" data-testid="sig-mrenclave">{v.enclavehash.clone()}</code></dd>
            <CopyButton text=Signal::derive(move || mrenclave.clone()) label="Copy MRENCLAVE" />
        </div>
        <div class="kv" data-field="mrsigner">
            <dt>"MRSIGNER"</dt>
            <dd><code class="mono" data-testid="sig-mrsigner">{v.mrsigner.clone()}</code></dd>
            <CopyButton text=Signal::derive(move || mrsigner.clone()) label="Copy MRSIGNER" />
        </div>
        <dl class="kvs">
            {row("ISVPRODID", v.isvprodid.to_string())}
            {row("ISVSVN", v.isvsvn.to_string())}
            {row("DATE", v.date.clone())}
            {row("ATTRIBUTES.FLAGS", format!("{} ({})", v.attributes.flags, names(&v.attributes.flags_names)))}
            {row("ATTRIBUTES.XFRM", format!("{} ({})", v.attributes.xfrm, names(&v.attributes.xfrm_names)))}
            {row("ATTRIBUTEMASK.FLAGS", format!("{} (not checked: {})", v.attribute_mask.flags, names(&v.attribute_mask.flags_unchecked)))}
            {row("ATTRIBUTEMASK.XFRM", format!("{} (not checked: {})", v.attribute_mask.xfrm, names(&v.attribute_mask.xfrm_unchecked)))}
            {row("MISCSELECT", format!("{} ({})", v.miscselect, names(&v.miscselect_names)))}
            {row("MISCMASK", v.miscmask.clone())}
            {row("CET_ATTRIBUTES", v.cet_attributes.clone())}
            {row("CET_ATTRIBUTES_MASK", v.cet_attributes_mask.clone())}
            {row("ISVFAMILYID", v.isvfamilyid.clone())}
            {row("ISVEXTPRODID", v.isvextprodid.clone())}
            {row("VENDOR", v.vendor.clone())}
            {row("SWDEFINED", v.swdefined.clone())}
            {row("HEADER", v.header.clone())}
            {row("HEADER2", v.header2.clone())}
            {row("EXPONENT", v.exponent.to_string())}
        </dl>
        <details>
            <summary>"MODULUS, SIGNATURE, Q1, Q2 (little-endian, as stored)"</summary>
            <dl class="kvs">
                {row("MODULUS", v.modulus.clone())}
                {row("SIGNATURE", v.signature.clone())}
                {row("Q1", v.q1.clone())}
                {row("Q2", v.q2.clone())}
            </dl>
        </details>
    }
}

fn measured_view(m: Measured, expected: String, sig_hash: Option<String>) -> impl IntoView {
    let mr = m.mrenclave.clone();
    let compare = if expected.trim().is_empty() {
        None
    } else if hex_matches(&expected, &m.mrenclave) {
        Some((
            true,
            "Match: this manifest and libpal.so produce the expected MRENCLAVE.".to_string(),
        ))
    } else {
        Some((
            false,
            "Mismatch: the enclave built from these files is not the expected one. Some measured byte differs: \
             the manifest (any key, trusted-file hashes, sgx.* settings) or libpal.so; check that both come \
             from the same conversion."
                .to_string(),
        ))
    };
    let sig = sig_hash.map(|h| {
        if h == m.mrenclave {
            (
                true,
                "Matches the ENCLAVEHASH of the SIGSTRUCT above.".to_string(),
            )
        } else {
            (
                false,
                "Differs from the ENCLAVEHASH of the SIGSTRUCT above.".to_string(),
            )
        }
    });
    view! {
        <div class="kv" data-field="mrenclave">
            <dt>"MRENCLAVE"</dt>
            <dd><code class="mono" data-testid="mrenclave">{m.mrenclave.clone()}</code></dd>
            <CopyButton text=Signal::derive(move || mr.clone()) label="Copy MRENCLAVE" />
        </div>
        {compare.map(|(ok, text)| view! {
            <p class=if ok { "verdict ok" } else { "verdict bad" } data-testid="mrenclave-compare" role="status">{text}</p>
        })}
        {sig.map(|(ok, text)| view! {
            <p class=if ok { "verdict ok" } else { "verdict bad" } role="status">{text}</p>
        })}
        <dl class="kvs">
            {row("sgx.enclave_size", format!("{:#x} ({} MiB)", m.enclave_size, m.enclave_size >> 20))}
            {row("sgx.max_threads", m.max_threads.to_string())}
            {row("sgx.edmm_enable", m.edmm.to_string())}
            {row("sgx.debug", m.debug.to_string())}
            {row("sgx.isvprodid", m.isvprodid.to_string())}
            {row("sgx.isvsvn", m.isvsvn.to_string())}
        </dl>
    }
}

/// The Verify page.
#[component]
pub fn VerifyPage() -> impl IntoView {
    let sig_file: RwSignal<Option<Picked>> = RwSignal::new(None);
    let sig = Memo::new(move |_| sig_file.get().map(|p| read_sigstruct(&p.bytes)));

    let manifest: RwSignal<Option<Picked>> = RwSignal::new(None);
    let libpal: RwSignal<Option<Picked>> = RwSignal::new(None);
    let expected = RwSignal::new(String::new());
    let measured = Memo::new(move |_| match (manifest.get(), libpal.get()) {
        (Some(m), Some(l)) => Some(measure(&m.bytes, &l.bytes)),
        _ => None,
    });
    let sig_hash = move || match sig.get() {
        Some(Ok(v)) => Some(v.enclavehash),
        _ => None,
    };

    view! {
        <h1>"Verify"</h1>
        <p class="lead">"Everything on this page runs in your browser: files never leave it, and an image is fetched through this site's registry proxy only."</p>

        <section class="card" aria-labelledby="v-sig">
            <h2 id="v-sig">"A SIGSTRUCT (.sig)"</h2>
            <FilePick id="v-sig-file" label="SIGSTRUCT file (.sig, 1808 bytes)" accept=".sig,application/octet-stream" picked=sig_file />
            {move || match sig.get() {
                None => None,
                Some(Err(e)) => Some(view! { <p class="verdict bad" role="alert">{e}</p> }.into_any()),
                Some(Ok(v)) => Some(sigstruct_view(v).into_any()),
            }}
        </section>

        <section class="card" aria-labelledby="v-mr">
            <h2 id="v-mr">"MRENCLAVE from a manifest"</h2>
            <p class="help">
                "The final Gramine manifest (.manifest.sgx) and the runtime's libpal.so determine the enclave's measurement (Gramine v1.9 layout)."
            </p>
            <div class="grid2">
                <FilePick id="v-manifest" label="Manifest (.manifest.sgx)" accept=".sgx,.toml,text/plain" picked=manifest />
                <FilePick id="v-libpal" label="libpal.so" accept=".so,application/octet-stream" picked=libpal />
            </div>
            <div class="field">
                <label for="v-expected">"Expected MRENCLAVE (optional)"</label>
                <input id="v-expected" type="text" spellcheck="false" autocomplete="off"
                    placeholder="64 hex digits" class="mono"
                    prop:value=move || expected.get() on:input=move |ev| expected.set(event_target_value(&ev)) />
            </div>
            {move || match measured.get() {
                None => None,
                Some(Err(e)) => Some(view! { <p class="verdict bad" role="alert">{format!("Cannot measure: {e}")}</p> }.into_any()),
                Some(Ok(m)) => Some(measured_view(m, expected.get(), sig_hash()).into_any()),
            }}
        </section>

        <VerifyImageCard />
        <AttestCard />
    }
}
