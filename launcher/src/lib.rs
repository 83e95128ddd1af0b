//! kiln's launcher: the ENTRYPOINT of every converted image.
//!
//! It reads [`config::CONFIG_PATH`] (written by kiln's converter into the kiln layer),
//! looks at the host ([`facts`], [`probe`]), decides which Gramine variant to start
//! ([`plan`]: SGX2/EDMM, SGX1, or the explicitly insecure direct mode) and `exec`s Gramine's
//! loader in its own place, so signals, stdio and the exit status belong to the app. In the
//! insecure direct mode it instead spawns the PAL and supervises it ([`supervise`]):
//! forwarding signals, reaping, and rehearsing the enclave's thread and memory limits
//! ([`rehearsal`]), since direct mode enforces neither.
//!
//! The launcher runs outside the enclave and is untrusted by design: nothing it does
//! changes what the enclave measures. It exists so that an unmodified image runs with
//! `docker run IMAGE` on any host, and fails with one clear line where it cannot.
//!
//! It is linked statically (see launcher/README.md) and lives in the runtime layer at
//! `/opt/kiln/runtime/kiln-launcher`.

#![warn(missing_docs)]

pub mod config;
pub mod facts;
#[cfg(unix)]
pub mod log_relay;
pub mod plan;
#[cfg(unix)]
pub mod probe;
pub mod rehearsal;
#[cfg(unix)]
pub mod supervise;
