//! SHA-256 content digests (`sha256:<64 hex>`): parsing, formatting and a streaming
//! verifier that hashes a blob as it is fed and checks it at the end.

use sha2::{Digest as _, Sha256};

/// What is wrong with a digest string or a blob's contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The digest does not start with `sha256:` (other algorithms are not supported).
    #[error("digest {digest:?}: only sha256 digests are supported (expected \"sha256:<64 hex>\")")]
    UnsupportedAlgorithm {
        /// The digest as given.
        digest: String,
    },
    /// The hex part is not 64 lowercase hex digits.
    #[error("digest {digest:?}: the hex part must be 64 lowercase hex digits")]
    BadHex {
        /// The digest as given.
        digest: String,
    },
    /// The blob's SHA-256 differs from the expected digest.
    #[error("blob {expected}: content has digest {actual} ({len} bytes), not the expected one")]
    Mismatch {
        /// The digest the blob should have (names the blob).
        expected: String,
        /// The digest of the bytes actually fed.
        actual: String,
        /// How many bytes were fed.
        len: u64,
    },
}

/// Parses `sha256:<64 lowercase hex>` into the 32 raw bytes.
pub fn parse_sha256(digest: &str) -> Result<[u8; 32], DigestError> {
    let hex_part =
        digest
            .strip_prefix("sha256:")
            .ok_or_else(|| DigestError::UnsupportedAlgorithm {
                digest: digest.to_string(),
            })?;
    let bad = || DigestError::BadHex {
        digest: digest.to_string(),
    };
    if hex_part.len() != 64 || hex_part.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).map_err(|_| bad())?;
    Ok(out)
}

/// Formats 32 raw bytes as `sha256:<64 lowercase hex>`.
pub fn format_sha256(bytes: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(bytes))
}

/// The `sha256:<hex>` digest of a byte slice.
pub fn sha256_digest(data: &[u8]) -> String {
    format_sha256(&Sha256::digest(data).into())
}

/// A running SHA-256 that also counts bytes.
#[derive(Clone, Default)]
pub struct Sha256Counter {
    hasher: Sha256,
    len: u64,
}

impl Sha256Counter {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hashes `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.len += data.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The final hash and the byte count.
    pub fn finish(self) -> ([u8; 32], u64) {
        (self.hasher.finalize().into(), self.len)
    }
}

impl std::fmt::Debug for Sha256Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sha256Counter")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Hashes a blob as it streams past and checks it against the expected digest at the end.
#[derive(Debug, Clone)]
pub struct DigestVerifier {
    expected: [u8; 32],
    expected_str: String,
    hasher: Sha256Counter,
}

impl DigestVerifier {
    /// A verifier for a blob that must have digest `expected` (`sha256:<hex>`).
    pub fn new(expected: &str) -> Result<Self, DigestError> {
        Ok(Self {
            expected: parse_sha256(expected)?,
            expected_str: expected.to_string(),
            hasher: Sha256Counter::new(),
        })
    }

    /// The expected digest, as given.
    pub fn expected(&self) -> &str {
        &self.expected_str
    }

    /// Feeds the next bytes of the blob.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// Checks the digest of everything fed; returns the blob's size on success.
    pub fn finish(self) -> Result<u64, DigestError> {
        let (actual, len) = self.hasher.finish();
        if actual == self.expected {
            Ok(len)
        } else {
            Err(DigestError::Mismatch {
                expected: self.expected_str,
                actual: format_sha256(&actual),
                len,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn parse_and_format_round_trip() {
        let raw = parse_sha256(ABC).unwrap();
        assert_eq!(format_sha256(&raw), ABC);
        assert_eq!(sha256_digest(b"abc"), ABC);
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert!(matches!(
            parse_sha256("sha512:00"),
            Err(DigestError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            parse_sha256("sha256:abc"),
            Err(DigestError::BadHex { .. })
        ));
        assert!(matches!(
            parse_sha256(&ABC.to_uppercase().replace("SHA256", "sha256")),
            Err(DigestError::BadHex { .. })
        ));
        assert!(matches!(
            parse_sha256(&ABC.replace('b', "g")),
            Err(DigestError::BadHex { .. })
        ));
    }

    #[test]
    fn verifier_accepts_chunks_and_rejects_mismatch() {
        let mut v = DigestVerifier::new(ABC).unwrap();
        v.update(b"a");
        v.update(b"bc");
        assert_eq!(v.finish().unwrap(), 3);

        let mut v = DigestVerifier::new(ABC).unwrap();
        v.update(b"abd");
        let err = v.finish().unwrap_err();
        assert!(err.to_string().contains(ABC), "{err}");
    }
}
