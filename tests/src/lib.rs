//! kiln's test harness: real registries on loopback and small test images, built
//! without a container engine.
//!
//! - [`registry::TestRegistry`]: Debian's `docker-registry` (distribution 2.8) on a
//!   free 127.0.0.1 port in a temp dir, stopped on drop; anonymous, htpasswd basic
//!   auth, TLS with a private CA, or bearer tokens from [`token_server::TokenServer`].
//! - [`dsm_server::DsmServer`]: a stand-in Fortanix DSM (session auth, key info, sign)
//!   with a real RSA-3072 e = 3 key, for `signingKey.sdkms`.
//! - [`certs`]: a private CA and leaf certificate (rcgen), and the token signing cert.
//! - [`images`]: deterministic OCI/Docker test images (tar + gzip layers, config,
//!   manifest, index), an OCI layout writer (for skopeo/umoci) and a pusher that uses
//!   the engine's own client.
//! - [`real_apps`]: Debian images of real apps (python, nginx, redis, node, OpenJDK,
//!   bash) built from Debian packages by scripts/build-real-app-images.sh and cached.
//! - [`attestation_standin`]: `/dev/attestation` outside SGX (two FIFOs; TEST-root
//!   quotes over the report data kiln-init writes) for runc runs of MANAGER_CA images.
//! - [`runc`]: pull + unpack (skopeo, umoci) and run with runc, probe a server in the
//!   container's network namespace, stop it with a signal.
//!
//! Tests call [`require_tool!`] first: when `docker-registry` is missing they print a
//! loud SKIPPED message and return (CI installs it: scripts/install-deps.sh).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attestation_standin;
pub mod bombs;
pub mod certs;
pub mod cli;
pub mod converted_fixture;
pub mod dsm_server;
pub mod fault_front;
pub mod images;
pub mod loopback_http;
pub mod real_apps;
pub mod registry;
pub mod runc;
pub mod runtime_fixture;
pub mod sample_images;
pub mod test_quotes;
pub mod token_server;

/// True when `tool` is an executable on `PATH`.
pub fn have_tool(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// Returns `Ok(())` from the calling test (which returns a `Result`) with a loud
/// message when `tool` is not installed.
#[macro_export]
macro_rules! require_tool {
    ($tool:expr) => {
        if !$crate::have_tool($tool) {
            eprintln!(
                "\n!!!!!!!! SKIPPED: `{}` is not installed; run scripts/install-deps.sh !!!!!!!!\n",
                $tool
            );
            return Ok(());
        }
    };
}

/// A boxed error for harness setup failures.
pub type HarnessError = Box<dyn std::error::Error + Send + Sync>;
