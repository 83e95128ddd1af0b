//! The Leptos UI: a header with the sections (Convert, Keys, Verify, Approvals), chosen by
//! the URL fragment (`#/convert`, `#/keys`, `#/verify`, `#/approvals`), and shared widgets.

mod approvals;
mod attest;
mod convert;
mod keys;
mod progress;
mod result;
mod run;
mod verify;
mod verify_image;
mod widgets;

/// The browser runtime's job API (conversion and verification in a Web Worker).
use crate::engine_bridge as bridge;

use leptos::prelude::*;

pub use result::ResultPanel;

/// A section of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Build a convert-image request.
    Convert,
    /// Signing keys held in the browser.
    Keys,
    /// Verify SIGSTRUCTs and MRENCLAVE.
    Verify,
    /// The operator's MANAGER_CA approval records.
    Approvals,
}

impl Page {
    fn from_hash(hash: &str) -> Self {
        match crate::links::hash_page(hash) {
            "keys" => Page::Keys,
            "verify" => Page::Verify,
            "approvals" => Page::Approvals,
            _ => Page::Convert,
        }
    }

    fn href(self) -> &'static str {
        match self {
            Page::Convert => "#/convert",
            Page::Keys => "#/keys",
            Page::Verify => "#/verify",
            Page::Approvals => "#/approvals",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Page::Convert => "Convert",
            Page::Keys => "Keys",
            Page::Verify => "Verify",
            Page::Approvals => "Approvals",
        }
    }
}

fn current_hash() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let page = RwSignal::new(Page::from_hash(&current_hash()));
    let handle = window_event_listener(leptos::ev::hashchange, move |_| {
        page.set(Page::from_hash(&current_hash()));
    });
    on_cleanup(move || handle.remove());
    Effect::new(move |_| {
        if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
            doc.set_title(&format!("kiln · {}", page.get().title()));
        }
    });

    let nav_link = move |p: Page| {
        view! {
            <a
                href=p.href()
                class="nav-link"
                aria-current=move || (page.get() == p).then_some("page")
            >
                {p.title()}
            </a>
        }
    };

    view! {
        <a class="skip" href="#main">"Skip to content"</a>
        <header class="top">
            <div class="brand">
                <span class="logo" aria-hidden="true">"◆"</span>
                <span class="name">"kiln"</span>
                <span class="tag">"SGX enclaves from container images"</span>
            </div>
            <nav aria-label="Sections">
                {nav_link(Page::Convert)}
                {nav_link(Page::Keys)}
                {nav_link(Page::Verify)}
                {nav_link(Page::Approvals)}
            </nav>
        </header>
        <main id="main" tabindex="-1">
            {move || match page.get() {
                Page::Convert => view! { <convert::ConvertPage /> }.into_any(),
                Page::Keys => view! { <keys::KeysPage /> }.into_any(),
                Page::Verify => view! { <verify::VerifyPage /> }.into_any(),
                Page::Approvals => view! { <approvals::ApprovalsPage /> }.into_any(),
            }}
        </main>
        <footer class="foot">
            "Keys and passwords stay in this browser. Nothing here is sent anywhere until you convert or load approval records."
        </footer>
    }
}
