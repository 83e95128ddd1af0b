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

pub mod elf;
pub mod gramine_layout;
pub mod manifest_params;
pub mod measure;
pub mod sgxs;
pub mod signer;
pub mod sigstruct;
