//! One module per subcommand.

pub mod attest;
pub mod convert;
pub mod external_packages;
pub mod inspect;
pub mod progress;
pub mod registry_args;
pub mod runtime_libs;
pub mod runtime_pack;
pub mod sgx_measure;
pub mod sgx_show;
pub mod sgx_sign;
pub mod verify;
