//! One module per subcommand.

pub mod sgx_measure;
pub mod sgx_show;
pub mod sgx_sign;
