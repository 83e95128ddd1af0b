//! `#[kiln_macros::async_trait]`: the engine's async traits and their impls are `Send`
//! natively (the CLI's multi-threaded runtime moves futures between threads) and `?Send` on
//! wasm32 (browser and worker futures hold JavaScript values). This is the one place that
//! says so; it expands to
//!
//! ```text
//! #[cfg_attr(target_arch = "wasm32", ::async_trait::async_trait(?Send))]
//! #[cfg_attr(not(target_arch = "wasm32"), ::async_trait::async_trait)]
//! ```
//!
//! so the crate using it needs `async-trait` as a dependency. Why a proc-macro crate and
//! not `macro_rules!`: only an attribute can wrap a whole `trait` or `impl` item as it is
//! written. It needs neither `syn` nor `quote`: it prepends two attributes.

use proc_macro::TokenStream;

/// The two attributes this macro prepends.
const ATTRIBUTES: &str =
    "#[cfg_attr(target_arch = \"wasm32\", ::async_trait::async_trait(?Send))] \
                          #[cfg_attr(not(target_arch = \"wasm32\"), ::async_trait::async_trait)]";

/// async-trait, `Send` natively and `?Send` on wasm32 (see the crate doc). Takes no
/// arguments.
#[proc_macro_attribute]
pub fn async_trait(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return "compile_error!(\"#[kiln_macros::async_trait] takes no arguments\");"
            .parse()
            .unwrap_or_default();
    }
    let mut out: TokenStream = ATTRIBUTES.parse().unwrap_or_default();
    out.extend(item);
    out
}
