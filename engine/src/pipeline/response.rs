//! The convert-image response and how its image fields are defined.
//!
//! - `imageSHA`: the image ID as docker shows it: the first 12 hex digits of the
//!   output config's sha256 digest (`docker images` IMAGE ID; the full ID is the config
//!   digest). The manifest digest is in the extra field `digest`.
//! - `imageSize`: bytes a registry stores for the image: the config size plus the
//!   compressed sizes of all layers (input, runtime, kiln), i.e. the sum of the sizes in
//!   the manifest's descriptors (what registries and `docker manifest inspect` show;
//!   docker's local "SIZE" counts uncompressed bytes instead, which the registry does
//!   not know).

use crate::api::ConvertResponse;

/// The first 12 hex digits of a `sha256:<hex>` digest.
pub fn short_id(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// Everything the response reports.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `outputImageName`.
    pub new_image: String,
    /// Output config digest.
    pub config_digest: String,
    /// Output manifest digest.
    pub manifest_digest: String,
    /// Config size plus every layer size.
    pub image_size: u64,
    /// ISV ids.
    pub isvprodid: u16,
    /// ISV svn.
    pub isvsvn: u16,
    /// SGX1 MRENCLAVE.
    pub mrenclave: [u8; 32],
    /// EDMM MRENCLAVE.
    pub mrenclave2: [u8; 32],
    /// MRSIGNER.
    pub mrsigner: [u8; 32],
    /// Enclave size used.
    pub mem_size: u64,
    /// Warnings.
    pub warnings: Vec<String>,
}

/// The response body.
pub fn response(f: Facts) -> ConvertResponse {
    ConvertResponse {
        new_image: f.new_image,
        image_sha: short_id(&f.config_digest),
        image_size: f.image_size,
        isvprodid: f.isvprodid,
        isvsvn: f.isvsvn,
        mrenclave: hex::encode(f.mrenclave),
        mrenclave2: hex::encode(f.mrenclave2),
        mrsigner: hex::encode(f.mrsigner),
        mem_size: f.mem_size,
        digest: f.manifest_digest,
        warnings: f.warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
