//! Gramine: the convert-image request, the enclave spec derived from it and the image,
//! and the two manifests (SGX1 and EDMM) in canonical TOML.
