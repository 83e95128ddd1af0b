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

use super::output::{OutputImage, Signed};
use crate::api::ConvertResponse;
use crate::gramine::validate::ValidRequest;
use crate::image::reference::Digest;

/// The first 12 hex digits of a `sha256:<hex>` digest.
pub fn short_id(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// The response body for a pushed output image.
pub fn response(
    req: &ValidRequest,
    image: &OutputImage,
    manifest_digest: &Digest,
    signed: &Signed,
    warnings: Vec<String>,
) -> ConvertResponse {
    ConvertResponse {
        new_image: req.output_image.clone(),
        image_sha: short_id(&image.config_digest),
        image_size: image.size,
        isvprodid: req.isvprodid,
        isvsvn: req.isvsvn,
        mrenclave: hex::encode(signed.mrenclave),
        mrenclave2: hex::encode(signed.mrenclave2),
        mrsigner: hex::encode(signed.mrsigner()),
        mem_size: req.mem_size.bytes,
        digest: manifest_digest.to_string(),
        warnings,
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
