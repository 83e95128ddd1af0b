//! SGX: enclave measurement (MRENCLAVE), Gramine v1.9's enclave layout, SIGSTRUCT and
//! signing. Pure: bytes in, bytes out.
//!
//! - [`measure`]: the streamed MRENCLAVE hasher over ECREATE/EADD/EEXTEND records.
//! - [`sgxs`]: reading SGXS measured streams (Fortanix's format) into the hasher.
//! - [`elf`]: the few facts of a libpal.so ELF the layout needs (PT_LOADs, entry, PIE).
//! - [`manifest_params`]: the `sgx.*` settings read from a final `.manifest.sgx`.
//! - [`gramine_layout`]: Gramine v1.9's layout: manifest, SSA, TCS, TLS, stacks, libpal, heap.
//! - [`sigstruct`]: the 1808-byte SIGSTRUCT: build, parse, verify, MRSIGNER.
//! - [`signer`]: the async signer interface and the PEM, generated and external signers.
//! - [`sigstruct_date`]: the BCD DATE field; [`attributes`]: attribute bits and Gramine's
//!   defaults; [`rsa3072`]: RSA-3072 e=3 checks, Q1/Q2; [`pem_key`]: PEM key loading;
//!   [`sigstruct_view`]: a serde view of a SIGSTRUCT.

pub mod attributes;
pub mod elf;
pub mod gramine_layout;
pub mod manifest_params;
pub mod measure;
pub mod pem_key;
pub mod rsa3072;
pub mod sgxs;
pub mod signer;
pub mod sigstruct;
pub mod sigstruct_date;
pub mod sigstruct_view;
