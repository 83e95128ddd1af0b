//! kiln's web app: build a convert-image request (validated by the engine's own rules),
//! hold SGX signing keys in the browser (WebCrypto; private keys never leave it), and
//! verify SIGSTRUCTs and MRENCLAVE offline.
//!
//! Pure modules (native and wasm): [`form`] (form state → request), [`curl`] (request
//! JSON and curl, secrets redacted), [`mrsigner`], [`sample`] (the result panel's stub),
//! [`engine_bridge`] (every engine call; conversion and verification run in a Web Worker),
//! [`backup`] (the encrypted key backup file's format and checks), [`links`] (pre-filled
//! links between pages), [`approvals`] (the worker's operator API for MANAGER_CA approval
//! records: wire types, URLs, the register form; its HTTP client on wasm32).
//! [`browser`]: the engine's runtime in the browser (transport through the worker's proxy,
//! IndexedDB layer cache, the Web Worker that converts and verifies).
//! Browser modules (wasm32 only): `webcrypto` (the `WebCryptoSigner`), `keystore`
//! (IndexedDB key records) and `ui` (the Leptos pages).

#![warn(missing_docs)]

pub mod approvals;
pub mod backup;
pub mod browser;
pub mod curl;
pub mod engine_bridge;
pub mod form;
pub mod links;
pub mod mrsigner;
pub mod sample;

#[cfg(target_arch = "wasm32")]
pub mod keystore;
#[cfg(target_arch = "wasm32")]
pub mod ui;
#[cfg(target_arch = "wasm32")]
pub mod webcrypto;
