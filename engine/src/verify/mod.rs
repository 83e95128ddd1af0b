//! Reading converted images back: what an image is ([`read`]), what it says
//! ([`mod@inspect`]), and whether its enclave identities hold up ([`check`]).
//!
//! Works on any image the transport can reach (registry or OCI layout through
//! [`source::BlobSource`]), so the CLI, the app and the worker share it:
//!
//! ```ignore
//! let image = client.resolve_image(&reference, &PlatformSpec::linux_amd64()).await?;
//! let blobs = RegistryBlobs::new(&client, reference.repository());
//! let contents = read_image(&image, &blobs).await?;
//! let inspect = inspect(&contents);
//! let report = verify(&contents, &Expectations::default());
//! ```
//!
//! Kinds of image understood ([`read::ImageKind`]): kiln's converted images
//! (docs/image-formats.md), Gramine Shielded Containers (GSC) images, and images of the
//! compatible platform that carry only `ENCLAVEOS_SIGNATURE*` environment variables.

pub mod check;
pub mod inspect;
pub mod read;
pub mod source;

pub use check::{verify, Check, CheckStatus, Expectations, VerifyReport};
pub use inspect::{inspect, EnclaveInfo, InspectReport};
pub use read::{read_image, read_remote, EnclaveFiles, ImageContents, ImageKind, ReadError};
pub use source::{BlobSource, RegistryBlobs, SourceError};
