//! One module per subcommand.

pub mod convert;
pub mod progress;
pub mod registry_args;
pub mod sgx_measure;
pub mod sgx_show;
pub mod sgx_sign;
