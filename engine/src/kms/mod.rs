//! Signers backed by a remote key management service, over the engine's [`Transport`].
//!
//! - [`sdkms`]: Fortanix DSM (formerly SDKMS), the `signingKey.sdkms` request variant.
//!
//! [`Transport`]: crate::image::transport::Transport

pub mod sdkms;
