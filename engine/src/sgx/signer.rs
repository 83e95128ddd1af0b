//! Signing a SIGSTRUCT through one async interface, [`Signer`].
//!
//! The engine hands a signer the 256-byte signed payload and gets back an RSA-3072
//! PKCS#1 v1.5 SHA-256 signature (big-endian). It then checks the signer's public key
//! (3072 bits, e = 3), verifies the signature, computes Q1/Q2 and assembles the
//! SIGSTRUCT ([`sign`]).
//!
//! Signers here: [`PrivateKeySigner`] (a PEM key, or a freshly generated key) and
//! [`ExternalSignature`] (a signature made elsewhere; see [`prepare`] / [`complete`] for
//! the offline two-step flow). A remote KMS implements [`Signer`] itself.

use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Pkcs1v15Sign};

use super::attributes::SigningAttributes;
use super::manifest_params::SgxManifestParams;
use super::pem_key::load_private_key_pem;
use super::rsa3072::{self, KeyError, SignatureError, MODULUS_BITS, PUBLIC_EXPONENT};
use super::sigstruct::{Sigstruct, SigstructBody, EXPONENT, SIGNED_PAYLOAD_SIZE};
use super::sigstruct_date::SigstructDate;
use crate::util::MaybeSend;

/// An RSA public key as plain big-endian bytes, so that signers need not share the
/// engine's RSA crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerPublicKey {
    /// The modulus N, big-endian.
    pub modulus_be: Vec<u8>,
    /// The public exponent e, big-endian.
    pub exponent_be: Vec<u8>,
}

impl From<&rsa::PublicKey> for SignerPublicKey {
    fn from(key: &rsa::PublicKey) -> Self {
        Self {
            modulus_be: key.n_bytes().into_vec(),
            exponent_be: key.e_bytes().into_vec(),
        }
    }
}

/// Why signing failed. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The key is not an SGX signing key, or cannot be read.
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    /// The signature returned does not verify.
    #[error("signature: {0}")]
    Signature(#[from] SignatureError),
    /// The signer itself failed (KMS unreachable, user cancelled, …).
    #[error("signer failed: {0}")]
    Signer(String),
    /// A remote signer failed for a reason it classified (a KMS refused the API key, has
    /// no such key, is unreachable); the reason names the request field and the call.
    #[error("{0}")]
    Remote(RemoteSignError),
}

/// A remote signer's failure: what kind, and a reason without secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct RemoteSignError {
    /// What kind of failure.
    pub kind: RemoteFailure,
    /// What went wrong, naming the request field and the call.
    pub reason: String,
}

/// The kinds of [`RemoteSignError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteFailure {
    /// The request's signing key settings are wrong (no such key, not an SGX key).
    Request,
    /// The signer refused the credentials.
    Unauthorized,
    /// The credentials may not use the key.
    Forbidden,
    /// The signer is unreachable, failing or timed out.
    Unavailable,
}

/// A source of SIGSTRUCT signatures: RSA-3072, e = 3, RSASSA-PKCS#1 v1.5 with SHA-256.
#[kiln_macros::async_trait]
pub trait Signer: MaybeSend {
    /// The signer's public key (may need a round trip to a remote KMS).
    async fn public_key(&self) -> Result<SignerPublicKey, SignError>;

    /// Signs the 256-byte payload: returns the PKCS#1 v1.5 SHA-256 signature over it,
    /// big-endian (384 bytes).
    async fn sign_payload(&self, payload: &[u8; SIGNED_PAYLOAD_SIZE])
        -> Result<Vec<u8>, SignError>;

    /// Called once when the pipeline has made its signatures (or failed to): a remote
    /// signer ends its session here. Best effort; the default does nothing.
    async fn finish(&self) {}
}

/// Builds the unsigned SIGSTRUCT body Gramine v1.9 would: its attribute defaults
/// ([`SigningAttributes::gramine`]), ISVPRODID/ISVSVN from the manifest, the given date.
pub fn gramine_sigstruct_body(
    mrenclave: [u8; 32],
    params: &SgxManifestParams,
    date: SigstructDate,
) -> SigstructBody {
    SigstructBody::new(
        mrenclave,
        date,
        &SigningAttributes::gramine(params),
        params.isvprodid,
        params.isvsvn,
    )
}

/// Offline step 1: the 256 bytes to have signed elsewhere (RSASSA-PKCS#1 v1.5, SHA-256,
/// RSA-3072 e = 3), e.g. `openssl dgst -sha256 -sign key.pem`.
pub fn prepare(body: &SigstructBody) -> [u8; SIGNED_PAYLOAD_SIZE] {
    body.signed_payload()
}

/// Offline step 2 (and the core of [`sign`]): checks the key (3072 bits, e = 3),
/// verifies the signature over the body, computes Q1/Q2 and assembles the SIGSTRUCT.
/// `modulus_be` and `signature_be` are big-endian, as RSA tools write them.
pub fn complete(
    body: SigstructBody,
    public_key: &SignerPublicKey,
    signature_be: &[u8],
) -> Result<Sigstruct, SignError> {
    let key = rsa3072::sgx_public_key(&public_key.modulus_be, &public_key.exponent_be)?;
    rsa3072::verify_sha256(&key, &body.signed_payload(), signature_be)?;
    let n = rsa3072::pad_be_384(&key.n_bytes())
        .ok_or_else(|| KeyError::Invalid("modulus longer than 384 bytes".into()))?;
    let s = rsa3072::pad_be_384(signature_be).ok_or(SignatureError::Length {
        len: signature_be.len(),
    })?;
    // A verified signature is below N, so Q1/Q2 exist.
    let (q1, q2) = rsa3072::q1_q2(&s, &n).ok_or(SignatureError::Invalid)?;
    Ok(Sigstruct {
        body,
        modulus: rsa3072::reverse_384(&n),
        exponent: EXPONENT,
        signature: rsa3072::reverse_384(&s),
        q1,
        q2,
    })
}

/// Signs a body with any [`Signer`]: fetches its public key, has it sign the payload,
/// then [`complete`]s (key checks, verification, Q1/Q2).
pub async fn sign(body: SigstructBody, signer: &dyn Signer) -> Result<Sigstruct, SignError> {
    let public_key = signer.public_key().await?;
    // Refuse a wrong key before asking for a signature.
    rsa3072::sgx_public_key(&public_key.modulus_be, &public_key.exponent_be)?;
    let signature = signer.sign_payload(&body.signed_payload()).await?;
    complete(body, &public_key, &signature)
}

/// Signs with a private key held in memory: read from PEM or freshly generated.
///
/// Natively the RSA operation is blinded with the OS RNG; on wasm it is not (the
/// engine takes no RNG dependency there). Blinding never changes the signature.
pub struct PrivateKeySigner {
    key: rsa::PrivateKey,
}

impl std::fmt::Debug for PrivateKeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Nothing of the key is printed, not even the public part.
        f.debug_struct("PrivateKeySigner").finish_non_exhaustive()
    }
}

impl PrivateKeySigner {
    /// Reads a PEM private key: PKCS#1, PKCS#8, or encrypted PKCS#8 with `passphrase`.
    /// Refuses anything that is not RSA-3072 with e = 3, saying what it is.
    pub fn from_pem(pem: &str, passphrase: Option<&[u8]>) -> Result<Self, SignError> {
        Ok(Self {
            key: load_private_key_pem(pem, passphrase)?,
        })
    }

    /// Generates a fresh RSA-3072 key with e = 3 from the caller's cryptographic RNG.
    pub fn generate<R>(rng: &mut R) -> Result<Self, SignError>
    where
        R: rsa::rand_core::TryCryptoRng + ?Sized,
    {
        let key = rsa::PrivateKey::new_with_exp(
            rng,
            MODULUS_BITS as usize,
            BoxedUint::from(u64::from(PUBLIC_EXPONENT)),
        )
        .map_err(|e| SignError::Signer(format!("RSA key generation failed: {e}")))?;
        rsa3072::check_key_parts(&key)?;
        Ok(Self { key })
    }

    /// Generates a fresh RSA-3072, e = 3 key from the operating system's RNG (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn generate_with_os_rng() -> Result<Self, SignError> {
        Self::generate(&mut getrandom::SysRng)
    }

    /// The private key as unencrypted PKCS#8 PEM (`PRIVATE KEY`), wiped on drop.
    pub fn to_pkcs8_pem(&self) -> Result<zeroize::Zeroizing<String>, SignError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| SignError::Signer(format!("PKCS#8 encoding failed: {e}")))
    }

    /// The public key as big-endian bytes.
    pub fn public_key_bytes(&self) -> SignerPublicKey {
        SignerPublicKey {
            modulus_be: self.key.n_bytes().into_vec(),
            exponent_be: self.key.e_bytes().into_vec(),
        }
    }

    /// Signs a 32-byte SHA-256 digest (PKCS#1 v1.5); the signature is big-endian.
    pub fn sign_sha256_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SignError> {
        self.key
            .sign(Pkcs1v15Sign::new::<rsa::sha2::Sha256>(), digest)
            .map_err(|e| SignError::Signer(format!("RSA signing failed: {e}")))
    }

    /// Signs a message (hashed with SHA-256, PKCS#1 v1.5); the signature is big-endian.
    pub fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        use rsa::sha2::{Digest, Sha256};
        self.sign_sha256_digest(&Sha256::digest(message).into())
    }

    /// Signs a body synchronously (the same result as [`sign`] with this signer).
    pub fn sign_sigstruct(&self, body: SigstructBody) -> Result<Sigstruct, SignError> {
        let signature = self.sign_message(&body.signed_payload())?;
        complete(body, &self.public_key_bytes(), &signature)
    }
}

#[kiln_macros::async_trait]
impl Signer for PrivateKeySigner {
    async fn public_key(&self) -> Result<SignerPublicKey, SignError> {
        Ok(self.public_key_bytes())
    }

    async fn sign_payload(
        &self,
        payload: &[u8; SIGNED_PAYLOAD_SIZE],
    ) -> Result<Vec<u8>, SignError> {
        self.sign_message(payload)
    }
}

/// A signature made elsewhere (offline HSM, `openssl dgst`), supplied with its public
/// key. As a [`Signer`] it returns that signature; [`sign`] then verifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalSignature {
    /// The signer's public key.
    pub public_key: SignerPublicKey,
    /// The signature over the payload, big-endian.
    pub signature_be: Vec<u8>,
}

#[kiln_macros::async_trait]
impl Signer for ExternalSignature {
    async fn public_key(&self) -> Result<SignerPublicKey, SignError> {
        Ok(self.public_key.clone())
    }

    async fn sign_payload(
        &self,
        _payload: &[u8; SIGNED_PAYLOAD_SIZE],
    ) -> Result<Vec<u8>, SignError> {
        Ok(self.signature_be.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../testdata/sgxs/sig1.key.pem");
    const SIG1: &[u8] = include_bytes!("../../testdata/sgxs/sig1.sigstruct.bin");

    #[test]
    fn pem_key_reproduces_sig1() {
        let signer = PrivateKeySigner::from_pem(KEY, None).unwrap();
        let expected = Sigstruct::parse(SIG1).unwrap();
        let s = signer.sign_sigstruct(expected.body.clone()).unwrap();
        assert_eq!(s.to_bytes().as_slice(), SIG1);
    }

    #[test]
    fn offline_two_step() {
        let signer = PrivateKeySigner::from_pem(KEY, None).unwrap();
        let body = Sigstruct::parse(SIG1).unwrap().body;
        let payload = prepare(&body);
        let sig = signer.sign_message(&payload).unwrap();
        let s = complete(body.clone(), &signer.public_key_bytes(), &sig).unwrap();
        assert_eq!(s.to_bytes().as_slice(), SIG1);

        let mut bad = sig.clone();
        bad[100] ^= 1;
        assert_eq!(
            complete(body, &signer.public_key_bytes(), &bad),
            Err(SignError::Signature(SignatureError::Invalid))
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let signer = PrivateKeySigner::from_pem(KEY, None).unwrap();
        assert_eq!(format!("{signer:?}"), "PrivateKeySigner { .. }");
    }
}
