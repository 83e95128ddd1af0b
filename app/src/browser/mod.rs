//! The engine's runtime in the browser: everything `kiln_engine` needs from its host
//! (HTTP, layer cache, clock, keys) and the Web Worker that runs conversions and
//! verifications off the page's thread.
//!
//! Pure modules (native and wasm, unit-tested natively): [`proxy_url`] (registry URL →
//! the worker's CORS proxy), [`progress`] (engine progress events → serde views),
//! [`protocol`] (the messages between page and Web Worker, `/kiln-config.json`).
//!
//! Browser modules (wasm32 only): `transport` (`BrowserTransport`: `fetch` through the
//! proxy), `idb_cache` (`IdbLayerCache`: the layer cache on IndexedDB), `clock`
//! (`JsClock`), `keys` (the page's key, resolved in the worker), `runner` (the job run
//! inside the Web Worker), `spawn` (the page's side: starts the worker, relays events)
//! and `script_api` (the same jobs for scripts and end-to-end tests).

pub mod progress;
pub mod protocol;
pub mod proxy_url;

#[cfg(target_arch = "wasm32")]
pub mod clock;
#[cfg(target_arch = "wasm32")]
pub mod idb_cache;
#[cfg(target_arch = "wasm32")]
pub mod keys;
#[cfg(target_arch = "wasm32")]
pub mod runner;
#[cfg(target_arch = "wasm32")]
pub mod script_api;
#[cfg(target_arch = "wasm32")]
pub mod spawn;
#[cfg(target_arch = "wasm32")]
pub mod transport;
