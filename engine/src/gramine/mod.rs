//! Gramine: the convert-image request, the enclave spec derived from it and the image,
//! and the two manifests (SGX1 and EDMM) in canonical TOML.
//!
//! Pipeline: [`request::parse_request`] → [`validate::validate`] → [`spec::build_spec`]
//! (with the image config, the [`crate::image::file_index::FileIndex`] and a
//! [`runtime_descriptor::RuntimeDescriptor`]) → [`manifest::render_manifest`] for each
//! [`manifest::Variant`].
//!
//! Modules: [`request`] (wire types), [`validate`] (checks and defaults), [`options`]
//! (`manifestOptions`), [`size`], [`paths`], [`fsview`] (lookups in the image),
//! [`users`] (USER), [`env`](mod@env), [`argv`], [`dirs`] (trusted/allowed/encrypted),
//! [`spec`] (the enclave spec and the mount choices), [`init`] (certificates through
//! kiln-init), [`log_links`] (log files linked to stdout/stderr), [`workload`] (runtimes
//! kiln recognises and the sizing warnings), [`manifest`] (the writer),
//! [`canonical`] (TOML values and canonical serialisation), [`runtime_descriptor`] (runtime
//! descriptor).

pub mod argv;
pub mod canonical;
pub mod dirs;
pub mod env;
pub mod fsview;
pub mod init;
pub mod log_links;
pub mod manifest;
pub mod options;
pub mod paths;
pub mod request;
pub mod runtime_descriptor;
pub mod runtime_libc;
pub mod size;
pub mod spec;
pub mod users;
pub mod validate;
pub mod workload;
