//! kiln's Cloudflare Worker.
//!
//! - `/proxy/{registry-host[:port]}/v2/...`: a CORS proxy for the OCI distribution protocol,
//!   so that kiln's page can pull and push images on any allowlisted registry. It streams
//!   bodies both ways, rewrites upload `Location`s and bearer-token realms to go through the
//!   proxy, follows blob redirects itself, and never reaches a host off the allowlist or a
//!   private, loopback or link-local address (see [`policy`]).
//! - `GET /healthz`, and the edge API: `POST /verify-image` and `POST /convert-image` run the
//!   engine here ([`transport`] is its guarded `fetch`); `POST /convert-image/prepare` and
//!   `/complete` run the offline two-step ([`token`]); `GET /openapi.json` is [`openapi`].
//! - Everything else: the static assets (the web app).
//!
//! The pure parts (guard, rewriting, CORS, routing, configuration) build natively and are
//! unit-tested there; the fetch handler itself exists only on `wasm32`.
#![warn(missing_docs)]

pub mod addr;
pub mod approvals;
pub mod attest;
pub mod auth;
pub mod body;
pub mod config;
pub mod cors;
pub mod error;
pub mod headers;
pub mod manager;
pub mod metrics;
pub mod openapi;
pub mod policy;
pub mod ratelimit;
pub mod retry_log;

#[cfg(target_arch = "wasm32")]
pub use approvals::Approvals;
#[cfg(target_arch = "wasm32")]
pub use ratelimit::RateLimiter;
pub mod rewrite;
pub mod route;
pub mod token;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod guarded_fetch;
#[cfg(target_arch = "wasm32")]
mod handler;
#[cfg(target_arch = "wasm32")]
mod proxy;
#[cfg(target_arch = "wasm32")]
pub mod timer;
#[cfg(target_arch = "wasm32")]
pub mod transport;
#[cfg(target_arch = "wasm32")]
mod two_step;
