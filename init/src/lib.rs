//! kiln-init: the program Gramine starts inside the enclave (`libos.entrypoint`) when a
//! conversion requested `certificates`. It reads [`config::INIT_JSON`], provisions every
//! certificate ([`provision`]: an RSA key generated in the enclave, a self-signed X.509
//! certificate that embeds the SGX quote over the key when Gramine's attestation files
//! exist, see [`attest`] and [`cert`]; or, for an entry with a `manager` URL, a
//! certificate issued by the manager's CA, see [`manager`]), and then execs the app with its own argv and
//! environment. Any failure stops the start-up: the app never runs without its
//! certificates.
//!
//! Modules: [`config`] (`init.json`), [`cert`] (key and certificate), [`attest`]
//! (`/dev/attestation`), [`manager`] (MANAGER_CA over HTTP), [`provision`] (files on disk),
//! [`exec`] (hand-over to the app). Without the default feature `enclave` only [`config`]
//! builds: the engine writes `init.json` with its types.

#![warn(missing_docs)]

#[cfg(feature = "enclave")]
pub mod attest;
#[cfg(feature = "enclave")]
pub mod cert;
pub mod config;
#[cfg(feature = "enclave")]
pub mod exec;
#[cfg(feature = "enclave")]
pub mod manager;
#[cfg(feature = "enclave")]
pub mod provision;
