//! kiln's engine: turns a container image into one that runs its app inside an SGX
//! enclave under Gramine, and computes the enclave's identity.
//!
//! The engine does no I/O of its own. HTTP, clocks, storage and keys come in through
//! small traits ([`image::transport`], [`image::cache`], [`sgx::signer`]), so the same
//! code serves the browser (wasm), the Cloudflare worker (wasm) and the native CLI.
//!
//! Modules, in pipeline order (see ARCHITECTURE.md):
//! - [`image`]: references, registry protocol, layer scan, file index, layer writer, push.
//! - [`gramine`]: the convert-image request, the enclave spec and Gramine's manifests.
//! - [`sgx`]: MRENCLAVE measurement, Gramine's enclave layout, SIGSTRUCT and signing.
//! - [`pipeline`]: the whole conversion, one async entry point over the host's traits.
//! - [`kms`]: signers backed by a remote KMS (Fortanix DSM, `signingKey.sdkms`).
//! - [`attest`]: verifying a running enclave's SGX quote or RA-TLS certificate (DCAP).

#![forbid(unsafe_code)]
// The same code shares `Arc`s across threads natively; on wasm32 the transports are `!Send`
// and everything runs on one thread, so an `Arc` of a `!Send` value is expected there.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
#![warn(missing_docs)]

pub mod api;
pub mod attest;
pub mod converted_image;
pub mod gramine;
pub mod image;
pub mod kms;
pub mod pipeline;
pub mod runtime_image;
pub mod sgx;
pub mod util;
pub mod verify;
