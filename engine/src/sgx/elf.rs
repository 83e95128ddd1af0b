//! Reading the parts of a libpal.so ELF64 that the enclave layout needs.
