//! The RSA arithmetic of a SIGSTRUCT: the RSA-3072, e = 3 key checks, PKCS#1 v1.5
//! SHA-256 verification, Q1/Q2, and the little-endian 384-byte encoding.

use num_bigint::BigUint;
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Pkcs1v15Sign};

/// The modulus size SGX requires, in bits.
pub const MODULUS_BITS: u64 = 3072;
/// The modulus size SGX requires, in bytes (also the size of SIGNATURE, Q1, Q2).
pub const MODULUS_BYTES: usize = 384;
/// The public exponent SGX requires.
pub const PUBLIC_EXPONENT: u32 = 3;

/// Why a key cannot sign SGX enclaves. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The modulus is not 3072 bits.
    #[error("the key is RSA-{bits}; SGX needs an RSA-3072 key with public exponent 3")]
    ModulusBits {
        /// The modulus size found, in bits.
        bits: u64,
    },
    /// The public exponent is not 3.
    #[error("the RSA public exponent is {exponent}; SGX needs e = 3")]
    Exponent {
        /// The exponent found, in decimal.
        exponent: String,
    },
    /// The PEM holds some other kind of key.
    #[error("not an RSA private key: the PEM holds {0}")]
    NotRsa(String),
    /// The PEM holds only a public key.
    #[error("the PEM holds a public key ({0}); signing needs the private key")]
    PublicKeyOnly(String),
    /// The text is not a PEM block, or its base64/DER is malformed.
    #[error("not a readable PEM private key: {0}")]
    Pem(String),
    /// An encrypted key was given without a passphrase.
    #[error("the private key is encrypted (ENCRYPTED PRIVATE KEY): a passphrase is needed")]
    NeedsPassphrase,
    /// Decryption failed.
    #[error("could not decrypt the private key: wrong passphrase or unsupported encryption")]
    Decrypt,
    /// An OpenSSL "traditional" encrypted PKCS#1 key (Proc-Type: 4,ENCRYPTED).
    #[error(
        "the key uses OpenSSL's legacy PEM encryption (Proc-Type: 4,ENCRYPTED); \
         convert it to encrypted PKCS#8 (openssl pkcs8 -topk8)"
    )]
    LegacyEncryption,
    /// The DER decodes but is not a consistent RSA key.
    #[error("invalid RSA key: {0}")]
    Invalid(String),
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature is longer than the modulus.
    #[error("the signature is {len} bytes; an RSA-3072 signature is 384 bytes")]
    Length {
        /// Its length.
        len: usize,
    },
    /// PKCS#1 v1.5 SHA-256 verification failed.
    #[error("the RSA signature does not verify against the modulus (PKCS#1 v1.5, SHA-256)")]
    Invalid,
}

fn exponent_text(e: &BigUint) -> String {
    e.to_string()
}

/// Checks that (n, e), both big-endian, is an RSA-3072 key with e = 3, and returns it
/// as an `rsa` public key.
pub fn sgx_public_key(modulus_be: &[u8], exponent_be: &[u8]) -> Result<rsa::PublicKey, KeyError> {
    let n = BigUint::from_bytes_be(modulus_be);
    let e = BigUint::from_bytes_be(exponent_be);
    if n.bits() != MODULUS_BITS {
        return Err(KeyError::ModulusBits { bits: n.bits() });
    }
    if e != BigUint::from(PUBLIC_EXPONENT) {
        return Err(KeyError::Exponent {
            exponent: exponent_text(&e),
        });
    }
    let n = BoxedUint::from_be_slice_vartime(&n.to_bytes_be());
    let e = BoxedUint::from(u64::from(PUBLIC_EXPONENT));
    rsa::PublicKey::new(n, e).map_err(|err| KeyError::Invalid(err.to_string()))
}

/// Checks that an `rsa` key (public or private) is RSA-3072 with e = 3.
pub fn check_key_parts(key: &impl PublicKeyParts) -> Result<(), KeyError> {
    sgx_public_key(&key.n_bytes(), &key.e_bytes()).map(|_| ())
}

/// Left-pads a big-endian number to 384 bytes; `None` if it is longer (after leading
/// zeros are dropped).
pub fn pad_be_384(be: &[u8]) -> Option<[u8; MODULUS_BYTES]> {
    let first = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let digits = be.get(first..)?;
    if digits.len() > MODULUS_BYTES {
        return None;
    }
    let mut out = [0u8; MODULUS_BYTES];
    out.get_mut(MODULUS_BYTES - digits.len()..)?
        .copy_from_slice(digits);
    Some(out)
}

/// Reverses a 384-byte number between big- and little-endian.
pub fn reverse_384(bytes: &[u8; MODULUS_BYTES]) -> [u8; MODULUS_BYTES] {
    let mut out = *bytes;
    out.reverse();
    out
}

/// Verifies an RSASSA-PKCS#1 v1.5 SHA-256 signature (big-endian) over `message`.
pub fn verify_sha256(
    key: &rsa::PublicKey,
    message: &[u8],
    signature_be: &[u8],
) -> Result<(), SignatureError> {
    use rsa::sha2::{Digest, Sha256};
    let sig = pad_be_384(signature_be).ok_or(SignatureError::Length {
        len: signature_be.len(),
    })?;
    let digest = Sha256::digest(message);
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
        .map_err(|_| SignatureError::Invalid)
}

/// Q1 = ⌊S²/N⌋ and Q2 = ⌊((S² mod N)·S)/N⌋, from S and N big-endian, as 384-byte
/// little-endian arrays. `None` if N is zero or S ≥ N (then Q1 or Q2 need not fit).
pub fn q1_q2(
    signature_be: &[u8],
    modulus_be: &[u8],
) -> Option<([u8; MODULUS_BYTES], [u8; MODULUS_BYTES])> {
    let s = BigUint::from_bytes_be(signature_be);
    let n = BigUint::from_bytes_be(modulus_be);
    if n == BigUint::ZERO || s >= n {
        return None;
    }
    let s2 = &s * &s;
    let q1 = &s2 / &n;
    let q2 = ((&s2 % &n) * &s) / &n;
    Some((le_384(&q1)?, le_384(&q2)?))
}

fn le_384(x: &BigUint) -> Option<[u8; MODULUS_BYTES]> {
    let le = x.to_bytes_le();
    let mut out = [0u8; MODULUS_BYTES];
    out.get_mut(..le.len())?.copy_from_slice(&le);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding() {
        let p = pad_be_384(&[0, 0, 1, 2]).unwrap();
        assert_eq!(&p[382..], &[1, 2]);
        assert!(p[..382].iter().all(|b| *b == 0));
        assert!(pad_be_384(&[1u8; 385]).is_none());
        let mut long = vec![0u8; 10];
        long.extend([7u8; 384]);
        assert!(pad_be_384(&long).is_some());
    }

    #[test]
    fn q1_q2_small_numbers() {
        // S = 5, N = 7: S² = 25, Q1 = 3, S² mod N = 4, 4·5 = 20, Q2 = 2.
        let (q1, q2) = q1_q2(&[5], &[7]).unwrap();
        assert_eq!(q1[0], 3);
        assert_eq!(q2[0], 2);
        assert!(q1_q2(&[7], &[7]).is_none());
        assert!(q1_q2(&[1], &[0]).is_none());
    }

    #[test]
    fn key_checks_name_the_problem() {
        let mut n = vec![0xFFu8; 256];
        n[255] = 0xFB;
        assert_eq!(
            sgx_public_key(&n, &[3]).unwrap_err(),
            KeyError::ModulusBits { bits: 2048 }
        );
        let mut n = vec![0xFFu8; 384];
        n[383] = 0xFB;
        assert_eq!(
            sgx_public_key(&n, &[1, 0, 1]).unwrap_err(),
            KeyError::Exponent {
                exponent: "65537".into()
            }
        );
    }
}
