//! MRSIGNER: SHA-256 of the signing key's modulus as SGX stores it (384 bytes,
//! little-endian).

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The modulus size of an SGX signing key in bytes (RSA-3072).
pub const MODULUS_BYTES: usize = 384;

/// Why a modulus cannot give an MRSIGNER.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MrsignerError {
    /// The JWK `n` is not base64url.
    #[error("public key: `n` is not base64url")]
    Base64,
    /// The modulus is longer than 3072 bits.
    #[error("public key: the modulus has {0} bytes, more than 384 (RSA-3072)")]
    TooLong(usize),
}

/// MRSIGNER (hex) of a big-endian modulus (leading zero bytes allowed).
pub fn mrsigner_from_modulus_be(modulus_be: &[u8]) -> Result<String, MrsignerError> {
    let trimmed: &[u8] = {
        let first = modulus_be
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(modulus_be.len());
        modulus_be.get(first..).unwrap_or_default()
    };
    if trimmed.len() > MODULUS_BYTES {
        return Err(MrsignerError::TooLong(trimmed.len()));
    }
    let mut le = [0u8; MODULUS_BYTES];
    for (dst, src) in le.iter_mut().zip(trimmed.iter().rev()) {
        *dst = *src;
    }
    Ok(hex::encode(Sha256::digest(le)))
}

/// Decodes a JWK base64url field (no padding).
pub fn b64url_decode(s: &str) -> Result<Vec<u8>, MrsignerError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| MrsignerError::Base64)
}

/// Encodes bytes as a JWK base64url field (no padding).
pub fn b64url_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// MRSIGNER (hex) of a public JWK's `n` (base64url, big-endian).
pub fn mrsigner_from_jwk_n(n: &str) -> Result<String, MrsignerError> {
    mrsigner_from_modulus_be(&b64url_decode(n)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_engine::sgx::sigstruct::Sigstruct;

    const T1_SIG: &[u8] = include_bytes!("../../engine/testdata/gramine/t1.sig");

    #[test]
    fn matches_the_sigstruct_mrsigner() {
        let s = Sigstruct::parse(T1_SIG).unwrap();
        let mut be = s.modulus;
        be.reverse();
        assert_eq!(
            mrsigner_from_modulus_be(&be).unwrap(),
            hex::encode(s.mrsigner())
        );
        // Through base64url, as a JWK carries it (leading zeros stripped).
        let n = b64url_encode(&be);
        assert_eq!(mrsigner_from_jwk_n(&n).unwrap(), hex::encode(s.mrsigner()));
        let mut padded = vec![0, 0];
        padded.extend_from_slice(&be);
        assert_eq!(
            mrsigner_from_modulus_be(&padded).unwrap(),
            hex::encode(s.mrsigner())
        );
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(mrsigner_from_jwk_n("!!"), Err(MrsignerError::Base64));
        assert_eq!(
            mrsigner_from_modulus_be(&[1u8; 385]),
            Err(MrsignerError::TooLong(385))
        );
    }
}
