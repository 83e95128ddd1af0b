//! The convert-image response body.

use serde::{Deserialize, Serialize};

/// The 200 response of `POST /convert-image`. Field names are the API's (camelCase;
/// `imageSHA` as spelled by the compatible API). Extra fields after `mrsigner` are kiln's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConvertResponse {
    /// The output image name (same as `outputImageName`).
    pub new_image: String,
    /// Shortened SHA-256 of the output image (its id).
    #[serde(rename = "imageSHA")]
    pub image_sha: String,
    /// Output image size in bytes.
    pub image_size: u64,
    /// As requested (default 0).
    pub isvprodid: u16,
    /// As requested (default 0).
    pub isvsvn: u16,
    /// Hex MRENCLAVE of the SGX1 enclave.
    pub mrenclave: String,
    /// Hex MRENCLAVE of the SGX2/EDMM enclave.
    pub mrenclave2: String,
    /// Hex SHA-256 of the signing key's modulus (little-endian).
    pub mrsigner: String,
    /// The enclave size used, in bytes (memSize rounded up to a power of two).
    pub mem_size: u64,
    /// The full digest of the output image manifest (`sha256:...`).
    pub digest: String,
    /// Things the user should know (rounded memSize, files hidden by encrypted dirs, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_on_the_wire() {
        let r = ConvertResponse {
            new_image: "reg/app-sgx:1".into(),
            image_sha: "0123456789ab".into(),
            image_size: 10,
            isvprodid: 1,
            isvsvn: 2,
            mrenclave: "aa".into(),
            mrenclave2: "bb".into(),
            mrsigner: "cc".into(),
            mem_size: 268435456,
            digest: "sha256:00".into(),
            warnings: vec!["w".into()],
        };
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        for k in [
            "newImage",
            "imageSHA",
            "imageSize",
            "isvprodid",
            "isvsvn",
            "mrenclave",
            "mrenclave2",
            "mrsigner",
            "memSize",
            "digest",
            "warnings",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing in {keys:?}");
        }
    }
}
