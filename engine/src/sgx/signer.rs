//! The async signer interface and its native-friendly implementations.
